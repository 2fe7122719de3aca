"""One quota per process across event loops and threads, in real time against a strict
server: one client used from two successive ``asyncio.run`` calls, and at the same time a
thread running its own loop with the same client and a fresh one, all one key at 300 per 3 s
(the issue's scenario): no 429, and no window of the server over the quota.

The server is FakeInsider in a process of its own, as Insider is: in this process its
arrival times would queue behind the senders' threads for the GIL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from insider_webpush import RetryPolicy, WebPush, WebPushClient
from insider_webpush.testing.records import max_in_window

from .helper_modules import helper
from .samples import MINIMAL_FIELDS

RATE_LIMIT, RATE_PERIOD = 300, 3.0
PUSH = WebPush(**MINIMAL_FIELDS)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def strict_fake(tmp_path: Path) -> Iterator[Any]:
    """FakeInsider at 300 per 3 s, answering 429 past it, in a process of its own."""
    with helper("fleet_support").FakeInsiderProcess(RATE_LIMIT, RATE_PERIOD, tmp_path) as fake:
        yield fake


async def burst(client: WebPushClient, n: int) -> list[BaseException | object]:
    return await asyncio.gather(*(client.send(PUSH) for _ in range(n)), return_exceptions=True)


@pytest.mark.slow
def test_two_asyncio_runs_and_a_thread_share_one_window(strict_fake: Any) -> None:
    kwargs: dict[str, Any] = {
        "partner_id": "10000001",
        "base_url": strict_fake.base_url,
        "rate_limit": RATE_LIMIT,
        "rate_period": RATE_PERIOD,
        "retry": RetryPolicy(max_retry_after=0.0),  # a 429 would fail its send, not hide
    }
    api_key = helper("fleet_support").API_KEY
    client = WebPushClient(api_key, **kwargs)
    results: list[BaseException | object] = []

    def other_thread() -> None:
        async def main() -> None:
            async with WebPushClient(api_key, **kwargs) as fresh:
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
    arrivals = strict_fake.stop()

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(arrivals) == 900
    assert [a.status for a in arrivals].count(429) == 0
    busiest = max_in_window(sorted(a.at for a in arrivals), RATE_PERIOD)
    assert busiest <= RATE_LIMIT
    print(f"\n900 launches over 4 loops in 2 threads: busiest {RATE_PERIOD:g} s window {busiest}")
