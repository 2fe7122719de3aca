"""The fleet tests' harness: FakeInsider in a process of its own, a real Celery worker, a pool
of plain ``multiprocessing`` senders, and the one check every fleet run must pass.

tests/test_fleet_celery.py and tests/test_fleet_multiprocessing.py load this file by its path
(tests/ is not on ``sys.path``); it is also a script, run in subprocesses:

python tests/fleet_support.py fake CONFIG_JSON
    FakeInsider at ``rate_limit`` per ``rate_period`` (a strict sliding window that answers
    429 past it), with ``faults`` (``Fault.parse`` forms), on a free loopback port. Prints
    its base URL; a line ``count`` on stdin prints how many requests it has received; any
    other line, or EOF, stops it: it writes every request it received to
    ``CONFIG["records"]`` as JSON lines (arrival time on its own monotonic clock, status,
    dedupe key, campaign id) and exits.

python tests/fleet_support.py pool CONFIG_JSON
    A pool of plain ``multiprocessing`` processes (``CONFIG["start_methods"]``, e.g. two
    ``fork`` and two ``spawn``), each with its own asyncio loop and its own async
    ``WebPushClient(redis_url=...)`` (the Redis quota and dedupe store), sending its list of
    dedupe keys, after this process sent ``CONFIG["parent_keys"]`` (so the fork children
    inherit an SDK that was used). One process is SIGKILLed mid-run and its whole list is
    then run again by a fresh process, as a supervisor reruns a crashed job. Prints one JSON
    line: every send's outcome, the exit codes, and when the kill, the end and the rerun
    came. Run in a fresh process so that ``fork`` happens in a process with one thread,
    never inside pytest.

Each push carries its dedupe key in its title (``fleet <key>``), so the server's records show
how many times each key was launched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run as a script or loaded
from redis_server import RedisServer, free_port, redis_server, require_redis_server

from insider_webpush.testing.records import max_in_window

__all__ = [
    "Arrival",
    "CeleryWorker",
    "FakeInsiderProcess",
    "Outcome",
    "RedisServer",
    "Verdict",
    "check_fleet",
    "child_pids",
    "free_port",
    "push_for",
    "redis_server",
    "require_redis_server",
    "run_pool",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
API_KEY = "fleet-key"
PARTNER_ID = "10000001"
TITLE_PREFIX = "fleet "
START_TIMEOUT = 30.0  # seconds for a helper process to be ready
IN_FLIGHT_WAIT = 0.05  # seconds between two asks about a key in flight in another process
IN_FLIGHT_ASKS = 200  # 10 s of asks
POOL_TIMEOUT = 2.0  # seconds an attempt of a pool process's client may take
POOL_RETRY_CAP = 0.5  # seconds of its longest backoff
POOL_RETRY_AFTER = 1.0  # seconds of the longest Retry-After it waits out


def push_for(key: str) -> dict[str, Any]:
    """The launch body of the push sent for dedupe key ``key``: its title names the key."""
    return {
        "title": f"{TITLE_PREFIX}{key}",
        "description": "One push per dedupe key, fleet-wide",
        "image": "https://example.com/i.png",
        "link": "https://example.com/fleet",
        "ttl": 3600,
    }


def env_for(base_url: str, redis_url: str, rate_limit: int, rate_period: float) -> dict[str, str]:
    """The environment of a process that sends to the fake (the example's variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDER_", "CELERY_"))}
    env.update(
        INSIDER_API_KEY=API_KEY,
        INSIDER_PARTNER_ID=PARTNER_ID,
        INSIDER_BASE_URL=base_url,
        INSIDER_RATE_LIMIT=str(rate_limit),
        INSIDER_RATE_PERIOD=str(rate_period),
        REDIS_URL=redis_url,
    )
    return env


# -- what a run produced, and the check --------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One request as the fake received it."""

    at: float  # seconds, the fake's monotonic clock
    status: int | None  # None: dropped
    key: str | None  # the dedupe key in the push's title (None: not a fleet push)
    campaign_id: int | None


@dataclass(frozen=True)
class Outcome:
    """What one send (one task run to its end) reported."""

    key: str
    campaign_id: int | None = None
    replayed: bool = False
    ambiguous: bool = False  # DedupeConflictError(ambiguous=True), or an ambiguous failure
    error: str | None = None  # any other failure: "ClassName: text"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            key=data["dedupe_key"],
            campaign_id=data.get("campaign_id"),
            replayed=bool(data.get("replayed", False)),
            ambiguous=bool(data.get("ambiguous", False)),
            error=data.get("error") if not data.get("ambiguous") else None,
        )


@dataclass
class Verdict:
    """The figures of a fleet run, and every broken promise found in it (none: it passed)."""

    keys: int = 0
    sends: int = 0
    launched: int = 0  # launches the fake carried out
    replayed: int = 0
    ambiguous_keys: int = 0
    rejected_429: int = 0
    max_in_window: int = 0
    rate_limit: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.keys} keys, {self.sends} sends: {self.launched} launched, "
            f"{self.replayed} replayed, {self.ambiguous_keys} keys ambiguous; "
            f"{self.rejected_429} x 429, max in window {self.max_in_window} "
            f"(quota {self.rate_limit})"
        )


def check_fleet(
    arrivals: Sequence[Arrival],
    outcomes: Iterable[Outcome],
    keys: Iterable[str],
    rate_limit: int,
    rate_period: float,
) -> Verdict:
    """Check a fleet run against the promises.

    - the server answered no 429, and no sliding window of ``rate_period`` holds more than
      ``rate_limit`` arrivals (every arrival counted);
    - every key was launched exactly once, or a send of it reported it ambiguous (then it was
      launched at most once); no other push was launched, and no request failed;
    - every send ended with a campaign id (that of the key's one launch; ``replayed`` for all
      but at most one of them) or ambiguous, never with another error.
    """
    outcomes = list(outcomes)
    wanted = set(keys)
    verdict = Verdict(keys=len(wanted), sends=len(outcomes), rate_limit=rate_limit)
    problems = verdict.problems
    verdict.rejected_429 = sum(1 for a in arrivals if a.status == 429)
    verdict.max_in_window = max_in_window(sorted(a.at for a in arrivals), rate_period)
    if verdict.rejected_429:
        problems.append(f"the server answered {verdict.rejected_429} x 429")
    if verdict.max_in_window > rate_limit:
        problems.append(f"{verdict.max_in_window} arrivals in one window, quota {rate_limit}")
    others = collections.Counter(a.status for a in arrivals if a.status not in (200, 429))
    if others:
        problems.append(f"requests answered otherwise than 200: {dict(others)}")

    launches: dict[str, list[int | None]] = collections.defaultdict(list)
    for arrival in arrivals:
        if arrival.status == 200:
            if arrival.key is None or arrival.key not in wanted:
                problems.append(f"a push of no known key was launched: {arrival}")
            else:
                launches[arrival.key].append(arrival.campaign_id)
    verdict.launched = sum(len(ids) for ids in launches.values())

    by_key: dict[str, list[Outcome]] = collections.defaultdict(list)
    for outcome in outcomes:
        by_key[outcome.key].append(outcome)
        if outcome.error is not None:
            problems.append(f"a send failed: {outcome}")
    verdict.replayed = sum(1 for o in outcomes if o.replayed)
    for key in sorted(wanted):
        reports = by_key.get(key, [])
        launched = launches.get(key, [])
        ambiguous = any(o.ambiguous for o in reports)
        verdict.ambiguous_keys += ambiguous
        if not reports:
            problems.append(f"{key}: no send of it reported")
        if len(launched) > 1:
            problems.append(f"{key}: launched {len(launched)} times")
        elif not launched and not ambiguous:
            problems.append(f"{key}: never launched, and no send said it may have been")
        ids = {o.campaign_id for o in reports if o.campaign_id is not None}
        if ids and ids != set(launched):
            problems.append(f"{key}: sends report campaigns {ids}, the server launched {launched}")
        first_results = [o for o in reports if o.campaign_id is not None and not o.replayed]
        if len(first_results) > 1:
            problems.append(f"{key}: {len(first_results)} sends say they launched it")
    for key in by_key.keys() - wanted:
        problems.append(f"a send reported a key that was never asked for: {key}")
    return verdict


# -- FakeInsider in a process of its own -------------------------------------------------------


class FakeInsiderProcess:
    """``python tests/fleet_support.py fake``: start, then ``stop()`` returns the arrivals."""

    def __init__(
        self, rate_limit: int, rate_period: float, directory: Path, faults: Sequence[str] = ()
    ) -> None:
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        self.faults = list(faults)  # Fault.parse's one-line forms, e.g. "slow,latency=2"
        self.records = directory / "fake-records.jsonl"
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        config = {
            "rate_limit": self.rate_limit,
            "rate_period": self.rate_period,
            "records": str(self.records),
            "faults": self.faults,
        }
        self._process = subprocess.Popen(
            [sys.executable, __file__, "fake", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = _readline(self._process.stdout, START_TIMEOUT)
        if not line.startswith("http://"):
            self.kill()
            raise RuntimeError(f"FakeInsider did not start: {line!r}")
        self.base_url = line.strip()

    def arrived(self) -> int:
        """How many requests it has received so far."""
        assert self._process is not None
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        return int(_readline(self._process.stdout, START_TIMEOUT))

    def stop(self) -> list[Arrival]:
        """Stop it; every request it received, in order of arrival."""
        process = self._process
        assert process is not None
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        finally:
            self.kill()
        if process.returncode != 0:
            raise RuntimeError(f"FakeInsider exited {process.returncode}")
        with self.records.open(encoding="utf-8") as records:
            return [Arrival(**json.loads(line)) for line in records]

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> FakeInsiderProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _readline(stream: IO[str], timeout: float) -> str:
    """One line of a child's output, or "" after ``timeout`` seconds."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline()


def _serve_fake(config: Mapping[str, Any]) -> None:
    requests = asyncio.run(_fake_until_told(config))
    with open(config["records"], "w", encoding="utf-8") as out:
        for r in requests:
            title = r.body.get("title") if isinstance(r.body, dict) else None
            key = title[len(TITLE_PREFIX) :] if isinstance(title, str) else None
            record = {"at": r.arrived_at, "status": r.status, "key": key}
            record["campaign_id"] = r.campaign_id
            out.write(json.dumps(record) + "\n")


async def _fake_until_told(config: Mapping[str, Any]) -> list[Any]:
    from insider_webpush import FakeInsider, Fault

    loop = asyncio.get_running_loop()
    async with FakeInsider(
        api_key=API_KEY,
        partner_id=PARTNER_ID,
        rate_limit=config["rate_limit"],
        rate_period=config["rate_period"],
        faults=[Fault.parse(spec) for spec in config.get("faults", ())],
    ) as fake:
        print(fake.base_url, flush=True)
        while await loop.run_in_executor(None, sys.stdin.readline) == "count\n":
            print(len(fake.requests), flush=True)
    return fake.requests  # any other line, or EOF: stop


# -- a Celery worker ---------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """The pids of the live children of process ``pid`` (read from /proc)."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


class CeleryWorker:
    """``celery -A <app> worker`` with the prefork pool (or ``pool``), as a fleet runs it.

    Its output goes to ``log``. The worker is the leader of a new process group, so that
    ``kill`` takes its pool processes with it.
    """

    def __init__(
        self,
        app: str,
        app_dir: Path,
        env: Mapping[str, str],
        log: Path,
        *,
        pool: str = "prefork",
        concurrency: int = 4,
    ) -> None:
        self.app = app
        self.pool = pool
        self.app_dir = app_dir
        self.env = dict(env)
        self.log = log
        self.concurrency = concurrency
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", self.app, "worker"]
        argv += ["--pool", self.pool, "--concurrency", str(self.concurrency), "-O", "fair"]
        argv += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
        argv += ["--without-heartbeat", "--hostname", f"fleet-{os.getpid()}@%h"]
        with self.log.open("ab") as output:  # Popen duplicates it: this handle may close
            self._process = subprocess.Popen(
                argv,
                cwd=self.app_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pool_pids(self, timeout: float = START_TIMEOUT) -> list[int]:
        """The pool's processes, once all ``concurrency`` of them are up."""
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.output()[-3000:]}")
            pids = child_pids(self.pid)
            if len(pids) >= self.concurrency or time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """A warm shutdown (SIGTERM: running tasks finish), then SIGKILL to the whole group
        if it takes longer than ``timeout`` seconds. Returns the worker's exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        self.kill()
        return process.returncode

    def kill(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its group: the pool's processes too
        process.wait()

    def __enter__(self) -> CeleryWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# -- a pool of plain multiprocessing processes, async client ------------------------------------


def run_pool(config: Mapping[str, Any], timeout: float = 90.0) -> dict[str, Any]:
    """``python tests/fleet_support.py pool CONFIG``: its JSON report."""
    done = subprocess.run(
        [sys.executable, __file__, "pool", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the pool failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["stderr"] = done.stderr
    return report


def _pool_main(config: Mapping[str, Any]) -> dict[str, Any]:
    jobs: list[list[str]] = config["jobs"]
    methods: list[str] = config["start_methods"]
    out_dir = Path(config["out_dir"])
    # This process uses the SDK before it forks (the process-wide quota and dedupe state, and
    # their locks, are then inherited by the fork children): its keys go first.
    with open(out_dir / "parent.jsonl", "w", encoding="utf-8", buffering=1) as report:
        asyncio.run(_send_keys(config, config["parent_keys"], report))
    # Every process, and this one, wait here once ready: all start sending together, so that
    # two processes sending one key race (a spawn process takes longer to import).
    ready = multiprocessing.get_context("spawn").Barrier(len(jobs) + 1)
    processes = []
    for n, (method, keys) in enumerate(zip(methods, jobs, strict=True)):
        context = multiprocessing.get_context(method)
        process = context.Process(
            target=pool_process, args=(dict(config), keys, str(out_dir / f"{n}.jsonl"), ready)
        )
        process.start()
        processes.append(process)
    ready.wait(START_TIMEOUT)
    began = time.monotonic()
    victim = processes[config["kill_index"]]
    out = out_dir / f"{config['kill_index']}.jsonl"
    killed_after = config["kill_after"]
    deadline = time.monotonic() + 60
    while _lines(out) < killed_after and victim.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = victim.is_alive()
    if killed:
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic() - began
    for process in processes:
        process.join(60)
    joined_at = time.monotonic() - began
    # The crashed process's job, rerun from the start by a fresh process (as a supervisor
    # would): what it had launched must be replayed, not sent again.
    rerun = multiprocessing.get_context("fork").Process(
        target=pool_process,
        args=(dict(config), jobs[config["kill_index"]], str(out_dir / "rerun.jsonl"), None),
    )
    rerun.start()
    rerun.join(60)
    seconds = {
        "killed": round(killed_at, 2),
        "joined": round(joined_at, 2),
        "rerun": round(time.monotonic() - began - joined_at, 2),
    }
    outcomes = []
    for path in sorted(out_dir.glob("*.jsonl")):
        outcomes += [json.loads(line) for line in path.read_text().splitlines()]
    return {
        "outcomes": outcomes,
        "killed": killed,
        "killed_done": _lines(out),
        "exit_codes": [p.exitcode for p in processes] + [rerun.exitcode],
        "seconds": seconds,
    }


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def pool_process(config: dict[str, Any], keys: list[str], out: str, ready: Any) -> None:
    """One pool process: wait for the start, then send ``keys`` through one async client."""
    import insider_webpush  # noqa: F401 - imported before the start, not in the race

    if ready is not None:
        ready.wait(START_TIMEOUT)
    with open(out, "a", encoding="utf-8", buffering=1) as report:  # a line per outcome
        asyncio.run(_send_keys(config, keys, report))


async def _send_keys(config: Mapping[str, Any], keys: Sequence[str], report: IO[str]) -> None:
    from insider_webpush import (
        DedupeConflictError,
        InsiderError,
        RetryPolicy,
        WebPushClient,
        push_from_dict,
    )

    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def sender(client: WebPushClient) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            outcome: dict[str, Any] = {"dedupe_key": key}
            for _ in range(IN_FLIGHT_ASKS):
                try:
                    result = await client.send(push_from_dict(push_for(key)), dedupe_key=key)
                except DedupeConflictError as exc:
                    if not exc.in_flight:  # ambiguous, or (a bug) launched for another push
                        outcome.update(ambiguous=exc.ambiguous, error=repr(exc))
                        break
                    await asyncio.sleep(IN_FLIGHT_WAIT)  # in flight elsewhere: ask again
                except InsiderError as exc:
                    outcome.update(ambiguous=exc.ambiguous, error=repr(exc))
                    break
                else:
                    outcome.update(campaign_id=result.campaign_id, replayed=result.replayed)
                    break
            else:
                outcome["error"] = "still in flight elsewhere after every ask"
            report.write(json.dumps(outcome) + "\n")

    async with WebPushClient(
        config["api_key"],
        partner_id=PARTNER_ID,
        base_url=config["base_url"],
        rate_limit=config["rate_limit"],
        rate_period=config["rate_period"],
        redis_url=config["redis_url"],
        # A short attempt, backoff and Retry-After: a key held by a killed process counts as
        # in flight for the three (plus 1 s: 4.5 s), then as ambiguous; the rerun waits that.
        timeout=POOL_TIMEOUT,
        retry=RetryPolicy(cap=POOL_RETRY_CAP, max_retry_after=POOL_RETRY_AFTER),
    ) as client:
        await asyncio.gather(*(sender(client) for _ in range(config["concurrency"])))


# -- the command -------------------------------------------------------------------------------


def _main(argv: Sequence[str]) -> None:
    command, config = argv[0], json.loads(argv[1])
    if command == "fake":
        _serve_fake(config)
    elif command == "pool":
        print(json.dumps(_pool_main(config)), flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
