"""The one place that touches the wire: send one prepared request, say how far it got.

A [`Transport`][insider_webpush.transport.Transport] sends one
[`Request`][insider_webpush.transport.Request] and returns its
[`Response`][insider_webpush.transport.Response], or raises
[`TransportError`][insider_webpush.errors.TransportError] whose `stage` says how far the
request got ([`Stage`][insider_webpush.outcomes.Stage]): it never left, it was being written,
or it was fully handed to the operating system and no complete answer came back. The client
reads the verdict from the outcome table; nothing above this module looks at an exception's
type.

Every transport awaits the request's `gate` once the connection is ready and immediately
before the first byte is written: that is where the client takes the quota's grant (and the
batch journal writes ahead), so time spent waiting for a pooled connection, connecting or in
TLS never bunches arrivals at the server. A gate that raises leaves the request unsent, and
its exception propagates as it is.

[`AiohttpTransport`][insider_webpush.transport.AiohttpTransport] is the implementation, on
aiohttp's public API: its [`WireConnector`][insider_webpush.transport.WireConnector] runs the
gate when aiohttp hands it a connection, checks that a pooled connection is still open before
and after the gate (the keep-alive race: a server that closed an idle connection), and
aiohttp's `UploadTracker` says whether the request was written in full. Tests, FakeInsider's
in-process mode and the benchmarks implement the same protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import select
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

import aiohttp

from .errors import TransportError, ValidationError, redact
from .models import Timeouts
from .outcomes import Stage

__all__ = [
    "DEFAULT_POOL_SIZE",
    "AiohttpTransport",
    "Gate",
    "Request",
    "Response",
    "Transport",
    "WireConnector",
]

DEFAULT_POOL_SIZE: Final = 100
"""Connections an [`AiohttpTransport`][insider_webpush.transport.AiohttpTransport] keeps at
most: aiohttp's default connection limit."""

Gate = Callable[[], Awaitable[None]]
"""Awaited once the connection is ready, immediately before the first byte is written."""


class Request(NamedTuple):
    """One request, encoded once: `body` is exactly the bytes that go on the wire.

    Attributes:
        method: The HTTP method, e.g. `"POST"`.
        url: The absolute URL.
        body: The body bytes.
        headers: The request's headers (`Authorization` holds the key: never log them).
    """

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]


class Response(NamedTuple):
    """A complete answer: the status, its headers and the whole body.

    Attributes:
        status: The HTTP status.
        headers: The answer's headers; their names may be in any case.
        body: The whole body, as bytes.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class Transport(Protocol):
    """Sends one request; the seam every request of the SDK goes through.

    Any object with these two methods will do (the check is structural, at run time too):
    `WebPushClient(transport=...)` takes one, e.g. `FakeInsider.transport()`.
    """

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        """Send `request` once and return its complete answer.

        Await `gate()` exactly once, when the connection is ready and immediately before the
        first byte is written; if it raises, write nothing and let its exception propagate.
        Never follow a redirect.

        Args:
            request: The request; send exactly its bytes.
            gate: Awaited once before the first byte is written (the quota's grant).
            timeouts: The attempt's timeouts (`total` not counting the gate).

        Returns:
            The complete answer, whatever its status.

        Raises:
            TransportError: Any failure below HTTP, including the timeouts, with the
                [`Stage`][insider_webpush.outcomes.Stage] the request reached.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the transport is not used after this."""
        ...


# -- the aiohttp implementation -----------------------------------------------------------


class _Attempt:
    """What the wire said of one attempt; found by the connector through a context variable.

    It also keeps the attempt's deadline: ``total`` seconds, stopped while the gate waits
    (the quota's wait is not a timeout), and once the request is written brought forward to
    ``read`` seconds when that is sooner. A :class:`_Deadlines` sweep enforces it.
    """

    __slots__ = (
        "deadline",
        "expired",
        "gate",
        "gated",
        "in_gate",
        "loop",
        "read",
        "task",
        "transport",
    )

    def __init__(self, gate: Gate, loop: asyncio.AbstractEventLoop) -> None:
        self.gate = gate
        self.loop = loop
        self.gated = False  # the gate returned: the first byte is being written
        self.in_gate = False
        self.expired = False
        self.deadline = 0.0
        self.read = math.inf
        self.task: asyncio.Task[Any] | None = None
        self.transport: asyncio.Transport | None = None  # the connection's, after the gate

    def expire(self) -> None:
        self.expired = True
        assert self.task is not None
        self.task.cancel()

    def stop_clock(self) -> float:
        """The gate begins: the clock stops; returns the time left (TimeoutError: none)."""
        remaining = self.deadline - self.loop.time()
        if remaining <= 0:
            raise TimeoutError  # ran out before the gate: nothing written
        self.in_gate = True
        return remaining

    def start_clock(self, remaining: float) -> None:
        """The gate passed: the first byte goes next, and the answer has ``read`` seconds
        within what was left of ``total``."""
        self.in_gate = False
        self.gated = True
        self.deadline = self.loop.time() + min(remaining, self.read)


_SWEEP_EVERY: Final = 0.02  # seconds: how late a timeout may fire


class _Deadlines:
    """The deadlines of one event loop's attempts in flight, enforced by one sweep.

    A timer per request (``asyncio.timeout``, aiohttp's ``sock_read``) costs a timer handle,
    a heap push and a cancellation on every request; here a request costs two dict
    operations, and a sweep every ``_SWEEP_EVERY`` seconds, only while requests are in
    flight, cancels the tasks of those past their deadline. A timeout fires at most that much
    late.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._attempts: dict[_Attempt, None] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None

    def watch(self, attempt: _Attempt, total: float, read: float) -> None:
        attempt.read = read
        attempt.task = asyncio.current_task()
        attempt.deadline = self.loop.time() + total
        self._attempts[attempt] = None
        if self._sweep_handle is None:
            self._sweep_handle = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def forget(self, attempt: _Attempt) -> None:
        self._attempts.pop(attempt, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        late = [a for a in self._attempts if a.deadline <= now and not a.in_gate]
        for attempt in late:
            del self._attempts[attempt]
            attempt.expire()
        self._sweep_handle = (
            self.loop.call_later(_SWEEP_EVERY, self._sweep) if self._attempts else None
        )


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "insider_webpush_attempt", default=None
)

_STALE_RETRIES: Final = 3  # closed pooled connections skipped before giving up
_POLL_MASK: Final = (
    getattr(select, "POLLRDHUP", 0) | getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0)
)


def _closed(transport: asyncio.Transport) -> bool:
    """The connection can no longer carry a request: closing, or the peer sent FIN or RST.

    Reads the socket's state in the kernel (``POLLRDHUP`` on Linux), so a FIN that arrived
    before the event loop read it still counts. Data waiting to be read (a TLS session
    ticket) does not count.
    """
    if transport.is_closing():
        return True
    if not _POLL_MASK or not hasattr(select, "poll"):
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), _POLL_MASK)
    return bool(poller.poll(0))


class _StaleConnection(Exception):
    pass


class WireConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that holds each SDK request at the wire for its gate.

    For a request sent by [`AiohttpTransport`][insider_webpush.transport.AiohttpTransport],
    `connect` gets a connection as usual (waiting for a free one in the pool or opening one),
    skips a pooled one the server has closed, runs the request's gate, and checks the
    connection again: aiohttp then writes the request at once. Other requests pass through
    untouched, so one connector can serve the SDK and the rest of an application. Takes
    `aiohttp.TCPConnector`'s arguments, e.g. `WireConnector(limit=100)`; a session lent to
    the client with `session=` must use one.
    """

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Any:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return await super().connect(req, traces, timeout)
        for _ in range(_STALE_RETRIES + 1):
            connection = await super().connect(req, traces, timeout)
            transport = connection.transport
            if transport is not None and not transport.is_closing():
                break
            connection.close()  # closed by the server while idle; nothing taken, nothing sent
        else:
            raise _StaleConnection("the server closed every connection before the request")
        try:
            remaining = attempt.stop_clock()  # the quota's wait is not a timeout
            await attempt.gate()
        except BaseException:
            connection.release()  # untouched: back to the pool
            raise
        attempt.start_clock(remaining)
        attempt.transport = transport
        if _closed(transport):
            # Closed while the request waited for its grant, or a FIN the loop has not read
            # yet: nothing is written, and the grant is spent unused.
            attempt.gated = False
            connection.close()
            raise _StaleConnection("the connection closed while the request waited for its quota")
        return connection


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # total and read are the attempt's own timer (it must stop while the gate waits);
    # aiohttp's connect covers the pool wait and the connection, sock_connect the connection.
    return aiohttp.ClientTimeout(
        total=None, connect=timeouts.pool, sock_connect=timeouts.connect, sock_read=None
    )


class AiohttpTransport:
    """The [`Transport`][insider_webpush.transport.Transport] over an aiohttp session.

    Redirects are never followed.

    Args:
        session: A session to borrow, never closed here. It must use a
            [`WireConnector`][insider_webpush.transport.WireConnector]
            (`aiohttp.ClientSession(connector=WireConnector(...))`), since the wire is
            observed through it. None (the default): the transport makes its own on first
            use, and closes it in `aclose`.
        timeouts: The timeouts of the transport's own session (its pool and keep-alive);
            `Timeouts()` when None.
        pool_size: Connections of the transport's own session, at least 1 (default
            [`DEFAULT_POOL_SIZE`][insider_webpush.transport.DEFAULT_POOL_SIZE], 100), each
            kept `timeouts.keepalive` seconds when idle.

    Raises:
        ValidationError: `session` does not use a `WireConnector`, or `pool_size` is not a
            whole number of at least 1.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeouts: Timeouts | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if session is not None and not isinstance(session.connector, WireConnector):
            raise ValidationError(
                "session",
                "must use insider_webpush.transport.WireConnector as its connector, e.g. "
                "aiohttp.ClientSession(connector=WireConnector(limit=100)): the SDK observes "
                "the wire through it",
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValidationError("pool_size", f"must be a whole number >= 1, got {pool_size!r}")
        self._session = session
        self._owns_session = session is None
        self._timeouts = timeouts if timeouts is not None else Timeouts()
        self._pool_size = pool_size
        # The ClientTimeout of the last Timeouts seen, by identity: a client passes the same
        # object on every request, and hashing it would cost more than building it.
        default = self._timeouts
        self._client_timeout = (default, _client_timeout(default))
        self._deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
            weakref.WeakKeyDictionary()
        )
        self._last_deadlines: _Deadlines | None = None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use (None until the first request when the transport makes it)."""
        return self._session

    def _session_for_request(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if not self._owns_session:
                raise RuntimeError("the session lent to the transport is closed")
            session = self._session = aiohttp.ClientSession(
                connector=WireConnector(
                    limit=self._pool_size, keepalive_timeout=self._timeouts.keepalive
                ),
                timeout=_client_timeout(self._timeouts),
            )
        return session

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        """Send `request` once and return its complete answer.

        Args:
            request: The request; exactly its bytes are sent.
            gate: Awaited once the connection is ready, immediately before the first byte.
            timeouts: The attempt's timeouts (`total` not counting the gate).

        Returns:
            The complete answer, whatever its status.

        Raises:
            TransportError: Any failure below HTTP (refused, reset, closed, a timeout), with
                the [`Stage`][insider_webpush.outcomes.Stage] the request reached and the key
                redacted from its message.
            RuntimeError: The session lent to the transport is closed.
        """
        session = self._session_for_request()
        cached = self._client_timeout
        if cached[0] is not timeouts:
            cached = self._client_timeout = (timeouts, _client_timeout(timeouts))
        loop = asyncio.get_running_loop()
        deadlines = self._last_deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines.get(loop)
            if deadlines is None:
                deadlines = self._deadlines[loop] = _Deadlines(loop)
            self._last_deadlines = deadlines
        attempt = _Attempt(gate, loop)
        tracker = aiohttp.UploadTracker()
        token = _ATTEMPT.set(attempt)
        deadlines.watch(attempt, timeouts.total, timeouts.read)
        error: TransportError
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=cached[1],
                allow_redirects=False,
                raise_for_status=False,  # a lent session's setting must not hide the status
                upload_tracker=tracker,
            ) as response:
                body = await response.read()
                return Response(response.status, response.headers, body)
        except (aiohttp.ClientError, OSError, _StaleConnection) as exc:
            error = _failure(attempt, tracker, exc, timeouts, request)
        except asyncio.CancelledError:
            task = attempt.task
            if not (attempt.expired and task is not None and task.uncancel() == 0):
                raise
            # Our deadline, not a cancellation from outside: a timeout at its stage.
            error = _failure(attempt, tracker, TimeoutError(), timeouts, request)
        finally:
            deadlines.forget(attempt)
            _ATTEMPT.reset(token)
        # Raised here, outside the handlers, so that aiohttp's exception (whose text a
        # misbehaving server may have filled with the key) is not kept as its __context__.
        raise error

    async def aclose(self) -> None:
        """Close the transport's own session; a borrowed one stays open."""
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None


def _stage(attempt: _Attempt, tracker: aiohttp.UploadTracker) -> Stage:
    if not attempt.gated:
        return Stage.NOT_SENT
    complete = tracker.upload_complete
    if not complete.done() or complete.cancelled():
        return Stage.WRITING  # the write never finished: Insider never had all of it
    if complete.exception() is None:
        return Stage.SENT  # the whole request was handed to the operating system
    # The write failed. Headers and body go in one write (bodies under aiohttp's 64 KiB
    # drain limit), so no payload byte in the kernel means no byte of the request at all:
    # aiohttp found the connection closing before it wrote.
    return Stage.NOT_SENT if tracker.bytes_written == 0 else Stage.WRITING


def _failure(
    attempt: _Attempt,
    tracker: aiohttp.UploadTracker,
    exc: BaseException,
    timeouts: Timeouts,
    request: Request,
) -> TransportError:
    stage = _stage(attempt, tracker)
    if stage is Stage.WRITING and attempt.transport is not None:
        # Part of the request still waits in the transport's buffer: a graceful close would
        # flush it and the server could yet get all of it. Dropping it keeps WRITING true.
        attempt.transport.abort()
    if isinstance(exc, TimeoutError):  # ours (total, read), or aiohttp's pool/connect ones
        what = f"timed out (timeouts: {_describe(timeouts)})"
    else:
        what = f"failed: {_plain(exc)}"
    where = {
        Stage.NOT_SENT: "before any byte of it was sent; it is safe to send again",
        Stage.WRITING: "while it was being written; Insider never had all of it",
        Stage.SENT: "after it was sent, with no complete answer: it may have been carried out",
    }[stage]
    message = f"the request {what}, {where}"
    # A server may echo the request into a malformed answer that aiohttp quotes.
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if secret:
        message = redact(message, secret)
    return TransportError(message, stage=stage)


def _plain(exc: BaseException) -> str:
    """What went wrong, in network terms rather than aiohttp's class names."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {exc.host}:{exc.port} was refused ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"could not connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"a network error ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


def _describe(timeouts: Timeouts) -> str:
    return (
        f"total {timeouts.total:g} s, pool {timeouts.pool:g} s, connect {timeouts.connect:g} s, "
        f"read {timeouts.read:g} s"
    )
