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
from insider_webpush.transport import AiohttpTransport, Request, WireConnector, _Attempt

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


async def test_an_answer_stalled_mid_body_gives_its_connection_back() -> None:
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

    async with (
        serving(handler) as url,
        aiohttp.ClientSession(connector=WireConnector(limit=1)) as session,
        client(url, session=session, timeout=Timeouts(total=5, pool=1, read=0.3)) as c,
    ):
        with pytest.raises(TransportError) as stalled:
            await c.send(PUSH)
        assert stalled.value.stage is Stage.SENT
        result = await c.send(PUSH)  # pool=1 s: a slot never given back fails here
    assert result.campaign_id == 7
    assert connections == 2
