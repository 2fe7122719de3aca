"""Peak memory of ``stream`` over a million pushes, next to ``asyncio.gather``.

Each measurement runs in a fresh child process. The client sends through a stub transport
(a session object that answers every request at once with a success, so no socket or server
is involved) with the limiter lifted, and every push is a distinct ``WebPush`` made lazily by
a generator. After a warm-up of 1000 pushes through the same path, the child resets its peak
RSS (``/proc/self/clear_refs``) and reads its RSS; the growth is the peak RSS (``VmHWM``)
during the run minus that baseline.

- **stream**: ``async for outcome in client.stream(pushes, concurrency=64)`` over ``--n``
  pushes (default 1 000 000), counting outcomes;
- **gather**: ``await asyncio.gather(*(client.send(p) for p in pushes))`` over
  ``--gather-n`` pushes (default 100 000: at a million it needs gigabytes).

    python benchmarks/memory.py [--n 1000000] [--gather-n 100000]

Ends with ``RESULT {json}`` holding ``n`` and ``rss_growth_mb`` (of ``stream``), and the
gather baseline's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from _stubs import NoLimit, StubTransport

from insider_webpush import WebPush, WebPushClient

WARMUP = 1000
MB = 1024 * 1024


def pushes(n: int, start: int = 0) -> Iterator[WebPush]:
    for i in range(start, start + n):
        yield WebPush(
            title=f"Push {i}",
            description="Everything 30% off until midnight",
            image="https://example.com/icon.png",
            link=f"https://example.com/sale/{i}",
            ttl=3600,
        )


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


async def child(mode: str, n: int) -> dict[str, Any]:
    client = WebPushClient(
        "bench-key",
        partner_id="10000001",
        limiter=NoLimit(),
        transport=StubTransport(),
    )
    async with client:
        if mode == "stream":  # the same path as measured, so its caches are not counted
            async for _ in client.stream(pushes(WARMUP, start=-WARMUP)):
                pass
        else:
            await asyncio.gather(*(client.send(p) for p in pushes(WARMUP, start=-WARMUP)))
        reset_peak()
        baseline = status_kb("VmRSS")
        started = time.perf_counter()
        if mode == "stream":
            done = 0
            async for outcome in client.stream(pushes(n), concurrency=64):
                done += outcome.ok
        else:
            results = await asyncio.gather(*(client.send(p) for p in pushes(n)))
            done = sum(r.success for r in results)
        seconds = time.perf_counter() - started
        peak = status_kb("VmHWM")
    assert done == n, (done, n)
    return {
        "mode": mode,
        "n": n,
        "baseline_mb": round(baseline / 1024, 1),
        "peak_mb": round(peak / 1024, 1),
        "rss_growth_mb": round((peak - baseline) / 1024, 1),
        "bytes_per_push": round((peak - baseline) * 1024 / n, 1),
        "seconds": round(seconds, 1),
    }


def measure(mode: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--n", str(n)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="pushes streamed")
    parser.add_argument("--gather-n", type=int, default=100_000, help="pushes gathered")
    parser.add_argument("--child", choices=("stream", "gather"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.n))))
        return

    runs = [measure("stream", args.n), measure("gather", args.gather_n)]
    print("memory: peak RSS growth over a warmed-up baseline; stub transport, limiter lifted")
    header = f"{'mode':<8} {'pushes':>9} {'RSS growth MB':>13} {'bytes/push':>10} {'seconds':>7}"
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r['mode']:<8} {r['n']:>9} {r['rss_growth_mb']:>13.1f} "
            f"{r['bytes_per_push']:>10.1f} {r['seconds']:>7.1f}"
        )
    stream, gather = runs
    print(
        f"gather at {args.n} pushes would need about "
        f"{gather['bytes_per_push'] * args.n / MB:.0f} MB (linear in n)"
    )
    result = {
        "n": stream["n"],
        "rss_growth_mb": stream["rss_growth_mb"],
        "seconds": stream["seconds"],
        "gather_n": gather["n"],
        "gather_rss_growth_mb": gather["rss_growth_mb"],
        "gather_bytes_per_push": gather["bytes_per_push"],
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
