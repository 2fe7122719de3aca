"""The statistics models and their codec, against the sample bodies of Insider's collection."""

from __future__ import annotations

import copy
import datetime as dt
import typing
from decimal import Decimal
from typing import Any

import attrs
import pytest

from insider_webpush.codec import error_message
from insider_webpush.codec.statistics import (
    campaign_metrics_from_body,
    campaign_metrics_request,
    campaign_metrics_to_body,
    field_errors,
    metrics_page_from_body,
    metrics_page_to_body,
    overall_metrics_request,
    top_metrics_from_body,
    top_metrics_to_body,
)
from insider_webpush.errors import APIError, ValidationError
from insider_webpush.metrics import (
    PER_PAGE_MAX,
    CampaignMetrics,
    MetricsPage,
    Revenue,
    TopMetrics,
    check_date_range,
    check_per_page,
)
from tests.insider_collection import CAMPAIGN, OVERALL, TOP, sample, sample_request

READERS = {
    CAMPAIGN: (campaign_metrics_from_body, campaign_metrics_to_body),
    TOP: (top_metrics_from_body, top_metrics_to_body),
    OVERALL: (metrics_page_from_body, metrics_page_to_body),
}


def _check_types(model: Any, where: str = "") -> int:
    """Assert every attribute holds its annotated type (an int is no float, a figure no str);
    return how many figures were checked."""
    checked = 0
    hints = typing.get_type_hints(type(model))
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        hint = hints[field.name]
        at = f"{where}.{field.name}"
        if attrs.has(type(value)):
            checked += _check_types(value, at)
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                checked += _check_types(item, f"{at}[{i}]") if attrs.has(type(item)) else 0
        elif hint is int:
            assert type(value) is int, at
            checked += 1
        elif hint is float:
            assert type(value) is float, at
            checked += 1
        elif value is not None and hint in (str, str | None):
            assert isinstance(value, str), at
    return checked


@pytest.mark.parametrize("request_name", [CAMPAIGN, TOP, OVERALL])
def test_every_figure_of_every_sample_is_a_number_of_its_type(request_name: str) -> None:
    read, _ = READERS[request_name]
    model = read(200, sample(request_name, 200))
    assert _check_types(model) > 10


def test_the_campaign_sample_reads_as_numbers() -> None:
    m = campaign_metrics_from_body(200, sample(CAMPAIGN, 200))
    o = m.overview
    assert (o.targeted, o.sent, o.dropped) == (411_840, 411_344, 496)
    assert (o.delivered, o.undelivered, o.clicks, o.conversions) == (140_183, 271_161, 723, 0)
    assert (o.delivery_rate, o.ctr, o.conversion_rate) == (0.3408, 0.0052, 0.0)
    assert o.revenue == Revenue(Decimal(0), "USD")
    assert o.funnel() == (
        ("targeted", 411_840),
        ("sent", 411_344),
        ("delivered", 140_183),
        ("clicked", 723),
        ("converted", 0),
    )
    desktop = m.devices[0]
    assert desktop.revenue == Revenue(None, "USD")  # "USD": a currency and no amount
    assert desktop.delivery_rate == 0.0837
    unsubscriptions = m.dropped[2]
    assert (unsubscriptions.label, unsubscriptions.count) == ("unsubscriptions", 453)
    assert unsubscriptions.share == 0.9133  # "91.33", a percentage without its sign
    assert m.undelivered[0].count == 270_807
    assert m.clicks[0].click_ratio == 1.0
    assert m.start == dt.datetime(2023, 5, 31, 21, tzinfo=dt.UTC)
    assert (m.is_recurring, m.ttl_ended, m.alias) == (False, True, "bulk")
    assert m.goal_menu["camp-join"] == "Clicks"
    assert m.extra == {"comparisonData": []}  # known to Insider, not to the model: kept
    assert m.raw == sample(CAMPAIGN, 200)


def test_the_top_sample_reads_as_numbers() -> None:
    m = top_metrics_from_body(200, sample(TOP, 200))
    assert m.overview.targeted == 9_550_384
    assert m.overview.revenue == Revenue(Decimal(2480), "TRY")  # "2,480 TRY"
    bulk = m.performance[0]
    assert (bulk.label, bulk.campaign_count) == ("Bulk", 22)
    assert (bulk.delivery_rate, bulk.ctr, bulk.conversion_rate) == (0.3242, 0.0076, 0.0001)
    assert bulk.revenue == Revenue(Decimal("2479.6600112915"), None)  # a bare decimal
    assert m.dropped[2].share == 0.9908
    assert m.undelivered[0].count == 6_413_534


def test_the_overall_sample_reads_numbers_as_they_come() -> None:
    page = metrics_page_from_body(200, sample(OVERALL, 200))
    assert (page.page, page.per_page, page.total, page.pages) == (1, 2, 48, 24)
    first = page.campaigns[0]
    assert (first.campaign_id, first.name, first.builder_id) == (
        12345,
        "08.06.2023-2100-BabyCare",
        11111,
    )
    assert first.targeted == 411_840
    assert first.delivery_rate == 0.340792621261037  # a fraction already: kept as sent
    assert first.conversion_rate == 0.0
    assert type(first.conversion_rate) is float
    assert first.revenue == Revenue(Decimal(0), None)
    assert first.tags == ("Discount", "Baby", "Powder")
    assert first.sent_at == dt.datetime(2023, 6, 8, 21, 15, 10)
    assert first.first_button_link is None  # "N/A"
    assert first.message_link == "https://sample.useinsider.com/discount/all-baby-care-products"


@pytest.mark.parametrize("request_name", [CAMPAIGN, TOP, OVERALL])
def test_written_back_a_sample_is_byte_for_byte_what_insider_sent(request_name: str) -> None:
    # The fake answers through the writers: this is what makes its bodies Insider's shapes.
    read, write = READERS[request_name]
    body = sample(request_name, 200)
    model = read(200, body)
    assert write(model) == body
    assert read(200, write(model)) == model


@pytest.mark.parametrize(
    ("text", "count"),
    [("411,840", 411_840), ("0", 0), ("9,550,384", 9_550_384), ("1234", 1234), (411840, 411840)],
)
def test_counts_in_both_shapes(text: object, count: int) -> None:
    body = sample(CAMPAIGN, 200)
    body["overview"]["total"]["targeted"] = text
    assert campaign_metrics_from_body(200, body).overview.targeted == count


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("34.08%", 0.3408),
        ("34.08", 0.3408),
        (" 34.08 % ", 0.3408),
        ("100.00%", 1.0),
        ("0.00%", 0.0),
        (0, 0.0),
    ],
)
def test_a_rate_in_text_is_a_percentage_with_or_without_its_sign(text: object, rate: float) -> None:
    body = sample(CAMPAIGN, 200)
    body["overview"]["total"]["ctr"] = text
    value = campaign_metrics_from_body(200, body).overview.ctr
    assert value == rate
    assert type(value) is float


@pytest.mark.parametrize(
    ("text", "rate"), [(0.3407, 0.3407), (0, 0.0), ("34.08%", 0.3408), ("0", 0.0)]
)
def test_a_rate_as_a_number_is_a_fraction(text: object, rate: float) -> None:
    body = sample(OVERALL, 200)
    body["data"][0]["ctr"] = text
    value = metrics_page_from_body(200, body).campaigns[0].ctr
    assert value == rate
    assert type(value) is float


@pytest.mark.parametrize(
    ("where", "value"),
    [
        # A number where Insider sends a percentage in text: 0.76 could be 76 % or 0.76 %.
        ("campaign", 0.76),
        ("campaign", 34.08),
        ("top", 0.76),
        # Text without its sign where Insider sends a fraction: "0.34" could be 34 % or 0.34 %.
        ("overall", "0.3407"),
    ],
)
def test_a_rate_whose_scale_is_unknown_is_an_error_never_a_guess(where: str, value: object) -> None:
    if where == "campaign":
        body = sample(CAMPAIGN, 200)
        body["overview"]["total"]["ctr"] = value
        read: Any = campaign_metrics_from_body
    elif where == "top":
        body = sample(TOP, 200)
        body["performance"][0]["ctr"] = value
        read = top_metrics_from_body
    else:
        body = sample(OVERALL, 200)
        body["data"][0]["ctr"] = value
        read = metrics_page_from_body
    with pytest.raises(APIError, match=r"ctr: .* is not a (percentage in text|fraction)"):
        read(200, body)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (10**400, "is not a count"),  # beyond a float: no OverflowError escapes
        (2**53 + 1, "is not a count"),
        ("9" * 5000, r"\(5002 characters\) is not a count"),  # beyond int()'s digits
        (1e308, "is not a count"),
    ],
)
def test_a_figure_too_large_to_be_one_is_an_error_not_a_crash(value: object, reason: str) -> None:
    body = sample(CAMPAIGN, 200)
    body["overview"]["total"]["targeted"] = value
    with pytest.raises(APIError, match=reason):
        campaign_metrics_from_body(200, body)
    for rate in ("9" * 400 + "%", 10**400):
        overall = sample(OVERALL, 200)
        overall["data"][0]["deliveryRate"] = rate
        with pytest.raises(APIError, match="deliveryRate"):
            metrics_page_from_body(200, overall)
    overall = sample(OVERALL, 200)
    overall["data"][0]["id"] = "1" * 5000
    with pytest.raises(APIError, match=r"data\[0\]\.id: .* is not an id"):
        metrics_page_from_body(200, overall)


def test_a_section_that_is_not_an_object_is_an_error_not_a_missing_one() -> None:
    body = sample(CAMPAIGN, 200)
    body["unsuccessfulMessages"] = ["dropped"]
    with pytest.raises(APIError, match="unsuccessfulMessages: is not a JSON object"):
        campaign_metrics_from_body(200, body)
    body = sample(CAMPAIGN, 200)
    body["overview"]["total"] = []
    with pytest.raises(APIError, match=r"overview\.total: is not a JSON object \(list\)"):
        campaign_metrics_from_body(200, body)


@pytest.mark.parametrize(
    ("text", "revenue"),
    [
        ("0 USD", Revenue(Decimal(0), "USD")),
        ("USD", Revenue(None, "USD")),
        ("2,480 TRY", Revenue(Decimal(2480), "TRY")),
        ("1,234.50 EUR", Revenue(Decimal("1234.50"), "EUR")),
        ("TRY 2,480", Revenue(Decimal(2480), "TRY")),
        ("2479.6600112915", Revenue(Decimal("2479.6600112915"), None)),
        (0, Revenue(Decimal(0), None)),
        (12.5, Revenue(Decimal("12.5"), None)),
        ("", Revenue(None, None)),
    ],
)
def test_revenue_keeps_its_currency_and_exact_amount(text: object, revenue: Revenue) -> None:
    body = sample(CAMPAIGN, 200)
    body["overview"]["revenue"] = text
    assert campaign_metrics_from_body(200, body).overview.revenue == revenue


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("overview", "total", "targeted"), "41x", "'41x' is not a count"),
        (("overview", "total", "targeted"), "4,11", "'4,11' is not a count"),
        (("overview", "total", "targeted"), -1, "-1 is not a count"),
        (("overview", "total", "targeted"), True, "True is not a count"),
        (("overview", "total", "ctr"), "fast", "'fast' is not a percentage in text"),
        (("overview", "revenue"), "12 34", "'12 34' is not an amount of money"),
        (("overview", "revenue"), ["0"], "['0'] is not an amount of money"),
        (("startDate",), "yesterday", "'yesterday' is not a date and time"),
    ],
)
def test_a_figure_that_cannot_be_read_names_its_path(
    path: tuple[str, ...], value: object, reason: str
) -> None:
    body = sample(CAMPAIGN, 200)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(APIError) as caught:
        campaign_metrics_from_body(200, body)
    assert f"{'.'.join(path)}: {reason}" in caught.value.message
    assert caught.value.ambiguous is False  # a read launched nothing
    assert caught.value.body is body


def test_a_missing_figure_is_an_error_and_a_missing_section_is_empty() -> None:
    body = sample(CAMPAIGN, 200)
    del body["overview"]["deliveryRate"]["delivered"]
    with pytest.raises(APIError, match=r"overview\.deliveryRate\.delivered: is missing"):
        campaign_metrics_from_body(200, body)
    body = sample(CAMPAIGN, 200)
    del body["deviceMetrics"], body["unsuccessfulMessages"], body["startDate"]
    m = campaign_metrics_from_body(200, body)
    assert (m.devices, m.dropped, m.undelivered, m.start) == ((), (), (), None)
    body = sample(CAMPAIGN, 200)
    body["deviceMetrics"][1]["sent"] = None
    with pytest.raises(APIError, match=r"deviceMetrics\[1\]\.sent: is null"):
        campaign_metrics_from_body(200, body)
    with pytest.raises(APIError, match="body: is not a JSON object"):
        campaign_metrics_from_body(200, ["not", "an", "object"])


def test_unknown_keys_are_kept_by_their_path_and_never_fail_a_read() -> None:
    body = sample(CAMPAIGN, 200)
    body["newTopLevel"] = {"a": 1}
    body["overview"]["total"]["reach"] = "12,000"
    body["overview"]["engagement"] = "high"
    body["deviceMetrics"][0]["tablet"] = True
    m = campaign_metrics_from_body(200, body)
    assert m.extra["newTopLevel"] == {"a": 1}
    assert m.overview.extra == {"total.reach": "12,000", "engagement": "high"}
    assert m.devices[0].extra == {"tablet": True}
    assert campaign_metrics_to_body(m) == body  # and written back where they were

    top = sample(TOP, 200)
    top["performance"][0]["clicks"] = "5"
    assert top_metrics_from_body(200, top).performance[0].extra == {"clicks": "5"}
    overall = sample(OVERALL, 200)
    overall["data"][1]["channel"] = "web"
    overall["next"] = None
    page = metrics_page_from_body(200, overall)
    assert page.campaigns[1].extra == {"channel": "web"}
    assert page.extra == {"next": None}


def test_models_are_frozen_hashable_values_whose_raw_body_is_not_their_identity() -> None:
    body = sample(TOP, 200)
    a = top_metrics_from_body(200, body)
    reordered = copy.deepcopy(body)
    reordered["overview"]["revenue"] = "2,480.00 TRY"
    b = top_metrics_from_body(200, reordered)
    assert a.overview.revenue == b.overview.revenue  # Decimal 2480 == 2480.00
    assert a == b
    assert a.raw != b.raw
    assert hash(a) == hash(b)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.overview = b.overview  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.raw["overview"] = None  # type: ignore[index]
    assert isinstance(a, TopMetrics)


def test_a_page_knows_how_many_pages_there_are() -> None:
    def pages(total: int, per_page: int) -> int:
        return MetricsPage(page=1, per_page=per_page, total=total).pages

    assert [pages(0, 10), pages(1, 10), pages(10, 10), pages(11, 10), pages(25, 10)] == [
        1,
        1,
        1,
        2,
        3,
    ]


def test_request_bodies_send_every_value_as_a_string_like_the_collection() -> None:
    start, end = dt.date(2023, 6, 1), dt.date(2023, 6, 8)
    assert campaign_metrics_request("YOURPARTNERID", 11111, start, end) == sample_request(CAMPAIGN)
    overall = overall_metrics_request("YOURPARTNERID", start, end, 1, 100)
    assert overall == sample_request(OVERALL)


def test_a_422_s_field_errors_and_message() -> None:
    body = sample(CAMPAIGN, 422)
    assert field_errors(body) == {"end_date": ("The end date does not match the format Y-m-d.",)}
    assert error_message(body) == "end_date: The end date does not match the format Y-m-d."
    assert field_errors(sample(CAMPAIGN, 401)) == {}
    assert field_errors({"errors": {"page": "must be a number"}}) == {"page": ("must be a number",)}
    assert field_errors({"errors": ["not", "a", "map"]}) == {}
    # Messages with no field to file them under still say what was wrong.
    assert error_message({"errors": ["per_page is too big", "page is bad"]}) == (
        "per_page is too big; page is bad"
    )


def test_dates_are_dates_in_order_checked_before_anything_is_sent() -> None:
    day = dt.date(2026, 11, 1)
    assert check_date_range(day, day) == (day, day)
    with pytest.raises(ValidationError, match="end_date: must not be before start_date"):
        check_date_range(day, dt.date(2026, 10, 31))
    with pytest.raises(ValidationError, match=r"start_date: must be a datetime\.date"):
        check_date_range("2026-11-01", day)
    with pytest.raises(ValidationError, match=r"end_date: must be a datetime\.date .* datetime"):
        check_date_range(day, dt.datetime(2026, 11, 2, 12))
    assert check_per_page(PER_PAGE_MAX) == PER_PAGE_MAX
    for bad in (0, PER_PAGE_MAX + 1, 10.0, True, "10"):
        with pytest.raises(
            ValidationError, match=f"per_page: must be a whole number from 1 to {PER_PAGE_MAX}"
        ):
            check_per_page(bad)


def test_a_campaign_metrics_value_round_trips_through_the_writer() -> None:
    m = CampaignMetrics(
        name="x",
        overview=campaign_metrics_from_body(200, sample(CAMPAIGN, 200)).overview,
        start=dt.datetime(2026, 11, 29, 21, tzinfo=dt.UTC),
    )
    assert campaign_metrics_from_body(200, campaign_metrics_to_body(m)) == m
