"""The sans-I/O Simulator: contract, quota, fault application and records, with explicit times.

No socket, no event loop: each request is handed to ``Simulator.receive`` with its arrival
time, so quota windows are exact and nothing sleeps.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from typing import Any

import attrs
import pytest

from insider_webpush import Operation, Target, WebPush, push_to_dict
from insider_webpush.models import TITLE_MAX
from insider_webpush.testing import DEFAULT_API_KEY, Fault, RecordedRequest
from insider_webpush.testing.simulator import Reply, Simulator

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


def simulator(**kwargs: Any) -> Simulator:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("partner_id", PARTNER)
    return Simulator(**kwargs)


def reply(
    sim: Simulator,
    path: str = LAUNCH,
    body: object = BODY,
    *,
    now: float = 0.0,
    method: str = "POST",
    key: str | None = KEY,
    authorization: str | None = None,
    data: str | None = None,
    content_type: str = "application/json",
) -> Reply:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    raw = data.encode() if data is not None else json.dumps(body).encode()
    return sim.receive(method, path, headers, raw, now)


def call(sim: Simulator, *args: Any, **kwargs: Any) -> tuple[int, Any, Mapping[str, str]]:
    """One request answered: (status, decoded JSON body, extra headers)."""
    answer = reply(sim, *args, **kwargs).answer
    assert answer is not None, "the connection was dropped"
    return answer.status, json.loads(answer.body), answer.headers or {}


def statuses(sim: Simulator) -> list[int | None]:
    return [r.status for r in sim.requests]


def ceil_ms(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000


# -- the contract --------------------------------------------------------------------------


def test_the_default_key_is_test() -> None:
    sim = Simulator()
    assert DEFAULT_API_KEY == "test"
    assert sim.api_key == DEFAULT_API_KEY
    assert call(sim, body={**BODY, "partner_id": sim.partner_id}, key="test")[0] == 200
    assert call(sim, key="test-key")[0] == 401


def test_every_request_needs_the_bearer_key() -> None:
    sim = simulator()
    assert call(sim, key=None)[:2] == (401, {"message": "Unauthorized"})
    assert call(sim, key="wrong")[:2] == (401, {"message": "Unauthorized"})
    assert call(sim, authorization=KEY)[0] == 401  # the key without "Bearer "
    assert call(sim)[0] == 200
    assert statuses(sim) == [401, 401, 401, 200]
    assert [r.index for r in sim.launches] == [3]


def test_header_names_are_case_insensitive() -> None:
    sim = simulator()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    answer = sim.receive("POST", LAUNCH, headers, json.dumps(BODY).encode(), 0.0).answer
    assert answer is not None
    assert answer.status == 200


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
def test_a_bad_launch_body_is_a_400_naming_the_field(change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    sim = simulator()
    status, answer, _ = call(sim, body=body)
    assert status == 400
    assert answer["message"].startswith(f"{field}: "), answer
    assert sim.launches == []
    assert sim.requests[0].body == body


def test_the_launch_limits_are_the_models() -> None:
    at_limit = {**BODY, "title": "x" * TITLE_MAX, "ttl": "864000"}
    with_target = {**BODY, "target": {"attribute": "d_wp_browser", "values": ["Edg"]}}
    sim = simulator()
    assert call(sim, body=at_limit)[0] == 200
    assert call(sim, body=with_target)[0] == 200
    assert call(sim, body=[BODY])[:2] == (400, {"message": "push: must be a JSON object, not list"})
    assert len(sim.launches) == 2


def test_the_body_must_be_json() -> None:
    sim = simulator()
    as_text = call(sim, data='{"title": 1}', content_type="text/plain; charset=utf-8")
    broken = call(sim, data="{not json")
    too_large = sim.receive("POST", LAUNCH, {"Authorization": f"Bearer {KEY}"}, None, 0.0)
    assert as_text[:2] == (400, {"message": "Content-Type: must be application/json"})
    assert broken[:2] == (400, {"message": "body: is not valid JSON"})
    assert too_large.answer is not None
    assert too_large.answer.status == 413
    assert sim.requests[1].body == "{not json"  # kept readable in the record
    assert sim.launches == []


def test_an_unknown_campaign_is_424() -> None:
    not_found = (424, {"message": "SERVICE:-Campaign not found"})
    partner = {"partner_id": PARTNER}
    sim = simulator()
    assert call(sim, "/v2/single/424242")[:2] == not_found
    assert call(sim, "/v1/single/424242")[:2] == not_found
    assert call(sim, "/v2/single/abc")[:2] == not_found
    assert call(sim, "/v2/single/\uff11\uff12")[:2] == not_found  # digits, not ASCII
    for path in ("/v1/single/424242", "/v1/single/campaign_id"):
        assert call(sim, path, partner, method="DELETE")[:2] == not_found
    assert sim.launches == []


def test_create_titles_are_unique_and_bodies_checked() -> None:
    def draft(title: str, **extra: object) -> dict[str, object]:
        return {"partner_id": PARTNER, "title": title, **extra}

    sim = simulator()
    first = call(sim, "/v1/single", draft("Weekly"))
    duplicate = call(sim, "/v1/single", draft("Weekly", language="en_US"))
    first_id = first[1]["campaign_id"]
    call(sim, f"/v1/single/{first_id}", {"partner_id": PARTNER}, method="DELETE")
    again = call(sim, "/v1/single", draft("Weekly"))  # the title is free again
    missing = call(sim, "/v1/single", {"partner_id": PARTNER})
    other = call(sim, "/v1/single", {"partner_id": "1", "title": "B"})
    long = call(sim, "/v1/single", draft("x" * (TITLE_MAX + 1)))
    extra = call(sim, "/v1/single", draft("C", colour="red"))
    again_id = again[1]["campaign_id"]
    no_partner = call(sim, f"/v1/single/{again_id}", {}, method="DELETE")
    assert first[:2] == (201, {"success": True, "campaign_id": first_id})
    assert duplicate[:2] == (400, {"message": "title: a draft with this title already exists"})
    assert again[0] == 201
    assert again_id != first_id
    assert sim.drafts == {again_id: "Weekly"}
    assert missing[:2] == (400, {"message": "title: is required"})
    assert other[:2] == (400, {"message": "partner_id: is not this account's partner id"})
    assert long[0] == 400
    assert long[1]["message"].startswith(f"title: must be at most {TITLE_MAX}")
    assert extra[:2] == (400, {"message": "colour: is not a field of a draft"})
    assert no_partner[:2] == (400, {"message": "partner_id: is required"})


def test_a_draft_launches_under_its_id_on_v1_and_v2() -> None:
    sim = simulator()
    campaign_id = call(sim, "/v1/single", {"partner_id": PARTNER, "title": "Spring"})[1][
        "campaign_id"
    ]
    v2 = call(sim, f"/v2/single/{campaign_id}")
    v1 = call(sim, f"/v1/single/{campaign_id}")
    fresh = call(sim)  # the literal "campaign_id": a fresh id each time
    assert v2[:2] == v1[:2] == (200, {"success": True, "campaign_id": campaign_id})
    assert fresh[1]["campaign_id"] not in (campaign_id, None)
    assert [r.campaign_id for r in sim.launches] == [
        campaign_id,
        campaign_id,
        fresh[1]["campaign_id"],
    ]
    assert [r.operation for r in sim.launches] == [
        Operation.LAUNCH_V2,
        Operation.LAUNCH_V1,
        Operation.LAUNCH_V2,
    ]


def test_unknown_paths_and_methods() -> None:
    sim = simulator()
    assert call(sim, "/v3/single/campaign_id")[:2] == (404, {"message": "Not Found"})
    assert call(sim, "/v2/single/")[0] == 404
    assert call(sim, LAUNCH, method="PUT")[0] == 405
    assert call(sim, "/v1/single", method="DELETE")[0] == 405
    assert [r.operation for r in sim.requests] == [None] * 4


# -- the quota -----------------------------------------------------------------------------


def test_a_full_window_answers_429_with_retry_after() -> None:
    sim = simulator(rate_limit=5, rate_period=1.0)
    results = [call(sim, now=0.1 * i) for i in range(11)]  # 0.0 .. 1.0
    assert [status for status, _, _ in results] == [200] * 5 + [429] * 5 + [200]
    assert results[5][1] == {"message": "Request limit exceeded"}
    # seconds until the first request leaves the window, rounded up to the millisecond
    assert results[5][2]["Retry-After"] == "0.5"
    assert float(results[6][2]["Retry-After"]) == ceil_ms(1.0 - 0.6)
    # 429s take no slot: at 1.0 the first request left the window and one more fits
    assert sim.max_in_window() == 10  # every arrival counts there, 429s included
    assert sim.count(429) == 5
    assert sim.count(200, operation=Operation.LAUNCH_V2) == len(sim.launches) == 6


def test_retry_after_is_rounded_up_to_the_millisecond() -> None:
    sim = simulator(rate_limit=1, rate_period=1.0)
    call(sim, now=0.0)
    assert call(sim, now=0.7496)[2]["Retry-After"] == "0.251"
    assert call(sim, now=0.99999)[2]["Retry-After"] == "0.001"


def test_the_window_slides() -> None:
    sim = simulator(rate_limit=5, rate_period=1.0)
    assert [call(sim, now=0.0)[0] for _ in range(3)] == [200] * 3
    assert [call(sim, now=0.5)[0] for _ in range(2)] == [200] * 2
    status, _, headers = call(sim, now=0.75)
    assert (status, headers["Retry-After"]) == (429, "0.25")  # the first three leave first
    # (now - period, now] at 1.0 no longer holds 0.0: a sliding window frees those three
    # slots only (a fixed one would free all five)
    assert [call(sim, now=1.0)[0] for _ in range(4)] == [200, 200, 200, 429]


def test_each_operation_has_its_own_window() -> None:
    sim = simulator(rate_limit=2, v1_rate_limit=3, v1_rate_period=30)
    v2 = [call(sim)[0] for _ in range(3)]
    v1 = [call(sim, "/v1/single/campaign_id")[0] for _ in range(4)]
    creates = [
        call(sim, "/v1/single", {"partner_id": PARTNER, "title": f"t{i}"})[0] for i in range(4)
    ]
    draft = next(iter(sim.drafts))
    deletes = [
        call(sim, f"/v1/single/{draft}", {"partner_id": PARTNER}, method="DELETE")[0]
        for _ in range(4)
    ]
    assert v2 == [200, 200, 429]
    assert v1 == [200, 200, 200, 429]
    assert creates == [201, 201, 201, 429]
    assert deletes == [200, 424, 424, 429]  # a 424 still took a slot
    assert sim.max_in_window(operation=Operation.CREATE) == 4
    assert sim.max_in_window(operation=None, period=30) == 15


def test_the_quota_can_be_switched_off() -> None:
    sim = simulator(rate_limit=2, rate_period=10, enforce_quota=False)
    assert [call(sim)[0] for _ in range(5)] == [200] * 5
    assert sim.max_in_window() == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": ""},
        {"rate_limit": 0},
        {"rate_limit": True},
        {"rate_period": 0},
        {"v1_rate_limit": 1.5},
        {"v1_rate_period": math.inf},
    ],
)
def test_settings_that_make_no_sense_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Simulator(**kwargs)


# -- faults --------------------------------------------------------------------------------


def test_a_status_fault_answers_instead_of_the_server() -> None:
    sim = simulator(rate_limit=1, faults=[Fault(status=503, at={0})])
    # No key check, no quota slot: the fault answered before the server looked.
    assert call(sim, key=None)[:2] == (503, {"message": "Service Unavailable"})
    assert call(sim)[0] == 200
    assert statuses(sim) == [503, 200]
    assert [r.index for r in sim.launches] == [1]


def test_a_429_fault_carries_retry_after_when_given() -> None:
    faults = [
        Fault(status=429, at={0}, retry_after=0.25),
        Fault(status=429, at={1}),
        Fault(status=424, at={2}, message="SERVICE:-Push service down"),
        Fault(status=599, at={3}),
    ]
    sim = simulator(faults=faults)
    with_header, without, custom, unknown = (call(sim) for _ in range(4))
    assert with_header[:2] == (429, {"message": "Request limit exceeded"})
    assert with_header[2]["Retry-After"] == "0.25"
    assert without[0] == 429
    assert "Retry-After" not in without[2]
    assert custom[:2] == (424, {"message": "SERVICE:-Push service down"})
    assert unknown[:2] == (599, {"message": "Status 599"})


def test_a_dropped_connection_has_no_answer_and_no_status() -> None:
    sim = simulator(faults=[Fault(drop=True, at={0, 2})])
    assert reply(sim) == Reply(None)
    assert call(sim)[0] == 200
    assert reply(sim).answer is None
    assert statuses(sim) == [None, 200, None]
    assert [r.index for r in sim.launches] == [1]
    assert sim.count(None) == 3  # None: any status


def test_latency_is_a_delay_of_a_processed_request() -> None:
    sim = simulator(faults=[Fault(latency=0.3, at={0}), Fault(latency=0.2, status=500, at={1})])
    late = reply(sim)
    failed_late = reply(sim)
    assert late.delay == 0.3
    assert late.answer is not None
    assert late.answer.status == 200  # processed when it arrived, answered late
    assert failed_late.delay == 0.2
    assert failed_late.answer is not None
    assert failed_late.answer.status == 500
    assert reply(sim).delay == 0
    assert [r.index for r in sim.launches] == [0, 2]


def test_at_picks_requests_by_arrival_index() -> None:
    fault = Fault(status=500, at=[1, 3])  # any iterable
    sim = simulator(faults=[fault])
    for _ in range(5):
        reply(sim)
    assert statuses(sim) == [200, 500, 200, 500, 200]
    assert [r.index for r in sim.requests] == [0, 1, 2, 3, 4]


def test_random_faults_follow_the_seed() -> None:
    def run(seed: int) -> list[int | None]:
        sim = simulator(seed=seed, faults=[Fault(status=503, probability=0.3)])
        for _ in range(40):
            reply(sim)
        return statuses(sim)

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    assert 0 < first.count(503) < 40
    assert 0 < other.count(503) < 40
    assert set(first) == {200, 503}


def test_a_processed_fault_launches_then_fails() -> None:
    faults = [
        Fault(status=500, processed=True, at={0, 2}),
        Fault(drop=True, processed=True, at={1}),
    ]
    sim = simulator(faults=faults, rate_limit=2, rate_period=30)
    assert call(sim)[:2] == (500, {"message": "Internal Server Error"})
    assert reply(sim).answer is None
    # processed like any request: this one was over the quota, so nothing launched
    assert call(sim)[0] == 500
    assert statuses(sim) == [500, None, 500]
    assert [r.index for r in sim.launches] == [0, 1]
    assert all(r.campaign_id is not None for r in sim.launches)


def test_a_fault_can_be_kept_to_one_operation() -> None:
    sim = simulator(faults=[Fault(status=500, operation=Operation.CREATE)])
    assert call(sim, "/v1/single", {"partner_id": PARTNER, "title": "A"})[0] == 500
    assert call(sim)[0] == 200
    assert sim.drafts == {}


def test_the_first_matching_fault_applies_and_faults_can_be_added() -> None:
    sim = simulator(faults=[Fault(status=503, at={1})])
    reply(sim)
    sim.faults.append(Fault(status=502))  # no at, no probability: every request
    reply(sim)
    reply(sim)
    assert statuses(sim) == [200, 503, 502]


def test_parsed_faults_apply_like_built_ones() -> None:
    sim = simulator(faults=[Fault.parse("500@1,processed"), Fault.parse("drop@2")])
    assert [reply(sim).answer is None for _ in range(3)] == [False, False, True]
    assert statuses(sim) == [200, 500, None]
    assert [r.index for r in sim.launches] == [0, 1]


# -- records -------------------------------------------------------------------------------


def _record(index: int, at: float, operation: Operation | None = Operation.LAUNCH_V2) -> Any:
    return RecordedRequest(index, "POST", LAUNCH, operation, None, at, 200, {})


def test_max_in_window_counts_half_open_windows() -> None:
    sim = Simulator(rate_period=1.0, v1_rate_period=0.25)
    times = [0.0, 0.1, 0.5, 0.99, 1.0, 1.5]
    sim.requests.extend(_record(i, t) for i, t in enumerate(times))
    assert sim.max_in_window() == 4  # [0, 1) holds 0, .1, .5, .99; 1.0 is outside
    assert sim.max_in_window(1.01) == 5
    assert sim.max_in_window(0.5) == 2
    assert sim.max_in_window(0.0001) == 1
    sim.requests.extend(_record(9, t, Operation.CREATE) for t in (0.3, 0.5, 0.55, 0.8))
    assert sim.max_in_window() == 4  # other operations do not count
    assert sim.max_in_window(operation=Operation.CREATE) == 2  # its own period: 0.25
    assert sim.max_in_window(2.0, operation=None) == 10
    assert Simulator().max_in_window() == 0
    with pytest.raises(ValueError, match="period"):
        sim.max_in_window(operation=None)
    with pytest.raises(ValueError, match="positive"):
        sim.max_in_window(0)


def test_max_in_window_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        period = rng.choice([1.0, 5.0, 30.0])  # whole numbers: float-exact sums
        times = sorted(float(rng.randint(0, 100)) for _ in range(rng.randint(1, 60)))
        sim = Simulator()
        sim.requests.extend(_record(i, t) for i, t in enumerate(times))
        brute = max(sum(1 for t in times if s <= t < s + period) for s in times)
        assert sim.max_in_window(period) == brute, (period, times)


def test_records_redact_the_key() -> None:
    sim = simulator()
    call(sim)
    call(sim, key=KEY + "-wrong")
    seen = repr(sim.requests) + str([dict(r.headers) for r in sim.requests])
    for record in sim.requests:
        assert record.headers["Authorization"] == "Bearer <redacted>"
        assert record.headers["authorization"] == "Bearer <redacted>"
        assert record.headers["Content-Type"] == "application/json"
    assert KEY not in seen
    assert sim.api_key == KEY


def test_records_hold_arrival_and_answer() -> None:
    sim = simulator()
    call(sim, now=12.5)
    (record,) = sim.requests
    assert record.arrived_at == 12.5
    assert record.body == BODY
    assert (record.method, record.path, record.status) == ("POST", LAUNCH, 200)
    assert record.campaign_id is not None
    assert sim.launches == [record]


def test_many_requests_are_cheap_to_record() -> None:
    target = Target("d_wp_browser", ["Edg"])
    sim = simulator(enforce_quota=False)
    for i in range(200):
        call(sim, body=push_to_dict(attrs.evolve(PUSH, title=f"t{i % 3}", target=target)))
    assert len(sim.launches) == 200
    # byte-identical bodies share one decoded object, and every header set is shared
    assert len({id(r.body) for r in sim.requests}) == 3
    assert len({id(r.headers) for r in sim.requests}) == 1
