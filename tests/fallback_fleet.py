"""Three sender processes share one quota through Redis with a fallback, and Redis dies.

Issue 11's scenario with real processes: one redis-server; one FakeInsider in its own process
that enforces its strict sliding-window quota of ``RATE_LIMIT`` per ``RATE_PERIOD`` (answering
429 over it) and records every arrival; ``PROCESSES`` sender processes, each sending greedily
through ``WebPushClient(redis_url=..., redis_fallback_processes=3, rate_limit=300,
rate_period=3.0)`` with ``send_many(concurrency=CONCURRENCY)``. Mid-run, redis-server is

- ``kill``: SIGKILLed, and later a new, empty one starts on the same port;
- ``stop``: SIGSTOPped, and later SIGCONTinued (it then runs the calls queued meanwhile).

``TIMELINE`` says when, and when the senders stop. From the server's record:
``max_in_window`` (the most arrivals in any sliding window of ``RATE_PERIOD``, 429s included:
at most ``RATE_LIMIT`` is the bound), ``rejected_429``, ``utilization`` (launches answered 200
over what the quota allows in the run), ``phases`` (200s before the outage, during it, after
it), ``local`` (200s between the first fallback start and the last return to Redis: local
starts only), ``last_second`` (200s in the last second: Redis slots after the hold) and
``seconds`` (the run, start-up included). Every clock is ``time.monotonic()`` (the event loop's
clock too): one clock for every process of this host.

tests/test_redis_fallback.py runs each scenario once. By hand, every scenario 20 times:

    .venv/bin/python tests/fallback_fleet.py --runs 20 [--scenario kill stop]

prints a line per run and a summary, and exits 1 if any run had a 429 or a window over the
quota. tests/ is not a package: this file loads tests/redis_server.py by its path.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from insider_webpush.testing.simulator import DEFAULT_API_KEY, DEFAULT_PARTNER_ID

HERE = Path(__file__).resolve()
RATE_LIMIT = 300
RATE_PERIOD = 3.0
PROCESSES = 3
CONCURRENCY = 32
FALLBACK_DELAY = 0.5 * RATE_PERIOD + RATE_PERIOD * 1.005  # lead cap + a window, with margin
SCENARIOS = ("kill", "stop")
# Seconds after the start, by scenario: (outage, Redis back, end). Redis dies once its queue
# of reservations is in full flow. The first local start comes 4.5 s (1.5 periods) after the
# outage is noticed: the kill at once, the stop once calls go unanswered for CALL_TIMEOUT. Redis
# comes back about half a second later, and after the hold on the way back (4.5 s from the
# first process back, which is at most 1.5 s after Redis), Redis slots run again at the end.
TIMELINE = {"kill": (1.5, 6.5, 12.5), "stop": (1.5, 7.5, 14.0)}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_servers = _load("redis_server", HERE.parent / "redis_server.py")


class FleetRedis(_servers.RedisServer):  # type: ignore[misc, name-defined]
    """The test redis-server, with signals."""

    def signal(self, signum: int) -> None:
        process = self._process
        assert process is not None
        process.send_signal(signum)
        if signum == signal.SIGKILL:
            process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a stopped one cannot act on SIGTERM
        super().stop()


def max_in_window(times: list[float], period: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the fake Insider's process ----------------------------------------------------------


async def serve(config: dict[str, Any]) -> None:
    from insider_webpush import FakeInsider
    from insider_webpush.endpoints import Operation

    loop = asyncio.get_running_loop()
    async with FakeInsider(
        rate_limit=config["rate_limit"], rate_period=config["rate_period"], port=config["port"]
    ) as fake:
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # "dump"
        arrivals = [
            (r.arrived_at, r.status) for r in fake.requests if r.operation is Operation.LAUNCH_V2
        ]
    print(json.dumps({"arrivals": arrivals}), flush=True)


# -- a sender process ----------------------------------------------------------------------


class _Events(logging.Handler):
    """The limiter's warnings (Redis lost, Redis back), with their monotonic time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((time.monotonic(), record.getMessage()[:160]))


async def send(config: dict[str, Any]) -> dict[str, Any]:
    from insider_webpush import WebPush, WebPushClient
    from insider_webpush.endpoints import Operation
    from insider_webpush.limiter import key_fingerprint
    from insider_webpush.redis_limiter import shared_redis_limiter

    events = _Events()
    library_log = logging.getLogger("insider_webpush")
    library_log.addHandler(events)
    library_log.propagate = False  # the events, not stderr noise
    loop = asyncio.get_running_loop()
    url, processes = config["redis_url"], config["processes"]
    key = (config["base_url"], key_fingerprint(config["api_key"]), Operation.LAUNCH_V2.value)

    def pushes() -> Iterator[WebPush]:
        for n in itertools.count():
            yield WebPush(
                title=f"push {n}",
                description="fallback",
                image="https://example.com/i.png",
                link="https://example.com",
                ttl=60,
            )

    async with WebPushClient(
        config["api_key"],
        partner_id=config["partner_id"],
        base_url=config["base_url"],
        rate_limit=config["rate_limit"],
        rate_period=config["rate_period"],
        redis_url=url,
        redis_fallback_processes=processes,
    ) as client:
        # The very limiter the client takes from the registry, to read its counter; and a
        # quota nobody reaches on the same Redis client, to open the connections and load
        # the script before the start (a slot whose reply waited on a connection set-up is
        # given up). Kept open until the end: the last limiter closes the shared client.
        limiter = shared_redis_limiter(
            url, key, config["rate_limit"], config["rate_period"], fallback_processes=processes
        )
        warm = shared_redis_limiter(url, ("warm", key[1], f"warm-{os.getpid()}"), 10**9, 1.0)
        try:
            await asyncio.gather(*(warm.acquire() for _ in range(config["concurrency"])))
            print("ready", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)  # "go"
            stop = asyncio.Event()
            loop.call_at(loop.time() + config["seconds"], stop.set)
            result = await client.send_many(pushes(), concurrency=config["concurrency"], stop=stop)
            dropped = limiter.dropped_slots
        finally:
            await warm.aclose()
            await limiter.aclose()
    errors: collections.Counter[str] = collections.Counter(
        type(outcome.error).__name__ for outcome in result if outcome.error is not None
    )
    return {
        "ok": sum(1 for outcome in result if outcome.ok),
        "errors": dict(errors),
        "dropped_slots": dropped,
        "events": events.events,
    }


# -- one run -------------------------------------------------------------------------------


def _child(mode: str, config: dict[str, Any], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE), mode, json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def _line(process: subprocess.Popen[bytes]) -> bytes:
    assert process.stdout is not None
    return process.stdout.readline()


def _say(process: subprocess.Popen[bytes], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line.encode() + b"\n")
    process.stdin.flush()


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def run_once(scenario: str, binary: str, directory: Path) -> dict[str, Any]:
    """One run of ``scenario`` (``"kill"`` or ``"stop"``); returns its figures.

    Raises:
        RuntimeError: a child failed, or redis-server did not start.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, not {scenario!r}")
    outage_at, back_at, end = TIMELINE[scenario]
    began = time.monotonic()
    redis = FleetRedis(binary, directory)
    for attempt in range(3):  # another process may take the free port first
        try:
            redis.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            redis.port = _servers.free_port()
    children: list[subprocess.Popen[bytes]] = []
    logs = [open(directory / f"child-{n}.log", "wb") for n in range(PROCESSES + 1)]  # noqa: SIM115
    try:
        # The fake on a port chosen here, so that every child starts at once.
        quota = {"rate_limit": RATE_LIMIT, "rate_period": RATE_PERIOD}
        server = _child("--server", {**quota, "port": _servers.free_port()}, logs[0])
        children.append(server)
        config = {
            **quota,
            "base_url": f"http://127.0.0.1:{json.loads(server.args[-1])['port']}",
            "api_key": DEFAULT_API_KEY,
            "partner_id": DEFAULT_PARTNER_ID,
            "redis_url": redis.url,
            "processes": PROCESSES,
            "concurrency": CONCURRENCY,
            "seconds": end,
        }
        senders = [_child("--sender", config, logs[n + 1]) for n in range(PROCESSES)]
        children.extend(senders)
        if _line(server) != b"ready\n":
            raise RuntimeError(f"the FakeInsider process did not start: {_tail(directory, -1)}")
        for n, sender in enumerate(senders):
            if _line(sender) != b"ready\n":
                raise RuntimeError(f"a sender process did not start: {_tail(directory, n)}")
        start = time.monotonic()
        for sender in senders:
            _say(sender, "go")
        _sleep_until(start + outage_at)
        redis.signal(signal.SIGKILL if scenario == "kill" else signal.SIGSTOP)
        down_at = time.monotonic()
        _sleep_until(start + back_at)
        if scenario == "kill":
            redis.start()  # the same port, no data: every key is lost
        else:
            redis.signal(signal.SIGCONT)
        up_at = time.monotonic()
        reports = []
        for sender in senders:
            out, _ = sender.communicate(timeout=end + 60)
            if sender.returncode != 0:
                raise RuntimeError(f"a sender failed: {_tail(directory, senders.index(sender))}")
            reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        _say(server, "dump")
        out, _ = server.communicate(timeout=60)
        arrivals: list[tuple[float, int | None]] = json.loads(out)["arrivals"]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
        for log in logs:
            log.close()
        redis.stop()
    times = [t for t, _ in arrivals]
    ok = [t - start for t, status in arrivals if status == 200]
    errors: collections.Counter[str] = collections.Counter()
    for report in reports:
        errors.update(report["errors"])
    events = sorted(
        (round(t - start, 3), pid, message)
        for pid, report in enumerate(reports)
        for t, message in report["events"]
    )
    # From the first process's fallback start to the last one's return: only local starts.
    lost = [t for t, _, message in events if "unreachable" in message]
    found = [t for t, _, message in events if "Redis is back;" in message]
    local_from = min(lost, default=math.inf) + FALLBACK_DELAY
    local = sum(1 for t in ok if local_from <= t < max(found, default=-math.inf))
    return {
        "scenario": scenario,
        "max_in_window": max_in_window(times, RATE_PERIOD),
        "rejected_429": sum(1 for _, status in arrivals if status == 429),
        "sent": len(ok),
        "utilization": round(len(ok) / (RATE_LIMIT * end / RATE_PERIOD), 3),
        "phases": {
            "before": sum(1 for t in ok if t < down_at - start),
            "during": sum(1 for t in ok if down_at - start <= t < up_at - start),
            "after": sum(1 for t in ok if t >= up_at - start),
        },
        "local": local,
        "last_second": sum(1 for t in ok if t >= end - 1),
        "first_after_outage": min((round(t, 3) for t in ok if t >= down_at - start), default=None),
        "outage": [round(down_at - start, 3), round(up_at - start, 3)],
        "dropped_slots": sum(r["dropped_slots"] for r in reports),
        "sender_errors": dict(errors),
        "events": [f"{t:7.3f} p{pid} {message}" for t, pid, message in events],
        "seconds": round(time.monotonic() - began, 1),
        "start_up": round(start - began, 1),
        "wind_down": round(time.monotonic() - start - end, 1),
    }


def _tail(directory: Path, sender: int) -> str:
    return (directory / f"child-{sender + 1}.log").read_text(errors="replace")[-3000:]


def summary_line(figures: dict[str, Any]) -> str:
    phases = figures["phases"]
    return (
        f"{figures['scenario']:<4}  max window {figures['max_in_window']:>3}/{RATE_LIMIT}  "
        f"429s {figures['rejected_429']}  utilization {figures['utilization']:.1%}  "
        f"(before {phases['before']}, during {phases['during']}, after {phases['after']}; "
        f"local {figures['local']}, last second {figures['last_second']})  "
        f"dropped {figures['dropped_slots']}  errors {figures['sender_errors'] or 'none'}  "
        f"{figures['seconds']} s ({figures['start_up']} s start-up, {figures['wind_down']} s "
        "wind-down)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--events", action="store_true", help="print the limiters' warnings")
    parser.add_argument("--server", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--sender", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        asyncio.run(serve(json.loads(args.server)))
        return
    if args.sender:
        print(json.dumps(asyncio.run(send(json.loads(args.sender)))), flush=True)
        return
    binary = _servers.redis_server_binary()
    if binary is None:
        parser.error("redis-server is not installed")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.scenario}
    for run in range(args.runs):
        for scenario in args.scenario:
            with tempfile.TemporaryDirectory() as directory:
                figures = run_once(scenario, binary, Path(directory))
            results[scenario].append(figures)
            print(f"run {run + 1:>2}  {summary_line(figures)}", flush=True)
            if args.events:
                print("\n".join(f"        {event}" for event in figures["events"]), flush=True)
    bad = 0
    for scenario, runs in results.items():
        clean = sum(1 for f in runs if f["rejected_429"] == 0 and f["max_in_window"] <= RATE_LIMIT)
        bad += len(runs) - clean
        print(
            f"{scenario}: {clean} of {len(runs)} runs with 0 x 429 and no window over "
            f"{RATE_LIMIT}; max window {max(f['max_in_window'] for f in runs)}, 429s "
            f"{[f['rejected_429'] for f in runs]}, utilization "
            f"{min(f['utilization'] for f in runs):.1%}-{max(f['utilization'] for f in runs):.1%}"
            f", {sum(f['seconds'] for f in runs) / len(runs):.1f} s a run"
        )
    print("RESULT " + json.dumps({s: [f for f in r] for s, r in results.items()}, default=str))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
