"""``insider-webpush validate``: check every record of a push file; send nothing."""

from __future__ import annotations

import argparse
from typing import cast

from ..pushfile import Format, PushFileError, read_lines
from ._common import EXIT_FAILED, EXIT_OK, UsageError
from .output import Output


def fmt(args: argparse.Namespace) -> Format | None:
    """``--format``, None for ``auto``."""
    return None if args.format == "auto" else cast("Format", args.format)


def located(error: PushFileError) -> str:
    """A record's error as the CLI says it: ``line N: field: message``."""
    return f"line {error.line}: {error.reason}" if error.line else str(error)


def run(args: argparse.Namespace, out: Output) -> int:
    good = bad = 0
    with read_lines(args.file, format=fmt(args)) as records:
        for record in records:
            if record.error is None:
                good += 1
            else:
                bad += 1
                out.echo(located(record.error))
    if good + bad == 0 and not args.allow_empty:
        name = "standard input" if args.file == "-" else args.file
        raise UsageError(f"{name} holds no pushes (--allow-empty accepts that)")
    total = good + bad
    out.echo(f"{total} push{'' if total == 1 else 'es'} checked: {good} valid, {bad} invalid")
    return EXIT_FAILED if bad else EXIT_OK
