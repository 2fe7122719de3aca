"""RedisLimiter: one quota shared by processes through a real redis-server.

Every case that needs Redis starts its own ``redis-server`` (tests/redis_server.py); under
CI=true a missing binary fails these tests instead of skipping them. Periods are scaled: the
limiter's rules are the real ones.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis.asyncio as aioredis

from insider_webpush import (
    FakeInsider,
    RetryPolicy,
    TransportError,
    ValidationError,
    WebPush,
    WebPushClient,
)
from insider_webpush.limiter import key_fingerprint
from insider_webpush.outcomes import Stage
from insider_webpush.redis_limiter import GCRA_LUA, RedisLimiter, redis_key

from .helper_modules import helper

ROOT = Path(__file__).resolve().parents[1]


_servers = helper("redis_server")
RedisServer = _servers.RedisServer
free_port = _servers.free_port
require_redis_server = _servers.require_redis_server
redis_server = _servers.redis_server  # fixtures
redis_url_down = _servers.redis_url_down
PUSH = WebPush(
    title="Sale",
    description="Everything 30% off",
    image="https://example.com/i.png",
    link="https://example.com/sale",
    ttl=3600,
)


def max_in_window(times: Sequence[float], period: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, time in enumerate(times):
        while time - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


def redis_rate() -> ModuleType:
    """benchmarks/redis_rate.py: its sender processes are the multi-process cases' senders."""
    if str(ROOT / "benchmarks") not in sys.path:  # for its sibling benchmarks/_sample.py
        sys.path.append(str(ROOT / "benchmarks"))
    return helper("redis_rate", ROOT / "benchmarks/redis_rate.py")


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


# -- no server needed ---------------------------------------------------------------------


def test_redis_key_holds_hashes_only() -> None:
    api_key = "secret-api-key-123"
    key = redis_key(("https://web-push.api.useinsider.com", key_fingerprint(api_key), "launch_v2"))
    assert key.startswith("insider_webpush:")
    host_hash, fingerprint, operation = key.split(":")[1:]
    assert len(host_hash) == 12
    assert fingerprint == key_fingerprint(api_key)
    assert operation == "launch_v2"
    assert api_key not in key
    assert "useinsider" not in key
    assert redis_key(("https://other.example", key_fingerprint(api_key), "launch_v2")) != key


def test_without_redis_installed_the_package_imports_and_the_limiter_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import insider_webpush\n"
        "assert 'RedisLimiter' not in insider_webpush.__all__\n"
        "from insider_webpush import *\n"
        "try:\n"
        "    import insider_webpush.redis_limiter\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'insider-webpush[redis]'" in out.stdout


def test_bad_settings_are_refused() -> None:
    client = aioredis.Redis()  # never connects
    with pytest.raises(ValueError, match="on_unavailable"):
        RedisLimiter(client, "k", 10, 1.0, on_unavailable="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected_processes"):
        RedisLimiter(client, "k", 10, 1.0, expected_processes=0)
    with pytest.raises(ValueError, match="rate_limit"):
        RedisLimiter(client, "k", 0, 1.0)
    with pytest.raises(ValidationError, match="redis_fallback_processes"):
        WebPushClient("k", redis_url="redis://127.0.0.1:1/0", redis_fallback_processes=0)
    with pytest.raises(ValidationError, match="redis_fallback_processes"):
        WebPushClient("k", redis_fallback_processes=2)  # no redis_url


async def test_fail_closed_when_redis_is_down(redis_url_down: str) -> None:
    async with (
        FakeInsider(rate_limit=10, rate_period=1.0) as fake,
        fake.client(
            redis_url=redis_url_down, retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
        ) as client,
    ):
        with pytest.raises(TransportError) as caught:
            await client.send(PUSH)  # nothing was sent: retried, then raised
    assert caught.value.stage is Stage.NOT_SENT
    assert caught.value.ambiguous is False
    assert "Redis" in str(caught.value)
    assert fake.api_key not in str(caught.value)
    assert fake.requests == []


# -- the script ---------------------------------------------------------------------------


@pytest.mark.redis
async def test_script_reserves_slots_on_redis_clock(redis_client: aioredis.Redis) -> None:
    script = redis_client.register_script(GCRA_LUA)
    T, tau, keep = 100_000, 200_000, 1000  # us: burst 3

    async def call(seen: int = 0, lead: int = 0, pause: int = 0, reserve: int = 1) -> list[int]:
        reply: list[int] = await script(keys=["k"], args=[T, tau, keep, seen, lead, pause, reserve])
        return reply

    replies = [await call() for _ in range(5)]  # well within 100 ms of each other
    now0 = replies[0][1]
    slots = [wait + now for wait, now, _, _ in replies]
    # The burst of 3 begins at once, then one slot per T on Redis's clock, in integer us.
    assert slots == [now0, replies[1][1], replies[2][1], now0 + T, now0 + 2 * T]
    assert [tat for _, _, tat, _ in replies] == [now0 + k * T for k in range(1, 6)]
    ttl_ms = await redis_client.pttl("k")
    assert 0 < ttl_ms <= (now0 + 5 * T - replies[-1][1]) // 1000 + 1 + keep

    # A pause: no slot begins before its end, and none in a burst right at its end.
    _, now, tat, paused = await call(pause=500_000, reserve=0)
    assert paused == now + 500_000
    assert tat == paused + tau
    wait, now, _, _ = await call()
    assert now + wait == paused
    wait, now, _, _ = await call()
    assert now + wait == paused + T

    # The state lost with slots still outstanding: a caller that saw TAT restores it,
    # plus the lead it saw; a caller whose TAT is not ahead changes nothing.
    _, now, tat, _ = await call(reserve=0)
    await redis_client.delete("k")
    wait, now, new_tat, _ = await call(seen=tat, lead=300_000)
    assert now + wait == tat + 300_000 - tau
    assert new_tat == tat + 300_000 + T
    _, _, unchanged, _ = await call(seen=tat, lead=999_999, reserve=0)
    assert unchanged == new_tat


# -- one process --------------------------------------------------------------------------


async def warmed(url: str, connections: int) -> aioredis.Redis:
    """A Redis client with ``connections`` open and the script loaded: a slot whose reply
    waited on a connection set-up is given up, which would blur what a test measures."""
    client = aioredis.Redis.from_url(url)
    probe = RedisLimiter(client, "warm-up", 10**9, 1.0)
    await asyncio.gather(*(probe.acquire() for _ in range(connections)))
    await probe.aclose()
    return client


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
async def test_no_window_holds_more_than_the_quota(redis_server: RedisServer) -> None:
    """Many acquirers on two limiters, each with its own connections as two processes."""
    loop = asyncio.get_running_loop()
    clients = [await warmed(redis_server.url, 25) for _ in range(2)]
    limiters = [RedisLimiter(client, "bound", 200, 2.0) for client in clients]
    starts: list[float] = []
    stop = loop.time() + 4.1

    async def acquirer(limiter: RedisLimiter) -> None:
        while loop.time() < stop:
            await limiter.acquire()
            starts.append(loop.time())

    tasks = [asyncio.create_task(acquirer(lim)) for lim in limiters for _ in range(25)]
    await asyncio.sleep(stop - loop.time())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for limiter, client in zip(limiters, clients, strict=True):
        await limiter.aclose()
        await client.aclose()
    first = min(starts)
    assert max_in_window(starts, 2.0) <= 200
    # 50 acquirers in one event loop make starts late often enough that some slots are
    # dropped (5 ms of lateness at this period): this case is about the bound. The >= 97 %
    # of the quota is asserted where the senders are real processes, below.
    assert sum(1 for t in starts if t < first + 4.0) >= 0.8 * 400  # not starved


@pytest.mark.redis
async def test_a_late_slot_is_dropped_not_started(redis_server: RedisServer) -> None:
    """A process that stalls past its slots must not start them all at once afterwards."""
    loop = asyncio.get_running_loop()
    client = await warmed(redis_server.url, 5)
    limiter = RedisLimiter(client, "late", 10, 1.0)  # burst 2, then one slot per 111.7 ms
    emission = 1.005 / (10 + 1 - limiter.burst)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(loop.time())

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    await asyncio.sleep(0.03)  # five slots reserved: 0, 0, 112, 223 and 335 ms
    blocked_until = loop.time() + 0.5
    while loop.time() < blocked_until:  # the event loop stalls past the last three
        pass
    await asyncio.gather(*tasks)
    await limiter.aclose()
    await client.aclose()
    assert limiter.dropped_slots >= 3  # more if a new slot's reply came back late too
    # New slots for those three: no more than the burst at once, not all three. (Fewer is
    # possible: on a loaded CI machine the new reservations' replies came back apart.)
    assert max_in_window(starts, 0.9 * emission) <= limiter.burst, starts


@pytest.mark.redis
async def test_cancelled_acquirers_stop(redis_server: RedisServer) -> None:
    """redis-py with a socket_timeout can swallow a cancellation on Python 3.11 (its send goes
    through asyncio.wait_for); the limiter delivers it, so a cancelled sender stops."""
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=1.0)
    limiter = RedisLimiter(client, "cancel", 10**6, 1.0)
    rng = random.Random(6)
    try:
        for _ in range(30):

            async def acquirer() -> None:
                while True:
                    await limiter.acquire()

            tasks = [asyncio.create_task(acquirer()) for _ in range(16)]
            await asyncio.sleep(rng.random() * 0.01)
            for task in tasks:
                task.cancel()
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            assert not pending, "a cancelled acquirer kept going"
    finally:
        await limiter.aclose()
        await client.aclose()


@pytest.mark.redis
async def test_penalize_pauses_every_instance_and_their_reserved_slots(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    loop = asyncio.get_running_loop()
    a_client, b_client = await warmed(redis_server.url, 1), await warmed(redis_server.url, 4)
    a = RedisLimiter(a_client, "pause", 10, 1.0)  # burst 2, then one slot per 111.7 ms
    b = RedisLimiter(b_client, "pause", 10, 1.0)
    await a.acquire()  # the first of the burst
    b_starts: list[float] = []

    async def b_sender() -> None:
        await b.acquire()
        b_starts.append(loop.time())

    b_tasks = [asyncio.create_task(b_sender()) for _ in range(4)]
    await asyncio.sleep(0.03)  # b has started the burst's second, and holds 112, 223, 335 ms
    penalized_at = loop.time()
    a.penalize(0.6)  # a 429 in process a
    for _ in range(1000):  # until process a's pause is in Redis
        if await redis_client.hget(a.key, "paused"):
            break
        await asyncio.sleep(0.001)
    await a.acquire()
    a_start = loop.time()
    await asyncio.gather(*b_tasks)
    for limiter, client in ((a, a_client), (b, b_client)):
        await limiter.aclose()
        await client.aclose()
    resume = penalized_at + 0.6
    assert a_start >= resume
    assert b_starts[0] < penalized_at
    assert min(b_starts[1:]) >= resume, [t - penalized_at for t in b_starts]
    assert b.dropped_slots >= 3  # the three inside the pause (more if one came back late)


# The fallback (on_unavailable="fallback") is tested in tests/test_redis_fallback.py.


@pytest.mark.redis
async def test_clients_share_one_connection_and_the_last_close_closes_it(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async def others() -> int:
        # CLIENT LIST counts this test's own connection too.
        for _ in range(100):
            count = len(await redis_client.client_list()) - 1
            if count == 0:
                break
            await asyncio.sleep(0.01)
        return count

    async with FakeInsider(rate_limit=50, rate_period=1.0) as fake:
        one = fake.client(redis_url=redis_server.url)
        two = fake.client(redis_url=redis_server.url)
        await one.send(PUSH)
        await two.send(PUSH)
        assert await others() == 1  # one Redis client for the loop and URL
        await one.close()
        assert await others() == 1  # still in use by `two`
        await one.send(PUSH)  # a closed client may be used again
        await one.close()
        await two.close()
        assert await others() == 0


# -- several processes --------------------------------------------------------------------


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
async def test_four_processes_share_one_quota(redis_server: RedisServer) -> None:
    # 400 per 4 s over 3 windows: a sender process descheduled on a busy 2-core machine gives
    # up the slots it is late for (by over 10 ms here), never sends them late into the next
    # window; a longer run dilutes one such stall. CI once saw one window at 363 of 400 (a
    # stall of ~0.35 s): 0.9642 over the run. The bound and the 0 x 429 stay strict.
    figures: dict[str, Any] = await redis_rate().measure(redis_server.url, 4, 400, 4.0, 3)
    print(f"\n4 processes, 400 per 4 s: {figures}")
    assert figures["child_errors"] == {}
    assert figures["rejected_429"] == 0
    assert figures["max_in_window"] <= 400, figures
    assert figures["utilization"] >= 0.96, figures


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
async def test_redis_restart_mid_run_keeps_the_bound(redis_server: RedisServer) -> None:
    """The restarted Redis has forgotten the slots still waiting in the senders; the
    senders' last TAT puts the new ones after them."""

    async def restart() -> None:
        await asyncio.sleep(1.5)  # senders hold about 0.6 s of slots at any moment
        await asyncio.to_thread(redis_server.restart)

    figures: dict[str, Any] = await redis_rate().measure(
        redis_server.url, 4, 200, 2.0, 2, during=restart
    )
    # Failing closed while it was down: a send either waited out the restart in its retries
    # (a TransportError of stage NOT_SENT is retried) or raised that TransportError.
    assert set(figures["child_errors"]) <= {"TransportError"}
    assert figures["rejected_429"] == 0
    assert figures["max_in_window"] <= 200, figures
    assert figures["per_window"][-1] >= 0.9 * 200, figures  # back to the whole quota
