"""`FakeInsider`: the [`Simulator`][insider_webpush.testing.simulator.Simulator] served on loopback
HTTP by a thin aiohttp server.

The server reads each request, hands it to the simulator with the event loop's time (`loop.time()`,
the clock the SDK's limiter uses) and carries out its reply: waits out a fault's latency, then
answers or closes the connection unanswered.
[`FakeInsider.transport`][insider_webpush.testing.server.FakeInsider.transport] serves the same
simulator in process, without a socket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from ..client import WebPushClient
from ..endpoints import ENDPOINTS, QUOTAS, STATISTICS, Operation
from ..transport import Transport
from ._answers import JSON, Answer
from ._statistics import PER_PAGE_MAX
from .faults import Fault
from .inprocess import InProcessTransport
from .simulator import DEFAULT_API_KEY, DEFAULT_PARTNER_ID, Simulator

__all__ = ["FakeInsider"]

logger = logging.getLogger("insider_webpush.testing")

_SHUTDOWN_TIMEOUT: Final = 1.0  # seconds close() gives a handler still running


class FakeInsider(Simulator):
    """A local Insider Single Web Push server for tests, demos and benchmarks.

    `async with FakeInsider() as fake:` starts it on a free port of 127.0.0.1; talk to
    `fake.base_url` with `fake.api_key` (`"test"`) and `fake.partner_id`, or use `fake.client()`.
    Besides create, launch and delete it serves the three web push statistics endpoints: the
    launches it carried out are its campaigns (`fake.campaigns`), with seeded figures.
    What it enforces, how the quota counts and what it records are the
    [`Simulator`][insider_webpush.testing.simulator.Simulator]'s; how
    faults ([`Fault`][insider_webpush.testing.faults.Fault]) apply is in
    [`insider_webpush.testing.faults`][insider_webpush.testing.faults].

    Args:
        api_key (str): the key it accepts; default `"test"`.
        partner_id (str | int): the account's partner id; default `"10000001"`.
        rate_limit (int): launch v2 requests per `rate_period`; default 6000.
        rate_period (float): seconds of the launch v2 window; default 60.
        v1_rate_limit (int): create, launch v1 and delete requests (each) per
            `v1_rate_period`; default 30.
        v1_rate_period (float): seconds of their windows; default 60.
        stats_rate_limit (int): statistics requests (campaign, overall and top metrics
            together: one shared window) per `stats_rate_period`; default 30. Over it they
            are answered `403 {"message": "Request limit exceeded"}` with `Retry-After`.
        stats_rate_period (float): seconds of that window; default 60.
        stats_per_page_max (int): the largest `per_page` of the overall metrics (more is a
            422); default 20.
        host (str): the address to listen on; default `"127.0.0.1"`.
        port (int): the port; default 0, a free one.
        faults (Sequence[Fault]): faults to inject, first match wins; default none.
        seed (int): seed of the random faults and of every campaign's statistics; default 0.
        enforce_quota (bool): answer 429 (statistics: 403) over the quota; default True.
        today (datetime.date | None): the fake's date, the creation date of the campaigns
            launched while it holds; default None, the UTC date read at each new campaign's
            first launch (the fake's only wall-clock read). Settable later (`fake.today`).

    Raises:
        ValidationError: an empty key, a bad partner id, a limit or period out of range, or
            a `today` that is not a `datetime.date`.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        partner_id: str = DEFAULT_PARTNER_ID,
        rate_limit: int = ENDPOINTS[Operation.LAUNCH_V2].rate_limit,
        rate_period: float = ENDPOINTS[Operation.LAUNCH_V2].rate_period,
        v1_rate_limit: int = ENDPOINTS[Operation.LAUNCH_V1].rate_limit,
        v1_rate_period: float = ENDPOINTS[Operation.LAUNCH_V1].rate_period,
        stats_rate_limit: int = QUOTAS[STATISTICS][0],
        stats_rate_period: float = QUOTAS[STATISTICS][1],
        stats_per_page_max: int = PER_PAGE_MAX,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        enforce_quota: bool = True,
        today: dt.date | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            partner_id=partner_id,
            rate_limit=rate_limit,
            rate_period=rate_period,
            v1_rate_limit=v1_rate_limit,
            v1_rate_period=v1_rate_period,
            stats_rate_limit=stats_rate_limit,
            stats_rate_period=stats_rate_period,
            stats_per_page_max=stats_per_page_max,
            faults=faults,
            seed=seed,
            enforce_quota=enforce_quota,
            today=today,
        )
        self._host = host
        self._port = port
        self._sleepers: set[asyncio.Future[None]] = set()
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`; raises `RuntimeError` before `start`."""
        if self._base_url is None:
            raise RuntimeError("FakeInsider is not started: use 'async with' or await start()")
        return self._base_url

    @property
    def port(self) -> int:
        """The port it listens on; raises `RuntimeError` before `start`."""
        return int(self.base_url.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        where = self._base_url or "not started"
        return (
            f"FakeInsider({where}, partner_id={self.partner_id!r}, "
            f"requests={len(self.requests)}, launches={len(self.launches)})"
        )

    def client(self, *, in_process: bool = False, **kwargs: Any) -> WebPushClient:
        """A [`WebPushClient`][insider_webpush.client.WebPushClient] for this fake: its key, partner
        id, and every quota of it (launch v2's as `rate_limit`/`rate_period`, the others as
        `quotas`).

        Args:
            in_process (bool): talk to it through `transport`, with no socket (and no
                need to start it); default False, over loopback (then it must be started).
            **kwargs: passed on to `WebPushClient` and win, e.g. `retry=`, `timeout=`
                or `api_key=` (a wrong key, to test a 401).

        Raises:
            RuntimeError: not started, unless `in_process`.
        """
        kwargs.setdefault("partner_id", self.partner_id)
        if in_process:
            kwargs.setdefault("transport", self.transport())
            kwargs.setdefault("base_url", self._base_url or "http://127.0.0.1")
        else:
            kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("rate_limit", self.rate_limit)
        kwargs.setdefault("rate_period", self.rate_period)
        v1 = (self.v1_rate_limit, self.v1_rate_period)
        kwargs.setdefault(
            "quotas",
            {
                "launch_v1": v1,
                "create": v1,
                "delete": v1,
                "statistics": (self.stats_rate_limit, self.stats_rate_period),
            },
        )
        api_key = kwargs.pop("api_key", self.api_key)
        return WebPushClient(api_key, **kwargs)

    def transport(self) -> Transport:
        """A [`Transport`][insider_webpush.transport.Transport] that hands each request to this
        fake in process, with no socket: the same logic, records, quota and faults as over
        loopback (a dropped connection is a `TransportError` of stage `SENT`). For tests
        and benchmarks that want no network at all; `start` is not needed."""
        return InProcessTransport(self.answer)

    async def answer(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes | None
    ) -> Answer | None:
        """Receive one request now (the event loop's time), wait out a fault's latency, and
        return the answer (None: the connection is dropped unanswered).

        `raw` is the body (None: too large). Both the loopback server and
        `transport` call this, so they behave alike.
        """
        loop = self._loop = self._loop or asyncio.get_running_loop()
        reply = self.receive(method, path, headers, raw, loop.time())
        if reply.delay > 0:
            await self._sleep(reply.delay)
            if self._runner is None and self._base_url is not None:  # closing
                return None
        return reply.answer

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on `host:port` (port 0: a free one); `base_url` is set on return.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be listened on (e.g. the port is taken).
        """
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

        A request still waiting out a fault's `latency` has its connection closed unanswered.
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
        """Start (unless started) and serve until `close` or until cancelled.

        Cancelling it, as `asyncio.run` does on Ctrl-C, closes the server.
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
            body=answer.body, status=answer.status, headers=answer.headers, content_type=JSON
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep, unless `close` wakes us first."""
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        timer = self._loop.call_later(seconds, _wake, waiter)
        self._sleepers.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection with nothing written.

    aiohttp then fails to write the response we return, which it treats as a client that went
    away: a DEBUG line, no error and no warning.
    """
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response()
