"""What an error that ends a command says, and the exit code it ends with."""

from __future__ import annotations

import asyncio

from ..batch import BatchInputError, JournalError, JournalMismatchError
from ..errors import AuthenticationError, InsiderError, UnprocessableEntityError, ValidationError
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from .credentials import KEY_VARIABLE


def refused(exc: InsiderError, key_source: str = KEY_VARIABLE) -> str:
    """What to say of a 401: the key was refused, and where it came from."""
    return f"the API key was refused ({exc}): check {key_source}"


# The statistics requests' fields, as the options of ``stats`` that set them.
_OPTIONS = {"start_date": "--since", "end_date": "--until", "per_page": "--per-page"}


def unprocessable(exc: UnprocessableEntityError) -> str:
    """A 422: each field Insider refused, with its messages, a line each."""
    if not exc.errors:
        return f"Insider could not process the request ({exc})"
    lines = ["Insider could not process the request (HTTP 422):"]
    for field, messages in exc.errors.items():
        option = f" ({_OPTIONS[field]})" if field in _OPTIONS else ""
        lines += [f"  {field}{option}: {message}" for message in messages or ("(no message)",)]
    return "\n".join(lines)


def explain(exc: BaseException, lines: dict[int, int] | None = None) -> tuple[str, int] | None:
    """``(message, exit code)`` for an error that ends a command; None for a bug.

    ``lines`` maps a batch's push index to its line in the input, so that a journal
    mismatch is reported by line like everything else.
    """
    if isinstance(exc, UsageError):
        return exc.message, EXIT_USAGE
    if isinstance(exc, BatchInputError) and isinstance(exc.__cause__, ValidationError):
        return str(exc.__cause__), EXIT_USAGE  # the input itself (stdin) is not a push file
    if isinstance(exc, AuthenticationError):
        return refused(exc), EXIT_USAGE
    if isinstance(exc, JournalMismatchError):
        line = (lines or {}).get(exc.index)
        where = f"line {line}" if line is not None else f"push #{exc.index}"
        return (
            f"{where} does not match the journal: the input changed since the journal was "
            "written (a push edited, inserted or removed); nothing from it on was sent. "
            "Restore the input, or use a new journal for a new batch",
            EXIT_USAGE,
        )
    if isinstance(exc, JournalError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, UnprocessableEntityError):  # bad input, as Insider judged it
        return unprocessable(exc), EXIT_USAGE
    if isinstance(exc, ValidationError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, OSError):  # e.g. a journal in a folder that does not exist
        reason = exc.strerror or str(exc)
        return (f"{exc.filename}: {reason}" if exc.filename else reason), EXIT_USAGE
    if isinstance(exc, InsiderError):
        note = " (ambiguous: the push may have gone out; check before resending)"
        return f"{exc}{note if exc.ambiguous else ''}", EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted (a batch resumes when rerun with the same --journal)", EXIT_INTERRUPTED
    return None
