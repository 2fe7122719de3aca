"""What the web push statistics endpoints return, as typed figures, and the limits of asking.

Insider's three statistics endpoints (its Postman collection, `Web Push` folder) answer in two
shapes: campaign and top metrics format every figure as text (`"411,840"`, `"34.08%"`,
`"2,480 TRY"`), overall metrics send numbers (`411840`, `0.3407...`). The codec
([`insider_webpush.codec.statistics`][insider_webpush.codec.statistics]) reads both into
these models, so a figure has one type whatever the endpoint sent:

- counts are `int`;
- rates, ratios and shares are `float` fractions: `"34.08%"` is `0.3408`, and so is a
  percentage sent without its sign (a drop reason's `"91.33"` is `0.9133`);
- revenue is a [`Revenue`][insider_webpush.metrics.Revenue]: a `Decimal` amount with its
  currency (the amount is None when Insider sends only a currency, as in `"USD"`).

A key the models do not know is kept in `extra` (by its dotted path in the JSON), never
rejected, so a field Insider adds does not break a read; `raw` holds the whole body as it
came. Python names only: the wire names are the codec's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs

from .errors import ValidationError

__all__ = [
    "FIGURE_MAX",
    "FUNNEL_STEPS",
    "PER_PAGE_DEFAULT",
    "PER_PAGE_MAX",
    "CampaignMetrics",
    "CampaignSummary",
    "ClickMetrics",
    "DeviceMetrics",
    "MetricsPage",
    "Overview",
    "Reason",
    "Revenue",
    "TopMetrics",
    "TypePerformance",
    "check_date_range",
    "check_per_page",
]

PER_PAGE_DEFAULT = 10
"""Campaigns per page of the overall metrics when not told (Insider's default)."""
PER_PAGE_MAX = 100
"""The most campaigns per page the SDK asks for: the collection's own sample request asks for
100. A public client reports that Insider answers 422 above about 20; such an answer is an
[`UnprocessableEntityError`][insider_webpush.errors.UnprocessableEntityError] naming the field."""
FIGURE_MAX = 2**53
"""The largest figure read (a count, or an amount's magnitude as a JSON number): every whole
number up to it is exact as a float, and no count of recipients comes near it. A larger one is
an unreadable answer, not a number to chart."""
FUNNEL_STEPS = ("targeted", "sent", "delivered", "clicked", "converted")
"""The steps of a delivery funnel, in order (see
[`Overview.funnel`][insider_webpush.metrics.Overview.funnel])."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _EMPTY if not value else MappingProxyType(dict(value))


def _extra() -> Any:
    """Keys Insider sent that the model does not know: kept, read-only, out of the hash."""
    return attrs.field(default=_EMPTY, converter=_frozen_mapping, hash=False, kw_only=True)


def _raw() -> Any:
    """The body as it came: out of equality, the hash and the repr."""
    return attrs.field(
        default=_EMPTY, converter=_frozen_mapping, eq=False, hash=False, repr=False, kw_only=True
    )


def _funnel(figures: Overview | CampaignSummary) -> tuple[tuple[str, int], ...]:
    f = figures
    counts = (f.targeted, f.sent, f.delivered, f.clicks, f.conversions)
    return tuple(zip(FUNNEL_STEPS, counts, strict=True))


@attrs.frozen
class Revenue:
    """An amount of money as Insider reports it.

    Attributes:
        amount: The amount, exact; None when Insider sent only a currency (`"USD"`).
        currency: The currency code, e.g. `"TRY"`; None when Insider sent only a number (the
            per-type performance and the overall metrics do).
    """

    amount: Decimal | None
    currency: str | None = None

    def __str__(self) -> str:
        parts = [] if self.amount is None else [f"{self.amount:,}"]
        if self.currency is not None:
            parts.append(self.currency)
        return " ".join(parts) or "-"


@attrs.frozen
class Reason:
    """Why messages were dropped or not delivered, and how many.

    Attributes:
        label: Insider's name for the reason, e.g. `"unsubscriptions"`, `"offlineRecipients"`.
        count: Messages for this reason.
        share: Its fraction of all dropped (or undelivered) messages, 0 to 1.
    """

    label: str
    count: int
    share: float
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class Overview:
    """The headline figures of a campaign or an account.

    Attributes:
        targeted: Recipients targeted.
        sent: Messages sent (`targeted - dropped`).
        dropped: Messages dropped before sending (frequency caps, unsubscriptions...).
        delivered: Messages delivered.
        undelivered: Messages sent but not delivered (offline recipients...).
        clicks: Clicks.
        conversions: Conversions.
        delivery_rate: Delivered over sent, a fraction.
        ctr: Click-through rate, a fraction.
        conversion_rate: Conversion rate, a fraction.
        revenue: Revenue attributed to the pushes.
        extra: Keys Insider sent that this model does not know, by dotted path.
    """

    targeted: int
    sent: int
    dropped: int
    delivered: int
    undelivered: int
    clicks: int
    conversions: int
    delivery_rate: float
    ctr: float
    conversion_rate: float
    revenue: Revenue
    extra: Mapping[str, Any] = _extra()

    def funnel(self) -> tuple[tuple[str, int], ...]:
        """The delivery funnel, step by step.

        Returns:
            `(step, count)` pairs in the order of
                [`FUNNEL_STEPS`][insider_webpush.metrics.FUNNEL_STEPS]: targeted, sent,
                delivered, clicked, converted.
        """
        return _funnel(self)


@attrs.frozen
class DeviceMetrics:
    """A campaign's figures on one kind of device.

    Attributes:
        device: Insider's name for it, e.g. `"Desktop"`, `"Mobile"`.
        sent: Messages sent.
        delivered: Messages delivered.
        delivery_rate: A fraction.
        clicks: Clicks.
        ctr: A fraction.
        conversions: Conversions.
        conversion_rate: A fraction.
        revenue: Revenue (Insider may send only the currency).
        extra: Keys this model does not know.
    """

    device: str
    sent: int
    delivered: int
    delivery_rate: float
    clicks: int
    ctr: float
    conversions: int
    conversion_rate: float
    revenue: Revenue
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class ClickMetrics:
    """Clicks on one element of a push.

    Attributes:
        name: Insider's name for the element, e.g. `"mainAction"`, `"primaryAction"`.
        header: The element's label as shown (may be empty).
        clicks: Clicks on it.
        click_ratio: Its fraction of all clicks.
        extra: Keys this model does not know.
    """

    name: str
    header: str
    clicks: int
    click_ratio: float
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class CampaignMetrics:
    """One campaign's statistics (`POST /v1/statistics/campaign-metrics`).

    Attributes:
        name: The campaign's name.
        overview: Its headline figures.
        devices: Figures per kind of device.
        clicks: Clicks per element of the push.
        dropped: Why messages were dropped.
        undelivered: Why sent messages were not delivered.
        primary_goal: The goal it is measured by, e.g. `"salesFromClick"`; None if not sent.
        start: When the reported interval starts (time zone aware when Insider gives a zone,
            as its sample's `Z`); None if not sent.
        end: When it ends; None if not sent.
        is_recurring: Whether the campaign recurs; None if not sent.
        alias: Insider's kind of campaign, e.g. `"bulk"`; None if not sent.
        preferred_currency: The account's currency, e.g. `"USD"`; None if not sent.
        personalization_status: E.g. `"Active"`; None if not sent.
        ttl_ended: Whether the push's time to live is over; None if not sent.
        goal_menu: The goals Insider offers, key to label.
        extra: Keys this model does not know (e.g. `comparisonData`), by dotted path.
        raw: The body as Insider sent it.
    """

    name: str
    overview: Overview
    devices: tuple[DeviceMetrics, ...] = ()
    clicks: tuple[ClickMetrics, ...] = ()
    dropped: tuple[Reason, ...] = ()
    undelivered: tuple[Reason, ...] = ()
    primary_goal: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    is_recurring: bool | None = None
    alias: str | None = None
    preferred_currency: str | None = None
    personalization_status: str | None = None
    ttl_ended: bool | None = None
    goal_menu: Mapping[str, str] = attrs.field(
        default=_EMPTY, converter=_frozen_mapping, hash=False
    )
    extra: Mapping[str, Any] = _extra()
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class TypePerformance:
    """An account's figures for one type of campaign.

    Attributes:
        label: The type, e.g. `"Bulk"`, `"Cart Reminder"`.
        campaign_count: Campaigns of this type.
        delivery_rate: A fraction.
        ctr: A fraction.
        conversion_rate: A fraction.
        revenue: Revenue (Insider sends no currency here).
        extra: Keys this model does not know.
    """

    label: str
    campaign_count: int
    delivery_rate: float
    ctr: float
    conversion_rate: float
    revenue: Revenue
    extra: Mapping[str, Any] = _extra()


@attrs.frozen
class TopMetrics:
    """An account's statistics over every campaign (`POST /v1/statistics/top-metrics`).

    Attributes:
        overview: The headline figures.
        performance: Figures per type of campaign.
        dropped: Why messages were dropped.
        undelivered: Why sent messages were not delivered.
        extra: Keys this model does not know, by dotted path.
        raw: The body as Insider sent it.
    """

    overview: Overview
    performance: tuple[TypePerformance, ...] = ()
    dropped: tuple[Reason, ...] = ()
    undelivered: tuple[Reason, ...] = ()
    extra: Mapping[str, Any] = _extra()
    raw: Mapping[str, Any] = _raw()


@attrs.frozen
class CampaignSummary:
    """One campaign of the overall metrics (`POST /v1/statistics/overall-metrics`).

    Attributes:
        campaign_id: The campaign's id.
        name: Its name.
        type: Its type, e.g. `"Bulk"`.
        status: E.g. `"Active"`.
        targeted: Recipients targeted.
        sent: Messages sent.
        dropped: Messages dropped.
        delivered: Messages delivered.
        undelivered: Messages not delivered.
        clicks: Clicks.
        conversions: Conversions.
        delivery_rate: A fraction.
        ctr: A fraction.
        conversion_rate: A fraction.
        revenue: Revenue (no currency: Insider sends a number).
        tags: Its tags.
        builder_id: The id of the campaign builder it came from; None if not sent.
        sent_at: When it was sent (no time zone: Insider sends local times); None if not sent.
        starts_at: When it starts; None if not sent.
        ends_at: When it ends; None if not sent.
        days_active: Days it was active; None if not sent.
        message_link: Where a click on the message goes; None when Insider sends `"N/A"`.
        first_button_link: The first button's link, or None (`"N/A"`).
        second_button_link: The second button's link, or None (`"N/A"`).
        extra: Keys this model does not know.
        raw: The campaign's object as Insider sent it.
    """

    campaign_id: int
    name: str
    type: str
    status: str
    targeted: int
    sent: int
    dropped: int
    delivered: int
    undelivered: int
    clicks: int
    conversions: int
    delivery_rate: float
    ctr: float
    conversion_rate: float
    revenue: Revenue
    tags: tuple[str, ...] = ()
    builder_id: int | None = None
    sent_at: dt.datetime | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    days_active: int | None = None
    message_link: str | None = None
    first_button_link: str | None = None
    second_button_link: str | None = None
    extra: Mapping[str, Any] = _extra()
    raw: Mapping[str, Any] = _raw()

    def funnel(self) -> tuple[tuple[str, int], ...]:
        """The delivery funnel: `(step, count)` pairs, as
        [`Overview.funnel`][insider_webpush.metrics.Overview.funnel] gives them."""
        return _funnel(self)


@attrs.frozen
class MetricsPage:
    """One page of the overall metrics, as Insider sent it.

    Attributes:
        page: The page's number, from 1.
        per_page: Campaigns per page, as Insider applied it.
        total: Campaigns in the interval, over every page.
        campaigns: This page's campaigns.
        extra: Keys this model does not know.
    """

    page: int
    per_page: int
    total: int
    campaigns: tuple[CampaignSummary, ...] = ()
    extra: Mapping[str, Any] = _extra()

    @property
    def pages(self) -> int:
        """Pages in all: `ceil(total / per_page)`, at least 1."""
        return max(1, -(-self.total // self.per_page)) if self.per_page > 0 else 1


def _check_date(field: str, value: object) -> dt.date:
    # A datetime is a date too, but its time and zone would be dropped without a word.
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValidationError(
            field, f"must be a datetime.date (e.g. date(2026, 11, 1)), not {type(value).__name__}"
        )
    return value


def check_date_range(start_date: object, end_date: object) -> tuple[dt.date, dt.date]:
    """Check the interval of a statistics request.

    Insider reads `YYYY-MM-DD` dates, both days included; its docs add that the start may not
    be before the campaign was created (which only Insider can check: a 422).

    Args:
        start_date: The first day, a `datetime.date` (not a `datetime`).
        end_date: The last day, a `datetime.date`, not before `start_date`.

    Returns:
        `(start_date, end_date)`.

    Raises:
        ValidationError: Either is not a `date`, or the end is before the start.
    """
    start = _check_date("start_date", start_date)
    end = _check_date("end_date", end_date)
    if end < start:
        raise ValidationError(
            "end_date", f"must not be before start_date ({start.isoformat()}), got {end}"
        )
    return start, end


def check_per_page(value: object) -> int:
    """Check `value` as the campaigns per page of the overall metrics.

    Args:
        value: A whole number from 1 to [`PER_PAGE_MAX`][insider_webpush.metrics.PER_PAGE_MAX].

    Returns:
        `value`.

    Raises:
        ValidationError: It is not (`field` is `"per_page"`).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PER_PAGE_MAX:
        raise ValidationError(
            "per_page", f"must be a whole number from 1 to {PER_PAGE_MAX}, got {value!r}"
        )
    return value
