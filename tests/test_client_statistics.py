"""The client's statistics operations: exact requests, pages, the shared quota, 403 and 422."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from typing import Any

import pytest

from insider_webpush import (
    APIError,
    AuthenticationError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Stage,
    TransportError,
    UnprocessableEntityError,
    ValidationError,
    WebPush,
    WebPushClient,
    sync,
)
from insider_webpush.endpoints import DEFAULT_BASE_URL, QUOTAS, Operation
from insider_webpush.models import Timeouts
from insider_webpush.testing import FakeInsider
from insider_webpush.testing.records import max_in_window
from insider_webpush.transport import Gate, Request, Response
from tests.insider_collection import CAMPAIGN, OVERALL, TOP, path, sample, sample_request
from tests.samples import MINIMAL_FIELDS
from tests.stub_transport import ScriptedTransport

KEY = "statistics-test-key-0123"
START, END = dt.date(2023, 6, 1), dt.date(2023, 6, 8)
FAST = RetryPolicy(base=0.01, cap=0.02)
THROTTLED = {"message": "Request limit exceeded"}


def client(stub: Any, **kwargs: Any) -> WebPushClient:
    kwargs.setdefault("retry", FAST)
    # A scaled statistics quota: at Insider's 30 a minute, reads are 2 s apart.
    kwargs.setdefault("quotas", {"statistics": (30, 0.3)})
    return WebPushClient(KEY, partner_id="YOURPARTNERID", transport=stub, **kwargs)


def page(number: int, per_page: int, total: int, count: int, first_id: int = 1) -> dict[str, Any]:
    """A page of the overall metrics: the collection's first campaign, `count` times."""
    campaign = sample(OVERALL, 200)["data"][0]
    data = [{**campaign, "id": first_id + i} for i in range(count)]
    return {"page": number, "per_page": per_page, "total": total, "data": data}


async def test_each_operation_sends_the_collection_s_request() -> None:
    stub = ScriptedTransport(
        [(200, sample(CAMPAIGN, 200)), (200, sample(TOP, 200)), (200, page(1, 100, 1, 1))]
    )
    async with client(stub) as c:
        campaign = await c.campaign_metrics(11111, start_date=START, end_date=END)
        top = await c.top_metrics(start_date=START, end_date=END)
        overall = [s async for s in c.overall_metrics(start_date=START, end_date=END, per_page=100)]
    assert campaign.overview.targeted == 411_840
    assert top.overview.revenue.currency == "TRY"
    assert [s.campaign_id for s in overall] == [1]
    wanted = [
        (path(CAMPAIGN), sample_request(CAMPAIGN)),
        (path(TOP), sample_request(TOP)),
        (path(OVERALL), sample_request(OVERALL)),
    ]
    assert [(s.path, s.json) for s in stub.sent] == wanted
    for s in stub.sent:
        assert s.request.method == "POST"
        assert s.request.url == DEFAULT_BASE_URL + s.path
        assert s.request.headers["Authorization"] == f"Bearer {KEY}"


async def test_pages_are_fetched_lazily_and_none_past_the_last() -> None:
    stub = ScriptedTransport(
        [
            (200, page(1, 10, 25, 10, 1)),
            (200, page(2, 10, 25, 10, 11)),
            (200, page(3, 10, 25, 5, 21)),
        ]
    )
    async with client(stub) as c:
        pages = c.overall_metrics(start_date=START, end_date=END)
        assert stub.sent == []  # nothing before the first iteration
        ids = [s.campaign_id async for s in pages]
    assert ids == list(range(1, 26))
    assert [s.json["page"] for s in stub.sent] == ["1", "2", "3"]  # ceil(25 / 10) requests
    assert {s.json["per_page"] for s in stub.sent} == {"10"}


async def test_leaving_early_fetches_nothing_more() -> None:
    stub = ScriptedTransport([(200, page(1, 10, 25, 10))])
    async with client(stub) as c:
        async for summary in c.overall_metrics(start_date=START, end_date=END):
            if summary.campaign_id == 3:
                break
    assert len(stub.sent) == 1


async def test_a_per_page_insider_lowers_still_reaches_every_page() -> None:
    stub = ScriptedTransport(
        [
            (200, page(1, 20, 45, 20, 1)),
            (200, page(2, 20, 45, 20, 21)),
            (200, page(3, 20, 45, 5, 41)),
        ]
    )
    async with client(stub) as c:
        ids = [
            s.campaign_id
            async for s in c.overall_metrics(start_date=START, end_date=END, per_page=50)
        ]
    assert ids == list(range(1, 46))
    assert len(stub.sent) == 3


async def test_no_campaign_is_one_request_and_nothing_yielded() -> None:
    stub = ScriptedTransport([(200, {"page": 1, "per_page": 10, "total": 0, "data": []})])
    async with client(stub) as c:
        assert [s async for s in c.overall_metrics(start_date=START, end_date=END)] == []
    assert len(stub.sent) == 1


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        (page(2, 10, 30, 0), "page 2 of 3 is empty"),  # the listing shrank: 20 would be lost
        (page(1, 10, 30, 10), "asked for page 2, Insider answered page 1"),  # page ignored
        (page(2, 10, 30, 11), "page 2 holds 11 campaigns, more than 10"),
        (page(2, 20, 30, 10), "page 2 has 20 a page, page 1 had 10"),
    ],
)
async def test_a_page_that_contradicts_the_first_raises_rather_than_lose_or_repeat(
    second: dict[str, Any], problem: str
) -> None:
    stub = ScriptedTransport([(200, page(1, 10, 30, 10)), (200, second)])
    seen: list[int] = []

    async def listing(c: WebPushClient) -> None:
        async for s in c.overall_metrics(start_date=START, end_date=END):
            seen.append(s.campaign_id)

    async with client(stub) as c:
        with pytest.raises(APIError, match=f"overall metrics: {problem}; the listing cannot"):
            await listing(c)
    assert len(seen) == 10  # the first page's campaigns were yielded; nothing after
    assert len(stub.sent) == 2


async def test_a_total_that_grows_on_every_page_never_loops() -> None:
    stub = ScriptedTransport([(200, page(n, 10, 30 + 10 * n, 10, 10 * n)) for n in range(1, 50)])
    async with client(stub) as c:
        listed = [s async for s in c.overall_metrics(start_date=START, end_date=END)]
    assert len(listed) == 40  # the first answer's total (40): four pages, and no more
    assert len(stub.sent) == 4


async def test_a_403_is_throttling_it_pauses_the_key_and_the_read_is_retried() -> None:
    stub = ScriptedTransport([(403, THROTTLED, {"Retry-After": "0.05"}), (200, sample(TOP, 200))])
    async with client(stub) as c:
        started = asyncio.get_running_loop().time()
        top = await c.top_metrics(start_date=START, end_date=END)
        assert asyncio.get_running_loop().time() - started >= 0.05
    assert top.overview.targeted == 9_550_384
    assert len(stub.sent) == 2


async def test_a_403_without_retry_after_backs_off_and_runs_out_as_a_rate_limit_error() -> None:
    stub = ScriptedTransport(default=(403, THROTTLED))
    async with client(stub, retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02)) as c:
        with pytest.raises(RateLimitError) as caught:
            await c.campaign_metrics(5, start_date=START, end_date=END)
    assert caught.value.status == 403
    assert caught.value.ambiguous is False
    assert len(stub.sent) == 3


async def test_a_403_pauses_every_reader_of_the_key_not_only_the_one_told() -> None:
    times: list[float] = []
    told = asyncio.Event()

    class Timed(ScriptedTransport):
        async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
            async def timed_gate() -> None:
                await gate()
                times.append(asyncio.get_running_loop().time())

            try:
                return await super().send(request, timed_gate, timeouts)
            finally:
                told.set()

    stub = Timed([(403, THROTTLED, {"Retry-After": "0.2"})], default=(200, sample(TOP, 200)))
    async with client(stub) as c:
        first = asyncio.create_task(c.top_metrics(start_date=START, end_date=END))
        await told.wait()
        await asyncio.sleep(0.01)  # the 403 is in: the key is paused
        await c.top_metrics(start_date=START, end_date=END)  # another reader
        await first
    assert len(times) == 3
    assert min(times[1:]) >= times[0] + 0.2 - 0.005  # nobody on the key sent in the pause


async def test_a_403_from_a_launch_is_a_certain_failure_never_retried() -> None:
    stub = ScriptedTransport(default=(403, {"message": "Forbidden"}))
    async with client(stub) as c:
        with pytest.raises(APIError) as caught:
            await c.send(WebPush(**MINIMAL_FIELDS))
    assert not isinstance(caught.value, RateLimitError)
    assert (caught.value.status, caught.value.ambiguous) == (403, False)
    assert len(stub.sent) == 1


async def test_a_422_raises_its_field_errors_and_is_not_retried() -> None:
    stub = ScriptedTransport(default=(422, sample(CAMPAIGN, 422)))
    async with client(stub) as c:
        with pytest.raises(UnprocessableEntityError) as caught:
            await c.campaign_metrics(5, start_date=START, end_date=END)
    error = caught.value
    assert error.errors == {"end_date": ("The end date does not match the format Y-m-d.",)}
    assert str(error) == "HTTP 422: end_date: The end date does not match the format Y-m-d."
    assert (error.status, error.ambiguous) == (422, False)
    assert len(stub.sent) == 1


async def test_the_statistics_401_is_an_authentication_error() -> None:
    stub = ScriptedTransport(default=(401, sample(TOP, 401)))
    async with client(stub) as c:
        with pytest.raises(AuthenticationError, match="HTTP 401"):
            await c.top_metrics(start_date=START, end_date=END)
    assert len(stub.sent) == 1


@pytest.mark.parametrize(
    "failure",
    [(503, {"message": "Service Unavailable"}), (520, "cdn"), Stage.SENT, Stage.WRITING],
    ids=["503", "520", "sent", "writing"],
)
async def test_reads_are_retried_where_a_launch_would_be_ambiguous(failure: Any) -> None:
    stub = ScriptedTransport([failure, (200, sample(TOP, 200))])
    async with client(stub) as c:
        await c.top_metrics(start_date=START, end_date=END)
    assert len(stub.sent) == 2
    launches = ScriptedTransport([failure, (200, {"success": True, "campaign_id": 1})])
    async with client(launches) as c:
        with pytest.raises((ServerError, TransportError)) as caught:
            await c.send(WebPush(**MINIMAL_FIELDS))
    assert len(launches.sent) == 1  # a launch is never resent on these
    assert caught.value.ambiguous is (failure != Stage.WRITING)


async def test_figures_that_cannot_be_read_raise_without_the_key() -> None:
    body = sample(CAMPAIGN, 200)
    body["overview"]["total"]["targeted"] = "secret-key-123"
    stub = ScriptedTransport([(200, body)])
    async with WebPushClient("secret-key-123", partner_id="1", transport=stub) as c:
        with pytest.raises(APIError) as caught:
            await c.campaign_metrics(5, start_date=START, end_date=END)
    assert "overview.total.targeted: '<redacted>' is not a count" in caught.value.message
    assert "secret-key-123" not in repr(caught.value.body)
    assert "secret-key-123" not in str(caught.value)
    assert caught.value.ambiguous is False


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.campaign_metrics("5", start_date=START, end_date=END), "campaign_id"),
        (lambda c: c.campaign_metrics(0, start_date=START, end_date=END), "campaign_id"),
        (lambda c: c.campaign_metrics(None, start_date=START, end_date=END), "campaign_id"),
        (lambda c: c.campaign_metrics(10**5000, start_date=START, end_date=END), "campaign_id"),
        (lambda c: c.top_metrics(start_date=END, end_date=START), "end_date"),
        (lambda c: c.top_metrics(start_date="2023-06-01", end_date=END), "start_date"),
        (lambda c: c.overall_metrics(start_date=START, end_date=END, per_page=0), "per_page"),
        (lambda c: c.overall_metrics(start_date=START, end_date=END, per_page=101), "per_page"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(call: Any, field: str) -> None:
    async def attempt(c: WebPushClient) -> None:
        result = call(c)  # overall_metrics checks at the call, the others when awaited
        if asyncio.iscoroutine(result):
            await result

    stub = ScriptedTransport()
    async with client(stub) as c:
        with pytest.raises(ValidationError) as caught:
            await attempt(c)
    assert caught.value.field == field
    assert stub.sent == []


async def test_statistics_need_the_client_s_partner_id() -> None:
    stub = ScriptedTransport()
    async with WebPushClient(KEY, transport=stub) as c:
        with pytest.raises(ValidationError, match="partner_id: is required on the client"):
            await c.top_metrics(start_date=START, end_date=END)
        with pytest.raises(ValidationError, match="partner_id"):
            c.overall_metrics(start_date=START, end_date=END)
    assert stub.sent == []


async def test_the_three_operations_interleaved_share_one_quota() -> None:
    times: list[float] = []

    class Timed(ScriptedTransport):
        async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
            async def timed_gate() -> None:
                await gate()
                times.append(asyncio.get_running_loop().time())

            asked = json.loads(request.body).get("page", "1")
            step = {
                path(CAMPAIGN): (200, sample(CAMPAIGN, 200)),
                path(TOP): (200, sample(TOP, 200)),
                "/v2/single/campaign_id": (200, {"success": True, "campaign_id": 1}),
            }.get(request.url.removeprefix(DEFAULT_BASE_URL), (200, page(int(asked), 1, 4, 1)))
            self.push(step)
            return await super().send(request, timed_gate, timeouts)

    rate, period = 5, 0.25
    stub = Timed()
    async with client(stub, quotas={"statistics": (rate, period)}) as c:

        async def overall() -> None:
            async for _ in c.overall_metrics(start_date=START, end_date=END, per_page=1):
                pass

        calls = [c.campaign_metrics(5, start_date=START, end_date=END) for _ in range(5)]
        calls += [c.top_metrics(start_date=START, end_date=END) for _ in range(5)]
        calls += [overall()]  # four pages
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*calls)
        elapsed = asyncio.get_running_loop().time() - started
        # Launches have their own quota: they are not held behind the reads.
        for _ in range(3):
            await c.send(WebPush(**MINIMAL_FIELDS))
    times.sort()
    assert len(times) == 14 + 3
    assert max_in_window(times[:14], period) <= rate
    assert elapsed >= 2 * period  # 14 reads at 5 per window: at least two windows waited


def test_quotas_are_settable_by_group_and_checked() -> None:
    c = WebPushClient("k", quotas={"statistics": (60, 60.0), "create": (10, 1)})
    assert c._quota["statistics"] == (60, 60.0)
    assert c._quota["create"] == (10, 1.0)
    assert c._quota["delete"] == QUOTAS["delete"]
    assert WebPushClient("k", rate_limit=100, rate_period=10)._quota["launch_v2"] == (100, 10.0)
    assert WebPushClient("k", quotas={"launch_v2": (100, 10.0)})._quota["launch_v2"] == (100, 10.0)
    bad: list[tuple[Any, str]] = [
        ({"stats": (30, 60)}, "quotas['stats']: is not a quota group; the groups: "),
        ({"statistics": 30}, "quotas['statistics']: must be (rate_limit, rate_period)"),
        ({"statistics": (0, 60)}, "quotas['statistics'] rate_limit: must be a whole number"),
        ({"statistics": (30, -1)}, "quotas['statistics'] rate_period: must be a finite number"),
        ([("statistics", (30, 60))], "quotas: must be a dict"),
    ]
    for quotas, message in bad:
        with pytest.raises(
            ValidationError,
            match=message.replace("(", r"\(")
            .replace(")", r"\)")
            .replace("[", r"\[")
            .replace("]", r"\]"),
        ):
            WebPushClient("k", quotas=quotas)
    with pytest.raises(ValidationError, match="rate_limit/rate_period both set launch v2"):
        WebPushClient("k", rate_limit=100, quotas={"launch_v2": (200, 60.0)})


def test_the_sync_client_reads_statistics_blocking() -> None:
    stub = ScriptedTransport(
        [
            (200, sample(CAMPAIGN, 200)),
            (200, sample(TOP, 200)),
            (200, page(1, 2, 3, 2, 1)),
            (200, page(2, 2, 3, 1, 3)),
        ]
    )
    with sync.WebPushClient(
        "k", partner_id="1", transport=stub, retry=FAST, quotas={"statistics": (30, 0.3)}
    ) as c:
        assert c.campaign_metrics(5, start_date=START, end_date=END).name == "08.06.2023-2100"
        assert c.top_metrics(start_date=START, end_date=END).performance[0].label == "Bulk"
        pages = c.overall_metrics(start_date=START, end_date=END, per_page=2)
        assert len(stub.sent) == 2  # lazily: nothing yet
        assert [s.campaign_id for s in pages] == [1, 2, 3]
        with pytest.raises(ValidationError, match="per_page"):
            c.overall_metrics(start_date=START, end_date=END, per_page=0)
    assert len(stub.sent) == 4


# -- against FakeInsider, over loopback -------------------------------------------------------


async def test_twenty_five_launches_are_listed_over_three_pages_and_read_back() -> None:
    today = dt.date(2026, 11, 30)
    async with FakeInsider(today=today, stats_rate_period=0.3) as fake, fake.client() as c:
        launched = [
            (await c.send(WebPush(**{**MINIMAL_FIELDS, "title": f"push {i}"}))).campaign_id
            for i in range(25)
        ]
        listed = [s async for s in c.overall_metrics(start_date=today, end_date=today)]
        one = await c.campaign_metrics(launched[7], start_date=today, end_date=today)
        top = await c.top_metrics(start_date=today, end_date=today)
    assert [s.campaign_id for s in listed] == launched
    assert [s.name for s in listed] == [f"push {i}" for i in range(25)]
    pages = [r.body["page"] for r in fake.requests if r.path == path(OVERALL)]
    assert pages == ["1", "2", "3"]  # 25 at 10 a page, and nothing past the last
    assert one.name == "push 7"
    funnel = [count for _, count in one.overview.funnel()]
    assert funnel == sorted(funnel, reverse=True)
    assert one.overview.targeted == listed[7].targeted
    assert one.overview.delivered == listed[7].delivered
    assert top.overview.sent == sum(s.sent for s in listed)


async def test_a_client_faster_than_the_fake_s_statistics_quota_is_throttled_not_failed() -> None:
    today = dt.date(2026, 11, 30)
    fake = FakeInsider(today=today, stats_rate_limit=4, stats_rate_period=0.3)
    # The client believes in 40 per 0.3 s; the fake allows 4: it answers 403s.
    async with fake, fake.client(quotas={"statistics": (40, 0.3)}, retry=FAST) as c:
        await c.send(WebPush(**MINIMAL_FIELDS))
        reads = [c.top_metrics(start_date=today, end_date=today) for _ in range(10)]
        results = await asyncio.gather(*reads)
    assert len(results) == 10
    assert fake.count(403, operation=Operation.TOP_METRICS) > 0  # the 403s were retried
    reads_seen = [r for r in fake.requests if r.operation is Operation.TOP_METRICS]
    accepted = sorted(r.arrived_at for r in reads_seen if r.status == 200)
    assert max_in_window(accepted, 0.3) <= 4


async def test_a_campaign_id_s_message_says_it_is_required_not_optional() -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        with pytest.raises(ValidationError, match="campaign_id: must be a positive int, not str"):
            await c.campaign_metrics("1001", start_date=START, end_date=END)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="campaign_id: is required: the campaign to read"):
            await c.campaign_metrics(None, start_date=START, end_date=END)  # type: ignore[arg-type]
    assert stub.sent == []


async def test_the_debug_log_times_the_request_not_its_wait_for_the_quota(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = ScriptedTransport(default=(200, sample(TOP, 200)))
    caplog.set_level(logging.DEBUG, logger="insider_webpush")
    async with client(stub, quotas={"statistics": (1, 0.4)}) as c:
        started = asyncio.get_running_loop().time()
        for _ in range(3):
            await c.top_metrics(start_date=START, end_date=END)
        waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.3  # the quota made the later reads wait
    times = [float(m) for m in re.findall(r"-> 200 in ([\d.]+) ms", caplog.text)]
    assert len(times) == 3
    assert max(times) < 100  # milliseconds on the wire, not the ~400 ms waited for the quota
