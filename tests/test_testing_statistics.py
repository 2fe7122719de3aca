"""The fake's web push statistics endpoints: seeded figures, Insider's formatting, the shared
quota answering 403, the 422 field errors, and pagination.

Most tests drive the sans-I/O ``Simulator`` with explicit arrival times; two go through
``FakeInsider`` over loopback. The collection's sample bodies are the contract for the shape.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import pytest

from insider_webpush import Operation, WebPush, push_to_dict
from insider_webpush.codec.statistics import (
    campaign_metrics_from_body,
    campaign_metrics_to_body,
    field_errors,
    metrics_page_from_body,
    metrics_page_to_body,
    top_metrics_from_body,
    top_metrics_to_body,
)
from insider_webpush.errors import ValidationError
from insider_webpush.metrics import CampaignMetrics, MetricsPage, TopMetrics
from insider_webpush.testing import FakeInsider, Fault
from insider_webpush.testing._answers import route
from insider_webpush.testing.simulator import Simulator

from .insider_collection import CAMPAIGN, OVERALL, TOP, sample

KEY = "sk-stats-test"
PARTNER = "10000001"
CAMPAIGN_PATH = "/v1/statistics/campaign-metrics"
OVERALL_PATH = "/v1/statistics/overall-metrics"
TOP_PATH = "/v1/statistics/top-metrics"
DAY = dt.date(2026, 3, 2)
INTERVAL = {"partner_id": PARTNER, "start_date": "2026-03-01", "end_date": "2026-03-31"}

COUNT_TEXT = re.compile(r"\d{1,3}(,\d{3})*")
PERCENT = re.compile(r"\d+\.\d{2}%")
BARE_PERCENT = re.compile(r"\d+\.\d{2}")


def simulator(**kwargs: Any) -> Simulator:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("partner_id", PARTNER)
    kwargs.setdefault("today", DAY)
    return Simulator(**kwargs)


def post(
    sim: Simulator, path: str, body: object, *, now: float = 0.0, key: str = KEY
) -> tuple[int, Any, Mapping[str, str]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    answer = sim.receive("POST", path, headers, json.dumps(body).encode(), now).answer
    assert answer is not None
    return answer.status, json.loads(answer.body), answer.headers or {}


def launch(sim: Simulator, title: str, *, now: float = 0.0, path: str = "") -> int:
    push = WebPush(
        title=title,
        description="description",
        image="https://example.com/icon.png",
        link=f"https://example.com/{title.replace(' ', '-')}",
        ttl=3600,
        partner_id=PARTNER,
    )
    status, body, _ = post(sim, path or "/v2/single/campaign_id", push_to_dict(push), now=now)
    assert status == 200, body
    return int(body["campaign_id"])


def campaign(sim: Simulator, campaign_id: int | str, **body: Any) -> tuple[int, Any]:
    # From DAY, the fake's default date: a campaign's interval may not start before it.
    fields = {**INTERVAL, "start_date": DAY.isoformat(), "campaign_id": campaign_id, **body}
    status, answer, _ = post(sim, CAMPAIGN_PATH, fields)
    return status, answer


def overall(sim: Simulator, **body: Any) -> tuple[int, Any]:
    status, answer, _ = post(sim, OVERALL_PATH, {**INTERVAL, **body})
    return status, answer


def top(sim: Simulator, **body: Any) -> tuple[int, Any]:
    status, answer, _ = post(sim, TOP_PATH, {**INTERVAL, **body})
    return status, answer


def leaves(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every scalar of a JSON value by its path; list items under `[]` (all alike)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, f"{path}[]")
    else:
        yield path, value


def kinds(body: object) -> dict[str, set[type]]:
    """The JSON types found at each path (int and float are one kind: a number)."""
    out: dict[str, set[type]] = {}
    for path, value in leaves(body):
        kind = (
            float if isinstance(value, int | float) and not isinstance(value, bool) else type(value)
        )
        out.setdefault(path, set()).add(kind)
    return out


# -- routing and the fake's date ----------------------------------------------------------------


def test_the_three_paths_are_routed_from_the_endpoint_table() -> None:
    assert route("POST", CAMPAIGN_PATH)[0] is Operation.CAMPAIGN_METRICS
    assert route("POST", OVERALL_PATH)[0] is Operation.OVERALL_METRICS
    assert route("POST", TOP_PATH)[0] is Operation.TOP_METRICS
    refused = route("GET", TOP_PATH)[2]  # a known path, another method
    assert refused is not None
    assert refused.status == 405


def test_today_pins_the_creation_date_and_defaults_to_the_utc_date() -> None:
    sim = simulator()
    first = launch(sim, "first")
    sim.today = dt.date(2026, 4, 1)
    second = launch(sim, "second")
    assert [(c.name, c.created) for c in sim.campaigns.values()] == [
        ("first", DAY),
        ("second", dt.date(2026, 4, 1)),
    ]
    assert list(sim.campaigns) == [first, second]
    before = dt.datetime.now(dt.UTC).date()
    unpinned = Simulator(api_key=KEY)
    launch(unpinned, "now")
    after = dt.datetime.now(dt.UTC).date()
    assert next(iter(unpinned.campaigns.values())).created in (before, after)
    with pytest.raises(ValidationError, match="today"):
        Simulator(today=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="today"):
        sim.today = "2026-03-02"  # type: ignore[assignment]


def test_only_launches_carried_out_are_campaigns_one_per_id() -> None:
    sim = simulator()
    _, draft, _ = post(sim, "/v1/single", {"partner_id": PARTNER, "title": "Spring"})
    draft_id = draft["campaign_id"]
    duplicate, body, _ = post(sim, "/v1/single", {"partner_id": PARTNER, "title": "Spring"})
    assert (duplicate, body) == (400, {"message": "title: a draft with this title already exists"})
    launch(sim, "first title", path=f"/v2/single/{draft_id}")
    sim.today = DAY + dt.timedelta(days=1)
    launch(sim, "second title", path=f"/v1/single/{draft_id}")  # launched again: one campaign
    assert post(sim, "/v2/single/424242", {})[0] == 400  # not a push: nothing launched
    assert len(sim.launches) == 2
    assert [(c.campaign_id, c.name, c.created) for c in sim.campaigns.values()] == [
        (draft_id, "first title", DAY)
    ]
    assert overall(sim)[1]["total"] == 1


# -- figures ----------------------------------------------------------------------------------


def test_figures_are_seeded_ordered_and_add_up() -> None:
    sim = simulator(seed=7, enforce_quota=False)  # 60 statistics requests at one instant
    ids = [launch(sim, f"push {i}") for i in range(20)]
    for campaign_id in ids:
        status, body = campaign(sim, campaign_id)
        assert status == 200, body
        metrics = campaign_metrics_from_body(status, body)
        o = metrics.overview
        assert o.targeted >= o.sent >= o.delivered >= o.clicks >= o.conversions >= 0
        assert o.dropped == o.targeted - o.sent
        assert o.undelivered == o.sent - o.delivered
        assert o.delivery_rate == round(o.delivered / o.sent, 4)
        assert o.ctr == round(o.clicks / o.delivered, 4)
        assert o.conversion_rate == (round(o.conversions / o.clicks, 4) if o.clicks else 0.0)
        assert o.revenue.currency == "USD"
        for reasons, whole in ((metrics.dropped, o.dropped), (metrics.undelivered, o.undelivered)):
            assert sum(r.count for r in reasons) == whole
            assert all(r.share == (round(r.count / whole, 4) if whole else 0.0) for r in reasons)
        assert [r.label for r in metrics.dropped] == [
            "frequencyCapped",
            "silentHours",
            "unsubscriptions",
            "serviceProviderErrors",
            "internalErrors",
        ]
        assert [r.label for r in metrics.undelivered] == ["offlineRecipients", "other"]
        assert [d.device for d in metrics.devices] == ["Desktop", "Mobile"]
        for name in ("sent", "delivered", "clicks", "conversions"):
            assert sum(getattr(d, name) for d in metrics.devices) == getattr(o, name), name
        for d in metrics.devices:
            assert d.sent >= d.delivered >= d.clicks >= d.conversions >= 0
        assert sum(d.revenue.amount or 0 for d in metrics.devices) == o.revenue.amount
        assert sum(c.clicks for c in metrics.clicks) == o.clicks
        assert metrics.name == sim.campaigns[campaign_id].name
    again = simulator(seed=7, enforce_quota=False)
    other = simulator(seed=8, enforce_quota=False)
    for s in (again, other):
        for i in range(20):
            launch(s, f"push {i}")
    assert [campaign(again, i) for i in ids] == [campaign(sim, i) for i in ids]
    assert [campaign(other, i) for i in ids] != [campaign(sim, i) for i in ids]


def test_bodies_are_formatted_as_the_collections_and_read_back_unchanged() -> None:
    sim = simulator()
    ids = [launch(sim, f"push {i}") for i in range(3)]
    _, campaign_body = campaign(sim, ids[0])
    _, top_body = top(sim)
    _, page_body = overall(sim)
    campaign_model = campaign_metrics_from_body(200, campaign_body)
    top_model = top_metrics_from_body(200, top_body)
    page_model = metrics_page_from_body(200, page_body)
    # Written by the codec: read and written again, the same body, so no rate was lost.
    assert campaign_metrics_to_body(campaign_model) == campaign_body
    assert top_metrics_to_body(top_model) == top_body
    assert metrics_page_to_body(page_model) == page_body
    # Every key is where the collection's sample has it, with the same kind of value:
    # strings in campaign and top metrics, numbers in the overall metrics.
    for ours, theirs in (
        (campaign_body, sample(CAMPAIGN, 200)),
        (top_body, sample(TOP, 200)),
        (page_body, sample(OVERALL, 200)),
    ):
        found, expected = kinds(ours), kinds(theirs)
        assert set(found) <= set(expected), set(found) - set(expected)
        assert found == {path: expected[path] for path in found}
    assert COUNT_TEXT.fullmatch(campaign_body["overview"]["total"]["targeted"])
    assert PERCENT.fullmatch(campaign_body["overview"]["total"]["deliveryRate"])
    assert BARE_PERCENT.fullmatch(campaign_body["unsuccessfulMessages"]["dropped"][0]["percentage"])
    assert re.fullmatch(r"[\d,]+(\.\d+)? USD", campaign_body["overview"]["revenue"])
    assert BARE_PERCENT.fullmatch(top_body["performance"][0]["deliveryRate"])
    first = page_body["data"][0]
    assert isinstance(first["targeted"], int)
    assert isinstance(first["deliveryRate"], float)
    # One campaign, one set of figures: the overall metrics send its rates unrounded.
    summary = page_model.campaigns[0]
    assert summary.funnel() == campaign_model.overview.funnel()
    assert summary.delivery_rate == summary.delivered / summary.sent
    assert round(summary.delivery_rate, 4) == campaign_model.overview.delivery_rate
    assert summary.revenue.amount == campaign_model.overview.revenue.amount
    assert (summary.type, summary.status, summary.name) == ("Bulk", "Active", "push 0")
    assert summary.message_link == "https://example.com/push-0"
    assert summary.first_button_link is None
    assert summary.sent_at == dt.datetime(2026, 3, 2)


def test_top_metrics_add_up_the_campaigns_of_the_interval() -> None:
    sim = simulator()
    for i in range(4):
        launch(sim, f"push {i}")
    page = metrics_page_from_body(200, overall(sim)[1])
    metrics = top_metrics_from_body(200, top(sim)[1])
    o = metrics.overview
    for name in ("targeted", "sent", "dropped", "delivered", "undelivered", "clicks"):
        assert getattr(o, name) == sum(getattr(c, name) for c in page.campaigns), name
    assert o.revenue.amount == sum(c.revenue.amount or 0 for c in page.campaigns)
    assert o.delivery_rate == round(o.delivered / o.sent, 4)
    assert sum(r.count for r in metrics.dropped) == o.dropped
    assert sum(r.count for r in metrics.undelivered) == o.undelivered
    [bulk] = metrics.performance
    assert (bulk.label, bulk.campaign_count, bulk.delivery_rate) == ("Bulk", 4, o.delivery_rate)
    empty = top_metrics_from_body(200, top(sim, start_date="2025-01-01", end_date="2025-01-31")[1])
    assert empty.overview.funnel() == tuple((step, 0) for step, _ in o.funnel())
    assert empty.performance == ()
    assert empty.overview.revenue.amount == 0


# -- pagination and intervals -------------------------------------------------------------------


def test_25_campaigns_come_in_pages_of_10_10_and_5() -> None:
    sim = simulator()
    ids = [launch(sim, f"push {i}") for i in range(25)]
    pages: list[MetricsPage] = []
    for page in (1, 2, 3):
        status, body = overall(sim, page=str(page), per_page="10")
        assert status == 200, body
        pages.append(metrics_page_from_body(status, body))
    assert [len(p.campaigns) for p in pages] == [10, 10, 5]
    assert {(p.page, p.per_page, p.total, p.pages) for p in pages} == {
        (1, 10, 25, 3),
        (2, 10, 25, 3),
        (3, 10, 25, 3),
    }
    assert [c.campaign_id for p in pages for c in p.campaigns] == ids  # launch order
    past = overall(sim, page="4", per_page="10")
    assert past == (200, {"page": 4, "per_page": 10, "total": 25, "data": []})
    # Whole numbers work as well as strings; per_page defaults to 10 and page to 1.
    assert overall(sim, page=2, per_page=10) == overall(sim, page="2", per_page="10")
    default = overall(sim)[1]
    assert (default["page"], default["per_page"], len(default["data"])) == (1, 10, 10)
    assert len(overall(sim, per_page="20")[1]["data"]) == 20


def test_only_campaigns_created_in_the_interval_are_listed_and_added_up() -> None:
    sim = simulator(today=dt.date(2026, 3, 1))
    march_1 = [launch(sim, f"a{i}") for i in range(2)]
    sim.today = dt.date(2026, 3, 5)
    march_5 = [launch(sim, f"b{i}") for i in range(3)]
    sim.today = dt.date(2026, 4, 1)
    april = launch(sim, "c")

    def listed(start: str, end: str) -> list[int]:
        body = overall(sim, start_date=start, end_date=end, per_page=20)[1]
        return [c["id"] for c in body["data"]]

    def counted(start: str, end: str) -> int:
        metrics: TopMetrics = top_metrics_from_body(
            200, top(sim, start_date=start, end_date=end)[1]
        )
        return sum(p.campaign_count for p in metrics.performance)

    assert listed("2026-03-01", "2026-03-31") == march_1 + march_5
    assert listed("2026-03-05", "2026-03-05") == march_5  # both days included
    assert listed("2026-03-02", "2026-03-04") == []
    assert listed("2026-03-01", "2026-04-01") == [*march_1, *march_5, april]
    assert counted("2026-03-01", "2026-03-05") == 5
    assert counted("2026-04-01", "2026-04-30") == 1
    # Campaign metrics: any interval that does not start before the campaign was created.
    status, body = campaign(sim, march_5[0], start_date="2026-03-05", end_date="2026-03-05")
    assert status == 200
    metrics: CampaignMetrics = campaign_metrics_from_body(status, body)
    assert metrics.start == dt.datetime(2026, 3, 5, tzinfo=dt.UTC)
    assert metrics.end == dt.datetime(2026, 3, 5, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert campaign(sim, march_5[0], start_date="2026-03-04") == (
        422,
        {
            "status_code": 422,
            "errors": {
                "start_date": ["The Start Date cannot be earlier than the Campaign Create Date."]
            },
        },
    )


# -- errors -----------------------------------------------------------------------------------


MISSING = object()


@pytest.mark.parametrize(
    ("path", "change", "field", "message"),
    [
        (TOP_PATH, {"start_date": MISSING}, "start_date", "The start date field is required."),
        (TOP_PATH, {"end_date": ""}, "end_date", "The end date field is required."),
        (TOP_PATH, {"partner_id": MISSING}, "partner_id", "The partner id field is required."),
        (
            TOP_PATH,
            {"end_date": "2026-3-31"},
            "end_date",
            "The end date does not match the format Y-m-d.",
        ),
        (
            OVERALL_PATH,
            {"start_date": "2026-02-30"},
            "start_date",
            "The start date does not match the format Y-m-d.",
        ),
        (
            CAMPAIGN_PATH,
            {"start_date": 20260301},
            "start_date",
            "The start date does not match the format Y-m-d.",
        ),
        (
            TOP_PATH,
            {"end_date": "2026-02-28"},
            "end_date",
            "The end date must be a date after or equal to start date.",
        ),
        (OVERALL_PATH, {"page": "two"}, "page", "The page must be an integer."),
        (OVERALL_PATH, {"page": "0"}, "page", "The page must be at least 1."),
        (OVERALL_PATH, {"per_page": 1.5}, "per_page", "The per page must be an integer."),
        (OVERALL_PATH, {"per_page": True}, "per_page", "The per page must be an integer."),
        (OVERALL_PATH, {"per_page": -3}, "per_page", "The per page must be at least 1."),
        (
            OVERALL_PATH,
            {"per_page": "21"},
            "per_page",
            "The per page may not be greater than 20.",
        ),
        (
            CAMPAIGN_PATH,
            {"campaign_id": MISSING},
            "campaign_id",
            "The campaign id field is required.",
        ),
        (
            CAMPAIGN_PATH,
            {"campaign_id": "1001x"},
            "campaign_id",
            "The campaign id must be an integer.",
        ),
        (
            CAMPAIGN_PATH,
            {"campaign_id": "9" * 5000},  # past int()'s digits: a 422, not a 500
            "campaign_id",
            "The campaign id must be an integer.",
        ),
        (
            CAMPAIGN_PATH,
            {"campaign_id": "999"},
            "campaign_id",
            "The selected campaign id is invalid.",
        ),
        (
            CAMPAIGN_PATH,
            {"start_date": "2026-03-01"},
            "start_date",
            "The Start Date cannot be earlier than the Campaign Create Date.",
        ),
    ],
)
def test_each_bad_field_is_a_422_naming_it(
    path: str, change: dict[str, object], field: str, message: str
) -> None:
    sim = simulator()
    campaign_id = launch(sim, "push")
    body: dict[str, object] = {
        **INTERVAL,
        "start_date": DAY.isoformat(),
        "campaign_id": str(campaign_id),
    }
    for key, value in change.items():
        if value is MISSING:
            del body[key]
        else:
            body[key] = value
    status, answer, _ = post(sim, path, body)
    assert status == 422
    assert answer == {"status_code": 422, "errors": {field: [message]}}
    assert field_errors(answer) == {field: (message,)}


def test_every_bad_field_is_named_in_one_422() -> None:
    sim = simulator()
    status, body, _ = post(sim, OVERALL_PATH, {"start_date": "01/03/2026", "per_page": "100"})
    assert status == 422
    assert field_errors(body) == {
        "partner_id": ("The partner id field is required.",),
        "start_date": ("The start date does not match the format Y-m-d.",),
        "end_date": ("The end date field is required.",),
        "per_page": ("The per page may not be greater than 20.",),
    }
    assert post(sim, TOP_PATH, [1, 2])[0] == 422  # not an object: every field is missing
    assert overall(simulator(stats_per_page_max=100), per_page="100")[0] == 200


def test_a_bad_key_is_a_401_with_a_status_code_and_another_partner_a_400() -> None:
    sim = simulator()
    for path in (CAMPAIGN_PATH, OVERALL_PATH, TOP_PATH):
        assert post(sim, path, INTERVAL, key="wrong")[:2] == (401, {"status_code": 401})
    assert post(sim, "/v2/single/campaign_id", {}, key="wrong")[:2] == (
        401,
        {"message": "Unauthorized"},  # the launch path keeps its own 401
    )
    assert top(sim, partner_id="1") == (
        400,
        {"message": "partner_id: is not this account's partner id"},
    )


# -- the shared quota -------------------------------------------------------------------------


def test_the_three_endpoints_share_one_window_answering_403() -> None:
    sim = simulator(stats_rate_limit=30, stats_rate_period=1.0, rate_limit=5, rate_period=1.0)
    campaign_id = launch(sim, "push", now=0.0)
    paths = [CAMPAIGN_PATH, OVERALL_PATH, TOP_PATH] * 10
    body = {**INTERVAL, "start_date": DAY.isoformat(), "campaign_id": str(campaign_id)}
    # Times that are exact in binary, so the Retry-After values are exact too.
    statuses = [post(sim, p, body, now=0.125 + i / 256)[0] for i, p in enumerate(paths)]
    assert statuses == [200] * 30
    launched = launch(sim, "another", now=0.45)  # a launch has its own window
    status, answer, headers = post(sim, TOP_PATH, INTERVAL, now=0.5)
    assert (status, answer) == (403, {"message": "Request limit exceeded"})
    assert headers["Retry-After"] == "0.625"  # the first of them leaves the window at 1.125
    status, answer, headers = post(sim, CAMPAIGN_PATH, body, now=0.625)
    assert (status, headers["Retry-After"]) == (403, "0.5")  # a 403 took no slot
    assert post(sim, OVERALL_PATH, INTERVAL, now=1.125)[0] == 200  # one slot freed
    status, _, headers = post(sim, OVERALL_PATH, INTERVAL, now=1.125)
    assert (status, headers["Retry-After"]) == (403, "0.004")  # the second leaves 1/256 s later
    assert launched in sim.campaigns
    assert sim.count(403) == 3
    # The group is counted together: every statistics arrival, 403s included.
    for operation in (Operation.CAMPAIGN_METRICS, Operation.OVERALL_METRICS, Operation.TOP_METRICS):
        assert sim.max_in_window(operation=operation) == 33
    assert sim.max_in_window() == 2  # launch v2 alone
    assert (sim.stats_rate_limit, sim.stats_rate_period, sim.stats_per_page_max) == (30, 1.0, 20)


def test_the_quota_defaults_and_switch() -> None:
    sim = simulator()
    assert (sim.stats_rate_limit, sim.stats_rate_period) == (30, 60.0)
    assert [top(sim)[0] for _ in range(31)] == [200] * 30 + [403]
    free = simulator(stats_rate_limit=1, enforce_quota=False)
    assert [top(free)[0] for _ in range(3)] == [200] * 3
    settings: list[dict[str, Any]] = [
        {"stats_rate_limit": 0},
        {"stats_rate_period": 0},
        {"stats_per_page_max": 0},
    ]
    for kwargs in settings:
        with pytest.raises(ValidationError, match=next(iter(kwargs))):
            Simulator(**kwargs)


def test_a_403_fault_is_the_statistics_throttle() -> None:
    sim = simulator(faults=[Fault.parse("403,retry-after=2,op=top_metrics")])
    status, body, headers = post(sim, TOP_PATH, INTERVAL)
    assert (status, body, headers) == (
        403,
        {"message": "Request limit exceeded"},
        {"Retry-After": "2"},
    )
    assert overall(sim)[0] == 200  # another operation: no fault


# -- over loopback ----------------------------------------------------------------------------


async def test_fake_insider_serves_the_statistics_over_http() -> None:
    async with FakeInsider(today=DAY, seed=3) as fake:
        async with fake.client() as client:
            results = [
                await client.send(
                    WebPush(
                        title=f"loopback {i}",
                        description="d",
                        image="https://example.com/i.png",
                        link="https://example.com/",
                        ttl=60,
                    )
                )
                for i in range(25)
            ]
        interval = {**INTERVAL, "partner_id": fake.partner_id}
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        async with aiohttp.ClientSession(fake.base_url, headers=headers) as session:
            pages = []
            for page in ("1", "2", "3"):
                async with session.post(
                    OVERALL_PATH, json={**interval, "page": page, "per_page": "10"}
                ) as response:
                    assert response.status == 200
                    pages.append(metrics_page_from_body(200, await response.json()))
            one = results[7].campaign_id
            async with session.post(
                CAMPAIGN_PATH,
                json={**interval, "start_date": "2026-03-02", "campaign_id": str(one)},
            ) as response:
                assert response.status == 200
                metrics = campaign_metrics_from_body(200, await response.json())
    assert [len(p.campaigns) for p in pages] == [10, 10, 5]
    assert [c.campaign_id for p in pages for c in p.campaigns] == [r.campaign_id for r in results]
    assert metrics.name == "loopback 7"
    assert metrics.overview.funnel() == pages[0].campaigns[7].funnel()


async def test_fake_insider_answers_403_with_retry_after_over_http() -> None:
    async with (
        FakeInsider(today=DAY, stats_rate_limit=3, stats_rate_period=0.3) as fake,
        aiohttp.ClientSession(
            fake.base_url, headers={"Authorization": f"Bearer {fake.api_key}"}
        ) as session,
    ):
        interval = {**INTERVAL, "partner_id": fake.partner_id}
        answers = []
        for path in (TOP_PATH, OVERALL_PATH, TOP_PATH, OVERALL_PATH):
            async with session.post(path, json=interval) as response:
                answers.append((response.status, await response.json(), response.headers))
    assert [status for status, _, _ in answers] == [200, 200, 200, 403]
    _, body, headers = answers[3]
    assert body == {"message": "Request limit exceeded"}
    assert 0 < float(headers["Retry-After"]) <= 0.3
