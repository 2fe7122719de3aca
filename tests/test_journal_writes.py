"""When the JSONL journal's lines reach the operating system (what a SIGKILL leaves on disk).

A `sending` line must be flushed before its push's first byte is written; a `done` line may
wait for the end of the event-loop iteration, but is on disk before that push's outcome
reaches the caller. The lines written without json.dumps are the bytes json.dumps writes.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path

import pytest

from insider_webpush import (
    LaunchResult,
    RetryPolicy,
    SlidingWindowLimiter,
    WebPush,
    WebPushClient,
)
from insider_webpush.ledger import Action, Claim, FileJournal, MemoryLedger
from insider_webpush.models import Timeouts
from insider_webpush.transport import Gate, Request, Response

OK = b'{"success": true, "campaign_id": 1697300275}'
BAD = b'{"message": "bad request"}'


def on_disk(path: Path) -> list[dict[str, object]]:
    """The journal's push lines as another process would read them now."""
    return [json.loads(line) for line in path.read_bytes().splitlines()[1:]]


class DiskCheckingTransport:
    """After each gate (the first byte goes next), counts the `sending` lines on disk; every
    third request is answered 400 (a certain failure: a `done` line through json.dumps)."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.gates = 0
        self.sending_on_disk: list[int] = []

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await gate()
        self.gates += 1
        lines = on_disk(self.journal)
        self.sending_on_disk.append(sum(line["event"] == "sending" for line in lines))
        if self.gates % 3 == 0:
            return Response(400, {}, BAD)
        return Response(200, {}, OK)

    async def aclose(self) -> None:
        return None


def pushes(n: int) -> list[WebPush]:
    return [
        WebPush(
            title=f"push {i}",
            description="d",
            image="https://example.com/i.png",
            link="https://example.com",
            ttl=60,
        )
        for i in range(n)
    ]


async def test_sending_before_the_first_byte_done_before_the_outcome(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    transport = DiskCheckingTransport(journal)
    n = 60
    async with WebPushClient(
        "k",
        partner_id="1",
        limiter=SlidingWindowLimiter(10**9, 1.0),
        retry=RetryPolicy(max_attempts=1),
        transport=transport,
    ) as client:
        seen = 0
        async for outcome in client.stream(pushes(n), concurrency=8, journal=journal):
            seen += 1
            done = {
                line["index"]: line["ok"] for line in on_disk(journal) if line["event"] == "done"
            }
            assert done.get(outcome.index) is outcome.ok, outcome.index
    assert seen == n
    # Each gate found its own `sending` line, and every earlier one, on disk.
    assert transport.sending_on_disk == list(range(1, n + 1))


class ReleasingTransport(DiskCheckingTransport):
    """Answers the first request at once, and the second once `hops` loop iterations after
    the first was answered: so the first worker ends (its input is spent) around the time
    the second one's answer comes, and the batch's consumer is woken by that worker's end."""

    def __init__(self, journal: Path, hops: int) -> None:
        super().__init__(journal)
        self.hops = hops
        self.released: asyncio.Future[None] | None = None

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await gate()
        self.gates += 1
        loop = asyncio.get_running_loop()
        if self.released is None:
            self.released = loop.create_future()
        if self.gates == 1:
            self.release_after(self.hops)
        else:
            await self.released
        return Response(200, {}, OK)

    def release_after(self, hops: int) -> None:
        assert self.released is not None
        if hops:
            asyncio.get_running_loop().call_soon(self.release_after, hops - 1)
        elif not self.released.done():
            self.released.set_result(None)


async def test_done_line_on_disk_before_the_outcome_when_a_worker_ends_first(
    tmp_path: Path,
) -> None:
    """A worker's end wakes the batch's consumer, which then takes the outcome queued behind
    it off the queue at once, before the journal's own flush has run: that outcome's `done`
    line is on disk before it is handed over all the same (each timing of the second answer
    after the first worker's end)."""
    missing: list[tuple[int, int]] = []
    for hops in range(8):
        journal = tmp_path / f"run{hops}.jsonl"
        async with WebPushClient(
            "k",
            partner_id="1",
            limiter=SlidingWindowLimiter(10**9, 1.0),
            retry=RetryPolicy(max_attempts=1),
            transport=ReleasingTransport(journal, hops),
        ) as client:
            async for outcome in client.stream(pushes(2), concurrency=2, journal=journal):
                assert outcome.ok
                done = {line["index"] for line in on_disk(journal) if line["event"] == "done"}
                if outcome.index not in done:
                    missing.append((hops, outcome.index))
    assert missing == []


async def test_lines_are_json_dumps_bytes(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    async with WebPushClient(
        "k",
        partner_id="1",
        limiter=SlidingWindowLimiter(10**9, 1.0),
        retry=RetryPolicy(max_attempts=1),
        transport=DiskCheckingTransport(journal),
    ) as client:
        result = await client.send_many(pushes(9), concurrency=4, journal=journal)
    assert len(result.failed) == 3
    lines = journal.read_bytes().splitlines()[1:]
    assert len(lines) == 18
    for raw in lines:
        assert json.dumps(json.loads(raw), separators=(",", ":")).encode() == raw


@pytest.mark.parametrize(
    "digest",
    ["00112233aabbccdd", 'ab"c\\d', "\u0661\u0662\u0663", "e\u0301", "a b", "ab\udc80", ""],
)
async def test_lines_of_any_digest_are_json_dumps_bytes(tmp_path: Path, digest: str) -> None:
    """The lines formatted without json.dumps are its bytes; a digest that is not ASCII
    alphanumeric goes through it: a quote, a backslash, a space, and Arabic-Indic digits
    or a combining accent, which are not ASCII (json.dumps escapes them) though str.isalnum
    takes the digits for alphanumeric, a lone surrogate (no UTF-8 for it: json.dumps
    escapes it) and the empty string."""
    path = tmp_path / "j.jsonl"
    journal = FileJournal(str(path))
    journal.write_sending(7, digest, 1)
    journal.write_done(7, digest, 1, 42)
    await journal.aclose()
    lines = path.read_bytes().splitlines()[1:]
    assert [json.loads(raw)["hash"] for raw in lines] == [digest, digest]
    for raw in lines:
        assert json.dumps(json.loads(raw), separators=(",", ":")).encode() == raw


async def test_extent_is_where_the_lines_of_earlier_runs_end(tmp_path: Path) -> None:
    """`extent`: a fresh journal's is 0; reopened, past the last position with a line
    (every position from there on is fresh, and written without a claim)."""
    path = tmp_path / "j.jsonl"
    journal = FileJournal(str(path))
    assert journal.extent == 0
    journal.write_sending(4, "00112233aabbccdd", 1)
    await journal.aclose()
    again = FileJournal(str(path))
    try:
        assert again.extent == 5
        assert [again.entry(i) is None for i in range(6)] == [True] * 4 + [False, True]
    finally:
        await again.aclose()


async def test_a_claim_on_the_journal_writes_at_the_wire_without_an_await(tmp_path: Path) -> None:
    """The JSONL journal's claims write their lines at once: `take_at_wire` returns None
    with the `sending` line already on disk (nothing can run between the grant and the first
    byte), while a shared store's claim returns the awaitable of its swap."""
    path = tmp_path / "j.jsonl"
    journal = FileJournal(str(path))
    claim = Claim(journal, "3", "00112233aabbccdd", lease=60.0, label="push #3")
    assert claim.seen(journal.entry(3)) is Action.SEND
    assert claim.take_at_wire(1) is None
    assert on_disk(path) == [
        {"event": "sending", "index": 3, "hash": "00112233aabbccdd", "attempt": 1}
    ]
    assert claim.held
    assert claim.record_now(LaunchResult(True, 42), None) is None
    await journal.aclose()
    done = on_disk(path)[1]
    assert (done["campaign_id"], done["attempts"]) == (42, 1)

    shared = Claim(MemoryLedger("test-ns"), "k", "00112233aabbccdd", lease=60.0)
    pending = shared.take_at_wire(1)
    assert pending is not None
    await pending
    assert shared.held


async def test_a_write_after_closing_lands_in_no_other_file(tmp_path: Path) -> None:
    """The journal writes through its kept descriptor; once closed, that number may belong
    to another file: a late line raises instead of landing there."""
    path = tmp_path / "j.jsonl"
    journal = FileJournal(str(path))
    number = journal._fd
    await journal.aclose()
    other = tmp_path / "other.bin"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT)
    try:
        assert fd == number  # the lowest free number: the journal's old one
        with pytest.raises(OSError, match="Bad file descriptor") as raised:
            journal.write_sending(1, "00112233aabbccdd", 1)
        assert raised.value.errno == errno.EBADF
    finally:
        os.close(fd)
    assert other.read_bytes() == b""


async def test_a_full_disk_stops_the_batch_and_leaves_no_line_of_a_push_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal write that fails (ENOSPC) stops the batch with that OSError, as it is (not
    a network error, not "safe to send again"), before the first byte of the push whose
    `sending` line it held; nothing of the failed write lands in the file later, so a rerun
    on a freed disk sends that push, and launches no push twice."""
    from insider_webpush import ledger
    from insider_webpush.testing import FakeInsider

    path = tmp_path / "j.jsonl"
    real_write = os.write
    writes = 0

    def full_after_four(fd: int, data: bytes) -> int:
        nonlocal writes
        writes += 1
        if writes > 4:  # the header, then three pushes' sending lines
            real_write(fd, data[: len(data) // 2])  # a torn part, as a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    async with FakeInsider(api_key="k" * 20, partner_id="10000001") as fake:
        async with fake.client(retry=RetryPolicy(base=0.001, cap=0.01)) as client:
            monkeypatch.setattr(ledger.os, "write", full_after_four)
            with pytest.raises(OSError, match="No space left") as full:
                await client.send_many(pushes(10), concurrency=1, journal=path)
            monkeypatch.setattr(ledger.os, "write", real_write)
            assert full.value.errno == errno.ENOSPC
            assert len(fake.launches) == 3
            lines = on_disk(path)
            assert [line["index"] for line in lines if line["event"] == "sending"] == [0, 1, 2]

            rerun = await client.send_many(pushes(10), concurrency=1, journal=path)
        # Push 2 went out, but its `done` line shared the failed write with push 3's
        # `sending` line: the rerun reports it ambiguous and does not send it again; push 3
        # never went out, and nothing of its line stayed: the rerun sends it.
        assert [o.index for o in rerun if not o.ok] == [2]
        assert rerun[2].ambiguous
        assert [o.index for o in rerun if o.ok and not o.from_journal] == list(range(3, 10))
        assert sorted(r.body["title"] for r in fake.launches) == [f"push {i}" for i in range(10)]


async def test_done_lines_written_whole_before_a_full_disk_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write that got the waiting `done` line out whole and tore only the next
    push's `sending` line: the `done` line stays (that push's outcome is not turned into
    "may have gone out" on the rerun), the torn line goes, and the rerun sends the push it
    belonged to."""
    from insider_webpush import ledger
    from insider_webpush.testing import FakeInsider

    path = tmp_path / "j.jsonl"
    real_write = os.write
    writes = 0
    failed: list[bytes] = []

    def full_ten_bytes_short(fd: int, data: bytes) -> int:
        nonlocal writes
        writes += 1
        if writes == 5:  # after the header and three pushes' sending lines: the disk fills
            failed.append(data)
            return real_write(fd, data[:-10])  # a partial write: all but 10 bytes
        if writes > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    async with (
        FakeInsider(api_key="k" * 20, partner_id="10000001") as fake,
        fake.client(retry=RetryPolicy(base=0.001, cap=0.01)) as client,
    ):
        monkeypatch.setattr(ledger.os, "write", full_ten_bytes_short)
        with pytest.raises(OSError, match="No space left"):
            await client.send_many(pushes(10), concurrency=1, journal=path)
        monkeypatch.setattr(ledger.os, "write", real_write)
        # The failed write held push 2's `done` line, then push 3's `sending` line.
        assert [json.loads(line)["event"] for line in failed[0].splitlines()] == [
            "done",
            "sending",
        ]
        assert [(line["event"], line["index"]) for line in on_disk(path)][-2:] == [
            ("sending", 2),
            ("done", 2),
        ]
        rerun = await client.send_many(pushes(10), concurrency=1, journal=path)
    assert [o.index for o in rerun if o.from_journal] == [0, 1, 2]
    assert all(o.ok for o in rerun)
    assert sorted(r.body["title"] for r in fake.launches) == [f"push {i}" for i in range(10)]


async def test_a_failed_write_of_the_last_done_lines_stops_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last pushes' `done` lines have no `sending` line after them to carry them: a full
    disk when they are flushed stops the batch with that OSError rather than handing over
    outcomes the journal does not hold (a rerun would call them ambiguous)."""
    from insider_webpush import ledger
    from insider_webpush.testing import FakeInsider

    path = tmp_path / "j.jsonl"
    real_write = os.write

    def full_at_the_last_done_line(fd: int, data: bytes) -> int:
        if b'"event":"done","index":9,' in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    async with (
        FakeInsider(api_key="k" * 20, partner_id="10000001") as fake,
        fake.client() as client,
    ):
        monkeypatch.setattr(ledger.os, "write", full_at_the_last_done_line)
        handed: list[int] = []

        async def consume() -> None:
            async for outcome in client.stream(pushes(10), concurrency=1, journal=path):
                handed.append(outcome.index)

        with pytest.raises(OSError, match="No space left") as full:
            await consume()
        monkeypatch.setattr(ledger.os, "write", real_write)
    assert full.value.errno == errno.ENOSPC
    assert len(fake.launches) == 10
    assert handed == list(range(9))  # push 9's outcome was never handed over
    assert [(line["event"], line["index"]) for line in on_disk(path)][-2:] == [
        ("done", 8),
        ("sending", 9),
    ]
