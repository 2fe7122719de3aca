"""FakeInsider over real loopback HTTP: contract, quota, faults, records and lifecycle."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
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
    RecordedRequest,
    RetryPolicy,
    ServerError,
    Target,
    TransportError,
    WebPush,
    push_to_dict,
)
from insider_webpush.models import TITLE_MAX

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
    data: str | None = None,
    content_type: str | None = None,
) -> tuple[int, Any, Any]:
    """One raw request: (status, decoded JSON body, response headers)."""
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    payload: dict[str, Any] = {"data": data} if data is not None else {"json": body}
    async with session.request(method, fake.base_url + path, headers=headers, **payload) as r:
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


def ceil_ms(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000


# -- the contract --------------------------------------------------------------------------


async def test_every_request_needs_the_bearer_key(session: aiohttp.ClientSession) -> None:
    async with fake_insider() as fake:
        assert (await call(session, fake, key=None))[:2] == (401, {"message": "Unauthorized"})
        assert (await call(session, fake, key="wrong"))[:2] == (401, {"message": "Unauthorized"})
        async with session.post(
            fake.base_url + LAUNCH, json=BODY, headers={"Authorization": KEY}
        ) as response:  # the key without "Bearer "
            assert response.status == 401
        assert (await call(session, fake))[0] == 200
    assert statuses(fake) == [401, 401, 401, 200]
    assert [r.index for r in fake.launches] == [3]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "x" * (TITLE_MAX + 1)}, "title"),
        ({"title": ""}, "title"),
        ({"description": None}, "description"),
        ({"banner": "https://example.com/b.png", "description": "d" * 31}, "description"),
        ({"image": "http://example.com/i.png"}, "image"),
        ({"ttl": "0"}, "ttl"),
        ({"target": {"attribute": "wp_browser", "values": ["Edg"]}}, "target.attribute"),
        ({"colour": "red"}, "colour"),
        ({"partner_id": None}, "partner_id"),
        ({"partner_id": "99999999"}, "partner_id"),
    ],
)
async def test_a_bad_launch_body_is_a_400_naming_the_field(
    session: aiohttp.ClientSession, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    async with fake_insider() as fake:
        status, answer, _ = await call(session, fake, body=body)
    assert status == 400
    assert answer["message"].startswith(f"{field}: "), answer
    assert fake.launches == []
    assert fake.requests[0].body == body


async def test_the_launch_limits_are_the_models(session: aiohttp.ClientSession) -> None:
    at_limit = {**BODY, "title": "x" * TITLE_MAX, "ttl": "864000"}
    with_target = {**BODY, "target": {"attribute": "d_wp_browser", "values": ["Edg"]}}
    async with fake_insider() as fake:
        assert (await call(session, fake, body=at_limit))[0] == 200
        assert (await call(session, fake, body=with_target))[0] == 200
        assert (await call(session, fake, body=[BODY]))[:2] == (
            400,
            {"message": "push: must be a JSON object, not list"},
        )
    assert len(fake.launches) == 2


async def test_the_body_must_be_json(session: aiohttp.ClientSession) -> None:
    async with fake_insider() as fake:
        as_text = await call(session, fake, data='{"title": 1}', content_type="text/plain")
        broken = await call(session, fake, data="{not json", content_type="application/json")
    assert as_text[:2] == (400, {"message": "Content-Type: must be application/json"})
    assert broken[:2] == (400, {"message": "body: is not valid JSON"})
    assert fake.requests[1].body == "{not json"  # kept readable in the record
    assert fake.launches == []


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


async def test_an_unknown_campaign_is_424(session: aiohttp.ClientSession) -> None:
    not_found = (424, {"message": "SERVICE:-Campaign not found"})
    partner = {"partner_id": PARTNER}
    async with fake_insider() as fake:
        assert (await call(session, fake, "/v2/single/424242"))[:2] == not_found
        assert (await call(session, fake, "/v1/single/424242"))[:2] == not_found
        assert (await call(session, fake, "/v2/single/abc"))[:2] == not_found
        assert (await call(session, fake, "/v2/single/\uff11\uff12"))[:2] == not_found  # not ASCII
        for path in ("/v1/single/424242", "/v1/single/campaign_id"):
            assert (await call(session, fake, path, partner, method="DELETE"))[:2] == not_found
    assert fake.launches == []


async def test_the_literal_campaign_id_launches_with_a_fresh_id() -> None:
    async with fake_insider() as fake, fake.client(retry=ONCE) as client:
        first = await client.send(PUSH)
        second = await client.send(PUSH, api_version="v1")
    assert first.campaign_id != second.campaign_id
    assert [r.path for r in fake.launches] == [LAUNCH, "/v1/single/campaign_id"]
    assert [r.campaign_id for r in fake.launches] == [first.campaign_id, second.campaign_id]
    assert fake.drafts == {}


async def test_create_titles_are_unique_and_bodies_checked(
    session: aiohttp.ClientSession,
) -> None:
    def draft(title: str, **extra: object) -> dict[str, object]:
        return {"partner_id": PARTNER, "title": title, **extra}

    async with fake_insider() as fake:
        first = await call(session, fake, "/v1/single", draft("Weekly"))
        duplicate = await call(session, fake, "/v1/single", draft("Weekly", language="en_US"))
        first_id = first[1]["campaign_id"]
        await call(
            session, fake, f"/v1/single/{first_id}", {"partner_id": PARTNER}, method="DELETE"
        )
        again = await call(session, fake, "/v1/single", draft("Weekly"))  # the title is free
        missing = await call(session, fake, "/v1/single", {"partner_id": PARTNER})
        other = await call(session, fake, "/v1/single", {"partner_id": "1", "title": "B"})
        long = await call(session, fake, "/v1/single", draft("x" * (TITLE_MAX + 1)))
        extra = await call(session, fake, "/v1/single", draft("C", colour="red"))
        again_id = again[1]["campaign_id"]
        no_partner = await call(session, fake, f"/v1/single/{again_id}", {}, method="DELETE")
    assert first[:2] == (201, {"success": True, "campaign_id": first_id})
    assert duplicate[:2] == (400, {"message": "title: a draft with this title already exists"})
    assert again[0] == 201
    assert again_id != first_id
    assert fake.drafts == {again_id: "Weekly"}
    assert missing[:2] == (400, {"message": "title: is required"})
    assert other[:2] == (400, {"message": "partner_id: is not this account's partner id"})
    assert long[0] == 400
    assert long[1]["message"].startswith(f"title: must be at most {TITLE_MAX}")
    assert extra[:2] == (400, {"message": "colour: is not a field of a draft"})
    assert no_partner[:2] == (400, {"message": "partner_id: is required"})


async def test_unknown_paths_and_methods(session: aiohttp.ClientSession) -> None:
    async with fake_insider() as fake:
        assert (await call(session, fake, "/v3/single/campaign_id"))[:2] == (
            404,
            {"message": "Not Found"},
        )
        assert (await call(session, fake, "/v2/single/"))[0] == 404
        assert (await call(session, fake, LAUNCH, method="PUT"))[0] == 405
        assert (await call(session, fake, "/v1/single", method="DELETE"))[0] == 405
    assert [r.operation for r in fake.requests] == [None] * 4


# -- the quota -----------------------------------------------------------------------------


async def test_a_full_window_answers_429_with_retry_after(
    session: aiohttp.ClientSession,
) -> None:
    async with fake_insider(rate_limit=5, rate_period=1.0) as fake:
        results = [await call(session, fake) for _ in range(11)]
        assert [status for status, _, _ in results] == [200] * 5 + [429] * 6
        assert results[5][1] == {"message": "Request limit exceeded"}
        first, rejected = fake.requests[0], fake.requests[5]
        retry_after = results[5][2]["Retry-After"]
        # seconds until the first request leaves the window, rounded up to the millisecond
        assert float(retry_after) == ceil_ms(first.arrived_at + 1.0 - rejected.arrived_at)
        assert len(retry_after.partition(".")[2]) <= 3
        # 429s take no slot: once the first request left the window, one more fits
        await asyncio.sleep(float(results[-1][2]["Retry-After"]))
        assert (await call(session, fake))[0] == 200
        assert fake.max_in_window() >= 11  # every arrival counts there, 429s included
    assert fake.count(429) == 6
    assert fake.count(200, operation=Operation.LAUNCH_V2) == len(fake.launches) == 6


async def test_the_window_slides(session: aiohttp.ClientSession) -> None:
    async with fake_insider(rate_limit=5, rate_period=1.0) as fake:
        for _ in range(3):
            assert (await call(session, fake))[0] == 200
        await asyncio.sleep(0.6)
        for _ in range(2):
            assert (await call(session, fake))[0] == 200
        status, _, headers = await call(session, fake)
        assert status == 429
        assert float(headers["Retry-After"]) < 0.45  # the first three leave first
        await asyncio.sleep(float(headers["Retry-After"]) + 0.1)
        # A sliding window frees the first three slots only (a fixed one would free all 5).
        assert [(await call(session, fake))[0] for _ in range(4)] == [200, 200, 200, 429]


async def test_each_operation_has_its_own_window(session: aiohttp.ClientSession) -> None:
    async with fake_insider(rate_limit=2, v1_rate_limit=3, v1_rate_period=30) as fake:
        v2 = [(await call(session, fake))[0] for _ in range(3)]
        v1 = [(await call(session, fake, "/v1/single/campaign_id"))[0] for _ in range(4)]
        creates = [
            (await call(session, fake, "/v1/single", {"partner_id": PARTNER, "title": f"t{i}"}))[0]
            for i in range(4)
        ]
        draft = next(iter(fake.drafts))
        deletes = [
            (
                await call(
                    session, fake, f"/v1/single/{draft}", {"partner_id": PARTNER}, method="DELETE"
                )
            )[0]
            for _ in range(4)
        ]
    assert v2 == [200, 200, 429]
    assert v1 == [200, 200, 200, 429]
    assert creates == [201, 201, 201, 429]
    assert deletes == [200, 424, 424, 429]  # a 424 still took a slot
    assert fake.max_in_window(operation=Operation.CREATE) == 4
    assert fake.max_in_window(operation=None, period=30) == 15


async def test_the_quota_can_be_switched_off(session: aiohttp.ClientSession) -> None:
    async with fake_insider(rate_limit=2, rate_period=10, enforce_quota=False) as fake:
        assert [(await call(session, fake))[0] for _ in range(5)] == [200] * 5
    assert fake.max_in_window() == 5


# -- faults --------------------------------------------------------------------------------


async def test_a_status_fault_answers_instead_of_the_server(
    session: aiohttp.ClientSession,
) -> None:
    async with fake_insider(rate_limit=1, faults=[Fault(status=503, at={0})]) as fake:
        # No key check, no quota slot: the fault answered before the server looked.
        assert (await call(session, fake, key=None))[:2] == (
            503,
            {"message": "Service Unavailable"},
        )
        assert (await call(session, fake))[0] == 200
    assert statuses(fake) == [503, 200]
    assert [r.index for r in fake.launches] == [1]


async def test_a_429_fault_carries_retry_after_when_given(
    session: aiohttp.ClientSession,
) -> None:
    faults = [
        Fault(status=429, at={0}, retry_after=0.25),
        Fault(status=429, at={1}),
        Fault(status=424, at={2}, message="SERVICE:-Push service down"),
    ]
    async with fake_insider(faults=faults) as fake:
        with_header = await call(session, fake)
        without = await call(session, fake)
        custom = await call(session, fake)
    assert with_header[:2] == (429, {"message": "Request limit exceeded"})
    assert with_header[2]["Retry-After"] == "0.25"
    assert without[0] == 429
    assert "Retry-After" not in without[2]
    assert custom[:2] == (424, {"message": "SERVICE:-Push service down"})


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


async def test_at_picks_requests_by_arrival_index(session: aiohttp.ClientSession) -> None:
    fault = Fault(status=500, at=[1, 3])  # any iterable
    assert fault.at == frozenset({1, 3})
    assert Fault(status=500, at=4).at == frozenset({4})
    async with fake_insider(faults=[fault]) as fake:
        for _ in range(5):
            await call(session, fake)
    assert statuses(fake) == [200, 500, 200, 500, 200]
    assert [r.index for r in fake.requests] == [0, 1, 2, 3, 4]


async def test_random_faults_follow_the_seed(session: aiohttp.ClientSession) -> None:
    async def run(seed: int) -> list[int | None]:
        async with fake_insider(seed=seed, faults=[Fault(status=503, probability=0.3)]) as fake:
            for _ in range(40):
                await call(session, fake)
        return statuses(fake)

    first, again, other = await run(1), await run(1), await run(2)
    assert first == again
    assert first != other
    assert 0 < first.count(503) < 40
    assert 0 < other.count(503) < 40
    assert set(first) == {200, 503}


async def test_a_processed_fault_launches_then_fails(session: aiohttp.ClientSession) -> None:
    faults = [
        Fault(status=500, processed=True, at={0, 2}),
        Fault(drop=True, processed=True, at={1}),
    ]
    async with fake_insider(faults=faults, rate_limit=2, rate_period=30) as fake:
        assert (await call(session, fake))[:2] == (500, {"message": "Internal Server Error"})
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call(session, fake)
        # processed like any request: this one was over the quota, so nothing launched
        assert (await call(session, fake))[0] == 500
    assert statuses(fake) == [500, None, 500]
    assert [r.index for r in fake.launches] == [0, 1]
    assert all(r.campaign_id is not None for r in fake.launches)


async def test_a_processed_500_is_an_ambiguous_server_error() -> None:
    fault = Fault(status=500, processed=True, operation=Operation.LAUNCH_V2)
    async with fake_insider(faults=[fault]) as fake, fake.client() as client:
        with pytest.raises(ServerError) as caught:
            await client.send(PUSH)
    assert caught.value.ambiguous
    assert len(fake.requests) == len(fake.launches) == 1  # never retried, yet launched


async def test_a_fault_can_be_kept_to_one_operation() -> None:
    fault = Fault(status=500, operation=Operation.CREATE)
    async with fake_insider(faults=[fault]) as fake, fake.client(retry=ONCE) as client:
        with pytest.raises(ServerError):
            await client.create("A")
        await client.send(PUSH)
    assert statuses(fake) == [500, 200]


async def test_the_first_matching_fault_applies_and_faults_can_be_added(
    session: aiohttp.ClientSession,
) -> None:
    async with fake_insider(faults=[Fault(status=503, at={1})]) as fake:
        await call(session, fake)
        fake.faults.append(Fault(status=502))  # no at, no probability: every request
        await call(session, fake)
        await call(session, fake)
    assert statuses(fake) == [200, 503, 502]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 500, "drop": True},
        {"status": 99},
        {"status": True},
        {"probability": 1.5},
        {"probability": -0.1},
        {"at": {-1}},
        {"at": {"3"}},
        {"latency": -1.0},
        {"latency": math.inf},
        {"retry_after": -1},
        {"operation": "launch_v2"},
    ],
)
def test_a_fault_that_makes_no_sense_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Fault(**kwargs)


# -- records -------------------------------------------------------------------------------


def _record(index: int, at: float, operation: Operation | None = Operation.LAUNCH_V2) -> Any:
    return RecordedRequest(index, "POST", LAUNCH, operation, None, at, 200, {})


def test_max_in_window_counts_half_open_windows() -> None:
    fake = FakeInsider(rate_period=1.0, v1_rate_period=0.25)
    times = [0.0, 0.1, 0.5, 0.99, 1.0, 1.5]
    fake.requests.extend(_record(i, t) for i, t in enumerate(times))
    assert fake.max_in_window() == 4  # [0, 1) holds 0, .1, .5, .99; 1.0 is outside
    assert fake.max_in_window(1.01) == 5
    assert fake.max_in_window(0.5) == 2
    assert fake.max_in_window(0.0001) == 1
    fake.requests.extend(_record(9, t, Operation.CREATE) for t in (0.3, 0.5, 0.55, 0.8))
    assert fake.max_in_window() == 4  # other operations do not count
    assert fake.max_in_window(operation=Operation.CREATE) == 2  # its own period: 0.25
    assert fake.max_in_window(2.0, operation=None) == 10
    assert FakeInsider().max_in_window() == 0
    with pytest.raises(ValueError, match="period"):
        fake.max_in_window(operation=None)


def test_max_in_window_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        period = rng.choice([1.0, 5.0, 30.0])  # whole numbers: float-exact sums
        times = sorted(float(rng.randint(0, 100)) for _ in range(rng.randint(1, 60)))
        fake = FakeInsider()
        fake.requests.extend(_record(i, t) for i, t in enumerate(times))
        brute = max(sum(1 for t in times if s <= t < s + period) for s in times)
        assert fake.max_in_window(period) == brute, (period, times)


async def test_records_redact_the_key(session: aiohttp.ClientSession) -> None:
    async with fake_insider() as fake:
        await call(session, fake)
        await call(session, fake, key=KEY + "-wrong")
        seen = repr(fake.requests) + repr(fake) + str([dict(r.headers) for r in fake.requests])
    for record in fake.requests:
        assert record.headers["Authorization"] == "Bearer <redacted>"
        assert record.headers["authorization"] == "Bearer <redacted>"
        assert record.headers["Content-Type"] == "application/json"
    assert KEY not in seen
    assert fake.api_key == KEY


async def test_records_hold_arrival_and_answer(session: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    async with fake_insider() as fake:
        before = loop.time()
        await call(session, fake)
        after = loop.time()
    (record,) = fake.requests
    assert before <= record.arrived_at <= after  # the event loop's clock
    assert record.body == BODY
    assert (record.method, record.path, record.status) == ("POST", LAUNCH, 200)
    assert fake.launches == [record]


# -- lifecycle -----------------------------------------------------------------------------


async def test_close_is_idempotent_and_stops_listening(session: aiohttp.ClientSession) -> None:
    fake = fake_insider()
    await fake.close()  # before start: nothing to do
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url
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


async def test_the_client_helper_targets_the_fake() -> None:
    async with (
        fake_insider(rate_limit=7, rate_period=0.7) as fake,
        fake.client(retry=ONCE) as client,
    ):
        assert client.base_url == fake.base_url
        assert client.partner_id == PARTNER
        await client.send(attrs.evolve(PUSH, partner_id=None))
    assert len(fake.launches) == 1


async def test_many_requests_are_cheap_to_record(session: aiohttp.ClientSession) -> None:
    target = Target("d_wp_browser", ["Edg"])
    async with fake_insider(enforce_quota=False) as fake:
        for i in range(200):
            body = push_to_dict(attrs.evolve(PUSH, title=f"t{i % 3}", target=target))
            await call(session, fake, body=body)
    assert len(fake.launches) == 200
    # byte-identical bodies share one decoded object, and every header set is shared
    assert len({id(r.body) for r in fake.requests}) == 3
    assert len({id(r.headers) for r in fake.requests}) <= 3


# -- in process: the same fake behind the transport seam, no socket ---------------------------


async def test_the_in_process_transport_is_the_same_fake_without_a_socket() -> None:
    from insider_webpush import RateLimitError
    from insider_webpush.outcomes import Stage

    fake = fake_insider(rate_limit=3, rate_period=60.0)  # never started: no socket at all
    fake.faults.append(Fault(drop=True, processed=True, at={1}))
    # The client's own limiter is told 100: it is the fake's quota that must answer the 429.
    async with fake.client(in_process=True, retry=ONCE, rate_limit=100) as client:
        first = await client.send(PUSH)
        with pytest.raises(TransportError) as dropped:
            await client.send(PUSH)
        await client.send(PUSH)
        with pytest.raises(RateLimitError):  # the fake's own quota: the fourth launch
            await client.send(PUSH)
    assert dropped.value.stage is Stage.SENT
    assert dropped.value.ambiguous
    assert [r.status for r in fake.requests] == [200, None, 200, 429]
    assert [r.campaign_id for r in fake.launches] == [first.campaign_id, 1002, 1003]
    assert fake.requests[0].headers["Authorization"] == "Bearer <redacted>"
    assert fake.requests[0].body == BODY


async def test_the_in_process_transport_times_out_a_late_answer_as_sent() -> None:
    from insider_webpush.models import Timeouts

    fake = fake_insider()
    fake.faults.append(Fault(latency=5.0))
    async with fake.client(in_process=True, retry=ONCE, timeout=Timeouts(total=0.1)) as client:
        with pytest.raises(TransportError) as late:
            await client.send(PUSH)
    assert late.value.ambiguous  # the fake processed it on arrival: it may have gone out
    assert len(fake.launches) == 1


async def test_the_fake_client_takes_another_key_to_test_a_401() -> None:
    from insider_webpush import AuthenticationError

    fake = fake_insider()
    async with fake.client(in_process=True, api_key="not-the-key", retry=ONCE) as client:
        with pytest.raises(AuthenticationError):
            await client.send(PUSH)
    assert [r.status for r in fake.requests] == [401]
