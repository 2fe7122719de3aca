"""`WebPushClient`: the session, the operations, and the one path every request takes.

```python
from insider_webpush import WebPush, WebPushClient

async with WebPushClient(api_key, partner_id="10000001") as client:
    push = WebPush(title=..., description=..., image=..., link=..., ttl=3600)
    result = await client.send(push)
    result.campaign_id  # an int
```
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import math
import os
import time
import warnings
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from importlib.util import find_spec
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from . import batch, telemetry
from ._loops import on_loop_close
from ._version import __version__
from .codec import (
    decode_json,
    delete_body,
    draft_to_dict,
    encode_json,
    encode_push,
    error_message,
    field_errors,
    launch_result_from_body,
)
from .codec.statistics import (
    campaign_metrics_from_body,
    campaign_metrics_request,
    metrics_page_from_body,
    overall_metrics_request,
    top_metrics_from_body,
    top_metrics_request,
)
from .endpoints import DEFAULT_BASE_URL, ENDPOINTS, QUOTAS, Endpoint, Operation
from .errors import (
    APIError,
    InsiderError,
    MissingExtraError,
    TransportError,
    ValidationError,
    error_for_status,
    redact,
)
from .ledger import DEFAULT_DEDUPE_TTL, Action, Claim, Journal, Ledger, Taken, open_ledger
from .limiter import Limiter, LimiterKey, key_fingerprint, paused_error, shared_limiter
from .metrics import (
    PER_PAGE_DEFAULT,
    CampaignMetrics,
    CampaignSummary,
    MetricsPage,
    TopMetrics,
    check_date_range,
    check_per_page,
)
from .models import (
    DEFAULT_LANGUAGE,
    LAUNCH_BODY_MAX,
    Draft,
    LaunchResult,
    Timeouts,
    WebPush,
    check_campaign_id,
    check_dedupe_key,
    check_dedupe_ttl,
    check_quota,
    check_required_campaign_id,
)
from .outcomes import verdict_for_status
from .retry import RetryPolicy, parse_retry_after
from .sender import AttemptHook, PreparedLaunch
from .transport import AiohttpTransport, Request, Response, Transport

if TYPE_CHECKING:  # redis is an optional extra
    from .redis_limiter import RedisLimiter

__all__ = ["DEFAULT_TIMEOUT", "LOG_EVENT", "WebPushClient", "settings_from_env"]

T = TypeVar("T")

logger = logging.getLogger("insider_webpush")
LOG_EVENT = "insider_webpush_event"
"""The log record attribute that names what a WARNING is about: `"rate_limited"` (a 429) or
`"ambiguous"` (a push that may have gone out), for handlers that route them."""

DEFAULT_TIMEOUT = Timeouts().total
"""Seconds one attempt of a request may take by default (30); see
[`Timeouts`][insider_webpush.models.Timeouts]."""
_LAUNCHES = {"v1": ENDPOINTS[Operation.LAUNCH_V1], "v2": ENDPOINTS[Operation.LAUNCH_V2]}


def settings_from_env(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`(api_key, kwargs)` for a client made from the environment (both clients' `from_env`,
    and the CLI's variables): `INSIDER_API_KEY`, and `INSIDER_PARTNER_ID`, `INSIDER_BASE_URL`,
    `INSIDER_REDIS_URL` and `INSIDER_DEDUPE_STORE` where `kwargs` lacks them (empty counts as
    unset).

    Raises:
        ValidationError: `INSIDER_API_KEY` is not set.
    """
    api_key = os.environ.get("INSIDER_API_KEY")
    if not api_key:
        raise ValidationError("INSIDER_API_KEY", "is not set in the environment")
    kwargs.setdefault("partner_id", os.environ.get("INSIDER_PARTNER_ID") or None)
    kwargs.setdefault("base_url", os.environ.get("INSIDER_BASE_URL") or DEFAULT_BASE_URL)
    kwargs.setdefault("redis_url", os.environ.get("INSIDER_REDIS_URL") or None)
    kwargs.setdefault("dedupe_store", os.environ.get("INSIDER_DEDUPE_STORE") or None)
    return api_key, kwargs


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object) -> str:
    """``https://host[:port][/path]``: nothing that could steer a request elsewhere."""
    if not isinstance(base_url, str):
        raise ValidationError("base_url", "must be a string URL")
    wanted = "must be https://host[:port][/path]"
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in base_url):
        raise ValidationError("base_url", f"{wanted}, with no spaces or control characters")
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ValidationError("base_url", f"{wanted}; {exc}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError("base_url", f"{wanted}, got {base_url!r}")
    if "@" in parts.netloc:
        raise ValidationError("base_url", f"{wanted}: no user name or password in it")
    if "?" in base_url or "#" in base_url:
        raise ValidationError("base_url", f"{wanted}: no ?query or #fragment")
    if any(segment.lower().replace("%2e", ".") in (".", "..") for segment in parts.path.split("/")):
        raise ValidationError("base_url", f"{wanted}: no . or .. segments in the path")
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError("base_url", f"{wanted}: the port must be 1 to 65535, got {port}")
    if parts.netloc.endswith(":"):
        raise ValidationError("base_url", f"{wanted}: the port is empty")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValidationError(
            "base_url", "must use https://; plain http:// is allowed only for loopback hosts"
        )
    # One spelling per origin (host in lower case, no default port): the shared limiter is
    # keyed by it, so every spelling of Insider's URL shares one quota and one 429 pause.
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"https": 443, "http": 80}[parts.scheme]:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


class WebPushClient:
    """An asyncio client for Insider One's Single Web Push API.

    Use it as `async with WebPushClient(api_key, partner_id=...) as client:` or call
    `close`. Every attempt of every request takes a grant of the key's quota (shared by
    every client of the key in this event loop) at the wire, immediately before its first
    byte is written, and a request is resent only when it certainly did not go out
    ([`insider_webpush.outcomes`][insider_webpush.outcomes]). The API key is in no `repr`,
    log line or exception; logging goes to `logging.getLogger("insider_webpush")`.

    Args:
        api_key: The Bearer key of Insider's Web Push API (one per API, shown once when
            made). Never logged or shown.
        partner_id: Your partner id (InOne Settings > Account Settings), a non-empty string;
            an `int` is kept as its string. Fills every push without its own; `create` and
            `delete` need it. None by default.
        base_url: `https://host[:port][/path]`, with no user info, query or fragment and a
            port from 1 to 65535; plain `http://` only for loopback hosts (the fake).
            Default [`DEFAULT_BASE_URL`][insider_webpush.endpoints.DEFAULT_BASE_URL],
            `https://web-push.api.useinsider.com`.
        rate_limit: Launch v2's quota per key: request starts per `rate_period`, from 1 to
            10**9 (default 6000, Insider's documented rate).
        rate_period: The quota's window, in seconds: finite and above 0 (default 60.0).
        quotas: Any quota group's `(rate_limit, rate_period)`, by the endpoint table's
            groups ([`QUOTAS`][insider_webpush.endpoints.QUOTAS]): `"launch_v2"`,
            `"launch_v1"`, `"create"`, `"delete"` and `"statistics"` (the three statistics
            endpoints together, 30 per 60.0 s by default), e.g. `{"statistics": (30, 60.0)}`
            for a key Insider raised. A group not given keeps its default; `rate_limit` and
            `rate_period` are the shorthand for `"launch_v2"` (give one or the other).
            None by default.
        limiter: Replaces launch v2's shared limiter: any object with `acquire`, `penalize`
            and `paused_for` (a [`Limiter`][insider_webpush.limiter.Limiter]). None (the
            default) shares one per process, base URL, key and operation.
        retry: When to try a request again; None (the default) is `RetryPolicy()`: up to
            5 attempts, only of what certainly did not go out.
        timeout: Bounds one attempt: waiting for a pooled connection, connecting and the
            answer; not the wait for the quota. A number of seconds sets `Timeouts.total`
            (default 30.0); a [`Timeouts`][insider_webpush.models.Timeouts] sets each part.
        session: An `aiohttp.ClientSession` to borrow, never closed here; it must use
            [`WireConnector`][insider_webpush.transport.WireConnector]. None (the default):
            the client makes its own on first use and closes it in `close`.
        transport: The wire itself, e.g. `FakeInsider.transport()`: any
            [`Transport`][insider_webpush.transport.Transport]; not closed here. Excludes
            `session`. None by default.
        proxy: The proxy every request goes through: `http://host:port`, or with
            credentials `http://user:password@host:port` (never logged or shown; `https://`
            proxies too). None (the default): `HTTPS_PROXY` (`HTTP_PROXY` for an http://
            base URL) from the environment unless `NO_PROXY` lists the host, as requests
            does, read when the client opens its connections (a lent `session` keeps its
            own settings). Excludes `transport`.
        redis_url: Share the quota through Redis at this URL, e.g.
            `"redis://host:6379/0"`, across processes and hosts
            ([`insider_webpush.redis_limiter`][insider_webpush.redis_limiter]; needs the
            `redis` extra). None (the default) keeps it in this process.
            Without redis-py installed: `MissingExtraError` here, not at the first send.
        redis_fallback_processes: While Redis is unreachable, go on alone at
            `rate_limit // redis_fallback_processes` per process, once the slots reserved
            in Redis are a window old (1.5 periods after Redis is lost; sends wait
            meanwhile), and back through Redis after a hold of a period when it answers
            again; at least 1, and needs `redis_url`. None (the default) fails closed:
            sends raise `TransportError` and nothing is sent.
        dedupe_store: Where `send(..., dedupe_key=...)` records what it launched
            ([`insider_webpush.ledger`][insider_webpush.ledger]): a `redis://`/`rediss://`
            URL (every process and host reaching it), an SQLite file's path (the processes
            of one host), or a [`Ledger`][insider_webpush.ledger.Ledger]. None (the
            default): `redis_url` when given, else this process's memory.
        dedupe_ttl: Seconds a dedupe key is remembered after its last write, above 0 and at
            most a year (default 7 days).

    Raises:
        ValidationError: An argument is out of its range or of the wrong type; `field`
            names it and the message gives the limit.
        MissingExtraError: `redis_url`, or a Redis `dedupe_store`, without redis-py (also
            an `ImportError`).
    """

    def __init__(
        self,
        api_key: str,
        *,
        partner_id: str | int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: int = ENDPOINTS[Operation.LAUNCH_V2].rate_limit,
        rate_period: float = ENDPOINTS[Operation.LAUNCH_V2].rate_period,
        quotas: Mapping[str, tuple[int, float]] | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | Timeouts = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        transport: Transport | None = None,
        proxy: str | None = None,
        redis_url: str | None = None,
        redis_fallback_processes: int | None = None,
        dedupe_store: str | os.PathLike[str] | Ledger | None = None,
        dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValidationError("api_key", "must be a non-empty string")
        if api_key != api_key.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in api_key):
            # It goes into a header: a newline read from a file would fail every send.
            raise ValidationError(
                "api_key",
                "must not hold spaces, line breaks or control characters (read from a file? "
                "strip it)",
            )
        if partner_id is not None:
            # The model owns the partner id rule; a throwaway draft applies it.
            partner_id = Draft(partner_id=partner_id, title="-").partner_id
        check_quota(rate_limit, rate_period)
        self._quota = _quotas(quotas, rate_limit, rate_period)
        if limiter is not None and not isinstance(limiter, Limiter):
            raise ValidationError(
                "limiter", "must have acquire(), penalize(seconds) and paused_for()"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", f"must be a RetryPolicy, not {type(retry).__name__}")
        self._timeouts = Timeouts.of(timeout)
        self._base_url = _check_base_url(base_url)
        self._partner_id: str | None = partner_id
        self._api_key = api_key
        self._key_id = key_fingerprint(api_key)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"insider-webpush/{__version__}",
            "Content-Type": "application/json",
        }
        self._limiter_override = limiter
        # Keyed by the operation's value: a str hashes in C, an Enum member in Python.
        self._limiters: dict[str, Limiter] = {}
        self._retry = retry if retry is not None else RetryPolicy()
        if transport is not None:
            if session is not None:
                raise ValidationError("session", "give a session or a transport, not both")
            if proxy is not None:
                raise ValidationError("proxy", "give a proxy or a transport, not both")
            if not isinstance(transport, Transport):
                raise ValidationError("transport", "must have send() and aclose()")
            self._transport: Transport = transport
            self._owns_transport = False
        else:
            self._transport = AiohttpTransport(session, timeouts=self._timeouts, proxy=proxy)
            self._owns_transport = True
        if redis_url is not None:
            try:  # at construction, not as an ImportError at the first send
                from . import redis_limiter  # noqa: F401
            except ImportError as exc:
                raise MissingExtraError(
                    "redis_url needs redis-py: pip install 'insider-webpush[redis]'"
                ) from exc
        self._redis_url = redis_url
        # With redis_url, Redis unreachable: None fails closed (TransportError, nothing sent);
        # N goes on alone at rate_limit // N per process. See insider_webpush.redis_limiter.
        if redis_fallback_processes is not None and (
            isinstance(redis_fallback_processes, bool)
            or not isinstance(redis_fallback_processes, int)
            or redis_fallback_processes < 1
            or redis_url is None
        ):
            raise ValidationError(
                "redis_fallback_processes", "must be a whole number >= 1, and needs redis_url"
            )
        self._redis_fallback_processes = redis_fallback_processes
        # Redis limiters belong to one event loop (their connections do): per loop, by quota
        # group, closed when the loop ends or by close().
        self._redis_limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, RedisLimiter]
        ] = weakref.WeakKeyDictionary()
        self._urls: dict[str, tuple[str, str]] = {}
        self._owns_session = transport is None and session is None
        self._entered = False  # by async with, until close(): see __del__
        self._telemetry = telemetry.active()  # None without opentelemetry-api
        if dedupe_store is None:
            dedupe_store = redis_url
        if dedupe_store is not None and not isinstance(dedupe_store, str | os.PathLike | Ledger):
            raise ValidationError(
                "dedupe_store",
                "must be a redis:// URL, an SQLite file's path or a Ledger, "
                f"not {type(dedupe_store).__name__}",
            )
        redis_store = isinstance(dedupe_store, str) and dedupe_store.startswith(
            ("redis://", "rediss://")
        )
        if redis_store and find_spec("redis") is None:
            raise MissingExtraError(
                "a Redis dedupe_store needs redis-py: pip install 'insider-webpush[redis]'"
            )
        self._dedupe_store = dedupe_store
        self._dedupe_ttl = check_dedupe_ttl(dedupe_ttl)
        # How long a `sending` record of a live holder may go unrefreshed: it rewrites it at
        # every attempt's gate; between two pass an attempt (timeouts.total) and a backoff
        # (retry.cap) or a 429's Retry-After (retry.max_retry_after). Past it, the holder is
        # taken to have died on the wire (ambiguous). A longer wait for the quota before a
        # retry makes a live holder look dead: its key reads ambiguous, never sent twice.
        lease = self._timeouts.total + self._retry.cap + self._retry.max_retry_after + 1.0
        if math.isfinite(lease) and self._dedupe_ttl < lease:
            raise ValidationError(
                "dedupe_ttl",
                f"must be at least {lease:g} s, the longest a send may hold its key between "
                "two writes (timeout + RetryPolicy.cap + max_retry_after + 1 s): a shorter one "
                "would forget a key while it is being sent",
            )
        self._lease = min(lease, self._dedupe_ttl)
        # The dedupe ledger: one for the client, or one per event loop for Redis (its
        # connections belong to one loop). Made on the first send with a dedupe key.
        self._ledger: Ledger | None = None
        self._loop_ledgers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ledger] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A client from the environment.

        Reads `INSIDER_API_KEY` (required), and `INSIDER_PARTNER_ID`, `INSIDER_BASE_URL`,
        `INSIDER_REDIS_URL` (`redis_url`: the quota and dedupe keys shared through Redis) and
        `INSIDER_DEDUPE_STORE` (`dedupe_store`) when set (empty counts as unset). The
        command line reads the same variables.

        Args:
            **kwargs: Passed on to the constructor; what is given here wins over the
                environment.

        Returns:
            The client.

        Raises:
            ValidationError: `INSIDER_API_KEY` is not set, or an argument is invalid.
        """
        api_key, kwargs = settings_from_env(kwargs)
        return cls(api_key, **kwargs)

    @property
    def base_url(self) -> str:
        """The base URL, normalized: the host in lower case, no default port, no final `/`."""
        return self._base_url

    @property
    def partner_id(self) -> str | None:
        """The client's partner id, as a string, or None."""
        return self._partner_id

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts of one attempt."""
        return self._timeouts

    def __repr__(self) -> str:
        return (
            f"WebPushClient(base_url={self._base_url!r}, partner_id={self._partner_id!r}, "
            f"key=sha256:{self._key_id})"
        )

    async def __aenter__(self) -> Self:
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections the client opened.

        A lent `session` or `transport` stays open. `async with` calls this on the way out.
        A client that was entered, or opened its session, and is garbage-collected without
        it warns with a `ResourceWarning` naming `WebPushClient`.
        """
        self._entered = False
        if self._owns_transport:
            await self._transport.aclose()
        # Shared Redis limiters are counted per user; the last one closes the connection.
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, limiters in list(self._redis_limiters.items()):
            release = self._release_redis(loop, limiters)
            if loop is here:
                await release()
            elif not loop.is_closed():  # a loop of another thread: closed there
                asyncio.run_coroutine_threadsafe(release(), loop)
            else:
                self._redis_limiters.pop(loop, None)
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            await ledger.aclose()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # Like aiohttp's "Unclosed client session", but naming the object the user made.
        # getattr: __init__ may have raised before setting anything.
        if getattr(self, "_entered", False) or self._holds_connections():
            _warn(
                f"Unclosed WebPushClient {self!r}: use 'async with WebPushClient(...) as "
                "client:' or 'await client.close()'",
                ResourceWarning,
                source=self,
            )

    def _holds_connections(self) -> bool:
        """The client opened a session, or holds Redis limiters, that `close` would release."""
        transport = getattr(self, "_transport", None)
        if (
            getattr(self, "_owns_session", False)
            and isinstance(transport, AiohttpTransport)
            and transport.holds_connections  # a session of any event loop
        ):
            return True
        return any(getattr(self, "_redis_limiters", {}).values())

    # -- operations ---------------------------------------------------------------------

    def prepare_launch(
        self, push: WebPush, *, campaign_id: int | None = None, api_version: str = "v2"
    ) -> PreparedLaunch:
        """Validate `push` and encode its launch once; nothing is sent.

        Args:
            push: The push.
            campaign_id: The draft to launch, a positive `int` from `create`; None (the
                default) posts to the literal path `/v2/single/campaign_id`.
            api_version: `"v2"` (the default, 6000 per minute) or `"v1"` (30 per minute).

        Returns:
            The launch, whose body is exactly the bytes `send_prepared` sends.

        Raises:
            ValidationError: `campaign_id` is not a positive `int` (a string or a `bool` is
                refused, so no input can steer the request to another path),
                `api_version` is not `"v1"` or `"v2"`, `push` is not a `WebPush`, neither
                the push nor the client has a partner id, or the body would exceed 64 KiB.
        """
        endpoint = _LAUNCHES.get(api_version)
        if endpoint is None:
            raise ValidationError("api_version", f"must be 'v1' or 'v2', not {api_version!r}")
        if not isinstance(push, WebPush):
            raise ValidationError("push", f"must be a WebPush, not {type(push).__name__}")
        if campaign_id is not None:
            campaign_id = check_campaign_id(campaign_id)
        if push.partner_id is None and self._partner_id is None:
            raise ValidationError("partner_id", "is required: set it on the push or on the client")
        url, path = self._url_for(endpoint, campaign_id)
        body = encode_push(push, partner_id=self._partner_id)
        if len(body) > LAUNCH_BODY_MAX:
            raise ValidationError(
                "push",
                f"is {len(body)} bytes as JSON; a launch body may be at most {LAUNCH_BODY_MAX} "
                "(long URLs or target values?)",
            )
        request = Request(endpoint.method, url, body, self._headers)
        return PreparedLaunch(push, campaign_id, endpoint, path, request)

    async def send(
        self,
        push: WebPush,
        *,
        campaign_id: int | None = None,
        api_version: str = "v2",
        dedupe_key: str | None = None,
        retry_ambiguous: bool = False,
        on_attempt: AttemptHook | None = None,
    ) -> LaunchResult:
        """Launch `push`.

        Every attempt takes a grant of the key's quota first; only what certainly did not go
        out is tried again (a 429, a request of which no byte was sent), as `retry` allows.

        With a `dedupe_key` the push is launched at most once under that key across every
        process sharing the client's `dedupe_store`, through retries, task redeliveries and
        reruns, for `dedupe_ttl`: a key already launched returns its first result with
        `replayed=True` and sends nothing; one whose first attempt is in flight or may have
        gone out raises `DedupeConflictError` and sends nothing; one whose first attempt
        certainly failed is sent again. The key is taken at the wire, atomically,
        immediately before the first byte ([`insider_webpush.ledger`][insider_webpush.ledger]).

        Args:
            push: The push. Without its own `partner_id` it takes the client's.
            campaign_id: The draft to launch, a positive `int` from `create`; None (the
                default) posts to the literal path `/v2/single/campaign_id`, as Insider's
                samples do.
            api_version: `"v2"` (the default, 6000 per minute) or `"v1"` (30 per minute);
                each has its own quota.
            dedupe_key: 1 to 200 characters naming this launch, e.g.
                `"order-4711:welcome"`, or None (the default).
            retry_ambiguous: Send a `dedupe_key` whose first attempt may have gone out: your
                decision to risk a duplicate (default False).
            on_attempt: Called as `on_attempt(n)` with the attempt's number (1, 2, ...) once
                per attempt, after its quota grant and immediately before its first byte is
                written; an [`AttemptHook`][insider_webpush.sender.AttemptHook]. A hook that
                raises stops the send with nothing written. None by default.

        Returns:
            Insider's answer; `campaign_id` is the launched campaign's id.

        Raises:
            ValidationError: Before anything is sent (see `prepare_launch`; a bad
                `dedupe_key` too).
            DedupeConflictError: The `dedupe_key` is held by another send (in flight, or
                its first attempt may have gone out: `ambiguous`), or was launched for a
                different push; nothing was sent.
            RateLimitError: A 429 whose `Retry-After` exceeds `retry.max_retry_after`, a key
                paused that long by an earlier 429 (nothing sent), or the attempts ran out.
            APIError: Any other non-success answer (`BadRequestError`,
                `AuthenticationError`, `FailedDependencyError`, `ServerError`...), or a
                success body that cannot be read; `ambiguous` says whether the push may have
                gone out.
            TransportError: No complete answer; `stage` says how far the request got, and
                `ambiguous` whether the push may have gone out.
        """
        launch = self.prepare_launch(push, campaign_id=campaign_id, api_version=api_version)
        if dedupe_key is not None:
            return await self._send_once(launch, dedupe_key, on_attempt, retry_ambiguous)
        # send_prepared's two lines, inlined: one coroutine less on every launch.
        return self._result(await self._request(launch.endpoint, launch.request, on_attempt))

    async def send_prepared(
        self,
        launch: PreparedLaunch,
        *,
        on_attempt: AttemptHook | None = None,
        dedupe_key: str | None = None,
        retry_ambiguous: bool = False,
    ) -> LaunchResult:
        """Send a launch from `prepare_launch`: exactly its bytes, on every attempt.

        Args:
            launch: From `prepare_launch`.
            on_attempt: As for `send`.
            dedupe_key: As for `send`.
            retry_ambiguous: As for `send`.

        Returns:
            Insider's answer.

        Raises:
            InsiderError: As `send` raises; a `ValidationError` only for a bad `dedupe_key`.
        """
        if dedupe_key is not None:
            return await self._send_once(launch, dedupe_key, on_attempt, retry_ambiguous)
        response = await self._request(launch.endpoint, launch.request, on_attempt)
        return self._result(response)

    async def _send_once(
        self,
        launch: PreparedLaunch,
        dedupe_key: str,
        on_attempt: AttemptHook | None,
        retry_ambiguous: bool,
    ) -> LaunchResult:
        """`send_prepared` under a dedupe key: look, take it at the wire, settle."""
        claim = Claim(
            self._dedupe_ledger(),
            check_dedupe_key(dedupe_key),
            launch.digest[:8].hex(),
            lease=self._lease,
            retry_ambiguous=retry_ambiguous,
        )
        action = await claim.look()
        if action is Action.REPLAY and claim.previous is not None:
            return claim.replayed(claim.previous)
        if action is not Action.SEND and action is not Action.RESEND:
            raise claim.conflict(action, claim.previous)

        async def take(number: int) -> None:
            await claim.take(number)
            if on_attempt is not None and (pending := on_attempt(number)) is not None:
                await pending

        try:
            result = self._result(await self._request(launch.endpoint, launch.request, take))
        except Taken as lost:  # another holder took the key while this one waited
            if lost.action is Action.REPLAY and lost.entry is not None:
                return claim.replayed(lost.entry)
            raise claim.conflict(lost.action, lost.entry) from None
        except InsiderError as exc:
            await self._settle(claim, None, exc)
            raise
        await self._settle(claim, result, None)
        return result

    async def _settle(
        self, claim: Claim, result: LaunchResult | None, error: InsiderError | None
    ) -> None:
        try:
            await claim.settle(result, error)
        except TransportError as exc:
            # The send's own outcome stands; the key stays `sending`, which later reads as
            # "may have gone out": never a second launch.
            logger.warning(
                "dedupe key %r: could not record the outcome (%s); the key reads as "
                "ambiguous until it expires",
                claim.key,
                exc,
            )

    def _dedupe_ledger(self) -> Ledger:
        store = self._dedupe_store
        if isinstance(store, str) and store.startswith(("redis://", "rediss://")):
            loop = asyncio.get_running_loop()
            ledger = self._loop_ledgers.get(loop)
            if ledger is None:
                ledger = self._loop_ledgers[loop] = self._open_ledger()
                on_loop_close(self._forget_ledger(loop, ledger))
            return ledger
        if self._ledger is None:
            self._ledger = self._open_ledger()
        return self._ledger

    @property
    def ledger_namespace(self) -> str:
        """What this client's records are kept under in a shared store: hashes of its base URL
        and API key (never the key)."""
        return f"{hashlib.sha256(self._base_url.encode()).hexdigest()[:12]}:{self._key_id}"

    def _open_ledger(self) -> Ledger:
        namespace = f"dedupe:{self.ledger_namespace}"
        return open_ledger(self._dedupe_store, namespace, ttl=self._dedupe_ttl)

    def _forget_ledger(
        self, loop: asyncio.AbstractEventLoop, ledger: Ledger
    ) -> Callable[[], Awaitable[None]]:
        async def forget() -> None:  # the loop is ending: its Redis connections with it
            if self._loop_ledgers.get(loop) is ledger:
                del self._loop_ledgers[loop]
            await ledger.aclose()

        return forget

    def _result(self, response: Response) -> LaunchResult:
        try:
            return launch_result_from_body(response.status, decode_json(response.body))
        except APIError as exc:  # a 2xx we cannot read: its body goes into the error
            exc.body = redact(exc.body, self._api_key)
            telemetry.log_unreadable(response.status, self._key_id)
            raise

    async def create(
        self, title: str, *, language: str = DEFAULT_LANGUAGE, is_all: bool = False
    ) -> int:
        """Create a draft campaign (`POST /v1/single`, 30 per minute); creating sends nothing.

        Args:
            title: The draft's title, 1 to 100 characters; Insider refuses a title already in
                use (a 400).
            language: The campaign's language (default `"all_ALL"`).
            is_all: True to send to every subscriber; False (the default) for a targeted
                launch.

        Returns:
            The draft's campaign id, to launch later with `send(push, campaign_id=...)`.

        Raises:
            ValidationError: The client has no partner id, or a value breaks its rule.
            InsiderError: As for `send`.
        """
        if self._partner_id is None:
            raise ValidationError("partner_id", "is required on the client to create a draft")
        draft = Draft(partner_id=self._partner_id, title=title, language=language, is_all=is_all)
        endpoint = ENDPOINTS[Operation.CREATE]
        url, _ = self._url_for(endpoint, None)
        request = Request(endpoint.method, url, encode_json(draft_to_dict(draft)), self._headers)
        response = await self._request(endpoint, request)
        return self._result(response).campaign_id

    async def delete(self, campaign_id: int) -> None:
        """Delete a draft campaign (`DELETE /v1/single/{campaign_id}`, 30 per minute).

        Args:
            campaign_id: The draft's id, a positive `int`.

        Raises:
            ValidationError: The client has no partner id, or `campaign_id` is not a
                positive `int`.
            InsiderError: As for `send`; a bad id is a `FailedDependencyError`
                (`SERVICE:-Campaign not found`).
        """
        if self._partner_id is None:
            raise ValidationError("partner_id", "is required on the client to delete a draft")
        draft_id = check_required_campaign_id(campaign_id, "the draft to delete")
        endpoint = ENDPOINTS[Operation.DELETE]
        url, _ = self._url_for(endpoint, draft_id)
        body = encode_json(delete_body(self._partner_id))
        await self._request(endpoint, Request(endpoint.method, url, body, self._headers))

    async def send_many(
        self,
        pushes: batch.Pushes,
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | Journal | None = None,
        retry_ambiguous: bool = False,
        stop: asyncio.Event | None = None,
    ) -> batch.BatchResult:
        """Launch every push of `pushes` and return their outcomes in input order.

        Every item gets exactly one [`Outcome`][insider_webpush.batch.Outcome]: a failed
        push, or an item that is not a push, is a failed outcome, never an exception. For
        millions of pushes, `stream` keeps memory flat. See
        [`insider_webpush.batch`][insider_webpush.batch] for the journal's format and rules.

        Args:
            pushes: An iterable or async iterable of `WebPush`, `(campaign_id, WebPush)`
                pairs or [`Launch`][insider_webpush.batch.Launch] items (with a dedupe key)
                ([`PushItem`][insider_webpush.batch.PushItem]), pulled lazily, one item at a
                time (a sync iterable is read on the event loop).
            concurrency: Workers sending at once, 1 to 10,000 (default 64); never more than
                the input's length when it has one.
            journal: A path (`str` or `os.PathLike`) to a JSONL journal that every attempt
                is written ahead to, or a [`Journal`][insider_webpush.ledger.Journal]`(store,
                name)` kept in Redis or SQLite (then a rerun may run on another host).
                Rerunning the same batch with it skips what it recorded as done, resends what
                certainly failed, and reports without resending every push that may have gone
                out. None (the default): no journal.
            retry_ambiguous: On a rerun with a journal, also resend the pushes that may have
                gone out: your decision to risk a duplicate (default False).
            stop: An `asyncio.Event` that stops the batch gracefully once set (e.g. from a
                SIGTERM handler): nothing more is pulled, no new request starts, the pushes
                already on the wire finish, and the ones pulled but not yet on the wire end
                at once with [`NotSentError`][insider_webpush.batch.NotSentError] (nothing
                of them went out; a rerun with the journal sends them). None: never.

        Returns:
            The outcomes, in input order, with `succeeded`, `failed`, `ambiguous` and
                `counts`.

        Raises:
            ValidationError: `concurrency` is out of range, or `pushes` is not iterable.
            BatchInputError: The input itself raised; `.result` holds the outcomes of
                everything pulled before, `__cause__` the input's exception.
            JournalMismatchError: A push no longer matches the journal; `.result` holds the
                outcomes reported before it.
            JournalError: The journal is not one, is damaged, or is in use by another batch.
        """
        return await batch.send_many(
            self,
            pushes,
            concurrency=concurrency,
            journal=journal,
            retry_ambiguous=retry_ambiguous,
            stop=stop,
        )

    def stream(
        self,
        pushes: batch.Pushes,
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | Journal | None = None,
        retry_ambiguous: bool = False,
        stop: asyncio.Event | None = None,
    ) -> AsyncGenerator[batch.Outcome, None]:
        """Like `send_many`, but yield each outcome as it finishes, in bounded memory
        whatever the number of pushes.

        Arguments are checked now; nothing is sent until the first iteration. Leaving the
        loop early stops the workers; wrap it in `contextlib.aclosing(...)` to stop them at
        once rather than when the iterator is garbage-collected.

        Args:
            pushes: As for `send_many`, e.g. `read_pushes("pushes.jsonl")`.
            concurrency: As for `send_many` (default 64).
            journal: As for `send_many`.
            retry_ambiguous: As for `send_many`.
            stop: As for `send_many`.

        Yields:
            Each push's [`Outcome`][insider_webpush.batch.Outcome], as it finishes (not in
                input order: `outcome.index` is the position).

        Raises:
            ValidationError: At the call: `concurrency` is out of range, or `pushes` is not
                iterable.
            BatchInputError: While iterating: the input raised, after every outcome before
                it was yielded (`.result` is None).
            JournalMismatchError: While iterating: a push no longer matches the journal.
            JournalError: While iterating: the journal cannot be used.
        """
        return batch.stream(
            self,
            pushes,
            concurrency=concurrency,
            journal=journal,
            retry_ambiguous=retry_ambiguous,
            stop=stop,
        )

    # -- statistics ---------------------------------------------------------------------

    async def campaign_metrics(
        self, campaign_id: int, *, start_date: dt.date, end_date: dt.date
    ) -> CampaignMetrics:
        """One campaign's statistics (`POST /v1/statistics/campaign-metrics`).

        Insider's three statistics endpoints share one quota of 30 requests a minute per key
        (quota group `statistics`; see `quotas`). They are reads: a 5xx, a timeout or a lost
        connection is retried as `retry` allows, and a `403 "Request limit exceeded"` (their
        throttling answer) or a 429 pauses every reader of the key for its `Retry-After`.

        Args:
            campaign_id: The campaign's id (a launch's `LaunchResult.campaign_id`), a
                positive `int`.
            start_date: The first day, a `datetime.date`; Insider refuses one before the
                campaign was created (a 422).
            end_date: The last day, a `datetime.date`, not before `start_date`.

        Returns:
            The campaign's figures, every one a number
                ([`CampaignMetrics`][insider_webpush.metrics.CampaignMetrics]).

        Raises:
            ValidationError: Before anything is sent: the client has no partner id, the id
                is not a positive `int`, a date is not a `date`, or the end is before the
                start.
            UnprocessableEntityError: Insider refused a field (422); `errors` names them.
            RateLimitError: Still throttled after the retries (or a `Retry-After` longer
                than `retry.max_retry_after`).
            APIError: Any other refusal, or an answer whose figures cannot be read.
            TransportError: No complete answer, after the retries.
        """
        partner_id = self._statistics_partner()
        checked = check_required_campaign_id(campaign_id, "the campaign to read")
        start, end = check_date_range(start_date, end_date)
        body = campaign_metrics_request(partner_id, checked, start, end)
        status, payload = await self._read(Operation.CAMPAIGN_METRICS, body)
        return self._figures(campaign_metrics_from_body, status, payload)

    async def top_metrics(self, *, start_date: dt.date, end_date: dt.date) -> TopMetrics:
        """The account's statistics over every campaign (`POST /v1/statistics/top-metrics`).

        The same quota, retries and throttling as `campaign_metrics`.

        Args:
            start_date: The first day, a `datetime.date`.
            end_date: The last day, a `datetime.date`, not before `start_date`.

        Returns:
            The account's figures per campaign type and its drop reasons
                ([`TopMetrics`][insider_webpush.metrics.TopMetrics]).

        Raises:
            ValidationError: Before anything is sent: no partner id, or bad dates.
            InsiderError: As `campaign_metrics` raises.
        """
        partner_id = self._statistics_partner()
        start, end = check_date_range(start_date, end_date)
        status, payload = await self._read(
            Operation.TOP_METRICS, top_metrics_request(partner_id, start, end)
        )
        return self._figures(top_metrics_from_body, status, payload)

    def overall_metrics(
        self, *, start_date: dt.date, end_date: dt.date, per_page: int = PER_PAGE_DEFAULT
    ) -> AsyncGenerator[CampaignSummary, None]:
        """Every campaign in the interval with its figures (`POST
        /v1/statistics/overall-metrics`), page after page.

        `async for campaign in client.overall_metrics(start_date=..., end_date=...):`.
        Arguments are checked now; the pages are fetched lazily, each when the previous one
        is used up, each through the statistics quota (30 a minute shared with the other two
        endpoints), and none past the last: `ceil(total / per_page)` requests in all, from
        the `total` and `per_page` of Insider's first answer (so a `per_page` it lowers still
        reaches every page). Leaving the loop early fetches nothing more. A later page that
        contradicts the first (another page number or `per_page`, more campaigns than a page,
        or empty before the last) raises `APIError` rather than repeat or drop campaigns.

        Args:
            start_date: The first day, a `datetime.date`.
            end_date: The last day, a `datetime.date`, not before `start_date`.
            per_page: Campaigns per request, 1 to
                [`PER_PAGE_MAX`][insider_webpush.metrics.PER_PAGE_MAX] (default 10,
                Insider's); a public client reports 422 above about 20.

        Returns:
            An async generator of
                [`CampaignSummary`][insider_webpush.metrics.CampaignSummary], in Insider's
                order (`aclose()` it, or use `contextlib.aclosing`, to stop early at once).

        Raises:
            ValidationError: At the call: no partner id, bad dates, or `per_page` out of
                range.
            InsiderError: While iterating, as `campaign_metrics` raises.
        """
        partner_id = self._statistics_partner()
        start, end = check_date_range(start_date, end_date)
        return self._pages(partner_id, start, end, check_per_page(per_page))

    async def _pages(
        self, partner_id: str, start: dt.date, end: dt.date, per_page: int
    ) -> AsyncGenerator[CampaignSummary, None]:
        # The first answer fixes the listing: its `per_page` (which Insider may lower) and its
        # number of pages. A later page that contradicts it raises rather than loop, repeat
        # or drop campaigns without a word.
        page, pages, size = 1, 1, per_page
        while page <= pages:
            body = overall_metrics_request(partner_id, start, end, page, per_page)
            status, payload = await self._read(Operation.OVERALL_METRICS, body)
            answer = self._figures(metrics_page_from_body, status, payload)
            if page == 1:
                pages, size = answer.pages, answer.per_page
            problem = _page_problem(answer, page, pages, size)
            if problem is not None:
                message = f"overall metrics: {problem}; the listing cannot be trusted"
                raise self._unreadable(status, message, payload)
            for campaign in answer.campaigns:
                yield campaign
            page += 1

    def _statistics_partner(self) -> str:
        if self._partner_id is None:
            raise ValidationError("partner_id", "is required on the client to read statistics")
        return self._partner_id

    async def _read(self, operation: Operation, body: dict[str, str]) -> tuple[int, object]:
        """One statistics request: `(status, decoded body)` of its success."""
        endpoint = ENDPOINTS[operation]
        url, _ = self._url_for(endpoint, None)
        request = Request(endpoint.method, url, encode_json(body), self._headers)
        response = await self._request(endpoint, request)
        return response.status, decode_json(response.body)

    def _figures(self, read: Callable[[int, object], T], status: int, payload: object) -> T:
        try:
            return read(status, payload)
        except APIError as exc:  # the message quotes the server's values: never the key
            raise self._unreadable(status, exc.message, payload) from None

    def _unreadable(self, status: int, message: str, payload: object) -> APIError:
        """A read's answer that cannot be used (not ambiguous: a read launches nothing), with
        the key redacted wherever a server echoed it."""
        key = self._api_key
        return APIError(status, redact(message, key), body=redact(payload, key), ambiguous=False)

    # -- the one request path -----------------------------------------------------------

    def _url_for(self, endpoint: Endpoint, campaign_id: int | None) -> tuple[str, str]:
        """``(url, path)``; the fixed paths are kept (ids are many, and cheap to format)."""
        if campaign_id is None:
            cached = self._urls.get(endpoint.path)
            if cached is None:
                path = endpoint.path_for(None)
                cached = self._urls[endpoint.path] = (self._base_url + path, path)
            return cached
        path = endpoint.path_for(campaign_id)
        return self._base_url + path, path

    def _limiter_for(self, endpoint: Endpoint) -> Limiter:
        """The limiter of ``endpoint``'s quota group, made on first use (see ``_request``)."""
        quota = endpoint.quota
        limiter = self._limiters.get(quota)
        if limiter is None:
            operation = endpoint.operation
            if self._limiter_override is not None and operation is Operation.LAUNCH_V2:
                limiter = self._limiter_override
            else:
                rate_limit, rate_period = self._quota[quota]
                key = (self._base_url, self._key_id, quota)
                if self._redis_url is not None:  # one per event loop: not kept below
                    return self._redis_limiter(key, rate_limit, rate_period)
                limiter = shared_limiter(key, rate_limit, rate_period)
            self._limiters[quota] = limiter
        return limiter

    def _redis_limiter(self, key: LimiterKey, rate_limit: int, rate_period: float) -> Limiter:
        from .redis_limiter import shared_redis_limiter

        loop = asyncio.get_running_loop()
        limiters = self._redis_limiters.get(loop)
        if limiters is None:
            limiters = self._redis_limiters[loop] = {}
            on_loop_close(self._release_redis(loop, limiters))
        limiter = limiters.get(key[2])
        if limiter is None:
            assert self._redis_url is not None
            limiter = limiters[key[2]] = shared_redis_limiter(
                self._redis_url,
                key,
                rate_limit,
                rate_period,
                fallback_processes=self._redis_fallback_processes,
            )
        return limiter

    def _release_redis(
        self, loop: asyncio.AbstractEventLoop, limiters: dict[str, RedisLimiter]
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def release() -> None:  # in `loop`, when it ends or at close()
            if self._redis_limiters.get(loop) is limiters:
                del self._redis_limiters[loop]
            while limiters:
                await limiters.popitem()[1].aclose()

        return release

    async def _request(
        self,
        endpoint: Endpoint,
        request: Request,
        on_attempt: AttemptHook | None = None,
        op: telemetry.Operation | None = None,
    ) -> Response:
        """Send one request, taking a quota grant at the wire for every attempt.

        Returns the successful response, or raises the last error. Retries only what the
        outcome table and the retry policy allow.
        """
        if op is None and self._telemetry is not None and self._telemetry.recording():
            # Again, inside the operation's span: telemetry.Operation records each attempt.
            return await self._telemetry.observe(self._request, endpoint, request, on_attempt)
        limiter = self._limiters.get(endpoint.quota) or self._limiter_for(endpoint)
        max_pause = self._retry.max_retry_after
        if (paused := limiter.paused_for()) > max_pause:  # fail before taking a connection
            raise paused_error(paused, max_pause)
        idempotent = endpoint.idempotent
        debug = logger.isEnabledFor(logging.DEBUG)
        # An attempt that may have gone out and was resent anyway (RetryPolicy's
        # resend_statuses, the caller's choice): whatever ends the request, it stays ambiguous.
        maybe_out = False
        attempt = 0
        while True:
            attempt += 1
            if op is not None:
                op.attempt_started()

            started = [time.perf_counter()] if debug else _UNTIMED

            async def gate(number: int = attempt, timing: list[float] = started) -> None:
                waiting = time.perf_counter() if op is not None else 0.0
                # A pause too long to wait, set before or while this waits: fail, send nothing.
                await limiter.acquire(max_pause=max_pause)
                if op is not None:
                    op.granted(time.perf_counter() - waiting)
                if on_attempt is not None and (pending := on_attempt(number)) is not None:
                    await pending  # e.g. a journal or dedupe record taken at the wire
                if op is not None:
                    op.on_wire(waiting)
                if debug:  # the request's own time, from its first byte: not the quota's wait
                    timing[0] = time.perf_counter()

            try:
                response = await self._transport.send(request, gate, self._timeouts)
            except TransportError as exc:
                if debug:
                    self._log(request, attempt, started[0], exc.stage.value)
                delay = self._retry.delay(attempt, exc, idempotent=idempotent)
                telemetry.attempt_failed(op, request, self._key_id, exc, delay)
                if delay is None:
                    exc.ambiguous = exc.ambiguous or maybe_out
                    raise
                maybe_out = maybe_out or exc.ambiguous
                await asyncio.sleep(delay)
                continue
            status = response.status
            if debug:
                self._log(request, attempt, started[0], status)
            if 200 <= status < 300:
                return response
            headers = response.headers
            if not isinstance(headers, CIMultiDictProxy | CIMultiDict):
                headers = CIMultiDict(headers)  # a transport may send names in lower case
            retry_after = parse_retry_after(headers.get("Retry-After"))
            throttles = endpoint.throttle_statuses
            verdict = verdict_for_status(status, idempotent=idempotent, throttle_statuses=throttles)
            throttled = status in throttles
            if throttled:
                # Everyone on this key pauses, not only the request that was told.
                pause = retry_after if retry_after is not None else self._retry.backoff(attempt)
                limiter.penalize(pause)
                logger.warning(
                    "%s %s: HTTP %d (quota exceeded); every sender on key sha256:%s pauses "
                    "for %.3f s",
                    request.method,
                    _path(request.url),
                    status,
                    self._key_id,
                    pause,
                    extra={LOG_EVENT: "rate_limited"},
                )
            delay = self._retry.delay(
                attempt, status, headers, idempotent=idempotent, throttle_statuses=throttles
            )
            telemetry.attempt_answered(op, request, self._key_id, status, verdict, delay)
            if delay is None:
                payload = redact(decode_json(response.body), self._api_key)
                raise error_for_status(
                    status,
                    error_message(payload),
                    body=payload,
                    retry_after=retry_after,
                    ambiguous=verdict.ambiguous or maybe_out,
                    throttled=throttled,
                    errors=field_errors(payload),
                )
            maybe_out = maybe_out or verdict.ambiguous
            await asyncio.sleep(delay)

    @staticmethod
    def _log(request: Request, attempt: int, started: float, result: object) -> None:
        logger.debug(
            "%s %s attempt %d -> %s in %.1f ms (Authorization: Bearer <redacted>)",
            request.method,
            request.url,
            attempt,
            result,
            (time.perf_counter() - started) * 1000,
        )


def _page_problem(answer: MetricsPage, page: int, pages: int, per_page: int) -> str | None:
    """What makes `answer` contradict the listing its first page fixed, or None."""
    if answer.page != page:
        return f"asked for page {page}, Insider answered page {answer.page}"
    if answer.per_page != per_page:
        return f"page {page} has {answer.per_page} a page, page 1 had {per_page}"
    if len(answer.campaigns) > per_page:
        return f"page {page} holds {len(answer.campaigns)} campaigns, more than {per_page}"
    if not answer.campaigns and page < pages:
        return f"page {page} of {pages} is empty"
    return None


_UNTIMED = [0.0]  # read, never written, when DEBUG logging is off: no list per attempt


def _path(url: str) -> str:
    return urlsplit(url).path


def _quotas(
    quotas: Mapping[str, tuple[int, float]] | None, rate_limit: int, rate_period: float
) -> dict[str, tuple[int, float]]:
    """Every quota group's `(rate_limit, rate_period)`: the defaults, `quotas` over them, and
    the `rate_limit`/`rate_period` shorthand for launch v2."""
    launch_v2 = QUOTAS[ENDPOINTS[Operation.LAUNCH_V2].quota]
    out = {**QUOTAS, "launch_v2": (rate_limit, float(rate_period))}
    if quotas is None:
        return out
    if not isinstance(quotas, Mapping):
        raise ValidationError(
            "quotas", f"must be a dict of group -> (rate_limit, rate_period), not {quotas!r}"
        )
    for group, quota in quotas.items():
        field = f"quotas[{group!r}]"
        if group not in QUOTAS:
            raise ValidationError(field, f"is not a quota group; the groups: {', '.join(QUOTAS)}")
        if not isinstance(quota, tuple | list) or len(quota) != 2:
            raise ValidationError(field, f"must be (rate_limit, rate_period), got {quota!r}")
        check_quota(quota[0], quota[1], field=f"{field} rate_limit")
        if group == "launch_v2" and (rate_limit, rate_period) != launch_v2:
            raise ValidationError(
                field, "and rate_limit/rate_period both set launch v2's quota: give one"
            )
        out[group] = (quota[0], float(quota[1]))
    return out
