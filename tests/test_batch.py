"""send_many / stream against FakeInsider over loopback: one outcome per push, in order, in
bounded memory; the write-ahead journal across crashes, resumes and edits; cancellation."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import importlib.util
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from insider_webpush import (
    AuthenticationError,
    BadRequestError,
    BatchError,
    BatchInputError,
    BatchResult,
    FailedDependencyError,
    FakeInsider,
    Fault,
    InsiderError,
    JournalError,
    JournalMismatchError,
    NotSentError,
    Outcome,
    RateLimitError,
    RecordedRequest,
    RetryPolicy,
    ServerError,
    SlidingWindowLimiter,
    TransportError,
    ValidationError,
    WebPush,
    WebPushClient,
)

CHILD = Path(__file__).with_name("batch_child.py")
_spec = importlib.util.spec_from_file_location("batch_child", CHILD)
assert _spec is not None
assert _spec.loader is not None
batch_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(batch_child)

KEY = "sk-batch-SECRET-0123456789abcdef"
PARTNER = "1"
FAST = RetryPolicy(max_attempts=5, base=0.001, cap=0.01)
WORKER_NAME = "insider-webpush batch"


def make_pushes(count: int, prefix: str = "push") -> list[WebPush]:
    return list(batch_child.make_pushes(count, prefix))


def index_of(request: RecordedRequest) -> int:
    """The push index of a launch request: make_pushes titles are '<prefix> <index>'."""
    assert isinstance(request.body, dict)
    return int(request.body["title"].rsplit(" ", 1)[1])


def launch_counts(fake: FakeInsider) -> collections.Counter[str]:
    return collections.Counter(r.body["title"] for r in fake.launches if isinstance(r.body, dict))


def read_journal(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert lines[0] == {"journal": "insider-webpush batch", "version": 2}
    return lines[1:]


def unanswered(path: Path) -> set[int]:
    """Indices whose last journal line is `sending`: they went out with no answer journaled."""
    pending: set[int] = set()
    for line in read_journal(path):
        if line["event"] == "sending":
            pending.add(line["index"])
        else:
            pending.discard(line["index"])
    return pending


def drop_done_line(path: Path, index: int) -> None:
    """Remove the `done` line of ``index``, as if the process died before writing it."""
    kept = [
        raw
        for raw in path.read_bytes().splitlines(keepends=True)
        if not (b'"event":"done"' in raw and json.loads(raw)["index"] == index)
    ]
    path.write_bytes(b"".join(kept))


async def eventually(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not come true in time")


def workers_alive() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(WORKER_NAME)]


def summary(outcome: Outcome) -> tuple[Any, ...]:
    """What must survive a round trip through the journal."""
    error = outcome.error
    return (
        outcome.index,
        outcome.push,
        outcome.result.campaign_id if outcome.result else None,
        outcome.ok,
        outcome.ambiguous,
        outcome.attempts,
        type(error),
        None if error is None else str(error),
        getattr(error, "status", None),
        getattr(error, "retry_after", None),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeInsider]:
    async with FakeInsider(
        api_key=KEY, partner_id=PARTNER, rate_limit=100_000, rate_period=1.0, seed=0
    ) as server:
        yield server


@pytest.fixture
async def client(fake: FakeInsider) -> AsyncIterator[WebPushClient]:
    # Limiter lifted and retries in milliseconds: these tests are about the batch.
    async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
        yield c


@pytest.fixture
def no_task_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on asyncio's 'Task was destroyed but it is pending' and 'exception was never
    retrieved' (logged, not warned, so filterwarnings=error would miss them)."""
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        yield
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# -- outcomes -------------------------------------------------------------------------------


async def test_partial_failures_keep_input_order_and_carry_typed_errors(
    fake: FakeInsider, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    fake.faults += [
        Fault(status=500, at={5}),  # whichever push arrives sixth
        Fault(latency=0.05, at={0}),  # the first arrival finishes late: completion order != input
    ]
    pushes: list[Any] = [attrs.evolve(p, partner_id=PARTNER) for p in make_pushes(30)]
    # Far enough from the start that none of them is the sixth arrival.
    pushes[21] = attrs.evolve(pushes[21], partner_id=None)  # neither push nor client has one
    pushes[23] = (999_999, pushes[23])  # no such draft: 424
    pushes[25] = attrs.evolve(pushes[25], partner_id="2")  # not the account's partner: 400
    async with fake.client(partner_id=None, retry=FAST) as client:
        result = await client.send_many(pushes, concurrency=8, journal=journal)

    assert isinstance(result, BatchResult)
    assert [o.index for o in result] == list(range(30))
    assert [(o.campaign_id, o.push) if o.campaign_id else o.push for o in result] == pushes
    server_error = index_of(fake.requests[5])
    assert server_error < 20
    expected_failures = {21, 23, 25, server_error}
    assert {o.index for o in result.failed} == expected_failures, result.failed[0]
    assert all(o.ok and o.result is not None and o.error is None for o in result.succeeded)

    invalid = result[21]
    assert isinstance(invalid.error, ValidationError)
    assert invalid.error.field == "partner_id"
    assert (invalid.attempts, invalid.ambiguous, invalid.result) == (0, False, None)
    assert isinstance(result[23].error, FailedDependencyError)
    assert result[23].campaign_id == 999_999
    assert result[23].error.message == "SERVICE:-Campaign not found"
    assert isinstance(result[25].error, BadRequestError)
    assert not result[23].ambiguous
    assert not result[25].ambiguous
    assert isinstance(result[server_error].error, ServerError)
    assert result[server_error].error.status == 500
    assert result[server_error].ambiguous  # a 500 may have launched: reported, never resent

    # The push that failed validation went nowhere, so the journal says nothing of it.
    lines = read_journal(journal)
    assert 21 not in {line["index"] for line in lines}
    finished = [line["index"] for line in lines if line["event"] == "done"]
    assert finished != sorted(finished)  # the pushes really finished out of input order


async def test_stream_yields_outcomes_as_they_finish(
    fake: FakeInsider, client: WebPushClient
) -> None:
    fake.faults.append(Fault(latency=0.3, at={0}))
    finished = [o.index async for o in client.stream(make_pushes(20), concurrency=4)]
    assert sorted(finished) == list(range(20))
    assert finished[-1] == index_of(fake.requests[0])  # the slow one came last, not in place


async def test_batch_result_counts_and_raise_for_failures(
    fake: FakeInsider, client: WebPushClient
) -> None:
    fake.faults += [Fault(status=424, at={1}), Fault(status=500, at={2})]
    result = await client.send_many(make_pushes(6), concurrency=1)
    assert isinstance(result, Sequence)
    assert len(result) == 6
    assert result[1:3] == (result[1], result[2])
    assert [o.index for o in result.failed] == [1, 2]
    assert [o.index for o in result.ambiguous] == [2]
    assert [o.index for o in result.succeeded] == [0, 3, 4, 5]
    assert result.counts == {"total": 6, "succeeded": 4, "failed": 2, "ambiguous": 1}
    assert repr(result) == "BatchResult(total=6, succeeded=4, failed=2, ambiguous=1)"
    with pytest.raises(BatchError, match=r"2 of 6 pushes failed \(1 ambiguous") as info:
        result.raise_for_failures()
    assert isinstance(info.value, InsiderError)
    assert info.value.failed == result.failed
    assert info.value.ambiguous

    clean = await client.send_many(make_pushes(3, "clean"))
    assert clean.raise_for_failures() is clean


async def test_drafts_and_async_input(fake: FakeInsider, client: WebPushClient) -> None:
    draft = await client.create("a draft")

    async def pushes() -> AsyncIterator[Any]:
        for i, push in enumerate(make_pushes(6)):
            await asyncio.sleep(0)
            yield (draft, push) if i % 2 else push

    result = await client.send_many(pushes(), concurrency=3)
    assert [o.ok for o in result] == [True] * 6
    assert [o.campaign_id for o in result] == [None, draft] * 3
    assert [o.result.campaign_id == draft for o in result if o.result] == [False, True] * 3
    paths = {index_of(r): r.path for r in fake.launches}
    assert paths == {i: f"/v2/single/{draft if i % 2 else 'campaign_id'}" for i in range(6)}


async def test_input_is_pulled_lazily_by_a_fixed_pool(
    fake: FakeInsider, client: WebPushClient, no_task_leaks: None
) -> None:
    pulled = 0

    def endless() -> Iterator[WebPush]:
        nonlocal pulled
        for push in batch_child.make_pushes(10**12):
            pulled += 1
            yield push

    seen = 0
    async with contextlib.aclosing(client.stream(endless(), concurrency=4)) as outcomes:
        async for _ in outcomes:
            seen += 1
            await asyncio.sleep(0.002)  # a slow consumer: the workers must wait for it
            # in flight (4) + waiting for us (4): never more read ahead, whatever the input
            assert pulled - seen <= 8
            assert len(workers_alive()) <= 4
            if seen == 100:
                break
    assert workers_alive() == []  # closing stopped them, at once
    assert seen == 100
    assert len(fake.requests) <= pulled <= 100 + 8


async def test_arguments_are_checked_before_anything_runs(client: WebPushClient) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        client.stream(make_pushes(1), concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        await client.send_many(make_pushes(1), concurrency=True)
    with pytest.raises(
        ValidationError, match="concurrency: must be a whole number from 1 to 10000"
    ):
        await client.send_many(make_pushes(1), concurrency=10_001)
    with pytest.raises(ValidationError, match="pushes: must be an iterable"):
        await client.send_many(make_pushes(1)[0])  # type: ignore[arg-type]


async def test_an_item_that_is_not_a_push_is_a_failed_outcome_and_the_batch_goes_on(
    fake: FakeInsider, client: WebPushClient
) -> None:
    pushes = make_pushes(10)
    items: list[object] = [*pushes[:7], {"title": "a dict, not a WebPush"}, *pushes[8:]]
    items.append((True, pushes[7]))  # a bool is not a campaign id
    result = await client.send_many(items, concurrency=3)  # type: ignore[arg-type]
    assert len(result) == 11
    assert [o.index for o in result.failed] == [7, 10]
    bad = result[7]
    assert bad.push is None
    assert isinstance(bad.error, ValidationError)
    assert bad.error.field == "push"
    assert not bad.ambiguous
    assert bad.attempts == 0
    assert isinstance(result[10].error, ValidationError)
    assert result[10].error.field == "campaign_id"
    assert sorted(index_of(r) for r in fake.launches) == [0, 1, 2, 3, 4, 5, 6, 8, 9]


async def test_ten_pushes_do_not_start_ten_thousand_workers(client: WebPushClient) -> None:
    peak = 0

    def workers() -> int:
        return sum(t.get_name().startswith("insider-webpush batch") for t in asyncio.all_tasks())

    class Counted(list[WebPush]):
        def __iter__(self) -> Iterator[WebPush]:
            nonlocal peak
            for push in super().__iter__():
                peak = max(peak, workers())
                yield push

    result = await client.send_many(Counted(make_pushes(10)), concurrency=10_000)
    assert len(result.succeeded) == 10
    assert peak == 10  # a list says how long it is: one worker per push, no more


async def test_an_input_that_raises_stops_the_batch_after_what_is_in_flight(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    fake.faults.append(Fault(latency=0.05))  # the three pushes are in flight when it raises

    def rows() -> Iterator[WebPush]:
        yield from batch_child.make_pushes(3)
        raise ValueError("row 4 is not a push")

    with pytest.raises(BatchInputError, match="row 4 is not a push") as raised:
        await client.send_many(rows(), concurrency=4, journal=journal)
    assert isinstance(raised.value.__cause__, ValueError)
    assert raised.value.index == 3
    # Every push launched before the input failed is reported, none lost.
    assert raised.value.result is not None
    assert [o.index for o in raised.value.result.succeeded] == [0, 1, 2]
    # The pushes already sent were waited for, not abandoned: each has its `done` line.
    assert sorted(index_of(r) for r in fake.launches) == [0, 1, 2]
    assert unanswered(journal) == set()
    done = sorted(line["index"] for line in read_journal(journal) if line["event"] == "done")
    assert done == [0, 1, 2]


# -- chaos ----------------------------------------------------------------------------------


async def test_chaos_every_push_one_outcome_and_no_push_launched_twice(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    n = 2_000
    fake.faults += [
        Fault(status=429, probability=0.05),
        Fault(status=503, probability=0.02),
        Fault(status=500, processed=True, probability=0.01),  # launched, answered 500
        Fault(status=424, probability=0.01),
        Fault(drop=True, processed=True, probability=0.005),  # launched, connection dropped
        Fault(drop=True, probability=0.005),
    ]
    journal = tmp_path / "chaos.jsonl"
    result = await client.send_many(make_pushes(n), concurrency=64, journal=journal)

    # Every fault of the mix happened.
    statuses = collections.Counter(r.status for r in fake.requests)
    assert all(statuses[s] > 0 for s in (429, 503, 500, 424, None)), statuses
    assert any(r.status is None for r in fake.launches)
    assert any(r.status == 500 for r in fake.launches)

    # Exactly one outcome per push, in order.
    assert [o.index for o in result] == list(range(n))
    assert [o.push.title for o in result if o.push] == [f"push {i}" for i in range(n)]

    # The server never launched a push twice; a confirmed push was launched exactly once,
    # with the campaign id we reported; a push launched but not confirmed is ambiguous; a
    # definite failure was never launched.
    launched = launch_counts(fake)
    assert max(launched.values()) == 1
    by_title = {r.body["title"]: r for r in fake.launches if isinstance(r.body, dict)}
    for outcome in result:
        assert outcome.push is not None
        record = by_title.get(outcome.push.title)
        if outcome.ok:
            assert record is not None
            assert outcome.result is not None
            assert record.campaign_id == outcome.result.campaign_id
        elif record is not None:
            assert outcome.ambiguous, outcome
        assert outcome.ok or isinstance(
            outcome.error, ServerError | TransportError | FailedDependencyError | RateLimitError
        )
    assert result.counts["ambiguous"] > 0
    assert result.counts["succeeded"] > 0.9 * n

    # Rerun with the journal: only the certain failures are sent again (nothing of them can
    # have gone out); every other outcome comes back from the journal.
    certain = {o.index for o in result.failed if not o.ambiguous}
    assert certain  # the 424s
    fake.faults.clear()
    requests = len(fake.requests)
    again = await client.send_many(make_pushes(n), concurrency=64, journal=journal)
    assert len(fake.requests) - requests == len(certain)
    for before, after in zip(result, again, strict=True):
        if before.index in certain:
            assert after.ok
            assert not after.from_journal
        else:
            assert after.from_journal
            assert summary(after) == summary(before)
            # A success read back from the journal says that nothing was sent this time.
            assert after.result is None or after.result.replayed
    assert max(launch_counts(fake).values()) == 1


# -- a crash: SIGKILL mid-batch, then rerun --------------------------------------------------


async def test_sigkill_mid_batch_then_rerun_launches_nothing_twice(tmp_path: Path) -> None:
    n, concurrency = 600, 16
    journal = tmp_path / "killed.jsonl"
    stderr = tmp_path / "child.err"
    # Every answer is 50 ms late (the push is launched on arrival), so pushes are in flight.
    async with FakeInsider(
        api_key=batch_child.API_KEY,
        partner_id=batch_child.PARTNER_ID,
        rate_limit=100_000,
        rate_period=1.0,
        faults=[Fault(latency=0.05)],
    ) as fake:
        argv = [sys.executable, str(CHILD), "send", fake.base_url, str(journal), str(n)]

        def confirmed_lines() -> int:
            return journal.read_bytes().count(b'"event":"done"') if journal.exists() else 0

        def check_alive() -> bool:
            assert child.returncode is None, stderr.read_text()  # it died before the kill
            return confirmed_lines() >= 150

        with stderr.open("wb") as err:
            child = await asyncio.create_subprocess_exec(
                *argv, str(concurrency), stdout=subprocess.DEVNULL, stderr=err
            )
        try:
            await eventually(check_alive)  # the child started and is well into the batch
            await asyncio.sleep(0.03)  # kill at a moment unrelated to the writes we saw
        finally:
            # One signal only: a second one can reap the child under asyncio's child watcher,
            # which then reports returncode 255 (python/cpython#86276).
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL

        in_flight = unanswered(journal)
        confirmed = {line["index"] for line in read_journal(journal) if line["event"] == "done"}
        assert 1 <= len(in_flight) <= concurrency
        assert len(confirmed) < n  # killed mid-batch

        fake.faults.clear()
        async with WebPushClient(
            batch_child.API_KEY,
            partner_id=batch_child.PARTNER_ID,
            base_url=fake.base_url,
            limiter=SlidingWindowLimiter(100_000, 1.0),
            retry=FAST,
        ) as client:
            result = await client.send_many(
                batch_child.make_pushes(n), concurrency=concurrency, journal=journal
            )

        assert [o.index for o in result] == list(range(n))
        assert all(o.ok or o.ambiguous for o in result)
        ambiguous = {o.index for o in result if o.ambiguous}
        assert ambiguous == in_flight  # no more than were in flight at the kill
        assert {o.index for o in result if o.from_journal} == confirmed | in_flight
        launched = launch_counts(fake)
        assert max(launched.values()) == 1  # no push launched twice
        assert all(launched[o.push.title] == 1 for o in result if o.ok)


# -- memory ---------------------------------------------------------------------------------


@pytest.mark.slow  # ~10 s of the batch's own bookkeeping: Python 3.11 only in CI (.ci/run)
def test_streaming_200k_pushes_keeps_memory_flat() -> None:
    # A fresh process, so that the baseline is clean; see batch_child.memory.
    done = subprocess.run(
        [sys.executable, str(CHILD), "memory", "200000"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    growth_mb = (figures["after_kb"] - figures["before_kb"]) / 1024
    print(f"stream of 200,000 pushes: peak RSS grew by {growth_mb:.1f} MB")
    assert figures["ok"] == 200_000
    assert growth_mb < 20


# -- cancellation ---------------------------------------------------------------------------


async def test_cancelling_send_many_stops_promptly_and_leaves_the_journal_consistent(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path, no_task_leaks: None
) -> None:
    journal = tmp_path / "cancelled.jsonl"
    fake.faults.append(Fault(latency=5.0, at=set(range(8))))  # the first 8 hang
    task = asyncio.create_task(client.send_many(make_pushes(30), concurrency=8, journal=journal))
    await eventually(lambda: len(fake.requests) >= 8)
    # Written ahead: every request that reached the server had its `sending` line first.
    arrived = {index_of(r) for r in fake.requests}
    assert arrived <= unanswered(journal)

    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1.0  # not the 5 s the server would take
    assert workers_alive() == []
    assert unanswered(journal) == arrived
    assert all(line["event"] == "sending" for line in read_journal(journal))

    # The session is still usable.
    assert (await client.send(make_pushes(1, "after")[0])).success

    # The rerun reports the 8 in flight as ambiguous without resending them, and sends
    # the 22 that never went out.
    result = await client.send_many(make_pushes(30), concurrency=8, journal=journal)
    assert {o.index for o in result if o.ambiguous} == arrived
    assert all(isinstance(o.error, TransportError) for o in result if o.ambiguous)
    assert sum(o.ok for o in result) == 22
    assert max(launch_counts(fake).values()) == 1


@pytest.mark.parametrize("closing", [True, False], ids=["aclosing", "break-only"])
async def test_leaving_a_stream_early_stops_its_workers(
    fake: FakeInsider, client: WebPushClient, closing: bool, no_task_leaks: None
) -> None:
    endless = batch_child.make_pushes(10**12)
    if closing:
        async with contextlib.aclosing(client.stream(endless, concurrency=8)) as outcomes:
            async for outcome in outcomes:
                if outcome.index >= 20:
                    break
        assert workers_alive() == []
    else:
        async for outcome in client.stream(endless, concurrency=8):
            if outcome.index >= 20:
                break
        # The dropped generator is closed by the event loop's finalizer on its next turns.
        for _ in range(100):
            if not workers_alive():
                break
            await asyncio.sleep(0.01)
        assert workers_alive() == []
    # Requests cancelled mid-flight may still reach the server a moment later; then no more.
    await asyncio.sleep(0.05)
    sent = len(fake.requests)
    await asyncio.sleep(0.1)
    assert len(fake.requests) == sent
    assert sent <= 21 + 2 * 8  # read ahead: 8 in flight and 8 waiting, at most


# -- the journal ----------------------------------------------------------------------------


async def test_rerun_skips_every_terminal_push_and_rebuilds_its_outcome(
    fake: FakeInsider, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    fake.faults += [
        Fault(status=424, at={1}),
        Fault(status=500, at={2}),
        Fault(status=429, at={3}, retry_after=0.05),
        Fault(drop=True, at={4}),
        Fault(status=401, at={7}),  # the last: a 401 stops the batch
    ]
    async with fake.client(retry=RetryPolicy.never()) as client:
        first = await client.send_many(make_pushes(8), concurrency=1, journal=journal)
        types = [type(o.error) for o in first]
        assert types == [
            type(None),
            FailedDependencyError,
            ServerError,
            RateLimitError,
            TransportError,
            type(None),
            type(None),
            AuthenticationError,
        ]
        requests = len(fake.requests)
        second = await client.send_many(make_pushes(8), concurrency=3, journal=journal)

    # The certain failures (424, 429, 401: nothing of them can have gone out) are sent
    # again; the ambiguous ones (500, a dropped connection) and the successes are not.
    resent = {1, 3, 7}
    assert sorted(index_of(r) for r in fake.requests[requests:]) == sorted(resent)
    for before, after in zip(first, second, strict=True):
        if before.index in resent:
            assert (after.ok, after.from_journal, after.attempts) == (True, False, 2)
        else:
            assert after.from_journal
            assert summary(after) == summary(before)
    assert not any(o.from_journal for o in first)
    assert getattr(first[3].error, "retry_after", None) == 0.05
    assert [o.ambiguous for o in second] == [False, False, True, False, True, False, False, False]


async def test_a_push_sent_without_an_answer_comes_back_ambiguous_and_is_not_resent(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    await client.send_many(make_pushes(5), concurrency=2, journal=journal)
    drop_done_line(journal, 2)  # the process died after sending push 2
    requests = len(fake.requests)

    result = await client.send_many(make_pushes(5), concurrency=2, journal=journal)
    assert len(fake.requests) == requests
    assert [o.ok for o in result] == [True, True, False, True, True]
    assert (result[2].ambiguous, result[2].from_journal, result[2].attempts) == (True, True, 1)
    assert isinstance(result[2].error, TransportError)
    assert "may have gone out" in str(result[2].error)


async def test_retry_ambiguous_resends_only_the_ambiguous_pushes(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    fake.faults += [Fault(status=500, at={1}), Fault(status=424, at={3})]
    first = await client.send_many(make_pushes(6), concurrency=1, journal=journal)
    assert [o.index for o in first.failed] == [1, 3]
    drop_done_line(journal, 4)  # and push 4 went out with no answer journaled
    requests = len(fake.requests)

    again = await client.send_many(make_pushes(6), concurrency=2, journal=journal)
    # Without the flag only the certain failure (the 424) is sent again.
    assert [index_of(r) for r in fake.requests[requests:]] == [3]
    assert [o.index for o in again.ambiguous] == [1, 4]
    requests = len(fake.requests)

    resent = await client.send_many(
        make_pushes(6), concurrency=2, journal=journal, retry_ambiguous=True
    )
    assert sorted(index_of(r) for r in fake.requests[requests:]) == [1, 4]
    assert all(o.ok for o in resent)
    assert (resent[1].attempts, resent[4].attempts) == (2, 2)  # counted over both runs
    assert (resent[0].from_journal, resent[1].from_journal) == (True, False)

    requests = len(fake.requests)
    final = await client.send_many(make_pushes(6), journal=journal, retry_ambiguous=True)
    assert len(fake.requests) == requests
    assert [o.ok for o in final] == [o.ok for o in resent]


@pytest.mark.parametrize("change", ["edited", "inserted", "campaign id"])
async def test_a_push_that_no_longer_matches_its_journal_line_is_an_error(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path, change: str
) -> None:
    journal = tmp_path / "journal.jsonl"
    pushes: list[Any] = make_pushes(10)
    await client.send_many(pushes, concurrency=3, journal=journal)
    requests = len(fake.requests)
    if change == "edited":
        pushes[4] = attrs.evolve(pushes[4], description="fixed a typo")
        where = 4
    elif change == "inserted":
        pushes.insert(0, make_pushes(1, "new")[0])
        where = 0
    else:
        pushes[4] = (1234, pushes[4])
        where = 4

    with pytest.raises(JournalMismatchError, match=rf"push #{where} does not match") as info:
        await client.send_many(pushes, concurrency=3, journal=journal)
    assert info.value.index == where
    assert isinstance(info.value, JournalError)
    assert len(fake.requests) == requests  # nothing was sent


async def test_a_torn_last_line_is_tolerated(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    await client.send_many(make_pushes(5), concurrency=1, journal=journal)
    # The process died while writing push 4's `done` line: half of it reached the file.
    data = journal.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    assert (json.loads(last)["event"], json.loads(last)["index"]) == ("done", 4)
    journal.write_bytes(data[: len(data) - len(last) // 2 - 1])
    requests = len(fake.requests)

    result = await client.send_many(make_pushes(5), concurrency=1, journal=journal)
    assert len(fake.requests) == requests
    assert [o.ok for o in result] == [True] * 4 + [False]
    assert result[4].ambiguous  # it was sent; its answer was lost with the torn line

    # The torn bytes were dropped, so lines appended since are whole.
    retried = await client.send_many(
        make_pushes(5), concurrency=1, journal=journal, retry_ambiguous=True
    )
    assert retried[4].ok
    assert [line["event"] for line in read_journal(journal)][-2:] == ["sending", "done"]


async def test_a_damaged_journal_or_a_foreign_file_is_refused(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    await client.send_many(make_pushes(3), journal=journal)
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:2], b"garbage\n", *lines[2:]]))
    with pytest.raises(JournalError, match="line 3 is damaged"):
        await client.send_many(make_pushes(3), journal=journal)

    pushes_file = tmp_path / "pushes.jsonl"
    pushes_file.write_bytes(b'{"title": "not a journal"}')
    with pytest.raises(JournalError, match="not an insider-webpush batch journal"):
        await client.send_many(make_pushes(3), journal=pushes_file)
    assert pushes_file.read_bytes() == b'{"title": "not a journal"}'  # left untouched
    assert len(fake.requests) == 3


async def test_one_journal_serves_one_batch_at_a_time(
    client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    async with contextlib.aclosing(client.stream(make_pushes(50), journal=journal)) as first:
        await anext(first)
        with pytest.raises(JournalError, match="in use by another batch"):
            await client.send_many(make_pushes(50), journal=journal)
    assert len(await client.send_many(make_pushes(50), journal=str(journal))) == 50


async def test_the_journal_never_holds_the_api_key(
    fake: FakeInsider, client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    fake.faults += [Fault(status=400, at={0}), Fault(drop=True, at={1}), Fault(status=401, at={5})]
    result = await client.send_many(make_pushes(6), concurrency=1, journal=journal)
    assert len(result.failed) == 3
    data = journal.read_text()
    assert KEY not in data
    assert "Bearer" not in data
    assert "SECRET" not in data


async def test_a_pair_whose_second_element_is_not_a_push_says_so(client: WebPushClient) -> None:
    result = await client.send_many([(5, "not a push")])  # type: ignore[list-item]
    assert isinstance(result[0].error, ValidationError)
    assert "second element of a (campaign_id, WebPush) pair must be a WebPush, not str" in str(
        result[0].error
    )


# -- a refused key stops the batch ----------------------------------------------------------


async def test_the_first_401_stops_the_batch_and_the_rest_is_not_sent(tmp_path: Path) -> None:
    # Before: a wrong key sent the whole input at quota pace, every push a 401 (hours for a
    # million). Now no request starts after the first 401: at most the ones already in
    # flight (or holding their grant) see one, and every other push is "not sent".
    journal = tmp_path / "journal.jsonl"
    async with FakeInsider(
        api_key=KEY, partner_id=PARTNER, rate_limit=2000, rate_period=1.0
    ) as fake:
        async with fake.client(api_key="wrong-key", retry=FAST) as client:
            result = await client.send_many(make_pushes(1000), concurrency=8, journal=journal)
        assert 1 <= fake.count(401) <= 8
        assert len(fake.requests) == fake.count(401)
        refused = [o for o in result if isinstance(o.error, AuthenticationError)]
        not_sent = [o for o in result if isinstance(o.error, NotSentError)]
        assert len(refused) == fake.count(401)
        assert len(refused) + len(not_sent) == 1000
        assert all(not o.ambiguous and o.attempts == 0 for o in not_sent)
        first = min(refused, key=lambda o: o.index)
        assert {o.error.cause for o in not_sent} <= {o.error for o in refused}  # type: ignore[union-attr]
        assert "the API key was refused" in str(not_sent[0].error)
        assert first.index in {o.error.index for o in not_sent}  # type: ignore[union-attr]
        # Nothing of a "not sent" push is journaled, so a rerun with the right key sends it.
        async with fake.client(retry=FAST) as client:
            rerun = await client.send_many(make_pushes(1000), concurrency=8, journal=journal)
        assert rerun.counts["succeeded"] == 1000
        assert len(fake.launches) == 1000


async def test_a_401_stops_pushes_already_waiting_for_their_grant() -> None:
    # 50 workers queue on a quota of 5 per 0.5 s; the first launches get a 401 while the rest
    # still wait for the limiter. None of those may be written once the 401 came back.
    async with (
        FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=5, rate_period=0.5) as fake,
        fake.client(api_key="wrong-key", retry=FAST) as client,
    ):
        result = await client.send_many(make_pushes(50), concurrency=50)
    assert fake.count(401) <= 5  # the first window's grants, all in flight together
    assert result.counts["failed"] == 50
    assert sum(isinstance(o.error, NotSentError) for o in result) >= 45


async def test_a_journal_line_with_a_huge_index_is_damaged_not_a_memory_error(
    client: WebPushClient, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    header = json.dumps({"journal": "insider-webpush batch", "version": 2}, separators=(",", ":"))
    line = {"event": "sending", "index": 2**40, "hash": "0" * 16, "attempt": 1}
    journal.write_text(header + "\n" + json.dumps(line) + "\n")
    with pytest.raises(JournalError, match=r"line 2 is damaged: index 1099511627776 is more than"):
        await client.send_many(make_pushes(1), journal=journal)


async def test_stop_ends_the_pushes_waiting_for_the_quota_at_once_and_a_rerun_sends_them(
    tmp_path: Path,
) -> None:
    # Before: a graceful stop let every push already pulled wait out the quota (minutes at a
    # slow one) and then go out. Now no new request starts: the ones waiting for a grant end
    # at once, "not sent", and a rerun with the journal sends each exactly once.
    journal = tmp_path / "journal.jsonl"
    stop = asyncio.Event()
    async with FakeInsider(
        api_key=KEY, partner_id=PARTNER, rate_limit=1000, rate_period=1.0
    ) as fake:
        loop = asyncio.get_running_loop()
        async with fake.client(limiter=SlidingWindowLimiter(5, 2.0)) as client:
            loop.call_later(0.5, stop.set)
            started = loop.time()
            first = await client.send_many(
                make_pushes(100), concurrency=20, journal=journal, stop=stop
            )
            elapsed = loop.time() - started
        sent = len(fake.requests)
        assert elapsed < 1.5  # not the ~40 s the pulled pushes would take at 5 per 2 s
        assert 1 <= sent <= 5  # the first window's grants, before the stop
        not_sent = [o for o in first if isinstance(o.error, NotSentError)]
        assert first.counts["succeeded"] == sent
        assert len(not_sent) == len(first) - sent
        assert len(first) < 100  # nothing more was pulled after the stop
        assert all(not o.ambiguous and o.attempts == 0 for o in not_sent)
        assert all(o.error.cause is None for o in not_sent)  # type: ignore[union-attr]
        async with fake.client() as client:
            rerun = await client.send_many(make_pushes(100), concurrency=20, journal=journal)
        assert rerun.counts["succeeded"] == 100
        assert sorted(launch_counts(fake).values()) == [1] * 100  # none launched twice
