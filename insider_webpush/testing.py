"""``FakeInsider``: a real HTTP server on 127.0.0.1 that speaks Insider's Single Web Push API.

Use it to test code that launches pushes without an Insider account or a network: it checks
the API key, the body of every request (with the SDK's own models, so its limits are the
SDK's), keeps each operation's sliding-window quota and answers ``429`` with
``Retry-After`` when it is exceeded, injects faults on demand, and records every request.

In pytest (with pytest-asyncio)::

    import pytest
    from insider_webpush import FakeInsider, Fault, WebPush

    @pytest.fixture
    async def fake():
        async with FakeInsider(rate_limit=50, rate_period=0.5) as server:  # 50 per 0.5 s
            yield server

    async def test_launch(fake):
        async with fake.client() as client:  # a WebPushClient aimed at the fake
            result = await client.send(
                WebPush(title="Sale", description="50% off", ttl=3600,
                        image="https://example.com/i.png", link="https://example.com")
            )
        assert fake.launches[0].body["title"] == "Sale"
        assert fake.launches[0].campaign_id == result.campaign_id

    async def test_flaky_insider(fake):
        fake.faults.append(Fault(status=503, at={0}))    # the first request gets a 503
        fake.faults.append(Fault(drop=True, probability=0.1))  # 10 % lose their connection
        ...

``fake.client()`` is ``WebPushClient(fake.api_key, partner_id=fake.partner_id,
base_url=fake.base_url, rate_limit=fake.rate_limit, rate_period=fake.rate_period)``; pass any
other ``WebPushClient`` argument to it. Without pytest, ``async with FakeInsider() as fake:``
works the same, and ``await fake.serve_forever()`` serves until cancelled (the
``insider-webpush fake-server`` command does that).

What it enforces
----------------
- ``POST /v1/single`` creates a draft (body ``partner_id``, ``title``, optional ``language``
  and ``is_all``) and answers ``201 {"success": true, "campaign_id": N}``. Titles of the drafts
  that exist must be unique: a duplicate is a ``400``; deleting a draft frees its title.
- ``POST /v2/single/{campaign_id}`` and ``POST /v1/single/{campaign_id}`` launch a push and
  answer ``200 {"success": true, "campaign_id": N}``. ``{campaign_id}`` is either a draft's id
  or the literal text ``campaign_id`` (as in Insider's samples), which gets a fresh id. Any
  other id is ``424 {"message": "SERVICE:-Campaign not found"}``. A draft may be launched more
  than once; each launch is recorded, so a test can see a double launch.
- ``DELETE /v1/single/{campaign_id}`` (body ``partner_id``) deletes a draft: ``200``, or
  ``424`` when there is no such draft.
- Every request needs ``Authorization: Bearer <api_key>`` (else ``401 {"message":
  "Unauthorized"}``) and a JSON body sent as ``Content-Type: application/json``. A launch body
  is read with :func:`insider_webpush.push_from_dict`, so any rule of :class:`WebPush` that it
  breaks is a ``400 {"message": "<field>: <reason>"}``; a ``partner_id`` that is missing or not
  the fake's own is a ``400`` too. Unknown paths are ``404``, a known path with another method
  ``405``.

The checks run in this order: route, key, quota, body, campaign id.

Quota
-----
Each operation has its own sliding window: launch v2 ``rate_limit`` per ``rate_period`` seconds,
and create, launch v1 and delete ``v1_rate_limit`` per ``v1_rate_period`` each. A request that
arrives when the last ``rate_period`` seconds (the half-open interval ``(now - period, now]``)
already hold ``rate_limit`` *accepted* requests of its operation is answered
``429 {"message": "Request limit exceeded"}`` with ``Retry-After`` set to the seconds until the
oldest of them leaves the window, rounded up to the millisecond (e.g. ``"0.251"``).
A request is *accepted* when it gets past the quota check, whatever comes after it (a bad body
or an unknown campaign still uses a slot, as at a gateway that counts before the service
looks at the body). ``401``\\s, ``429``\\s and faulted requests that were not processed take no
slot. Times are the event loop's clock (``loop.time()``), the clock the SDK's limiter uses.
``enforce_quota=False`` turns the 429s off. :meth:`FakeInsider.max_in_window` counts every
arrival, rejected or not, so a test can check that a client never *sent* more than its quota.

Faults
------
``faults`` is a list of :class:`Fault`, checked in order for every request after its arrival
is recorded; the first that matches applies. A fault matches a request when its
``operation`` is None or the request's, its ``at`` is None or holds the request's index
(0-based, over every request the server received), and, when ``probability`` is above 0, a
draw of the ``seed``-ed random generator falls below it. A fault with neither ``at`` nor a
``probability`` matches every request. What a matching fault does:

- ``status=N`` answers ``N`` with ``{"message": ...}`` (a ``429`` carries ``Retry-After`` when
  ``retry_after`` is set) instead of processing the request: no key, quota or body check,
  nothing created or launched.
- ``drop=True`` closes the connection without an answer: the client sees the server
  disconnect (``aiohttp.ServerDisconnectedError``); the record's ``status`` is ``None``.
- ``processed=True`` (with ``status`` or ``drop``) first processes the request as if there were
  no fault, so a launch that would have succeeded is carried out and recorded in
  ``launches``, then answers with the fault: Insider launched the push, the client cannot tell.
- ``latency=S`` waits ``S`` seconds before answering. With neither ``status`` nor ``drop`` the
  request is processed normally when it arrives and the answer is late, so a client that
  times out has still launched the push. :meth:`FakeInsider.close` cuts such waits short.

Records
-------
``requests`` holds a :class:`RecordedRequest` for every request in order of arrival (when its
body was read), ``launches`` those launches that were carried out. The ``Authorization`` header
is stored as ``Bearer <redacted>``. Byte-identical bodies share one decoded object: treat
``body`` as read-only. A record with a distinct launch body costs about 0.6 KB, so a run of
100,000 requests keeps about 60 MB.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import math
import random
import sys
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import urlsplit

import attrs
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from .client import WebPushClient
from .codec import (
    draft_from_dict,
    error_body,
    partner_id_from_delete_body,
    push_from_dict,
    result_to_body,
)
from .endpoints import ENDPOINTS, LITERAL_CAMPAIGN_ID, Operation
from .errors import TransportError, ValidationError
from .models import Draft, LaunchResult, Timeouts
from .outcomes import Stage
from .transport import Gate, Request, Response, Transport

__all__ = ["FakeInsider", "Fault", "RecordedRequest"]

logger = logging.getLogger("insider_webpush.testing")

_REDACTED_AUTHORIZATION: Final = "Bearer <redacted>"
_FIRST_CAMPAIGN_ID: Final = 1001
_LAUNCHES = frozenset({Operation.LAUNCH_V1, Operation.LAUNCH_V2})
_JSON: Final = "application/json"
_CACHE_SIZE: Final = 4096  # distinct bodies / header sets remembered; cleared when full
_SHUTDOWN_TIMEOUT: Final = 1.0  # seconds close() gives a handler still running
_MAX_TEXT_BODY: Final = 1000  # characters of a non-JSON body kept in its record

_DEFAULT_MESSAGES: Final[Mapping[int, str]] = {
    401: "Unauthorized",
    424: "SERVICE:-",
    429: "Request limit exceeded",
}


def _message_for(status: int) -> str:
    message = _DEFAULT_MESSAGES.get(status)
    if message is not None:
        return message
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def _indices(value: Iterable[int] | int | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset({value}) if isinstance(value, int) else frozenset(value)


def _check_indices(
    _inst: object, _attr: attrs.Attribute[Any], value: frozenset[int] | None
) -> None:
    if value is not None and any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in value
    ):
        raise ValueError(f"at must hold request indices (ints >= 0), got {sorted(value)!r}")


def _check_seconds(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (
        isinstance(value, int | float) and math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{attr.name} must be a finite number of seconds >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """A misbehaviour for :class:`FakeInsider` to inject; see the module docs for the rules.

    ``Fault(status=500, at={3})`` answers the fourth request with a 500,
    ``Fault(drop=True, probability=0.01)`` drops 1 % of connections, and
    ``Fault(status=500, processed=True, operation=Operation.LAUNCH_V2, probability=0.05)``
    launches 5 % of pushes and still answers 500.
    """

    status: int | None = attrs.field(default=None)
    drop: bool = False
    latency: float = attrs.field(default=0.0, validator=_check_seconds)
    at: frozenset[int] | None = attrs.field(
        default=None, converter=_indices, validator=_check_indices
    )
    probability: float = attrs.field(default=0.0)
    processed: bool = False
    retry_after: float | None = attrs.field(default=None, validator=_check_seconds)
    operation: Operation | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Operation))
    )
    message: str | None = None  # the error body's message; a default per status otherwise

    @status.validator
    def _check_status(self, _attr: attrs.Attribute[Any], value: int | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValueError(f"status must be an HTTP status code, got {value!r}")
        if self.drop:
            raise ValueError("a fault either answers a status or drops the connection, not both")

    @probability.validator
    def _check_probability(self, _attr: attrs.Attribute[Any], value: float) -> None:
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValueError(f"probability must be between 0 and 1, got {value!r}")

    @property
    def replaces_answer(self) -> bool:
        """True when the fault answers (or drops) instead of the server."""
        return self.drop or self.status is not None


@attrs.frozen
class RecordedRequest:
    """One request as :class:`FakeInsider` received it.

    ``body`` is the decoded JSON (the text itself when it was not JSON, None when empty);
    ``arrived_at`` is the event loop's ``loop.time()`` once the body was read; ``status`` is
    what the server answered (None: the connection was dropped); ``campaign_id`` is the id in
    a success answer. ``headers`` hold ``Authorization: Bearer <redacted>``, never the key.
    """

    index: int
    method: str
    path: str
    operation: Operation | None
    body: object
    arrived_at: float
    status: int | None
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    campaign_id: int | None = None


@attrs.frozen
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] | None = None
    campaign_id: int | None = None
    carried_out: bool = False


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(error_body(message)).encode(), headers)


def _success(status: int, campaign_id: int) -> _Answer:
    body = json.dumps(result_to_body(LaunchResult(True, campaign_id))).encode()
    return _Answer(status, body, None, campaign_id, carried_out=True)


def _retry_after(seconds: float) -> str:
    """Seconds as a decimal string of up to 3 decimals, rounded up: 0.2504 -> "0.251"."""
    millis = max(1, math.ceil(seconds * 1000))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


_UNAUTHORIZED: Final = _error(401, "Unauthorized")
_NOT_FOUND: Final = _error(404, "Not Found")
_NOT_ALLOWED: Final = _error(405, "Method Not Allowed")
_TOO_LARGE: Final = _error(413, "body: is too large")
_NOT_JSON_TYPE: Final = _error(400, f"Content-Type: must be {_JSON}")
_NOT_JSON: Final = _error(400, "body: is not valid JSON")
_NOT_AN_OBJECT: Final = _error(400, "body: must be a JSON object")
_NO_CAMPAIGN: Final = _error(424, "SERVICE:-Campaign not found")
_NO_PARTNER: Final = _error(400, "partner_id: is required")
_OTHER_PARTNER: Final = _error(400, "partner_id: is not this account's partner id")
_DUPLICATE_TITLE: Final = _error(400, "title: a draft with this title already exists")

# Routing from the one table of endpoints: (method, path) for fixed paths, and
# (method, prefix, suffix) around the {campaign_id} segment for the others.
_FIXED: Final = {(e.method, e.path): e.operation for e in ENDPOINTS.values() if "{" not in e.path}
_TEMPLATED: Final[tuple[tuple[str, str, str, Operation], ...]] = tuple(
    (e.method, e.path.partition("{campaign_id}")[0], e.path.partition("{campaign_id}")[2], op)
    for op, e in ENDPOINTS.items()
    if "{campaign_id}" in e.path
)
_FIXED_PATHS: Final = frozenset(path for _method, path in _FIXED)


def _route(method: str, path: str) -> tuple[Operation | None, str | None, _Answer | None]:
    """(operation, campaign id segment, None) or (None, None, a 404/405 answer)."""
    operation = _FIXED.get((method, path))
    if operation is not None:
        return operation, None, None
    known_path = path in _FIXED_PATHS
    for route_method, prefix, suffix, route_operation in _TEMPLATED:
        if path.startswith(prefix) and path.endswith(suffix):
            segment = path[len(prefix) : len(path) - len(suffix)]
            if segment and "/" not in segment:
                if route_method == method:
                    return route_operation, segment, None
                known_path = True
    return None, None, _NOT_ALLOWED if known_path else _NOT_FOUND


def _max_in_window(times: Sequence[float], period: float) -> int:
    """Most of the sorted ``times`` in any half-open window ``[s, s + period)``."""
    best = 0
    start = 0
    for end, time in enumerate(times):
        edge = time - period  # the same arithmetic as the quota's, so the two agree
        while times[start] <= edge:
            start += 1
        best = max(best, end - start + 1)
    return best


class FakeInsider:
    """A local Insider Single Web Push server for tests, demos and benchmarks.

    ``async with FakeInsider() as fake:`` starts it on a free port of 127.0.0.1; talk to
    ``fake.base_url`` with ``fake.api_key`` (``"test-key"``) and ``fake.partner_id``. The module
    docs say what it enforces, how the quota counts and how :class:`Fault`\\s apply.
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        partner_id: str = "10000001",
        rate_limit: int = ENDPOINTS[Operation.LAUNCH_V2].rate_limit,
        rate_period: float = ENDPOINTS[Operation.LAUNCH_V2].rate_period,
        v1_rate_limit: int = ENDPOINTS[Operation.LAUNCH_V1].rate_limit,
        v1_rate_period: float = ENDPOINTS[Operation.LAUNCH_V1].rate_period,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        enforce_quota: bool = True,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        for name, limit, period in (
            ("rate", rate_limit, rate_period),
            ("v1_rate", v1_rate_limit, v1_rate_period),
        ):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"{name}_limit must be a whole number >= 1, got {limit!r}")
            if not (isinstance(period, int | float) and math.isfinite(period) and period > 0):
                raise ValueError(f"{name}_period must be a positive number, got {period!r}")
        self._api_key = api_key
        self._authorization = f"Bearer {api_key}"
        # The model owns the partner id rule (an int becomes its string).
        self._partner_id = Draft(partner_id=partner_id, title="-").partner_id
        self._quota: dict[Operation, tuple[int, float]] = {
            op: (v1_rate_limit, float(v1_rate_period)) for op in Operation
        }
        self._quota[Operation.LAUNCH_V2] = (rate_limit, float(rate_period))
        self._host = host
        self._port = port
        self.faults: list[Fault] = list(faults)
        self.enforce_quota = enforce_quota
        self.requests: list[RecordedRequest] = []
        self.launches: list[RecordedRequest] = []
        self.drafts: dict[int, str] = {}
        """The drafts that exist: campaign id -> title."""
        self._rng = random.Random(seed)
        self._ids = itertools.count(_FIRST_CAMPAIGN_ID)
        self._arrivals = 0
        self._windows: dict[Operation, deque[float]] = {op: deque() for op in Operation}
        self._bodies: dict[bytes, object] = {}
        self._verdicts: dict[bytes, _Answer | None] = {}
        self._headers: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
        self._sleepers: set[asyncio.Future[None]] = set()
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._base_url: str | None = None

    # -- settings -------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def partner_id(self) -> str:
        return self._partner_id

    @property
    def rate_limit(self) -> int:
        return self._quota[Operation.LAUNCH_V2][0]

    @property
    def rate_period(self) -> float:
        return self._quota[Operation.LAUNCH_V2][1]

    @property
    def v1_rate_limit(self) -> int:
        return self._quota[Operation.LAUNCH_V1][0]

    @property
    def v1_rate_period(self) -> float:
        return self._quota[Operation.LAUNCH_V1][1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; raises ``RuntimeError`` before :meth:`start`."""
        if self._base_url is None:
            raise RuntimeError("FakeInsider is not started: use 'async with' or await start()")
        return self._base_url

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return (
            f"FakeInsider({where}, partner_id={self._partner_id!r}, "
            f"requests={len(self.requests)}, launches={len(self.launches)})"
        )

    def client(self, *, in_process: bool = False, **kwargs: Any) -> WebPushClient:
        """A :class:`WebPushClient` for this server, with its key, partner id and quota.

        ``in_process=True`` talks to it through :meth:`transport`, with no socket (and no
        need to start it). Keyword arguments are passed on to ``WebPushClient`` and win.
        """
        kwargs.setdefault("partner_id", self._partner_id)
        if in_process:
            kwargs.setdefault("transport", self.transport())
            kwargs.setdefault("base_url", self._base_url or "http://127.0.0.1")
        else:
            kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("rate_limit", self.rate_limit)
        kwargs.setdefault("rate_period", self.rate_period)
        api_key = kwargs.pop("api_key", self._api_key)  # e.g. a wrong key, to test a 401
        return WebPushClient(api_key, **kwargs)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: a free one); ``base_url`` is set on return."""
        if self._runner is not None:
            raise RuntimeError("FakeInsider is already started")
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # The low-level server: no router or middlewares, and no access log, on the hot path.
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        if ipaddress.ip_address(host).is_unspecified:  # listening everywhere: say loopback
            host = "::1" if ":" in host else "127.0.0.1"
        self._base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        logger.debug("FakeInsider listening on %s", self._base_url)

    async def close(self) -> None:
        """Stop listening and close every connection; safe to call more than once.

        A request still waiting out a fault's ``latency`` has its connection closed unanswered.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)
        await runner.cleanup()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start (unless started) and serve until :meth:`close` or until cancelled.

        Cancelling it, as ``asyncio.run`` does on Ctrl-C, closes the server.
        """
        if self._runner is None:
            await self.start()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            await self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests ask -------------------------------------------------------------------

    def max_in_window(
        self, period: float | None = None, *, operation: Operation | None = Operation.LAUNCH_V2
    ) -> int:
        """Most arrivals of ``operation`` in any half-open window of ``period`` seconds.

        ``period`` defaults to that operation's quota period. Every arrival counts, including
        those answered 429, faulted or dropped. ``operation=None`` counts every request (then
        give ``period``).
        """
        if period is None:
            if operation is None:
                raise ValueError("give period= when counting every operation")
            period = self._quota[operation][1]
        if not period > 0:
            raise ValueError(f"period must be positive, got {period!r}")
        times = [
            r.arrived_at for r in self.requests if operation is None or r.operation is operation
        ]
        times.sort()  # records are in arrival order already; tests may append their own
        return _max_in_window(times, period)

    def count(self, status: int | None = None, *, operation: Operation | None = None) -> int:
        """How many requests were answered ``status`` (any when None) for ``operation``."""
        return sum(
            1
            for r in self.requests
            if (status is None or r.status == status)
            and (operation is None or r.operation is operation)
        )

    # -- the handler ----------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw: bytes | None
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raw = None
        except (ConnectionError, web.RequestPayloadError):
            # The client went away mid-body: there is no request to record or answer.
            return web.Response()
        answer = await self.answer(request.method, request.path, request.headers, raw)
        if answer is None:
            return _drop(request)
        return web.Response(
            body=answer.body, status=answer.status, headers=answer.headers, content_type=_JSON
        )

    async def answer(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes | None
    ) -> _Answer | None:
        """The server's logic without a socket: record the request, apply the quota, faults
        and contract, and return the answer (None: the connection is dropped unanswered).

        ``raw`` is the body (None: too large). Both the loopback server and
        :meth:`transport` call this, so they behave alike.
        """
        loop = self._loop = self._loop or asyncio.get_running_loop()
        arrived_at = loop.time()
        index = self._arrivals
        self._arrivals += 1
        operation, segment, route_error = _route(method, path)
        body = self._decode(raw)

        fault = self._fault_for(index, operation) if self.faults else None
        answer: _Answer | None = None
        if fault is None or fault.processed or not fault.replaces_answer:
            answer = route_error
            if answer is None:
                answer = self._process(headers, operation, segment, raw, body, arrived_at)
        if fault is not None and fault.replaces_answer:
            status = None if fault.drop else fault.status
        else:
            assert answer is not None
            status = answer.status
        carried_out = answer is not None and answer.carried_out
        record = RecordedRequest(
            index,
            method,
            path,
            operation,
            body,
            arrived_at,
            status,
            self._redacted(headers),
            answer.campaign_id if answer is not None and carried_out else None,
        )
        self.requests.append(record)
        if carried_out and operation in _LAUNCHES:
            self.launches.append(record)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("#%d %s %s -> %s", index, method, path, status or "dropped")

        if fault is not None:
            if fault.latency > 0:
                await self._sleep(fault.latency)
                if self._runner is None and self._base_url is not None:  # closing
                    return None
            if fault.drop:
                return None
            if fault.status is not None:
                answer = self._fault_answer(fault)
        assert answer is not None
        return answer

    def transport(self) -> Transport:
        """A :class:`~insider_webpush.transport.Transport` that hands each request to this
        fake in process, with no socket: the same logic, records, quota and faults as over
        loopback (a dropped connection is a ``TransportError`` of stage ``SENT``). For tests
        and benchmarks that want no network at all; :meth:`start` is not needed."""
        return _InProcessTransport(self)

    def _process(
        self,
        headers: Mapping[str, str],
        operation: Operation | None,
        segment: str | None,
        raw: bytes | None,
        body: object,
        now: float,
    ) -> _Answer:
        assert operation is not None
        if headers.get(hdrs.AUTHORIZATION) != self._authorization:
            return _UNAUTHORIZED
        if self.enforce_quota:
            wait = self._admit(operation, now)
            if wait is not None:
                return _error(429, "Request limit exceeded", {"Retry-After": _retry_after(wait)})
        if raw is None:
            return _TOO_LARGE
        if _content_type(headers) != _JSON:
            return _NOT_JSON_TYPE
        if isinstance(body, _TextBody):
            return _NOT_JSON
        if operation is Operation.CREATE:
            return self._create(body)
        assert segment is not None
        if operation is Operation.DELETE:
            return self._delete(segment, body)
        return self._launch(operation, segment, raw, body)

    def _admit(self, operation: Operation, now: float) -> float | None:
        """None when the request takes a slot of its window, else the seconds until one frees."""
        limit, period = self._quota[operation]
        window = self._windows[operation]
        edge = now - period
        while window and window[0] <= edge:
            window.popleft()
        if len(window) >= limit:
            return window[len(window) - limit] + period - now
        window.append(now)
        return None

    def _launch(self, operation: Operation, segment: str, raw: bytes, body: object) -> _Answer:
        try:
            verdict = self._verdicts[raw]
        except KeyError:
            verdict = self._judge_push(body)
            if len(self._verdicts) >= _CACHE_SIZE:
                self._verdicts.clear()
            self._verdicts[raw] = verdict
        if verdict is not None:
            return verdict
        if segment == LITERAL_CAMPAIGN_ID:
            campaign_id = next(self._ids)
        elif segment.isascii() and segment.isdigit() and int(segment) in self.drafts:
            campaign_id = int(segment)
        else:
            return _NO_CAMPAIGN
        return _success(ENDPOINTS[operation].success_status, campaign_id)

    def _judge_push(self, body: object) -> _Answer | None:
        try:
            # push_from_dict checks that the body is an object itself.
            push = push_from_dict(cast(Mapping[str, Any], body))
        except ValidationError as exc:
            return _error(400, str(exc))
        if push.partner_id is None:
            return _NO_PARTNER
        if push.partner_id != self._partner_id:
            return _OTHER_PARTNER
        return None

    def _create(self, body: object) -> _Answer:
        try:
            draft = draft_from_dict(body)
        except ValidationError as exc:
            return _error(400, str(exc))
        if draft.partner_id != self._partner_id:
            return _OTHER_PARTNER
        if draft.title in self.drafts.values():
            return _DUPLICATE_TITLE
        campaign_id = next(self._ids)
        self.drafts[campaign_id] = draft.title
        return _success(ENDPOINTS[Operation.CREATE].success_status, campaign_id)

    def _delete(self, segment: str, body: object) -> _Answer:
        try:
            partner_id = partner_id_from_delete_body(body)
        except ValidationError as exc:
            return _error(400, str(exc))
        if partner_id != self._partner_id:
            return _OTHER_PARTNER
        if not (segment.isascii() and segment.isdigit() and int(segment) in self.drafts):
            return _NO_CAMPAIGN
        campaign_id = int(segment)
        del self.drafts[campaign_id]
        return _success(ENDPOINTS[Operation.DELETE].success_status, campaign_id)

    # -- helpers --------------------------------------------------------------------------

    def _fault_for(self, index: int, operation: Operation | None) -> Fault | None:
        for fault in self.faults:
            if fault.operation is not None and fault.operation is not operation:
                continue
            if fault.at is not None and index not in fault.at:
                continue
            if fault.probability > 0 and self._rng.random() >= fault.probability:
                continue
            return fault
        return None

    @staticmethod
    def _fault_answer(fault: Fault) -> _Answer:
        assert fault.status is not None
        headers = None
        if fault.status == 429 and fault.retry_after is not None:
            headers = {"Retry-After": _retry_after(fault.retry_after)}
        message = fault.message if fault.message is not None else _message_for(fault.status)
        return _error(fault.status, message, headers)

    def _decode(self, raw: bytes | None) -> object:
        """The JSON of ``raw``, one shared object per distinct body; a _TextBody if not JSON."""
        if not raw:
            return None
        try:
            return self._bodies[raw]
        except KeyError:
            pass
        body: object
        try:
            body = _shared_strings(json.loads(raw))
        except ValueError:
            body = _TextBody(raw[:_MAX_TEXT_BODY].decode("utf-8", "replace"))
        if len(self._bodies) >= _CACHE_SIZE:
            self._bodies.clear()
        self._bodies[raw] = body
        return body

    def _redacted(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        key = tuple(headers.items())
        redacted = self._headers.get(key)
        if redacted is None:
            redacted = CIMultiDictProxy(
                CIMultiDict(
                    (name, _REDACTED_AUTHORIZATION if name.lower() == "authorization" else value)
                    for name, value in key
                )
            )
            if len(self._headers) >= _CACHE_SIZE:
                self._headers.clear()
            self._headers[key] = redacted
        return redacted

    async def _sleep(self, seconds: float) -> None:
        """Sleep, unless :meth:`close` wakes us first."""
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        timer = self._loop.call_later(seconds, _wake, waiter)
        self._sleepers.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)


def _shared_strings(value: object) -> object:
    """``value`` with equal strings shared between records: a third of the memory."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _shared_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared_strings(v) for v in value]
    return value


class _TextBody(str):
    """A body that was not JSON, kept as text for its record."""

    __slots__ = ()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _content_type(headers: Mapping[str, str]) -> str:
    value = headers.get(hdrs.CONTENT_TYPE, "")
    return value.partition(";")[0].strip().lower()


class _InProcessTransport:
    """FakeInsider's logic behind the Transport seam: no socket, no HTTP parsing."""

    def __init__(self, fake: FakeInsider) -> None:
        self._fake = fake

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await gate()
        path = urlsplit(request.url).path
        headers = (
            request.headers
            if isinstance(request.headers, CIMultiDict)
            else (CIMultiDict(request.headers))
        )
        try:
            async with asyncio.timeout(timeouts.total):
                answer = await self._fake.answer(request.method, path, headers, request.body)
        except TimeoutError:
            raise TransportError("FakeInsider did not answer in time", stage=Stage.SENT) from None
        if answer is None:
            raise TransportError("FakeInsider dropped the connection", stage=Stage.SENT)
        return Response(answer.status, answer.headers or {}, answer.body)

    async def aclose(self) -> None:
        return None


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection with nothing written.

    aiohttp then fails to write the response we return, which it treats as a client that went
    away: a DEBUG line, no error and no warning.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response()
