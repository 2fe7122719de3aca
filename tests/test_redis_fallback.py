"""RedisLimiter's fallback (``on_unavailable="fallback"``): losing Redis and coming back keep the
bound, i.e. no window holds Redis starts and local starts that add up to more than the quota.

The rules are in insider_webpush/redis_limiter.py's docstring ("The fallback, without
overshoot"): a lead cap on reservations, a window's wait before the first local start, a hold in
Redis on the way back unless the outage was too short for any local start. Every case that needs
Redis starts its own ``redis-server`` (tests/redis_server.py; under CI=true a missing binary
fails these tests). The three-process runs are tests/fallback_fleet.py's; by hand it runs them
20 times (see there).
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from insider_webpush.redis_limiter import CALL_TIMEOUT, GCRA_LUA, MAX_LEAD, RedisLimiter

from .helper_modules import helper

ROOT = Path(__file__).resolve().parents[1]


_servers = helper("redis_server")
fleet = helper("fallback_fleet")
redis_url_down = _servers.redis_url_down  # a fixture


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A running redis-server of this test alone, that can be killed and stopped."""
    server = fleet.FleetRedis(_servers.require_redis_server(), tmp_path)
    for attempt in range(3):  # another process may take the free port before redis-server
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            server.port = _servers.free_port()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def max_in_window(times: Sequence[float], period: float) -> int:
    return int(fleet.max_in_window(list(times), period))


async def warmed(url: str, connections: int) -> aioredis.Redis:
    """A Redis client with ``connections`` open and the script loaded: a slot whose reply
    waited on a connection set-up is given up, which would blur what a test measures."""
    client = aioredis.Redis.from_url(url)
    probe = RedisLimiter(client, "warm-up", 10**9, 1.0)
    await asyncio.gather(*(probe.acquire() for _ in range(connections)))
    await probe.aclose()
    return client


def emission_us(rate_limit: int, rate_period: float, burst: int, margin: float) -> int:
    """The script's T, as RedisLimiter computes it."""
    return math.ceil(rate_period * (1 + margin) * 1e6 / (rate_limit + 1 - burst))


async def lead_us(client: aioredis.Redis, limiter: RedisLimiter) -> int:
    """How far ahead of Redis's clock the last slot reserved on the limiter's key begins."""
    tat = int(await client.hget(limiter.key, "tat") or 0)
    seconds, micros = await client.time()
    T = emission_us(limiter.rate_limit, limiter.rate_period, limiter.burst, limiter.margin)
    return tat - T - (limiter.burst - 1) * T - (seconds * 1_000_000 + micros)


# -- no server needed ---------------------------------------------------------------------


async def test_the_first_local_start_waits_for_the_lead_cap_and_a_window(
    redis_url_down: str,
) -> None:
    """Slots other processes reserved up to the lead cap ahead may still be starting; the
    local limiters may each use their whole share in the window after the last of them."""
    loop = asyncio.get_running_loop()
    limiter = RedisLimiter.from_url(
        redis_url_down, "down", 20, 0.2, on_unavailable="fallback", expected_processes=2
    )
    try:
        began = loop.time()
        await limiter.acquire()  # Redis refuses at once: the outage is noticed now
        waited = loop.time() - began
    finally:
        await limiter.aclose()
    rule = MAX_LEAD * 0.2 + 0.2 * (1 + limiter.margin)  # 0.301 s
    assert rule <= waited < rule + 0.5  # then the local limiter's first grant, at once


# -- the script ---------------------------------------------------------------------------


@pytest.mark.redis
async def test_script_refuses_a_slot_beyond_the_lead_cap_and_records_a_hold(
    redis_client: aioredis.Redis,
) -> None:
    script = redis_client.register_script(GCRA_LUA)
    T, tau, keep, cap = 100_000, 100_000, 1000, 250_000  # us: burst 2, 250 ms of lead

    async def call(reserve: int = 1, cap: int = cap, hold: int = 0) -> list[int]:
        reply: list[int] = await script(
            keys=["k"], args=[T, tau, keep, 0, 0, 0, reserve, cap, hold]
        )
        return reply

    replies = [await call() for _ in range(6)]  # well within 50 ms of each other
    now0 = replies[0][1]
    # The burst of 2 at once, then 100 and 200 ms; 300 ms is beyond the cap: not reserved,
    # and TAT stays where it was.
    assert [wait for wait, *_ in replies[:2]] == [0, 0]
    assert [wait + now - now0 for wait, now, *_ in replies[2:4]] == [T, 2 * T]
    assert [wait for wait, *_ in replies[4:]] == [-1, -1]
    assert [tat for _, _, tat, _ in replies[3:]] == [now0 + 4 * T] * 3
    wait, now, _, _ = await call(cap=0)  # no cap ("fail" mode): reserved as before
    assert wait + now == now0 + 3 * T

    # A hold: no slot reserved afterwards begins before its end; it is not a pause.
    _, now, tat, paused = await call(reserve=0, hold=1_000_000)
    assert tat == now + 1_000_000 + tau
    assert paused == 0
    wait, now, _, _ = await call(cap=0)
    assert wait + now >= tat - tau


# -- one process --------------------------------------------------------------------------


@pytest.mark.slow  # 1.7 s; the CI budget keeps it to one Python (.ci/run)
@pytest.mark.redis
async def test_acquirers_beyond_the_lead_cap_ask_again_later(
    redis_server: Any, redis_client: aioredis.Redis
) -> None:
    loop = asyncio.get_running_loop()
    client = await warmed(redis_server.url, 30)
    # 40 per s, burst 2: one slot per 25.8 ms; the cap of 0.5 s holds 21 of 30 acquirers.
    capped = RedisLimiter(client, "capped", 40, 1.0, on_unavailable="fallback")
    uncapped = RedisLimiter(client, "uncapped", 40, 1.0)  # "fail": as before, no cap
    T = emission_us(40, 1.0, capped.burst, capped.margin) / 1e6
    starts: list[float] = []

    async def one(limiter: RedisLimiter) -> None:
        await limiter.acquire()
        starts.append(loop.time())

    tasks = [asyncio.create_task(one(uncapped)) for _ in range(30)]
    try:
        await asyncio.sleep(0.05)  # every acquirer has asked once
        assert await lead_us(redis_client, uncapped) > MAX_LEAD * 1e6  # 28 slots of 25.8 ms
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        starts.clear()
        tasks = [asyncio.create_task(one(capped)) for _ in range(30)]
        await asyncio.sleep(0.05)
        assert await lead_us(redis_client, capped) <= MAX_LEAD * 1e6
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await capped.aclose()
        await uncapped.aclose()
        await client.aclose()
    # Those refused asked again and got slots of their own, in the one sequence of slots:
    # none started at once, nor together when they asked again. The k-th slot begins (k - 1)
    # slots after the first, and a start is never before its slot (at most 2.5 ms after it).
    assert len(starts) == 30
    late = capped.margin * 1.0 / 2
    assert all(t - starts[0] >= (k - 1) * T - late for k, t in enumerate(starts)), [
        round(t - starts[0], 3) for t in starts
    ]


@pytest.mark.slow  # 1.1 s; the CI budget keeps it to one Python (.ci/run)
@pytest.mark.redis
async def test_a_slot_whose_recheck_goes_unanswered_notices_the_outage(redis_server: Any) -> None:
    """The sooner an outage is noticed, the sooner local sending may begin: a re-check that
    Redis leaves unanswered is enough, no need to wait for another reservation's timeout."""
    loop = asyncio.get_running_loop()
    client = await warmed(redis_server.url, 3)
    # 10 per s, burst 2: slots at 0, 0 and 112 ms.
    limiter = RedisLimiter(
        client, "stall", 10, 1.0, on_unavailable="fallback", expected_processes=2
    )
    tasks = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    try:
        await asyncio.sleep(0.03)
        redis_server.signal(signal.SIGSTOP)  # the third slot's re-check goes unanswered
        stopped_at = loop.time()
        for _ in range(300):
            if limiter._down:
                break
            await asyncio.sleep(0.01)
        noticed = loop.time() - stopped_at
    finally:
        redis_server.signal(signal.SIGCONT)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await limiter.aclose()
        await client.aclose()
    assert noticed < 0.112 + CALL_TIMEOUT + 0.3  # not after one more call's timeout


@pytest.mark.slow  # 2.8 s; the CI budget keeps it to one Python (.ci/run)
@pytest.mark.redis
async def test_losing_redis_and_coming_back_keep_every_window_under_the_quota(
    redis_server: Any, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11's defect in one event loop: process A last heard from Redis before process B
    reserved its queue of slots; Redis dies; A must not start locally while B's slots still
    count. Then Redis comes back empty, and A's local starts must count before Redis slots do.
    """
    caplog.set_level(logging.WARNING, logger="insider_webpush")
    loop = asyncio.get_running_loop()
    period, quota = 1.0, 40  # 20 a process while alone
    a_client, b_client = await warmed(redis_server.url, 20), await warmed(redis_server.url, 30)
    a, b = (
        RedisLimiter(c, "fleet", quota, period, on_unavailable="fallback", expected_processes=2)
        for c in (a_client, b_client)
    )
    starts: list[float] = []
    local: list[float] = []

    async def once(limiter: RedisLimiter) -> None:
        await limiter.acquire()
        starts.append(loop.time())

    async def greedy(limiter: RedisLimiter) -> None:
        while True:
            await limiter.acquire()
            starts.append(loop.time())
            if limiter._down:  # a local start: Redis slots do not start while it is down
                local.append(loop.time())

    tasks: list[asyncio.Task[None]] = []
    try:
        await once(a)  # A hears from Redis, once
        tasks += [asyncio.create_task(once(b)) for _ in range(30)]  # B reserves its queue
        await asyncio.sleep(0.05)
        redis_server.signal(signal.SIGKILL)
        killed_at = loop.time()
        tasks += [asyncio.create_task(greedy(a)) for _ in range(20)]
        await asyncio.sleep(killed_at + 2.0 - loop.time())  # A and B go on locally from 1.5 s
        await asyncio.to_thread(redis_server.start)  # a new Redis: the key is lost
        for _ in range(150):  # both try again on the next whole second
            if not (a._down or b._down):
                break
            await asyncio.sleep(0.01)
        # The first slot reserved now (the script itself, uncapped: it only reports).
        script = redis_client.register_script(GCRA_LUA)
        T = emission_us(quota, period, a.burst, a.margin)
        wait, *_ = await script(keys=[a.key], args=[T, (a.burst - 1) * T, 1000, 0, 0, 0, 1, 0, 0])
        first_redis_slot = loop.time() + wait / 1e6
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for limiter, client in ((a, a_client), (b, b_client)):
            await limiter.aclose()
            await client.aclose()
    assert not a._down
    assert not b._down
    assert local, "no local start"
    # Going down: B's Redis slots begin up to the cap after the kill; A waits a window more.
    assert min(local) >= killed_at + MAX_LEAD * period + period
    assert max_in_window(starts, period) <= quota, [round(t - killed_at, 3) for t in starts]
    # Coming back: the local starts count a whole window before any Redis slot begins.
    assert first_redis_slot >= max(local) + period * (1 + a.margin)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis is unreachable" in m for m in messages) == 2
    assert sum("Redis is back; the quota is shared again" in m for m in messages) == 2


@pytest.mark.redis
async def test_an_outage_too_short_for_any_local_start_costs_no_hold(
    redis_server: Any,
) -> None:
    """Back before any process can have started locally: no hold, the next slot is at once;
    and a send waiting to fall back goes on through Redis as soon as it is back."""
    loop = asyncio.get_running_loop()
    client = await warmed(redis_server.url, 1)
    limiter = RedisLimiter(
        client, "short", 300, 3.0, on_unavailable="fallback", expected_processes=3
    )
    try:
        await limiter.acquire()  # heard from Redis
        redis_server.signal(signal.SIGKILL)
        killed_at = loop.time()
        waiting = asyncio.create_task(limiter.acquire())  # Redis refuses: the fallback waits
        await asyncio.to_thread(redis_server.start)
        await waiting
        started = loop.time()
    finally:
        await limiter.aclose()
        await client.aclose()
    # Back on the next whole second (or the one after, if Redis was not up yet), then a
    # slot at once: not 4.5 s later (a local start), nor after a hold of 4.5 s.
    assert started - killed_at < 2.3, started - killed_at
    assert limiter.dropped_slots == 0


# -- three processes ----------------------------------------------------------------------


def run_fleet(scenario: str, tmp_path: Path) -> dict[str, Any]:
    binary = _servers.require_redis_server()
    figures: dict[str, Any] = fleet.run_once(scenario, binary, tmp_path)
    print(f"\n{fleet.summary_line(figures)}")
    print("\n".join(figures["events"]))
    assert set(figures["sender_errors"]) <= {"NotSentError"}, figures  # only the stop's
    assert figures["rejected_429"] == 0, figures
    assert figures["max_in_window"] <= fleet.RATE_LIMIT, figures
    assert figures["local"] > 0, figures  # the senders did go on without Redis
    assert figures["last_second"] > 0, figures  # and back through Redis after the hold
    return figures


@pytest.mark.slow  # about 17 s of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
def test_three_processes_redis_killed_and_replaced(tmp_path: Path) -> None:
    run_fleet("kill", tmp_path)


@pytest.mark.slow  # about 17 s of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
def test_three_processes_redis_stopped_and_continued(tmp_path: Path) -> None:
    run_fleet("stop", tmp_path)
