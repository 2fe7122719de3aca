"""Batch runs that tests/test_batch.py starts in a subprocess of their own.

python tests/batch_child.py send BASE_URL JOURNAL COUNT CONCURRENCY
    send_many COUNT pushes (see ``make_pushes``) to a FakeInsider at BASE_URL with a
    journal, as a process the test then kills with SIGKILL mid-batch.

python tests/batch_child.py memory COUNT
    stream COUNT pushes through a client on a scripted transport (the real request path,
    no sockets), the limiter lifted, and print one JSON line with the peak RSS before and
    after: a fresh process, so the baseline is clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script or loaded
from stub_transport import ScriptedTransport

from insider_webpush import RetryPolicy, SlidingWindowLimiter, WebPush, WebPushClient

API_KEY = "k"
PARTNER_ID = "1"


def make_pushes(count: int, prefix: str = "push") -> Iterator[WebPush]:
    """``count`` pushes, each with a unique title so a test can tell launches apart."""
    for index in range(count):
        yield WebPush(
            title=f"{prefix} {index}",
            description="A batch push",
            image="https://example.com/i.png",
            link="https://example.com/sale",
            ttl=3600,
        )


async def send(base_url: str, journal: str, count: int, concurrency: int) -> None:
    async with WebPushClient(
        API_KEY,
        partner_id=PARTNER_ID,
        base_url=base_url,
        limiter=SlidingWindowLimiter(100_000, 1.0),
        retry=RetryPolicy(base=0.001, cap=0.01),
    ) as client:
        await client.send_many(make_pushes(count), concurrency=concurrency, journal=journal)


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


async def memory(count: int) -> None:
    transport = ScriptedTransport(record=False)
    async with WebPushClient(
        API_KEY,
        partner_id=PARTNER_ID,
        limiter=SlidingWindowLimiter(10**9, 1.0),
        transport=transport,
    ) as client:
        # Warm up: every code path, allocator arena and cache is in place before the baseline.
        async for _ in client.stream(make_pushes(2_000, "warm-up")):
            pass
        before = peak_rss_kb()
        seen = 0
        async for outcome in client.stream(make_pushes(count)):
            seen += outcome.ok
        after = peak_rss_kb()
    print(json.dumps({"count": count, "ok": seen, "before_kb": before, "after_kb": after}))


def main(argv: list[str]) -> None:
    if argv[0] == "send":
        asyncio.run(send(argv[1], argv[2], int(argv[3]), int(argv[4])))
    elif argv[0] == "memory":
        asyncio.run(memory(int(argv[1])))
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
