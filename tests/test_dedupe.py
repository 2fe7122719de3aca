"""Dedupe keys: `send(push, dedupe_key=...)` and `Launch` items launch a key at most once, in
every store; batches journaled in a store are resumed from another process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from insider_webpush import (
    DedupeConflictError,
    FakeInsider,
    Fault,
    JournalMismatchError,
    Launch,
    LaunchResult,
    RetryPolicy,
    SlidingWindowLimiter,
    TransportError,
    ValidationError,
    WebPush,
    WebPushClient,
)
from insider_webpush.ledger import Entry, Journal, MemoryLedger, State
from insider_webpush.outcomes import Stage
from insider_webpush.pushfile import read_pushes, write_pushes

from .redis_server import RedisServer, redis_server, redis_url_down  # noqa: F401 - fixtures
from .stub_transport import ScriptedTransport

KEY = "test"
PARTNER = "10000001"
FAST = RetryPolicy(base=0.001, cap=0.002, jitter=0.0)


def push(title: str = "Sale") -> WebPush:
    return WebPush(
        title=title,
        description="Everything 30% off",
        image="https://example.com/i.png",
        link="https://example.com/sale",
        ttl=3600,
    )


def scripted(*steps: object, **kwargs: object) -> tuple[WebPushClient, ScriptedTransport]:
    transport = ScriptedTransport(steps)  # type: ignore[arg-type]
    client = WebPushClient(
        KEY,
        partner_id=PARTNER,
        transport=transport,
        retry=FAST,
        **kwargs,  # type: ignore[arg-type]
    )
    return client, transport


async def test_a_key_launched_once_returns_its_first_result_and_sends_nothing() -> None:
    client, wire = scripted((200, {"success": True, "campaign_id": 77}))
    first = await client.send(push(), dedupe_key="order-4711:welcome")
    again = await client.send(push(), dedupe_key="order-4711:welcome")
    assert first == LaunchResult(True, 77)
    assert again == LaunchResult(True, 77, replayed=True)
    assert len(wire.sent) == 1
    other = await client.send(push(), dedupe_key="order-4712:welcome")
    assert not other.replayed
    assert len(wire.sent) == 2


async def test_concurrent_sends_of_one_key_launch_it_once() -> None:
    wire = ScriptedTransport(latency=0.02)
    clients = [WebPushClient(KEY, partner_id=PARTNER, transport=wire, retry=FAST) for _ in range(3)]
    calls = [c.send(push(), dedupe_key="event-9") for c in clients for _ in range(10)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert len(wire.sent) == 1
    launched = [r for r in results if isinstance(r, LaunchResult) and not r.replayed]
    assert len(launched) == 1
    for other in results:
        # Each other call saw the key done (a replay) or in flight (a conflict, nothing sent).
        if isinstance(other, DedupeConflictError):
            assert other.in_flight
            assert not other.ambiguous
        else:
            assert isinstance(other, LaunchResult)


async def test_a_certain_failure_frees_the_key_and_the_next_send_launches_it() -> None:
    client, wire = scripted((424, {"message": "SERVICE:-Campaign not found"}))
    with pytest.raises(Exception, match="424"):
        await client.send(push(), dedupe_key="k")
    result = await client.send(push(), dedupe_key="k")
    assert not result.replayed
    assert len(wire.sent) == 2


async def test_an_ambiguous_first_attempt_is_a_conflict_until_retry_ambiguous() -> None:
    client, wire = scripted((500, {"message": "boom"}))
    with pytest.raises(Exception, match="500") as first:
        await client.send(push(), dedupe_key="k")
    assert first.value.ambiguous  # type: ignore[attr-defined]
    with pytest.raises(DedupeConflictError, match="may have gone out") as info:
        await client.send(push(), dedupe_key="k")
    assert info.value.ambiguous
    assert info.value.dedupe_key == "k"
    assert len(wire.sent) == 1  # the conflict sent nothing
    resent = await client.send(push(), dedupe_key="k", retry_ambiguous=True)
    assert not resent.replayed
    assert len(wire.sent) == 2


async def test_a_key_reused_for_another_push_is_refused() -> None:
    client, wire = scripted()
    await client.send(push("A"), dedupe_key="k")
    with pytest.raises(DedupeConflictError, match="different push"):
        await client.send(push("B"), dedupe_key="k")
    assert len(wire.sent) == 1


async def test_a_holder_that_died_on_the_wire_reads_ambiguous_after_its_lease() -> None:
    client, wire = scripted()
    digest = client.prepare_launch(push()).digest[:8].hex()
    ledger = client._dedupe_ledger()
    dead = Entry(State.SENDING, digest, 1, owner="dead", at=time.time())
    assert await ledger.swap("live", dead, None) is None
    with pytest.raises(DedupeConflictError) as in_flight:
        await client.send(push(), dedupe_key="live")
    assert in_flight.value.in_flight
    assert not in_flight.value.ambiguous
    # The lease is one attempt plus one backoff; past it, the holder is taken to have died.
    long_ago = Entry(State.SENDING, digest, 1, owner="dead", at=time.time() - 3600)
    assert await ledger.swap("gone", long_ago, None) is None
    with pytest.raises(DedupeConflictError) as gone:
        await client.send(push(), dedupe_key="gone")
    assert gone.value.ambiguous
    assert wire.sent == []


async def test_a_send_that_never_reached_its_gate_leaves_the_key_free() -> None:
    # Cancelled while it waited for the quota: nothing was recorded, nothing went out.
    limiter = SlidingWindowLimiter(1, 60.0)
    client, _ = scripted(limiter=limiter)
    await client.send(push("first"))
    task = asyncio.create_task(client.send(push(), dedupe_key="k"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await client._dedupe_ledger().get("k") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "1 to 200 characters"),
        ("x" * 201, "1 to 200 characters"),
        ("a\nb", "control characters"),
        (42, "must be a string"),
    ],
)
async def test_a_bad_dedupe_key_is_refused_before_anything_is_sent(
    value: object, message: str
) -> None:
    client, wire = scripted()
    with pytest.raises(ValidationError, match=message) as info:
        await client.send(push(), dedupe_key=value)  # type: ignore[arg-type]
    assert info.value.field == "dedupe_key"
    with pytest.raises(ValidationError, match=message):
        Launch(push(), dedupe_key=value)  # type: ignore[arg-type]
    assert wire.sent == []


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), 10**9, True])
def test_a_bad_dedupe_ttl_or_store_is_refused(ttl: object) -> None:
    with pytest.raises(ValidationError, match="dedupe_ttl"):
        WebPushClient(KEY, dedupe_ttl=ttl)  # type: ignore[arg-type]


def test_a_bad_dedupe_store_is_refused() -> None:
    with pytest.raises(ValidationError, match="dedupe_store"):
        WebPushClient(KEY, dedupe_store=42)  # type: ignore[arg-type]


@pytest.mark.redis
async def test_an_unreachable_redis_store_sends_nothing(
    redis_url_down: str,  # noqa: F811 - the fixture
) -> None:
    client, wire = scripted(dedupe_store=redis_url_down)
    async with client:
        with pytest.raises(TransportError, match="dedupe store") as info:
            await client.send(push(), dedupe_key="k")
    assert info.value.stage is Stage.NOT_SENT
    assert wire.sent == []


async def test_launch_items_in_a_batch_launch_each_key_once() -> None:
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:
        async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
            items = [Launch(push(f"p{i % 20}"), dedupe_key=f"key-{i % 20}") for i in range(60)]
            first = await c.send_many(items, concurrency=16)
            again = await c.send_many(items, concurrency=16)
        titles = Counter(r.body["title"] for r in fake.launches)
    assert set(titles.values()) == {1}  # every key launched exactly once
    assert len(titles) == 20
    for outcome in first:
        assert outcome.ok or (
            isinstance(outcome.error, DedupeConflictError) and outcome.error.in_flight
        )
    assert all(o.ok and o.result is not None and o.result.replayed for o in again)


async def test_a_batch_journaled_in_sqlite_is_resumed_without_resending(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", "nightly-1")
    pushes = [push(f"n{i}") for i in range(30)]
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:
        fake.faults.append(Fault(status=500, at={0, 1, 2}))
        async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
            first = await c.send_many(pushes, journal=journal)
            sent = len(fake.requests)
            again = await c.send_many(pushes, journal=journal)
            assert len(fake.requests) == sent  # the successes replayed, the 500s reported
    assert first.counts["ambiguous"] == 3
    assert again.counts == first.counts
    assert all(o.from_journal for o in again)


CHILD = """
import asyncio, json, sys
from insider_webpush import WebPush, WebPushClient, SlidingWindowLimiter
from insider_webpush.ledger import Journal

async def main():
    url, base, name = sys.argv[1:4]
    pushes = [WebPush(title=f"r{i}", description="d", image="https://e.com/i.png",
                      link="https://e.com", ttl=60) for i in range(40)]
    async with WebPushClient("test", partner_id="10000001", base_url=base,
                             limiter=SlidingWindowLimiter(100000, 1.0)) as client:
        result = await client.send_many(pushes, journal=Journal(url, name), concurrency=8)
    print(json.dumps([[o.ok, o.from_journal] for o in result]))

asyncio.run(main())
"""


@pytest.mark.redis
async def test_a_batch_journaled_in_redis_resumes_in_another_process(
    redis_server: RedisServer,  # noqa: F811 - the fixture
) -> None:
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:

        def run() -> list[list[bool]]:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, redis_server.url, fake.base_url, "batch-7"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return json.loads(done.stdout)  # type: ignore[no-any-return]

        first = await asyncio.to_thread(run)
        assert len(fake.launches) == 40
        second = await asyncio.to_thread(run)  # another process: "another host"
        assert len(fake.launches) == 40  # nothing twice
    assert all(ok and not replay for ok, replay in first)
    assert all(ok and replay for ok, replay in second)


async def test_push_files_carry_dedupe_keys(tmp_path: Path) -> None:
    items = [Launch(push("a"), dedupe_key="k-1"), Launch(push("b"), 12, "k-2"), push("c")]
    for suffix in ("jsonl", "csv", "json"):
        path = tmp_path / f"pushes.{suffix}"
        write_pushes(items, path)
        assert list(read_pushes(path)) == items


async def test_the_memory_store_is_one_per_process() -> None:
    first, _ = scripted()
    second, wire = scripted()
    await first.send(push(), dedupe_key="shared")
    assert (await second.send(push(), dedupe_key="shared")).replayed
    assert wire.sent == []
    assert isinstance(first._dedupe_ledger(), MemoryLedger)


async def test_a_journaled_batch_keeps_each_keys_outcome_at_its_position(tmp_path: Path) -> None:
    """With the default in-memory store a rerun is a new process that knows no key: the
    journal must hold what the key decided, or a duplicate item is launched on the rerun."""
    journal = tmp_path / "batch.jsonl"
    items = [Launch(push("a"), dedupe_key="k"), Launch(push("a"), dedupe_key="k")]
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:
        async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
            first = await c.send_many(items, journal=journal, concurrency=4)
            MemoryLedger._entries.clear()  # what a new process would have
            again = await c.send_many(items, journal=journal, concurrency=4)
        launched = len(fake.launches)
    assert launched == 1
    # In one batch the second item waits for the first: a replay, never "in flight".
    assert [o.ok for o in first] == [True, True]
    assert first[1].result is not None
    assert first[1].result.replayed
    assert all(o.from_journal and o.ok for o in again)


async def test_a_resumed_position_decided_by_its_key_keeps_that_outcome(tmp_path: Path) -> None:
    """A position journaled as a certain failure is sent again on the rerun; when its key was
    launched meanwhile, the key replays it, and the journal must now hold that outcome: a
    third run, in a process that knows no key, must not send it again."""
    journal = tmp_path / "batch.jsonl"
    items = [Launch(push("a"), dedupe_key="k")]
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:
        fake.faults.append(Fault(status=400, at={0}))  # a certain failure: nothing launched
        async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
            first = await c.send_many(items, journal=journal)
            launched = await c.send(push("a"), dedupe_key="k")  # the key, outside the batch
            second = await c.send_many(items, journal=journal)
            MemoryLedger._entries.clear()  # what a new process would have
            third = await c.send_many(items, journal=journal)
        assert len(fake.launches) == 1
    assert not first[0].ok
    assert second[0].result is not None
    assert second[0].result.replayed
    assert second[0].result.campaign_id == launched.campaign_id
    assert third[0].from_journal
    assert third[0].result is not None
    assert third[0].result.campaign_id == launched.campaign_id


async def test_a_rerun_with_other_dedupe_keys_is_a_changed_input(tmp_path: Path) -> None:
    journal = tmp_path / "batch.jsonl"
    async with FakeInsider(api_key=KEY, partner_id=PARTNER, rate_limit=100_000) as fake:
        async with fake.client(limiter=SlidingWindowLimiter(100_000, 1.0), retry=FAST) as c:
            await c.send_many([Launch(push("a"), dedupe_key="k-1")], journal=journal)
            with pytest.raises(JournalMismatchError):
                await c.send_many([Launch(push("a"), dedupe_key="k-2")], journal=journal)
        assert len(fake.launches) == 1


def test_from_env_reads_the_shared_store_as_the_command_line_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("INSIDER_DEDUPE_STORE", str(tmp_path / "dedupe.sqlite"))
    client = WebPushClient.from_env()
    assert client._redis_url == "redis://127.0.0.1:1/0"
    assert client._dedupe_store == str(tmp_path / "dedupe.sqlite")
    monkeypatch.delenv("INSIDER_DEDUPE_STORE")
    assert WebPushClient.from_env()._dedupe_store == "redis://127.0.0.1:1/0"  # redis_url's


def test_a_request_repr_never_holds_the_key() -> None:
    client, _ = scripted()
    launch = client.prepare_launch(push())
    assert KEY not in repr(launch)
    assert KEY not in str(launch.request)
    assert "Authorization" in repr(launch.request)  # named, not shown


@pytest.mark.parametrize("key", ["abc\n", " abc", "a b\tc", "abc\x00"])
def test_an_api_key_with_whitespace_or_control_characters_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="line breaks or control characters") as info:
        WebPushClient(key)
    assert key not in str(info.value)


def test_a_lone_surrogate_is_no_dedupe_key() -> None:
    with pytest.raises(ValidationError, match="valid text"):
        Launch(push(), dedupe_key="\ud800")


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), float("inf"), "60"])
def test_a_bad_journal_ttl_is_refused(ttl: object, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"journal\.ttl"):
        Journal(tmp_path / "j.sqlite", "nightly", ttl=ttl)  # type: ignore[arg-type]


def test_a_dedupe_ttl_shorter_than_a_send_may_hold_its_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be at least 32 s"):
        WebPushClient(
            KEY, timeout=1.0, retry=RetryPolicy(cap=10.0, max_retry_after=20.0), dedupe_ttl=31
        )
    WebPushClient(
        KEY, timeout=1.0, retry=RetryPolicy(cap=10.0, max_retry_after=20.0), dedupe_ttl=32
    )


async def test_one_journal_name_under_two_api_keys_is_two_batches(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", "nightly")
    async with (
        FakeInsider(api_key="staging-key", partner_id=PARTNER) as staging,
        FakeInsider(api_key="prod-key", partner_id=PARTNER) as prod,
    ):
        async with staging.client(retry=FAST) as c:
            await c.send_many([push("a")], journal=journal)
        async with prod.client(retry=FAST) as c:
            result = await c.send_many([push("a")], journal=journal)
        assert len(prod.launches) == 1  # not a replay of staging's launch
    assert not result[0].from_journal


async def test_a_position_in_flight_in_a_shared_journal_is_ambiguous(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", "nightly")
    async with FakeInsider(api_key=KEY, partner_id=PARTNER) as fake:
        async with fake.client(retry=FAST) as c:
            digest = c.prepare_launch(push("a")).digest[:8].hex()
            ledger = journal.open(c.ledger_namespace)
            holder = Entry(State.SENDING, digest, 1, owner="another run", at=time.time())
            assert await ledger.swap("0", holder, None) is None
            await ledger.aclose()
            result = await c.send_many([push("a")], journal=journal)
        assert fake.launches == []
    assert result.counts["ambiguous"] == 1  # sent elsewhere now, or a run died on the wire
