"""The fake's web push statistics: the launches it carried out, as campaigns with seeded figures.

Every campaign id the simulator launched becomes one campaign (its first launch gives its name,
the push's title, its link and its creation date, the fake's "today" at that launch). Its
figures are drawn from `random.Random(f"{seed}:{campaign_id}")`, so they are the same on every
run and in every answer. Answers are built as models of
[`insider_webpush.metrics`][insider_webpush.metrics] and written only by the codec's
`*_to_body` functions, so the fake formats figures exactly as the SDK reads them.

Request checks follow the Laravel validation Insider's 422 sample comes from
(`"The end date does not match the format Y-m-d."`): every field error of a request in one
`422 {"status_code": 422, "errors": {field: [message]}}`, one message per field.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import attrs

from ..codec.statistics import (
    CAMPAIGN_ID,
    DATE_FORMAT,
    END_DATE,
    PAGE,
    PARTNER_ID,
    PER_PAGE,
    START_DATE,
    campaign_metrics_to_body,
    metrics_page_to_body,
    status_body,
    top_metrics_to_body,
    unprocessable_body,
)
from ..endpoints import ENDPOINTS, STATISTICS, Operation
from ..metrics import (
    PER_PAGE_DEFAULT,
    CampaignMetrics,
    CampaignSummary,
    ClickMetrics,
    DeviceMetrics,
    MetricsPage,
    Overview,
    Reason,
    Revenue,
    TopMetrics,
    TypePerformance,
)
from ._answers import OTHER_PARTNER, QUOTA_MESSAGE, Answer, error, retry_after

__all__ = [
    "PER_PAGE_MAX",
    "THROTTLE_STATUS",
    "UNAUTHORIZED",
    "Campaign",
    "Statistics",
    "is_statistics",
    "throttled",
]

THROTTLE_STATUS: Final = 403
"""What the statistics endpoints answer over their quota: `403 "Request limit exceeded"`
(Insider's error table for these endpoints), not the 429 of the launch endpoints."""
PER_PAGE_MAX: Final = 20
"""The largest `per_page` the fake accepts: a public client reports that Insider answers 422
above about 20."""
UNAUTHORIZED: Final = Answer(401, json.dumps(status_body(401)).encode())
"""A missing or wrong key: `401 {"status_code": 401}`, the collection's sample."""

CURRENCY: Final = "USD"
CAMPAIGN_TYPE: Final = "Bulk"
CAMPAIGN_STATUS: Final = "Active"
DROP_REASONS: Final = (
    "frequencyCapped",
    "silentHours",
    "unsubscriptions",
    "serviceProviderErrors",
    "internalErrors",
)
UNDELIVERED_REASONS: Final = ("offlineRecipients", "other")
DEVICES: Final = ("Desktop", "Mobile")
# The elements of a push as the collection's sample names them; the SDK's pushes have no
# buttons, so every click is on the main element.
CLICK_ELEMENTS: Final = (
    ("mainAction", "Main Element"),
    ("primaryAction", ""),
    ("secondaryAction", ""),
)
GOAL_MENU: Final = {"camp-join": "Clicks", "sales-from-click": "Purchases From Click"}

_STATISTICS_OPERATIONS: Final = frozenset(
    op for op, e in ENDPOINTS.items() if e.quota == STATISTICS
)
_YMD: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE: Final = re.compile(r"-?\d+")
_RATE_DIGITS: Final = 4  # a fraction to 4 places is a percentage to 2, as Insider prints it
_CENT: Final = Decimal("0.01")


def is_statistics(operation: Operation) -> bool:
    """Whether `operation` is one of the three statistics endpoints (quota group
    `statistics`)."""
    return operation in _STATISTICS_OPERATIONS


def throttled(wait: float) -> Answer:
    """The answer over the statistics quota: `403 {"message": "Request limit exceeded"}` with
    `Retry-After` (seconds until a slot frees, as the 429 path gives it)."""
    return error(THROTTLE_STATUS, QUOTA_MESSAGE, {"Retry-After": retry_after(wait)})


@attrs.frozen(slots=True)
class Campaign:
    """A campaign of the fake: a campaign id it launched.

    Attributes:
        campaign_id: The id.
        name: The title of its first launch.
        created: The fake's date of its first launch (its creation and launch date).
        link: The push's link (the overall metrics' message link).
    """

    campaign_id: int
    name: str
    created: dt.date
    link: str | None = None


@attrs.frozen(slots=True)
class _Device:
    sent: int
    delivered: int
    clicks: int
    conversions: int
    revenue: Decimal


@attrs.frozen(slots=True)
class _Figures:
    """One campaign's (or an account's) counts; every rate is derived from them."""

    targeted: int
    dropped: int
    delivered: int
    clicks: int
    conversions: int
    revenue: Decimal
    drops: tuple[int, ...]  # per DROP_REASONS, summing to dropped
    undelivered_by: tuple[int, ...]  # per UNDELIVERED_REASONS, summing to undelivered
    devices: tuple[_Device, ...]  # per DEVICES, summing to sent, delivered, clicks...

    @property
    def sent(self) -> int:
        return self.targeted - self.dropped

    @property
    def undelivered(self) -> int:
        return self.sent - self.delivered


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _rate(part: int, whole: int) -> float:
    """A fraction Insider's two-decimal percentage prints and reads back unchanged."""
    return round(_ratio(part, whole), _RATE_DIGITS)


def _split(total: int, parts: int, rng: random.Random) -> tuple[int, ...]:
    """`total` in `parts` random non-negative counts that sum to it."""
    weights = [rng.random() for _ in range(parts)]
    whole = sum(weights) or 1.0
    counts = [int(total * w / whole) for w in weights]
    counts[weights.index(max(weights))] += total - sum(counts)
    return tuple(counts)


def _share(total: int, cap: int, other_cap: int, rng: random.Random) -> int:
    """The part of `total` in a bucket of capacity `cap`, the rest fitting in `other_cap`
    (`total <= cap + other_cap`): near its proportional part, with some spread."""
    wanted = round(total * _ratio(cap, cap + other_cap) * rng.uniform(0.5, 1.5))
    return min(max(wanted, total - other_cap, 0), cap, total)


def seeded_figures(seed: int, campaign_id: int) -> _Figures:
    """A campaign's figures, from `random.Random(f"{seed}:{campaign_id}")`: targeted >= sent
    >= delivered >= clicks >= conversions, reasons and devices summing to their totals."""
    rng = random.Random(f"{seed}:{campaign_id}")
    targeted = rng.randint(1_000, 500_000)
    dropped = int(targeted * rng.uniform(0.0, 0.05))
    sent = targeted - dropped
    delivered = int(sent * rng.uniform(0.2, 0.9))
    clicks = int(delivered * rng.uniform(0.002, 0.03))
    conversions = int(clicks * rng.uniform(0.0, 0.2))
    revenue = Decimal(conversions * rng.randint(500, 20_000)) / 100  # whole cents; 0 is "0"
    desktop_sent = round(sent * rng.uniform(0.05, 0.4))
    desktop_delivered = _share(delivered, desktop_sent, sent - desktop_sent, rng)
    desktop_clicks = _share(clicks, desktop_delivered, delivered - desktop_delivered, rng)
    desktop_conversions = _share(conversions, desktop_clicks, clicks - desktop_clicks, rng)
    desktop_revenue = (
        (revenue * desktop_conversions / conversions).quantize(_CENT)
        if desktop_conversions
        else Decimal(0)
    )
    desktop = _Device(
        desktop_sent, desktop_delivered, desktop_clicks, desktop_conversions, desktop_revenue
    )
    mobile = _Device(
        sent - desktop_sent,
        delivered - desktop_delivered,
        clicks - desktop_clicks,
        conversions - desktop_conversions,
        revenue - desktop_revenue,
    )
    return _Figures(
        targeted,
        dropped,
        delivered,
        clicks,
        conversions,
        revenue,
        _split(dropped, len(DROP_REASONS), rng),
        _split(sent - delivered, len(UNDELIVERED_REASONS), rng),
        (desktop, mobile),
    )


def _total(figures: list[_Figures]) -> _Figures:
    """The account's figures: every campaign's added up."""

    def add(counts: list[tuple[int, ...]], width: int) -> tuple[int, ...]:
        return tuple(sum(c[i] for c in counts) for i in range(width))

    return _Figures(
        sum(f.targeted for f in figures),
        sum(f.dropped for f in figures),
        sum(f.delivered for f in figures),
        sum(f.clicks for f in figures),
        sum(f.conversions for f in figures),
        sum((f.revenue for f in figures), Decimal(0)),
        add([f.drops for f in figures], len(DROP_REASONS)),
        add([f.undelivered_by for f in figures], len(UNDELIVERED_REASONS)),
        (),
    )


def _figure_fields(
    f: _Figures, rate: Callable[[int, int], float], currency: str | None
) -> dict[str, Any]:
    """The figures an `Overview` and a `CampaignSummary` share, their rates by `rate`."""
    return {
        "targeted": f.targeted,
        "sent": f.sent,
        "dropped": f.dropped,
        "delivered": f.delivered,
        "undelivered": f.undelivered,
        "clicks": f.clicks,
        "conversions": f.conversions,
        "delivery_rate": rate(f.delivered, f.sent),
        "ctr": rate(f.clicks, f.delivered),  # the collection's samples: clicks over delivered
        "conversion_rate": rate(f.conversions, f.clicks),
        "revenue": Revenue(f.revenue, currency),
    }


def _overview(f: _Figures) -> Overview:
    return Overview(**_figure_fields(f, _rate, CURRENCY))


def _reasons(labels: tuple[str, ...], counts: tuple[int, ...]) -> tuple[Reason, ...]:
    whole = sum(counts)
    return tuple(Reason(label, n, _rate(n, whole)) for label, n in zip(labels, counts, strict=True))


def _device(name: str, d: _Device) -> DeviceMetrics:
    return DeviceMetrics(
        device=name,
        sent=d.sent,
        delivered=d.delivered,
        delivery_rate=_rate(d.delivered, d.sent),
        clicks=d.clicks,
        ctr=_rate(d.clicks, d.delivered),
        conversions=d.conversions,
        conversion_rate=_rate(d.conversions, d.clicks),
        revenue=Revenue(d.revenue, CURRENCY),
    )


def _clicks(clicks: int) -> tuple[ClickMetrics, ...]:
    counts = (clicks,) + (0,) * (len(CLICK_ELEMENTS) - 1)
    return tuple(
        ClickMetrics(name, header, n, _rate(n, clicks))
        for (name, header), n in zip(CLICK_ELEMENTS, counts, strict=True)
    )


def _json(status: int, body: object) -> Answer:
    return Answer(status, json.dumps(body).encode())


def _unprocessable(errors: Mapping[str, str]) -> Answer:
    return _json(422, unprocessable_body({field: [message] for field, message in errors.items()}))


def _words(key: str) -> str:
    """A field as Laravel names it in a message: `start_date` is "start date"."""
    return key.replace("_", " ")


@attrs.frozen
class _Request:
    """A statistics request whose fields passed: its interval and the rest."""

    partner_id: str | None
    start: dt.date
    end: dt.date
    campaign_id: int | None
    page: int
    per_page: int


class Statistics:
    """The campaigns of one simulator and the answers of its three statistics endpoints.

    Args:
        seed: The simulator's seed; a campaign's figures are drawn from
            `random.Random(f"{seed}:{campaign_id}")`.
        partner_id: The account's partner id; another one is a 400.
        today: Returns the fake's date, read once per new campaign (its creation date).
        per_page_max: The largest `per_page` accepted (more is a 422).
    """

    def __init__(
        self, seed: int, partner_id: str, today: Callable[[], dt.date], per_page_max: int
    ) -> None:
        self._seed = seed
        self._partner_id = partner_id
        self._today = today
        self.per_page_max = per_page_max
        self.campaigns: dict[int, Campaign] = {}
        """Campaign id to its campaign, in the order of their first launch."""
        self._figures: dict[int, _Figures] = {}
        self._last_day: dt.date | None = None

    def record_launch(self, campaign_id: int, title: str, link: str | None) -> None:
        """Make the campaign of a launch carried out; a campaign id launched again keeps its
        first name and date."""
        if campaign_id not in self.campaigns:
            day = self._today()
            if day == self._last_day:  # one date object for a day's campaigns: less memory
                day = self._last_day
            self._last_day = day
            self.campaigns[campaign_id] = Campaign(campaign_id, title, day, link)

    def figures(self, campaign_id: int) -> _Figures:
        """The seeded figures of a campaign (computed once)."""
        figures = self._figures.get(campaign_id)
        if figures is None:
            figures = self._figures[campaign_id] = seeded_figures(self._seed, campaign_id)
        return figures

    # -- the three endpoints ------------------------------------------------------------

    def answer(self, operation: Operation, body: object) -> Answer:
        """The answer of a statistics request that passed the key, the quota and the JSON
        checks: 200 with the figures, 422 with field errors, or 400 for another partner."""
        fields = body if isinstance(body, Mapping) else {}
        request = self._read(operation, fields)
        if isinstance(request, Answer):
            return request
        if request.partner_id != self._partner_id:
            return OTHER_PARTNER  # as the launch path answers it
        if operation is Operation.CAMPAIGN_METRICS:
            return self._campaign(request)
        in_interval = [
            c for c in self.campaigns.values() if request.start <= c.created <= request.end
        ]
        if operation is Operation.TOP_METRICS:
            return self._top(in_interval)
        return self._overall(in_interval, request.page, request.per_page)

    def _campaign(self, request: _Request) -> Answer:
        assert request.campaign_id is not None
        campaign = self.campaigns.get(request.campaign_id)
        if campaign is None:
            return _unprocessable({CAMPAIGN_ID: f"The selected {_words(CAMPAIGN_ID)} is invalid."})
        if request.start < campaign.created:
            # Insider's docs: "The Start Date cannot be earlier than the Campaign Create Date."
            return _unprocessable(
                {START_DATE: "The Start Date cannot be earlier than the Campaign Create Date."}
            )
        f = self.figures(campaign.campaign_id)
        metrics = CampaignMetrics(
            name=campaign.name,
            overview=_overview(f),
            devices=tuple(_device(n, d) for n, d in zip(DEVICES, f.devices, strict=True)),
            clicks=_clicks(f.clicks),
            dropped=_reasons(DROP_REASONS, f.drops),
            undelivered=_reasons(UNDELIVERED_REASONS, f.undelivered_by),
            primary_goal="salesFromClick",
            start=dt.datetime.combine(request.start, dt.time(), dt.UTC),
            end=dt.datetime.combine(request.end, dt.time.max, dt.UTC),
            is_recurring=False,
            alias=CAMPAIGN_TYPE.lower(),
            preferred_currency=CURRENCY,
            personalization_status=CAMPAIGN_STATUS,
            goal_menu=GOAL_MENU,
        )
        return _json(200, campaign_metrics_to_body(metrics))

    def _top(self, campaigns: list[Campaign]) -> Answer:
        every = [self.figures(c.campaign_id) for c in campaigns]
        total = _total(every)
        performance: tuple[TypePerformance, ...] = ()
        if campaigns:  # every campaign of the fake is of one type
            performance = (
                TypePerformance(
                    label=CAMPAIGN_TYPE,
                    campaign_count=len(campaigns),
                    delivery_rate=_rate(total.delivered, total.sent),
                    ctr=_rate(total.clicks, total.delivered),
                    conversion_rate=_rate(total.conversions, total.clicks),
                    revenue=Revenue(total.revenue),  # Insider sends a bare number here
                ),
            )
        metrics = TopMetrics(
            overview=_overview(total),
            performance=performance,
            dropped=_reasons(DROP_REASONS, total.drops),
            undelivered=_reasons(UNDELIVERED_REASONS, total.undelivered_by),
        )
        return _json(200, top_metrics_to_body(metrics))

    def _overall(self, campaigns: list[Campaign], page: int, per_page: int) -> Answer:
        first = (page - 1) * per_page
        summaries = tuple(self._summary(c) for c in campaigns[first : first + per_page])
        metrics = MetricsPage(page, per_page, len(campaigns), summaries)
        return _json(200, metrics_page_to_body(metrics))

    def _summary(self, campaign: Campaign) -> CampaignSummary:
        f = self.figures(campaign.campaign_id)
        launched = dt.datetime.combine(campaign.created, dt.time())
        return CampaignSummary(
            campaign_id=campaign.campaign_id,
            name=campaign.name,
            type=CAMPAIGN_TYPE,
            status=CAMPAIGN_STATUS,
            # Numbers, as the overall metrics send them: unrounded fractions, no currency.
            **_figure_fields(f, _ratio, None),
            sent_at=launched,
            starts_at=launched,
            ends_at=launched,
            days_active=1,
            message_link=campaign.link,
        )

    # -- the request ----------------------------------------------------------------------

    def _read(self, operation: Operation, body: Mapping[str, object]) -> _Request | Answer:
        """The request's fields, or the 422 naming every field that is wrong."""
        errors: dict[str, str] = {}

        def present(key: str) -> object:
            value = body.get(key)
            if value is None or value == "":
                errors[key] = f"The {_words(key)} field is required."
                return None
            return value

        def date(key: str) -> dt.date | None:
            value = present(key)
            if value is None:
                return None
            if isinstance(value, str) and _YMD.fullmatch(value):
                try:
                    return dt.datetime.strptime(value, DATE_FORMAT).date()
                except ValueError:
                    pass
            errors[key] = f"The {_words(key)} does not match the format Y-m-d."
            return None

        def whole(key: str, value: object, most: int | None = None) -> int:
            number: int | None = None
            if isinstance(value, int) and not isinstance(value, bool):
                number = value
            elif (
                isinstance(value, str)
                and len(value) <= 20  # int() refuses over 4,300 digits; no id has 21
                and value.isascii()
                and _WHOLE.fullmatch(value)
            ):
                number = int(value)
            if number is None:
                errors[key] = f"The {_words(key)} must be an integer."
            elif number < 1:
                errors[key] = f"The {_words(key)} must be at least 1."
            elif most is not None and number > most:
                errors[key] = f"The {_words(key)} may not be greater than {most}."
            else:
                return number
            return 0

        def optional(key: str, default: int, most: int | None = None) -> int:
            value = body.get(key)
            return default if value is None or value == "" else whole(key, value, most)

        partner = present(PARTNER_ID)
        start = date(START_DATE)
        end = date(END_DATE)
        if start is not None and end is not None and end < start:
            errors[END_DATE] = (
                f"The {_words(END_DATE)} must be a date after or equal to {_words(START_DATE)}."
            )
        campaign_id: int | None = None
        page, per_page = 1, PER_PAGE_DEFAULT
        if operation is Operation.CAMPAIGN_METRICS:
            value = present(CAMPAIGN_ID)
            if value is not None:
                campaign_id = whole(CAMPAIGN_ID, value)
        elif operation is Operation.OVERALL_METRICS:
            page = optional(PAGE, 1)
            per_page = optional(PER_PAGE, PER_PAGE_DEFAULT, self.per_page_max)
        if errors:
            return _unprocessable(errors)
        assert start is not None
        assert end is not None
        partner_id = (
            str(partner)
            if isinstance(partner, str | int) and not isinstance(partner, bool)
            else None
        )
        return _Request(partner_id, start, end, campaign_id, page, per_page)
