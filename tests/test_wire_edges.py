"""Edges of the wire found by attacking the transport: each test holds one rule.

Small raw asyncio servers on 127.0.0.1, written here because aiohttp's server cannot
misbehave this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

import insider_webpush.transport as transport_module
from insider_webpush import (
    AuthenticationError,
    RateLimitError,
    RetryPolicy,
    TransportError,
    WebPush,
    WebPushClient,
)
from insider_webpush.models import Timeouts
from insider_webpush.outcomes import Stage
from insider_webpush.transport import (
    AiohttpTransport,
    Request,
    WireConnector,
    _Attempt,
    _direct_settings,
)

from .samples import MINIMAL_FIELDS

KEY = "edge-test-key-0123456789-SECRET"
PUSH = WebPush(**MINIMAL_FIELDS)
OK = b'{"success": true, "campaign_id": 7}'

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A raw server on a free loopback port; yields its base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            tasks.discard(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answer(status: bytes = b"200 OK", body: bytes = OK) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def client(base_url: str, **kwargs: Any) -> WebPushClient:
    kwargs.setdefault("retry", RetryPolicy.never())
    return WebPushClient(KEY, partner_id="1", base_url=base_url, **kwargs)


async def test_a_connection_is_released_when_the_deadline_passed_before_the_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The connection came after the attempt's time ran out (the sweep had not fired yet):
    # the attempt fails NOT_SENT and must give the connection back, or a one-connection pool
    # is stuck until the error is garbage-collected.
    calls = 0
    stop_clock = _Attempt.stop_clock

    def out_of_time_once(self: _Attempt) -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError
        return stop_clock(self)

    monkeypatch.setattr(_Attempt, "stop_clock", out_of_time_once)

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer())
            await writer.drain()

    async with (
        serving(ok) as url,
        aiohttp.ClientSession(connector=WireConnector(limit=1)) as session,
        client(url, session=session, timeout=Timeouts(total=2, pool=1)) as c,
    ):
        with pytest.raises(TransportError) as first:
            await c.send(PUSH)
        assert first.value.stage is Stage.NOT_SENT
        kept = first.value  # a caller keeping the error must not keep the pool's connection
        result = await c.send(PUSH)  # the pool's one connection is free again
        assert result.campaign_id == 7
        del kept
        gc.collect()


@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_a_body_cut_off_while_being_written_never_reaches_the_server_whole() -> None:
    # 8 MB does not fit the sockets' buffers: the server reads the headers, stalls past the
    # client's timeout, then reads on. WRITING promises Insider never had all of it, so the
    # tail still buffered in the client must be dropped, not flushed by a graceful close.
    # (The client refuses launch bodies over 64 KiB; the transport itself takes any.)
    received: list[bool] = []

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await asyncio.sleep(1.0)
        got = 0
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while got < length:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                got += len(chunk)
        received.append(got == length)

    async def gate() -> None:
        return None

    transport = AiohttpTransport()
    async with serving(stall) as url:
        request = Request("POST", url + "/v2/single/campaign_id", b"x" * 8_000_000, {})
        try:
            with pytest.raises(TransportError) as cut:
                await transport.send(request, gate, Timeouts(total=0.3))
            await asyncio.sleep(1.5)  # the server reads what reached it
        finally:
            await transport.aclose()
    assert cut.value.stage is Stage.WRITING
    assert not cut.value.ambiguous
    assert received == [False]  # never the whole request


async def test_the_key_echoed_into_a_malformed_answer_stays_out_of_the_error() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 Bearer " + KEY.encode() + b"\r\n\r\n")
        await writer.drain()

    async with serving(echo) as url, client(url) as c:
        with pytest.raises(TransportError) as caught:
            await c.send(PUSH)
    error = caught.value
    assert error.stage is Stage.SENT
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert error.__context__ is None  # aiohttp's exception, which quotes the key, is not kept
    assert error.__cause__ is None


async def test_a_lent_session_raising_for_status_does_not_hide_the_status() -> None:
    async def unauthorized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"401 Unauthorized", b'{"message": "Unauthorized"}'))
        await writer.drain()

    async with (
        serving(unauthorized) as url,
        aiohttp.ClientSession(connector=WireConnector(), raise_for_status=True) as session,
        client(url, session=session) as c,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await c.send(PUSH)
    assert not caught.value.ambiguous  # a certain failure, not a lost answer


async def test_sends_queued_for_their_grant_fail_at_once_when_a_long_pause_begins() -> None:
    # Two grants per 10 s: three sends queue behind the first two. A 429 asking for a day
    # must fail them at once, not when their grant would have come (10, 20, 30 s).
    async def limit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(0.2)
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 86400\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()

    async with serving(limit) as url, client(url, rate_limit=2, rate_period=10.0) as c:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(c.send(PUSH) for _ in range(5)), return_exceptions=True)
        took = loop.time() - started
    assert all(isinstance(r, RateLimitError) for r in results), results
    assert took < 2.0, took


async def test_a_refused_connection_is_said_in_network_terms() -> None:
    # Not aiohttp's class names: "ClientConnectorError: Cannot connect to host ... ssl:default".
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    async with WebPushClient(
        "key", partner_id="1", base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy.never()
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.send(WebPush(**MINIMAL_FIELDS))
    message = str(caught.value)
    assert message.startswith(f"the request failed: could not connect to 127.0.0.1:{port} (")
    assert "Client" not in message
    assert caught.value.stage is Stage.NOT_SENT


@pytest.mark.parametrize("lent", [False, True], ids=["own-session", "lent-session"])
async def test_an_answer_stalled_mid_body_gives_its_connection_back(lent: bool) -> None:
    """The first answer's body stops half way; the attempt's read deadline ends it. Its
    connection must leave the pool's only slot (closed, as its body was never read in full):
    the next push gets a connection and goes out, instead of waiting for the pool."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        while True:
            await read_request(reader)
            if first:  # 100 bytes promised, 10 sent, then nothing
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + OK[:10])
                await writer.drain()
                await asyncio.sleep(30)
                return
            writer.write(answer())
            await writer.drain()

    timeouts = Timeouts(total=5, pool=1, read=0.3)
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serving(handler))
        if lent:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=WireConnector(limit=1))
            )
            transport = AiohttpTransport(session)
        else:  # the transport's own session: its exchange is made below the session
            transport = AiohttpTransport(timeouts=timeouts, pool_size=1)
        stack.push_async_callback(transport.aclose)
        c = await stack.enter_async_context(client(url, transport=transport, timeout=timeouts))
        with pytest.raises(TransportError) as stalled:
            await c.send(PUSH)
        assert stalled.value.stage is Stage.SENT
        result = await c.send(PUSH)  # pool=1 s: a slot never given back fails here
    assert result.campaign_id == 7
    assert connections == 2


# -- an own session's exchange, made below aiohttp's session --------------------------------


def _session_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs that went through `ClientSession._request`, the session's plumbing."""
    seen: list[str] = []
    original = aiohttp.ClientSession._request

    async def counted(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        seen.append(str(url))
        return await original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counted)
    return seen


def _response_settings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each request's connection was told of its answer (`set_response_params`)."""
    seen: list[dict[str, Any]] = []
    original = ResponseHandler.set_response_params

    def recorded(self: ResponseHandler, **kwargs: Any) -> None:
        seen.append({k: v for k, v in kwargs.items() if k != "timer"})
        original(self, **kwargs)

    monkeypatch.setattr(ResponseHandler, "set_response_params", recorded)
    return seen


async def transport_on(stack: contextlib.AsyncExitStack, lent: bool) -> AiohttpTransport:
    """A transport on its own sessions, or (`lent`) on a lent `WireConnector` session;
    closed, with the session, when `stack` closes."""
    session = None
    if lent:
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=WireConnector()))
    transport = AiohttpTransport(session)
    stack.push_async_callback(transport.aclose)
    return transport


async def _answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()


async def test_an_own_session_sends_below_its_plumbing_with_the_settings_it_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The speed of issue 13: the transport's own session is not asked for each request (its
    # default headers, cookies, traces, middlewares and redirects are none of the SDK's), but
    # its connection is told of the answer exactly what the session would have told it.
    through_session = _session_requests(monkeypatch)
    settings = _response_settings(monkeypatch)
    async with serving(_answer_each) as url:
        async with (
            aiohttp.ClientSession() as plain,  # what aiohttp itself gives a request
            plain.post(url + "/x", data=b"{}") as response,
        ):
            await response.read()
        async with client(url) as c:
            result = await c.send(PUSH)
    assert result.campaign_id == 7
    assert through_session == [url + "/x"]  # the plain session's; none of the SDK's
    assert len(settings) == 2
    assert settings[1] == settings[0]


async def test_a_lent_session_is_asked_for_each_request_and_keeps_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through_session = _session_requests(monkeypatch)
    starts: list[str] = []

    async def on_start(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        starts.append(params.method)

    traces = aiohttp.TraceConfig()
    traces.on_request_start.append(on_start)
    async with (
        serving(_answer_each) as url,
        aiohttp.ClientSession(connector=WireConnector(), trace_configs=[traces]) as session,
        client(url, session=session) as c,
    ):
        result = await c.send(PUSH)
    assert result.campaign_id == 7
    assert len(through_session) == 1
    assert starts == ["POST"]  # the application's own tracing of its session still sees it


def test_an_aiohttp_whose_exchange_differs_is_driven_through_its_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def check() -> tuple[bool, bool, bool]:
        async with aiohttp.ClientSession(connector=WireConnector()) as session:
            today = _direct_settings(session) is not None
            with monkeypatch.context() as changed:

                def fewer(self: Any, *, timer: Any = None, skip_payload: bool = False) -> None:
                    pass

                changed.setattr(ResponseHandler, "set_response_params", fewer)
                fewer_settings = _direct_settings(session) is None
            with monkeypatch.context() as changed:
                changed.setattr(aiohttp.ClientRequest, "send", lambda self, conn: None)
                not_awaited = _direct_settings(session) is None
        return today, fewer_settings, not_awaited

    assert asyncio.run(check()) == (True, True, True)


async def test_an_own_session_falls_back_to_its_request_on_another_aiohttp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "_direct_settings", lambda session: None)
    through_session = _session_requests(monkeypatch)
    async with serving(_answer_each) as url, client(url) as c:
        result = await c.send(PUSH)
    assert result.campaign_id == 7
    assert through_session == [url + "/v2/single/campaign_id"]


async def test_an_own_session_keeps_no_cookies() -> None:
    # A load balancer's sticky cookie is not sent back: each launch stands alone, and the
    # session's cookie jar is part of the plumbing an own session's exchange skips.
    heads: list[bytes] = []

    async def sets_a_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            heads.append(head)
            writer.write(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: AWSALB=sticky; Path=/\r\n"
                b"Content-Length: " + str(len(OK)).encode() + b"\r\n\r\n" + OK
            )
            await writer.drain()

    async with serving(sets_a_cookie) as url, client(url.replace("127.0.0.1", "localhost")) as c:
        await c.send(PUSH)  # by name: aiohttp's cookie jar takes none from an IP address
        await c.send(PUSH)
    assert len(heads) == 2
    assert b"cookie:" not in heads[1].lower()


async def test_each_request_goes_to_its_own_url() -> None:
    # The last URL is kept parsed: a request to another one must not reuse it.
    lines: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            lines.append(head.split(b"\r\n", 1)[0])
            writer.write(answer())
            await writer.drain()

    async with serving(record) as url, client(url) as c:
        await c.send(PUSH)
        await c.send(PUSH, campaign_id=41)
        await c.send(PUSH, campaign_id=41)
        await c.send(PUSH)
    assert lines == [
        b"POST /v2/single/campaign_id HTTP/1.1",
        b"POST /v2/single/41 HTTP/1.1",
        b"POST /v2/single/41 HTTP/1.1",
        b"POST /v2/single/campaign_id HTTP/1.1",
    ]


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/v2/single/1", "http:///v2/single/1", "http://[::1/"]
)
@pytest.mark.parametrize("lent", [False, True], ids=["own-session", "lent-session"])
async def test_a_url_aiohttp_cannot_send_to_is_not_sent(url: str, lent: bool) -> None:
    async with contextlib.AsyncExitStack() as stack:
        transport = await transport_on(stack, lent)
        gated = False

        async def gate() -> None:
            nonlocal gated
            gated = True

        request = Request("POST", url, b"{}", {"Authorization": f"Bearer {KEY}"})
        with pytest.raises(TransportError) as caught:
            await transport.send(request, gate, Timeouts())
    assert caught.value.stage is Stage.NOT_SENT
    assert not gated
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("mode", ["own-session", "lent-session", "own-session-fallback"])
async def test_no_session_resends_a_request_by_itself(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's session resends an idempotent request (a DELETE) once when its connection
    # fails before the answer, through the connector and so through the gate: a second grant,
    # and the server carries it out twice. The transport refuses that resend, so with
    # RetryPolicy.never() the server sees the request once, the gate runs once, and the
    # attempt ends at the stage its one request reached (SENT: ambiguous).
    seen: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head.split(b"\r\n", 1)[0])  # then closed without an answer

    if mode == "own-session-fallback":
        monkeypatch.setattr(transport_module, "_direct_settings", lambda session: None)
    gates = 0
    stop_clock = _Attempt.stop_clock

    def counted(self: _Attempt) -> float:
        nonlocal gates
        gates += 1
        return stop_clock(self)

    monkeypatch.setattr(_Attempt, "stop_clock", counted)
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serving(hang_up))
        session = None
        if mode == "lent-session":
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=WireConnector())
            )
        c = await stack.enter_async_context(client(url, session=session))
        with pytest.raises(TransportError) as caught:
            await c.delete(41)
    assert caught.value.stage is Stage.SENT
    assert str(caught.value).startswith("the request failed: ")
    assert seen == [b"DELETE /v1/single/41 HTTP/1.1"]
    assert gates == 1


def test_the_direct_exchange_is_used_only_on_the_aiohttp_it_was_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def settings() -> dict[str, Any] | None:
        async with aiohttp.ClientSession(connector=WireConnector()) as session:
            return _direct_settings(session)

    assert asyncio.run(settings()) is not None  # the installed 3.14
    monkeypatch.setattr(aiohttp, "__version__", "3.15.0")
    assert asyncio.run(settings()) is None


@pytest.mark.parametrize("lent", [False, True], ids=["own-session", "lent-session"])
async def test_a_url_with_credentials_is_refused_and_not_sent(lent: bool) -> None:
    # aiohttp would send the URL's user:password as Basic auth in place of the key.
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head)

    gated = False

    async def gate() -> None:
        nonlocal gated
        gated = True

    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serving(record))
        transport = await transport_on(stack, lent)
        with_credentials = url.replace("http://", "http://user:hunter2@") + "/v2/single/1"
        request = Request("POST", with_credentials, b"{}", {"Authorization": f"Bearer {KEY}"})
        with pytest.raises(ValueError, match="credentials") as caught:
            await transport.send(request, gate, Timeouts())
    assert "hunter2" not in str(caught.value)
    assert not gated
    assert seen == []


@pytest.mark.parametrize("lent", [False, True], ids=["own-session", "lent-session"])
async def test_a_head_request_in_lower_case_reads_no_body(lent: bool) -> None:
    # An answer to HEAD has a Content-Length but no body: waiting for one would stall.
    async def head_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serving(head_answer))
        transport = await transport_on(stack, lent)

        async def gate() -> None:
            pass

        request = Request("head", url + "/v2/single/1", b"", {})
        response = await transport.send(request, gate, Timeouts(total=2, read=1))
    assert (response.status, response.body) == (200, b"")


async def test_a_connection_closed_during_the_gate_is_said_in_plain_words() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        await asyncio.sleep(0.1)  # idle, pooled by the client: then closed

    async def at_once() -> None:
        pass

    async def slow_grant() -> None:
        await asyncio.sleep(0.4)  # the server closes the pooled connection meanwhile

    transport = AiohttpTransport()
    try:
        async with serving(answer_then_close) as url:
            request = Request("POST", url + "/v2/single/1", b"{}", {})
            first = await transport.send(request, at_once, Timeouts())
            assert first.status == 200
            with pytest.raises(TransportError) as caught:
                await transport.send(request, slow_grant, Timeouts())
    finally:
        await transport.aclose()
    assert caught.value.stage is Stage.NOT_SENT
    assert str(caught.value) == (
        "the request failed: the connection closed while the request waited for its quota, "
        "before any byte of it was sent; it is safe to send again"
    )
