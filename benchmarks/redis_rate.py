"""Several processes, one API key, one Redis: does the shared quota hold, and how full is it?

Starts a FakeInsider in this process enforcing ``rate_limit`` per ``rate_period``, then
``processes`` sender processes (this file with ``--child``), each running ``concurrency``
greedy senders through ``WebPushClient(redis_url=...)`` for ``windows + 1`` quota periods,
all started together once every one has connected to Redis. Figures:

- ``sent``: launches the fake answered 200; ``rejected_429``: its 429 answers;
- ``max_in_window``: the most launches that *arrived* in any sliding window of
  ``rate_period`` (every arrival counts): must not exceed ``rate_limit``;
- ``utilization``: launches answered 200 in the ``windows`` whole periods after the first
  (measured from the first arrival), divided by ``windows * rate_limit``, as in ``rate.py``:
  the first period holds the start (every sender's first request opens a connection);
  ``per_window``: the counts of all ``windows + 1`` periods;
- ``acquire_us``, ``acquire_cpu_us``: mean wall-clock and CPU microseconds of one acquire
  that has no need to wait (one EVALSHA round trip), measured in every child after its run;
- ``dropped_slots``: reserved slots the children did not use (begun too late, or paused);
- ``child_errors``: exceptions the senders saw, by class (none in a healthy run).

    python benchmarks/redis_rate.py --redis redis://127.0.0.1:6379/0 \\
        [--processes 4] [--rate-limit 1000] [--rate-period 1] [--windows 5] [--concurrency 16]

Prints a table and ends with ``RESULT {json}``. ``benchmarks/rate.py --redis URL`` runs it
too. ``tests/test_redis_limiter.py`` uses :func:`measure` for its multi-process cases.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _sample import PUSH

from insider_webpush import FakeInsider, TransportError, WebPushClient
from insider_webpush.endpoints import Operation
from insider_webpush.limiter import key_fingerprint
from insider_webpush.redis_limiter import shared_redis_limiter

CONCURRENCY = 16  # senders per process
START_TIMEOUT = 60.0  # seconds for every child to be ready (imports, Redis connection)
PROBE_ACQUIRES = 300
CHILD = os.path.abspath(__file__)


async def measure(
    redis_url: str,
    processes: int,
    rate_limit: int,
    rate_period: float,
    windows: int,
    *,
    concurrency: int = CONCURRENCY,
    fallback_processes: int | None = None,
    during: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """One run; ``during`` is awaited alongside the senders (a test restarts Redis there)."""
    async with FakeInsider(rate_limit=rate_limit, rate_period=rate_period) as fake:
        config = {
            "redis_url": redis_url,
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "partner_id": fake.partner_id,
            "rate_limit": rate_limit,
            "rate_period": rate_period,
            "seconds": (windows + 1) * rate_period + 0.3 + 0.1 * rate_period,
            "concurrency": concurrency,
            "fallback_processes": fallback_processes,
        }
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                CHILD,
                "--child",
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        try:
            async with asyncio.timeout(START_TIMEOUT):
                for child in children:
                    assert child.stdout is not None
                    if await child.stdout.readline() != b"ready\n":
                        raise RuntimeError("a sender process failed to start")
            started = time.perf_counter()
            for child in children:  # one write each: they start within a millisecond or so
                assert child.stdin is not None
                child.stdin.write(b"go\n")
            hook = asyncio.ensure_future(during()) if during is not None else None
            outputs = [await child.communicate() for child in children]
            if hook is not None:
                await hook
            seconds = time.perf_counter() - started
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                    await child.communicate()
        reports = []
        for child, (out, err) in zip(children, outputs, strict=True):
            if child.returncode != 0:
                raise RuntimeError(f"a sender process failed:\n{err.decode()[-3000:]}")
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        launches = [r for r in fake.requests if r.operation is Operation.LAUNCH_V2]
        ok = sorted(r.arrived_at for r in launches if r.status == 200)
        max_in_window = fake.max_in_window()
        rejected = sum(1 for r in launches if r.status == 429)
    first = launches[0].arrived_at if launches else 0.0
    per_window = [
        bisect.bisect_left(ok, first + (i + 1) * rate_period)
        - bisect.bisect_left(ok, first + i * rate_period)
        for i in range(windows + 1)
    ]
    errors: collections.Counter[str] = collections.Counter()
    for report in reports:
        errors.update(report["errors"])
    return {
        "processes": processes,
        "concurrency": concurrency,
        "rate_limit": rate_limit,
        "rate_period": rate_period,
        "windows": windows,
        "sent": len(ok),
        "rejected_429": rejected,
        "max_in_window": max_in_window,
        "utilization": round(sum(per_window[1:]) / (windows * rate_limit), 4),
        "per_window": per_window,
        "acquire_us": round(sum(r["acquire_us"] for r in reports) / len(reports), 1),
        "acquire_cpu_us": round(sum(r["acquire_cpu_us"] for r in reports) / len(reports), 1),
        "dropped_slots": sum(r["dropped_slots"] for r in reports),
        "child_errors": dict(errors),
        "seconds": round(seconds, 2),
    }


def run_redis_rate(
    redis_url: str, processes: int, rate_limit: int, rate_period: float, windows: int
) -> dict[str, Any]:
    """:func:`measure` with the default concurrency, from synchronous code."""
    return asyncio.run(measure(redis_url, processes, rate_limit, rate_period, windows))


# -- a sender process --------------------------------------------------------------------


async def child(config: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rate_limit, rate_period = config["rate_limit"], config["rate_period"]
    key = (config["base_url"], key_fingerprint(config["api_key"]), Operation.LAUNCH_V2.value)
    errors: collections.Counter[str] = collections.Counter()
    async with WebPushClient(
        config["api_key"],
        partner_id=config["partner_id"],
        base_url=config["base_url"],
        rate_limit=rate_limit,
        rate_period=rate_period,
        redis_url=config["redis_url"],
        redis_fallback_processes=config["fallback_processes"],
    ) as client:
        # The very limiter the client takes from the registry, to read its counters; and a
        # quota nobody reaches, on the same connection, to time one acquire.
        limiter = shared_redis_limiter(
            config["redis_url"],
            key,
            rate_limit,
            rate_period,
            fallback_processes=config["fallback_processes"],
        )
        probe = shared_redis_limiter(
            config["redis_url"], ("probe", key[1], f"acquire-{os.getpid()}"), 10**9, 1.0
        )
        try:
            # Open the connections the senders will use and load the script before the start:
            # a slot whose reply took a connection set-up to come is given up, so a cold start
            # would show up as a slow first window.
            await asyncio.gather(*(probe.acquire() for _ in range(config["concurrency"])))
            print("ready", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)

            async def sender() -> None:
                while True:
                    try:
                        await client.send(PUSH)
                    except TransportError as exc:
                        errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.02)  # Redis down (fail closed): try again
                    except Exception as exc:
                        errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.01)

            senders = [asyncio.create_task(sender()) for _ in range(config["concurrency"])]
            await asyncio.sleep(config["seconds"])
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(PROBE_ACQUIRES):
                await probe.acquire()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            dropped = limiter.dropped_slots
        finally:
            await probe.aclose()
            await limiter.aclose()
    return {
        "errors": dict(errors),
        "dropped_slots": dropped,
        "acquire_us": wall / PROBE_ACQUIRES * 1e6,
        "acquire_cpu_us": cpu / PROBE_ACQUIRES * 1e6,
    }


# -- the command --------------------------------------------------------------------------


def table(figures: dict[str, Any]) -> None:
    rows = [
        ("processes x senders", f"{figures['processes']} x {figures['concurrency']}"),
        ("quota", f"{figures['rate_limit']} per {figures['rate_period']:g} s"),
        ("windows measured", f"{figures['windows']} (after the first)"),
        ("sent (200)", figures["sent"]),
        ("429s", figures["rejected_429"]),
        ("max in any window", f"{figures['max_in_window']} (quota {figures['rate_limit']})"),
        ("utilization", f"{figures['utilization']:.2%}"),
        ("per window", " ".join(map(str, figures["per_window"]))),
        ("acquire, wall us", figures["acquire_us"]),
        ("acquire, CPU us", figures["acquire_cpu_us"]),
        ("dropped slots", figures["dropped_slots"]),
        ("sender errors", figures["child_errors"] or "none"),
        ("seconds", figures["seconds"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", metavar="URL", help="the Redis every process shares")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate-limit", type=int, default=1000)
    parser.add_argument("--rate-period", type=float, default=1.0)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="per process")
    parser.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(json.loads(args.child)))), flush=True)
        return
    if not args.redis:
        parser.error("--redis URL is required")
    figures = asyncio.run(
        measure(
            args.redis,
            args.processes,
            args.rate_limit,
            args.rate_period,
            args.windows,
            concurrency=args.concurrency,
        )
    )
    print("redis_rate: N processes share one quota through Redis; FakeInsider counts arrivals")
    table(figures)
    print("RESULT " + json.dumps(figures))


if __name__ == "__main__":
    main()
