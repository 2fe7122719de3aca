"""Keep one API key under its quota: never more than `rate_limit` request starts in any
sliding window of `rate_period` seconds, while sustaining at least 99 % of that rate.

How: GCRA (the generic cell rate algorithm, a leaky bucket counted in time). With the emission
interval `T = rate_period * (1 + margin) / (rate_limit + 1 - burst)` and the tolerance
`tau = (burst - 1) * T`, a start at time `now` is allowed when `TAT - tau <= now`, and then
sets `TAT = max(TAT, now) + T`. Any window of `W` seconds then holds fewer than
`burst + W / T` starts; for `W = rate_period` that is below
`burst + (rate_limit + 1 - burst) / (1 + margin) <= rate_limit + 1`, so at most `rate_limit`.
The margin (0.5 % of the period by default, and at least 10 ms) absorbs the jitter between a
start here and its arrival at Insider, who counts arrivals. A start is the moment
[`Limiter.acquire`][insider_webpush.limiter.Limiter.acquire] returns: the check is made at
that moment, so a waiter woken late by a busy event loop is counted when it really starts.
The client calls it once the connection is ready, immediately before the request's first
byte is written ([`insider_webpush.transport`][insider_webpush.transport]).

Why not `AsyncLimiter(rate_limit, rate_period)` from aiolimiter: with a capacity of
`rate_limit` it lets ~12 000 through in the first minute of 6000/60, and an aiolimiter
limiter belongs to the event loop it was first used on (aiolimiter #292), while a process
may run several (`asyncio.run` per Celery task, a thread with its own loop, the sync client's
background loop). This limiter is guarded by a lock and wakes waiters on their own loops, so
one limiter holds one key's quota for the whole process. Waiters are served first come,
first served; only the first watches the clock, so a thousand waiters cost one timer.
For several processes or hosts use [`RedisLimiter`][insider_webpush.redis_limiter.RedisLimiter].
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import threading
from typing import Protocol, runtime_checkable

from .errors import RateLimitError
from .outcomes import Stage, verdict_for_stage

__all__ = [
    "DEFAULT_MARGIN",
    "MARGIN_FLOOR",
    "Limiter",
    "LimiterKey",
    "SlidingWindowLimiter",
    "key_fingerprint",
    "paused_error",
    "shared_limiter",
]

logger = logging.getLogger("insider_webpush")

DEFAULT_MARGIN = 0.005
"""The margin, as a fraction of `rate_period`, kept for the jitter between a start and its
arrival at Insider (0.5 %: 0.3 s of a minute)."""
MARGIN_FLOOR = 0.01
"""The least margin, in seconds, whatever the period: that jitter is absolute (a busy event
loop, a network hop), and 0.5 % of a period of a second or two, as scaled-down tests use, is
less than one busy loop iteration. It changes nothing for periods of 2 s and more."""
# B: 24 of 6000. A waiter woken late by up to (B - 1) / r seconds (a busy event loop) loses
# no throughput; a larger B would cost sustained rate, since B + r * period is fixed.
_BURST_FRACTION = 0.004


@runtime_checkable
class Limiter(Protocol):
    """What the client needs of a rate limiter.

    Any object with these three methods will do (the check is structural, at run time too):
    `WebPushClient(limiter=...)` takes one for launch v2.
    [`SlidingWindowLimiter`][insider_webpush.limiter.SlidingWindowLimiter] and
    [`RedisLimiter`][insider_webpush.redis_limiter.RedisLimiter] are the SDK's.
    """

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        """Wait until one more request may start now.

        Args:
            max_pause: The longest pause set by `penalize` to wait out, in seconds
                (default: any).

        Raises:
            RateLimitError: A pause has more than `max_pause` seconds to run, whether it was
                set before the call or while it waited; nothing may start.
        """

    def penalize(self, seconds: float) -> None:
        """Let no request start for `seconds` from now (the server said 429).

        Args:
            seconds: The pause, in seconds; 0 or less does nothing, and a pause never ends
                earlier than one already set.
        """

    def paused_for(self) -> float:
        """Seconds until a pause set by `penalize` ends; 0 when not paused."""


class SlidingWindowLimiter:
    """The in-process limiter: GCRA sized for a hard window bound, shared by threads and loops.

    Guarantee: at most `rate_limit` calls of `acquire` return in any window of
    `rate_period` seconds, whatever event loops and threads they run on; under steady demand
    it lets through `(rate_limit + 1 - burst) / (1 + margin)` per period, >= 99 % for quotas
    of 200 and up. The client shares one per process, API key and operation
    ([`shared_limiter`][insider_webpush.limiter.shared_limiter]).

    Args:
        rate_limit: Request starts per window: a whole number, at least 1.
        rate_period: The window, in seconds: finite and above 0.
        burst: How many may start at once: 1 to `rate_limit`; None (the default) takes 0.4 %
            of `rate_limit`, at least 2 (24 for 6000).
        margin: The fraction of `rate_period` kept for arrival jitter, between 0 and 1
            (default [`DEFAULT_MARGIN`][insider_webpush.limiter.DEFAULT_MARGIN], 0.5 %),
            and never less than [`MARGIN_FLOOR`][insider_webpush.limiter.MARGIN_FLOOR]
            (10 ms) nor more than half the period.

    Attributes:
        rate_limit: As given.
        rate_period: As given, a float.
        burst: As given, or the default's value.
        margin: The margin in effect (`margin`, or the floor's share of the period).

    Raises:
        ValueError: A value is out of its range.
    """

    def __init__(
        self,
        rate_limit: int,
        rate_period: float,
        *,
        burst: int | None = None,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        if isinstance(rate_limit, bool) or not isinstance(rate_limit, int) or rate_limit < 1:
            raise ValueError(f"rate_limit must be a whole number of at least 1, got {rate_limit!r}")
        if not (isinstance(rate_period, int | float) and math.isfinite(rate_period)) or (
            rate_period <= 0
        ):
            raise ValueError(
                f"rate_period must be a positive number of seconds, got {rate_period!r}"
            )
        if not 0 < margin < 1:
            raise ValueError(f"margin must be a fraction of the period in (0, 1), got {margin!r}")
        margin = min(max(margin, MARGIN_FLOOR / rate_period), 0.5)
        if burst is None:
            burst = max(min(2, rate_limit), int(rate_limit * _BURST_FRACTION))
        if not 1 <= burst <= rate_limit:
            raise ValueError(f"burst must be between 1 and rate_limit, got {burst!r}")
        self.rate_limit = rate_limit
        self.rate_period = float(rate_period)
        self.burst = burst
        self.margin = margin
        # GCRA: the emission interval T and the tolerance tau = (burst - 1) * T.
        self._interval = rate_period * (1 + margin) / (rate_limit + 1 - burst)
        self._tolerance = (burst - 1) * self._interval
        self._lock = threading.Lock()
        self._tat = -math.inf  # the theoretical arrival time of the next start
        self._resume_at = -math.inf  # the end of a 429's pause
        # The waiters, first come first served; the first one is the head, the only one that
        # watches the clock. Each maps to its loop and the future that wakes it.
        self._queue: dict[object, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self._eligible: set[object] = set()  # waiters woken because room came for them

    @property
    def rate_per_second(self) -> float:
        """The sustained rate this limiter lets through."""
        return 1 / self._interval

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        """Wait until one more request may start now.

        Args:
            max_pause: The longest pause set by `penalize` to wait out, in seconds
                (default: any).

        Raises:
            RateLimitError: A pause has more than `max_pause` seconds to run, whether it was
                set before the call or while it waited; nothing may start.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        with self._lock:
            if not self._queue and self._resume_at <= now and self._tat - self._tolerance <= now:
                self._tat = max(self._tat, now) + self._interval
                return  # the common case: no one waiting, room now
            if (pause := self._resume_at - now) > max_pause:
                raise paused_error(pause, max_pause)
            token = object()
            self._queue[token] = (loop, loop.create_future())
        try:
            await self._wait(token, loop, max_pause)
        finally:
            with self._lock:
                self._eligible.discard(token)
                head = next(iter(self._queue), None) is token
                if self._queue.pop(token, None) is not None and head and self._queue:
                    _wake(*next(iter(self._queue.values())))  # the next one watches the clock

    async def _wait(self, token: object, loop: asyncio.AbstractEventLoop, max_pause: float) -> None:
        """Wait until a start conforms, as the head of the queue (the one that watches the
        clock) or as a waiter the head woke because room had come for it too.

        Each start is checked and taken at the moment it happens, whoever takes it, so a
        late wake-up (a busy event loop) is counted when it really starts. When a start
        leaves room for more, the waiters behind are woken together and may all start in
        the next loop iteration: a busy loop does not cap the rate at one start an
        iteration.
        """
        while True:
            now = loop.time()
            with self._lock:
                eligible = token in self._eligible
                self._eligible.discard(token)
                if (pause := self._resume_at - now) > max_pause:
                    raise paused_error(pause, max_pause)
                head = next(iter(self._queue)) is token
                wait = self._tat - self._tolerance - now
                if (head or eligible) and pause <= 0 and wait <= 0:
                    self._tat = max(self._tat, now) + self._interval
                    del self._queue[token]
                    self._wake_behind(now)
                    return
                woken = loop.create_future()  # set by the head, a start, or penalize
                self._queue[token] = (loop, woken)
            if not head:
                await woken
                continue
            timer = loop.call_at(now + (pause if pause > 0 else wait), _wake, loop, woken)
            try:
                await woken
            finally:
                timer.cancel()

    def _wake_behind(self, now: float) -> None:
        """After a start: wake as many waiters as could start `now` too (each checks again
        when it runs), and always the head. Called with the lock held."""
        queue = self._queue
        if not queue:
            return
        room = 1
        if (slack := now - (self._tat - self._tolerance)) >= 0:
            room = int(slack / self._interval) + 1
        for token, (loop, woken) in itertools.islice(queue.items(), room):
            self._eligible.add(token)
            _wake(loop, woken)

    def penalize(self, seconds: float) -> None:
        """Let no request start for `seconds` from now (the server said 429).

        Every waiter, on any loop or thread, looks at the pause at once. After it, starts
        resume one interval apart, with no burst.

        Args:
            seconds: The pause, in seconds; 0 or less does nothing, and a pause never ends
                earlier than one already set.
        """
        if not seconds > 0:
            return
        now = asyncio.get_running_loop().time()
        with self._lock:
            if now + seconds <= self._resume_at:
                return
            self._resume_at = now + seconds
            self._tat = max(self._tat, self._resume_at + self._tolerance)
            for loop, woken in self._queue.values():
                _wake(loop, woken)

    def paused_for(self) -> float:
        """Seconds until a pause set by `penalize` ends; 0 when not paused."""
        return max(0.0, self._resume_at - asyncio.get_running_loop().time())

    def __repr__(self) -> str:
        return (
            f"SlidingWindowLimiter(rate_limit={self.rate_limit}, rate_period={self.rate_period}, "
            f"burst={self.burst}, margin={self.margin})"
        )


def _wake(loop: asyncio.AbstractEventLoop, woken: asyncio.Future[None]) -> None:
    """Wake a waiter from any thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        if not woken.done():
            woken.set_result(None)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_set, woken)


def _set(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def paused_error(pause: float, max_pause: float) -> RateLimitError:
    """What `Limiter.acquire` raises for a pause longer than its `max_pause`.

    Args:
        pause: The pause still to run, in seconds.
        max_pause: The longest pause the caller would wait, in seconds.

    Returns:
        A 429 [`RateLimitError`][insider_webpush.errors.RateLimitError] with `retry_after`
            set to `pause`, not ambiguous: nothing was sent.
    """
    return RateLimitError(
        429,
        f"the key is paused by an earlier throttling answer (a 429, or a statistics 403) for "
        f"{pause:.1f} s more, longer than the "
        f"{max_pause:g} s a send may wait (RetryPolicy.max_retry_after); nothing was sent",
        retry_after=pause,
        ambiguous=verdict_for_stage(Stage.NOT_SENT).ambiguous,  # nothing was sent
    )


def key_fingerprint(api_key: str) -> str:
    """A short, one-way name for an API key: enough to share a quota, useless to an attacker.

    Args:
        api_key: The key.

    Returns:
        The first 16 hex digits of the key's SHA-256.
    """
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


LimiterKey = tuple[str, str, str]
"""What a shared limiter is keyed by: `(base_url, key_fingerprint, quota group)`."""

_registry: dict[LimiterKey, SlidingWindowLimiter] = {}
_registry_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock held by a thread of the parent stays held in the child, whose threads are gone;
    # so are the waiters (they belong to the parent's loops). The limiters keep their state:
    # the parent's starts still count in the child's windows.
    global _registry_lock
    _registry_lock = threading.Lock()
    for limiter in _registry.values():
        limiter._lock = threading.Lock()
        limiter._queue = {}
        limiter._eligible = set()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_limiter(key: LimiterKey, rate_limit: int, rate_period: float) -> SlidingWindowLimiter:
    """The one limiter of this process for `key`; made on first use.

    Every client of one key and operation in the process shares it, whatever event loop or
    thread it runs on, so they share the quota. It is kept for the life of the process (a
    few hundred bytes), so a client made per task still counts the starts of the one before.
    The first client's `rate_limit`/`rate_period` win; a client asking for others is told in
    the log.

    Args:
        key: `(base_url, key_fingerprint, quota group)`.
        rate_limit: Request starts per window, for a new limiter.
        rate_period: The window in seconds, for a new limiter.

    Returns:
        The limiter.
    """
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = SlidingWindowLimiter(rate_limit, rate_period)
            return limiter
    if (limiter.rate_limit, limiter.rate_period) != (rate_limit, float(rate_period)):
        logger.warning(
            "%s already has a shared limiter of %d per %ss; keeping it, not %d per %ss",
            key[2],
            limiter.rate_limit,
            limiter.rate_period,
            rate_limit,
            rate_period,
        )
    return limiter
