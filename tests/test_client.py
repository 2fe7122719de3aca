"""WebPushClient: the exact requests it makes, how it fails, retries, logs and cleans up."""

from __future__ import annotations

import gc
import logging
import warnings
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer
from yarl import URL

from insider_webpush import (
    DEFAULT_BASE_URL,
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    InsiderError,
    LaunchResult,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
    WebPush,
    WebPushClient,
    __version__,
)

from .samples import MINIMAL_FIELDS, MINIMAL_WIRE, full_push, full_wire

if TYPE_CHECKING:
    from conftest import MockInsider  # the `mock_insider` fixture's type

KEY = "sk-live-0123456789abcdef-SECRET"
PARTNER = "10000001"
LAUNCH = f"{DEFAULT_BASE_URL}/v2/single/campaign_id"
OK = {"success": True, "campaign_id": 1697300275}
FAST = RetryPolicy(max_attempts=5, base=0.001, cap=0.01)
MINIMAL = WebPush(**MINIMAL_FIELDS)
MINIMAL_BODY = {**MINIMAL_WIRE, "partner_id": PARTNER}
FULL = full_push("20000002")  # its own partner id, not the client's
FULL_BODY = full_wire("20000002")


def client(**kwargs: Any) -> WebPushClient:
    kwargs.setdefault("partner_id", PARTNER)
    kwargs.setdefault("retry", FAST)
    return WebPushClient(KEY, **kwargs)


def refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("web-push.api.useinsider.com", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def assert_no_key(*things: object) -> None:
    """Not in the text, the repr, nor any attribute of each error (the client itself must
    hold the key to send it, so only its repr is checked, elsewhere)."""
    for thing in things:
        assert KEY not in str(thing)
        assert KEY not in repr(thing)
        assert KEY not in repr(getattr(thing, "__dict__", {}))


# -- the exact request ----------------------------------------------------------------------


async def test_minimal_push_exact_request(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        result = await c.send(MINIMAL)
    assert result == LaunchResult(success=True, campaign_id=1697300275)
    (call,) = mock_insider.calls("POST", LAUNCH)
    assert list(mock_insider.requests) == [("POST", URL(LAUNCH))]
    assert call.kwargs["json"] == MINIMAL_BODY  # no banner, language, target, include_...
    assert call.kwargs["data"] is None  # json= is what makes aiohttp send application/json
    assert call.kwargs["headers"] == {
        "Authorization": f"Bearer {KEY}",
        "User-Agent": f"insider-webpush/{__version__}",
    }


async def test_full_push_exact_request(mock_insider: MockInsider) -> None:
    url = f"{DEFAULT_BASE_URL}/v2/single/123"
    mock_insider.post(url, payload={"success": True, "campaign_id": 123})
    async with client() as c:
        result = await c.send(FULL, campaign_id=123)
    assert result.campaign_id == 123
    (call,) = mock_insider.calls("POST", url)
    assert call.kwargs["json"] == FULL_BODY
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {KEY}"


async def test_request_on_the_wire() -> None:
    """The same request as a server sees it, Content-Type included (loopback only)."""
    seen: list[tuple[str, str, dict[str, str], object]] = []

    async def launch(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, dict(request.headers), await request.json()))
        return web.json_response(OK)

    app = web.Application()
    app.router.add_post("/v2/single/{campaign_id}", launch)
    async with TestServer(app, host="127.0.0.1") as server:
        base_url = f"http://127.0.0.1:{server.port}"
        async with client(base_url=base_url) as c:
            assert (await c.send(MINIMAL)).campaign_id == OK["campaign_id"]
    ((method, path, headers, body),) = seen
    assert (method, path) == ("POST", "/v2/single/campaign_id")
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["User-Agent"] == f"insider-webpush/{__version__}"
    assert headers["Content-Type"].split(";")[0] == "application/json"
    assert body == MINIMAL_BODY


async def test_timeout_is_passed_per_request(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    async with client(timeout=7.5) as c:
        await c.send(MINIMAL)
    (call,) = mock_insider.calls("POST", LAUNCH)
    assert call.kwargs["timeout"].total == 7.5


# -- partner_id -----------------------------------------------------------------------------


async def test_client_partner_id_fills_the_push(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    async with client(partner_id=30000003) as c:
        assert c.partner_id == "30000003"
        await c.send(MINIMAL)
    assert mock_insider.calls("POST", LAUNCH)[0].kwargs["json"]["partner_id"] == "30000003"


async def test_push_partner_id_overrides_the_client(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        await c.send(FULL)
    assert mock_insider.calls("POST", LAUNCH)[0].kwargs["json"]["partner_id"] == "20000002"


async def test_no_partner_id_anywhere_sends_nothing(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK, repeat=True)
    async with client(partner_id=None) as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL)
    assert info.value.field == "partner_id"
    assert mock_insider.requests == {}


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


async def test_not_a_push_sends_nothing(mock_insider: MockInsider) -> None:
    async with client() as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL_BODY)  # type: ignore[arg-type]
    assert info.value.field == "push"
    assert mock_insider.requests == {}


# -- every status through the client ---------------------------------------------------------

STATUSES = [
    (400, {"message": "title is duplicated"}, BadRequestError, False),
    (401, {"message": "Unauthorized"}, AuthenticationError, False),
    (404, {"message": "Not Found"}, APIError, False),
    (424, {"message": "SERVICE:-Campaign not found"}, FailedDependencyError, False),
    (429, {"message": "Request limit exceeded"}, RateLimitError, False),
    (500, {"message": "Internal Server Error"}, ServerError, True),
    (502, {"message": "Bad Gateway"}, ServerError, True),
    (503, {"message": "Service Unavailable"}, ServerError, False),
    (504, {"message": "Gateway Timeout"}, ServerError, True),
]


@pytest.mark.parametrize(("status", "body", "cls", "ambiguous"), STATUSES)
async def test_status_becomes_its_error(
    mock_insider: MockInsider,
    status: int,
    body: dict[str, str],
    cls: type[APIError],
    ambiguous: bool,
) -> None:
    mock_insider.post(LAUNCH, status=status, payload=body)
    async with client(retry=RetryPolicy.never()) as c:
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
    assert len(mock_insider.calls("POST", LAUNCH)) == 1
    assert_no_key(err)
    assert KEY not in repr(c)


async def test_rate_limit_error_carries_retry_after(mock_insider: MockInsider) -> None:
    # Longer than max_retry_after: not worth waiting for, so reported at once.
    mock_insider.post(LAUNCH, status=429, headers={"Retry-After": "600"}, repeat=True)
    async with client(retry=RetryPolicy(max_retry_after=120)) as c:
        with pytest.raises(RateLimitError) as info:
            await c.send(MINIMAL)
    assert info.value.retry_after == 600.0
    assert len(mock_insider.calls("POST", LAUNCH)) == 1


async def test_text_error_body_becomes_the_message(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    async with client() as c:
        with pytest.raises(ServerError) as info:
            await c.send(MINIMAL)
    assert info.value.message == "<html>Bad Gateway</html>"
    assert info.value.body == "<html>Bad Gateway</html>"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload": {"success": False}},
        {"payload": {"success": True}},
        {"body": "OK", "content_type": "text/plain"},
        {"body": ""},
    ],
)
async def test_unreadable_success_is_an_ambiguous_api_error(
    mock_insider: MockInsider, kwargs: dict[str, Any]
) -> None:
    mock_insider.post(LAUNCH, **kwargs)
    async with client() as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    assert info.value.status == 200
    assert info.value.ambiguous


# -- retries ---------------------------------------------------------------------------------


async def test_429_then_200_is_retried(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, status=429, headers={"Retry-After": "0.01"})
    mock_insider.post(LAUNCH, payload=OK)
    attempts: list[int] = []
    async with client(retry=RetryPolicy()) as c:
        result = await c.send(MINIMAL, on_attempt=attempts.append)
    assert result.campaign_id == OK["campaign_id"]
    assert len(mock_insider.calls("POST", LAUNCH)) == 2
    assert attempts == [1, 2]


async def test_503_is_retried(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, status=503)
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        assert (await c.send(MINIMAL)).campaign_id == OK["campaign_id"]
    assert len(mock_insider.calls("POST", LAUNCH)) == 2


@pytest.mark.parametrize("status", [500, 502, 504, 424, 400, 401])
async def test_possibly_processed_or_bad_request_is_not_retried(
    mock_insider: MockInsider, status: int
) -> None:
    mock_insider.post(LAUNCH, status=status, payload={"message": "no"})
    mock_insider.post(LAUNCH, payload=OK)
    async with client(retry=RetryPolicy(base=0.001)) as c:
        with pytest.raises(APIError) as info:
            await c.send(MINIMAL)
    assert info.value.status == status
    assert len(mock_insider.calls("POST", LAUNCH)) == 1  # exactly one request seen


async def test_retries_stop_at_max_attempts(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, status=503, repeat=True)
    attempts: list[int] = []
    async with client(retry=RetryPolicy(max_attempts=3, base=0.001)) as c:
        with pytest.raises(ServerError):
            await c.send(MINIMAL, on_attempt=attempts.append)
    assert len(mock_insider.calls("POST", LAUNCH)) == 3
    assert attempts == [1, 2, 3]


async def test_connection_refused_is_retried(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, exception=refused())
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        assert (await c.send(MINIMAL)).campaign_id == OK["campaign_id"]
    assert len(mock_insider.calls("POST", LAUNCH)) == 2


async def test_connection_refused_reported_unambiguous(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, exception=refused(), repeat=True)
    async with client(retry=RetryPolicy(max_attempts=2, base=0.001)) as c:
        with pytest.raises(TransportError) as info:
            await c.send(MINIMAL)
    assert info.value.ambiguous is False
    assert len(mock_insider.calls("POST", LAUNCH)) == 2
    assert_no_key(info.value, info.value.__context__)


async def test_connect_timeout_is_retried(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, exception=aiohttp.ConnectionTimeoutError())
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        await c.send(MINIMAL)
    assert len(mock_insider.calls("POST", LAUNCH)) == 2


@pytest.mark.parametrize(
    "exception",
    [aiohttp.ServerDisconnectedError(), TimeoutError(), aiohttp.ClientPayloadError("cut")],
    ids=["disconnected", "read-timeout", "payload"],
)
async def test_maybe_sent_failure_is_ambiguous_and_not_retried(
    mock_insider: MockInsider, exception: Exception
) -> None:
    mock_insider.post(LAUNCH, exception=exception)
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        with pytest.raises(TransportError) as info:
            await c.send(MINIMAL)
    assert info.value.ambiguous is True
    assert isinstance(info.value, InsiderError)
    assert len(mock_insider.calls("POST", LAUNCH)) == 1
    assert_no_key(info.value)


async def test_on_attempt_runs_once_per_attempt_before_the_wire(
    mock_insider: MockInsider,
) -> None:
    mock_insider.post(LAUNCH, status=503)
    mock_insider.post(LAUNCH, exception=refused())
    mock_insider.post(LAUNCH, status=429, headers={"Retry-After": "0"})
    mock_insider.post(LAUNCH, payload=OK)
    attempts: list[tuple[int, int]] = []

    def hook(n: int) -> None:
        attempts.append((n, len(mock_insider.calls("POST", LAUNCH))))

    async with client() as c:
        await c.send(MINIMAL, on_attempt=hook)
    assert attempts == [(1, 0), (2, 1), (3, 2), (4, 3)]  # (attempt, requests already sent)


class RecordingLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


async def test_every_attempt_takes_the_limiter_and_a_429_pauses_it(
    mock_insider: MockInsider,
) -> None:
    mock_insider.post(LAUNCH, status=429, headers={"Retry-After": "0.02"})
    mock_insider.post(LAUNCH, status=503)
    mock_insider.post(LAUNCH, payload=OK)
    limiter = RecordingLimiter()
    async with client(limiter=limiter) as c:
        await c.send(MINIMAL)
    assert limiter.acquired == 3
    assert limiter.penalties == [0.02]


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
    ],
)
def test_allowed_base_urls(base_url: str) -> None:
    assert WebPushClient(KEY, base_url=base_url).base_url == base_url.rstrip("/")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://web-push.api.useinsider.com",
        "http://127.0.0.1.example.com",
        "http://10.0.0.1:8080",
        "http://[::2]",
        "http://0.0.0.0",
        "ftp://127.0.0.1",
        "web-push.api.useinsider.com",
        "https://",
        "",
    ],
)
def test_refused_base_urls(base_url: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebPushClient(KEY, base_url=base_url)
    assert info.value.field == "base_url"


async def test_requests_go_to_the_base_url(mock_insider: MockInsider) -> None:
    mock_insider.post("http://localhost:8080/v2/single/7", payload=OK)
    async with client(base_url="http://localhost:8080/") as c:
        await c.send(MINIMAL, campaign_id=7)
    assert len(mock_insider.calls("POST", "http://localhost:8080/v2/single/7")) == 1


# -- the key stays secret ----------------------------------------------------------------------


def test_repr_shows_no_key() -> None:
    c = WebPushClient(KEY, partner_id=PARTNER)
    assert KEY not in repr(c)
    assert "SECRET" not in repr(c)
    assert "sha256:" in repr(c)
    assert PARTNER in repr(c)


async def test_debug_log_redacts_the_key(
    mock_insider: MockInsider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mock_insider.post(LAUNCH, exception=refused())
    mock_insider.post(LAUNCH, status=429, headers={"Retry-After": "0"})
    mock_insider.post(LAUNCH, payload=OK)
    async with client() as c:
        await c.send(MINIMAL)
    ours = [r for r in caplog.records if r.name == "insider_webpush"]
    assert len(ours) == 3  # one line per attempt
    assert all(r.levelno == logging.DEBUG for r in ours)
    assert all("<redacted>" in r.getMessage() for r in ours)
    assert "attempt 3 -> 200" in ours[-1].getMessage()
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() and KEY not in repr(r.args) for r in caplog.records)


async def test_no_error_holds_the_key(mock_insider: MockInsider) -> None:
    errors: list[BaseException] = []
    for kwargs in [
        {"status": 401, "payload": {"message": "Unauthorized"}},
        {"status": 500, "body": "oops", "content_type": "text/plain"},
        {"exception": refused()},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"payload": {"success": True}},
    ]:
        mock_insider.post(LAUNCH, **kwargs)
        async with client(retry=RetryPolicy.never()) as c:
            with pytest.raises(InsiderError) as info:
                await c.send(MINIMAL)
        errors.append(info.value)
    assert len(errors) == 5
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


async def test_from_env_key_is_the_bearer(
    mock_insider: MockInsider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIDER_API_KEY", "env-key-123")
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.delenv("INSIDER_BASE_URL", raising=False)
    mock_insider.post(LAUNCH, payload=OK)
    async with WebPushClient.from_env() as c:
        await c.send(MINIMAL)
    (call,) = mock_insider.calls("POST", LAUNCH)
    assert call.kwargs["headers"]["Authorization"] == "Bearer env-key-123"
    assert call.kwargs["json"]["partner_id"] == PARTNER


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


# -- sessions -----------------------------------------------------------------------------------


async def test_borrowed_session_is_used_and_left_open(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    async with aiohttp.ClientSession() as session:
        c = client(session=session)
        await c.send(MINIMAL)
        await c.close()
        assert not session.closed
        async with client(session=session) as c2:
            assert c2 is not None
        assert not session.closed
    assert len(mock_insider.calls("POST", LAUNCH)) == 1


async def test_own_session_is_closed(mock_insider: MockInsider) -> None:
    mock_insider.post(LAUNCH, payload=OK, repeat=True)
    c = client()
    await c.send(MINIMAL)
    session = c._session
    assert session is not None
    assert not session.closed
    await c.close()
    assert session.closed
    async with client() as c2:
        await c2.send(MINIMAL)
        session = c2._session
    assert session is not None
    assert session.closed


async def test_close_without_requests_is_fine() -> None:
    c = client()
    await c.close()
    await c.close()


async def test_no_unclosed_session_warning(
    mock_insider: MockInsider, caplog: pytest.LogCaptureFixture
) -> None:
    mock_insider.post(LAUNCH, payload=OK)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with client() as c:
            await c.send(MINIMAL)
        del c
        gc.collect()
    assert not [w for w in caught if "nclosed" in str(w.message)]
    assert "Unclosed" not in caplog.text


# -- other operations and versions ---------------------------------------------------------


@pytest.mark.parametrize(("campaign_id", "path"), [(None, "campaign_id"), (25696, "25696")])
async def test_api_version_v1(
    mock_insider: MockInsider, campaign_id: int | None, path: str
) -> None:
    url = f"{DEFAULT_BASE_URL}/v1/single/{path}"
    mock_insider.post(url, payload=OK)
    async with client() as c:
        await c.send(MINIMAL, campaign_id=campaign_id, api_version="v1")
    (call,) = mock_insider.calls("POST", url)
    assert call.kwargs["json"] == MINIMAL_BODY


async def test_unknown_api_version_sends_nothing(mock_insider: MockInsider) -> None:
    async with client() as c:
        with pytest.raises(ValidationError) as info:
            await c.send(MINIMAL, api_version="v3")
    assert info.value.field == "api_version"
    assert mock_insider.requests == {}


async def test_create_posts_a_draft_and_returns_its_id(mock_insider: MockInsider) -> None:
    url = f"{DEFAULT_BASE_URL}/v1/single"
    mock_insider.post(url, status=201, payload={"success": True, "campaign_id": 25696})
    async with client() as c:
        assert await c.create("Spring sale", language="en_US") == 25696
    (call,) = mock_insider.calls("POST", url)
    assert call.kwargs["json"] == {
        "partner_id": PARTNER,
        "title": "Spring sale",
        "language": "en_US",
        "is_all": False,
    }
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {KEY}"


async def test_create_duplicate_title_is_a_bad_request(mock_insider: MockInsider) -> None:
    mock_insider.post(f"{DEFAULT_BASE_URL}/v1/single", status=400, payload={"message": "dup"})
    async with client() as c:
        with pytest.raises(BadRequestError):
            await c.create("Spring sale")


@pytest.mark.parametrize(
    ("kwargs", "title", "field"),
    [({"partner_id": None}, "t", "partner_id"), ({}, "t" * 101, "title")],
)
async def test_create_invalid_sends_nothing(
    mock_insider: MockInsider, kwargs: dict[str, Any], title: str, field: str
) -> None:
    async with client(**kwargs) as c:
        with pytest.raises(ValidationError) as info:
            await c.create(title)
    assert info.value.field == field
    assert mock_insider.requests == {}


async def test_delete_sends_partner_id(mock_insider: MockInsider) -> None:
    url = f"{DEFAULT_BASE_URL}/v1/single/25696"
    mock_insider.delete(url, payload={"success": True})
    async with client() as c:
        assert await c.delete(25696) is None
    (call,) = mock_insider.calls("DELETE", url)
    assert call.kwargs["json"] == {"partner_id": PARTNER}
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {KEY}"
    assert list(mock_insider.requests) == [("DELETE", URL(url))]


async def test_delete_of_an_unknown_campaign(mock_insider: MockInsider) -> None:
    url = f"{DEFAULT_BASE_URL}/v1/single/1"
    mock_insider.delete(url, status=424, payload={"message": "SERVICE:-Campaign not found"})
    async with client() as c:
        with pytest.raises(FailedDependencyError) as info:
            await c.delete(1)
    assert info.value.message == "SERVICE:-Campaign not found"


async def test_delete_without_partner_id_sends_nothing(mock_insider: MockInsider) -> None:
    async with client(partner_id=None) as c:
        with pytest.raises(ValidationError):
            await c.delete(1)
    assert mock_insider.requests == {}
