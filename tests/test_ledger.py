"""The ledger: the rule table, entries, and compare-and-set on every store (memory, SQLite in
several processes, Redis), which dedupe keys and batch journals share."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from insider_webpush import JournalError, LaunchResult, TransportError
from insider_webpush.errors import ServerError
from insider_webpush.ledger import (
    Action,
    Claim,
    Entry,
    Failure,
    Journal,
    Ledger,
    MemoryLedger,
    RedisLedger,
    SQLiteLedger,
    State,
    Taken,
    decide,
    open_ledger,
)
from insider_webpush.outcomes import Stage

from .redis_server import RedisServer, redis_server, redis_url_down  # noqa: F401 - fixtures

DIGEST = "00112233445566ff"
NOW = 1_800_000_000.0
LEASE = 30.0


def entry(state: State, *, digest: str = DIGEST, at: float = NOW - 1) -> Entry:
    return Entry(state, digest, attempts=1, owner="someone", at=at)


@pytest.mark.parametrize(
    ("found", "retry_ambiguous", "action"),
    [
        (None, False, Action.SEND),
        (entry(State.DONE), False, Action.REPLAY),
        (entry(State.DONE), True, Action.REPLAY),
        (entry(State.FAILED), False, Action.RESEND),
        (entry(State.AMBIGUOUS), False, Action.AMBIGUOUS),
        (entry(State.AMBIGUOUS), True, Action.RESEND),
        (entry(State.SENDING), False, Action.IN_FLIGHT),
        (entry(State.SENDING), True, Action.IN_FLIGHT),  # a live holder is never taken over
        (entry(State.SENDING, at=NOW - LEASE - 1), False, Action.AMBIGUOUS),  # holder died
        (entry(State.SENDING, at=NOW - LEASE - 1), True, Action.RESEND),
        (entry(State.SENDING, at=-math.inf), False, Action.AMBIGUOUS),  # a JSONL sending line
        (entry(State.DONE, digest="ffffffffffffffff"), False, Action.MISMATCH),
        (entry(State.FAILED, digest="ffffffffffffffff"), True, Action.MISMATCH),
    ],
)
def test_decide_is_one_table_for_positions_and_dedupe_keys(
    found: Entry | None, retry_ambiguous: bool, action: Action
) -> None:
    assert decide(found, DIGEST, now=NOW, lease=LEASE, retry_ambiguous=retry_ambiguous) is action


def test_an_entry_survives_json_exactly() -> None:
    failure = Failure.of(ServerError(503, "Service Unavailable", retry_after=2.5, ambiguous=True))
    for original in (
        Entry(State.DONE, DIGEST, 2, 1697300275, None, "abc", NOW),
        Entry(State.AMBIGUOUS, DIGEST, 1, None, failure, "abc", NOW + 0.123456789),
        Entry(
            State.FAILED,
            DIGEST,
            3,
            None,
            Failure.of(TransportError("refused", stage=Stage.NOT_SENT)),
        ),
    ):
        text = original.to_json()
        assert Entry.from_json(text) == original
        assert Entry.from_json(text).to_json() == text  # the compare-and-set compares text
    rebuilt = failure.rebuild()
    assert isinstance(rebuilt, ServerError)
    assert (rebuilt.status, rebuilt.retry_after, rebuilt.ambiguous) == (503, 2.5, True)
    with pytest.raises(ValueError, match="not a ledger entry"):
        Entry.from_json('{"s": "nonsense"}')


async def check_compare_and_set(ledger: Ledger) -> None:
    """The contract every store keeps."""
    first = Entry(State.SENDING, DIGEST, 1, owner="a", at=NOW)
    assert await ledger.get("k") is None
    assert await ledger.swap("k", first, None) is None  # written
    assert await ledger.get("k") == first
    second = Entry(State.SENDING, DIGEST, 1, owner="b", at=NOW)
    assert await ledger.swap("k", second, None) == first  # lost: it exists; the winner shown
    done = Entry(State.DONE, DIGEST, 1, 42, None, "a", NOW + 1)
    assert await ledger.swap("k", done, second) == first  # lost: not what b expected
    assert await ledger.swap("k", done, first) is None
    assert await ledger.get("k") == done
    assert await ledger.get("other") is None


async def test_memory_ledger_compare_and_set_and_one_dict_per_process() -> None:
    await check_compare_and_set(MemoryLedger("ns"))
    assert await MemoryLedger("ns").get("k") is not None  # another instance, the same store
    assert await MemoryLedger("other-ns").get("k") is None


async def test_memory_ledger_forgets_after_its_ttl() -> None:
    ledger = MemoryLedger("ttl", ttl=0.05)
    assert await ledger.swap("k", entry(State.DONE), None) is None
    assert await ledger.get("k") is not None
    await asyncio.sleep(0.08)
    assert await ledger.get("k") is None


async def test_sqlite_ledger_compare_and_set(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "dedupe.sqlite", "ns")
    try:
        await check_compare_and_set(ledger)
    finally:
        await ledger.aclose()
    again = SQLiteLedger(tmp_path / "dedupe.sqlite", "ns")  # it is on disk
    try:
        found = await again.get("k")
        assert found is not None
        assert found.campaign_id == 42
    finally:
        await again.aclose()


def test_sqlite_ledger_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "pushes.jsonl"
    path.write_text('{"title": "not a database"}\n' * 100)
    with pytest.raises(JournalError, match="not a usable SQLite ledger"):
        SQLiteLedger(path, "ns")


def _race(path: str, key: str, owner: str, start: object, wins: object) -> None:
    """In a child process: try to take `key`; count a win."""

    async def main() -> None:
        ledger = SQLiteLedger(path, "ns")
        try:
            start.wait()  # type: ignore[attr-defined]
            mine = Entry(State.SENDING, DIGEST, 1, owner=owner, at=NOW)
            if await ledger.swap(key, mine, None) is None:
                with wins.get_lock():  # type: ignore[attr-defined]
                    wins.value += 1  # type: ignore[attr-defined]
        finally:
            await ledger.aclose()

    asyncio.run(main())


def test_sqlite_ledger_one_winner_among_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    path = str(tmp_path / "race.sqlite")
    SQLiteLedger(path, "ns")._db.close()  # the file and its table exist before the race
    for key in ("a", "b", "c"):
        start = context.Event()
        wins = context.Value("i", 0)
        processes = [
            context.Process(target=_race, args=(path, key, f"p{i}", start, wins)) for i in range(4)
        ]
        for process in processes:
            process.start()
        start.set()
        for process in processes:
            process.join(30)
            assert process.exitcode == 0
        assert wins.value == 1, key
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT count(*) FROM insider_webpush_ledger").fetchone()
    assert rows == (3,)


@pytest.mark.redis
async def test_redis_ledger_compare_and_set_in_one_round_trip(
    redis_server: RedisServer,  # noqa: F811 - the fixture
) -> None:
    ledger = RedisLedger(redis_server.url, "ns")
    try:
        await check_compare_and_set(ledger)
    finally:
        await ledger.aclose()


@pytest.mark.redis
async def test_an_unreachable_redis_ledger_is_a_not_sent_transport_error(
    redis_url_down: str,  # noqa: F811 - the fixture
) -> None:
    ledger = RedisLedger(redis_url_down, "ns")
    try:
        with pytest.raises(TransportError, match="dedupe store in Redis is unreachable") as info:
            await ledger.get("k")
        assert info.value.stage is Stage.NOT_SENT
        assert not info.value.ambiguous
    finally:
        await ledger.aclose()


async def test_a_claim_lost_at_the_gate_is_taken_and_says_what_won() -> None:
    ledger = MemoryLedger("claims")
    first = Claim(ledger, "order-1", DIGEST, lease=LEASE)
    second = Claim(ledger, "order-1", DIGEST, lease=LEASE)
    assert await first.look() is Action.SEND
    assert await second.look() is Action.SEND  # both looked before either took it
    await first.take(1)
    with pytest.raises(Taken) as info:
        await second.take(1)
    assert info.value.action is Action.IN_FLIGHT
    assert not second.held
    await first.settle(LaunchResult(success=True, campaign_id=7), None)
    third = Claim(ledger, "order-1", DIGEST, lease=LEASE)
    assert await third.look() is Action.REPLAY
    assert third.previous is not None
    assert third.replayed(third.previous) == LaunchResult(True, 7, replayed=True)


def test_open_ledger_by_spec(tmp_path: Path) -> None:
    assert isinstance(open_ledger(None, "ns", ttl=1.0), MemoryLedger)
    sqlite_ledger = open_ledger(tmp_path / "x.sqlite", "ns", ttl=1.0)
    assert isinstance(sqlite_ledger, SQLiteLedger)
    sqlite_ledger._db.close()  # type: ignore[attr-defined]
    memory = MemoryLedger("mine")
    assert open_ledger(memory, "ns", ttl=1.0) is memory
    with pytest.raises(ValueError, match=r"journal\.name"):
        Journal("redis://localhost", "")


FORK_WITH_THE_LOCK_HELD = """
import asyncio, os, sys
from insider_webpush.ledger import SQLiteLedger

ledger = SQLiteLedger(sys.argv[1], "ns")
with ledger._lock:  # as a thread of the parent writing at the moment of the fork
    pid = os.fork()
    if pid == 0:
        asyncio.run(ledger.get("k"))  # the lock the parent holds is not this one's
        os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_an_sqlite_ledger_works_in_a_child_forked_while_its_lock_was_held(tmp_path: Path) -> None:
    # In a fresh process of one thread: forking pytest's own (threads) would warn.
    done = subprocess.run(
        [sys.executable, "-c", FORK_WITH_THE_LOCK_HELD, str(tmp_path / "fork.sqlite")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.stdout, done.stderr) == ("0\n", "")


async def test_an_outcome_lost_to_another_holder_is_said(caplog: pytest.LogCaptureFixture) -> None:
    ledger = MemoryLedger("lost")
    claim = Claim(ledger, "k", DIGEST, lease=LEASE)
    await claim.look()
    await claim.take(1)
    other = Entry(State.SENDING, DIGEST, 1, owner="other", at=NOW)
    found = await ledger.get("k")
    assert await ledger.swap("k", other, found) is None  # taken over meanwhile
    await claim.settle(LaunchResult(True, 5), None)
    assert "the record changed while it was sent" in caplog.text
    assert await ledger.get("k") == other
