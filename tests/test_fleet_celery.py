"""examples/celery/ as a fleet runs it: a real redis-server (broker, result backend, quota and
dedupe store), FakeInsider in a process of its own at a scaled quota, and a real Celery worker
with 4 prefork processes and ``acks_late``, one of them SIGKILLed mid-run.

The mix: 1,800 dedupe keys, each enqueued once, and 200 of them enqueued a second time, 2,000
tasks in all: 100 seconds right behind their first (another pool process takes it a moment
later, while the first is in flight) and 100 at the end of the queue (the first long done).
The killed process's task is delivered again (``task_reject_on_worker_lost``).

The checks (tests/fleet_support.py's ``check_fleet``): every key launched exactly once, or a
run of its task reported it ambiguous (then at most once); every task ended with its key's
campaign id (the later ones ``replayed``) or ambiguous; no sliding window at the server over
the quota; 0 x 429. About 25 s (1,800 launches at 200 per 2 s).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .helper_modules import helper

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "celery"


fleet = helper("fleet_support")

RATE_LIMIT = 200
RATE_PERIOD = 2.0
KEYS = 1800
TASK = "push_tasks.send_push"
KILL_AT = 0.35  # the share of tasks done when a pool process is killed


def queue_order() -> tuple[list[str], list[str]]:
    """The keys, and the order their tasks are enqueued in (2,000: 200 keys twice)."""
    keys = [f"order-{n:04d}:welcome" for n in range(KEYS)]
    order = []
    for n, key in enumerate(keys):
        order.append(key)
        if n % 18 == 0:  # 100 keys: a second task right behind the first
            order.append(key)
    order += keys[9::18]  # 100 other keys: a second task at the end of the queue
    return keys, order


redis_server = fleet.redis_server  # the fixture: a redis-server of this test alone


def outcome_of(result: Any, key: str) -> Any:
    """A task's end as a fleet Outcome: its returned dict, or the failure it raised."""
    if result.state == "SUCCESS":
        return fleet.Outcome.from_dict(result.result)
    return fleet.Outcome(key=key, error=f"{result.state}: {result.result!r}")


def count_done(backend: Any, pending: list[Any]) -> list[Any]:
    """The results of ``pending`` still not done (one MGET, not a GET a result: this process
    shares the machine's 2 cores with the worker)."""
    from celery.states import READY_STATES

    values = backend.mget([backend.get_key_for_task(r.id) for r in pending])
    return [
        r
        for r, value in zip(pending, values, strict=True)
        if value is None or backend.decode_result(value)["status"] not in READY_STATES
    ]


def kill_a_busy_pool_process(worker: Any, attempts: int = 5) -> list[int]:
    """SIGKILL a pool process running a task; the pids killed. One that was between two
    tasks loses none (the worker then logs no lost task): another is killed then."""
    killed = []
    for _ in range(attempts):
        pid = worker.pool_pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if "WorkerLostError" in worker.output():
                return killed
            time.sleep(0.02)
    pytest.fail(f"no task was lost in {attempts} kills:\n{worker.output()[-3000:]}")


@pytest.mark.slow  # ~25 s of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
def test_a_celery_fleet_launches_each_key_once_within_the_quota(
    tmp_path: Path, redis_server: Any
) -> None:
    from celery import Celery

    keys, order = queue_order()
    assert (len(set(order)), len(order)) == (KEYS, 2000)
    fake = fleet.FakeInsiderProcess(RATE_LIMIT, RATE_PERIOD, tmp_path)
    fake.start()
    env = fleet.env_for(fake.base_url, redis_server.url, RATE_LIMIT, RATE_PERIOD)
    worker = fleet.CeleryWorker("push_tasks", EXAMPLE, env, tmp_path / "worker.log")
    # Only a client of the broker and backend here: the tasks are the example's, by name.
    producer = Celery("fleet-test", broker=redis_server.url, backend=redis_server.url)
    producer.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    try:
        started = time.monotonic()
        worker.start()
        with producer.connection_for_write() as connection:
            results = [
                producer.send_task(TASK, args=(fleet.push_for(key), key), connection=connection)
                for key in order
            ]
        killed = None
        pending = results
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            time.sleep(0.25)
            pending = count_done(producer.backend, pending)
            if killed is None and len(pending) <= (1 - KILL_AT) * len(results):
                killed = kill_a_busy_pool_process(worker)
        seconds = time.monotonic() - started
        done = len(results) - len(pending)
        assert done == len(results), f"{done} of {len(results)} tasks done in {seconds:.0f} s"
        outcomes = [outcome_of(r, key) for r, key in zip(results, order, strict=True)]
        assert worker.stop() == 0, worker.output()[-3000:]
        arrivals = fake.stop()
    finally:
        producer.close()
        worker.kill()
        fake.kill()

    verdict = fleet.check_fleet(arrivals, outcomes, keys, RATE_LIMIT, RATE_PERIOD)
    print(f"\ncelery fleet, {seconds:.1f} s: {verdict.summary()}")
    assert verdict.problems == []
    assert verdict.rejected_429 == 0
    assert verdict.max_in_window <= RATE_LIMIT
    # The 100 second tasks at the end of the queue ran long after their first: replayed
    # (or ambiguous, for a key whose first task was killed mid-request).
    assert verdict.replayed >= 100 - verdict.ambiguous_keys
    log = worker.output()
    assert killed is not None
    for pid in killed:
        assert f"pid:{pid} exited with 'signal 9 (SIGKILL)'" in log
    unexpected = [
        line
        for line in log.splitlines()
        if "ERROR/" in line
        and "WorkerLostError" not in line
        and not any(f"pid:{pid} exited" in line for pid in killed)
        and "may have been launched" not in line  # an ambiguous key, reported as it should
    ]
    assert unexpected == [], log[-3000:]
    assert "Unclosed" not in log
    assert "ResourceWarning" not in log


@pytest.mark.slow  # ~12 s of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
def test_a_task_killed_mid_request_is_reported_ambiguous_and_never_resent(
    tmp_path: Path, redis_server: Any
) -> None:
    """The case the big run hits only by chance: a pool process SIGKILLed while its request
    is on the wire (the fake answers every request 2.5 s late). The task is redelivered; its
    key counts as in flight until the dead holder's lease ends (an attempt's timeout, 4 s
    here, + the longest backoff + 1 s), then it is reported ambiguous: launched once, never
    sent again."""
    from celery import Celery

    keys = [f"slow-{n}:reminder" for n in range(4)]  # one task for each pool process
    fake = fleet.FakeInsiderProcess(100, 1.0, tmp_path, faults=["slow,latency=2.5"])
    fake.start()
    env = fleet.env_for(fake.base_url, redis_server.url, 100, 1.0)
    env["INSIDER_TIMEOUT"] = "4"
    worker = fleet.CeleryWorker("push_tasks", EXAMPLE, env, tmp_path / "worker.log")
    producer = Celery("fleet-test", broker=redis_server.url, backend=redis_server.url)
    producer.conf.broker_connection_retry_on_startup = True
    try:
        worker.start()
        worker.pool_pids()
        results = [producer.send_task(TASK, args=(fleet.push_for(k), k)) for k in keys]
        deadline = time.monotonic() + 30
        while fake.arrived() < len(keys) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every request is on the wire (the fake has them), none answered for 2.5 s.
        kill_a_busy_pool_process(worker)
        outcomes = [fleet.Outcome.from_dict(r.get(timeout=60)) for r in results]
        assert worker.stop() == 0, worker.output()[-3000:]
        arrivals = fake.stop()
    finally:
        producer.close()
        worker.kill()
        fake.kill()
    verdict = fleet.check_fleet(arrivals, outcomes, keys, 100, 1.0)
    assert verdict.problems == []
    assert verdict.ambiguous_keys == 1  # the killed task's key, after its redelivery
    assert verdict.launched == 4  # its request had reached the server: launched once
    assert "may have been launched; not sending it again" in worker.output()


@pytest.mark.slow  # ~4 s a pool of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_the_example_runs_on_the_threads_and_solo_pools(
    tmp_path: Path, redis_server: Any, pool: str
) -> None:
    """The threads share the process's one sync client; solo runs it in the worker itself."""
    from celery import Celery

    rate_limit, rate_period = 40, 1.0
    keys = [f"signup-{n:02d}:hello" for n in range(40)]
    order = keys + keys[::4]  # 10 keys a second time, after their first
    fake = fleet.FakeInsiderProcess(rate_limit, rate_period, tmp_path)
    fake.start()
    env = fleet.env_for(fake.base_url, redis_server.url, rate_limit, rate_period)
    worker = fleet.CeleryWorker("push_tasks", EXAMPLE, env, tmp_path / "worker.log", pool=pool)
    producer = Celery("fleet-test", broker=redis_server.url, backend=redis_server.url)
    producer.conf.broker_connection_retry_on_startup = True
    try:
        worker.start()
        results = [producer.send_task(TASK, args=(fleet.push_for(k), k)) for k in order]
        outcomes = [fleet.Outcome.from_dict(r.get(timeout=60)) for r in results]
        assert worker.stop() == 0, worker.output()[-3000:]
        arrivals = fake.stop()
    finally:
        producer.close()
        worker.kill()
        fake.kill()
    verdict = fleet.check_fleet(arrivals, outcomes, keys, rate_limit, rate_period)
    assert verdict.problems == []
    assert verdict.replayed == 10
    assert "ERROR/" not in worker.output()
