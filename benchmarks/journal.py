"""What the JSONL batch journal costs a batch: the same batch with and without it.

Each run streams ``--pushes`` pushes (default 100 000; the sample push of every benchmark,
yielded by a generator, so that making pushes is not counted: each is still encoded, hashed
and sent on its own) through ``WebPushClient.stream`` with 64 workers and the limiter lifted.
The journaled runs write a new JSONL journal (``journal=path``: a ``sending`` and a ``done``
line a push) in ``--dir`` (default: the system's temporary folder), deleted after the run.
Two wires (``--wire``, both by default, in this order):

- **loopback**: the minimal launch endpoint of ``overhead.py`` in a child process, over
  loopback HTTP: a batch as it runs against a server that answers at once. Its figures head
  ``RESULT``: a batch always talks to a server;
- **stub**: a transport that answers every request at once with a success, with no socket:
  what is left is the SDK's own work, so the journal's share of it is as large as it can be
  (the bound, not a batch anyone runs).

On each wire, runs alternate, unjournaled then journaled (``--rounds`` of each, after one
warm-up run of each at a tenth of the size), each in its own event loop in this process; the
table shows the median of each side.

- **pushes/s**: pushes divided by the wall time of the run (the first pull to the last
  outcome, the journal's opening and closing included);
- **CPU µs/push**: ``time.process_time()`` of this process per push (the loopback server's
  CPU is not counted); ``journal_cpu_us``: journaled minus unjournaled;
- **``throughput_ratio``**: journaled ÷ unjournaled pushes/s (1.0: the journal is free), the
  median of the rounds' ratios (each round's two runs ran side by side);
  ``throughput_ratio_rounds`` lists them, and ``throughput_ratio_ci95`` is the median's
  95 % interval ``[low, high]``, two of those rounds (``_spread.median_interval``; null
  under 6 rounds, so ``--rounds 6`` or more: see benchmarks/README.md, Definitions).

CPU time on a shared machine moves by 10-20 % from run to run. ``--instructions`` also counts
the client's instructions per push of each side on the first wire under valgrind's callgrind
(a batch of 2 500 pushes minus one of 500), which does not move with the load:
``unjournaled_instructions``, ``journaled_instructions``, ``journal_instructions`` and
``throughput_ratio_instructions`` (unjournaled ÷ journaled instructions: the throughput ratio
when the client's CPU is what limits the batch; 1.0 is a free journal). It always counts
batches of 500 and 2 500 pushes, whatever ``--pushes`` says (about two minutes).
``--share`` (Linux perf and Python 3.13 or newer) samples one journaled batch of 30 000
pushes on the first wire with perf (``_perf``) and gives the share of its CPU spent in the
journal's own code (the position's hash and every ``FileJournal`` method, the kernel's part of
its writes included): ``journal_share``, ``share_samples`` and ``throughput_ratio_share``
(1 - the share: the throughput ratio if the journal cost a batch nothing but its own code's
time). Both parts of the share come from the same seconds of the machine, so it does not move
with the load as two runs' CPU times do; what it leaves out is what the journal does to the
rest of a push (the caches its code and its writes take, the few journal lines inside the
batch's own functions). ``--profile`` runs the journaled side once under cProfile on the
first wire and prints, to stderr, the functions with the most time of their own and the
SDK's by cumulative time. As in ``overhead.py``, this process and the loopback server are
pinned to two CPUs (``--no-pin``): neither waits for the other's core. The pinning comes
with the loopback server: with ``--wire stub`` alone nothing is pinned. A batch of a few
thousand pushes is too short for CPU time: its ratio can come out above 1.

    python benchmarks/journal.py [--pushes 100000] [--rounds 5] [--wire loopback,stub]
                                 [--dir /tmp] [--instructions] [--share] [--profile]
                                 [--no-pin]

Ends with ``RESULT {json}``: the first wire's ``throughput_ratio``,
``throughput_ratio_rounds``, ``throughput_ratio_ci95``, ``journaled_pps``,
``unjournaled_pps``, ``journaled_cpu_us``, ``unjournaled_cpu_us``, ``journal_cpu_us`` and
``journal_bytes_per_push`` (and, with ``--instructions`` and ``--share``, the figures
above); ``wire`` (which one that is), ``wires`` (every wire's figures), ``pushes``, ``rounds``
and ``pinned_cpus`` (``[client, server]``, or null).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from _callgrind import per_unit
from _perf import require, shares
from _sample import PUSH
from _spread import interval_words, median_interval
from _stubs import NoLimit, StubTransport
from overhead import pin, serving  # its minimal launch endpoint, and the CPUs' pinning

from insider_webpush import WebPush, WebPushClient

CONCURRENCY = 64
WIRES = ("loopback", "stub")


def pushes(n: int) -> Iterator[WebPush]:
    for _ in range(n):
        yield PUSH


async def batch(n: int, journal: str | None, url: str | None) -> tuple[float, float]:
    """One batch of ``n`` pushes: (wall seconds, CPU seconds). ``url``: None for the stub."""
    client = WebPushClient(
        "bench-key",
        partner_id="10000001",
        limiter=NoLimit(),
        **({"base_url": url} if url else {"transport": StubTransport()}),
    )
    async with client:
        wall, cpu = time.perf_counter(), time.process_time()
        done = 0
        async for outcome in client.stream(pushes(n), concurrency=CONCURRENCY, journal=journal):
            done += outcome.ok
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert done == n, (done, n)
    return wall, cpu


def run(n: int, journaled: bool, folder: str | None, url: str | None) -> tuple[float, float, int]:
    """(wall, CPU, journal bytes) of one batch in a fresh event loop."""
    if not journaled:
        return (*asyncio.run(batch(n, None, url)), 0)
    with tempfile.TemporaryDirectory(dir=folder, prefix="journal-bench-") as tmp:
        path = os.path.join(tmp, "run.jsonl")
        wall, cpu = asyncio.run(batch(n, path, url))
        return wall, cpu, os.path.getsize(path)


def compare(n: int, rounds: int, folder: str | None, url: str | None) -> dict[str, Any]:
    """Alternated runs of both sides on one wire; the medians."""
    for journaled in (False, True):  # warm-up: imports, caches, the file system
        run(max(1, n // 10), journaled, folder, url)
    samples: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
    for _ in range(rounds):
        for journaled in (False, True):  # A B A B ...
            samples[journaled].append(run(n, journaled, folder, url))
    figures: dict[str, Any] = {}
    for journaled, name in ((False, "unjournaled"), (True, "journaled")):
        runs = samples[journaled]
        figures[f"{name}_pps"] = round(statistics.median(n / w for w, _, _ in runs))
        figures[f"{name}_cpu_us"] = round(statistics.median(c for _, c, _ in runs) / n * 1e6, 2)
    # The median of each round's ratio: the two runs of a round ran side by side, so a change
    # in the machine's load between rounds falls on both.
    # Journaled pushes/s over unjournaled: the unjournaled run's wall time over the journaled's.
    rounds_ratios = [u[0] / j[0] for u, j in zip(samples[False], samples[True], strict=True)]
    figures["throughput_ratio"] = round(statistics.median(rounds_ratios), 3)
    figures["throughput_ratio_rounds"] = [round(r, 3) for r in rounds_ratios]
    figures["throughput_ratio_ci95"] = median_interval(figures["throughput_ratio_rounds"])
    figures["journal_cpu_us"] = round(
        figures["journaled_cpu_us"] - figures["unjournaled_cpu_us"], 2
    )
    figures["journal_bytes_per_push"] = round(samples[True][0][2] / n, 1)
    return figures


def profile(n: int, folder: str | None, url: str | None) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run(n, True, folder, url)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats("insider_webpush", 30)


def count_instructions(url: str | None, small: int, large: int) -> dict[str, Any]:
    """Instructions per push of each side, counted by valgrind's callgrind: the difference
    between a batch of ``large`` and one of ``small`` pushes, divided by ``large - small``.
    Unlike CPU time, the count does not move with the machine's load."""

    def argv(side: str, n: int) -> list[str]:
        where = ["--url", url] if url else []
        return [sys.executable, __file__, "--side", side, "--pushes", str(n), *where]

    per_push = {
        side: per_unit(functools.partial(argv, side), small, large)
        for side in ("unjournaled", "journaled")
    }
    return {
        "unjournaled_instructions": round(per_push["unjournaled"]),
        "journaled_instructions": round(per_push["journaled"]),
        "journal_instructions": round(per_push["journaled"] - per_push["unjournaled"]),
        # Throughput, when the client's CPU is what limits it: unjournaled / journaled (so,
        # like throughput_ratio, 1.0 is a free journal).
        "throughput_ratio_instructions": round(per_push["unjournaled"] / per_push["journaled"], 3),
        "instruction_pushes": [small, large],
    }


# The journal's own code: the position's hash (the push's SHA-256 under it) and every method
# of the JSONL journal (its lines, its writes and the kernel's part of them, its flushes).
JOURNAL_FRAMES = ("py::_position_digest:", "py::FileJournal.")
SHARE_PUSHES = 30_000


def sample_share(url: str | None) -> dict[str, Any]:
    """The journal's share of a journaled batch's CPU, sampled by perf within one run: see
    ``_perf``. Unlike the two sides' CPU times, both parts of the share come from the same
    seconds of the machine."""
    where = ["--url", url] if url else []
    argv = [sys.executable, __file__, "--side", "journaled", "--pushes", str(SHARE_PUSHES)]
    inside, total = shares([*argv, *where], f"py::run:{__file__}", JOURNAL_FRAMES)
    if total == 0:
        raise SystemExit("--share: perf sampled nothing of the batch (no py::run frame)")
    share = inside / total
    return {
        "journal_share": round(share, 4),
        # Journaled over unjournaled throughput if the journal cost nothing but its own code's
        # time: its code's share comes off a journaled push's time.
        "throughput_ratio_share": round(1 - share, 3),
        "share_samples": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=100_000, help="per run (default 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument(
        "--wire",
        default=",".join(WIRES),
        help="loopback, stub or both, the first one's figures at the top of RESULT "
        "(default loopback,stub)",
    )
    parser.add_argument("--dir", help="where the journals are written (default: the temp folder)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one journaled run on the first wire"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per push under valgrind, on the first wire, with batches "
        "of 500 and 2500 pushes whatever --pushes says (about two minutes; load-proof)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="also sample, with Linux perf, the journal's own code's share of one journaled "
        f"batch of {SHARE_PUSHES} pushes on the first wire (Python 3.13 or newer; about a "
        "minute; load-proof)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin this process to one CPU and the loopback server to another (pinned "
        "by default, where there are two CPUs or more, on Linux, as overhead.py does)",
    )
    parser.add_argument("--side", choices=("unjournaled", "journaled"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.pushes
    if args.side:  # one batch alone, for --instructions
        run(n, args.side == "journaled", args.dir, args.url)
        return
    wires = args.wire.split(",")
    if n < 1 or args.rounds < 1:
        parser.error("--pushes and --rounds must be 1 or more")
    if not wires or any(w not in WIRES for w in wires) or len(set(wires)) != len(wires):
        parser.error(f"--wire: one or both of {', '.join(WIRES)}")

    if args.share:
        require()  # before the rounds, not after them
    results: dict[str, dict[str, Any]] = {}
    pinned: tuple[int, int] | None = None
    with contextlib.ExitStack() as servers:
        loopback_url = None
        if "loopback" in wires:  # started and pinned first: every wire's runs are pinned
            loopback_url, server_pid = servers.enter_context(serving())
            if args.pin:
                pinned = pin(server_pid)
        for wire in wires:
            url = loopback_url if wire == "loopback" else None
            if args.profile and wire == wires[0]:
                profile(n, args.dir, url)
            results[wire] = compare(n, args.rounds, args.dir, url)
            if args.instructions and wire == wires[0]:
                results[wire].update(count_instructions(url, 500, 2500))
            if args.share and wire == wires[0]:
                results[wire].update(sample_share(url))

    where = f"; client on CPU {pinned[0]}, server on CPU {pinned[1]}" if pinned else ""
    print(
        f"journal: {n} pushes per batch through stream(), {CONCURRENCY} workers, limiter "
        f"lifted; {args.rounds} run(s) of each side alternated, medians{where}"
    )
    header = f"{'wire':<9} {'batch':<12} {'pushes/s':>9} {'CPU µs/push':>12} {'journal B/push':>15}"
    print(header)
    print("-" * len(header))
    for wire, r in results.items():
        for name in ("unjournaled", "journaled"):
            size = f"{r['journal_bytes_per_push']:.1f}" if name == "journaled" else "-"
            print(
                f"{wire:<9} {name:<12} {r[f'{name}_pps']:>9} {r[f'{name}_cpu_us']:>12.2f} "
                f"{size:>15}"
            )
        print(
            f"{wire:<9} throughput ratio (journaled / unjournaled, the rounds' median) "
            f"{r['throughput_ratio']:.3f} ({interval_words(r['throughput_ratio_ci95'])}); "
            f"the journal's CPU per push {r['journal_cpu_us']:.2f} µs"
        )
        if "journal_share" in r:
            print(
                f"{wire:<9} the journal's own code, sampled by perf in one journaled batch: "
                f"{r['journal_share']:.1%} of its CPU ({r['share_samples']} samples): "
                f"throughput ratio {r['throughput_ratio_share']:.3f} from its code alone"
            )
        if "throughput_ratio_instructions" in r:
            print(
                f"{wire:<9} instructions per push (callgrind): unjournaled "
                f"{r['unjournaled_instructions']}, journaled {r['journaled_instructions']}: "
                f"throughput ratio {r['throughput_ratio_instructions']:.3f}"
            )
    first = results[wires[0]]
    result: dict[str, Any] = {"wire": wires[0], **first}
    result.update(pushes=n, rounds=args.rounds, wires=results, pinned_cpus=pinned)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
