"""``insider-webpush batch``: launch every push of a push file, within the quota."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from ..client import WebPushClient
from ..pushfile import Format, PushFileError, Record, read_lines, write_pushes
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    LISTED_FAILURES,
    UsageError,
)
from .credentials import PARTNER_VARIABLE, Credentials, credentials
from .fatal import explain, refused
from .interrupt import GracefulInterrupt
from .output import Output
from .progress import Tally, progress_view, run_stream
from .report import print_failures, summary_rows
from .validate import fmt, located

if TYPE_CHECKING:
    from ..batch import Outcome, PushItem


def partner_error(record: Record, partner_id: str | None) -> PushFileError | None:
    push = record.push
    if push is not None and push.partner_id is None and partner_id is None:
        return PushFileError(
            f"is required: put it on the line, or set {PARTNER_VARIABLE} (or pass --partner-id)",
            line=record.line,
            field="partner_id",
        )
    return record.error


def prevalidate(args: argparse.Namespace, out: Output, partner_id: str | None) -> int:
    """Check a whole file before sending any of it; return its number of pushes."""
    total = 0
    bad: list[PushFileError] = []
    with read_lines(args.file, format=fmt(args)) as records:
        for record in records:
            error = partner_error(record, partner_id)
            if error is None:
                total += 1
                continue
            bad.append(error)
            if len(bad) > LISTED_FAILURES:
                break
    if bad:
        for error in bad[:LISTED_FAILURES]:
            out.error(located(error))
        more = " (and maybe more: run validate)" if len(bad) > LISTED_FAILURES else ""
        raise UsageError(f"{args.file} has bad lines{more}; nothing was sent")
    if total == 0 and not args.allow_empty:
        raise UsageError(
            f"{args.file} holds no pushes; nothing was sent (--allow-empty accepts that)"
        )
    return total


class _Failed:
    """The pushes that failed for certain, for ``--failed-out``: by line number from a file
    (read again at the end, so memory holds numbers, not pushes), as items from stdin."""

    def __init__(self, args: argparse.Namespace, *, once: bool) -> None:
        self.path: str | None = args.failed_out
        self._source: str = args.file
        self._once = once
        self._lines: set[int] = set()
        self._items: list[tuple[int, PushItem]] = []

    def add(self, outcome: Outcome, line: int | None) -> None:
        if self.path is None or outcome.ambiguous or outcome.push is None or line is None:
            return
        if not self._once:
            self._lines.add(line)
            return
        push = outcome.push
        self._items.append(
            (line, push if outcome.campaign_id is None else (outcome.campaign_id, push))
        )

    def write(self, out: Output, format: Format | None) -> None:
        if self.path is None:
            return
        if self._once:
            items: Iterator[PushItem] = (
                item for _, item in sorted(self._items, key=lambda p: p[0])
            )
        else:
            items = (
                r.item
                for r in read_lines(self._source, format=format)
                if r.line in self._lines and r.item is not None
            )
        count = write_pushes(items, self.path, format=format)
        out.echo(f"{count} failed push(es) written to {self.path}", err=True)


class _LaunchedIds:
    """The campaign ids the batch launched (its successes, those a journal or a dedupe key
    replayed included), in the order they completed: kept for ``--stats`` (8 bytes an id),
    written to ``--campaign-ids-out`` as they come."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.show: bool = args.stats
        self.path: str | None = args.campaign_ids_out
        self.count = 0
        self._ids = array("q")  # CAMPAIGN_ID_MAX is 2**63 - 1: a signed 64-bit int
        self._file: TextIO | None = None

    def open(self) -> None:
        """Create (or empty) ``--campaign-ids-out`` before anything is sent."""
        if self.path is None:
            return
        try:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"--campaign-ids-out {self.path}: {exc.strerror or exc}") from None

    def add(self, outcome: Outcome) -> None:
        if outcome.result is None:
            return
        campaign_id = outcome.result.campaign_id
        self.count += 1
        if self.show:
            self._ids.append(campaign_id)
        if self._file is not None:
            self._file.write(f"{campaign_id}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def report(self, out: Output) -> None:
        if self.path is not None:
            out.echo(f"{self.count} campaign id(s) written to {self.path}", err=True)
        if not self.show:
            return
        since = dt.date.today().isoformat()
        out.echo(
            f"campaign ids launched ({self.count}), for "
            f"`insider-webpush stats campaign ID --since {since}`:"
        )
        for campaign_id in self._ids:
            out.echo(str(campaign_id))


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)  # links and other spellings too
    return os.path.realpath(a) == os.path.realpath(b)  # one not made yet


def _check_outputs(args: argparse.Namespace, creds: Credentials) -> None:
    """The files a batch writes (``--failed-out``, ``--campaign-ids-out``) are none of the files
    it reads or keeps, nor each other: found before anything is sent. Writing over the journal
    or the dedupe store would empty it, and a rerun would launch its pushes again."""
    store = creds.dedupe_store if creds.dedupe_store and "://" not in creds.dedupe_store else None
    kept = [
        ("the input file", None if args.file == "-" else args.file),
        ("the --journal", args.journal),
        ("the --dedupe-store", store),
    ]
    outputs = [("--failed-out", args.failed_out), ("--campaign-ids-out", args.campaign_ids_out)]
    for option, path in outputs:
        if path is None:
            continue
        others = kept + [(f"the {name}", other) for name, other in outputs if name != option]
        for what, other in others:
            if other is not None and _same_file(path, other):
                raise UsageError(f"{option} {path} is {what}; name another file")


def _check_failed_out(args: argparse.Namespace) -> None:
    """``--failed-out`` must be writable: found before anything is sent."""
    path = args.failed_out
    if path is None:
        return
    try:
        with open(path, "a", encoding="utf-8"):  # created if missing; written at the end
            pass
    except OSError as exc:
        raise UsageError(f"--failed-out {path}: {exc.strerror or exc}") from None


def _read_once(path: str) -> bool:
    return path == "-" or not os.path.isfile(path)


async def run(args: argparse.Namespace, out: Output) -> int:
    creds = credentials(args)
    _check_outputs(args, creds)
    _check_failed_out(args)
    # A pipe, a FIFO or a device can be read once only: like stdin, it is not checked in
    # full first, and its failed pushes are kept rather than read again.
    once = _read_once(args.file)
    total = None if once else prevalidate(args, out, creds.partner_id)
    if args.journal is None:
        out.echo("note: no --journal, so an interrupted run cannot be resumed", err=True)
    failed = _Failed(args, once=once)
    launched = _LaunchedIds(args)
    tally = Tally(
        total,
        args.rate_limit / args.rate_period,
        on_failure=failed.add,
        on_success=launched.add,
    )
    lines: dict[int, int] = {}  # push index -> input line, for the pushes in flight
    stopped_at: list[PushFileError] = []
    interrupted = GracefulInterrupt(out)
    reader = read_lines(args.file, format=fmt(args))

    def pushes() -> Iterator[PushItem]:
        for index, record in enumerate(reader):
            if interrupted.requested:
                return
            error = partner_error(record, creds.partner_id)
            if error is not None or record.item is None:
                stopped_at.append(error or PushFileError("is not a push", line=record.line))
                return  # only read once (stdin, a pipe): a file was checked in full
            lines[index] = record.line
            yield record.item

    launched.open()
    try:
        async with WebPushClient(
            creds.api_key,
            **creds.client_options(),
            rate_limit=args.rate_limit,
            rate_period=args.rate_period,
        ) as client:
            with reader, interrupted:
                view = progress_view(out, "batch", tally, args.progress_interval)
                await run_stream(
                    client,
                    pushes(),
                    view,
                    tally,
                    concurrency=args.concurrency,
                    journal=args.journal,
                    retry_ambiguous=args.retry_ambiguous,
                    lines=lines,
                    stop=interrupted.stop,
                )
    except Exception as exc:
        explained = explain(exc, lines)
        if explained is None:
            raise
        out.error(explained[0])  # first: a run that never started gets no summary
        if tally.done:
            _report(out, args, tally, failed, launched, reader.format)
        return explained[1]
    finally:
        launched.close()
    _report(out, args, tally, failed, launched, reader.format)
    return _verdict(out, args, creds, tally, stopped_at, interrupted)


def _report(
    out: Output,
    args: argparse.Namespace,
    tally: Tally,
    failed: _Failed,
    launched: _LaunchedIds,
    format: Format | None,
) -> None:
    out.table("batch summary", summary_rows(tally))
    print_failures(out, tally, journal=args.journal, failed_out=args.failed_out)
    if tally.failed - tally.ambiguous:
        failed.write(out, format)
    launched.report(out)


def _verdict(
    out: Output,
    args: argparse.Namespace,
    creds: Credentials,
    tally: Tally,
    stopped_at: list[PushFileError],
    interrupted: GracefulInterrupt,
) -> int:
    if stopped_at:
        out.error(
            f"{located(stopped_at[0])}; the batch stopped there: the pushes before it were "
            "sent, none after it"
        )
        return EXIT_USAGE
    if tally.refused is not None:
        not_sent = f"; {tally.not_sent} push(es) not sent" if tally.not_sent else ""
        out.error(f"{refused(tally.refused, creds.key_source)}{not_sent}")
        return EXIT_USAGE
    if interrupted.requested:
        rest = (
            "run the same command again to send the rest"
            if args.journal is not None
            else "without --journal, a rerun sends every push again"
        )
        out.echo(f"stopped by {interrupted.requested}: {rest}", err=True)
        return EXIT_INTERRUPTED
    if tally.done == 0 and not args.allow_empty:  # stdin; a file was counted before
        out.error("the input holds no pushes (--allow-empty accepts that)")  # stdin, a pipe
        return EXIT_USAGE
    return EXIT_OK if tally.failed == 0 else EXIT_FAILED
