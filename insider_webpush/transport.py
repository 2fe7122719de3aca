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
aiohttp: its [`WireConnector`][insider_webpush.transport.WireConnector] runs the gate when
aiohttp hands it a connection, checks that a pooled connection is still open before and after
the gate (the keep-alive race: a server that closed an idle connection), and the request's
body, aiohttp's payload of bytes, records whether its bytes were handed over in full. A
request on one of the transport's own sessions is made on the session's connector, as
`ClientSession.request` makes it but without the plumbing the SDK never uses (cookies,
redirects, traces, middlewares, a timer: about 15 % of a request's cost); a lent session's
requests go through its `request`, which honours its settings. Tests, FakeInsider's
in-process mode and the benchmarks implement the same protocol.

An aiohttp session works only in the event loop that made it, so `AiohttpTransport` makes
one per event loop it is used in (successive `asyncio.run` calls, threads that each run a
loop), and closes each one when its loop shuts down through `asyncio.run` or
`asyncio.Runner` (`insider_webpush._loops`).

Proxies: an explicit `proxy=` URL, or else `HTTPS_PROXY`/`HTTP_PROXY` and `NO_PROXY` (and
their lower-case forms) read as `urllib.request` reads them, once per session, when the
session is made. The proxy's credentials go in a `Proxy-Authorization` header and are in no
message; the gate still runs once the tunnel is open, immediately before the first byte of
the request.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import contextvars
import inspect
import math
import select
import threading
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable
from urllib.parse import SplitResult, unquote, urlsplit

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import TimerNoop
from yarl import URL

from ._loops import LoopCloseHandle, on_loop_close
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

    def __repr__(self) -> str:
        # The headers hold the key: a repr (a log line, a traceback's locals) names them only.
        names = ", ".join(self.headers)
        return (
            f"Request(method={self.method!r}, url={self.url!r}, body=<{len(self.body)} bytes>, "
            f"headers=<{names}>)"
        )


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
        "wire",
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
        self.wire = _UNWRITTEN  # how far the write of the request's bytes got

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

# How far the write of a request's bytes got (`_Attempt.wire`), set by its `_WireBody`.
_UNWRITTEN: Final = 0  # not begun, or refused by aiohttp on a closing connection: no byte
_WRITING: Final = 1  # handed to the connection, its write not over (e.g. waiting to drain)
_WRITTEN: Final = 2  # every byte handed to the connection
# The most aiohttp writes in one `transport.write` without waiting for it to drain (its
# StreamWriter's LIMIT): up to this, the request line, headers and body go in one send.
_ONE_WRITE: Final = 0x10000


class _WireBody(aiohttp.BytesPayload):
    """A request's bytes as aiohttp's own payload of bytes (the one it makes of `data=`
    bytes), recording on the attempt how far their write got.

    aiohttp writes the buffered request line and headers together with the body, in one
    write, when the body is written: so nothing of the request is on the wire before this
    write begins, and all of it is handed to the connection once it returns.
    """

    def __init__(self, body: bytes, attempt: _Attempt) -> None:
        super().__init__(body)
        self._attempt = attempt

    async def write_with_length(
        self,
        writer: aiohttp.abc.AbstractStreamWriter,
        content_length: int | None,
    ) -> None:
        attempt = self._attempt
        transport = writer.transport
        # aiohttp refuses to write to a closing connection, and raises before writing.
        if transport is not None and not transport.is_closing():
            attempt.wire = _WRITING
        before = writer.output_size
        await super().write_with_length(writer, content_length)
        transport = writer.transport
        if (transport is None or transport.is_closing()) and (
            writer.output_size - before <= _ONE_WRITE
        ):
            # asyncio's transports report a send the operating system refused (a reset
            # connection) by closing, not by raising; a request of one write (aiohttp waits
            # for no drain) had its one send refused: no byte of it left.
            attempt.wire = _UNWRITTEN
            return
        attempt.wire = _WRITTEN


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
        attempt.task = asyncio.current_task(self.loop)  # the loop given: no lookup of it
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
_HAS_POLL: Final = hasattr(select, "poll")  # not on Windows
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
    if not _POLL_MASK or not _HAS_POLL:
        return False
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), _POLL_MASK)
    return bool(poller.poll(0))


class _WireFault(Exception):
    """A failure the transport itself finds; its text is said as it is."""


class _StaleConnection(_WireFault):
    pass


class _NotResent(_WireFault):
    """aiohttp's session resending, on its own, a request whose connection failed (it does so
    once for an idempotent method, e.g. DELETE): refused before a second grant is taken, so
    the attempt ends at the stage its one request reached and the retry policy decides."""


class _GateError(Exception):
    """Carries an OSError the gate raised past the transport's handlers of network errors."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


class WireConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that holds each SDK request at the wire for its gate.

    For a request sent by [`AiohttpTransport`][insider_webpush.transport.AiohttpTransport],
    `connect` gets a connection as usual (waiting for a free one in the pool or opening one),
    skips a pooled one the server has closed, runs the request's gate, and checks the
    connection again: aiohttp then writes the request at once. Other requests pass through
    untouched, so one connector can serve the SDK and the rest of an application. Takes
    `aiohttp.TCPConnector`'s arguments, e.g. `WireConnector(limit=100)`; a session lent to
    the client with `session=` must use one. Like any aiohttp connector it belongs to the
    event loop it is made in.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # aiohttp's own record of it (`loop`) is deprecated: a lent session is checked
        # against this before it is used from another loop.
        self._home_loop: asyncio.AbstractEventLoop = (
            kwargs.get("loop") or asyncio.get_running_loop()
        )

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Any:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return await super().connect(req, traces, timeout)
        if attempt.gated:
            raise _NotResent("the connection broke")
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
        except BaseException as exc:
            connection.release()  # untouched: back to the pool
            if isinstance(exc, OSError) and attempt.in_gate:
                # The gate's own failure (e.g. the journal's disk is full), not the wire's:
                # it must reach the caller as it is, not as a network error.
                raise _GateError(exc) from None
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


# -- proxies ------------------------------------------------------------------------------

_PROXY_RULE: Final = (
    "must be the proxy's http:// or https:// URL: a host, an optional port from 1 to 65535 "
    "and optional user:password, nothing else, e.g. http://user:password@proxy.example.com:3128"
)


class _Proxy:
    """A proxy: its URL without credentials, and the `Proxy-Authorization` they make.

    The credentials are kept out of the URL handed to aiohttp (which quotes it in some of
    its messages) and out of every `repr`: only `where`, the proxy's host:port, is shown.
    """

    __slots__ = ("authorization", "secrets", "url", "where")

    def __init__(self, value: object, field: str) -> None:
        if not isinstance(value, str):
            raise ValidationError(field, f"{_PROXY_RULE}; got a {type(value).__name__}")
        try:
            parts = urlsplit(value.strip())
            host = parts.hostname
            port = parts.port
        except ValueError:  # a bad port, or a malformed [IPv6] host
            raise ValidationError(field, _PROXY_RULE) from None
        if parts.scheme not in ("http", "https") or not host:
            raise ValidationError(field, _PROXY_RULE)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValidationError(field, f"{_PROXY_RULE}: no path, query or fragment")
        if port == 0 or parts.netloc.endswith(":"):
            raise ValidationError(field, f"{_PROXY_RULE}: the port must be 1 to 65535")
        self.url = URL.build(scheme=parts.scheme, host=host, port=port)
        shown_host = f"[{host}]" if ":" in host else host
        self.where = f"{shown_host}:{port or {'http': 80, 'https': 443}[parts.scheme]}"
        self.authorization: str | None = None
        self.secrets: tuple[str, ...] = ()
        if parts.username is not None or parts.password is not None:
            user = unquote(parts.username or "")
            password = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.authorization = f"Basic {token}"
            raw = parts.password or ""
            # Every form the password may take in a message: as given, decoded, encoded.
            self.secrets = tuple(s for s in {password, raw, token} if s)

    def __repr__(self) -> str:
        return f"<proxy {self.where}>"


class _Route:
    """How requests to one origin (`prefix`, `scheme://host[:port]/`) go out.

    `proxy` None: directly. Otherwise through it: an https:// origin through a CONNECT
    tunnel (the credentials go on the CONNECT), an http:// one as an absolute-URI request
    to the proxy (the credentials go on the request itself).
    """

    __slots__ = ("_merged", "plain", "prefix", "proxy", "proxy_headers", "proxy_url")

    def __init__(self, prefix: str, proxy: _Proxy | None, plain: bool) -> None:
        self.prefix = prefix
        self.proxy = proxy
        self.plain = plain and proxy is not None  # sent to the proxy as it is, no tunnel
        self.proxy_url = proxy.url if proxy is not None else None
        auth = proxy.authorization if proxy is not None else None
        self.proxy_headers = {"Proxy-Authorization": auth} if auth and not self.plain else None
        # The request's headers with Proxy-Authorization added, by the identity of the
        # request's: a client passes the same mapping on every request.
        self._merged: tuple[Mapping[str, str] | None, Mapping[str, str]] = (None, {})

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The request's headers, with the proxy's credentials when it is sent as it is."""
        auth = self.proxy.authorization if self.plain and self.proxy is not None else None
        if auth is None:
            return headers
        merged = self._merged
        if merged[0] is not headers:
            merged = self._merged = (headers, {**headers, "Proxy-Authorization": auth})
        return merged[1]


_UNRESOLVED: Final = _Route("\0", None, plain=False)  # no URL starts with NUL: resolve it


class _Router:
    """The proxy of each origin: `explicit` for every one, or else the environment's.

    The environment (`getproxies_environment`: `https_proxy`, `HTTP_PROXY`, ... with
    `no_proxy`) is read once, when the router is made, and each origin is decided once.
    """

    __slots__ = ("_env", "_explicit", "_routes")

    def __init__(self, explicit: _Proxy | None, env: Mapping[str, str]) -> None:
        self._explicit = explicit
        self._env = env
        self._routes: dict[str, _Route] = {}

    @classmethod
    def make(cls, explicit: _Proxy | None, *, read_env: bool) -> _Router | None:
        """A router, or None when every request goes directly (nothing to decide)."""
        env: Mapping[str, str] = {}
        if explicit is None and read_env:
            env = urllib.request.getproxies_environment()
            if not env.get("http") and not env.get("https"):
                return None
        elif explicit is None:
            return None
        return cls(explicit, env)

    def route(self, url: str) -> _Route:
        parts = urlsplit(url)
        end = url.find("/", len(parts.scheme) + 3)
        prefix = url[: end + 1] if end >= 0 else ""  # "": not cached, as no prefix is safe
        route = self._routes.get(prefix) if prefix else None
        if route is None:
            route = _Route(
                prefix or "\0", self._proxy_for(parts.scheme, parts), parts.scheme == "http"
            )
            if prefix:
                self._routes[prefix] = route
        return route

    def _proxy_for(self, scheme: str, parts: SplitResult) -> _Proxy | None:
        if self._explicit is not None:
            return self._explicit  # as requests does: an explicit proxy ignores NO_PROXY
        value = self._env.get(scheme)
        if not value:
            return None
        hostport = parts.netloc.rpartition("@")[2].lower()
        # urllib's NO_PROXY matching, which requests uses too (not in typeshed).
        if urllib.request.proxy_bypass_environment(hostport, self._env):  # type: ignore[attr-defined]
            return None
        if "://" not in value:  # "proxy:3128", as requests and curl read it
            value = f"http://{value}"
        return _Proxy(value, f"{scheme.upper()}_PROXY (from the environment)")


# -- one exchange on aiohttp's connection -------------------------------------------------
#
# `ClientSession.request` wraps every request in plumbing the transport's own sessions never
# use: default headers, cookies, auth, netrc, traces, middlewares, a timer, redirects and
# a retry of idempotent methods. Measured under callgrind, that plumbing is about 60 000
# instructions a request, some 15 % of one: so an own session's request is made the way its
# `_connect_and_send_request` makes it, on the connector the session owns, with the response
# settings the session would give. A lent session keeps `session.request`, which honours its
# settings (its traces and middlewares included), and so does any aiohttp whose API for this
# differs from the one checked below (`_direct_settings`).

_NO_TIMER: Final = TimerNoop()  # total=None: aiohttp's session gives the same
_DIRECT_AIOHTTP: Final = ("3.14.",)  # checked: 3.14.4 and 3.14.5 (the same steps)


def _direct_settings(session: aiohttp.ClientSession) -> dict[str, Any] | None:
    """What `set_response_params` gets from `session` for each of its requests; None when
    this aiohttp's API for an exchange is not the one `_exchange` drives (then the session's
    `request` is used).

    Only the aiohttp releases `_exchange` was checked against (`_DIRECT_AIOHTTP`, whose
    `_connect_and_send_request` it follows step by step) are driven directly: a later one may
    add a step, or a setting with a default, that the signatures below would not reveal.
    """
    if not aiohttp.__version__.startswith(_DIRECT_AIOHTTP):
        return None
    try:
        connector = session.connector
        settings: dict[str, Any] = {
            "read_until_eof": True,
            "auto_decompress": session.auto_decompress,
            "read_timeout": None,  # the attempt's own deadline
            "read_bufsize": session._read_bufsize,
            "timeout_ceil_threshold": connector._timeout_ceil_threshold,  # type: ignore[union-attr]
            "max_line_size": session._max_line_size,
            "max_field_size": session._max_field_size,
            "max_headers": session._max_headers,
        }
        inspect.signature(ResponseHandler.set_response_params).bind(
            None, timer=_NO_TIMER, skip_payload=False, **settings
        )
        inspect.signature(aiohttp.ClientRequest).bind(
            "POST",
            URL(),
            headers=None,
            data=None,
            loop=None,
            session=session,
            timer=_NO_TIMER,
            traces=[],
            proxy=None,
            proxy_headers=None,
        )
        if not all(
            inspect.iscoroutinefunction(f)
            for f in (aiohttp.ClientRequest.send, aiohttp.ClientResponse.start, connector.connect)  # type: ignore[union-attr]
        ):
            return None
    except (AttributeError, TypeError):
        return None
    return settings


def _parse_url(url: str) -> URL:
    """`url` as yarl's URL (aiohttp refuses one with no host or another scheme itself).

    Raises:
        ValueError: The URL holds credentials (`user:password@`), which aiohttp would send
            in place of the request's `Authorization` header; `session.request` refuses them
            too. The message does not repeat the URL.
    """
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise aiohttp.InvalidUrlClientError(url) from exc
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise ValueError(
            "the request's URL holds credentials (user:password@); the request's own "
            "Authorization header is sent, never a URL's"
        )
    return parsed


async def _exchange(
    state: _LoopState,
    method: str,
    url: URL,
    data: aiohttp.BytesPayload,
    headers: Mapping[str, str],
    route: _Route | None,
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's pool and connect timeouts
) -> aiohttp.ClientResponse:
    """One request and its answer's head, as `ClientSession._request` makes them, without
    its plumbing; the body is then read with `read()`, which releases the connection."""
    traces: list[Any] = []  # none: one list for the request and the connector, as aiohttp's
    request = aiohttp.ClientRequest(
        method,
        url,
        headers=headers,
        data=data,
        loop=state.loop,
        session=state.session,
        timer=_NO_TIMER,
        traces=traces,
        proxy=route.proxy_url if route is not None else None,
        proxy_headers=route.proxy_headers if route is not None else None,
    )
    connector = state.session.connector
    assert connector is not None
    assert state.direct is not None
    connection = await connector.connect(request, traces=traces, timeout=timeout)
    protocol = connection.protocol
    assert protocol is not None
    skip_payload = request.method == "HEAD"  # upper-cased by ClientRequest
    protocol.set_response_params(timer=_NO_TIMER, skip_payload=skip_payload, **state.direct)
    try:
        response = await request.send(connection)
        try:
            await response.start(connection)
        except BaseException:
            response.close()
            raise
    except BaseException:
        connection.close()
        raise
    return response


# -- one event loop's session -----------------------------------------------------------------


class _LoopState:
    """What the transport keeps for one event loop: its session, deadlines and routes."""

    __slots__ = ("close_handle", "deadlines", "direct", "loop", "route", "router", "session", "url")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        router: _Router | None,
        *,
        own: bool,
    ) -> None:
        self.loop = loop
        self.session = session
        self.deadlines = _Deadlines(loop)
        self.router = router
        self.route = None if router is None else _UNRESOLVED  # the last origin's route
        self.close_handle: LoopCloseHandle | None = None  # an own session's: closes it
        # An own session's exchanges skip its plumbing (`_exchange`); a lent one's do not.
        self.direct = _direct_settings(session) if own else None
        self.url = ("", URL())  # the last request's URL, parsed once


_OTHER_LOOPS_CLOSE_WAIT: Final = 5.0  # seconds aclose waits for sessions of other loops


def _close_now(session: aiohttp.ClientSession) -> None:
    """Close a session whose event loop is closed, without that loop.

    aiohttp closes nothing on a closed loop, so `close()` finishes without suspending; a
    session that still would is detached instead (it then counts as closed). Its sockets
    were left open by whoever closed the loop, and asyncio warns about them when they are
    collected.
    """
    closing = session.close()
    try:
        closing.send(None)
    except StopIteration:
        return
    except Exception:  # aiohttp failed on the closed loop: detach, all that is left
        pass
    closing.close()
    session.detach()


_closing_tasks: set[asyncio.Task[None]] = set()  # kept until done, as asyncio asks


def _close_in(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, handle: LoopCloseHandle | None
) -> concurrent.futures.Future[None]:
    """Close `session` in `loop`, running in another thread; done when it is closed."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def finish(task: asyncio.Task[None]) -> None:
        _closing_tasks.discard(task)
        if handle is not None:
            handle.cancel()
        done.set_result(None)

    def start() -> None:
        # The coroutine is made only here, in its loop: a loop that stops before running
        # this leaves no coroutine un-awaited (its shutdown closes the session instead).
        task = loop.create_task(session.close())
        _closing_tasks.add(task)
        task.add_done_callback(finish)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # closed in the meantime
        _close_now(session)
        done.set_result(None)
    return done


class AiohttpTransport:
    """The [`Transport`][insider_webpush.transport.Transport] over aiohttp sessions.

    Redirects are never followed. The transport makes its own session in each event loop it
    is used in, on first use there (successive `asyncio.run` calls, or threads that each run
    a loop, all work), and closes it when that loop shuts down through `asyncio.run` or
    `asyncio.Runner`, or in `aclose`. Its own sessions keep no cookies (each request stands
    alone: a load balancer's sticky cookie is not sent back). A lent session's requests go
    through its `request`, with its traces, middlewares, default headers and cookies. No
    session resends a request by itself (aiohttp's session would resend an idempotent one,
    e.g. a DELETE, whose connection failed, taking a second grant): only the client's retry
    policy resends, and a URL holding credentials (`user:password@`) is refused
    (`ValueError`), as its Basic auth would replace the request's key.

    Proxies: `proxy` when given, for every request; otherwise the environment's
    `HTTPS_PROXY` (https:// URLs) or `HTTP_PROXY` (http:// URLs), bypassed for the hosts of
    `NO_PROXY` (lower-case names win; loopback hosts included only when listed there), read
    when a session is made. A lent `session` uses `proxy` when given and its own settings
    otherwise.

    Args:
        session: A session to borrow, never closed here. It must use a
            [`WireConnector`][insider_webpush.transport.WireConnector]
            (`aiohttp.ClientSession(connector=WireConnector(...))`), since the wire is
            observed through it, and it works only in the event loop it was made in. None
            (the default): the transport makes its own, one per event loop.
        timeouts: The timeouts of the transport's own sessions (their pool and keep-alive);
            `Timeouts()` when None.
        pool_size: Connections of each of the transport's own sessions, at least 1 (default
            [`DEFAULT_POOL_SIZE`][insider_webpush.transport.DEFAULT_POOL_SIZE], 100), each
            kept `timeouts.keepalive` seconds when idle.
        proxy: The proxy every request goes through, `http://[user:password@]host[:port]`
            (or `https://`); its credentials are never logged or shown. None (the default):
            the environment's, as above.

    Raises:
        ValidationError: `session` does not use a `WireConnector`, `pool_size` is not a
            whole number of at least 1, or `proxy` is not a proxy URL (the message never
            repeats it).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeouts: Timeouts | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        proxy: str | None = None,
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
        self._proxy = _Proxy(proxy, "proxy") if proxy is not None else None
        self._lent = session
        self._timeouts = timeouts if timeouts is not None else Timeouts()
        self._pool_size = pool_size
        # The ClientTimeout of the last Timeouts seen, by identity: a client passes the same
        # object on every request, and hashing it would cost more than building it.
        default = self._timeouts
        self._client_timeout = (default, _client_timeout(default))
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._last: _LoopState | None = None  # the last loop's: the one lookup of a request
        self._lock = threading.Lock()  # loops in several threads may make sessions at once

    def __repr__(self) -> str:
        proxy = f", proxy={self._proxy!r}" if self._proxy is not None else ""
        return f"<AiohttpTransport sessions={len(self._states)}{proxy}>"

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use: the lent one; or the transport's own of the running event
        loop, else of the loop that sent last (None before the first request, after
        `aclose`, and once that loop has shut down)."""
        state = self._last
        with contextlib.suppress(RuntimeError):  # no running loop: the last one's
            state = self._states.get(asyncio.get_running_loop(), state)
        return state.session if state is not None else self._lent

    @property
    def holds_connections(self) -> bool:
        """One of the transport's own sessions, of any event loop, is still open."""
        with self._lock:
            states = list(self._states.values())
        return self._lent is None and any(not state.session.closed for state in states)

    def _state_for(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        """The state of `loop`, made on its first request there (the slow path)."""
        with self._lock:
            state = self._states.get(loop)
            if state is None or state.session.closed:
                state = self._states[loop] = self._new_state(loop)
            self._last = state
            return state

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        lent = self._lent
        if lent is not None:
            if lent.closed:
                raise RuntimeError("the session lent to the transport is closed")
            if getattr(lent.connector, "_home_loop", loop) is not loop:
                raise TransportError(
                    "the aiohttp session lent to WebPushClient belongs to another event "
                    "loop; nothing was sent. Lend a session made in the event loop that "
                    "sends, or lend none: the client then makes its own in each loop",
                    stage=Stage.NOT_SENT,
                )
            return _LoopState(loop, lent, _Router.make(self._proxy, read_env=False), own=False)
        self._forget_closed_loops()
        session = aiohttp.ClientSession(
            connector=WireConnector(
                limit=self._pool_size, keepalive_timeout=self._timeouts.keepalive
            ),
            timeout=_client_timeout(self._timeouts),
        )
        state = _LoopState(loop, session, _Router.make(self._proxy, read_env=True), own=True)
        transport = weakref.ref(self)  # the loop's shutdown must not keep the client alive

        async def close_at_loop_end() -> None:
            owner = transport()
            if owner is not None:
                owner._forget(state)
            await session.close()

        state.close_handle = on_loop_close(close_at_loop_end)
        return state

    def _forget(self, state: _LoopState) -> None:
        with self._lock:
            if self._states.get(state.loop) is state:
                del self._states[state.loop]
            if self._last is state:
                self._last = None

    def _forget_closed_loops(self) -> None:
        """Drop the sessions of loops closed without shutting down (`loop.close()` alone):
        they can never be used or closed in their loop again."""
        for loop, state in list(self._states.items()):
            if loop.is_closed():
                del self._states[loop]
                if self._last is state:
                    self._last = None
                if state.close_handle is not None:
                    state.close_handle.cancel()
                _close_now(state.session)

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        """Send `request` once and return its complete answer.

        Args:
            request: The request; exactly its bytes are sent.
            gate: Awaited once the connection is ready, immediately before the first byte.
            timeouts: The attempt's timeouts (`total` not counting the gate).

        Returns:
            The complete answer, whatever its status.

        Raises:
            TransportError: Any failure below HTTP (refused, reset, closed, a timeout, a
                proxy unreachable or refusing), with the
                [`Stage`][insider_webpush.outcomes.Stage] the request reached and the key
                and the proxy's credentials redacted from its message; also, with stage
                `NOT_SENT`, a lent session used from another event loop than its own.
            RuntimeError: The session lent to the transport is closed.
        """
        loop = asyncio.get_running_loop()
        state = self._last
        if state is None or state.loop is not loop or state.session.closed:
            state = self._state_for(loop)
        cached = self._client_timeout
        if cached[0] is not timeouts:
            cached = self._client_timeout = (timeouts, _client_timeout(timeouts))
        route = state.route
        headers = request.headers
        if route is not None:
            if not request.url.startswith(route.prefix):
                assert state.router is not None
                route = state.route = state.router.route(request.url)
            headers = route.headers(headers)
        deadlines = state.deadlines
        attempt = _Attempt(gate, loop)
        token = _ATTEMPT.set(attempt)
        deadlines.watch(attempt, timeouts.total, timeouts.read)
        error: TransportError
        try:
            # Awaited rather than `async with` (two coroutines fewer on every request):
            # aiohttp's read() releases the connection at the body's end and closes it on
            # any failure, a cancellation included, which is all the context did here.
            payload = _WireBody(request.body, attempt)
            if state.direct is not None:
                url = state.url
                if url[0] != request.url:
                    url = state.url = (request.url, _parse_url(request.url))
                response = await _exchange(
                    state, request.method, url[1], payload, headers, route, cached[1]
                )
            else:
                response = await state.session.request(
                    request.method,
                    request.url,
                    data=payload,
                    headers=headers,
                    timeout=cached[1],
                    allow_redirects=False,
                    raise_for_status=False,  # a lent session's setting must not hide it
                    proxy=route.proxy_url if route is not None else None,
                    proxy_headers=route.proxy_headers if route is not None else None,
                )
            body = await response.read()
            if response.status != 407 or route is None or not route.plain:
                return Response(response.status, response.headers, body)
            # The proxy refused to forward a plain http:// request (407 is the proxy's own
            # status; through a CONNECT tunnel it would be the server's): it went no further.
            assert route.proxy is not None
            error = _proxy_refused(route.proxy, 407)
        except _GateError as failed:
            raise failed.error from None  # as the gate raised it: nothing was written
        except (aiohttp.ClientError, OSError, _WireFault) as exc:
            error = _failure(attempt, exc, timeouts, request, route)
        except asyncio.CancelledError:
            task = attempt.task
            if not (attempt.expired and task is not None and task.uncancel() == 0):
                raise
            # Our deadline, not a cancellation from outside: a timeout at its stage.
            error = _failure(attempt, TimeoutError(), timeouts, request, route)
        finally:
            deadlines.forget(attempt)
            _ATTEMPT.reset(token)
        # Raised here, outside the handlers, so that aiohttp's exception (whose text a
        # misbehaving server may have filled with the key) is not kept as its __context__.
        raise error

    async def aclose(self) -> None:
        """Close the transport's own sessions; a borrowed one stays open.

        The session of the running loop is closed here; those of loops running in other
        threads are closed in their loops (waiting at most 5 s for them); those of closed
        loops are dropped; those of loops that are not running are closed when their loop
        shuts down. The transport may be used again: it then makes new sessions.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            states = list(self._states.values())
            self._states.clear()
            self._last = None
        if self._lent is not None:
            return
        others: list[concurrent.futures.Future[None]] = []
        for state in states:
            handle = state.close_handle
            if state.loop is loop:
                if handle is not None:
                    handle.cancel()
                await state.session.close()
            elif state.loop.is_closed():
                if handle is not None:
                    handle.cancel()
                _close_now(state.session)
            elif state.loop.is_running():
                others.append(_close_in(state.loop, state.session, handle))
        if others:
            await asyncio.wait(
                [asyncio.wrap_future(f) for f in others], timeout=_OTHER_LOOPS_CLOSE_WAIT
            )


def _stage(attempt: _Attempt) -> Stage:
    if not attempt.gated:
        return Stage.NOT_SENT
    wire = attempt.wire
    if wire == _WRITTEN:
        return Stage.SENT  # the whole request was handed to the connection
    if wire == _WRITING:
        return Stage.WRITING  # the write never finished: Insider never had all of it
    # Past the gate, but the write never began, or aiohttp found the connection closing and
    # wrote nothing: the request line and headers wait in aiohttp's buffer for the body.
    return Stage.NOT_SENT


def _failure(
    attempt: _Attempt,
    exc: BaseException,
    timeouts: Timeouts,
    request: Request,
    route: _Route | None,
) -> TransportError:
    stage = _stage(attempt)
    if stage is Stage.WRITING and attempt.transport is not None:
        # Part of the request still waits in the transport's buffer: a graceful close would
        # flush it and the server could yet get all of it. Dropping it keeps WRITING true.
        attempt.transport.abort()
    proxy = route.proxy if route is not None else None
    if isinstance(exc, TimeoutError):  # ours (total, read), or aiohttp's pool/connect ones
        what = f"timed out (timeouts: {_describe(timeouts)})"
    else:
        what = f"failed: {_plain(exc, proxy)}"
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
    if proxy is not None:
        for secret in proxy.secrets:
            message = redact(message, secret)
    return TransportError(message, stage=stage)


def _proxy_refused(proxy: _Proxy, status: int) -> TransportError:
    return TransportError(
        f"the request failed: {_refusal(proxy, status)}, before any byte of it reached "
        "Insider; it is safe to send again",
        stage=Stage.NOT_SENT,
    )


def _refusal(proxy: _Proxy, status: int) -> str:
    # The proxy's own reason phrase is not quoted: it may echo what it was sent.
    try:
        phrase = f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = f"HTTP {status}"
    hint = " (check the proxy's user name and password)" if status == 407 else ""
    return f"the proxy {proxy.where} refused it: {phrase}{hint}"


def _plain(exc: BaseException, proxy: _Proxy | None = None) -> str:
    """What went wrong, in network terms rather than aiohttp's class names."""
    if isinstance(exc, _WireFault):
        return str(exc)
    if isinstance(exc, aiohttp.ClientHttpProxyError) and proxy is not None:
        return _refusal(proxy, exc.status)  # the CONNECT was answered with an error
    if isinstance(exc, aiohttp.ClientProxyConnectionError) and proxy is not None:
        reason = exc.os_error.strerror or str(exc.os_error)
        return f"could not connect to the proxy {proxy.where} ({reason})"
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
