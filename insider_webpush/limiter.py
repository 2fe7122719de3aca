"""Keep one API key under its quota: never more than `rate_limit` request starts in any
sliding window of `rate_period` seconds, while sustaining at least 99 % of that rate.

Why not `AsyncLimiter(rate_limit, rate_period)`: a leaky bucket of capacity `B` draining
`r` per second admits up to `floor(B + r*T)` starts in any window of `T` seconds, so
6000/60 lets ~12 000 through in the first minute. We use a small `B` and
`r = (rate_limit + 1 - B) / (rate_period * (1 + margin))`: then `B + r*rate_period` stays
below `rate_limit + 1` and no window holds more than `rate_limit`. The margin (0.5 % of the
period by default) absorbs the jitter between a start here and its arrival at Insider, who
counts arrivals. A start is the moment [`Limiter.acquire`][insider_webpush.limiter.Limiter.acquire]
returns; the client calls it once the connection is ready, immediately before the request's
first byte is written ([`insider_webpush.transport`][insider_webpush.transport]), so a start
is the moment the request goes on the wire.

Limiters are per event loop and per process (aiolimiter's are); for several processes or
hosts use [`RedisLimiter`][insider_webpush.redis_limiter.RedisLimiter].
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import weakref
from typing import Protocol, runtime_checkable

from aiolimiter import AsyncLimiter

from .errors import RateLimitError
from .outcomes import Stage, verdict_for_stage

__all__ = [
    "DEFAULT_MARGIN",
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
    """The in-process limiter: aiolimiter's leaky bucket sized for a hard window bound.

    Guarantee: at most `rate_limit` calls of `acquire` return in any window of
    `rate_period` seconds; under steady demand it lets through
    `(rate_limit + 1 - burst) / (1 + margin)` per period, >= 99 % for quotas of 200 and up.
    It belongs to one event loop; the client shares one per loop, API key and operation
    ([`shared_limiter`][insider_webpush.limiter.shared_limiter]).

    Args:
        rate_limit: Request starts per window: a whole number, at least 1.
        rate_period: The window, in seconds: finite and above 0.
        burst: How many may start at once: 1 to `rate_limit`; None (the default) takes 0.4 %
            of `rate_limit`, at least 2 (24 for 6000).
        margin: The fraction of `rate_period` kept for arrival jitter, between 0 and 1
            (default [`DEFAULT_MARGIN`][insider_webpush.limiter.DEFAULT_MARGIN], 0.5 %).

    Attributes:
        rate_limit: As given.
        rate_period: As given, a float.
        burst: As given, or the default's value.
        margin: As given.

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
        if burst is None:
            burst = max(min(2, rate_limit), int(rate_limit * _BURST_FRACTION))
        if not 1 <= burst <= rate_limit:
            raise ValueError(f"burst must be between 1 and rate_limit, got {burst!r}")
        self.rate_limit = rate_limit
        self.rate_period = float(rate_period)
        self.burst = burst
        self.margin = margin
        rate_per_second = (rate_limit + 1 - burst) / (rate_period * (1 + margin))
        self._bucket = AsyncLimiter(burst, burst / rate_per_second)
        self._resume_at = -math.inf
        self._penalized: set[asyncio.Future[None]] = set()

    @property
    def rate_per_second(self) -> float:
        """The sustained rate this limiter lets through."""
        return self._bucket.max_rate / self._bucket.time_period

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
        while True:
            pause = self._resume_at - loop.time()
            if pause > 0:  # a 429 paused this key
                if pause > max_pause:
                    raise paused_error(pause, max_pause)
                await asyncio.sleep(pause)
                continue
            if self._bucket.has_capacity():
                await self._bucket.acquire()  # at once
            elif not await self._queue_for_bucket(loop):
                continue  # a 429 came in while we queued: look at the pause again
            # A 429 may have come in while we queued; this grant is then spent unused
            # rather than starting a request inside the pause.
            if self._resume_at <= loop.time():
                return

    async def _queue_for_bucket(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait for the bucket, or for :meth:`penalize`; True when the bucket granted."""
        woken = loop.create_future()
        self._penalized.add(woken)
        granted = asyncio.ensure_future(self._bucket.acquire())
        try:
            await asyncio.wait((granted, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._penalized.discard(woken)
            if not granted.done():
                granted.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await granted
        return not granted.cancelled() and granted.exception() is None

    def penalize(self, seconds: float) -> None:
        """Let no request start for `seconds` from now (the server said 429).

        Requests already queued look at the pause at once.

        Args:
            seconds: The pause, in seconds; 0 or less does nothing, and a pause never ends
                earlier than one already set.
        """
        if seconds > 0:
            now = asyncio.get_running_loop().time()
            self._resume_at = max(self._resume_at, now + seconds)
            for woken in self._penalized:  # queued waiters look at the pause now
                if not woken.done():
                    woken.set_result(None)

    def paused_for(self) -> float:
        """Seconds until a pause set by `penalize` ends; 0 when not paused."""
        return max(0.0, self._resume_at - asyncio.get_running_loop().time())

    def __repr__(self) -> str:
        return (
            f"SlidingWindowLimiter(rate_limit={self.rate_limit}, rate_period={self.rate_period}, "
            f"burst={self.burst}, margin={self.margin})"
        )


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
        f"the key is paused by an earlier 429 for {pause:.1f} s more, longer than the "
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

_registry: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[LimiterKey, SlidingWindowLimiter]
] = weakref.WeakKeyDictionary()


def shared_limiter(key: LimiterKey, rate_limit: int, rate_period: float) -> SlidingWindowLimiter:
    """The one limiter of this event loop for `key`; made on first use.

    Every client of one key and operation shares it, so they share the quota. The first
    client's `rate_limit`/`rate_period` win; a client asking for others is told in the log.

    Args:
        key: `(base_url, key_fingerprint, quota group)`.
        rate_limit: Request starts per window, for a new limiter.
        rate_period: The window in seconds, for a new limiter.

    Returns:
        The limiter.

    Raises:
        RuntimeError: No event loop is running.
    """
    per_loop = _registry.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = per_loop[key] = SlidingWindowLimiter(rate_limit, rate_period)
    elif (limiter.rate_limit, limiter.rate_period) != (rate_limit, float(rate_period)):
        logger.warning(
            "%s already has a shared limiter of %d per %ss; keeping it, not %d per %ss",
            key[2],
            limiter.rate_limit,
            limiter.rate_period,
            rate_limit,
            rate_period,
        )
    return limiter
