"""A pool of 4 plain ``multiprocessing`` processes, two started by ``fork`` and two by ``spawn``,
each with its own asyncio loop and its own async ``WebPushClient(redis_url=...)``: one Redis
for the quota and the dedupe keys, FakeInsider in a process of its own at a scaled quota.

The mix: 500 dedupe keys, 125 to each process, and 100 of them sent a second time by another
process (600 sends): 52 at about the same moment as their first send (the two race), 48 at
the end of the other process's list.
One process is SIGKILLed mid-run and its whole list is then run again by a fresh process, as
a supervisor reruns a crashed job: what it had launched is replayed, not sent again. The
pool's parent sends two keys itself before it starts the pool (one of them a pool key too), so
the fork children inherit an SDK that was used.

The checks are the Celery fleet's (tests/fleet_support.py's ``check_fleet``): every key
launched exactly once, or reported ambiguous (then at most once); no window at the server over
the quota; 0 x 429. About 10 s (500 launches at 300 per 2 s, and the processes' start).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helper_modules import helper

ROOT = Path(__file__).resolve().parents[1]


fleet = helper("fleet_support")
redis_server = fleet.redis_server  # the fixture: a redis-server of this test alone

RATE_LIMIT = 300
RATE_PERIOD = 2.0
PROCESSES = 4
KEYS_EACH = 125
START_METHODS = ["fork", "spawn", "fork", "spawn"]
KILLED = 2  # a fork process, SIGKILLed once KILL_AFTER of its sends have ended
KILL_AFTER = 60
PARENT_KEYS = ["user-000:digest", "parent:warm-up"]  # sent before the fork, by the pool's parent


def job_lists() -> tuple[list[str], list[list[str]]]:
    """Every key, and each process's list: its own 125 keys, with 13 keys of its neighbour's
    interleaved among its first ones (both send them at about the same moment), and 12 more
    of them at its end (long after the neighbour sent them)."""
    keys = [f"user-{n:03d}:digest" for n in range(PROCESSES * KEYS_EACH)]
    own = [keys[p * KEYS_EACH : (p + 1) * KEYS_EACH] for p in range(PROCESSES)]
    jobs = []
    for p in range(PROCESSES):
        neighbour = own[(p + 1) % PROCESSES]
        mine = []
        for n, key in enumerate(own[p]):
            mine.append(key)
            if n < 13:
                mine.append(neighbour[n])
        jobs.append(mine + neighbour[50:62])
    return keys, jobs


@pytest.mark.slow  # ~10 s of real time: Python 3.11 only in CI (.ci/run)
@pytest.mark.redis
def test_a_multiprocessing_pool_launches_each_key_once_within_the_quota(
    tmp_path: Path, redis_server: Any
) -> None:
    keys, jobs = job_lists()
    assert sum(map(len, jobs)) == 600
    assert len({key for job in jobs for key in job}) == 500
    out_dir = tmp_path / "outcomes"
    out_dir.mkdir()
    fake = fleet.FakeInsiderProcess(RATE_LIMIT, RATE_PERIOD, tmp_path)
    fake.start()
    try:
        report = fleet.run_pool(
            {
                "api_key": fleet.API_KEY,
                "base_url": fake.base_url,
                "redis_url": redis_server.url,
                "rate_limit": RATE_LIMIT,
                "rate_period": RATE_PERIOD,
                "jobs": jobs,
                "parent_keys": PARENT_KEYS,
                "start_methods": START_METHODS,
                "concurrency": 8,
                "kill_index": KILLED,
                "kill_after": KILL_AFTER,
                "out_dir": str(out_dir),
            }
        )
        arrivals = fake.stop()
    finally:
        fake.kill()
    outcomes = [fleet.Outcome.from_dict(o) for o in report["outcomes"]]
    verdict = fleet.check_fleet(arrivals, outcomes, keys + PARENT_KEYS, RATE_LIMIT, RATE_PERIOD)
    print(f"\nmultiprocessing pool: {verdict.summary()}; seconds: {report['seconds']}")
    assert report["killed"], "the process to kill had finished first"
    codes = report["exit_codes"]
    assert codes[KILLED] == -9
    assert [c for n, c in enumerate(codes) if n != KILLED] == [0] * PROCESSES, report["stderr"]
    assert verdict.problems == []
    assert verdict.rejected_429 == 0
    assert verdict.max_in_window <= RATE_LIMIT
    # The rerun found the killed process's finished sends launched: replayed, not resent.
    assert verdict.replayed >= KILL_AFTER
    assert "Warning" not in report["stderr"], report["stderr"]


def test_the_fleet_check_catches_every_broken_promise() -> None:
    """check_fleet is what the fleet tests stand on: each promise it checks, broken once."""
    a, b = fleet.Arrival, fleet.Outcome
    keys = ["k1", "k2"]
    good = [a(0.0, 200, "k1", 11), a(0.5, 200, "k2", 12)]
    sends = [b("k1", 11), b("k2", 12), b("k2", 12, replayed=True)]
    assert fleet.check_fleet(good, sends, keys, 2, 1.0).problems == []
    # An ambiguous key may be launched once or never.
    assert (
        fleet.check_fleet(good[:1], [*sends[:1], b("k2", ambiguous=True)], keys, 2, 1.0).problems
        == []
    )

    def problems(arrivals: list[Any], outcomes: list[Any], limit: int = 2) -> list[str]:
        found: list[str] = fleet.check_fleet(arrivals, outcomes, keys, limit, 1.0).problems
        assert found, (arrivals, outcomes)
        return found

    assert "launched 2 times" in " ".join(problems([*good, a(0.9, 200, "k2", 13)], sends))
    assert "never launched" in " ".join(problems(good[:1], [*sends[:1], b("k2", 12)]))
    assert "429" in " ".join(problems([*good, a(0.6, 429, "k1", None)], sends, limit=3))
    assert "in one window" in " ".join(problems(good, sends, limit=1))
    assert "failed" in " ".join(problems(good, [*sends, b("k1", error="ServerError")]))
    assert "say they launched" in " ".join(problems(good, [*sends, b("k1", 11)]))
    assert "no send of it" in " ".join(problems(good, sends[:1]))
    assert "campaigns" in " ".join(problems(good, [b("k1", 99), *sends[1:]]))
    assert "no known key" in " ".join(problems([*good, a(0.7, 200, "k9", 14)], sends, limit=3))
    # An ambiguous key launched twice is still a double launch.
    twice = [*good, a(0.7, 200, "k1", 15)]
    assert "launched 2 times" in " ".join(problems(twice, [*sends, b("k1", ambiguous=True)], 3))
