"""The ``insider-webpush`` command: ``send``, ``batch``, ``stats``, ``validate``,
``fake-server``, ``demo``.

One module a command (:mod:`.send`, :mod:`.batch`, :mod:`.stats`, :mod:`.validate`,
:mod:`.demo`, :mod:`.fake_server`), over shared ones: :mod:`.parser` (the grammar),
:mod:`.stats_view` and :mod:`.funnel_plot` (statistics as tables, JSON and a chart),
:mod:`.credentials`, :mod:`.output` (masking, escaping, tables), :mod:`.progress` and
:mod:`.report` (a batch's progress and summary), :mod:`.interrupt` (Ctrl-C and SIGTERM) and
:mod:`.fatal` (what an error says, and its exit code).

The API key comes from ``--api-key`` or ``INSIDER_API_KEY`` (the partner id and base URL
likewise) and is never printed: not in output, not in an error, not in ``--help``.
Progress and tables use rich when it is installed (the ``cli`` extra) and plain lines when it
is not, or when ``--plain`` is given (before or after the command).

Exit codes: 0 every push succeeded (or the statistics were shown); 1 a push failed,
``validate`` found a bad line, or a statistics request failed; 2 bad usage, a bad push or
file, an empty input (unless ``--allow-empty``), missing credentials, a request Insider could
not process (a 422) or a key Insider refused (a 401: the batch stops there); 130 interrupted
by Ctrl-C or SIGTERM; 141 the reader of the output went away (``| head``), as the shell
reports a command its SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from ._common import EXIT_BROKEN_PIPE, EXIT_OK, EXIT_USAGE, UsageError
from .credentials import secrets_in
from .fatal import explain
from .output import Output, SdkWarnings
from .parser import build_parser

__all__ = ["main"]


async def _run(args: argparse.Namespace, out: Output) -> int:
    if args.command == "send":
        from . import send

        return await send.run(args, out)
    if args.command == "batch":
        from . import batch

        return await batch.run(args, out)
    if args.command == "stats":
        from . import stats

        return await stats.run(args, out)
    if args.command == "demo":
        from . import demo

        return await demo.run(args, out)
    from . import fake_server

    return await fake_server.run(args, out)


def _run_on_a_loop(coro: Coroutine[Any, Any, int]) -> int:
    """Run the command on uvloop when it is installed (the `speed` extra), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output(plain=False, secrets=secrets_in(argv))
    sdk_warnings: SdkWarnings | None = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help or --version printed what was asked
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        out.rich = out.rich and not args.plain
        if args.verbose:
            logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
            logging.getLogger("insider_webpush").setLevel(logging.DEBUG)
        else:
            sdk_warnings = SdkWarnings(out)
            logging.getLogger("insider_webpush").addHandler(sdk_warnings)
        if args.command == "validate":
            from . import validate

            return validate.run(args, out)
        return _run_on_a_loop(_run(args, out))
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): stop quietly, as a command the shell's
        # SIGPIPE ends would, and keep Python from complaining when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        if exc.usage:
            out.echo(exc.usage.rstrip(), err=True)
        out.error(exc.message)
        return EXIT_USAGE
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
        explained = explain(exc)
        if explained is None:
            raise
        out.error(explained[0]) if explained[1] != 130 else out.echo(explained[0], err=True)
        return explained[1]
    finally:
        if sdk_warnings is not None:
            logging.getLogger("insider_webpush").removeHandler(sdk_warnings)
