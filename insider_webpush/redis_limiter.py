"""One API key's quota shared by every process and host that uses it, kept in Redis.

[`RedisLimiter`][insider_webpush.redis_limiter.RedisLimiter] gives the guarantee of
[`SlidingWindowLimiter`][insider_webpush.limiter.SlidingWindowLimiter] (never more than `rate_limit`
request starts in any window of `rate_period` seconds, while sustaining `(rate_limit + 1 - burst) /
(1 + margin)` per period) across every process whose limiter names the same Redis key.
`WebPushClient(..., redis_url="redis://...")` gives each operation one; needs the `redis` extra
(`pip install 'insider-webpush[redis]'`) and a Redis server of version 5 or later.

## How: GCRA, with reservations

One Lua script ([`GCRA_LUA`][insider_webpush.redis_limiter.GCRA_LUA], one `EVALSHA` per acquire)
keeps the key's *theoretical arrival time* TAT, in integer microseconds of Redis's own clock
(`TIME`): hosts' clocks may differ, Redis's is the one every process shares. With the emission
interval `T = ceil(rate_period * (1 + margin) / (rate_limit + 1 - burst))` (the in-process limiter's
rate, rounded to the slower side) and the tolerance `tau = (burst - 1) * T`, a call at Redis time
`now` takes `t = max(TAT, now)`, sets `TAT = t + T`, and answers that its slot begins at `s =
max(now, t - tau)`. The caller sleeps until then and starts.

The bound is on those slot times, not on when slots were reserved. Each `t` is at least
`T` after the previous one, and `t - tau <= s <= t`. The `t` values of the slots that begin
in a window `[a, a + W)` therefore lie in `[a, a + W + tau)`, so `n` of them satisfy
`(n - 1) * T < W + tau`, that is `n < W / T + burst <= (rate_limit + 1 - burst) /
(1 + margin) + burst <= rate_limit + 1`: `n <= rate_limit`. Reservations made long ago
and reservations made just now are the same sequence of `t` values, so how early a process
reserved does not matter.

A start is the moment [`RedisLimiter.acquire`][insider_webpush.redis_limiter.RedisLimiter.acquire]
returns, on the process's own clock. Redis read its clock between the local times a call was sent
and its reply arrived, so each reply brackets the offset between the two clocks; the tightest bounds
of the last two seconds of replies pin it to about the fastest round trip. The reply's "`wait` us
from now" becomes a local deadline the moment it arrives, on the late side of that bracket: a
process never starts before its slot, only late. If every start is at most `D` late, the `s` of the
starts in `[a, a + W)` lie in `(a - D, a + W)` and the count above becomes `n < (W + D) / T +
burst`, still `<= rate_limit` for `D <= margin * rate_period`. So a slot whose start would come more
than `D = margin * rate_period / 2` after the earliest moment it can have begun (a slow reply with
no better bracket, a stalled event loop) is dropped unused and a new one reserved; the other half of
the margin absorbs the jitter between a start and its arrival at Insider. `D` is 0.15 s at 6000 per
minute; at periods scaled down to seconds it is a few milliseconds, and an overloaded event loop
then loses slots, never the bound. A process's first concurrent calls each open a connection and
come back slowly, so their slots are usually dropped: the first moments run below the quota.

Each acquire costs one `EVALSHA` round trip, before it sleeps, plus one more when the process has
heard nothing from Redis for [`STALE_AFTER`][insider_webpush.redis_limiter.STALE_AFTER] seconds by
the time its slot comes (see below). A slot whose holder is cancelled is not given back (refunding
it could let a later window exceed the bound).

## A 429: `RedisLimiter.penalize`

`penalize(seconds)` pauses this process at once and, in the same script, records the pause in Redis
and moves TAT to `pause end + tau`: every slot reserved afterwards, by any process, begins after the
pause, with no burst at its end. Slots reserved *before* the pause are re-checked when they come
due: every reply carries the latest pause end, and a process that has heard nothing from Redis for
[`STALE_AFTER`][insider_webpush.redis_limiter.STALE_AFTER] seconds asks again before starting. A
slot that falls inside a known pause is dropped and a new one reserved. So a start can miss a pause
only if it was recorded in Redis less than `STALE_AFTER` before that start, which is no worse than a
request already on the wire when the 429 came back.

## When Redis is unreachable

Unreachable means a connection refused, reset or not opened, or no reply within
[`CALL_TIMEOUT`][insider_webpush.redis_limiter.CALL_TIMEOUT]. Each limiter chooses, with
`on_unavailable`:

- `"fail"` (the default, "fail closed"): `acquire` raises
  [`TransportError`][insider_webpush.errors.TransportError] (`stage=Stage.NOT_SENT`) and nothing is
  sent. Slots already reserved still start: they are part of the bound.
- `"fallback"`: the process goes on with an in-process
  [`SlidingWindowLimiter`][insider_webpush.limiter.SlidingWindowLimiter] of `rate_limit //
  expected_processes` per `rate_period`. The bound then holds only if at most `expected_processes`
  processes share the key. The first local grant waits until the last Redis slot this process knew
  of has begun, plus a hold of `(expected_processes * local burst + burst) * T`, so the local
  buckets' first bursts and the Redis tail do not add up. A background probe retries Redis on whole
  seconds of the wall clock (so processes go back at about the same moment), and on success records
  the same hold as a pause before Redis slots resume. While some processes are back and others not
  yet, the bound can be off by what they send in that moment.

A Redis that loses the key (a restart without persistence, `FLUSHALL`, an eviction, a
failover to a replica that missed the last writes) forgets the slots it already handed out,
which are still waiting in the processes. Starting the key afresh would let new slots
overlap those. So every call carries the latest TAT its process has seen and how far ahead of
Redis's clock that TAT was then; a state behind a caller's TAT was lost, and the script
restarts it at `that TAT + that lead`. In steady traffic the slots handed out after a
caller's last reply fit in that lead, so the bound holds across the loss; a surge of new
reservations just before it, or a process that never saw the old state reserving before any
process that did, can put a few starts over the quota in that one window. Run Redis with
persistence (`appendonly yes`) where that matters. The state itself expires
`rate_period` after its last slot, which is when it no longer constrains anyone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal, NamedTuple

from .errors import TransportError
from .limiter import DEFAULT_MARGIN, LimiterKey, SlidingWindowLimiter, paused_error
from .outcomes import Stage

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # the optional extra is not installed
    raise ImportError(
        "insider_webpush.redis_limiter needs redis-py: pip install 'insider-webpush[redis]'"
    ) from exc

__all__ = [
    "CALL_TIMEOUT",
    "GCRA_LUA",
    "STALE_AFTER",
    "RedisLimiter",
    "redis_key",
    "shared_redis_limiter",
]

logger = logging.getLogger("insider_webpush")

OnUnavailable = Literal["fail", "fallback"]

STALE_AFTER: Final = 0.05
"""Seconds without a reply from Redis after which a process re-checks for a pause before a
reserved slot starts; see the module docstring."""

CALL_TIMEOUT: Final = 1.0
"""Seconds one script call may take before Redis counts as unreachable."""

_PROBE_EVERY = 1.0  # seconds of the wall clock between tries of an unreachable Redis
_UNAVAILABLE = (RedisError, OSError)

GCRA_LUA: Final = """
-- GCRA with reservations on the hash KEYS[1] = {tat, paused}, in integer microseconds of
-- this server's clock. ARGV: 1 emission interval T, 2 tolerance tau = (burst - 1) * T,
-- 3 ms the state outlives its last slot, 4 the latest TAT the caller has seen, 5 how far
-- that TAT was ahead of the clock then, 6 a pause in us from now (0: none), 7 '1' to reserve
-- a slot. Returns {wait, now, tat, paused}; the slot begins wait us from now (-1: none).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local T, tau, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local seen, lead, pause = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'tat', 'paused')
local tat = tonumber(state[1]) or now
local paused = tonumber(state[2]) or 0
local changed = false
if seen > tat then
  -- TAT never goes back: this state was lost while slots were outstanding. Resume after
  -- the ones the caller knows of, plus the queue it saw then.
  tat = seen + lead
  changed = true
end
if pause > 0 and now + pause > paused then
  paused = now + pause
  if tat < paused + tau then tat = paused + tau end
  changed = true
end
local wait = -1
if ARGV[7] == '1' then
  local t = math.max(tat, now)
  wait = math.max(0, t - tau - now)
  tat = t + T
  changed = true
end
if changed then
  redis.call('HSET', KEYS[1], 'tat', tat, 'paused', paused)
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + keep)
end
return {wait, now, tat, paused}
"""
"""The GCRA script, run with one `EVALSHA` per acquire (see the module docstring). In one call
it reserves a slot (or only reads the state), records a pause, and restarts a state Redis
lost."""


def _new_client(url: str) -> aioredis.Redis:
    # Fail fast: a limiter waiting seconds on a dead Redis holds every send up. One retry
    # lets a pooled connection that a Redis restart broke reconnect. No socket_timeout:
    # redis-py then wraps each send in asyncio.wait_for, which on Python 3.11 can swallow a
    # cancellation (CPython gh-86296); _call bounds the whole call instead.
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=CALL_TIMEOUT, retry=Retry(NoBackoff(), 1)
    )


def redis_key(key: LimiterKey) -> str:
    """The Redis key of a limiter key.

    Holds only hashes: the base URL's, and the API key's fingerprint, never the key itself.

    Args:
        key: `(base_url, key_fingerprint, quota group)`.

    Returns:
        `insider_webpush:<base URL hash>:<fingerprint>:<quota group>`.
    """
    base_url, fingerprint, operation = key
    host = hashlib.sha256(base_url.encode()).hexdigest()[:12]
    return f"insider_webpush:{host}:{fingerprint}:{operation}"


class _Slot(NamedTuple):
    begins: int  # Redis time, us
    deadline: float  # the local time it has surely begun by
    earliest: float  # the earliest local time it can have begun


class _ClockMap:
    """Where Redis's clock stands against this event loop's.

    Redis read `now` between the local times a call was sent and its reply arrived, so
    `sent - now <= offset <= arrived - now`. The tightest bounds of the last few seconds'
    replies bracket the offset to about the fastest round trip, however slow this reply was
    (a busy event loop, a new connection). A step of either clock makes the bounds cross;
    then only the newest reply counts.
    """

    WINDOW = 2.0  # seconds of replies; short enough that clock drift does not matter

    def __init__(self) -> None:
        # (arrived, bound), monotonic: the best bound of the window is always first.
        self._low: deque[tuple[float, float]] = deque()
        self._high: deque[tuple[float, float]] = deque()

    def add(self, sent: float, arrived: float, redis_now_us: int) -> None:
        redis_now = redis_now_us / 1e6
        low, high = sent - redis_now, arrived - redis_now
        for bounds in (self._low, self._high):
            while bounds and bounds[0][0] < arrived - self.WINDOW:
                bounds.popleft()
        while self._low and self._low[-1][1] <= low:
            self._low.pop()
        self._low.append((arrived, low))
        while self._high and self._high[-1][1] >= high:
            self._high.pop()
        self._high.append((arrived, high))
        if self._low[0][1] > self._high[0][1]:
            self._low = deque([(arrived, low)])
            self._high = deque([(arrived, high)])

    def earliest(self, redis_us: int) -> float:
        """The earliest local time that Redis time can be."""
        return redis_us / 1e6 + self._low[0][1]

    def latest(self, redis_us: int) -> float:
        """The local time by which that Redis time has surely come."""
        return redis_us / 1e6 + self._high[0][1]


class _Unavailable(Exception):
    """Redis could not be reached or could not run the script."""


class RedisLimiter:
    """A [`Limiter`][insider_webpush.limiter.Limiter] whose quota lives in Redis, shared by
    every process that uses the same key (see the module docstring for the guarantee).

    `WebPushClient(redis_url=...)` makes one per operation; build one yourself to pass as
    `WebPushClient(limiter=...)`, or use `from_url`.

    Args:
        redis: A `redis.asyncio.Redis` client, left open by `aclose`.
        key: A limiter key `(base_url, key_fingerprint, quota group)`, or a Redis key name.
        rate_limit: Request starts per window, across every process: a whole number, at
            least 1.
        rate_period: The window, in seconds: finite and above 0.
        burst: How many may start at once; None (the default) as for
            [`SlidingWindowLimiter`][insider_webpush.limiter.SlidingWindowLimiter].
        margin: The fraction of `rate_period` kept for jitter, between 0 and 1 (default
            0.5 %).
        on_unavailable: While Redis cannot be reached: `"fail"` (the default: `acquire`
            raises `TransportError`, nothing is sent) or `"fallback"` (an in-process limiter
            at `rate_limit // expected_processes`).
        expected_processes: How many processes share the key, at least 1 (default 1); sizes
            the fallback.

    Attributes:
        rate_limit: As given.
        rate_period: As given, a float.
        burst: As given, or the default's value.
        margin: As given.
        on_unavailable: As given.
        expected_processes: As given.
        key: The Redis key: holds hashes of the base URL and the API key, never the key.

    Raises:
        ValueError: A value is out of its range.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key: LimiterKey | str,
        rate_limit: int,
        rate_period: float,
        *,
        burst: int | None = None,
        margin: float = DEFAULT_MARGIN,
        on_unavailable: OnUnavailable = "fail",
        expected_processes: int = 1,
    ) -> None:
        # The in-process limiter's checks and burst, so that both kinds keep the same bound.
        spec = SlidingWindowLimiter(rate_limit, rate_period, burst=burst, margin=margin)
        if on_unavailable not in ("fail", "fallback"):
            raise ValueError(f"on_unavailable must be 'fail' or 'fallback', not {on_unavailable!r}")
        if (
            isinstance(expected_processes, bool)
            or not isinstance(expected_processes, int)
            or expected_processes < 1
        ):
            raise ValueError(
                f"expected_processes must be a whole number of at least 1, "
                f"got {expected_processes!r}"
            )
        self.rate_limit = spec.rate_limit
        self.rate_period = spec.rate_period
        self.burst = spec.burst
        self.margin = spec.margin
        self.on_unavailable: OnUnavailable = on_unavailable
        self.expected_processes = expected_processes
        self.key = key if isinstance(key, str) else redis_key(key)
        self._redis = redis
        self._script = redis.register_script(GCRA_LUA)
        self._emission_us = math.ceil(
            self.rate_period * (1 + self.margin) * 1e6 / (self.rate_limit + 1 - self.burst)
        )
        self._tau_us = (self.burst - 1) * self._emission_us
        self._keep_ms = math.ceil(self.rate_period * 1000)
        self._late_limit = self.margin * self.rate_period / 2
        self.dropped_slots = 0
        """Slots reserved but not used: begun too late, or inside a pause."""
        # What this process knows: Redis times in us, local times on the event loop clock.
        self._seen_tat = 0  # the latest TAT any reply showed
        self._seen_lead = 0  # how far it was ahead of Redis's clock in that reply
        self._paused_until = 0  # the latest pause end any reply showed
        self._clock = _ClockMap()
        self._last_heard = -math.inf  # when the last reply arrived
        self._stream_end = -math.inf  # when the last slot known to this process begins
        self._resume_at = -math.inf  # end of a pause this process's own penalize() set
        # penalize() is synchronous; a task carries the pause to Redis.
        self._pause_target = -math.inf
        self._pause_sent = -math.inf
        self._pause_task: asyncio.Task[None] | None = None
        # Fallback while Redis is unreachable (on_unavailable="fallback").
        self._fallback: SlidingWindowLimiter | None = None
        self._fallback_from = -math.inf
        self._down = False
        self._probe_task: asyncio.Task[None] | None = None
        self._users = 1
        self._on_close: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        key: LimiterKey | str,
        rate_limit: int,
        rate_period: float,
        *,
        burst: int | None = None,
        margin: float = DEFAULT_MARGIN,
        on_unavailable: OnUnavailable = "fail",
        expected_processes: int = 1,
    ) -> RedisLimiter:
        """A limiter with its own Redis client for `url`, which `aclose` closes.

        The client fails fast: a call taking more than
        [`CALL_TIMEOUT`][insider_webpush.redis_limiter.CALL_TIMEOUT] counts as Redis being
        unreachable, and a broken connection is retried once.

        Args:
            url: A Redis URL, e.g. `"redis://host:6379/0"`.
            key: As for the constructor.
            rate_limit: As for the constructor.
            rate_period: As for the constructor, in seconds.
            burst: As for the constructor.
            margin: As for the constructor.
            on_unavailable: As for the constructor.
            expected_processes: As for the constructor.

        Returns:
            The limiter; nothing is connected until the first `acquire`.

        Raises:
            ValueError: A value is out of its range.
        """
        client = _new_client(url)
        limiter = cls(
            client,
            key,
            rate_limit,
            rate_period,
            burst=burst,
            margin=margin,
            on_unavailable=on_unavailable,
            expected_processes=expected_processes,
        )
        limiter._on_close = client.aclose
        return limiter

    @property
    def rate_per_second(self) -> float:
        """The sustained rate this limiter lets through, across all its processes."""
        return 1e6 / self._emission_us

    def __repr__(self) -> str:
        return (
            f"RedisLimiter(key={self.key!r}, rate_limit={self.rate_limit}, "
            f"rate_period={self.rate_period}, burst={self.burst}, margin={self.margin}, "
            f"on_unavailable={self.on_unavailable!r}, "
            f"expected_processes={self.expected_processes})"
        )

    # -- the Limiter protocol -----------------------------------------------------------

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        """Wait until one more request may start now, by every process's count.

        Args:
            max_pause: The longest pause (this process's, or one recorded in Redis by any
                process) to wait out, in seconds (default: any).

        Raises:
            RateLimitError: A pause has more than `max_pause` seconds to run; nothing may
                start.
            TransportError: Redis is unreachable and `on_unavailable` is `"fail"`
                (`stage=Stage.NOT_SENT`: nothing was sent).
            RuntimeError: The limiter is closed.
        """
        if self._users == 0:
            raise RuntimeError("this RedisLimiter is closed")
        loop = asyncio.get_running_loop()
        while True:
            if (shared := self.paused_for()) > max_pause:  # ours, or another process's
                raise paused_error(shared, max_pause)
            if (pause := self._resume_at - loop.time()) > 0:  # our own 429
                await asyncio.sleep(pause)
                continue
            if self._down:
                if await self._fallback_grant(loop):
                    return
                continue
            try:
                slot = await self._reserve(loop)
            except _Unavailable as exc:
                if self.on_unavailable == "fail":
                    raise TransportError(
                        f"the shared quota in Redis is unreachable, nothing was sent: {exc}",
                        stage=Stage.NOT_SENT,
                    ) from None
                self._go_down(loop, exc)
                continue
            if (wait := slot.deadline - loop.time()) > 0:
                await asyncio.sleep(wait)
                if loop.time() - self._last_heard > STALE_AFTER:
                    await self._check_for_pause(loop)
            now = loop.time()
            if now - slot.earliest > self._late_limit:
                # A slow reply or a late wake-up: starting now could crowd the next window.
                self.dropped_slots += 1
            elif slot.begins < self._paused_until or now < self._resume_at:
                # A pause recorded after the slot was reserved.
                self.dropped_slots += 1
            else:
                return

    def penalize(self, seconds: float) -> None:
        """Let no request start for `seconds` from now, in this process at once and in every
        process sharing the key as soon as Redis records it.

        Args:
            seconds: The pause, in seconds; 0 or less does nothing, and a pause never ends
                earlier than one already set.
        """
        if not seconds > 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if until <= self._resume_at:
            return
        self._resume_at = until
        self._pause_target = until
        if not self._down and (self._pause_task is None or self._pause_task.done()):
            self._pause_task = loop.create_task(self._send_pause(loop))

    def paused_for(self) -> float:
        """Seconds until the pause this process set, or last saw in Redis, ends."""
        now = asyncio.get_running_loop().time()
        shared = self._clock.latest(self._paused_until) if self._paused_until else -math.inf
        return max(0.0, self._resume_at - now, shared - now)

    async def aclose(self) -> None:
        """Done with this limiter.

        A limiter from `shared_redis_limiter` is closed by the `aclose` matching the last
        call that returned it; the Redis client it shares closes with the last limiter of
        this event loop using it. One from `from_url` closes its own client; one given a
        client leaves it open. A pause still on its way to Redis gets up to
        [`CALL_TIMEOUT`][insider_webpush.redis_limiter.CALL_TIMEOUT] to get there.
        """
        if self._users > 1:
            self._users -= 1
            return
        if self._users == 0:
            return
        self._users = 0
        if self._probe_task is not None:
            self._probe_task.cancel()
        tasks = [t for t in (self._pause_task, self._probe_task) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            await on_close()

    # -- Redis ----------------------------------------------------------------------------

    async def _call(
        self, loop: asyncio.AbstractEventLoop, *, reserve: bool, pause_us: int = 0
    ) -> tuple[int, int]:
        """Run the script; returns Redis's `(wait_us, now_us)` and learns from the reply."""
        args = (
            self._emission_us,
            self._tau_us,
            self._keep_ms,
            self._seen_tat,
            self._seen_lead,
            pause_us,
            1 if reserve else 0,
        )
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        sent = loop.time()
        error: BaseException | None = None
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                reply = await self._script(keys=[self.key], args=args)
        except _UNAVAILABLE as exc:  # TimeoutError included
            error = exc
        arrived = loop.time()
        if task is not None and task.cancelling() > cancels:
            # A cancellation redis-py swallowed (see _new_client): deliver it.
            raise asyncio.CancelledError
        if error is not None:
            raise _Unavailable(f"{type(error).__name__}: {error}") from error
        wait, now, tat, paused = _four(reply)
        self._clock.add(sent, arrived, now)
        self._last_heard = arrived
        if tat > self._seen_tat:
            self._seen_tat, self._seen_lead = tat, max(0, tat - now)
        self._stream_end = max(self._stream_end, self._clock.latest(tat))
        self._paused_until = max(self._paused_until, paused)
        return wait, now

    async def _reserve(self, loop: asyncio.AbstractEventLoop) -> _Slot:
        wait, now = await self._call(loop, reserve=True)
        begins = now + wait
        return _Slot(begins, self._clock.latest(begins), self._clock.earliest(begins))

    async def _check_for_pause(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._call(loop, reserve=False)
        except _Unavailable as exc:
            # The slot itself is sound; only a pause other processes set may go unseen.
            logger.debug("%s: could not re-check for a pause: %s", self.key, exc)

    async def _send_pause(self, loop: asyncio.AbstractEventLoop) -> None:
        """Record this process's pauses in Redis, the latest one each round."""
        while self._pause_target > self._pause_sent:
            target = self._pause_target
            pause_us = math.ceil((target - loop.time()) * 1e6)
            if pause_us <= 0:
                return
            try:
                await self._call(loop, reserve=False, pause_us=pause_us)
            except _Unavailable as exc:
                logger.warning(
                    "%s: could not share a 429 pause through Redis, other processes go on: %s",
                    self.key,
                    exc,
                )
                return
            self._pause_sent = target

    # -- fallback -------------------------------------------------------------------------

    @property
    def _hold(self) -> float:
        """Seconds that cover the bursts of every process's local limiter and of Redis."""
        assert self._fallback is not None
        bursts = self.expected_processes * self._fallback.burst + self.burst
        return bursts * self._emission_us / 1e6

    def _go_down(self, loop: asyncio.AbstractEventLoop, exc: Exception) -> None:
        if self._down:
            return
        if self._fallback is None:
            share = max(1, self.rate_limit // self.expected_processes)
            self._fallback = SlidingWindowLimiter(share, self.rate_period, margin=self.margin)
        self._down = True
        self._fallback_from = max(loop.time(), self._stream_end) + self._hold
        logger.warning(
            "%s: Redis is unreachable (%s); this process goes on alone at %d per %ss until it "
            "is back",
            self.key,
            exc,
            self._fallback.rate_limit,
            self.rate_period,
        )
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = loop.create_task(self._probe(loop))

    async def _fallback_grant(self, loop: asyncio.AbstractEventLoop) -> bool:
        assert self._fallback is not None
        if (wait := self._fallback_from - loop.time()) > 0:
            await asyncio.sleep(wait)
        await self._fallback.acquire()
        # Back on Redis meanwhile, or paused: this grant is spent unused.
        return self._down and loop.time() >= self._resume_at

    async def _probe(self, loop: asyncio.AbstractEventLoop) -> None:
        hold_us = math.ceil(self._hold * 1e6)
        while self._down:
            await asyncio.sleep(_PROBE_EVERY - time.time() % _PROBE_EVERY)
            try:
                await self._call(loop, reserve=False, pause_us=hold_us)
            except _Unavailable:
                continue
            self._down = False
            logger.warning("%s: Redis is back; the quota is shared again", self.key)


def _four(reply: object) -> tuple[int, int, int, int]:
    if (
        not isinstance(reply, list | tuple)
        or len(reply) != 4
        or not all(isinstance(value, int) for value in reply)
    ):
        raise _Unavailable(f"unexpected reply from the limiter script: {reply!r}")
    wait, now, tat, paused = reply
    return wait, now, tat, paused


# -- the registry the client uses ---------------------------------------------------------


class _Shared:
    """One Redis client per URL and event loop, and the limiters that use it."""

    def __init__(self, url: str) -> None:
        self.redis = _new_client(url)
        self.limiters: dict[tuple[LimiterKey, int | None], RedisLimiter] = {}


_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Shared]] = (
    weakref.WeakKeyDictionary()
)


def shared_redis_limiter(
    redis_url: str,
    key: LimiterKey,
    rate_limit: int,
    rate_period: float,
    *,
    fallback_processes: int | None = None,
) -> RedisLimiter:
    """The one Redis limiter of this event loop for `key` on `redis_url`.

    Every caller must `await limiter.aclose()` once when done (`WebPushClient.close` does):
    the last one closes the shared Redis connection. The first caller's
    `rate_limit`/`rate_period` win; a caller asking for others is told in the log.

    Args:
        redis_url: A Redis URL, e.g. `"redis://host:6379/0"`.
        key: `(base_url, key_fingerprint, quota group)`.
        rate_limit: Request starts per window, across every process, for a new limiter.
        rate_period: The window in seconds, for a new limiter.
        fallback_processes: None (the default) fails closed while Redis is unreachable; a
            number falls back to `rate_limit // fallback_processes` in this process.

    Returns:
        The limiter.

    Raises:
        RuntimeError: No event loop is running.
    """
    loop = asyncio.get_running_loop()
    per_loop = _registry.setdefault(loop, {})
    shared = per_loop.get(redis_url)
    if shared is None:
        shared = per_loop[redis_url] = _Shared(redis_url)
    entry = (key, fallback_processes)
    limiter = shared.limiters.get(entry)
    if limiter is None:
        limiter = RedisLimiter(
            shared.redis,
            key,
            rate_limit,
            rate_period,
            on_unavailable="fail" if fallback_processes is None else "fallback",
            expected_processes=fallback_processes or 1,
        )
        limiter._on_close = _releaser(per_loop, redis_url, shared, entry)
        shared.limiters[entry] = limiter
        return limiter
    if (limiter.rate_limit, limiter.rate_period) != (rate_limit, float(rate_period)):
        logger.warning(
            "%s already has a shared Redis limiter of %d per %ss; keeping it, not %d per %ss",
            key[2],
            limiter.rate_limit,
            limiter.rate_period,
            rate_limit,
            rate_period,
        )
    limiter._users += 1
    return limiter


def _releaser(
    per_loop: dict[str, _Shared],
    url: str,
    shared: _Shared,
    entry: tuple[LimiterKey, int | None],
) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        shared.limiters.pop(entry, None)
        if not shared.limiters:
            if per_loop.get(url) is shared:
                del per_loop[url]
            await shared.redis.aclose()

    return release
