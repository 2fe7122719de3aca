"""What a fleet pays: the sync client against the async one, and a dedupe key's claim per store.

**Sync against async.** The same sends through ``insider_webpush.sync.WebPushClient`` (one
background event loop per process; the caller's thread hands each call over and blocks for
its result) and through the async ``WebPushClient`` awaited in the caller's own loop, in the
same run, runs alternated, medians. Two wires: ``in-process`` (FakeInsider behind the
transport seam: no socket, so the hand-over between threads is most of the difference) and
``loopback`` (``insider-webpush fake-server`` in another process, over 127.0.0.1). Two
shapes: one caller sending one push at a time, and 8 callers at once (8 threads for the sync
client, 8 tasks of one loop for the async one). The quota is far out of reach: the limiter
never waits.

**A dedupe key's claim.** Sends of the async client with a fresh ``dedupe_key`` each (a
claim before the request, the outcome recorded after it), against sends without one, for
each store: ``redis`` (``dedupe_store=`` a Redis URL; the limiter stays in process, so every
Redis command counted is the store's), ``sqlite`` (a file) and ``memory`` (the default with
neither). Then the same keys again: a replay (the first result, nothing sent). Redis round
trips are counted in the client (each command or pipeline written to a connection) and
commands at the server (``INFO commandstats``).

    python benchmarks/fleet.py [--sends 3000] [--rounds 5] [--warmup 100] [--redis URL]

Without ``--redis`` it starts a redis-server of its own on a free port when the binary is
installed (and leaves the Redis row out when not). Prints tables and ends with ``RESULT
{json}``: ``sync_us``, ``async_us``, ``sync_ratio`` (sync / async, one caller, in-process
wire; the other shapes and wires under ``sync``), ``hop_us`` (a bare
``run_coroutine_threadsafe`` round trip to a loop in another thread: the floor of a
blocking call's extra cost on this machine), and ``dedupe`` by store: ``claim_us`` (µs per
send with a fresh key), ``extra_us`` (over a send without a key), ``replay_us``, and for
Redis ``claim_round_trips``, ``claim_commands``, ``replay_round_trips`` and
``replay_commands`` (per send).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _sample import PUSH

from insider_webpush import FakeInsider, WebPushClient
from insider_webpush.sync import WebPushClient as SyncWebPushClient

KEY = "test"  # the fake-server's default key
PARTNER = "10000001"
QUOTA = (10**9, 1.0)  # far out of reach: the limiter never waits
THREADS = 8
TRIP_KEYS = ("claim_round_trips", "claim_commands", "replay_round_trips")
WARMUP = 100  # sends before each timed run (--warmup)


# -- sync against async ---------------------------------------------------------------------


def client_kwargs(wire: str, base_url: str, fake: FakeInsider | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "partner_id": PARTNER,
        "base_url": base_url,
        "rate_limit": QUOTA[0],
        "rate_period": QUOTA[1],
    }
    if wire == "in-process":
        assert fake is not None
        kwargs["transport"] = fake.transport()
    return kwargs


def time_async(kwargs: dict[str, Any], n: int, callers: int, warmup: int) -> tuple[float, float]:
    """µs of wall and of process CPU per send, the async client in its caller's loop."""

    async def main() -> tuple[float, float]:
        async with WebPushClient(KEY, **kwargs) as client:

            async def caller(count: int) -> None:
                for _ in range(count):
                    await client.send(PUSH)

            await caller(warmup)
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(caller(n // callers) for _ in range(callers)))
            return time.perf_counter() - wall, time.process_time() - cpu

    wall, cpu = asyncio.run(main())
    done = n // callers * callers
    return wall / done * 1e6, cpu / done * 1e6


def time_sync(kwargs: dict[str, Any], n: int, callers: int, warmup: int) -> tuple[float, float]:
    """µs of wall and of process CPU per send, the sync client from ``callers`` threads."""
    with SyncWebPushClient(KEY, **kwargs) as client:

        def caller(count: int) -> None:
            for _ in range(count):
                client.send(PUSH)

        caller(warmup)
        if callers == 1:
            wall, cpu = time.perf_counter(), time.process_time()
            caller(n)
        else:
            threads = [
                threading.Thread(target=caller, args=(n // callers,)) for _ in range(callers)
            ]
            wall, cpu = time.perf_counter(), time.process_time()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = n // callers * callers
    return wall / done * 1e6, cpu / done * 1e6


def time_hop(n: int, rounds: int) -> float:
    """µs of one bare hand-over to a loop in another thread and back
    (``asyncio.run_coroutine_threadsafe`` of a coroutine that does nothing), median of
    ``rounds``: the floor of what a blocking call on a background loop costs here."""

    async def nothing() -> None:
        return None

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        samples = []
        for _ in range(rounds):
            wall = time.perf_counter()
            for _ in range(n):
                asyncio.run_coroutine_threadsafe(nothing(), loop).result()
            samples.append((time.perf_counter() - wall) / n * 1e6)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    return round(statistics.median(samples), 1)


def compare_sync(
    wire: str, base_url: str, n: int, rounds: int, warmup: int = WARMUP
) -> dict[str, Any]:
    fake = (
        FakeInsider(api_key=KEY, partner_id=PARTNER, enforce_quota=False)
        if wire == "in-process"
        else None
    )
    rows: dict[str, Any] = {}
    for callers in (1, THREADS):
        samples: dict[str, list[tuple[float, float]]] = {"sync": [], "async": []}
        for _ in range(rounds):  # A B A B ...: a drift in the machine's load hits both
            kwargs = client_kwargs(wire, base_url, fake)
            samples["sync"].append(time_sync(kwargs, n, callers, warmup))
            kwargs = client_kwargs(wire, base_url, fake)
            samples["async"].append(time_async(kwargs, n, callers, warmup))
        row = {}
        for side, runs in samples.items():
            row[f"{side}_us"] = round(statistics.median(w for w, _ in runs), 1)
            row[f"{side}_cpu_us"] = round(statistics.median(c for _, c in runs), 1)
        row["ratio"] = round(row["sync_us"] / row["async_us"], 3)
        row["cpu_ratio"] = round(row["sync_cpu_us"] / row["async_cpu_us"], 3)
        rows[f"{wire}, {callers} caller{'s' if callers > 1 else ''}"] = row
        if fake is not None:
            fake.requests.clear()  # records cost memory, not time; keep them few
            fake.launches.clear()
    return rows


@contextlib.contextmanager
def fake_server() -> Iterator[str]:
    """``insider-webpush fake-server`` in another process, at a quota out of reach."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "insider_webpush", "fake-server", "--port", "0"),
            *("--rate-limit", str(QUOTA[0]), "--rate-period", str(QUOTA[1])),
        ],
        env={k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        if found is None:
            raise RuntimeError("fake-server did not start")
        yield found.group()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


# -- a dedupe key's claim, per store --------------------------------------------------------


class RoundTrips:
    """Counts what redis-py writes to a connection: one command, or one pipeline, a call."""

    def __init__(self) -> None:
        self.count = 0
        self._original: Any = None

    def __enter__(self) -> RoundTrips:
        from redis.asyncio.connection import AbstractConnection

        original = self._original = AbstractConnection.send_packed_command
        counter = self

        async def counted(self: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await original(self, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from redis.asyncio.connection import AbstractConnection

        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def server_commands(redis_url: str) -> int:
    """Commands the Redis server has run, less the INFO that asks."""
    import redis

    with redis.Redis.from_url(redis_url) as r:
        stats: dict[str, Any] = r.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def time_dedupe(
    store: str | None,
    dedupe_store: str | None,
    n: int,
    fake: FakeInsider,
    redis_url: str | None,
    warmup: int = WARMUP,
) -> dict[str, Any]:
    """µs per send with a fresh key (claim), then per replay of each; without a key when
    ``store`` is None. Redis round trips and commands per send when the store is Redis."""
    prefix = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    kwargs = client_kwargs("in-process", "http://127.0.0.1", fake)
    if dedupe_store is not None:
        kwargs["dedupe_store"] = dedupe_store

    async def main() -> dict[str, Any]:
        figures: dict[str, Any] = {}
        async with WebPushClient(KEY, **kwargs) as client:
            for n_warm in range(warmup):  # connections opened, scripts loaded
                await client.send(PUSH, dedupe_key=None if store is None else f"w{prefix}{n_warm}")
            for phase in ("claim", "replay") if store is not None else ("claim",):
                commands = server_commands(redis_url) if store == "redis" and redis_url else 0
                with RoundTrips() as trips:
                    wall, cpu = time.perf_counter(), time.process_time()
                    for i in range(n):
                        key = None if store is None else f"{prefix}-{i}"
                        result = await client.send(PUSH, dedupe_key=key)
                        if phase == "replay" and not result.replayed:
                            raise RuntimeError(f"a second send of {key} was not a replay")
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                figures[f"{phase}_us"] = wall / n * 1e6
                figures[f"{phase}_cpu_us"] = cpu / n * 1e6
                if store == "redis" and redis_url:
                    figures[f"{phase}_round_trips"] = trips.count / n
                    figures[f"{phase}_commands"] = (server_commands(redis_url) - commands) / n
        return figures

    return asyncio.run(main())


def compare_dedupe(
    n: int, rounds: int, redis_url: str | None, directory: Path, warmup: int = WARMUP
) -> dict[str, Any]:
    fake = FakeInsider(api_key=KEY, partner_id=PARTNER, enforce_quota=False)
    stores: dict[str, str | None] = {"memory": None, "sqlite": str(directory / "dedupe.sqlite3")}
    if redis_url:
        stores["redis"] = redis_url
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in ["none", *stores]}
    for _ in range(rounds):
        samples["none"].append(time_dedupe(None, None, n, fake, redis_url, warmup))
        for name, dedupe_store in stores.items():
            samples[name].append(time_dedupe(name, dedupe_store, n, fake, redis_url, warmup))
        fake.requests.clear()
        fake.launches.clear()
    rows: dict[str, Any] = {}
    for name, runs in samples.items():
        rows[name] = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    base = rows["none"]["claim_us"]
    for name in stores:
        rows[name]["extra_us"] = round(rows[name]["claim_us"] - base, 2)
    return rows


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str | None]:
    """``url``, or a redis-server of our own on a free port (None: not installed)."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


# -- the command ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=3000, help="per run (default 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--redis", metavar="URL", help="a Redis for the dedupe store row")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="sends before each run")
    args = parser.parse_args()

    with fake_server() as base_url:
        sync_rows = compare_sync(
            "in-process", "http://127.0.0.1", args.sends, args.rounds, args.warmup
        )
        sync_rows |= compare_sync("loopback", base_url, args.sends, args.rounds, args.warmup)
    hop_us = time_hop(args.sends, args.rounds)
    with redis_server(args.redis) as redis_url, tempfile.TemporaryDirectory() as directory:
        dedupe_rows = compare_dedupe(
            args.sends, args.rounds, redis_url, Path(directory), args.warmup
        )

    print(
        f"fleet: sync client against async, {args.sends} sends per run, {args.rounds} runs "
        "alternated, medians; µs per send (wall, and CPU of the whole process)"
    )
    header = (
        f"{'wire, callers':<24} {'sync µs':>8} {'async µs':>9} {'ratio':>7} "
        f"{'sync CPU':>9} {'async CPU':>10} {'CPU ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, r in sync_rows.items():
        print(
            f"{name:<24} {r['sync_us']:>8.1f} {r['async_us']:>9.1f} {r['ratio']:>6.3f}x "
            f"{r['sync_cpu_us']:>9.1f} {r['async_cpu_us']:>10.1f} {r['cpu_ratio']:>8.3f}x"
        )
    print(f"a bare hand-over to a loop in another thread and back: {hop_us:.1f} µs")
    print()
    print("dedupe keys: async client, in-process wire, one send at a time; µs per send")
    header = (
        f"{'store':<8} {'send µs':>8} {'extra µs':>9} {'replay µs':>10} "
        f"{'round trips':>12} {'commands':>9} {'replay trips':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, r in dedupe_rows.items():
        cells = [f"{r['claim_us']:.1f}"]
        cells += [f"{r[k]:.1f}" if k in r else "-" for k in ("extra_us", "replay_us")]
        cells += [f"{r[k]:g}" if k in r else "-" for k in TRIP_KEYS]
        print(
            f"{name:<8} {cells[0]:>8} {cells[1]:>9} {cells[2]:>10} {cells[3]:>12} "
            f"{cells[4]:>9} {cells[5]:>13}"
        )
    print(
        "(round trips: commands or pipelines redis-py wrote, per send; commands: what the "
        "server ran, the scripts' own calls included)"
    )
    first = sync_rows["in-process, 1 caller"]
    result = {
        "sync_us": first["sync_us"],
        "async_us": first["async_us"],
        "sync_ratio": first["ratio"],
        "hop_us": hop_us,
        "sync": sync_rows,
        "dedupe": dedupe_rows,
        "sends": args.sends,
        "rounds": args.rounds,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
