"""What every command shares: exit codes, the errors that end a command, the quota's defaults."""

from __future__ import annotations

from ..endpoints import ENDPOINTS, Operation

EXIT_OK = 0
EXIT_FAILED = 1  # a push failed, or validate found a bad line
EXIT_USAGE = 2  # bad usage or input, missing or refused credentials: see the message
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE, as the shell says

QUOTA = ENDPOINTS[Operation.LAUNCH_V2]
LISTED_FAILURES = 20  # the summary lists this many failed pushes, the first by line
DEMO_PARTNER = "10000001"


class UsageError(Exception):
    """Bad input found before anything was sent: printed as ``error: ...``, exit 2.

    ``usage`` is the command's usage line, printed first when the arguments were wrong.
    """

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
