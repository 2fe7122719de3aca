"""How close to the quota the SDK runs, and whether it ever goes over.

Each run streams pushes through ``WebPushClient.stream`` to a FakeInsider over loopback that
enforces the same quota, with more demand than the quota allows, for ``windows + 1`` quota
periods. Periods are scaled down so that several windows fit in a minute. The default runs:

- ``6000/6`` (the headline): the default quota's 6000 per window with the period scaled 10x
  down, so 10x the default rate (1000 requests/s). The count per window, and so the
  limiter's burst (24) and margin (0.5 % of the period), are the real quota's;
- ``1000/1``: 10x the default quota (60 000 per 60 s) scaled 60x down to 1000 per 1 s;
- ``100/1``: the default rate (6000 per 60 s) scaled 60x down to 100 per 1 s.

A scaled window leaves proportionally less time for event-loop jitter (the margin is 30 ms at
6 s and 5 ms at 1 s, against 300 ms at 60 s; the burst covers 24, 4 and 20 ms of late
wake-ups), so these runs are harder than the real quota, not easier.

Figures, per run:

- ``sent``: pushes Insider (the fake) confirmed; ``rejected_429``: its 429 answers;
- ``max_in_window``: the most requests that *arrived* at the server in any sliding window of
  ``rate_period`` seconds (every arrival counts, answered or not): it must not exceed
  ``rate_limit``;
- ``utilization``: arrivals in the ``windows`` full periods after the first, measured from the
  first arrival, divided by ``windows * rate_limit``. The first period is left out because a
  run starts with an empty window, whose share of the demand is not a steady state.

    python benchmarks/rate.py [--runs 6000/6,1000/1,100/1] [--windows N] [--plot rate.png]
    python benchmarks/rate.py --redis redis://127.0.0.1:6379/0 [--processes 4] [--runs 6000/6]

``--redis`` runs ``benchmarks/redis_rate.py`` instead (several processes sharing the quota
through Redis; its utilization counts the first period too) on the first of ``--runs``.

Ends with ``RESULT {json}`` holding ``rate_limit``, ``rate_period``, ``sent``, ``rejected_429``,
``max_in_window`` and ``utilization`` of the first run, and every run under ``runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import time
from collections.abc import Iterator
from typing import Any

from _sample import PUSH

from insider_webpush import FakeInsider, WebPush

DEFAULT_RUNS = "6000/6,1000/1,100/1"
REDIS_RUN = "6000/6"  # five processes on two cores: a 5 ms margin (1 s periods) is too tight
CONCURRENCY = 64


def pushes(n: int) -> Iterator[WebPush]:
    for _ in range(n):
        yield PUSH


async def measure(rate_limit: int, rate_period: float, windows: int) -> dict[str, Any]:
    """One run: demand above the quota for ``windows + 1`` periods; what the server saw."""
    n = rate_limit * (windows + 1)  # the limiter lets a little less through: demand stays high
    async with (
        FakeInsider(rate_limit=rate_limit, rate_period=rate_period) as fake,
        fake.client() as client,
    ):
        started = time.perf_counter()
        sent = 0
        async for outcome in client.stream(pushes(n), concurrency=CONCURRENCY):
            sent += outcome.ok
        wall = time.perf_counter() - started
        arrivals = [r.arrived_at for r in fake.requests]
        rejected = fake.count(status=429)
        busiest = fake.max_in_window(rate_period)
    first = arrivals[0]
    start, end = first + rate_period, first + (windows + 1) * rate_period
    measured = bisect.bisect_left(arrivals, end) - bisect.bisect_left(arrivals, start)
    return {
        "rate_limit": rate_limit,
        "rate_period": rate_period,
        "windows": windows,
        "pushes": n,
        "sent": sent,
        "rejected_429": rejected,
        "max_in_window": busiest,
        "utilization": round(measured / (windows * rate_limit), 4),
        "seconds": round(wall, 2),
        "arrivals": [t - first for t in arrivals],
    }


def plot(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 3.2 * len(runs)), squeeze=False)
    for (left, right), run in zip(axes, runs, strict=True):
        limit, period, times = run["rate_limit"], run["rate_period"], run["arrivals"]
        step = period / 10
        bins = [i * step for i in range(int(times[-1] / step) + 2)]
        counts = [0] * len(bins)
        for t in times:
            counts[int(t / step)] += 1
        left.step(bins, [c / step for c in counts], where="post", label="requests/s")
        left.axhline(limit / period, color="red", linestyle="--", label="quota rate")
        left.set_title(f"{limit} per {period:g} s: requests per second ({step:g} s bins)")
        left.set_xlabel("seconds since the first request")
        left.legend(loc="lower right")
        # Requests in the trailing window at every arrival: the quantity the quota bounds.
        window = [i - bisect.bisect_right(times, t - period) + 1 for i, t in enumerate(times)]
        right.plot(times, window, label=f"requests in the last {period:g} s")
        right.axhline(limit, color="red", linestyle="--", label="quota")
        right.set_ylim(0, limit * 1.1)
        right.set_title(f"sliding window (most: {run['max_in_window']})")
        right.set_xlabel("seconds since the first request")
        right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")


def table(runs: list[dict[str, Any]]) -> None:
    header = (
        f"{'quota':>14} {'windows':>7} {'pushes':>7} {'sent':>7} {'429s':>5} "
        f"{'max in window':>13} {'utilization':>11} {'seconds':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        quota = f"{r['rate_limit']}/{r['rate_period']:g}s"
        print(
            f"{quota:>14} {r.get('windows', '-'):>7} {r.get('pushes', '-'):>7} {r['sent']:>7} "
            f"{r['rejected_429']:>5} {r['max_in_window']:>13} {r['utilization']:>11.2%} "
            f"{r.get('seconds', '-'):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", help=f"LIMIT/PERIOD,... (default {DEFAULT_RUNS}; {REDIS_RUN} with --redis)"
    )
    parser.add_argument(
        "--windows",
        type=int,
        help="measured windows per run (default 10; 5 for periods over 2 s)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="draw requests over time (matplotlib)")
    parser.add_argument("--redis", metavar="URL", help="run the Redis limiter's benchmark instead")
    parser.add_argument("--processes", type=int, default=4, help="with --redis (default 4)")
    args = parser.parse_args()

    specs = []
    for spec in (args.runs or (REDIS_RUN if args.redis else DEFAULT_RUNS)).split(","):
        limit_text, _, period_text = spec.partition("/")
        period = float(period_text)
        specs.append((int(limit_text), period, args.windows or (5 if period > 2 else 10)))
    if args.redis:
        from redis_rate import run_redis_rate

        runs = [run_redis_rate(args.redis, args.processes, *specs[0])]
        print(f"rate: {args.processes} processes sharing one quota through Redis")
    else:
        runs = [asyncio.run(measure(*spec)) for spec in specs]
        print("rate: FakeInsider on loopback enforcing the same quota; demand above the quota")
    table(runs)
    if args.plot and not args.redis:
        plot(runs, args.plot)
    keys = ("rate_limit", "rate_period", "sent", "rejected_429", "max_in_window", "utilization")
    result: dict[str, Any] = {k: runs[0][k] for k in keys}
    result["runs"] = [{k: v for k, v in r.items() if k != "arrivals"} for r in runs]
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
