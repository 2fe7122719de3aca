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
max(now, t - tau)`. The caller sleeps until then and starts. With `on_unavailable="fallback"`,
a slot that would begin more than `MAX_LEAD * rate_period` after `now` (half a period,
[`MAX_LEAD`][insider_webpush.redis_limiter.MAX_LEAD]) is not reserved: the caller asks again once
it would not (see "When Redis is unreachable").

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
the time its slot comes (see below), and, in fallback mode, one more each time the lead cap
refuses it (only while more acquirers wait, across every process, than half a period's slots, or
after a pause or hold longer than that). A slot whose holder is cancelled is not given back
(refunding it could let a later window exceed the bound).

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
  expected_processes` per `rate_period`, once the slots reserved in Redis are a window old, and
  goes back to Redis when it answers again, after a hold. The rules below keep the bound.

### The fallback, without overshoot

Write `W` for `rate_period`, `m` for the margin, `n` for `expected_processes`, `c = MAX_LEAD * W`
(the lead cap, half a period) and `S` for `1.5` s (see the way back). The `n` local limiters keep
`n * (rate_limit // n) <= rate_limit` in any window together, but their contract says nothing
of how they place their share inside a window (any window may hold a whole share), so any Redis
start in a window that also holds local starts could put it over. Both rules therefore keep
every window that holds a Redis arrival apart from every window that holds a local one. They
assume what a fallback is for: Redis unreachable for every process at once (killed, stopped,
restarted, cut off from all of them), at most `n` processes on the key, every one of them in
fallback mode and running this script.

*Going down.* A process knows its own reservations and the TAT of its last reply, not the
slots other processes reserved after that: their queues can run as far ahead as they have
acquirers waiting (the issue this answers: processes that last heard from Redis 0.33 s earlier
started locally while other processes' Redis slots were still to come). Hence the lead cap: the
script reserves no slot beginning more than `c` after its own clock. Let `X` be the last moment
Redis answered anyone. Every Redis slot then begins by `X + c` (a TAT seen beyond that was set
by a pause or a lost state, not by slots, so it adds nothing), starts at most `D` after it
begins (the late bound above, which also holds the clock bracket's error), and arrives at most
`J` after its start, `D + J <= m * W`. The process notices the outage at `d >= X`: a refused
connection, or a call or a slot's re-check unanswered for
[`CALL_TIMEOUT`][insider_webpush.redis_limiter.CALL_TIMEOUT]. Its first local start waits until
`d + c + W * (1 + m) >= X + c + D + J + W`, and any pause it knew of: every window holding a
Redis arrival ends before it. `d`, `c` and `W` are durations on the process's and Redis's own
clocks, so no clock offset enters. At 6000 per minute that is 90.3 s after the outage is
noticed (4.5 s at 300 per 3 s): an outage shorter than that sends nothing, as `"fail"` would,
but its sends wait instead of failing.

*Coming back.* A background task tries Redis at every whole second of the wall clock, giving up
each try after 0.25 s, so a process that is down is back at most `S` after Redis answers again:
its next whole second, its try, and 0.25 s for the clocks of hosts and a late wake-up. No local
start is made after the try that succeeds. The local starts of every process still count in the
windows after them, so the try that succeeds records a hold in Redis: no slot reserved from then
on begins before `W * (1 + m) + S` after it. The first process back records it, at a moment Redis
was already answering, and every process's last local start is at most `S` after that moment:
the first Redis start is `W * (1 + m)` after the last local start, and no window holds both
kinds. A hold is not a pause: it is no 429, it does not count against `max_pause`, and nothing
reserved before it needs re-checking (slots reserved before the outage are long over; those of a
process back earlier begin after its own hold; a Redis that answers for less than `S` and goes
again grants nothing in between, since the hold is longer than `c`). No hold is recorded when no
process can have started locally yet: a process's first local start comes `c + W * (1 + m)` after
the outage began at the earliest, so when a try is sent less than that, minus `S` and the try's
0.25 s, after the last call that got a reply, every process is back before any local start. A
short outage (up to 88.5 s at 6000 per minute, 2.8 s at 300 per 3 s) costs no hold; a longer
one a hold of 61.8 s (4.5 s at 300 per 3 s).

Outside those assumptions the bound can be off: a process that did not notice the outage (idle
through it) reserves without a hold in the moment, at most `S`, between Redis answering again and
the first process back recording its hold; a process cut off alone goes on locally while the
others go on through Redis; a process in `"fail"` mode reserves beyond the lead cap.

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
import contextlib
import hashlib
import logging
import math
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal, NamedTuple

from .errors import TransportError
from .limiter import (
    DEFAULT_MARGIN,
    LimiterKey,
    SlidingWindowLimiter,
    paused_error,
    shared_limiter,
)
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
    "MAX_LEAD",
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

MAX_LEAD: Final = 0.5
"""With `on_unavailable="fallback"`, how far ahead of Redis's clock a slot may begin when it is
reserved, as a fraction of `rate_period`; see the module docstring."""

_PROBE_EVERY = 1.0  # seconds of the wall clock between tries of an unreachable Redis
_PROBE_TIMEOUT = 0.25  # seconds a try may take
# The latest a process that is down comes back after Redis does: its next whole wall-clock
# second, plus its try, plus 0.25 s for hosts' clocks and a late wake-up.
_RETURN_SPREAD = _PROBE_EVERY + _PROBE_TIMEOUT + 0.25
_UNAVAILABLE = (RedisError, OSError)

GCRA_LUA: Final = """
-- GCRA with reservations on the hash KEYS[1] = {tat, paused}, in integer microseconds of
-- this server's clock. ARGV: 1 emission interval T, 2 tolerance tau = (burst - 1) * T,
-- 3 ms the state outlives its last slot, 4 the latest TAT the caller has seen, 5 how far
-- that TAT was ahead of the clock then, 6 a pause in us from now (0: none), 7 '1' to reserve
-- a slot, 8 the furthest ahead a slot may begin, in us (0 or absent: no limit), 9 a hold in
-- us from now before which no slot reserved from now on begins (0 or absent: none).
-- Returns {wait, now, tat, paused}; the slot begins wait us from now (-1: none reserved).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local T, tau, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local seen, lead, pause = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cap, hold = tonumber(ARGV[8]) or 0, tonumber(ARGV[9]) or 0
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
if hold > 0 and tat < now + hold + tau then
  tat = now + hold + tau
  changed = true
end
local wait = -1
if ARGV[7] == '1' then
  local t = math.max(tat, now)
  local begins = math.max(now, t - tau)
  if cap <= 0 or begins - now <= cap then
    wait = begins - now
    tat = t + T
    changed = true
  end
end
if changed then
  redis.call('HSET', KEYS[1], 'tat', tat, 'paused', paused)
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + keep)
end
return {wait, now, tat, paused}
"""
"""The GCRA script, run with one `EVALSHA` per acquire (see the module docstring). In one call
it reserves a slot (or only reads the state), records a pause or a hold, and restarts a state
Redis lost. A slot that would begin more than the lead cap ahead is not reserved."""


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
        # Fallback only ("fail" reserves as before): no slot begins more than this ahead.
        fallback = on_unavailable == "fallback"
        self._lead_cap_us = math.ceil(MAX_LEAD * self.rate_period * 1e6) if fallback else 0
        # From losing Redis to the first local start: the last Redis slot's window is over.
        self._fallback_delay = MAX_LEAD * self.rate_period + self.rate_period * (1 + self.margin)
        self.dropped_slots = 0
        """Slots reserved but not used: begun too late, or inside a pause."""
        # What this process knows: Redis times in us, local times on the event loop clock.
        self._seen_tat = 0  # the latest TAT any reply showed
        self._seen_lead = 0  # how far it was ahead of Redis's clock in that reply
        self._paused_until = 0  # the latest pause end any reply showed
        self._clock = _ClockMap()
        self._last_heard = -math.inf  # when the last reply arrived
        self._alive_at = -math.inf  # when the last call that got a reply was sent
        self._resume_at = -math.inf  # end of a pause this process's own penalize() set
        # penalize() is synchronous; a task carries the pause to Redis.
        self._pause_target = -math.inf
        self._pause_sent = -math.inf
        self._pause_task: asyncio.Task[None] | None = None
        # Fallback while Redis is unreachable (on_unavailable="fallback").
        self._fallback: SlidingWindowLimiter | None = None
        self._fallback_from = -math.inf
        self._down = False
        self._up = asyncio.Event()  # set while Redis answers: wakes acquirers waiting to fall back
        self._up.set()
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
            if not isinstance(slot, _Slot):  # over the lead cap: ask again later
                await asyncio.sleep(slot)
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
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        reserve: bool,
        pause_us: int = 0,
        hold_us: int = 0,
        give_up_after: float = CALL_TIMEOUT,
    ) -> tuple[int, int, int]:
        """Run the script; returns Redis's `(wait_us, now_us, tat_us)` and learns from the
        reply."""
        args = (
            self._emission_us,
            self._tau_us,
            self._keep_ms,
            self._seen_tat,
            self._seen_lead,
            pause_us,
            1 if reserve else 0,
            self._lead_cap_us,
            hold_us,
        )
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        sent = loop.time()
        error: BaseException | None = None
        try:
            async with asyncio.timeout(give_up_after):
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
        self._alive_at = max(self._alive_at, sent)
        if tat > self._seen_tat:
            self._seen_tat, self._seen_lead = tat, max(0, tat - now)
        self._paused_until = max(self._paused_until, paused)
        return wait, now, tat

    async def _reserve(self, loop: asyncio.AbstractEventLoop) -> _Slot | float:
        """A slot; or, when it would begin beyond the lead cap, the seconds to wait before
        asking again."""
        wait, now, tat = await self._call(loop, reserve=True)
        if wait < 0:
            # The first slot free begins this far beyond the cap. Spread the retries over
            # half the cap: everyone refused asking again at once would be refused again.
            beyond = max(tat, now) - self._tau_us - now - self._lead_cap_us
            return max(0, beyond) / 1e6 + random.uniform(0, self._lead_cap_us / 2e6)
        begins = now + wait
        return _Slot(begins, self._clock.latest(begins), self._clock.earliest(begins))

    async def _check_for_pause(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._call(loop, reserve=False)
        except _Unavailable as exc:
            # The slot itself is sound; only a pause other processes set may go unseen.
            logger.debug("%s: could not re-check for a pause: %s", self.key, exc)
            if self.on_unavailable == "fallback":
                self._go_down(loop, exc)  # the sooner it is noticed, the sooner local starts

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

    def _go_down(self, loop: asyncio.AbstractEventLoop, exc: Exception) -> None:
        if self._down:
            return
        if self._fallback is None:
            # One for the process, not one per event loop: two loops of one process sharing
            # this key (successive asyncio.run calls, a thread's loop) share one local share.
            share = max(1, self.rate_limit // self.expected_processes)
            self._fallback = shared_limiter(
                (self.key, "fallback", str(self.expected_processes)), share, self.rate_period
            )
        self._down = True
        self._up.clear()
        # Every Redis slot, reserved before Redis went, begins by now + the lead cap: local
        # starts wait until the window of the last one is over (see the module docstring).
        self._fallback_from = loop.time() + self._fallback_delay
        logger.warning(
            "%s: Redis is unreachable (%s); in %.1f s, once the slots reserved in Redis are a "
            "window old, this process goes on alone at %d per %ss until Redis is back",
            self.key,
            exc,
            self._fallback_delay,
            self._fallback.rate_limit,
            self.rate_period,
        )
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = loop.create_task(self._probe(loop))

    async def _fallback_grant(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Start locally, once that may begin; False: look at the state again first."""
        assert self._fallback is not None
        # A pause read from Redis before it went still holds.
        begin = max(self._fallback_from, loop.time() + self.paused_for())
        if (wait := begin - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._up.wait()
            return False  # back on Redis meanwhile, or paused
        await self._fallback.acquire()
        # Back on Redis meanwhile, or paused: this grant is spent unused.
        return self._down and loop.time() >= self._resume_at

    def _return_hold_us(self, loop: asyncio.AbstractEventLoop) -> int:
        """The hold to record in Redis on coming back: 0 when no process can have started
        locally yet (see the module docstring)."""
        back_by = loop.time() + _PROBE_TIMEOUT + _RETURN_SPREAD
        if back_by < self._alive_at + self._fallback_delay:
            return 0
        return math.ceil((self.rate_period * (1 + self.margin) + _RETURN_SPREAD) * 1e6)

    async def _probe(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._down:
            await asyncio.sleep(_PROBE_EVERY - time.time() % _PROBE_EVERY)
            hold_us = self._return_hold_us(loop)
            try:
                await self._call(loop, reserve=False, hold_us=hold_us, give_up_after=_PROBE_TIMEOUT)
            except _Unavailable:
                continue
            self._down = False
            self._up.set()
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
