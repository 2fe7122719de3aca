"""``WebPushClient``: the session, the operations, and the one path every request takes."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import aiohttp

from . import batch
from ._version import __version__
from .codec import (
    delete_body,
    draft_to_dict,
    error_message,
    launch_result_from_body,
    push_to_dict,
)
from .endpoints import DEFAULT_BASE_URL, ENDPOINTS, Endpoint, Operation
from .errors import TransportError, ValidationError, error_for_status
from .limiter import Limiter, key_fingerprint, shared_limiter
from .models import DEFAULT_LANGUAGE, Draft, LaunchResult, WebPush
from .retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:  # redis is an optional extra
    from .redis_limiter import RedisLimiter

__all__ = ["DEFAULT_TIMEOUT", "WebPushClient"]

logger = logging.getLogger("insider_webpush")

DEFAULT_TIMEOUT = 30.0  # seconds for a whole request, connect to last byte
_LAUNCHES = {"v1": Operation.LAUNCH_V1, "v2": Operation.LAUNCH_V2}

AttemptHook = Callable[[int], None]
"""Called with the attempt number (1, 2, ...) once the limiter has granted the attempt and
right before it goes on the wire. The batch journal writes ahead from here."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise ValidationError("base_url", "must be a string URL")
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError as exc:
        raise ValidationError("base_url", f"is not a valid URL ({exc})") from None
    if not host or parts.scheme not in ("https", "http"):
        raise ValidationError("base_url", "must be an absolute https:// URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ValidationError(
            "base_url", "must use https://; plain http:// is allowed only for loopback hosts"
        )
    return base_url.rstrip("/")


class WebPushClient:
    """An asyncio client for Insider One's Single Web Push API.

    Use it as ``async with WebPushClient(api_key, partner_id=...) as client:`` or call
    :meth:`close`. Every request waits for the key's quota (shared by every client of the
    key in this event loop), and is retried only when Insider cannot have carried it out.
    """

    def __init__(
        self,
        api_key: str,
        *,
        partner_id: str | int | None = None,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: int = ENDPOINTS[Operation.LAUNCH_V2].rate_limit,
        rate_period: float = ENDPOINTS[Operation.LAUNCH_V2].rate_period,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        redis_url: str | None = None,
        redis_fallback_processes: int | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValidationError("api_key", "must be a non-empty string")
        if partner_id is not None:
            # The model owns the partner id rule; a throwaway draft applies it.
            partner_id = Draft(partner_id=partner_id, title="-").partner_id
        self._base_url = _check_base_url(base_url)
        self._partner_id: str | None = partner_id
        self._key_id = key_fingerprint(api_key)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": f"insider-webpush/{__version__}",
        }
        self._quota = {Operation.LAUNCH_V2: (rate_limit, rate_period)}
        self._limiter_override = limiter
        self._limiters: dict[Operation, Limiter] = {}
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
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
        self._redis_limiters: dict[Operation, RedisLimiter] = {}

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A client from ``INSIDER_API_KEY``, ``INSIDER_PARTNER_ID`` and ``INSIDER_BASE_URL``.

        Keyword arguments are passed on and win over the environment.
        """
        api_key = os.environ.get("INSIDER_API_KEY")
        if not api_key:
            raise ValidationError("INSIDER_API_KEY", "is not set in the environment")
        kwargs.setdefault("partner_id", os.environ.get("INSIDER_PARTNER_ID") or None)
        kwargs.setdefault("base_url", os.environ.get("INSIDER_BASE_URL") or DEFAULT_BASE_URL)
        return cls(api_key, **kwargs)

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def partner_id(self) -> str | None:
        return self._partner_id

    def __repr__(self) -> str:
        return (
            f"WebPushClient(base_url={self._base_url!r}, partner_id={self._partner_id!r}, "
            f"key=sha256:{self._key_id})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if the client made it; a borrowed ``session=`` is left open."""
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None
        # Shared Redis limiters are counted per user; the last one closes the connection.
        while self._redis_limiters:
            operation, redis_limiter = self._redis_limiters.popitem()
            self._limiters.pop(operation, None)
            await redis_limiter.aclose()

    # -- operations ---------------------------------------------------------------------

    async def send(
        self,
        push: WebPush,
        *,
        campaign_id: int | None = None,
        api_version: str = "v2",
        on_attempt: AttemptHook | None = None,
    ) -> LaunchResult:
        """Launch ``push``; to the draft ``campaign_id`` when given (see :meth:`create`).

        Raises ``ValidationError`` before sending when the push has no partner id and the
        client has none either, or an :class:`InsiderError` when the launch failed.
        """
        operation = _LAUNCHES.get(api_version)
        if operation is None:
            raise ValidationError("api_version", f"must be 'v1' or 'v2', not {api_version!r}")
        if not isinstance(push, WebPush):
            raise ValidationError("push", f"must be a WebPush, not {type(push).__name__}")
        if push.partner_id is None and self._partner_id is None:
            raise ValidationError("partner_id", "is required: set it on the push or on the client")
        status, body = await self._request(
            operation,
            push_to_dict(push, partner_id=self._partner_id),
            campaign_id=campaign_id,
            on_attempt=on_attempt,
        )
        return launch_result_from_body(status, body)

    async def create(
        self, title: str, *, language: str = DEFAULT_LANGUAGE, is_all: bool = False
    ) -> int:
        """Create a draft campaign and return its id, to launch later with ``send``."""
        if self._partner_id is None:
            raise ValidationError("partner_id", "is required on the client to create a draft")
        draft = Draft(partner_id=self._partner_id, title=title, language=language, is_all=is_all)
        status, body = await self._request(Operation.CREATE, draft_to_dict(draft))
        return launch_result_from_body(status, body).campaign_id

    async def delete(self, campaign_id: int) -> None:
        """Delete the draft campaign ``campaign_id``."""
        if self._partner_id is None:
            raise ValidationError("partner_id", "is required on the client to delete a draft")
        await self._request(
            Operation.DELETE, delete_body(self._partner_id), campaign_id=campaign_id
        )

    async def send_many(
        self,
        pushes: batch.Pushes,
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        retry_ambiguous: bool = False,
    ) -> batch.BatchResult:
        """Launch every push of ``pushes`` and return their outcomes in input order.

        ``pushes`` is an iterable or async iterable of ``WebPush`` or ``(campaign_id,
        WebPush)`` pairs, pulled lazily by ``concurrency`` workers (a sync iterable is read on
        the event loop). A failed push is a failed :class:`Outcome`, never an exception. The
        result holds every outcome; for millions of pushes, :meth:`stream` keeps memory
        flat. With ``journal=PATH`` every attempt is written ahead to a JSONL file, and
        rerunning the same batch with it skips every push it recorded as done and reports,
        without resending, every push that may have gone out (resent only with
        ``retry_ambiguous=True``). Raises ``JournalMismatchError`` when the input no longer
        matches the journal. See :mod:`insider_webpush.batch`.
        """
        return await batch.send_many(
            self,
            pushes,
            concurrency=concurrency,
            journal=journal,
            retry_ambiguous=retry_ambiguous,
        )

    def stream(
        self,
        pushes: batch.Pushes,
        *,
        concurrency: int = batch.DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        retry_ambiguous: bool = False,
    ) -> AsyncGenerator[batch.Outcome, None]:
        """Like :meth:`send_many`, but yield each :class:`Outcome` as it finishes, in bounded
        memory whatever the number of pushes.

        Leaving the loop early stops the workers; wrap it in ``contextlib.aclosing(...)`` to
        stop them at once rather than when the iterator is garbage-collected.
        """
        return batch.stream(
            self,
            pushes,
            concurrency=concurrency,
            journal=journal,
            retry_ambiguous=retry_ambiguous,
        )

    # -- the one request path -----------------------------------------------------------

    def _limiter_for(self, operation: Operation) -> Limiter:
        limiter = self._limiters.get(operation)
        if limiter is None:
            if self._limiter_override is not None and operation is Operation.LAUNCH_V2:
                limiter = self._limiter_override
            else:
                endpoint = ENDPOINTS[operation]
                rate_limit, rate_period = self._quota.get(
                    operation, (endpoint.rate_limit, endpoint.rate_period)
                )
                key = (self._base_url, self._key_id, operation.value)
                if self._redis_url is not None:
                    from .redis_limiter import shared_redis_limiter

                    limiter = self._redis_limiters[operation] = shared_redis_limiter(
                        self._redis_url,
                        key,
                        rate_limit,
                        rate_period,
                        fallback_processes=self._redis_fallback_processes,
                    )
                else:
                    limiter = shared_limiter(key, rate_limit, rate_period)
            self._limiters[operation] = limiter
        return limiter

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError("the session passed to WebPushClient is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def _request(
        self,
        operation: Operation,
        body: Mapping[str, Any],
        *,
        campaign_id: int | None = None,
        on_attempt: AttemptHook | None = None,
    ) -> tuple[int, object]:
        """Send one operation, waiting for the quota before every attempt.

        Returns ``(status, decoded body)`` of a success, or raises the last error.
        """
        endpoint = ENDPOINTS[operation]
        url = self._base_url + endpoint.path_for(campaign_id)
        limiter = self._limiter_for(operation)
        session = self._session_or_new()
        attempt = 0
        while True:
            attempt += 1
            await limiter.acquire()
            if on_attempt is not None:
                on_attempt(attempt)
            started = time.perf_counter()
            try:
                status, headers, payload = await self._attempt(session, endpoint, url, body)
            except TransportError as exc:
                self._log(endpoint, url, attempt, started, repr(exc))
                if (delay := self._retry.delay(attempt, exc)) is None:
                    raise
                await asyncio.sleep(delay)
                continue
            self._log(endpoint, url, attempt, started, status)
            if 200 <= status < 300:
                return status, payload
            delay = self._retry.delay(attempt, status, headers)
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if status == 429:
                # Everyone on this key pauses, not only the request that was told.
                limiter.penalize(
                    delay if delay is not None else retry_after or self._retry.backoff(attempt)
                )
            if delay is None:
                raise error_for_status(
                    status, error_message(payload), body=payload, retry_after=retry_after
                )
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        url: str,
        body: Mapping[str, Any],
    ) -> tuple[int, Mapping[str, str], object]:
        try:
            async with session.request(
                endpoint.method, url, json=body, headers=self._headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                return response.status, response.headers, _decode(raw)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The connection never opened: Insider cannot have seen the request.
            raise TransportError(f"could not connect: {exc}", ambiguous=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else "failed"
            raise TransportError(
                f"request {what} after it may have been sent: {exc!r}", ambiguous=True
            ) from None

    def _log(
        self, endpoint: Endpoint, url: str, attempt: int, started: float, result: object
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s attempt %d -> %s in %.1f ms (Authorization: Bearer <redacted>)",
                endpoint.method,
                url,
                attempt,
                result,
                (time.perf_counter() - started) * 1000,
            )


def _decode(raw: bytes) -> object:
    if not raw:
        return None
    try:
        # Decoding first skips json's encoding sniffing (~0.5 us a request); JSON is UTF-8.
        return json.loads(raw.decode())
    except ValueError:  # not UTF-8, or not JSON
        return raw.decode("utf-8", "replace")
