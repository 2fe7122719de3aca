"""The wire decides: a push is ambiguous exactly when the server may have received it.

Every case runs the real client (aiohttp, ``WireConnector``) against a raw-socket server
(tests/raw_server.py) that hangs up, stalls or answers at a chosen point of the request, and
checks the client's verdict against what the server actually read:

- a push the server never received (refused, never accepted, closed before reading) is never
  ambiguous, and is retried;
- a push the server read in full is ambiguous unless a status says otherwise (2xx success,
  429 retried, 400/401/403/404/422/424 certain failure; every other status is ambiguous and
  never resent).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import pytest

from insider_webpush import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    InsiderError,
    LaunchResult,
    RetryPolicy,
    ServerError,
    TransportError,
    WebPush,
    WebPushClient,
)
from insider_webpush.limiter import SlidingWindowLimiter
from insider_webpush.models import Timeouts
from insider_webpush.outcomes import CERTAIN_FAILURE_STATUSES, Stage
from insider_webpush.transport import WireConnector

from .raw_server import (
    OK_BODY,
    Behaviour,
    Listen,
    RawServer,
    Received,
    answer_late,
    close_before_read,
    close_unread,
    read_body_close,
    read_headers_close,
    status,
)
from .samples import MINIMAL_FIELDS

KEY = "wire-test-key-0123456789"
PARTNER = "1"
RETRY = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
TIMEOUTS = Timeouts(total=2, pool=1, connect=0.5, read=0.5)
OK = LaunchResult(success=True, campaign_id=OK_BODY["campaign_id"])


def push(title: str = "wire") -> WebPush:
    return WebPush(**{**MINIMAL_FIELDS, "title": title})


def wire_body(title: str = "wire") -> dict[str, Any]:
    """What ``push(title)`` is on the wire (the client fills in its partner id)."""
    return {
        **MINIMAL_FIELDS,
        "title": title,
        "ttl": str(MINIMAL_FIELDS["ttl"]),
        "partner_id": PARTNER,
    }


def make_client(server: RawServer, **kwargs: Any) -> WebPushClient:
    kwargs.setdefault("retry", RETRY)
    kwargs.setdefault("timeout", TIMEOUTS)
    return WebPushClient(KEY, partner_id=PARTNER, base_url=server.url, **kwargs)


@dataclasses.dataclass
class Sent:
    """One push's fate as the client told it."""

    result: LaunchResult | None
    error: InsiderError | None
    on_attempt: list[int]
    logged: list[object]  # per attempt: its status, or its failed stage's value
    seconds: float

    @property
    def ambiguous(self) -> bool:
        return self.error is not None and self.error.ambiguous


def attempts_logged(caplog: pytest.LogCaptureFixture, start: int = 0) -> list[object]:
    """The result of every attempt the client logged (``... attempt N -> RESULT in ...``)."""
    return [
        r.args[3]
        for r in caplog.records[start:]
        if r.name == "insider_webpush" and isinstance(r.args, tuple) and "attempt" in r.msg
    ]


async def send_one(
    client: WebPushClient, caplog: pytest.LogCaptureFixture, title: str = "wire"
) -> Sent:
    calls: list[int] = []
    start = len(caplog.records)
    began = time.perf_counter()
    result: LaunchResult | None = None
    error: InsiderError | None = None
    try:
        result = await client.send(push(title), on_attempt=calls.append)
    except InsiderError as exc:
        error = exc
    return Sent(result, error, calls, attempts_logged(caplog, start), time.perf_counter() - began)


def assert_wire_rule(sent: Sent, server: RawServer) -> None:
    """The hard rule, from what the server read and what the client reported."""
    read_any = [r for r in server.requests if r.received is not Received.NOTHING]
    # Bytes that reached the server's socket but were never read (close_unread): the client
    # cannot tell that from a server that read them and died, so either verdict is allowed.
    arrived_unread = any(c.unread for c in server.connections)
    if not read_any and not arrived_unread:
        # Never received: never ambiguous, and retried to the last attempt.
        assert sent.result is None
        assert isinstance(sent.error, TransportError)
        assert sent.error.stage is Stage.NOT_SENT
        assert not sent.error.ambiguous
        assert sent.logged == [Stage.NOT_SENT.value] * RETRY.max_attempts
    last_full = server.full()[-1] if server.full() else None
    if last_full is not None:
        # Received in full: only a status may make it other than ambiguous.
        if last_full.answered is None:
            assert isinstance(sent.error, TransportError), sent
            assert sent.ambiguous, sent
        elif 200 <= last_full.answered < 300:
            assert sent.result is not None
        elif last_full.answered in CERTAIN_FAILURE_STATUSES:
            assert isinstance(sent.error, APIError)
            assert not sent.ambiguous
        else:
            assert isinstance(sent.error, APIError)
            assert sent.ambiguous
    for record in server.full():  # every byte the client sent was exactly its push
        assert record.json == wire_body()
        assert record.method == "POST"
        assert record.target == "/v2/single/campaign_id"


def unread_titles(server: RawServer) -> list[str]:
    """The titles of the whole requests found unread in a socket when the server closed it."""
    titles = []
    for connection in server.connections:
        _, end, body = connection.unread.partition(b"\r\n\r\n")
        if end:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                titles.append(json.loads(body)["title"])
    return titles


# -- the raw server itself -----------------------------------------------------------------


async def test_raw_server_listen_modes() -> None:
    """refuse: nothing listens; no_accept: a handshake to it really stalls on loopback."""
    loop = asyncio.get_running_loop()
    async with RawServer(listen="refuse") as server:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)
    async with RawServer(listen="no_accept") as server:
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    assert server.connections == []


async def test_raw_server_reads_only_what_its_behaviour_says() -> None:
    request = b'POST /p HTTP/1.1\r\nContent-Length: 7\r\n\r\n{"a":1}'
    plan = [
        read_headers_close(),
        read_body_close(),
        status(201, headers={"X-A": "b"}, keep_alive=False),
    ]
    async with RawServer(plan) as server:
        answers = []
        for _ in plan:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            try:
                answers.append(await reader.read())  # to EOF: each of these ends the connection
            except ConnectionResetError:
                answers.append(b"<reset>")
            writer.close()
            with contextlib.suppress(ConnectionResetError):
                await writer.wait_closed()
        await asyncio.sleep(0.05)
    assert [r.received for r in server.requests] == [
        Received.HEADERS,
        Received.FULL,
        Received.FULL,
    ]
    assert server.connections[0].unread == b'{"a":1}'  # the body, left in the socket
    assert [r.json for r in server.requests] == [None, {"a": 1}, {"a": 1}]
    assert answers[0] in (b"", b"<reset>")  # a reset, as the body was left unread
    assert answers[1] == b""
    assert answers[2].startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"\r\nX-A: b\r\n" in answers[2]


# -- a. the wire-fault matrix -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    plan: Behaviour | Sequence[Behaviour] = ()
    listen: Listen = "serve"
    error: type[InsiderError] | None = None  # None: success
    ambiguous: bool = False
    stage: Stage | None = None
    status: int | None = None
    logged: tuple[object, ...] = ()  # each attempt's result, as the client logged it
    or_logged: tuple[object, ...] | None = None  # the other acceptable log (see the case)
    on_attempt: tuple[int, ...] | None = ()  # None: any (see the case)
    received: tuple[Received, ...] = ()  # per request, what the server read
    answered: tuple[int | None, ...] | None = None
    connections: tuple[int, int] | None = None  # (min, max) connections the server accepted


NOT_SENT_3 = (Stage.NOT_SENT.value,) * 3


def failed(code: int, error: type[APIError], *, ambiguous: bool, **more: Any) -> Case:
    return Case(
        f"status-{code}",
        plan=status(code, **more),
        error=error,
        ambiguous=ambiguous,
        status=code,
        logged=(code,),
        on_attempt=(1,),
        received=(Received.FULL,),
        answered=(code,),
    )


CASES = [
    # Never received: not ambiguous, retried to the last attempt.
    Case(
        "refuse",
        listen="refuse",
        error=TransportError,
        stage=Stage.NOT_SENT,
        logged=NOT_SENT_3,
    ),
    Case(
        "no_accept",
        listen="no_accept",
        error=TransportError,
        stage=Stage.NOT_SENT,
        logged=NOT_SENT_3,
    ),
    # The client finds the connection closed before its gate (it then skips it and opens
    # another, up to 4 an attempt) or just after it (the attempt fails NOT_SENT), as the
    # event loop orders the server's close and the client's progress (Python 3.11 the
    # former, 3.12 the latter): either way nothing is written.
    Case(
        "close_before_read",
        plan=close_before_read(),
        error=TransportError,
        stage=Stage.NOT_SENT,
        logged=NOT_SENT_3,
        on_attempt=None,
        received=(Received.NOTHING,),  # on every connection
        connections=(3, 12),
    ),
    Case(
        "close_before_read-then-200",
        plan=[close_before_read(), status(200)],
        logged=(200,),
        or_logged=(Stage.NOT_SENT.value, 200),
        on_attempt=None,
        received=(Received.NOTHING, Received.FULL),
        answered=(None, 200),
        connections=(2, 2),
    ),
    # Received in part or in full, no answer: ambiguous, never resent.
    Case(
        "read_headers_close",
        plan=[read_headers_close(), status(200)],
        error=TransportError,
        ambiguous=True,
        stage=Stage.SENT,
        logged=(Stage.SENT.value,),
        on_attempt=(1,),
        received=(Received.HEADERS,),
    ),
    Case(
        "read_body_close",
        plan=[read_body_close(), status(200)],
        error=TransportError,
        ambiguous=True,
        stage=Stage.SENT,
        logged=(Stage.SENT.value,),
        on_attempt=(1,),
        received=(Received.FULL,),
    ),
    Case(
        "answer_late",
        plan=[answer_late(1.0), status(200)],
        error=TransportError,
        ambiguous=True,
        stage=Stage.SENT,
        logged=(Stage.SENT.value,),
        on_attempt=(1,),
        received=(Received.FULL,),
    ),
    # Answered: the status decides.
    Case(
        "status-200",
        plan=status(200),
        logged=(200,),
        on_attempt=(1,),
        received=(Received.FULL,),
        answered=(200,),
    ),
    failed(400, BadRequestError, ambiguous=False),
    failed(401, AuthenticationError, ambiguous=False),
    failed(424, FailedDependencyError, ambiguous=False),
    Case(
        "status-429-then-200",
        plan=[status(429, headers={"Retry-After": "0.05"}), status(200)],
        logged=(429, 200),
        on_attempt=(1, 2),
        received=(Received.FULL, Received.FULL),
        answered=(429, 200),
    ),
    failed(500, ServerError, ambiguous=True),
    failed(503, ServerError, ambiguous=True),
    failed(520, ServerError, ambiguous=True),
    failed(524, ServerError, ambiguous=True),
    failed(302, APIError, ambiguous=True, headers={"Location": "/v2/single/elsewhere"}),
    failed(418, APIError, ambiguous=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_wire_fault_matrix(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with RawServer(case.plan, listen=case.listen) as server:
        async with make_client(server) as client:
            sent = await send_one(client, caplog)
        await asyncio.sleep(0.05)  # let the server see the client's close
        records = list(server.requests)

    print(f"{case.id}: {sent.seconds:.3f} s, logged {sent.logged}, server {server.connections}")
    if case.error is None:
        assert sent.error is None, sent.error
        assert sent.result == OK
    else:
        assert type(sent.error) is case.error, sent.error
        assert sent.error.ambiguous is case.ambiguous
        if case.stage is not None:
            assert isinstance(sent.error, TransportError)
            assert sent.error.stage is case.stage
        if case.status is not None:
            assert isinstance(sent.error, APIError)
            assert sent.error.status == case.status
    assert sent.logged == list(case.logged) or (
        case.or_logged is not None and sent.logged == list(case.or_logged)
    ), sent.logged
    if case.on_attempt is not None:
        assert sent.on_attempt == list(case.on_attempt)
    else:  # the gate ran for every attempt that did not find its connection closed first
        assert sent.on_attempt == list(range(1, len(sent.on_attempt) + 1))
    if case.connections is not None:
        low, high = case.connections
        assert low <= len(server.connections) <= high, server.connections
    if case.id == "close_before_read":
        assert {r.received for r in records} == {Received.NOTHING}
        assert len(records) == len(server.connections)
    else:
        assert [r.received for r in records] == list(case.received)
    if case.answered is not None:
        assert [r.answered for r in records] == list(case.answered)
    assert_wire_rule(sent, server)


async def test_request_that_arrived_but_was_never_read_is_ambiguous(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The boundary of "never received": the server closes after the request's bytes reached
    its socket, reading none of them (the kernel resets the connection). The client wrote
    the whole request, and a reset after that is what a server that read it and died, or a
    proxy that forwarded it, also produce: ambiguous, not resent. This is the realistic
    form of close_before_read over a real network, where the client's bytes are in flight
    before the server's close can arrive."""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with RawServer([close_unread(), status(200)]) as server:
        async with make_client(server) as client:
            sent = await send_one(client, caplog)
        await asyncio.sleep(0.05)
    assert isinstance(sent.error, TransportError)
    assert sent.error.stage is Stage.SENT
    assert sent.ambiguous
    assert sent.logged == [Stage.SENT.value]
    assert sent.on_attempt == [1]
    assert [r.received for r in server.requests] == [Received.NOTHING]
    assert unread_titles(server) == ["wire"]  # the whole request sat unread in the socket
    assert_wire_rule(sent, server)


# -- b. a wait for a pooled connection is not ambiguous -----------------------------------


async def until(predicate: Callable[[], object]) -> None:
    """Poll ``predicate`` every 5 ms, for at most 5 s."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never came true")


@pytest.mark.parametrize(
    "timeouts",
    [Timeouts(total=1), Timeouts(total=5, pool=0.3)],
    ids=["total-1s", "pool-0.3s"],
)
async def test_pool_wait_timeout_is_not_sent(
    timeouts: Timeouts, caplog: pytest.LogCaptureFixture
) -> None:
    """One pooled connection, held by a request the server answers late: the next push
    runs out of time waiting for it. Nothing of it was written: NOT_SENT, not ambiguous,
    retried (each attempt waits again), and the server never sees it."""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with (
        RawServer([answer_late(3.5), status(200)]) as server,
        aiohttp.ClientSession(connector=WireConnector(limit=1)) as session,
    ):
        slow = make_client(server, session=session, timeout=Timeouts(total=10, read=10))
        waiting = make_client(server, session=session, timeout=timeouts)
        async with slow, waiting:
            first = asyncio.create_task(send_one(slow, caplog, "first"))
            await until(lambda: server.full())  # the first holds the only connection
            second = await send_one(waiting, caplog, "second")
            seen_while_waiting = [r.json["title"] for r in server.full()]
            first_sent = await first
        await asyncio.sleep(0.05)

    print(f"pool wait ({timeouts}): second failed after {second.seconds:.3f} s: {second.error!r}")
    assert isinstance(second.error, TransportError), second.error
    assert second.error.stage is Stage.NOT_SENT
    assert not second.ambiguous
    assert second.logged == list(NOT_SENT_3)  # retried: each attempt waited in vain
    assert second.on_attempt == []  # never reached the wire
    assert seen_while_waiting == ["first"]
    assert first_sent.result == OK
    assert [r.json["title"] for r in server.full()] == ["first"]  # never "second"


# -- c. the keep-alive race ---------------------------------------------------------------


async def send_spaced(
    client: WebPushClient, caplog: pytest.LogCaptureFixture, n: int, seed: int
) -> list[Sent]:
    """``n`` sequential pushes titled "push <i>", spaced uniformly 0.09-0.11 s apart."""
    rng = random.Random(seed)
    sents = []
    for i in range(n):
        if i:
            await asyncio.sleep(rng.uniform(0.09, 0.11))
        sents.append(await send_one(client, caplog, f"push {i}"))
    return sents


def received_counts(server: RawServer, n: int) -> list[int]:
    """How many times the server read each of the ``n`` pushes in full."""
    counts = [0] * n
    for body in server.received_json():
        counts[int(body["title"].removeprefix("push "))] += 1
    return counts


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_keepalive_below_the_server_idle_timeout_loses_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server closes connections idle for 0.1 s; the client keeps them 0.05 s (the
    scaled default: 4 s against servers' 5 s and more). 200 sends 0.09-0.11 s apart: the
    client never offers a connection the server may be closing, so nothing is lost."""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    n = 200
    async with RawServer(status(200), idle_close=0.1) as server:
        timeouts = Timeouts(total=2, pool=1, connect=0.5, read=0.5, keepalive=0.05)
        async with make_client(server, timeout=timeouts) as client:
            began = time.perf_counter()
            sents = await send_spaced(client, caplog, n, seed=1)
            seconds = time.perf_counter() - began
        await asyncio.sleep(0.05)

    failures = [s for s in sents if s.error is not None]
    print(
        f"keepalive 0.05 s vs idle close 0.1 s: {n} sends in {seconds:.1f} s, "
        f"{len(failures)} failed, {sum(s.ambiguous for s in sents)} ambiguous, "
        f"{len(server.connections)} connections"
    )
    assert failures == []
    assert all(s.result == OK for s in sents)
    assert received_counts(server, n) == [1] * n


async def test_connection_closed_while_waiting_for_the_grant_is_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pre-write check: each send waits ~0.5 s for its grant on a pooled connection that
    the server closes after 0.2 s idle. The check after the gate finds it closed, nothing
    is written (NOT_SENT), and the retry goes out on a fresh connection."""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with RawServer(status(200), idle_close=0.2) as server:
        limiter = SlidingWindowLimiter(1, 0.5)
        async with make_client(server, limiter=limiter, timeout=Timeouts()) as client:
            sents = [await send_one(client, caplog, f"push {i}") for i in range(6)]
        await asyncio.sleep(0.05)

    print("grant wait: " + "; ".join(f"{s.logged} {s.seconds:.2f} s" for s in sents))
    assert all(s.result == OK for s in sents), [s.error for s in sents]
    assert not any(s.ambiguous for s in sents)
    assert received_counts(server, 6) == [1] * 6
    # The first goes out on a fresh connection; every later one first finds its pooled
    # connection closed by the server after the grant, then goes out on a new one.
    assert sents[0].logged == [200]
    assert all(s.logged == [Stage.NOT_SENT.value, 200] for s in sents[1:])
    assert all(s.on_attempt == [1, 2] for s in sents[1:])
    assert sum(c.closed == "idle" for c in server.connections) == 5


async def send_hung_up_after_the_gate(
    client: WebPushClient, server: RawServer, title: str, *, reset: bool = False
) -> tuple[InsiderError | LaunchResult, list[int], list[int]]:
    """Send `title` while the server closes (`reset`: aborts) its pooled connection right
    after the connector's check that follows the gate of the first attempt, before the
    first byte: (the outcome, the attempts' numbers, what the hang-up returned)."""
    loop = asyncio.get_running_loop()
    calls: list[int] = []
    hung_up: list[int] = []

    def hang_up_after_the_gate(number: int) -> None:
        calls.append(number)
        if number == 1:  # runs after the gate's check, before aiohttp's body writer
            loop.call_soon(lambda: hung_up.append(server.hang_up_idle(reset=reset)))

    try:
        return await client.send(push(title), on_attempt=hang_up_after_the_gate), calls, hung_up
    except InsiderError as exc:
        return exc, calls, hung_up


async def test_server_close_after_the_pre_write_check_before_the_first_byte(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server closes a pooled connection right after the connector's check that follows
    the gate, before the client writes the request's first byte (the hang-up is queued from
    the gate, so it runs just after that check). If the server's FIN was in the client's
    socket before any byte of the push was written, the push never reached the server and
    the client could have known: NOT_SENT, retried on a fresh connection. (If instead the
    request was already in the server's socket when it closed, ambiguous is right.)"""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with RawServer(status(200)) as server:
        async with make_client(server) as client:
            first = await send_one(client, caplog, "push 0")  # leaves a pooled connection
            start = len(caplog.records)
            second, calls, hung_up = await send_hung_up_after_the_gate(client, server, "push 1")
            logged = attempts_logged(caplog, start)
        await asyncio.sleep(0.05)

    print(f"hang-up after the gate: {second!r}, logged {logged}, server {server.connections}")
    assert first.result == OK
    assert hung_up == [1]
    pooled = server.connections[0]
    assert pooled.closed == "hung up"
    if pooled.unread:  # the request was in the server's socket: ambiguous is right
        assert unread_titles(server) == ["push 1"]
        assert isinstance(second, TransportError)
        assert second.ambiguous
        assert received_counts(server, 2) == [1, 0]
        return
    if sys.version_info < (3, 12):
        # A known gap, documented: before 3.12 aiohttp writes the request from a task that
        # starts one event-loop iteration after the connector's check, so a FIN landing in
        # that iteration is not seen before the write. The push is then reported ambiguous
        # (it was handed to the kernel) and never resent: no duplicate, nothing lost.
        assert isinstance(second, TransportError)
        assert second.stage is Stage.SENT
        assert second.ambiguous
        assert received_counts(server, 2) == [1, 0]
        return
    # The FIN came before any byte of "push 1": it never reached the server.
    assert second == OK, f"a push the server never received was reported {second!r}"
    assert logged == [Stage.NOT_SENT.value, 200]
    assert calls == [1, 2]
    assert received_counts(server, 2) == [1, 1]


async def test_server_reset_after_the_pre_write_check_is_not_sent_and_resent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As above, with an RST rather than a FIN (a server aborting the connection). asyncio's
    transport reports the refused send by closing, not by raising: the push whose one write
    the operating system refused never left, so it is NOT_SENT and sent again on a fresh
    connection, never reported as "may have gone out". (If the request got into the
    server's socket before the reset, ambiguous is right.)"""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with RawServer(status(200)) as server:
        async with make_client(server) as client:
            first = await send_one(client, caplog, "push 0")  # leaves a pooled connection
            second, _, hung_up = await send_hung_up_after_the_gate(
                client, server, "push 1", reset=True
            )
        await asyncio.sleep(0.05)

    assert first.result == OK
    assert hung_up == [1]
    if server.connections[0].unread:  # the request was in the server's socket: ambiguous
        assert isinstance(second, TransportError)
        assert second.ambiguous
        return
    assert second == OK, f"a push the server never received was reported {second!r}"
    assert received_counts(server, 2) == [1, 1]


# -- d. the keep-alive race with the default keepalive: measured --------------------------


@pytest.mark.slow  # a real-time soak: Python 3.11 only in CI (.ci/run)
async def test_measure_default_keepalive_against_a_server_closing_idle_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The default keepalive (4 s) against a server closing connections idle for 0.1 s,
    200 sends 0.09-0.11 s apart: about half reuse a connection the server is about to close
    or has just closed. Measured and printed; asserted only that every verdict agrees with
    the server's record: nothing received twice, nothing received reported as certain
    failure, every success received once."""
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    n = 200
    async with RawServer(status(200), idle_close=0.1) as server:
        async with make_client(server) as client:
            assert client.timeouts.keepalive == Timeouts().keepalive
            began = time.perf_counter()
            sents = await send_spaced(client, caplog, n, seed=2)
            seconds = time.perf_counter() - began
        await asyncio.sleep(0.05)

    counts = received_counts(server, n)
    succeeded = [i for i, s in enumerate(sents) if s.result is not None]
    ambiguous = [i for i, s in enumerate(sents) if s.ambiguous]
    not_ambiguous = [i for i, s in enumerate(sents) if s.error is not None and not s.ambiguous]
    stages: dict[str, int] = {}
    for s in sents:
        if isinstance(s.error, TransportError):
            stages[s.error.stage.name] = stages.get(s.error.stage.name, 0) + 1
    not_sent_retries = sum(s.logged.count(Stage.NOT_SENT.value) for s in sents)
    idle_closed = [c for c in server.connections if c.closed == "idle"]
    print(
        f"\nMEASURED default keepalive vs idle close 0.1 s: {n} sends in {seconds:.1f} s: "
        f"{len(succeeded)} succeeded, {len(ambiguous)} ambiguous "
        f"({sum(counts[i] for i in ambiguous)} of them received by the server), "
        f"{len(not_ambiguous)} failed not ambiguous; failed stages {stages}; "
        f"{not_sent_retries} attempts found their connection closed after the grant "
        f"(NOT_SENT, retried); {len(server.connections)} connections, "
        f"{len(idle_closed)} closed idle by the server, "
        f"{sum(1 for c in idle_closed if c.unread)} of them with an unread request"
    )
    unread = unread_titles(server)
    in_socket = [i for i in ambiguous if f"push {i}" in unread]
    print(
        f"  of the {len(ambiguous)} ambiguous: {len(in_socket)} sat whole and unread in the "
        f"server's socket when it closed the idle connection, {len(ambiguous) - len(in_socket)}"
        f" reached it after the close (reset by the kernel); ambiguous pushes: {ambiguous}"
    )
    assert all(c <= 1 for c in counts), "a push was received twice"
    assert all(counts[i] == 1 for i in succeeded)
    assert all(counts[i] == 0 for i in not_ambiguous), "a received push was reported certain"
    assert all(counts[i] <= 1 for i in ambiguous)
    assert len(succeeded) + len(ambiguous) + len(not_ambiguous) == n
