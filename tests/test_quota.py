"""The quota and retry promises end to end, in real time at scaled quotas, over loopback."""

from __future__ import annotations

import asyncio

import pytest

from insider_webpush import (
    FakeInsider,
    Fault,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SlidingWindowLimiter,
    TransportError,
    WebPush,
    WebPushClient,
)
from insider_webpush.endpoints import Operation

# 1200 per 4 s: 300 launches a second, a real load, measured over three windows. (Shorter
# periods leave the limiter less slack for a late wake-up: see limiter._BURST_FRACTION.)
RATE_LIMIT = 1200
RATE_PERIOD = 4.0
WINDOWS = 3


def push(n: int) -> WebPush:
    return WebPush(
        title=f"push {n}",
        description="scaled quota",
        image="https://example.com/i.png",
        link="https://example.com",
        ttl=60,
    )


async def flood(client: WebPushClient, senders: int, seconds: float) -> int:
    """Greedy senders for ``seconds``; returns how many launches were confirmed."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    confirmed = 0

    async def sender(first: int) -> None:
        nonlocal confirmed
        n = first
        while loop.time() < stop:
            await client.send(push(n))
            confirmed += 1
            n += senders

    await asyncio.gather(*(sender(i) for i in range(senders)))
    return confirmed


def sent_in_later_windows(fake: FakeInsider, start: float) -> int:
    """Launches that arrived in windows 2..WINDOWS (the first one holds the burst)."""
    return sum(
        1
        for r in fake.requests
        if r.operation is Operation.LAUNCH_V2
        and start + RATE_PERIOD <= r.arrived_at < start + WINDOWS * RATE_PERIOD
    )


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_scaled_quota_is_used_to_the_full_and_never_crossed() -> None:
    # The margin absorbs the jitter between a grant and its arrival, which is absolute (this
    # loop runs the server too): 0.5 % of a real minute is 300 ms, of 4 s only 20 ms, which a
    # loaded 2-core CI machine once exceeded (one 429). 1 % of 4 s is 40 ms.
    limiter = SlidingWindowLimiter(RATE_LIMIT, RATE_PERIOD, margin=0.01)
    async with FakeInsider(rate_limit=RATE_LIMIT, rate_period=RATE_PERIOD) as fake:
        async with fake.client(limiter=limiter) as client:
            start = asyncio.get_running_loop().time()
            confirmed = await flood(client, senders=64, seconds=WINDOWS * RATE_PERIOD)
        later = sent_in_later_windows(fake, start)
        utilization = later / ((WINDOWS - 1) * RATE_LIMIT)
        print(
            f"\nscaled quota {RATE_LIMIT}/{RATE_PERIOD}s over {WINDOWS} windows: "
            f"confirmed={confirmed} 429s={fake.count(429)} "
            f"max_in_window={fake.max_in_window()} utilization={utilization:.4f}"
        )
        assert fake.count(429) == 0
        assert fake.max_in_window() <= RATE_LIMIT
        # The limiter's >= 99 % is proven exactly under the virtual clock (test_limiter.py);
        # in real time a busy CI machine's late wake-ups may cost a few slots more.
        assert utilization >= 0.98
        assert confirmed == fake.count(200)


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_two_clients_of_one_key_share_the_quota() -> None:
    async with FakeInsider(rate_limit=RATE_LIMIT, rate_period=RATE_PERIOD) as fake:
        async with fake.client() as first, fake.client() as second:
            await asyncio.gather(
                flood(first, senders=32, seconds=RATE_PERIOD + 1),
                flood(second, senders=32, seconds=RATE_PERIOD + 1),
            )
        # Each alone would take the whole quota: without sharing the server sees twice it.
        assert fake.count(429) == 0
        assert fake.max_in_window() <= RATE_LIMIT


async def test_a_429_pauses_every_sender_of_the_key_for_retry_after() -> None:
    pause = 0.3
    faults = [Fault(status=429, retry_after=pause, at={40}, operation=Operation.LAUNCH_V2)]
    async with FakeInsider(rate_limit=RATE_LIMIT, rate_period=RATE_PERIOD, faults=faults) as fake:
        async with fake.client() as client:
            await flood(client, senders=16, seconds=1.0)
        told = next(r for r in fake.requests if r.status == 429)
        during = [
            r for r in fake.requests if told.arrived_at < r.arrived_at < told.arrived_at + pause
        ]
        # Requests already on the wire when the 429 left may still land; nothing new starts.
        assert len(during) <= 16
        assert any(r.arrived_at >= told.arrived_at + pause for r in fake.requests)
        assert all(r.status == 200 for r in fake.requests if r is not told)


async def test_a_429_storm_ends_in_success_or_a_typed_error_and_never_a_duplicate() -> None:
    faults = [Fault(status=429, retry_after=0.01, probability=0.5)]
    policy = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)
    async with FakeInsider(
        rate_limit=RATE_LIMIT, rate_period=RATE_PERIOD, faults=faults, seed=3
    ) as fake:
        async with fake.client(retry=policy) as client:
            results = await asyncio.gather(
                *(client.send(push(n)) for n in range(200)), return_exceptions=True
            )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(e, RateLimitError) for e in errors)
        assert len(results) - len(errors) == len(fake.launches)
        titles = [r.body["title"] for r in fake.launches]  # type: ignore[index]
        assert len(titles) == len(set(titles))
        assert fake.count(429) > 100  # it really was a storm


async def test_a_server_error_is_never_retried_even_if_it_was_processed() -> None:
    faults = [Fault(status=500, processed=True, at={0})]
    async with FakeInsider(faults=faults) as fake:
        async with fake.client() as client:
            with pytest.raises(ServerError) as info:
                await client.send(push(0))
        assert info.value.status == 500
        assert info.value.ambiguous is True
        assert len(fake.requests) == 1
        assert len(fake.launches) == 1


async def test_a_dropped_connection_is_reported_ambiguous_and_not_resent() -> None:
    faults = [Fault(drop=True, processed=True, at={0})]
    async with FakeInsider(faults=faults) as fake:
        async with fake.client() as client:
            with pytest.raises(TransportError) as info:
                await client.send(push(0))
        assert info.value.ambiguous is True
        assert len(fake.requests) == 1


async def test_a_refused_connection_is_retried_until_the_server_is_up() -> None:
    fake = FakeInsider()
    await fake.start()
    base_url = fake.base_url
    port = fake.port
    await fake.close()  # nothing listens there now
    policy = RetryPolicy(max_attempts=20, base=0.05, cap=0.1, jitter=0)
    async with WebPushClient(
        fake.api_key, partner_id=fake.partner_id, base_url=base_url, retry=policy
    ) as client:
        task = asyncio.create_task(client.send(push(0)))
        await asyncio.sleep(0.2)
        async with FakeInsider(port=port) as revived:
            result = await task
            assert result.campaign_id > 0
            assert len(revived.launches) == 1


# -- the grant is taken at the wire -----------------------------------------------------------


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_a_grant_is_never_taken_while_waiting_for_a_pooled_connection() -> None:
    # 1200 pushes, 300 workers on the default 100-connection pool, and a server that holds
    # the first 100 requests for 3 s. Before the grant moved to the wire, the limiter kept
    # granting the 200 workers queued for a connection, and they arrived together when the
    # pool freed up: 601 in one window and a 429.
    async with FakeInsider(rate_limit=600, rate_period=6.0) as fake:
        fake.faults.append(Fault(latency=3.0, at=range(100)))
        async with fake.client() as client:
            result = await client.send_many([push(n) for n in range(1200)], concurrency=300)
    assert result.counts == {"total": 1200, "succeeded": 1200, "failed": 0, "ambiguous": 0}
    assert fake.count(429) == 0
    assert fake.max_in_window() <= 600


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_two_thousand_concurrent_sends_keep_the_quota() -> None:
    # A long-lived service: 2,000 send() calls at once on one client, 200 per 2 s. They queue
    # for the 100 pooled connections, and each takes its grant only once it has one.
    # The margin covers the jitter between a grant and its arrival, which is absolute (this
    # loop also runs the server and 2,000 tasks): 0.5 % of a real minute is 300 ms, of 2 s
    # only 10 ms, which a loaded 2-core CI machine exceeded. 5 % of 2 s is 100 ms.
    limiter = SlidingWindowLimiter(200, 2.0, margin=0.05)
    async with (
        FakeInsider(rate_limit=200, rate_period=2.0) as fake,
        fake.client(limiter=limiter) as client,
    ):
        results = await asyncio.gather(*(client.send(push(n)) for n in range(2000)))
    assert len({r.campaign_id for r in results}) == 2000
    assert fake.count(429) == 0
    assert fake.max_in_window() <= 200
