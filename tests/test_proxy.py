"""Proxies: the environment's (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), an explicit ``proxy=``
with credentials that never show, CONNECT tunnels to a loopback TLS server with a test CA,
a proxy that is down or refuses, and the CLI's ``--proxy``.

A recording proxy on 127.0.0.1 (``tests/proxy_server.py``) sees every request. As with
requests, a loopback host goes through the proxy too unless NO_PROXY lists it, so these
tests aim at FakeInsider on 127.0.0.1 through it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from insider_webpush import (
    APIError,
    FakeInsider,
    Fault,
    RetryPolicy,
    TransportError,
    ValidationError,
    WebPush,
    WebPushClient,
)
from insider_webpush.cli.credentials import secrets_in
from insider_webpush.cli.output import Output
from insider_webpush.outcomes import Stage
from insider_webpush.transport import WireConnector

from .proxy_server import Certificates, RecordingProxy, Seen, TlsFront, make_certificates
from .samples import MINIMAL_FIELDS

PUSH = WebPush(**MINIMAL_FIELDS)
FAST = RetryPolicy(base=0.01, cap=0.02)
ROOT = Path(__file__).resolve().parents[1]
USER = "push-bot"
PASSWORD = "s3cret-Pa55w0rd"  # a test proxy's
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PATH = "/v2/single/campaign_id"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from an environment with no proxy settings at all."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
async def fake() -> AsyncIterator[FakeInsider]:
    async with FakeInsider() as server:
        yield server


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    async with RecordingProxy() as server:
        yield server


@pytest.fixture
async def locked_proxy() -> AsyncIterator[RecordingProxy]:
    """A proxy that wants USER and PASSWORD."""
    async with RecordingProxy(credentials=BASIC) as server:
        yield server


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def tls_fake(fake: FakeInsider, certificates: Certificates) -> AsyncIterator[TlsFront]:
    """FakeInsider behind TLS on 127.0.0.1, with a certificate of the test CA."""
    async with TlsFront(certificates.server_context(), fake.port) as front:
        yield front


def dead_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_credentials(url: str, password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{USER}:{password}@")


class GateLimiter:
    """A limiter that lets everything through and notes what the proxy and the server had
    seen at each grant (the gate)."""

    def __init__(self, proxy: RecordingProxy, fake: FakeInsider) -> None:
        self._proxy = proxy
        self._fake = fake
        self.grants: list[tuple[int, int]] = []

    async def acquire(self, *, max_pause: float = math.inf) -> None:
        self.grants.append((len(self._proxy.seen), len(self._fake.requests)))

    def penalize(self, seconds: float) -> None:
        pass

    def paused_for(self) -> float:
        return 0.0


class CountingRetry(RetryPolicy):
    """A RetryPolicy that notes each failed attempt it is asked about."""

    asked: list[int]

    def delay(self, attempt: int, *args: Any, **kwargs: Any) -> float | None:
        CountingRetry.asked.append(attempt)
        return super().delay(attempt, *args, **kwargs)


# -- the environment -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
async def test_http_proxy_from_the_environment_carries_requests_to_loopback(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInsider, proxy: RecordingProxy, name: str
) -> None:
    monkeypatch.setenv(name, proxy.url)
    monkeypatch.setenv("NO_PROXY", "")  # empty: nothing bypassed, loopback included
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)
    assert proxy.seen == [Seen("POST", fake.base_url + PATH, None)]
    assert len(fake.launches) == 1


async def test_lower_case_names_win_and_https_proxy_is_only_for_https(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInsider, proxy: RecordingProxy
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    monkeypatch.setenv("http_proxy", proxy.url)  # as requests and urllib: lower case wins
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)
    assert [s.method for s in proxy.seen] == ["POST"]

    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead_port()}")  # not for http://
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)
    assert len(proxy.seen) == 1
    assert len(fake.launches) == 2


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*", ".0.0.1"])
async def test_no_proxy_listing_the_host_goes_directly(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInsider, proxy: RecordingProxy, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("no_proxy", no_proxy)
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)
    assert proxy.seen == []
    assert len(fake.launches) == 1


async def test_the_environment_is_read_when_the_session_is_made(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInsider, proxy: RecordingProxy
) -> None:
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)  # the session is made: no proxy in the environment
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        await client.send(PUSH)  # read once per session, not per request
    assert proxy.seen == []
    async with fake.client(retry=FAST) as client:
        await client.send(PUSH)
    assert len(proxy.seen) == 1


async def test_a_bad_proxy_in_the_environment_is_named_not_shown(
    monkeypatch: pytest.MonkeyPatch, fake: FakeInsider
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{USER}:{PASSWORD}@proxy.example:99999")
    async with fake.client(retry=FAST) as client:
        with pytest.raises(ValidationError) as caught:
            await client.send(PUSH)
    assert caught.value.field == "HTTP_PROXY (from the environment)"
    assert PASSWORD not in str(caught.value)
    assert fake.requests == []


# -- an explicit proxy with credentials --------------------------------------------------------


async def test_explicit_proxy_with_credentials_wins_and_never_shows_them(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fake: FakeInsider,
    locked_proxy: RecordingProxy,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The environment says otherwise twice over: an explicit proxy ignores both.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = fake.client(retry=FAST, proxy=with_credentials(locked_proxy.url))
    async with client:
        await client.send(PUSH)
        shown = [repr(client), repr(client._transport), str(vars(client))]
    assert locked_proxy.seen == [Seen("POST", fake.base_url + PATH, BASIC)]
    assert len(fake.launches) == 1
    # The forwarded request carried no Proxy-Authorization on to the server.
    assert "proxy-authorization" not in {k.lower() for k in fake.requests[0].headers}
    assert f"<proxy 127.0.0.1:{locked_proxy.port}>" in shown[1]
    for text in [*shown, caplog.text]:
        assert PASSWORD not in text
        assert BASIC.split()[1] not in text


async def test_a_proxy_that_refuses_the_credentials_is_named_not_them(
    caplog: pytest.LogCaptureFixture, fake: FakeInsider, locked_proxy: RecordingProxy
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Passw0rd"
    retry = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
    async with fake.client(retry=retry, proxy=with_credentials(locked_proxy.url, wrong)) as c:
        with pytest.raises(TransportError) as caught:
            await c.send(PUSH)
    error = caught.value
    assert error.stage is Stage.NOT_SENT  # the proxy did not forward it: resent, per policy
    assert len(locked_proxy.seen) == 3
    assert fake.requests == []
    assert str(error) == (
        f"the request failed: the proxy 127.0.0.1:{locked_proxy.port} refused it: HTTP 407 "
        "Proxy Authentication Required (check the proxy's user name and password), before "
        "any byte of it reached Insider; it is safe to send again"
    )
    assert error.__context__ is None
    assert error.__cause__ is None
    for text in [str(error), repr(error), caplog.text]:
        assert wrong not in text


async def test_a_proxy_that_echoes_the_credentials_into_a_bad_answer_gets_them_redacted(
    fake: FakeInsider,
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        auth = next(h for h in head.split(b"\r\n") if h.startswith(b"Proxy-Authorization"))
        writer.write(b"HTTP/1.1 " + auth + b"\r\n\r\n")  # aiohttp quotes the bad line
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with fake.client(retry=RetryPolicy.never(), proxy=url) as client:
            with pytest.raises(TransportError) as caught:
                await client.send(PUSH)
    assert "Proxy-Authorization: Basic <redacted>" in str(caught.value)
    assert BASIC.split()[1] not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (f"ftp://{USER}:{PASSWORD}@proxy.example:21", "http:// or https:// URL"),
        (f"proxy.example:{PASSWORD}", "http:// or https:// URL"),
        (f"http://{USER}:{PASSWORD}@proxy.example:99999", "http:// or https:// URL"),
        (f"http://{USER}:{PASSWORD}@proxy.example:0", "the port must be 1 to 65535"),
        (f"http://{USER}:{PASSWORD}@proxy.example:", "the port must be 1 to 65535"),
        (f"http://{USER}:{PASSWORD}@:3128", "http:// or https:// URL"),
        (f"http://{USER}:{PASSWORD}@proxy.example:3128/x", "no path, query or fragment"),
        (f"http://{USER}:{PASSWORD}@proxy.example:3128?a=1", "no path, query or fragment"),
        (3128, "got a int"),
    ],
)
def test_a_bad_proxy_is_refused_at_construction_without_repeating_it(value: Any, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebPushClient("k", proxy=value)
    assert caught.value.field == "proxy"
    assert rule in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_proxy_and_a_transport_are_not_both_given(fake: FakeInsider) -> None:
    with pytest.raises(ValidationError, match="give a proxy or a transport, not both"):
        fake.client(in_process=True, proxy="http://127.0.0.1:3128")


# -- CONNECT to a loopback TLS server ---------------------------------------------------------


async def test_https_goes_through_a_connect_tunnel_and_the_gate_follows_it(
    fake: FakeInsider,
    tls_fake: TlsFront,
    locked_proxy: RecordingProxy,
    certificates: Certificates,
) -> None:
    limiter = GateLimiter(locked_proxy, fake)
    connector = WireConnector(ssl=certificates.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        client = fake.client(
            base_url=f"https://127.0.0.1:{tls_fake.port}",
            session=session,
            proxy=with_credentials(locked_proxy.url),
            limiter=limiter,
            retry=FAST,
        )
        async with client:
            first = await client.send(PUSH)
            second = await client.send(PUSH)  # the tunnel is pooled and used again
    assert first.campaign_id != second.campaign_id
    assert locked_proxy.seen == [Seen("CONNECT", f"127.0.0.1:{tls_fake.port}", BASIC)]
    # Each grant came once the tunnel was open (CONNECT seen), before the request reached
    # the server: the quota counts arrivals, not tunnels being built.
    assert limiter.grants == [(1, 0), (1, 1)]
    assert len(fake.launches) == 2


async def test_a_refused_connect_sends_nothing_and_takes_no_grant(
    fake: FakeInsider,
    tls_fake: TlsFront,
    locked_proxy: RecordingProxy,
    certificates: Certificates,
) -> None:
    limiter = GateLimiter(locked_proxy, fake)
    connector = WireConnector(ssl=certificates.client_context())
    retry = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = fake.client(
            base_url=f"https://127.0.0.1:{tls_fake.port}",
            session=session,
            proxy=locked_proxy.url,  # no credentials: 407 to the CONNECT
            limiter=limiter,
            retry=retry,
        )
        async with client:
            with pytest.raises(TransportError) as caught:
                await client.send(PUSH)
    assert caught.value.stage is Stage.NOT_SENT
    assert f"the proxy 127.0.0.1:{locked_proxy.port} refused it: HTTP 407" in str(caught.value)
    assert [s.method for s in locked_proxy.seen] == ["CONNECT", "CONNECT"]
    assert limiter.grants == []  # the gate never ran: no grant spent
    assert fake.requests == []


async def test_a_407_from_the_server_through_a_tunnel_is_the_servers_answer(
    fake: FakeInsider, tls_fake: TlsFront, proxy: RecordingProxy, certificates: Certificates
) -> None:
    fake.faults.append(Fault(status=407, at={0}))  # Insider itself, past the proxy
    connector = WireConnector(ssl=certificates.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        client = fake.client(
            base_url=f"https://127.0.0.1:{tls_fake.port}",
            session=session,
            proxy=proxy.url,
            retry=RetryPolicy.never(),
        )
        async with client:
            with pytest.raises(APIError) as caught:
                await client.send(PUSH)
    assert caught.value.status == 407
    assert [s.method for s in proxy.seen] == ["CONNECT"]


# -- a proxy that is down ------------------------------------------------------------------------


async def test_a_proxy_that_is_down_is_not_sent_and_retried(fake: FakeInsider) -> None:
    CountingRetry.asked = []
    port = dead_port()
    retry = CountingRetry(max_attempts=3, base=0.01, cap=0.02)
    async with fake.client(retry=retry, proxy=f"http://{USER}:{PASSWORD}@127.0.0.1:{port}") as c:
        with pytest.raises(TransportError) as caught:
            await c.send(PUSH)
    assert caught.value.stage is Stage.NOT_SENT
    assert CountingRetry.asked == [1, 2, 3]  # tried as often as the policy allows
    assert str(caught.value).startswith(
        f"the request failed: could not connect to the proxy 127.0.0.1:{port} ("
    )
    assert PASSWORD not in str(caught.value)
    assert fake.requests == []


# -- the command line ---------------------------------------------------------------------------


async def _cli(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run ``insider-webpush send ...`` in a subprocess; (exit code, stdout + stderr)."""
    push = [
        "--title", "t", "--description", "d", "--ttl", "60",
        "--image", "https://example.com/i.png", "--link", "https://example.com",
    ]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "insider_webpush", "send", "--plain", *push, *args,
        cwd=ROOT,
        env={**environ, "INSIDER_API_KEY": "test", "INSIDER_PARTNER_ID": "10000001", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_cli_proxy_option(fake: FakeInsider, locked_proxy: RecordingProxy) -> None:
    code, out = await _cli(
        "--base-url", fake.base_url, "--proxy", with_credentials(locked_proxy.url)
    )
    assert code == 0, out
    assert out.strip() == str(fake.launches[0].campaign_id)
    assert locked_proxy.seen == [Seen("POST", fake.base_url + PATH, BASIC)]


async def test_cli_https_proxy_environment_and_a_connect_tunnel(
    fake: FakeInsider, tls_fake: TlsFront, proxy: RecordingProxy, certificates: Certificates
) -> None:
    base_url = f"https://127.0.0.1:{tls_fake.port}"
    env = {"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": str(certificates.ca)}
    code, out = await _cli("--base-url", base_url, env=env)
    assert code == 0, out
    assert proxy.seen == [Seen("CONNECT", f"127.0.0.1:{tls_fake.port}", None)]
    assert len(fake.launches) == 1


async def test_cli_bad_proxy_is_a_usage_error_that_shows_no_password() -> None:
    code, out = await _cli(
        "--base-url", "http://127.0.0.1:9", "--proxy", f"http://{USER}:{PASSWORD}@proxy:99999"
    )
    assert code == 2
    assert "error: proxy: must be the proxy's http:// or https:// URL" in out
    assert PASSWORD not in out


def test_cli_masks_proxy_passwords_from_the_option_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://env-user:env-Passw0rd@proxy:3128")
    argv = ["send", "--proxy", "http://u:p%40ss-w0rd-x@proxy:3128", "--proxy=http://u:short@p:1"]
    out = Output(plain=True, secrets=secrets_in(argv))
    text = "env-Passw0rd p%40ss-w0rd-x p@ss-w0rd-x short shortcake proxy:3128"
    assert out.redact(text) == "*** *** *** *** shortcake proxy:3128"
