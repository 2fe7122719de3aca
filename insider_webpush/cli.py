"""The ``insider-webpush`` command: ``send``, ``batch``, ``validate``, ``fake-server``, ``demo``.

The API key comes from ``--api-key`` or ``INSIDER_API_KEY`` (the partner id and base URL
likewise) and is never printed: not in output, not in an error, not in ``--help``.
Progress and tables use rich when it is installed (the ``cli`` extra) and plain lines when it
is not, or when ``--plain`` is given.

Exit codes: 0 every push succeeded; 1 a push failed, or ``validate`` found a bad line;
2 bad usage, a bad push or file, or missing credentials (``send``, and ``batch`` of a file,
then sent nothing); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, Protocol

import attrs

from ._version import __version__
from .batch import JournalError
from .client import WebPushClient
from .codec import (
    INCLUDE_UNENGAGED_PYTHON_KEY,
    INCLUDE_UNENGAGED_WIRE_KEY,
    TARGET_KEY,
    push_from_dict,
    target_to_dict,
)
from .endpoints import DEFAULT_BASE_URL, ENDPOINTS, Operation
from .errors import InsiderError, ValidationError
from .models import Target, WebPush
from .testing import DEFAULT_API_KEY, Fault

if TYPE_CHECKING:
    from .batch import Outcome, PushItem

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_QUOTA = ENDPOINTS[Operation.LAUNCH_V2]
_LISTED_FAILURES = 20  # the summary lists this many failed pushes; the journal has them all
_RATE_WINDOW = 5.0  # seconds of recent outcomes the "current rate" is measured over
_SAMPLE_EVERY = 0.2  # seconds between rate samples, and between progress bar redraws
_SHORTEST_SPAN = 1.0  # seconds of samples a rate is measured over, at least
_CSV_VALUE_SEPARATOR = "|"  # between the values of a CSV target_values cell
_CSV_TARGET_COLUMNS = ("target_attribute", "target_values")
_CAMPAIGN_ID_KEY = "campaign_id"  # a file's optional per-push draft id, not part of the body
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_DEMO_KEY = "demo-key"  # the embedded fake's key: not a secret, and still never printed
_DEMO_PARTNER = "10000001"
_FAKE_DEFAULT_KEY = DEFAULT_API_KEY  # FakeInsider's own default


_FILE_FORMATS = (
    "FILE formats: JSONL has one JSON object a line with the API's field names (title, "
    "description, image, link, ttl; optionally banner, include_unengage or "
    'include_unengaged, language, partner_id, target as {"attribute": ..., "values": '
    "[...]}); blank lines are skipped. CSV has a header row of the same names; an empty "
    "cell is an absent field; target_attribute and target_values (values separated by |) "
    "make the target; include_unengage(d) takes true/false/yes/no/1/0. A line or row may "
    "also carry campaign_id, the draft to launch. Lines without partner_id take the "
    "client's."
)


class _UsageError(Exception):
    """Bad input found before anything was sent: printed as ``error: ...``, exit 2."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


# -- argument parsing --------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors come back to :func:`main` to be redacted and printed,
    instead of being written (maybe with a mistyped key in them) and exiting."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self.format_usage())


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="insider-webpush",
        description="Launch Insider One Single Web Push campaigns, validate push files, "
        "and run a local fake of the API.",
        epilog="Credentials come from --api-key/--partner-id/--base-url or INSIDER_API_KEY, "
        "INSIDER_PARTNER_ID, INSIDER_BASE_URL. Exit codes: 0 every push succeeded; 1 a push "
        "failed, or validate found a bad line; 2 bad usage or input (send: nothing was sent); "
        "130 interrupted.",
        allow_abbrev=False,  # so a mistyped --api-key is never read as another option
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--plain", action="store_true", help="plain text output even when rich is installed"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every request (the key is redacted)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    connection = _Parser(add_help=False, allow_abbrev=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--api-key", metavar="KEY", help="the API key (default: $INSIDER_API_KEY; prefer the env)"
    )
    group.add_argument(
        "--partner-id", metavar="ID", help="your partner id (default: $INSIDER_PARTNER_ID)"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API's address (default: $INSIDER_BASE_URL or {DEFAULT_BASE_URL})",
    )

    send = commands.add_parser(
        "send",
        parents=[connection],
        help="launch one push and print its campaign id",
        description="Launch one push and print its campaign id. A push that breaks a rule "
        "is refused before anything is sent (exit 2).",
        allow_abbrev=False,
    )
    send.add_argument("--title", required=True, help="at most 100 characters")
    send.add_argument("--description", required=True, help="at most 255 (30 with a banner)")
    send.add_argument("--image", required=True, help="the icon, an https:// URL")
    send.add_argument("--link", required=True, help="where a click goes, an http(s) URL")
    send.add_argument("--ttl", required=True, help="time to live in seconds, at most 864000")
    send.add_argument("--banner", help="a rich push's image, an https:// URL")
    send.add_argument("--language", help="e.g. en_US")
    send.add_argument(
        "--include-unengaged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also target unengaged tokens (Insider's default: no)",
    )
    send.add_argument("--target-attribute", help="e.g. d_wp_browser or c_tier")
    send.add_argument(
        "--target-value",
        dest="target_values",
        action="append",
        metavar="VALUE",
        help="a value of the target attribute; repeat for several",
    )
    send.add_argument("--campaign-id", type=int, help="launch this draft (see the SDK's create)")
    send.add_argument("--api-version", choices=("v1", "v2"), default="v2")

    batch = commands.add_parser(
        "batch",
        parents=[connection],
        help="launch every push of a JSONL or CSV file",
        description="Launch every push of FILE, at most --concurrency at a time, within the "
        "quota. A file is checked in full first: if any line is bad, nothing is sent. From "
        "stdin a bad line stops the batch there. With --journal an interrupted or crashed "
        "run resumes where it stopped and never launches a push twice. Ctrl-C stops taking "
        "new pushes and lets those already taken finish; a second Ctrl-C abandons them.",
        epilog=_FILE_FORMATS + " Exit codes: 0 every push succeeded; 1 a push failed (the "
        "summary lists them); 2 bad input or usage; 130 stopped by Ctrl-C.",
        allow_abbrev=False,
    )
    _add_file_arguments(batch)
    batch.add_argument("--journal", metavar="PATH", help="write-ahead journal; rerun to resume")
    batch.add_argument("--concurrency", type=_positive_int, default=64, help="default: 64")
    _add_quota_arguments(batch)
    batch.add_argument(
        "--retry-ambiguous",
        action="store_true",
        help="resend pushes the journal records as maybe sent (they may go out twice)",
    )
    batch.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines when not on a terminal (default: 5)",
    )

    validate = commands.add_parser(
        "validate",
        help="check every line of a push file; send nothing",
        description="Check every line of FILE and report each bad one with its line number "
        "and reason. Sends nothing. Exit 1 if any line is bad.",
        epilog=_FILE_FORMATS,
        allow_abbrev=False,
    )
    _add_file_arguments(validate)

    fake = commands.add_parser(
        "fake-server",
        help="run a local fake of the API until Ctrl-C",
        description="Run FakeInsider, a local fake of the Single Web Push API with the real "
        "quota and injectable faults, until Ctrl-C. It accepts the key in $INSIDER_API_KEY, "
        f"or {_FAKE_DEFAULT_KEY!r} when that is unset.",
        epilog="FAULT is WHAT[:PROBABILITY][@INDEX][,OPTION...]. WHAT is an HTTP status "
        "(429, 500, 503, ...), 'drop' (close the connection without an answer) or 'slow' "
        "(answer normally, late). PROBABILITY (0-1) picks requests at random; @INDEX picks "
        "the request with that index (0 is the first); with neither, every request. "
        "OPTIONs: latency=SECONDS (wait before answering), retry-after=SECONDS (a 429's "
        "header), processed (launch the push, then fail: an ambiguous failure), "
        "op=OPERATION (only create, launch_v1, launch_v2 or delete requests). "
        "Examples: --fault 503:0.02  --fault drop:0.01  --fault 429:0.05,retry-after=1  "
        "--fault 500@3,processed  --fault slow:0.1,latency=2",
        allow_abbrev=False,
    )
    fake.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    fake.add_argument("--port", type=int, default=8080, help="default: 8080; 0 picks a free one")
    fake.add_argument("--partner-id", default=_DEMO_PARTNER, help=f"default: {_DEMO_PARTNER}")
    _add_quota_arguments(fake)
    fake.add_argument(
        "--fault",
        type=_parse_fault,
        action="append",
        default=[],
        metavar="FAULT",
        help="inject a fault; repeat for several, the first that matches applies (see below)",
    )
    fake.add_argument("--seed", type=int, default=0, help="seed of the random faults")

    demo = commands.add_parser(
        "demo",
        help="send pushes to an embedded fake at the real quota: no account, no network",
        description="Start an embedded FakeInsider on 127.0.0.1 and send --count pushes "
        "through the real client at the real default quota (6000 per minute: 1000 pushes "
        "take about 10 s), then show what the server saw.",
        allow_abbrev=False,
    )
    demo.add_argument("--count", type=_positive_int, default=1000, help="default: 1000")
    demo.add_argument("--concurrency", type=_positive_int, default=64, help="default: 64")
    demo.add_argument(
        "--progress-interval", type=_positive_float, default=2.0, help=argparse.SUPPRESS
    )
    # For tests only: a scaled quota, so a demo runs in a fraction of a second.
    demo.add_argument(
        "--rate-limit", type=_positive_int, default=_QUOTA.rate_limit, help=argparse.SUPPRESS
    )
    demo.add_argument(
        "--rate-period", type=_positive_float, default=_QUOTA.rate_period, help=argparse.SUPPRESS
    )
    return parser


def _add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="JSONL (one push object a line) or CSV (a header of field names); - for stdin",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "jsonl", "csv"),
        default="auto",
        help="default: by the file's extension, else by its first line",
    )


def _add_quota_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=_QUOTA.rate_limit,
        help=f"launches per period (default: {_QUOTA.rate_limit})",
    )
    parser.add_argument(
        "--rate-period",
        type=_positive_float,
        default=_QUOTA.rate_period,
        metavar="SECONDS",
        help=f"the quota's period (default: {_QUOTA.rate_period:g})",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _parse_fault(spec: str) -> Fault:
    """``--fault`` text to a ``testing.Fault``: ``Fault.parse`` reads it (syntax in the epilog)."""
    try:
        return Fault.parse(spec)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(
            f"bad fault {spec!r}: {exc.message} (see fake-server --help)"
        ) from None


# -- output ------------------------------------------------------------------------------


class _Output:
    """Everything the command prints goes through here, with every known key value masked."""

    def __init__(self, *, plain: bool, secrets: Iterable[str]) -> None:
        # Longest first, so a key that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.rich: bool = not plain and _rich_available()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def echo(self, text: str = "", *, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        print(self.redact(text), file=stream, flush=True)

    def error(self, text: str) -> None:
        self.echo(f"error: {text}", err=True)

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        if self.rich:
            from rich import box
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            table = Table(title=title, box=box.SIMPLE, show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column(justify="right")
            for name, value in rows:
                table.add_row(Text(name), Text(self.redact(value)))
            Console(file=sys.stdout, highlight=False).print(table)
            return
        width = max((len(name) for name, _ in rows), default=0)
        self.echo(title)
        for name, value in rows:
            self.echo(f"  {name:<{width}}  {value}")

    def progress(self, description: str, tally: _Tally, interval: float) -> _ProgressView:
        if self.rich and _stderr_is_terminal():
            return _RichProgress(description, tally)
        return _PlainProgress(self, description, tally, interval)


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


# -- progress ----------------------------------------------------------------------------


@attrs.define
class _Tally:
    """Counts of a running batch, and its rate sampled every ``_SAMPLE_EVERY`` seconds."""

    total: int | None
    quota_per_second: float
    started: float = attrs.field(factory=time.monotonic)
    last: float = attrs.field(factory=time.monotonic)  # when the latest outcome came
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    ambiguous: int = 0
    from_journal: int = 0
    resent_certain: int = 0  # journaled certain failures sent again
    resent_ambiguous: int = 0  # journaled ambiguous ones, under --retry-ambiguous
    failures: list[str] = attrs.field(factory=list)
    _samples: deque[tuple[float, int]] = attrs.field(factory=deque)  # (time, sent)
    _halfway: tuple[float, int] | None = None  # (time, sent) when half the pushes were done

    @property
    def sent(self) -> int:
        """Outcomes that went to the wire in this run (not replayed from a journal)."""
        return self.done - self.from_journal

    def record(self, outcome: Outcome, line: int | None) -> None:
        self.last = time.monotonic()
        self.done += 1
        self.from_journal += outcome.from_journal
        if outcome.resent_after is not None:
            if outcome.resent_after.ambiguous:
                self.resent_ambiguous += 1
            else:
                self.resent_certain += 1
        if self._halfway is None and self.total is not None and 2 * self.done >= self.total:
            self._halfway = (self.last, self.sent)
        if outcome.ok:
            self.succeeded += 1
            return
        self.failed += 1
        self.ambiguous += outcome.ambiguous
        if len(self.failures) < _LISTED_FAILURES:
            where = f"line {line}" if line is not None else f"push {outcome.index}"
            note = " (ambiguous: it may have gone out)" if outcome.ambiguous else ""
            self.failures.append(f"{where}: {outcome.error}{note}")

    def sample(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self.sent))
        while now - self._samples[0][0] > _RATE_WINDOW:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Pushes sent per second over the last ``_RATE_WINDOW`` seconds of samples.

        The first sample is taken a tick after the start, so the limiter's initial burst,
        which goes out at once, does not make the rate look higher than the quota allows.
        """
        if len(self._samples) < 2:
            return None
        (then, sent_then), (now, sent_now) = self._samples[0], self._samples[-1]
        if now - then < _SHORTEST_SPAN:  # a few samples would mostly measure their jitter
            return None
        return (sent_now - sent_then) / (now - then)

    def achieved_rate(self) -> str:
        """The steady rate over the second half of the run, past the limiter's initial burst
        (which would make a short run look faster than the quota allows)."""
        if self._halfway is None or self.last - self._halfway[0] < _SHORTEST_SPAN:
            return "- (the run was too short to measure it)"
        then, sent_then = self._halfway
        return self.describe_rate((self.sent - sent_then) / (self.last - then))

    def describe_rate(self, rate: float | None) -> str:
        quota = f"{self.quota_per_second:g}/s quota"
        if rate is None:
            return f"?/s of {quota}"
        return f"{rate:.1f}/s of {quota} ({rate / self.quota_per_second:.1%})"

    def eta(self, rate: float | None) -> str:
        if self.total is None or not rate:
            return "?"
        return _duration(max(0, self.total - self.done) / rate)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _ProgressView(Protocol):
    interval: float  # seconds between redraws

    def update(self) -> None: ...

    def close(self) -> None: ...


class _PlainProgress:
    """A line on stderr every ``interval`` seconds: for logs, pipes and CI."""

    def __init__(self, out: _Output, description: str, tally: _Tally, interval: float) -> None:
        self._out = out
        self._description = description
        self._tally = tally
        self.interval = interval

    def update(self) -> None:
        tally = self._tally
        rate = tally.rate()
        of = f"/{tally.total}" if tally.total is not None else ""
        self._out.echo(
            f"{self._description}: {tally.done}{of} done, {tally.failed} failed, "
            f"{tally.describe_rate(rate)}, ETA {tally.eta(rate)}",
            err=True,
        )

    def close(self) -> None:
        self.update()


class _RichProgress:
    """rich's progress bar on stderr: done, failed, current rate against the quota, ETA."""

    interval = _SAMPLE_EVERY

    def __init__(self, description: str, tally: _Tally) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._tally = tally
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(file=sys.stderr),
            auto_refresh=False,  # redrawn from the event loop: no thread
        )
        self._task = self._progress.add_task(
            description, total=tally.total, failed=0, rate=tally.describe_rate(None), eta="?"
        )
        self._progress.start()

    def update(self) -> None:
        tally = self._tally
        rate = tally.rate()
        self._progress.update(
            self._task,
            completed=tally.done,
            failed=tally.failed,
            rate=tally.describe_rate(rate),
            eta=tally.eta(rate),
            refresh=True,
        )

    def close(self) -> None:
        self.update()
        self._progress.stop()


async def _tick(view: _ProgressView, tally: _Tally) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + view.interval
    while True:
        await asyncio.sleep(_SAMPLE_EVERY)
        tally.sample()
        if loop.time() >= due:
            view.update()
            due += view.interval


async def _run_stream(
    client: WebPushClient,
    pushes: Iterable[PushItem],
    view: _ProgressView,
    tally: _Tally,
    *,
    concurrency: int,
    journal: str | None = None,
    retry_ambiguous: bool = False,
    lines: dict[int, int] | None = None,
) -> None:
    """Stream ``pushes`` through the client, counting each outcome into ``tally``."""
    ticker = asyncio.create_task(_tick(view, tally))
    outcomes = client.stream(
        pushes, concurrency=concurrency, journal=journal, retry_ambiguous=retry_ambiguous
    )
    try:
        async with contextlib.aclosing(outcomes):  # stops the workers if we stop early
            async for outcome in outcomes:
                where = lines.pop(outcome.index, None) if lines is not None else None
                tally.record(outcome, where)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        tally.sample()
        view.close()


def _summary_rows(tally: _Tally) -> list[tuple[str, str]]:
    rows = [
        ("pushes", str(tally.done) + (f" of {tally.total}" if tally.total is not None else "")),
        ("succeeded", str(tally.succeeded)),
        ("failed", str(tally.failed)),
        ("  of which ambiguous", str(tally.ambiguous)),
    ]
    if tally.from_journal:
        rows.append(("replayed from the journal", str(tally.from_journal)))
    if tally.resent_certain:
        rows.append(("resent: certain failures", str(tally.resent_certain)))
    if tally.resent_ambiguous:
        rows.append(("resent: ambiguous (--retry-ambiguous)", str(tally.resent_ambiguous)))
    rows += [
        ("elapsed", f"{tally.last - tally.started:.1f} s"),
        ("achieved rate (2nd half)", tally.achieved_rate()),
    ]
    return rows


def _print_failures(out: _Output, tally: _Tally) -> None:
    if tally.resent_certain:
        out.echo(
            f"{tally.resent_certain} push(es) had failed for certain in an earlier run (nothing "
            "of them went out: e.g. a 401, a 400 or a refused connection), so they were sent again"
        )
    if not tally.failed:
        return
    out.echo("failures:")
    for failure in tally.failures:
        out.echo(f"  {failure}")
    if tally.failed > len(tally.failures):
        out.echo(f"  ... and {tally.failed - len(tally.failures)} more (see the journal)")
    if tally.ambiguous:
        out.echo(
            f"{tally.ambiguous} ambiguous push(es) may have gone out: they are not resent "
            "unless you rerun with the same --journal and --retry-ambiguous"
        )


# -- push files ----------------------------------------------------------------------------


@attrs.frozen
class _Line:
    """One line (JSONL) or row (CSV) of a push file: a push, or why it is not one."""

    number: int
    push: WebPush | None = None
    campaign_id: int | None = None
    error: str | None = None


@contextlib.contextmanager
def _open_file(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdin
        return
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        yield handle


def _read_lines(handle: IO[str], path: str, fmt: str) -> Iterator[_Line]:
    """Parse a push file lazily, one line at a time: memory does not grow with its length."""
    lines: Iterator[str] = iter(handle)
    if fmt == "auto":
        suffix = os.path.splitext(path)[1].lower()
        if suffix == ".csv":
            fmt = "csv"
        elif suffix in (".jsonl", ".ndjson", ".json"):
            fmt = "jsonl"
        else:  # stdin or another name: JSONL if the first non-blank line is an object
            peeked: list[str] = []
            for text in lines:
                peeked.append(text)
                if text.strip():
                    break
            fmt = "jsonl" if peeked and peeked[-1].lstrip().startswith("{") else "csv"
            lines = itertools.chain(peeked, lines)
    return _read_csv(lines) if fmt == "csv" else _read_jsonl(lines)


def _read_jsonl(lines: Iterable[str]) -> Iterator[_Line]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            yield _Line(number, error=f"not valid JSON: {reason}")
            continue
        yield _parse_record(number, data)


def _read_csv(lines: Iterable[str]) -> Iterator[_Line]:
    reader = csv.DictReader(lines)  # surplus cells go under the key None
    try:
        if reader.fieldnames is None:  # reads the header: an empty file has no rows
            return
    except csv.Error as exc:
        yield _Line(reader.line_num, error=f"not valid CSV: {exc}")
        return
    while True:
        start = reader.line_num + 1  # a quoted cell may span lines: report where a row starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Line(start, error=f"not valid CSV: {exc}")
            continue
        if None in row:
            yield _Line(start, error="the row has more cells than the header has columns")
            continue
        yield _parse_record(start, _from_csv_row(row))


def _from_csv_row(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row to the object a JSONL line would hold. An empty cell is an absent field."""
    data: dict[str, Any] = {k: v for k, v in row.items() if v}
    attribute = data.pop(_CSV_TARGET_COLUMNS[0], None)
    values = data.pop(_CSV_TARGET_COLUMNS[1], None)
    if attribute is not None or values is not None:
        data[TARGET_KEY] = target_to_dict(
            attribute, values.split(_CSV_VALUE_SEPARATOR) if values is not None else None
        )
    for key in (INCLUDE_UNENGAGED_WIRE_KEY, INCLUDE_UNENGAGED_PYTHON_KEY):
        flag = data.get(key)
        if isinstance(flag, str) and flag.strip().lower() in _TRUE | _FALSE:
            data[key] = flag.strip().lower() in _TRUE
    return data


def _parse_record(number: int, data: Any) -> _Line:
    campaign_id = None
    if isinstance(data, dict) and _CAMPAIGN_ID_KEY in data:
        data = dict(data)
        raw = data.pop(_CAMPAIGN_ID_KEY)
        if isinstance(raw, int) and not isinstance(raw, bool):
            campaign_id = raw
        elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
            campaign_id = int(raw)
        elif raw is not None:
            return _Line(number, error=f"{_CAMPAIGN_ID_KEY}: must be a whole number")
    try:
        push = push_from_dict(data)
    except ValidationError as exc:
        return _Line(number, error=str(exc))
    return _Line(number, push=push, campaign_id=campaign_id)


def _check_partner(line: _Line, partner_id: str | None) -> _Line:
    if line.push is not None and line.push.partner_id is None and partner_id is None:
        return _Line(
            line.number,
            error="partner_id: is required: put it on the line, or pass --partner-id or set "
            "INSIDER_PARTNER_ID",
        )
    return line


# -- commands ------------------------------------------------------------------------------


@attrs.frozen
class _Credentials:
    api_key: str = attrs.field(repr=False)
    partner_id: str | None
    base_url: str


def _credentials(args: argparse.Namespace) -> _Credentials:
    api_key = args.api_key or os.environ.get("INSIDER_API_KEY")
    if not api_key:
        raise _UsageError("no API key: pass --api-key or set INSIDER_API_KEY")
    return _Credentials(
        api_key=api_key,
        partner_id=args.partner_id or os.environ.get("INSIDER_PARTNER_ID") or None,
        base_url=args.base_url or os.environ.get("INSIDER_BASE_URL") or DEFAULT_BASE_URL,
    )


def _push_from_args(args: argparse.Namespace) -> WebPush:
    target = None
    if args.target_attribute is not None or args.target_values is not None:
        target = Target(args.target_attribute, args.target_values)
    ttl: Any = args.ttl
    if ttl.isascii() and ttl.isdigit():
        ttl = int(ttl)  # anything else reaches the model as text, which refuses it by name
    return WebPush(
        title=args.title,
        description=args.description,
        image=args.image,
        link=args.link,
        ttl=ttl,
        banner=args.banner,
        include_unengaged=args.include_unengaged,
        language=args.language,
        target=target,
    )


async def _cmd_send(args: argparse.Namespace, out: _Output) -> int:
    push = _push_from_args(args)  # a bad field stops here, before any connection
    creds = _credentials(args)
    if creds.partner_id is None:
        raise _UsageError("no partner id: pass --partner-id or set INSIDER_PARTNER_ID")
    async with WebPushClient(
        creds.api_key, partner_id=creds.partner_id, base_url=creds.base_url
    ) as client:
        result = await client.send(push, campaign_id=args.campaign_id, api_version=args.api_version)
    out.echo(str(result.campaign_id))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace, out: _Output) -> int:
    good = bad = 0
    with _open_file(args.file) as handle:
        for line in _read_lines(handle, args.file, args.format):
            if line.error is None:
                good += 1
            else:
                bad += 1
                out.echo(f"line {line.number}: {line.error}")
    out.echo(f"{good + bad} pushes checked: {good} valid, {bad} invalid")
    return EXIT_FAILED if bad else EXIT_OK


def _prevalidate(args: argparse.Namespace, out: _Output, partner_id: str | None) -> int:
    """Check a whole file before sending any of it; return its number of pushes."""
    total = 0
    bad: list[_Line] = []
    with _open_file(args.file) as handle:
        for line in _read_lines(handle, args.file, args.format):
            line = _check_partner(line, partner_id)
            if line.error is None:
                total += 1
            else:
                bad.append(line)
                if len(bad) > _LISTED_FAILURES:
                    break
    if bad:
        for line in bad[:_LISTED_FAILURES]:
            out.error(f"line {line.number}: {line.error}")
        more = " (and maybe more: run validate)" if len(bad) > _LISTED_FAILURES else ""
        raise _UsageError(f"{args.file} has bad lines{more}; nothing was sent")
    return total


async def _cmd_batch(args: argparse.Namespace, out: _Output) -> int:
    creds = _credentials(args)
    from_stdin = args.file == "-"
    total = None if from_stdin else _prevalidate(args, out, creds.partner_id)
    if args.journal is None:
        out.echo("note: no --journal, so an interrupted run cannot be resumed", err=True)
    tally = _Tally(total, args.rate_limit / args.rate_period)
    lines: dict[int, int] = {}  # push index -> file line, for the pushes in flight
    stopped_at: list[_Line] = []
    interrupted = _GracefulInterrupt(out)

    def pushes(handle: IO[str]) -> Iterator[PushItem]:
        for index, line in enumerate(_read_lines(handle, args.file, args.format)):
            if interrupted.requested:
                return
            line = _check_partner(line, creds.partner_id)
            if line.push is None:
                stopped_at.append(line)  # only from stdin: a file was checked in full
                return
            lines[index] = line.number
            yield line.push if line.campaign_id is None else (line.campaign_id, line.push)

    async with WebPushClient(
        creds.api_key,
        partner_id=creds.partner_id,
        base_url=creds.base_url,
        rate_limit=args.rate_limit,
        rate_period=args.rate_period,
    ) as client:
        with _open_file(args.file) as handle, interrupted:
            view = out.progress("batch", tally, args.progress_interval)
            try:
                await _run_stream(
                    client,
                    pushes(handle),
                    view,
                    tally,
                    concurrency=args.concurrency,
                    journal=args.journal,
                    retry_ambiguous=args.retry_ambiguous,
                    lines=lines,
                )
            finally:
                out.table("batch summary", _summary_rows(tally))
                _print_failures(out, tally)
    if stopped_at:
        line = stopped_at[0]
        raise _UsageError(
            f"line {line.number}: {line.error}; the batch stopped there: the pushes before "
            "it were sent, none after it"
        )
    if interrupted.requested:
        out.echo("stopped by Ctrl-C: run the same command again to send the rest", err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK if tally.failed == 0 else EXIT_FAILED


class _GracefulInterrupt:
    """While active, the first Ctrl-C stops taking new pushes and lets the ones already
    taken finish, so that none is cut off on the wire (and left ambiguous); a second Ctrl-C
    cancels at once."""

    def __init__(self, out: _Output) -> None:
        self._out = out
        self.requested = False
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> _GracefulInterrupt:
        self._task = asyncio.current_task()
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C cancels at once
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    def _on_sigint(self) -> None:
        if self.requested:
            assert self._task is not None
            self._task.cancel()
            return
        self.requested = True
        self._out.echo(
            "stopping: finishing the pushes already taken (Ctrl-C again to abandon them; "
            "any already on the wire would then be ambiguous)",
            err=True,
        )


def _demo_pushes(count: int) -> Iterator[WebPush]:
    for i in range(count):
        yield WebPush(
            title=f"Demo push {i + 1}",
            description="Sent by insider-webpush demo to a local fake server.",
            image="https://example.com/icon.png",
            link="https://example.com/",
            ttl=3600,
        )


async def _cmd_demo(args: argparse.Namespace, out: _Output) -> int:
    from .testing import FakeInsider

    rate_limit: int = args.rate_limit
    period: float = args.rate_period
    tally = _Tally(args.count, rate_limit / period)
    expected = args.count / tally.quota_per_second
    async with FakeInsider(
        api_key=_DEMO_KEY, partner_id=_DEMO_PARTNER, rate_limit=rate_limit, rate_period=period
    ) as fake:
        out.echo(
            f"demo: {args.count} pushes to an embedded FakeInsider at {fake.base_url}, through "
            f"the real client at the quota of {rate_limit} per {period:g} s "
            f"(about {expected:.0f} s)",
            err=True,
        )
        async with WebPushClient(
            _DEMO_KEY,
            partner_id=_DEMO_PARTNER,
            base_url=fake.base_url,
            rate_limit=rate_limit,
            rate_period=period,
        ) as client:
            view = out.progress("demo", tally, args.progress_interval)
            await _run_stream(
                client, _demo_pushes(args.count), view, tally, concurrency=args.concurrency
            )
        busiest = fake.max_in_window(period)
        rejected = fake.count(status=429)
    rows = _summary_rows(tally)
    rows += [
        (f"most requests in any {period:g} s window", f"{busiest} (quota {rate_limit})"),
        ("429s from the server", str(rejected)),
    ]
    out.table("demo summary", rows)
    _print_failures(out, tally)
    return EXIT_OK if tally.failed == 0 and busiest <= rate_limit else EXIT_FAILED


async def _cmd_fake_server(args: argparse.Namespace, out: _Output) -> int:
    from .testing import FakeInsider

    faults: list[Fault] = args.fault
    api_key = os.environ.get("INSIDER_API_KEY") or _FAKE_DEFAULT_KEY
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, stop.set)
    async with FakeInsider(
        api_key=api_key,
        partner_id=args.partner_id,
        rate_limit=args.rate_limit,
        rate_period=args.rate_period,
        host=args.host,
        port=args.port,
        faults=faults,
        seed=args.seed,
    ) as fake:
        key_source = (
            "the key in INSIDER_API_KEY"
            if api_key != _FAKE_DEFAULT_KEY
            else f"the key {_FAKE_DEFAULT_KEY!r} (set INSIDER_API_KEY to choose one)"
        )
        out.echo(f"FakeInsider listening on {fake.base_url}")
        out.echo(
            f"  accepts {key_source} and partner id {args.partner_id}; quota "
            f"{args.rate_limit} per {args.rate_period:g} s; {len(faults)} fault rule(s)"
        )
        out.echo(f"  export INSIDER_BASE_URL={fake.base_url}")
        out.echo("  Ctrl-C to stop")
        await stop.wait()
        out.echo(
            f"stopped: {len(fake.requests)} requests, {len(fake.launches)} launches, "
            f"{fake.count(status=429)} answered 429"
        )
    return EXIT_OK


# -- entry point ---------------------------------------------------------------------------


def _secrets_in(argv: Sequence[str]) -> list[str]:
    """Every API key value the user may have given, to be masked in anything printed."""
    found = [os.environ.get("INSIDER_API_KEY", "")]
    for i, arg in enumerate(argv):
        if arg == "--api-key" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--api-key="):
            found.append(arg.partition("=")[2])
    return found


async def _run(args: argparse.Namespace, out: _Output) -> int:
    if args.command == "send":
        return await _cmd_send(args, out)
    if args.command == "batch":
        return await _cmd_batch(args, out)
    if args.command == "demo":
        return await _cmd_demo(args, out)
    return await _cmd_fake_server(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = _Output(plain=False, secrets=_secrets_in(argv))
    try:
        try:
            args = _build_parser().parse_args(argv)
        except SystemExit as exc:  # --help or --version printed what was asked
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        out.rich = out.rich and not args.plain
        if args.verbose:
            logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
            logging.getLogger("insider_webpush").setLevel(logging.DEBUG)
        if args.command == "validate":
            return _cmd_validate(args, out)
        return asyncio.run(_run(args, out))
    except _UsageError as exc:
        if exc.usage:
            out.echo(exc.usage.rstrip(), err=True)
        out.error(exc.message)
        return EXIT_USAGE
    except ValidationError as exc:
        out.error(f"{exc.field}: {exc.message}")
        return EXIT_USAGE
    except JournalError as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        out.error(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})")
        return EXIT_USAGE
    except OSError as exc:  # e.g. a journal in a folder that does not exist
        out.error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return EXIT_USAGE
    except InsiderError as exc:
        note = " (ambiguous: the push may have gone out; check before resending)"
        out.error(f"{exc}{note if exc.ambiguous else ''}")
        return EXIT_FAILED
    except (KeyboardInterrupt, asyncio.CancelledError):
        out.echo("interrupted (a batch resumes when rerun with the same --journal)", err=True)
        return EXIT_INTERRUPTED
