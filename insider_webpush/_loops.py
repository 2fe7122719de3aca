"""Cleanup that runs when an event loop shuts down, for things that belong to one loop.

An aiohttp session, or a Redis connection, works only in the event loop that made it, and
must be closed in that loop before the loop closes, or Python warns about what was left
open. `on_loop_close` registers a callback with the
running loop that is called while the loop can still run it: when the loop's async
generators are shut down.

`asyncio.run`, `asyncio.Runner` (so pytest-asyncio too) and uvloop's runner call
`loop.shutdown_asyncgens()` after the main task ends and before the loop closes. Each loop
gets one async generator of ours, started in that loop and kept referenced here, whose
`finally` runs the callbacks: `shutdown_asyncgens()` closes it like any other. A loop closed
by hand without `shutdown_asyncgens()` (`loop.close()` alone) never runs them: whoever
registered must notice `loop.is_closed()` and drop what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Callable

__all__ = ["LoopCloseHandle", "on_loop_close"]


class LoopCloseHandle:
    """A callback registered by `on_loop_close`.

    Attributes:
        loop: The event loop whose shutdown calls the callback.
    """

    __slots__ = ("_callback", "_closer", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        closer: _Closer,
        callback: Callable[[], object],
    ) -> None:
        self.loop = loop
        self._closer = closer
        self._callback = callback

    def cancel(self) -> None:
        """Forget the callback (it is not called); safe to call more than once, from any
        thread."""
        with _lock:
            self._closer.callbacks.pop(self, None)


class _Closer:
    """The callbacks of one loop, and the async generator that runs them."""

    __slots__ = ("agen", "callbacks")

    def __init__(self) -> None:
        self.callbacks: dict[LoopCloseHandle, None] = {}  # ordered, and O(1) to cancel
        self.agen: AsyncGenerator[None, None] | None = None


# By loop: the strong reference that keeps each loop's generator alive until the loop's
# shutdown closes it (the loop itself only holds its async generators weakly).
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Closer] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()  # loops of several threads register at once


def on_loop_close(callback: Callable[[], object]) -> LoopCloseHandle:
    """Call `callback` when the running event loop shuts down.

    It is called during `loop.shutdown_asyncgens()`, which `asyncio.run` and `asyncio.Runner`
    call before closing the loop, in that loop: it may return an awaitable (e.g.
    `session.close()`), which is awaited there. Callbacks run one after the other, the last
    registered first; one that raises is reported to the loop's exception handler and the
    others still run. A loop closed without `shutdown_asyncgens()` never calls them.

    Args:
        callback: Called with no arguments; it should not hold a strong reference to an
            object that is meant to be garbage-collected before the loop ends.

    Returns:
        A handle whose `cancel()` forgets the callback.

    Raises:
        RuntimeError: No event loop is running in this thread.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        closer = _closers.get(loop)
        if closer is None:
            _forget_closed_loops()
            closer = _closers[loop] = _Closer()
            new = True
        else:
            new = False
        handle = LoopCloseHandle(loop, closer, callback)
        closer.callbacks[handle] = None
    if new:
        # Started here, in the loop's thread while it runs, so the loop's first-iteration
        # hook adds it to the generators that shutdown_asyncgens() closes.
        agen = _watch(closer)
        with contextlib.suppress(StopIteration):  # it stopped at its `yield`: started
            agen.asend(None).send(None)
        closer.agen = agen
    return handle


def _forget_closed_loops() -> None:
    """Drop the generators of loops closed by hand: their callbacks can never run (the
    loop no longer runs anything), and they keep the loop object alive."""
    for loop in [loop for loop in _closers if loop.is_closed()]:
        del _closers[loop]


async def _watch(closer: _Closer) -> AsyncGenerator[None, None]:
    # The frame must not refer to the loop before the end: _closers maps the loop to it.
    try:
        yield
    finally:
        loop = asyncio.get_running_loop()
        with _lock:
            if _closers.get(loop) is closer:
                del _closers[loop]
        while True:
            with _lock:
                if not closer.callbacks:
                    break
                handle, _ = closer.callbacks.popitem()  # the last registered first
            try:
                result = handle._callback()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                loop.call_exception_handler(
                    {
                        "message": "a callback registered with on_loop_close raised",
                        "exception": exc,
                    }
                )
