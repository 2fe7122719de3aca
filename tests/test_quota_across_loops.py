"""One quota per process across event loops and threads, in real time against a strict
server: one client used from two successive ``asyncio.run`` calls, and at the same time a
thread running its own loop with the same client and a fresh one, all one key at 300 per 3 s
(the issue's scenario): no 429, and no window of the server over the quota."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from insider_webpush import FakeInsider, RetryPolicy, WebPush, WebPushClient
from insider_webpush.testing.records import max_in_window

from .samples import MINIMAL_FIELDS
from .test_transport_loops import ThreadLoop

RATE_LIMIT, RATE_PERIOD = 300, 3.0
PUSH = WebPush(**MINIMAL_FIELDS)


@pytest.fixture
def strict_fake() -> Iterator[FakeInsider]:
    """FakeInsider at 300 per 3 s, answering 429 past it, in a thread of its own."""
    server = ThreadLoop()
    insider = FakeInsider(rate_limit=RATE_LIMIT, rate_period=RATE_PERIOD)
    server.run(insider.start())
    try:
        yield insider
    finally:
        server.run(insider.close())
        server.stop()


async def burst(client: WebPushClient, n: int) -> list[BaseException | object]:
    return await asyncio.gather(*(client.send(PUSH) for _ in range(n)), return_exceptions=True)


@pytest.mark.slow
def test_two_asyncio_runs_and_a_thread_share_one_window(strict_fake: FakeInsider) -> None:
    kwargs = {
        "partner_id": "10000001",
        "base_url": strict_fake.base_url,
        "rate_limit": RATE_LIMIT,
        "rate_period": RATE_PERIOD,
        "retry": RetryPolicy(max_retry_after=0.0),  # a 429 would fail its send, not hide
    }
    client = WebPushClient(strict_fake.api_key, **kwargs)  # type: ignore[arg-type]
    results: list[BaseException | object] = []

    def other_thread() -> None:
        async def main() -> None:
            fresh = WebPushClient(strict_fake.api_key, **kwargs)  # type: ignore[arg-type]
            async with fresh:
                results.extend(await burst(client, 200))  # the shared client, another loop
                results.extend(await burst(fresh, 200))  # and a new client of the same key

        asyncio.run(main())

    thread = threading.Thread(target=other_thread)
    thread.start()
    results.extend(asyncio.run(burst(client, 250)))  # no `async with`: the Celery pattern
    results.extend(asyncio.run(burst(client, 250)))  # a second loop, the same client
    thread.join(timeout=60)
    assert not thread.is_alive()
    asyncio.run(client.close())

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    launches = strict_fake.launches
    statuses = [r.status for r in strict_fake.requests]
    assert len(launches) == 900
    assert statuses.count(429) == 0
    busiest = max_in_window([r.arrived_at for r in strict_fake.requests], RATE_PERIOD)
    assert busiest <= RATE_LIMIT
    print(f"\n900 launches over 4 loops in 2 threads: busiest {RATE_PERIOD:g} s window {busiest}")
