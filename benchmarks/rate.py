"""How close to the quota the SDK runs, and whether it ever goes over, on a quiet machine or
one whose CPU is taken by other processes.

Each run streams pushes through ``WebPushClient.stream`` to a FakeInsider over loopback that
enforces the same quota, with more demand than the quota allows, for ``windows + 1`` quota
periods. The FakeInsider runs in a child process of its own (``--inline-server``: in the
client's process and event loop, as before issue 13), so that the client and the server do
not share one core and one event loop: at 1000 requests/s the two together take about half
a core, which one process gets on a quiet 2-core machine but not on a busy one. The server
counts the arrivals on its own clock and hands them back when the run ends.

The server stands in for Insider's, which neither this machine's load nor this Python's
pauses slow down. It stamps an arrival when its loop reads it, so anything that holds that
loop back stamps arrivals late and bunches them, and more bunching than the limiter's margin
(10 ms at 1 s, 30 ms at 6 s) is a 429 the client did not cause. So the server's process
runs with Python's cyclic garbage collector off (it keeps every request's record; its full
collections stopped its loop for 24-25 ms at 1000/1 s, and each such run saw one 429) and,
with ``--server-nice`` (default -20, the highest priority, when this user may raise a
priority; a warning says so when it may not), ahead of ``--cpu-hog``'s busy processes.
Measured at 6000/6 s with two hogs: with both as before (collector on, nice 0), 1-11 429s a
run; in one instrumented run the server stamped arrivals up to 75 ms after the client wrote
them while the client's own writes never held more than 5979 in a window; with either one
changed, 0 429s. ``--server-nice 0`` shares the CPU with the hogs. So these runs test the
client's own schedule: the jitter of a real network and of Insider's own servers is what
the limiter's margin is for, and only the real period's (300 ms) is sized for it.

Every run also reports ``client_max_in_window``: the most grants the client's limiter made
in any window, recorded at the client as each grant is taken (the limiter is the client's
usual one, ``SlidingWindowLimiter(rate_limit, rate_period)``, passed in wrapped so that its
grants are timed). A 429 with that figure within the quota is a late stamp at the server,
not a start the client made too early.

The default runs scale the period down so that several windows fit in a minute:

- ``6000/6`` (the headline): the default quota's 6000 per window with the period scaled 10x
  down, so 10x the default rate (1000 requests/s). The count per window, and so the
  limiter's burst (24) and margin (0.5 % of the period), are the real quota's;
- ``1000/1``: 10x the default quota (60 000 per 60 s) scaled 60x down to 1000 per 1 s;
- ``100/1``: the default rate (6000 per 60 s) scaled 60x down to 100 per 1 s.

A scaled window leaves proportionally less time for event-loop jitter (the margin is 30 ms at
6 s and 10 ms at 1 s, its floor, against 300 ms at 60 s; the burst covers 24, 4 and 20 ms of late
wake-ups), so these runs are harder than the real quota, not easier. ``--runs 60000/60
--windows 2`` is ten times the default quota at the real period (1000 requests/s for three
minutes, 180 000 pushes).

``--cpu-hog N`` makes the same runs with N busy processes on the machine (each spins
``while True: pass`` at the default priority), started before the first run and stopped
after the last, also on Ctrl-C, SIGTERM or an error (a hog whose parent is gone stops by
itself). With N at least the number of cores, the client, the server and the hogs share the
CPU: the runs show whether the quota holds when the CPU is scarce.

Figures, per run:

- ``sent``: pushes Insider (the fake) confirmed; ``rejected_429``: its 429 answers;
- ``max_in_window``: the most requests that *arrived* at the server in any sliding window of
  ``rate_period`` seconds (every arrival counts, answered or not): it must not exceed
  ``rate_limit``;
- ``utilization``: arrivals in the ``windows`` full periods after the first, measured from the
  first arrival, divided by ``windows * rate_limit``. The first period is left out because a
  run starts with an empty window, whose share of the demand is not a steady state;
- ``client_cpu`` and ``server_cpu``: the CPU each process used during the run, as a fraction
  of one core (with ``--inline-server``, ``client_cpu`` is both and ``server_cpu`` null).

    python benchmarks/rate.py [--runs 6000/6,1000/1,100/1] [--windows N] [--cpu-hog N]
                              [--server-nice N | --inline-server] [--plot rate.png]
    python benchmarks/rate.py --redis redis://127.0.0.1:6379/0 [--processes 4] [--runs 6000/6]

``--redis`` runs ``benchmarks/redis_rate.py`` instead (several processes sharing the quota
through Redis; its utilization counts the first period too) on the first of ``--runs``
(``--cpu-hog`` applies to it too).

Ends with ``RESULT {json}`` holding ``rate_limit``, ``rate_period``, ``sent``, ``rejected_429``,
``max_in_window`` and ``utilization`` of the first run, every run under ``runs``,
``cpu_hogs`` (N, 0 without ``--cpu-hog``), ``server`` (``"process"`` or ``"inline"``) and
``server_nice`` (the server process's nice value in effect; null with ``--inline-server``).
Each run under ``runs`` also holds ``client_max_in_window``, ``windows``, ``pushes``,
``seconds``, ``client_cpu``, ``server_cpu`` and ``server_nice``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from _sample import PUSH

from insider_webpush import FakeInsider, SlidingWindowLimiter, WebPush, WebPushClient
from insider_webpush.testing.records import max_in_window
from insider_webpush.testing.simulator import DEFAULT_API_KEY, DEFAULT_PARTNER_ID

DEFAULT_RUNS = "6000/6,1000/1,100/1"
REDIS_RUN = "6000/6"  # five processes on two cores: a 10 ms margin (1 s periods) is too tight
CONCURRENCY = 64


def pushes(n: int) -> Iterator[WebPush]:
    for _ in range(n):
        yield PUSH


class TimedGrants:
    """The client's usual limiter, each grant timed on the monotonic clock (the server's
    ``loop.time()``) as it is taken."""

    def __init__(self, rate_limit: int, rate_period: float) -> None:
        self.limiter = SlidingWindowLimiter(rate_limit, rate_period)
        self.times: list[float] = []

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        await self.limiter.acquire(max_pause=max_pause)
        self.times.append(time.monotonic())

    def penalize(self, seconds: float) -> None:
        self.limiter.penalize(seconds)

    def paused_for(self) -> float:
        return self.limiter.paused_for()


# -- busy processes ----------------------------------------------------------------------------


def spin(parent: int) -> None:
    """A CPU hog: busy until stopped, or until its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops us
    while os.getppid() == parent:  # reparented: the parent died without stopping us
        for _ in range(100_000):  # a few ms between checks
            pass


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    """``n`` busy processes for the duration of the block, stopped however it ends."""
    hogs = [
        multiprocessing.Process(target=spin, args=(os.getpid(),), name=f"cpu-hog-{i}", daemon=True)
        for i in range(n)
    ]
    try:
        for hog in hogs:
            hog.start()
        yield
    finally:
        for hog in hogs:
            if hog.pid is not None:
                hog.terminate()
        for hog in hogs:
            if hog.pid is not None:
                hog.join(timeout=5)


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: the hogs are stopped


# -- the server in a child process ---------------------------------------------------------------


def serve(rate_limit: int, rate_period: float) -> None:
    """A FakeInsider with this quota: prints its port, serves until stdin closes, then prints
    what it saw as one line of JSON."""

    # Its records are kept to the end: a full collection over them is a pause of the loop
    # that stamps arrivals (see the module's docstring); reference counting frees the rest.
    gc.disable()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        async with FakeInsider(rate_limit=rate_limit, rate_period=rate_period) as fake:
            print(fake.port, flush=True)
            cpu = time.process_time()
            await loop.run_in_executor(None, sys.stdin.read)  # until EOF
            cpu = time.process_time() - cpu
            arrivals = [r.arrived_at for r in fake.requests]
            return {
                "arrivals": arrivals,
                "rejected_429": fake.count(status=429),
                "max_in_window": fake.max_in_window(rate_period),
                "cpu_seconds": cpu,
            }

    seen = asyncio.run(main())
    with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody to tell
        print(json.dumps(seen), flush=True)


async def drive(client: WebPushClient, n: int) -> tuple[int, float, float]:
    """Stream ``n`` pushes: (confirmed, wall seconds, CPU seconds of this process)."""
    started, cpu = time.perf_counter(), time.process_time()
    sent = 0
    async for outcome in client.stream(pushes(n), concurrency=CONCURRENCY):
        sent += outcome.ok
    return sent, time.perf_counter() - started, time.process_time() - cpu


async def run_inline(rate_limit: int, rate_period: float, n: int) -> dict[str, Any]:
    grants = TimedGrants(rate_limit, rate_period)
    async with (
        FakeInsider(rate_limit=rate_limit, rate_period=rate_period) as fake,
        fake.client(limiter=grants) as client,
    ):
        sent, wall, cpu = await drive(client, n)
        return {
            "sent": sent,
            "wall": wall,
            "client_cpu_seconds": cpu,
            "grants": grants.times,
            "arrivals": [r.arrived_at for r in fake.requests],
            "rejected_429": fake.count(status=429),
            "max_in_window": fake.max_in_window(rate_period),
            "cpu_seconds": None,
            "server_nice": None,
        }


def prioritize(pid: int, nice: int) -> int:
    """Give process ``pid`` the nice value ``nice`` if this user may (a warning on stderr if
    not); return the one in effect."""
    with contextlib.suppress(PermissionError):  # raising a priority takes CAP_SYS_NICE
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    in_effect = os.getpriority(os.PRIO_PROCESS, pid)
    if in_effect != nice:
        print(
            f"rate.py: the server runs at nice {in_effect}, not {nice}: this user may not raise "
            "a priority, so busy processes (--cpu-hog) may delay its stamps of arrivals",
            file=sys.stderr,
        )
    return in_effect


def run_child(rate_limit: int, rate_period: float, n: int, nice: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--serve", f"{rate_limit}/{rate_period!r}"]
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        server_nice = prioritize(server.pid, nice)
        assert server.stdin is not None
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"

        grants = TimedGrants(rate_limit, rate_period)

        async def client_side() -> tuple[int, float, float]:
            async with WebPushClient(
                DEFAULT_API_KEY,
                partner_id=DEFAULT_PARTNER_ID,
                base_url=url,
                rate_limit=rate_limit,
                rate_period=rate_period,
                limiter=grants,
            ) as client:
                return await drive(client, n)

        sent, wall, cpu = asyncio.run(client_side())
        server.stdin.close()  # the server reports and exits
        seen: dict[str, Any] = json.loads(server.stdout.read())
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return {
        "sent": sent,
        "wall": wall,
        "client_cpu_seconds": cpu,
        "grants": grants.times,
        "server_nice": server_nice,
        **seen,
    }


def measure(
    rate_limit: int, rate_period: float, windows: int, inline: bool, nice: int = -20
) -> dict[str, Any]:
    """One run: demand above the quota for ``windows + 1`` periods; what the server saw (a
    server process of its own runs at ``nice`` when allowed)."""
    n = rate_limit * (windows + 1)  # the limiter lets a little less through: demand stays high
    if inline:
        seen = asyncio.run(run_inline(rate_limit, rate_period, n))
    else:
        seen = run_child(rate_limit, rate_period, n, nice)
    arrivals: list[float] = seen["arrivals"]
    wall = seen["wall"]
    first = arrivals[0]
    start, end = first + rate_period, first + (windows + 1) * rate_period
    measured = bisect.bisect_left(arrivals, end) - bisect.bisect_left(arrivals, start)
    server_cpu = seen["cpu_seconds"]
    return {
        "rate_limit": rate_limit,
        "rate_period": rate_period,
        "windows": windows,
        "pushes": n,
        "sent": seen["sent"],
        "rejected_429": seen["rejected_429"],
        "max_in_window": seen["max_in_window"],
        "client_max_in_window": max_in_window(seen["grants"], rate_period),
        "utilization": round(measured / (windows * rate_limit), 4),
        "seconds": round(wall, 2),
        "client_cpu": round(seen["client_cpu_seconds"] / wall, 3),
        "server_cpu": None if server_cpu is None else round(server_cpu / wall, 3),
        "server_nice": seen["server_nice"],
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
        f"{'max in window':>13} {'client max':>10} {'utilization':>11} {'seconds':>7} "
        f"{'client cpu':>10} {'server cpu':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        quota = f"{r['rate_limit']}/{r['rate_period']:g}s"
        cpu = [
            f"{c:.0%}" if c is not None else "-" for c in (r.get("client_cpu"), r.get("server_cpu"))
        ]
        print(
            f"{quota:>14} {r.get('windows', '-'):>7} {r.get('pushes', '-'):>7} {r['sent']:>7} "
            f"{r['rejected_429']:>5} {r['max_in_window']:>13} "
            f"{r.get('client_max_in_window', '-'):>10} {r['utilization']:>11.2%} "
            f"{r.get('seconds', '-'):>7} {cpu[0]:>10} {cpu[1]:>10}"
        )


def parse_run(spec: str) -> tuple[int, float]:
    """``LIMIT/PERIOD``, e.g. ``6000/6``: ValueError naming the spec when it is not one."""
    limit_text, _, period_text = spec.partition("/")
    try:
        limit, period = int(limit_text), float(period_text)
    except ValueError:
        raise ValueError(f"{spec!r} is not LIMIT/PERIOD, e.g. 6000/6") from None
    if limit < 1 or not 0 < period < math.inf:
        raise ValueError(f"{spec!r}: the limit must be 1 or more and the period above 0 seconds")
    return limit, period


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
    parser.add_argument(
        "--cpu-hog",
        type=int,
        default=0,
        metavar="N",
        help="N busy processes on the machine during the runs (default 0)",
    )
    parser.add_argument(
        "--inline-server",
        action="store_true",
        help="the FakeInsider in the client's process and event loop, not a child process",
    )
    parser.add_argument(
        "--server-nice",
        type=int,
        metavar="N",
        help="the server process's nice value, -20 to 19 (default -20, the highest priority, "
        "when allowed: the server stands in for Insider's, which this machine's load does not "
        "slow; 0 shares the CPU with --cpu-hog's processes)",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="draw requests over time (matplotlib)")
    parser.add_argument("--redis", metavar="URL", help="run the Redis limiter's benchmark instead")
    parser.add_argument("--processes", type=int, default=4, help="with --redis (default 4)")
    parser.add_argument("--serve", metavar="LIMIT/PERIOD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*parse_run(args.serve))
        return
    if args.cpu_hog < 0:
        parser.error("--cpu-hog must be 0 or more")
    if args.windows is not None and args.windows < 1:
        parser.error("--windows must be 1 or more")
    if args.processes < 1:
        parser.error("--processes must be 1 or more")
    if args.inline_server and args.redis:
        parser.error("--inline-server is not for --redis (its FakeInsider is in this process)")
    if args.server_nice is None:
        args.server_nice = -20
    elif args.inline_server or args.redis:
        parser.error(
            "--server-nice is for the server's own process: not with --inline-server or --redis"
        )
    if not -20 <= args.server_nice <= 19:
        parser.error("--server-nice must be between -20 and 19")

    specs = []
    for spec in (args.runs or (REDIS_RUN if args.redis else DEFAULT_RUNS)).split(","):
        try:
            limit, period = parse_run(spec)
        except ValueError as exc:
            parser.error(f"--runs: {exc}")
        specs.append((limit, period, args.windows or (5 if period > 2 else 10)))
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    with cpu_hogs(args.cpu_hog):
        if args.redis:
            from redis_rate import run_redis_rate

            runs = [run_redis_rate(args.redis, args.processes, *specs[0])]
        else:
            runs = [
                measure(*spec, inline=args.inline_server, nice=args.server_nice) for spec in specs
            ]
    busy = f"; {args.cpu_hog} busy processes on {os.cpu_count()} cores" if args.cpu_hog else ""
    if args.redis:
        print(f"rate: {args.processes} processes sharing one quota through Redis{busy}")
    else:
        where = "in the client's process"
        if not args.inline_server:
            where = f"in a child process at nice {runs[0]['server_nice']}"
        print(
            f"rate: FakeInsider on loopback ({where}) enforcing the same quota; demand above "
            f"the quota{busy}"
        )
    table(runs)
    if args.plot and not args.redis:
        plot(runs, args.plot)
    keys = ("rate_limit", "rate_period", "sent", "rejected_429", "max_in_window", "utilization")
    result: dict[str, Any] = {k: runs[0][k] for k in keys}
    result["runs"] = [{k: v for k, v in r.items() if k != "arrivals"} for r in runs]
    result["cpu_hogs"] = args.cpu_hog
    if not args.redis:
        result["server"] = "inline" if args.inline_server else "process"
        result["server_nice"] = runs[0]["server_nice"]
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
