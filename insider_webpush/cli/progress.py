"""A running batch's counts and rate, and its progress: a rich bar on a terminal, plain lines
elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import attrs

from ..batch import NotSentError
from ..errors import AuthenticationError, InsiderError
from . import output
from ._common import LISTED_FAILURES
from .output import Output

if TYPE_CHECKING:
    from ..batch import Outcome, PushItem
    from ..client import WebPushClient

_RATE_WINDOW = 5.0  # seconds of recent outcomes the "current rate" is measured over
_SAMPLE_EVERY = 0.2  # seconds between rate samples, and between progress bar redraws
_SHORTEST_SPAN = 1.0  # seconds of samples a rate is measured over, at least


@attrs.define
class Tally:
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
    not_sent: int = 0  # after a 401 stopped the batch
    stopped: int = 0  # taken, not sent: Ctrl-C or SIGTERM came first
    refused: InsiderError | None = None  # the first 401, which stops the batch
    # The first LISTED_FAILURES failures by line: a max-heap of (-line, text).
    _failures: list[tuple[int, str]] = attrs.field(factory=list)
    _samples: deque[tuple[float, int]] = attrs.field(factory=deque)  # (time, sent)
    _halfway: tuple[float, int] | None = None  # (time, sent) when half the pushes were done
    on_failure: Callable[[Outcome, int | None], None] | None = None
    on_success: Callable[[Outcome], None] | None = None

    @property
    def sent(self) -> int:
        """Outcomes that went to the wire in this run (not replayed from a journal)."""
        return self.done - self.from_journal - self.not_sent - self.stopped

    @property
    def failures(self) -> list[str]:
        """The listed failures, in line order."""
        return [text for _, text in sorted(self._failures, reverse=True)]

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
            if self.on_success is not None:
                self.on_success(outcome)
            return
        if isinstance(outcome.error, NotSentError) and outcome.error.cause is None:
            # Stopped by Ctrl-C or SIGTERM before it went out: not a failure of the push,
            # and a rerun with the journal sends it.
            self.stopped += 1
            return
        self.failed += 1
        self.ambiguous += outcome.ambiguous
        if self.on_failure is not None:
            self.on_failure(outcome, line)
        if isinstance(outcome.error, AuthenticationError):
            self.refused = self.refused or outcome.error
        if isinstance(outcome.error, NotSentError):
            self.not_sent += 1
            return  # one line says why; listing each would drown the 401 itself
        order = line if line is not None else outcome.index
        where = f"line {line}" if line is not None else f"push {outcome.index}"
        said = str(outcome.error)
        note = " (ambiguous)" if outcome.ambiguous and "may have" in said else ""
        note = note or (" (ambiguous: it may have gone out)" if outcome.ambiguous else "")
        entry = (-order, f"{where}: {said}{note}")
        if len(self._failures) < LISTED_FAILURES:
            heapq.heappush(self._failures, entry)
        elif entry > self._failures[0]:  # an earlier line than the latest one listed
            heapq.heapreplace(self._failures, entry)

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


class ProgressView(Protocol):
    interval: float  # seconds between redraws

    def update(self) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """A line on stderr every ``interval`` seconds: for logs, pipes and CI."""

    def __init__(self, out: Output, description: str, tally: Tally, interval: float) -> None:
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
        if self._tally.done:  # a run that never started (a locked journal) says nothing here
            self.update()


class RichProgress:
    """rich's progress bar on stderr: done, failed, current rate against the quota, ETA."""

    interval = _SAMPLE_EVERY

    def __init__(self, description: str, tally: Tally) -> None:
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


async def tick(view: ProgressView, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + view.interval
    while True:
        await asyncio.sleep(_SAMPLE_EVERY)
        tally.sample()
        if loop.time() >= due:
            view.update()
            due += view.interval


async def run_stream(
    client: WebPushClient,
    pushes: Iterable[PushItem],
    view: ProgressView,
    tally: Tally,
    *,
    concurrency: int,
    journal: str | None = None,
    retry_ambiguous: bool = False,
    lines: dict[int, int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Stream ``pushes`` through the client, counting each outcome into ``tally``."""
    ticker = asyncio.create_task(tick(view, tally))
    outcomes = client.stream(
        pushes,
        concurrency=concurrency,
        journal=journal,
        retry_ambiguous=retry_ambiguous,
        stop=stop,
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


def progress_view(out: Output, description: str, tally: Tally, interval: float) -> ProgressView:
    """A rich bar when rich is on and stderr is a terminal; else a line every ``interval`` s."""
    if out.rich and output.stderr_is_terminal():
        return RichProgress(description, tally)
    return PlainProgress(out, description, tally, interval)
