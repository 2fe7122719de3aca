"""An event loop whose clock jumps to the next timer instead of sleeping.

A minute of limiter traffic then runs in milliseconds and is exactly repeatable. The clock
starts near 5e6 s, where a float's resolution is ~1e-9 s, so arithmetic that drifts shows up.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

START = 5_000_000.0
TICK = 1e-6  # seconds one loop pass takes; a real pass takes at least this long


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        # Only the loop's own self-pipe is registered: nothing can arrive from outside,
        # so waiting `timeout` is the same as moving the clock by it. Every pass also costs
        # TICK, as on a real clock: code that re-arms a timer a rounding error ahead
        # (aiolimiter does, near 5e6 s) would otherwise spin at one frozen instant.
        events = super().select(0)
        if not events:
            self._loop.advance(max(timeout or 0.0, TICK))
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = START) -> None:
        self._now = start
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(coro: Coroutine[Any, Any, T], start: float = START) -> T:
    """Run ``coro`` to completion on a fresh virtual-clock loop."""
    loop = VirtualClockLoop(start)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
