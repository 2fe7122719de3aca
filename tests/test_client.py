"""WebPushClient: the exact requests it makes, how it fails, retries, logs and cleans up.

The wire is faked one way only, behind the Transport seam: ``ScriptedTransport``
(``tests/stub_transport.py``) for the exact request and every answer, and FakeInsider or a
loopback aiohttp server where a real HTTP exchange matters. Nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import socket
import warnings
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from insider_webpush import (
    DEFAULT_BASE_URL,
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    FakeInsider,
    Fault,
    InsiderError,
    LaunchResult,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    UnprocessableEntityError,
    ValidationError,
    WebPush,
    WebPushClient,
    __version__,
)
from insider_webpush.models import CAMPAIGN_ID_MAX, Timeouts
from insider_webpush.outcomes import Stage
from insider_webpush.transport import AiohttpTransport, Gate, Request, Response, WireConnector

from .samples import MINIMAL_FIELDS, MINIMAL_WIRE, full_push, full_wire
from .stub_transport import ScriptedTransport, Step

KEY = "sk-live-0123456789abcdef-SECRET"
PARTNER = "10000001"
LAUNCH = f"{DEFAULT_BASE_URL}/v2/single/campaign_id"
OK = {"success": True, "campaign_id": 1697300275}
FAST = RetryPolicy(max_attempts=5, base=0.001, cap=0.01)
MINIMAL = WebPush(**MINIMAL_FIELDS)
MINIMAL_BODY = {**MINIMAL_WIRE, "partner_id": PARTNER}
FULL = full_push("20000002")  # its own partner id, not the client's
FULL_BODY = full_wire("20000002")
HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "User-Agent": f"insider-webpush/{__version__}",
    "Content-Type": "application/json",
}


def client(stub: ScriptedTransport, **kwargs: Any) -> WebPushClient:
    """A client of KEY whose every request goes to ``stub``."""
    kwargs.setdefault("partner_id", PARTNER)
    kwargs.setdefault("retry", FAST)
    return WebPushClient(KEY, transport=stub, **kwargs)


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def assert_no_key(*things: object, key: str = KEY) -> None:
    """Not in the text, the repr, nor any attribute of each error (the client itself must
    hold the key to send it, so only its repr is checked, elsewhere)."""
    for thing in things:
        assert key not in str(thing)
        assert key not in repr(thing)
        assert key not in repr(getattr(thing, "__dict__", {}))


def free_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the exact request ----------------------------------------------------------------------


async def test_minimal_push_exact_request() -> None:
    stub = ScriptedTransport([(200, OK)])
    async with client(stub) as c:
        result = await c.send(MINIMAL)
    assert result == LaunchResult(success=True, campaign_id=1697300275)
    (sent,) = stub.sent
    assert sent.request.method == "POST"
    assert sent.request.url == LAUNCH
    assert dict(sent.request.headers) == HEADERS
    assert sent.json == MINIMAL_BODY  # no banner, language, target, include_...
    assert sent.request.body == compact(MINIMAL_BODY)  # compact JSON, in field order
    assert sent.timeouts == Timeouts()


async def test_full_push_exact_request() -> None:
    stub = ScriptedTransport([(200, {"success": True, "campaign_id": 123})])
    async with client(stub) as c:
        result = await c.send(FULL, campaign_id=123)
    assert result.campaign_id == 123
    (sent,) = stub.sent
    assert (sent.request.method, sent.request.url) == ("POST", f"{DEFAULT_BASE_URL}/v2/single/123")
    assert sent.json == FULL_BODY
    assert dict(sent.request.headers) == HEADERS


async def test_every_attempt_sends_the_same_bytes() -> None:
    stub = ScriptedTransport([(429, {}, {"Retry-After": "0"}), Stage.NOT_SENT, (200, OK)])
    async with client(stub) as c:
        await c.send(FULL, campaign_id=5)
    first, second = stub.sent
    assert first.request == second.request
    assert first.request.body == second.request.body


async def test_request_on_the_wire() -> None:
    """The same request as a server sees it, Content-Type included (loopback only)."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def launch(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.headers), await request.read()))
        return web.json_response(OK)

    app = web.Application()
    app.router.add_post("/v2/single/{campaign_id}", launch)
    async with TestServer(app, host="127.0.0.1") as server:
        base_url = f"http://127.0.0.1:{server.port}"
        async with WebPushClient(KEY, partner_id=PARTNER, base_url=base_url, retry=FAST) as c:
            assert (await c.send(MINIMAL)).campaign_id == OK["campaign_id"]
    ((method, path, headers, body),) = seen
    assert (method, path) == ("POST", "/v2/single/campaign_id")
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["User-Agent"] == f"insider-webpush/{__version__}"
    assert headers["Content-Type"] == "application/json"
    assert body == compact(MINIMAL_BODY)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (7.5, Timeouts(total=7.5)),
        (3, Timeouts(total=3.0)),
        (Timeouts(total=2.0, read=1.0), Timeouts(total=2.0, read=1.0)),
    ],
)
async def test_timeout_is_passed_per_request(given: float | Timeouts, expected: Timeouts) -> None:
    stub = ScriptedTransport()
    async with client(stub, timeout=given) as c:
        assert c.timeouts == expected
        await c.send(MINIMAL)
    assert stub.sent[0].timeouts == expected


# -- partner_id -----------------------------------------------------------------------------


async def test_client_partner_id_fills_the_push() -> None:
    stub = ScriptedTransport()
    async with client(stub, partner_id=30000003) as c:
        assert c.partner_id == "30000003"
        await c.send(MINIMAL)
    assert stub.sent[0].json["partner_id"] == "30000003"


async def test_push_partner_id_overrides_the_client() -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        await c.send(FULL)
    assert stub.sent[0].json["partner_id"] == "20000002"


async def test_no_partner_id_anywhere_sends_nothing() -> None:
    stub = ScriptedTransport()
    async with client(stub, partner_id=None) as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL)
    assert info.value.field == "partner_id"
    assert stub.sent == []


@pytest.mark.parametrize("partner_id", ["", True, 1.5])
def test_client_refuses_a_bad_partner_id(partner_id: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, partner_id=partner_id)
    assert info.value.field == "partner_id"


@pytest.mark.parametrize("api_key", ["", "   ", None, 123])
def test_client_refuses_a_missing_key(api_key: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(api_key)
    assert info.value.field == "api_key"


async def test_not_a_push_sends_nothing() -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL_BODY)  # type: ignore[arg-type]
    assert info.value.field == "push"
    assert stub.sent == []


# -- campaign_id: a positive int, since it becomes a path segment -------------------------------

BAD_CAMPAIGN_IDS = [
    "../../v1/single/1001",
    "../../v1/single",
    "1001",
    True,
    False,
    0,
    -1,
    1.5,
    1001.0,
    CAMPAIGN_ID_MAX + 1,
]


@pytest.mark.parametrize("campaign_id", BAD_CAMPAIGN_IDS, ids=repr)
async def test_bad_campaign_id_sends_nothing(campaign_id: Any) -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        for api_version in ("v2", "v1"):
            with pytest.raises(ValidationError) as info:
                await c.send(MINIMAL, campaign_id=campaign_id, api_version=api_version)
            assert info.value.field == "campaign_id"
        with pytest.raises(ValidationError) as info:
            c.prepare_launch(MINIMAL, campaign_id=campaign_id)
        assert info.value.field == "campaign_id"
        with pytest.raises(ValidationError) as info:
            await c.delete(campaign_id)
        assert info.value.field == "campaign_id"
    assert stub.sent == []
    assert stub.gated == 0


@pytest.mark.parametrize("campaign_id", [1, 1001, CAMPAIGN_ID_MAX])
async def test_good_campaign_id_is_the_path_segment(campaign_id: int) -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        await c.send(MINIMAL, campaign_id=campaign_id)
    assert stub.sent[0].request.url == f"{DEFAULT_BASE_URL}/v2/single/{campaign_id}"


async def test_delete_needs_a_campaign_id() -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        with pytest.raises(ValidationError) as info:
            await c.delete(None)  # type: ignore[arg-type]
    assert info.value.field == "campaign_id"
    assert stub.sent == []


# -- every status through the client ---------------------------------------------------------

STATUSES = [
    (400, {"message": "title is duplicated"}, BadRequestError, False),
    (401, {"message": "Unauthorized"}, AuthenticationError, False),
    (403, {"message": "Forbidden"}, APIError, False),
    (404, {"message": "Not Found"}, APIError, False),
    (422, {"message": "Unprocessable", "errors": {"f": ["bad"]}}, UnprocessableEntityError, False),
    (424, {"message": "SERVICE:-Campaign not found"}, FailedDependencyError, False),
    (429, {"message": "Request limit exceeded"}, RateLimitError, False),
    (500, {"message": "Internal Server Error"}, ServerError, True),
    (502, {"message": "Bad Gateway"}, ServerError, True),
    (503, {"message": "Service Unavailable"}, ServerError, True),
    (504, {"message": "Gateway Timeout"}, ServerError, True),
    (520, {"message": "Web server is returning an unknown error"}, ServerError, True),
    (524, {"message": "A timeout occurred"}, ServerError, True),
    (599, {"message": "Network Connect Timeout"}, ServerError, True),
    (301, {"message": "Moved Permanently"}, APIError, True),
    (302, {"message": "Found"}, APIError, True),
    (405, {"message": "Method Not Allowed"}, APIError, True),
    (409, {"message": "Conflict"}, APIError, True),
]


@pytest.mark.parametrize(("status", "body", "cls", "ambiguous"), STATUSES)
async def test_status_becomes_its_error(
    status: int, body: dict[str, str], cls: type[APIError], ambiguous: bool
) -> None:
    stub = ScriptedTransport([(status, body)])
    async with client(stub, retry=RetryPolicy.never()) as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    err = info.value
    assert type(err) is cls
    assert (err.status, err.message, err.body, err.ambiguous) == (
        status,
        body["message"],
        body,
        ambiguous,
    )
    assert len(stub.sent) == 1
    assert_no_key(err)
    assert KEY not in repr(c)


@pytest.mark.parametrize(("status", "body", "cls", "ambiguous"), STATUSES)
async def test_only_a_429_is_resent(
    status: int, body: dict[str, str], cls: type[APIError], ambiguous: bool
) -> None:
    """With the default policy: a 429 is resent; every other status is reported at once."""
    stub = ScriptedTransport([(status, body, {"Retry-After": "0"}), (200, OK)])
    async with client(stub) as c:
        if status == 429:
            assert (await c.send(MINIMAL)).campaign_id == OK["campaign_id"]
        else:
            with pytest.raises(cls) as info:
                await c.send(MINIMAL)
            assert info.value.status == status
            assert info.value.ambiguous is ambiguous
    assert len(stub.sent) == (2 if status == 429 else 1)


async def test_rate_limit_error_carries_retry_after() -> None:
    # Longer than max_retry_after: not worth waiting for, so reported at once.
    stub = ScriptedTransport(default=(429, {}, {"Retry-After": "600"}))
    async with client(stub, retry=RetryPolicy(max_retry_after=120)) as c:
        with pytest.raises(RateLimitError) as info:
            await c.send(MINIMAL)
    assert info.value.retry_after == 600.0
    assert info.value.ambiguous is False
    assert len(stub.sent) == 1


async def test_text_error_body_becomes_the_message() -> None:
    stub = ScriptedTransport([(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})])
    async with client(stub) as c:
        with pytest.raises(ServerError) as info:
            await c.send(MINIMAL)
    assert info.value.message == "<html>Bad Gateway</html>"
    assert info.value.body == "<html>Bad Gateway</html>"
    assert info.value.ambiguous is True


@pytest.mark.parametrize(
    "body",
    [{"success": False}, {"success": True}, b"OK", b"", b"\xff\xfe not utf-8"],
    ids=["success-false", "no-id", "text", "empty", "bytes"],
)
async def test_unreadable_success_is_an_ambiguous_api_error(body: object) -> None:
    stub = ScriptedTransport([(200, body)])
    async with client(stub) as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    assert info.value.status == 200
    assert info.value.ambiguous
    assert len(stub.sent) == 1


# -- the API key never enters an error -------------------------------------------------------

ECHO_KEY = "SECRET-KEY-123"


@pytest.mark.parametrize(
    ("step", "cls"),
    [
        ((400, {"message": "bad key Bearer SECRET-KEY-123"}), BadRequestError),
        ((401, {"message": "Unauthorized", "authorization": "Bearer SECRET-KEY-123"}), APIError),
        ((500, b"upstream said: Authorization: Bearer SECRET-KEY-123"), ServerError),
        ((503, {"errors": [{"detail": ["SECRET-KEY-123"]}], "SECRET-KEY-123": 1}), ServerError),
        ((429, {"message": "slow down, SECRET-KEY-123"}, {"Retry-After": "9999"}), RateLimitError),
        ((200, {"success": True, "echo": "Bearer SECRET-KEY-123"}), APIError),
    ],
    ids=["400-message", "401-field", "500-text", "503-nested", "429", "200-unreadable"],
)
async def test_server_text_that_echoes_the_key_is_redacted(step: Any, cls: type[APIError]) -> None:
    stub = ScriptedTransport([step])
    async with WebPushClient(ECHO_KEY, partner_id=PARTNER, transport=stub, retry=FAST) as c:
        with pytest.raises(cls) as info:
            await c.send(MINIMAL)
    err = info.value
    assert len(stub.sent) == 1
    assert stub.sent[0].request.headers["Authorization"] == f"Bearer {ECHO_KEY}"  # it was sent
    for text in (str(err), repr(err), err.message, repr(err.body), repr(err.args)):
        assert ECHO_KEY not in text
    assert_no_key(err, key=ECHO_KEY)
    assert "<redacted>" in repr(err.body)


async def test_redacted_message_keeps_the_rest() -> None:
    stub = ScriptedTransport([(400, {"message": "bad key Bearer SECRET-KEY-123"})])
    async with WebPushClient(ECHO_KEY, partner_id=PARTNER, transport=stub) as c:
        with pytest.raises(BadRequestError) as info:
            await c.send(MINIMAL)
    assert info.value.message == "bad key Bearer <redacted>"
    assert info.value.body == {"message": "bad key Bearer <redacted>"}
    assert str(info.value) == "HTTP 400: bad key Bearer <redacted>"


# -- retries ---------------------------------------------------------------------------------


async def test_429_then_200_is_retried() -> None:
    stub = ScriptedTransport([(429, {}, {"Retry-After": "0.01"}), (200, OK)])
    attempts: list[int] = []
    async with client(stub, retry=RetryPolicy()) as c:
        result = await c.send(MINIMAL, on_attempt=attempts.append)
    assert result.campaign_id == OK["campaign_id"]
    assert len(stub.sent) == 2
    assert attempts == [1, 2]


async def test_503_is_not_resent_by_default() -> None:
    stub = ScriptedTransport([(503, {"message": "Service Unavailable"}), (200, OK)])
    async with client(stub) as c:
        with pytest.raises(ServerError) as info:
            await c.send(MINIMAL)
    assert info.value.status == 503
    assert info.value.ambiguous is True
    assert len(stub.sent) == 1


async def test_503_is_resent_when_the_policy_says_so() -> None:
    stub = ScriptedTransport([(503, {"message": "Service Unavailable"}), (200, OK)])
    attempts: list[int] = []
    async with client(stub, retry=RetryPolicy(base=0.001, resend_statuses={503})) as c:
        assert (await c.send(MINIMAL, on_attempt=attempts.append)).campaign_id == OK["campaign_id"]
    assert len(stub.sent) == 2
    assert stub.sent[0].request == stub.sent[1].request
    assert attempts == [1, 2]


async def test_resend_statuses_stop_at_max_attempts_and_stay_ambiguous() -> None:
    stub = ScriptedTransport(default=(503, {"message": "Service Unavailable"}))
    policy = RetryPolicy(max_attempts=3, base=0.001, resend_statuses={503})
    async with client(stub, retry=policy) as c:
        with pytest.raises(ServerError) as info:
            await c.send(MINIMAL)
    assert info.value.ambiguous is True  # it may have gone out, three times
    assert len(stub.sent) == 3


@pytest.mark.parametrize(
    "last",
    [
        (429, {"message": "Request limit reached"}),
        (400, {"message": "Bad Request"}),
        Stage.NOT_SENT,
    ],
)
async def test_a_resent_503_keeps_the_request_ambiguous_whatever_ends_it(last: object) -> None:
    """The 503 may have gone out: a later 429, 400 or refused connection does not make the
    request a certain failure (that would let a journal or dedupe key send it again)."""
    stub = ScriptedTransport([(503, {"message": "Service Unavailable"})], default=last)  # type: ignore[arg-type]
    policy = RetryPolicy(max_attempts=3, base=0.001, max_retry_after=0.0, resend_statuses={503})
    async with client(stub, retry=policy) as c:
        with pytest.raises(InsiderError) as info:
            await c.send(MINIMAL)
    assert info.value.ambiguous is True


@pytest.mark.parametrize("status", [502, 504, 520])
async def test_resend_statuses_name_only_those(status: int) -> None:
    stub = ScriptedTransport([(status, {"message": "no"}), (200, OK)])
    async with client(stub, retry=RetryPolicy(base=0.001, resend_statuses={503})) as c:
        with pytest.raises(ServerError):
            await c.send(MINIMAL)
    assert len(stub.sent) == 1


@pytest.mark.parametrize(
    "status", [500, 502, 503, 504, 520, 524, 301, 302, 405, 424, 400, 401, 403, 404, 422]
)
async def test_possibly_processed_or_bad_request_is_not_retried(status: int) -> None:
    stub = ScriptedTransport([(status, {"message": "no"}), (200, OK)])
    async with client(stub, retry=RetryPolicy(base=0.001)) as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    assert info.value.status == status
    assert len(stub.sent) == 1  # exactly one request seen


async def test_retries_stop_at_max_attempts() -> None:
    stub = ScriptedTransport(default=(429, {"message": "Request limit exceeded"}))
    attempts: list[int] = []
    async with client(stub, retry=RetryPolicy(max_attempts=3, base=0.001)) as c:
        with pytest.raises(RateLimitError) as info:
            await c.send(MINIMAL, on_attempt=attempts.append)
    assert info.value.ambiguous is False
    assert len(stub.sent) == 3
    assert attempts == [1, 2, 3]


# -- how far a failed request got ---------------------------------------------------------------


async def test_not_sent_is_retried() -> None:
    stub = ScriptedTransport([Stage.NOT_SENT, Stage.NOT_SENT, (200, OK)])
    attempts: list[int] = []
    async with client(stub) as c:
        assert (await c.send(MINIMAL, on_attempt=attempts.append)).campaign_id == OK["campaign_id"]
    assert len(stub.sent) == 1  # the two failures never reached the wire
    assert attempts == [3]


async def test_not_sent_is_reported_unambiguous_after_max_attempts() -> None:
    stub = ScriptedTransport(default=Stage.NOT_SENT)
    attempts: list[int] = []
    async with client(stub, retry=RetryPolicy(max_attempts=2, base=0.001)) as c:
        with pytest.raises(TransportError) as info:
            await c.send(MINIMAL, on_attempt=attempts.append)
    assert info.value.stage is Stage.NOT_SENT
    assert info.value.ambiguous is False
    assert stub.sent == []
    assert attempts == []
    assert_no_key(info.value, info.value.__context__)


@pytest.mark.parametrize(("stage", "ambiguous"), [(Stage.WRITING, False), (Stage.SENT, True)])
async def test_written_failure_is_not_retried(stage: Stage, ambiguous: bool) -> None:
    stub = ScriptedTransport([stage, (200, OK)])
    async with client(stub) as c:
        with pytest.raises(TransportError) as info:
            await c.send(MINIMAL)
    assert info.value.stage is stage
    assert info.value.ambiguous is ambiguous
    assert isinstance(info.value, InsiderError)
    assert len(stub.sent) == 1
    assert_no_key(info.value)


async def test_other_transport_exceptions_propagate_unretried() -> None:
    stub = ScriptedTransport([RuntimeError("a bug in a transport"), (200, OK)])
    async with client(stub) as c:
        with pytest.raises(RuntimeError, match="a bug in a transport"):
            await c.send(MINIMAL)
    assert len(stub.sent) == 1


async def test_connection_refused_over_loopback_is_retried_and_unambiguous() -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    attempts: list[int] = []
    policy = RetryPolicy(max_attempts=3, base=0.001)
    async with WebPushClient(KEY, partner_id=PARTNER, base_url=base_url, retry=policy) as c:
        with pytest.raises(TransportError) as info:
            await c.send(MINIMAL, on_attempt=attempts.append)
    assert info.value.stage is Stage.NOT_SENT
    assert info.value.ambiguous is False
    assert attempts == []  # no attempt reached the wire, so none took a grant
    assert_no_key(info.value, info.value.__context__)


async def test_dropped_connection_over_loopback_is_ambiguous_and_not_retried() -> None:
    async with FakeInsider(faults=[Fault(drop=True, processed=True, at={0})]) as fake:
        async with fake.client(retry=FAST) as c:
            with pytest.raises(TransportError) as info:
                await c.send(MINIMAL)
        assert len(fake.requests) == 1  # not resent
        assert len(fake.launches) == 1  # and it did go out
    assert info.value.stage is Stage.SENT
    assert info.value.ambiguous is True


async def test_read_timeout_over_loopback_is_ambiguous_and_not_retried() -> None:
    async with FakeInsider(faults=[Fault(latency=5.0, at={0})]) as fake:
        async with fake.client(retry=FAST, timeout=0.2) as c:
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransportError) as info:
                await c.send(MINIMAL)
            elapsed = asyncio.get_running_loop().time() - started
        assert len(fake.requests) == 1
        assert len(fake.launches) == 1  # Insider launched it; the answer came too late
    assert info.value.stage is Stage.SENT
    assert info.value.ambiguous is True
    assert 0.15 < elapsed < 2.0


# -- redirects are never followed ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_ambiguous_and_not_followed(status: int) -> None:
    stub = ScriptedTransport([(status, b"", {"Location": "https://evil.example/v2/single/x"})])
    async with client(stub) as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    assert info.value.status == status
    assert info.value.ambiguous is True
    assert len(stub.sent) == 1


async def test_redirect_over_loopback_is_not_followed() -> None:
    hits: list[str] = []

    async def launch(request: web.Request) -> web.Response:
        hits.append(request.path)
        await request.read()
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(OK)

    app = web.Application()
    app.router.add_post("/v2/single/{campaign_id}", launch)
    app.router.add_route("*", "/elsewhere", elsewhere)
    async with TestServer(app, host="127.0.0.1") as server:
        base_url = f"http://127.0.0.1:{server.port}"
        async with WebPushClient(KEY, partner_id=PARTNER, base_url=base_url, retry=FAST) as c:
            with pytest.raises(APIError) as info:
                await c.send(MINIMAL)
    assert info.value.status == 302
    assert info.value.ambiguous is True
    assert hits == ["/v2/single/campaign_id"]


# -- the grant at the wire, and a 429's pause -----------------------------------------------------


async def test_on_attempt_runs_once_per_attempt_before_the_wire() -> None:
    stub = ScriptedTransport(
        [(429, {}, {"Retry-After": "0"}), Stage.NOT_SENT, (429, {}, {"Retry-After": "0"})]
    )
    attempts: list[tuple[int, int]] = []

    def hook(n: int) -> None:
        attempts.append((n, len(stub.sent)))

    async with client(stub) as c:
        await c.send(MINIMAL, on_attempt=hook)
    # (attempt, requests already sent); attempt 2 failed before the wire and took no grant.
    assert attempts == [(1, 0), (3, 1), (4, 2)]
    assert len(stub.sent) == 3


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        self.acquired += 1

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)

    def paused_for(self) -> float:
        return 0.0


async def test_every_attempt_at_the_wire_takes_the_limiter_and_a_429_pauses_it() -> None:
    stub = ScriptedTransport(
        [(429, {}, {"Retry-After": "0.02"}), Stage.NOT_SENT, (429, {}, {"Retry-After": "0.01"})]
    )
    limiter = RecordingLimiter()
    async with client(stub, limiter=limiter) as c:
        await c.send(MINIMAL)
    assert limiter.acquired == 3 == stub.gated  # the NOT_SENT attempt took no grant
    assert limiter.penalties == [0.02, 0.01]


async def test_a_short_429_pause_delays_the_next_send() -> None:
    stub = ScriptedTransport([(429, {}, {"Retry-After": "0.2"})])
    loop = asyncio.get_running_loop()
    async with client(stub, retry=RetryPolicy.never()) as c:
        with pytest.raises(RateLimitError):
            await c.send(MINIMAL)
        told = loop.time()
        granted: list[float] = []
        await c.send(MINIMAL, on_attempt=lambda _n: granted.append(loop.time()))
    assert len(stub.sent) == 2
    assert granted[0] - told >= 0.15  # the key waited out the pause


async def test_a_long_429_pause_fails_every_send_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    stub = ScriptedTransport(default=(200, OK))
    stub.push((429, {"message": "Request limit exceeded"}, {"Retry-After": "86400"}))
    attempts: list[int] = []
    async with client(stub) as c:
        with pytest.raises(RateLimitError) as info:
            await c.send(MINIMAL)
        assert info.value.retry_after == 86400.0
        assert info.value.ambiguous is False
        assert len(stub.sent) == 1

        # The key is paused for a day: every send fails at once, nothing sent.
        for _ in range(2):
            with pytest.raises(RateLimitError) as info:
                async with asyncio.timeout(5):  # not a day
                    await c.send(MINIMAL, on_attempt=attempts.append)
            retry_after = info.value.retry_after
            assert retry_after is not None
            assert 86400 - 5 < retry_after <= 86400
            assert info.value.ambiguous is False
            assert info.value.status == 429

        # So does another client of the same key and base URL in this event loop.
        other_stub = ScriptedTransport()
        async with client(other_stub) as other:
            with pytest.raises(RateLimitError) as info:
                async with asyncio.timeout(5):
                    await other.send(FULL, campaign_id=9)
        assert info.value.retry_after == pytest.approx(86400, abs=5)
        assert other_stub.sent == []
        assert other_stub.gated == 0

        # Another key, or another base URL, is not paused.
        for api_key, base_url in [
            ("another-key", DEFAULT_BASE_URL),
            (KEY, "https://insider.example"),
        ]:
            free = ScriptedTransport()
            async with WebPushClient(
                api_key, partner_id=PARTNER, transport=free, base_url=base_url
            ) as c3:
                await c3.send(MINIMAL)
            assert len(free.sent) == 1
    assert len(stub.sent) == 1  # unchanged
    assert stub.gated == 1
    assert attempts == []

    warnings_logged = [
        r
        for r in caplog.records
        if r.name == "insider_webpush" and r.levelno == logging.WARNING and "429" in r.getMessage()
    ]
    assert len(warnings_logged) == 1
    message = warnings_logged[0].getMessage()
    assert "86400" in message
    assert KEY not in message
    assert KEY not in repr(warnings_logged[0].args)
    assert KEY not in caplog.text


class SlowToConnect(ScriptedTransport):
    """Takes ``connect`` seconds (a pooled connection, TCP, TLS) before its gate."""

    def __init__(self, *args: Any, connect: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect = connect

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        await asyncio.sleep(self.connect)
        return await super().send(request, gate, timeouts)


async def test_a_send_that_reaches_its_gate_during_a_long_pause_sends_nothing() -> None:
    """The pause is checked at the wire too, not only when the send starts."""
    told = ScriptedTransport([(429, {}, {"Retry-After": "86400"})], latency=0.05)
    slow = SlowToConnect(connect=0.2)
    attempts: list[int] = []
    async with client(told) as a, client(slow) as b:
        second = asyncio.create_task(b.send(MINIMAL, on_attempt=attempts.append))
        with pytest.raises(RateLimitError):
            await a.send(MINIMAL)
        with pytest.raises(RateLimitError) as info:
            async with asyncio.timeout(5):
                await second
    assert info.value.retry_after == pytest.approx(86400, abs=5)
    assert slow.sent == []
    assert slow.gated == 0
    assert attempts == []


# A send already waiting in limiter.acquire() for its grant when another send of the key gets
# a 429 with a Retry-After longer than max_retry_after fails at once, with nothing sent,
# rather than sleeping out the pause (here a day): in a batch every queued worker would hang.
async def test_a_send_queued_for_its_grant_during_a_long_pause_fails_at_once() -> None:
    stub = ScriptedTransport([(429, {}, {"Retry-After": "86400"})], latency=0.2)
    attempts: list[int] = []
    # One grant per 0.5 s: the second send waits in the limiter while the first is answered.
    async with client(stub, rate_limit=1, rate_period=0.5) as c:
        first = asyncio.create_task(c.send(MINIMAL))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(c.send(MINIMAL, on_attempt=attempts.append))
        with pytest.raises(RateLimitError):
            await first
        try:
            with pytest.raises(RateLimitError):
                async with asyncio.timeout(3):  # at once, not after 86400 s
                    await second
        finally:
            second.cancel()
    assert len(stub.sent) == 1
    assert attempts == []


# Two clients of one key aimed at the same origin spelled differently (host case, the explicit
# default port) share one limiter: the quota and a 429's pause.
@pytest.mark.parametrize(
    "same_origin",
    ["https://WEB-PUSH.api.useinsider.com", "https://web-push.api.useinsider.com:443"],
)
async def test_a_long_pause_covers_every_spelling_of_the_base_url(same_origin: str) -> None:
    stub = ScriptedTransport([(429, {}, {"Retry-After": "86400"})])
    async with client(stub) as c:
        with pytest.raises(RateLimitError):
            await c.send(MINIMAL)
    other = ScriptedTransport()
    async with client(other, base_url=same_origin) as c2:
        with pytest.raises(RateLimitError):
            await c2.send(MINIMAL)
    assert other.sent == []


# A transport may report header names in lower case (as HTTP/2 sends them): Retry-After is
# still honoured, so a 429 asking for a day's pause is not resent after the backoff.
async def test_retry_after_in_lower_case_is_honoured() -> None:
    stub = ScriptedTransport([(429, {}, {"retry-after": "86400"}), (200, OK)])
    async with client(stub) as c:
        with pytest.raises(RateLimitError) as info:
            await c.send(MINIMAL)
    assert info.value.retry_after == 86400.0
    assert len(stub.sent) == 1


# -- base URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.2",
        "http://[::1]:8080",
        "http://localhost:8080",
        "http://LOCALHOST",
        "https://web-push.api.useinsider.com/",
        "https://example.test:8443",
        "https://host:8443/prefix/",
        "https://host:1",
        "https://host:65535",
    ],
)
def test_allowed_base_urls(base_url: str) -> None:
    # Kept as given, but for one spelling per origin: the host in lower case.
    assert WebPushClient(KEY, base_url=base_url).base_url == base_url.rstrip("/").replace(
        "LOCALHOST", "localhost"
    )


def test_the_default_port_is_dropped_from_the_base_url() -> None:
    assert WebPushClient(KEY, base_url="HTTPS://Host.Example:443/p/").base_url == (
        "https://host.example/p"
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "http://web-push.api.useinsider.com",
        "http://example.com",
        "http://127.0.0.1.example.com",
        "http://10.0.0.1:8080",
        "http://[::2]",
        "http://0.0.0.0",
        "ftp://127.0.0.1",
        "ftp://web-push.api.useinsider.com",
        "web-push.api.useinsider.com",
        "https://",
        "",
        "https://user:pw@web-push.api.useinsider.com",
        "https://user@web-push.api.useinsider.com",
        "https://evil.example\\@web-push.api.useinsider.com",
        "https://web-push.api.useinsider.com:99999",
        "https://web-push.api.useinsider.com:0",
        "https://web-push.api.useinsider.com:",
        "https://web-push.api.useinsider.com:https",
        "https://web-push.api.useinsider.com?partner=1",
        "https://web-push.api.useinsider.com/?",
        "https://web-push.api.useinsider.com#fragment",
        "https://web-push.api.useinsider.com/a b",
        "https://web-push.api.useinsider.com/\n",
        "https://web-push.api.useinsider.com\t",
        " https://web-push.api.useinsider.com",
        "https://web-push.api.useinsider.com/\x00",
    ],
    ids=repr,
)
def test_refused_base_urls(base_url: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, base_url=base_url)
    assert info.value.field == "base_url"


@pytest.mark.parametrize("base_url", [None, 123, b"https://web-push.api.useinsider.com"])
def test_base_url_must_be_a_string(base_url: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, base_url=base_url)
    assert info.value.field == "base_url"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("http://localhost:8080/", "http://localhost:8080/v2/single/7"),
        ("https://host:8443/prefix/", "https://host:8443/prefix/v2/single/7"),
    ],
)
async def test_requests_go_to_the_base_url(base_url: str, url: str) -> None:
    stub = ScriptedTransport()
    async with client(stub, base_url=base_url) as c:
        await c.send(MINIMAL, campaign_id=7)
    assert [s.request.url for s in stub.sent] == [url]


# -- timeout, rate_limit and rate_period are checked in the constructor ----------------------


@pytest.mark.parametrize(
    "timeout", [0, -1, 0.0, math.nan, math.inf, -math.inf, True, False, "5", None], ids=repr
)
def test_refused_timeouts(timeout: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, timeout=timeout)
    assert info.value.field == "timeout"


@pytest.mark.parametrize("rate_limit", [0, -1, True, 1.5, "6000", None, 10**10], ids=repr)
def test_refused_rate_limits(rate_limit: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, rate_limit=rate_limit)
    assert info.value.field == "rate_limit"


@pytest.mark.parametrize("rate_period", [0, -1, math.nan, math.inf, True, "60", None], ids=repr)
def test_refused_rate_periods(rate_period: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, rate_period=rate_period)
    assert info.value.field == "rate_period"


# An int too large for a float (10**400) is a ValidationError naming the argument, not the
# OverflowError math.isfinite() raises.
@pytest.mark.parametrize(("field", "value"), [("timeout", 10**400), ("rate_period", 10**400)])
def test_huge_int_timeout_or_period_is_a_validation_error(field: str, value: int) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, **kwargs)
    assert info.value.field == field


def test_accepted_quotas() -> None:
    WebPushClient(KEY, rate_limit=1, rate_period=0.001)
    WebPushClient(KEY, rate_limit=10**9, rate_period=86400)


# -- the key stays secret ----------------------------------------------------------------------


def test_repr_shows_no_key() -> None:
    c = WebPushClient(KEY, partner_id=PARTNER)
    assert KEY not in repr(c)
    assert "SECRET" not in repr(c)
    assert "sha256:" in repr(c)
    assert PARTNER in repr(c)


async def test_debug_log_redacts_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stub = ScriptedTransport([Stage.NOT_SENT, (429, {}, {"Retry-After": "0"}), (200, OK)])
    async with client(stub) as c:
        await c.send(MINIMAL)
    ours = [r for r in caplog.records if r.name == "insider_webpush"]
    debug = [r for r in ours if r.levelno == logging.DEBUG]
    warning = [r for r in ours if r.levelno == logging.WARNING]
    assert len(debug) == 3  # one line per attempt
    assert len(warning) == 1  # the 429
    assert len(ours) == 4
    assert all("<redacted>" in r.getMessage() for r in debug)
    assert "attempt 1 -> not sent" in debug[0].getMessage()
    assert "attempt 2 -> 429" in debug[1].getMessage()
    assert "attempt 3 -> 200" in debug[2].getMessage()
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() and KEY not in repr(r.args) for r in caplog.records)


async def test_no_error_holds_the_key() -> None:
    errors: list[BaseException] = []
    steps: list[Step] = [
        (401, {"message": "Unauthorized"}),
        (500, b"oops"),
        Stage.NOT_SENT,
        Stage.WRITING,
        Stage.SENT,
        (200, {"success": True}),
    ]
    for step in steps:
        stub = ScriptedTransport([step])
        async with client(stub, retry=RetryPolicy.never()) as c:
            with pytest.raises(InsiderError) as info:
                await c.send(MINIMAL)
        errors.append(info.value)
    assert len(errors) == 6
    for err in errors:
        assert_no_key(err, err.__cause__, err.__context__, *err.args)


# -- from_env ---------------------------------------------------------------------------------


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.setenv("INSIDER_BASE_URL", "http://127.0.0.1:9999")
    c = WebPushClient.from_env()
    assert (c.partner_id, c.base_url) == (PARTNER, "http://127.0.0.1:9999")
    assert KEY not in repr(c)


def test_from_env_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.delenv("INSIDER_PARTNER_ID", raising=False)
    monkeypatch.setenv("INSIDER_BASE_URL", "")
    c = WebPushClient.from_env()
    assert (c.partner_id, c.base_url) == (None, DEFAULT_BASE_URL)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    assert WebPushClient.from_env(partner_id="42").partner_id == "42"


async def test_from_env_key_is_the_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", "env-key-123")
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.delenv("INSIDER_BASE_URL", raising=False)
    stub = ScriptedTransport()
    async with WebPushClient.from_env(transport=stub) as c:
        await c.send(MINIMAL)
    (sent,) = stub.sent
    assert sent.request.url == LAUNCH
    assert sent.request.headers["Authorization"] == "Bearer env-key-123"
    assert sent.json["partner_id"] == PARTNER


@pytest.mark.parametrize("value", [None, ""])
def test_from_env_without_key(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("INSIDER_API_KEY", raising=False)
    else:
        monkeypatch.setenv("INSIDER_API_KEY", value)
    with pytest.raises(ValidationError) as info:
        WebPushClient.from_env()
    assert info.value.field == "INSIDER_API_KEY"


def test_from_env_refuses_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_BASE_URL", "http://web-push.api.useinsider.com")
    with pytest.raises(ValidationError) as info:
        WebPushClient.from_env()
    assert info.value.field == "base_url"


# -- transports and sessions ---------------------------------------------------------------------


async def test_lent_transport_is_used_and_left_open() -> None:
    stub = ScriptedTransport()
    c = client(stub)
    await c.send(MINIMAL)
    await c.close()
    assert not stub.closed
    assert len(stub.sent) == 1


async def test_transport_and_session_exclude_each_other() -> None:
    async with aiohttp.ClientSession(connector=WireConnector()) as session:
        with pytest.raises(ValidationError) as info:
            WebPushClient(KEY, session=session, transport=ScriptedTransport())
    assert info.value.field == "session"


@pytest.mark.parametrize("transport", [object(), "https://insider.example", 42])
def test_transport_must_be_a_transport(transport: Any) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, transport=transport)
    assert info.value.field == "transport"


async def test_session_without_wire_connector_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValidationError) as info:
            WebPushClient(KEY, session=session)
    assert info.value.field == "session"


async def test_borrowed_session_is_used_and_left_open() -> None:
    async with FakeInsider() as fake:
        async with aiohttp.ClientSession(connector=WireConnector()) as session:
            c = fake.client(session=session, retry=FAST)
            await c.send(MINIMAL)
            await c.close()
            assert not session.closed
            async with fake.client(session=session) as c2:
                assert c2 is not None
            assert not session.closed
        assert len(fake.launches) == 1


async def test_lent_aiohttp_transport_is_left_open() -> None:
    async with FakeInsider() as fake:
        transport = AiohttpTransport()
        try:
            async with fake.client(transport=transport, retry=FAST) as c:
                await c.send(MINIMAL)
            session = transport.session
            assert session is not None
            assert not session.closed
        finally:
            await transport.aclose()
        assert session.closed
        assert len(fake.launches) == 1


async def test_own_session_is_closed() -> None:
    async with FakeInsider() as fake:
        c = fake.client(retry=FAST)
        await c.send(MINIMAL)
        transport = c._transport
        assert isinstance(transport, AiohttpTransport)
        session = transport.session
        assert session is not None
        assert not session.closed
        await c.close()
        assert session.closed
        async with fake.client(retry=FAST) as c2:
            await c2.send(MINIMAL)
            transport = c2._transport
            assert isinstance(transport, AiohttpTransport)
            session = transport.session
        assert session is not None
        assert session.closed
        assert len(fake.launches) == 2


async def test_close_without_requests_is_fine() -> None:
    c = WebPushClient(KEY, partner_id=PARTNER)
    await c.close()
    await c.close()


async def test_no_unclosed_session_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with FakeInsider() as fake:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with fake.client(retry=FAST) as c:
                await c.send(MINIMAL)
            del c
            gc.collect()
    assert not [w for w in caught if "nclosed" in str(w.message)]
    assert "Unclosed" not in caplog.text


# -- other operations and versions ---------------------------------------------------------


@pytest.mark.parametrize(("campaign_id", "path"), [(None, "campaign_id"), (25696, "25696")])
async def test_api_version_v1(campaign_id: int | None, path: str) -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        await c.send(MINIMAL, campaign_id=campaign_id, api_version="v1")
    (sent,) = stub.sent
    assert (sent.request.method, sent.request.url) == (
        "POST",
        f"{DEFAULT_BASE_URL}/v1/single/{path}",
    )
    assert sent.json == MINIMAL_BODY
    assert dict(sent.request.headers) == HEADERS


async def test_unknown_api_version_sends_nothing() -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL, api_version="v3")
    assert info.value.field == "api_version"
    assert stub.sent == []


async def test_create_posts_a_draft_and_returns_its_id() -> None:
    stub = ScriptedTransport([(201, {"success": True, "campaign_id": 25696})])
    async with client(stub) as c:
        assert await c.create("Spring sale", language="en_US") == 25696
    (sent,) = stub.sent
    assert (sent.request.method, sent.request.url) == ("POST", f"{DEFAULT_BASE_URL}/v1/single")
    assert sent.json == {
        "partner_id": PARTNER,
        "title": "Spring sale",
        "language": "en_US",
        "is_all": False,
    }
    assert dict(sent.request.headers) == HEADERS


async def test_create_duplicate_title_is_a_bad_request() -> None:
    stub = ScriptedTransport([(400, {"message": "dup"})])
    async with client(stub) as c:
        with pytest.raises(BadRequestError):
            await c.create("Spring sale")
    assert len(stub.sent) == 1


@pytest.mark.parametrize(
    ("kwargs", "title", "field"),
    [({"partner_id": None}, "t", "partner_id"), ({}, "t" * 101, "title")],
)
async def test_create_invalid_sends_nothing(kwargs: dict[str, Any], title: str, field: str) -> None:
    stub = ScriptedTransport()
    async with client(stub, **kwargs) as c:
        with pytest.raises(ValidationError) as info:
            await c.create(title)
    assert info.value.field == field
    assert stub.sent == []


async def test_delete_sends_partner_id() -> None:
    stub = ScriptedTransport([(200, {"success": True})])
    async with client(stub) as c:
        await c.delete(25696)
    (sent,) = stub.sent
    assert (sent.request.method, sent.request.url) == (
        "DELETE",
        f"{DEFAULT_BASE_URL}/v1/single/25696",
    )
    assert sent.json == {"partner_id": PARTNER}
    assert sent.request.body == compact({"partner_id": PARTNER})
    assert dict(sent.request.headers) == HEADERS


async def test_delete_of_an_unknown_campaign() -> None:
    stub = ScriptedTransport([(424, {"message": "SERVICE:-Campaign not found"})])
    async with client(stub) as c:
        with pytest.raises(FailedDependencyError) as info:
            await c.delete(1)
    assert info.value.message == "SERVICE:-Campaign not found"
    assert info.value.ambiguous is False


async def test_delete_without_partner_id_sends_nothing() -> None:
    stub = ScriptedTransport()
    async with client(stub, partner_id=None) as c:
        with pytest.raises(ValidationError):
            await c.delete(1)
    assert stub.sent == []


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080/v1/single/1001/..",
        "https://host/a/./b",
        "https://host/.",
        "https://host/%2e%2E/v1",
    ],
)
def test_dot_segments_in_the_base_url_are_refused(base_url: str) -> None:
    # They would steer a request to another endpoint, or split one origin's limiter in two.
    with pytest.raises(ValidationError, match=r"no \. or \.\. segments") as info:
        WebPushClient(KEY, base_url=base_url)
    assert info.value.field == "base_url"


async def test_a_launch_body_over_64_kib_is_refused_before_anything_is_sent() -> None:
    stub = ScriptedTransport()
    huge = WebPush(**{**MINIMAL_FIELDS, "link": "https://example.com/" + "x" * 70_000})
    async with client(stub) as c:
        with pytest.raises(ValidationError, match="at most 65536") as info:
            await c.send(huge)
    assert info.value.field == "push"
    assert stub.sent == []
