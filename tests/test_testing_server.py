"""FakeInsider over real loopback HTTP: what crosses the wire, timing, lifecycle, the client.

The contract, quota and fault rules themselves are the Simulator's (test_testing_simulator);
here they are checked to arrive over HTTP as the simulator says.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest

from insider_webpush import (
    FailedDependencyError,
    FakeInsider,
    Fault,
    Operation,
    RetryPolicy,
    ServerError,
    TransportError,
    WebPush,
    push_to_dict,
)
from insider_webpush.testing import DEFAULT_API_KEY

KEY = "sk-test-0123456789-SECRET"
PARTNER = "10000001"
LAUNCH = "/v2/single/campaign_id"
PUSH = WebPush(
    title="title of push",
    description="description of push",
    image="https://image.useinsider.com/icon.jpeg",
    link="https://example.com/",
    ttl=1000,
    partner_id=PARTNER,
)
BODY = push_to_dict(PUSH)
ONCE = RetryPolicy.never()


def fake_insider(**kwargs: Any) -> FakeInsider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("partner_id", PARTNER)
    return FakeInsider(**kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    session: aiohttp.ClientSession,
    fake: FakeInsider,
    path: str = LAUNCH,
    body: object = BODY,
    *,
    method: str = "POST",
    key: str | None = KEY,
) -> tuple[int, Any, Any]:
    """One raw request: (status, decoded JSON body, response headers)."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with session.request(method, fake.base_url + path, headers=headers, json=body) as r:
        return r.status, await r.json(content_type=None), r.headers


async def assert_refused(base_url: str) -> None:
    async with aiohttp.ClientSession() as fresh:  # no pooled connection to reuse
        with pytest.raises(aiohttp.ClientConnectorError):
            await fresh.post(base_url + LAUNCH, json=BODY)


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(400):  # up to 2 s
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition did not come true in time")


def statuses(fake: FakeInsider) -> list[int | None]:
    return [r.status for r in fake.requests]


# -- the default key ---------------------------------------------------------------------------


async def test_the_default_key_is_test(session: aiohttp.ClientSession) -> None:
    async with FakeInsider() as fake:
        assert fake.api_key == DEFAULT_API_KEY == "test"
        body = {**BODY, "partner_id": fake.partner_id}
        assert (await call(session, fake, body=body, key="test"))[0] == 200
        assert (await call(session, fake, body=body, key="test-key"))[0] == 401


def test_fake_server_accepts_the_same_default_key() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "insider_webpush", "fake-server", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert f"or {DEFAULT_API_KEY!r} when that is unset" in " ".join(help_text.split())


def test_importing_the_sdk_does_not_load_the_server() -> None:
    code = (
        "import sys, insider_webpush, insider_webpush.testing\n"
        "from insider_webpush import Fault, RecordedRequest, WebPushClient\n"
        "assert 'aiohttp.web' not in sys.modules, 'loaded by the import'\n"
        "from insider_webpush import FakeInsider\n"
        "assert 'aiohttp.web' in sys.modules\n"
        "assert FakeInsider is insider_webpush.testing.FakeInsider\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


# -- over the wire -----------------------------------------------------------------------------


async def test_answers_cross_the_wire_as_the_simulator_gives_them(
    session: aiohttp.ClientSession,
) -> None:
    faults = [Fault(status=429, retry_after=0.25, at={3})]
    async with fake_insider(rate_limit=2, rate_period=30, faults=faults) as fake:
        unauthorized = await call(session, fake, key="wrong")
        ok = await call(session, fake)
        async with session.post(
            fake.base_url + LAUNCH, json=BODY, headers={"Authorization": f"Bearer {KEY}"}
        ) as response:
            assert response.content_type == "application/json"
        injected = await call(session, fake)
        over_quota = await call(session, fake)
    assert unauthorized[:2] == (401, {"message": "Unauthorized"})
    assert ok[:2] == (200, {"success": True, "campaign_id": fake.launches[0].campaign_id})
    assert injected[:2] == (429, {"message": "Request limit exceeded"})
    assert injected[2]["Retry-After"] == "0.25"
    assert over_quota[0] == 429
    retry_after = float(over_quota[2]["Retry-After"])
    assert 29 < retry_after <= 30  # until the first launch leaves its 30 s window
    assert statuses(fake) == [401, 200, 200, 429, 429]


async def test_a_dropped_connection_gets_no_answer(session: aiohttp.ClientSession) -> None:
    async with fake_insider(faults=[Fault(drop=True, at={0, 2})]) as fake:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(session, fake)
        assert (await call(session, fake))[0] == 200
        async with fake.client(retry=ONCE) as client:
            with pytest.raises(TransportError) as caught:
                await client.send(PUSH)
    assert caught.value.ambiguous
    assert statuses(fake) == [None, 200, None]
    assert [r.index for r in fake.launches] == [1]


async def test_latency_delays_the_answer_of_a_processed_request(
    session: aiohttp.ClientSession,
) -> None:
    async with fake_insider(faults=[Fault(latency=0.3, at={0, 2})]) as fake:
        started = time.perf_counter()
        assert (await call(session, fake))[0] == 200
        slow = time.perf_counter() - started
        started = time.perf_counter()
        assert (await call(session, fake))[0] == 200
        fast = time.perf_counter() - started
        # A client that gives up still launched the push: the server processed it on arrival.
        async with fake.client(retry=ONCE, timeout=0.05) as client:
            with pytest.raises(TransportError, match="timed out") as caught:
                await client.send(PUSH)
    assert slow >= 0.3 > fast
    assert caught.value.ambiguous
    assert [r.index for r in fake.launches] == [0, 1, 2]


async def test_a_processed_500_is_an_ambiguous_server_error() -> None:
    fault = Fault(status=500, processed=True, operation=Operation.LAUNCH_V2)
    async with fake_insider(faults=[fault]) as fake, fake.client() as client:
        with pytest.raises(ServerError) as caught:
            await client.send(PUSH)
    assert caught.value.ambiguous
    assert len(fake.requests) == len(fake.launches) == 1  # never retried, yet launched


async def test_records_redact_the_key_and_hold_the_loop_time(
    session: aiohttp.ClientSession,
) -> None:
    loop = asyncio.get_running_loop()
    async with fake_insider() as fake:
        before = loop.time()
        await call(session, fake)
        after = loop.time()
        await call(session, fake, key=KEY + "-wrong")
        seen = repr(fake.requests) + repr(fake) + str([dict(r.headers) for r in fake.requests])
    first = fake.requests[0]
    assert before <= first.arrived_at <= after  # the event loop's clock
    assert first.body == BODY
    assert (first.method, first.path, first.status) == ("POST", LAUNCH, 200)
    assert fake.launches == [first]
    for record in fake.requests:
        assert record.headers["Authorization"] == "Bearer <redacted>"
        assert record.headers["Content-Type"] == "application/json"
    assert KEY not in seen


# -- the client helper -------------------------------------------------------------------------


async def test_the_client_helper_targets_the_fake() -> None:
    async with (
        fake_insider(rate_limit=7, rate_period=0.7) as fake,
        fake.client(retry=ONCE) as client,
    ):
        assert client.base_url == fake.base_url
        assert client.partner_id == PARTNER
        await client.send(attrs.evolve(PUSH, partner_id=None))
    assert len(fake.launches) == 1


async def test_create_launch_delete_round_trip() -> None:
    async with fake_insider() as fake, fake.client(retry=ONCE) as client:
        campaign_id = await client.create("Spring sale", language="en_US")
        assert fake.drafts == {campaign_id: "Spring sale"}
        v2 = await client.send(attrs.evolve(PUSH, partner_id=None), campaign_id=campaign_id)
        v1 = await client.send(PUSH, campaign_id=campaign_id, api_version="v1")
        await client.delete(campaign_id)
        assert fake.drafts == {}
        with pytest.raises(FailedDependencyError, match="Campaign not found"):
            await client.send(PUSH, campaign_id=campaign_id)
    assert v2.campaign_id == v1.campaign_id == campaign_id
    assert [(r.method, r.path, r.operation, r.status) for r in fake.requests] == [
        ("POST", "/v1/single", Operation.CREATE, 201),
        ("POST", f"/v2/single/{campaign_id}", Operation.LAUNCH_V2, 200),
        ("POST", f"/v1/single/{campaign_id}", Operation.LAUNCH_V1, 200),
        ("DELETE", f"/v1/single/{campaign_id}", Operation.DELETE, 200),
        ("POST", f"/v2/single/{campaign_id}", Operation.LAUNCH_V2, 424),
    ]
    assert fake.requests[0].body == {
        "partner_id": PARTNER,
        "title": "Spring sale",
        "language": "en_US",
        "is_all": False,
    }
    assert [r.index for r in fake.launches] == [1, 2]
    assert [r.campaign_id for r in fake.launches] == [campaign_id, campaign_id]


async def test_the_literal_campaign_id_launches_with_a_fresh_id() -> None:
    async with fake_insider() as fake, fake.client(retry=ONCE) as client:
        first = await client.send(PUSH)
        second = await client.send(PUSH, api_version="v1")
    assert first.campaign_id != second.campaign_id
    assert [r.path for r in fake.launches] == [LAUNCH, "/v1/single/campaign_id"]
    assert [r.campaign_id for r in fake.launches] == [first.campaign_id, second.campaign_id]
    assert fake.drafts == {}


# -- lifecycle -----------------------------------------------------------------------------


async def test_close_is_idempotent_and_stops_listening(session: aiohttp.ClientSession) -> None:
    fake = fake_insider()
    await fake.close()  # before start: nothing to do
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url
    with pytest.raises(RuntimeError, match="not started"):
        fake.client()
    await fake.start()
    with pytest.raises(RuntimeError, match="already started"):
        await fake.start()
    base_url = fake.base_url
    assert base_url == f"http://127.0.0.1:{fake.port}"
    assert (await call(session, fake))[0] == 200
    await fake.close()
    await fake.close()
    await assert_refused(base_url)


async def test_close_cuts_a_long_latency_short(session: aiohttp.ClientSession) -> None:
    fake = fake_insider(faults=[Fault(latency=30)])
    await fake.start()
    pending = asyncio.create_task(call(session, fake))
    await eventually(lambda: len(fake.requests) == 1)
    started = time.perf_counter()
    await fake.close()
    assert time.perf_counter() - started < 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pending


async def test_nothing_is_logged_or_warned(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = [Fault(drop=True, at={1}), Fault(latency=0.2, at={2}), Fault(latency=30, at={3})]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with fake_insider(faults=faults) as fake:
            await call(session, fake)
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await call(session, fake)
            with pytest.raises(asyncio.TimeoutError):  # the client gives up mid-latency
                async with asyncio.timeout(0.05):
                    await call(session, fake)
            pending = asyncio.create_task(call(session, fake))
            await eventually(lambda: len(fake.requests) == 4)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending
        await asyncio.sleep(0.25)  # the abandoned latency ends after close
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_serve_forever_until_cancelled_or_closed(session: aiohttp.ClientSession) -> None:
    fake = fake_insider()
    serving = asyncio.create_task(fake.serve_forever())
    await eventually(lambda: repr(fake).startswith("FakeInsider(http://"))
    base_url = fake.base_url
    assert (await call(session, fake))[0] == 200
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    await assert_refused(base_url)

    other = fake_insider()
    await other.start()
    serving = asyncio.create_task(other.serve_forever())
    await asyncio.sleep(0.01)
    await other.close()
    await asyncio.wait_for(serving, 1.0)  # returns once closed elsewhere
