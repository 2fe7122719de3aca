"""How ``insider-webpush stats`` shows the statistics models: tables, and JSON for machines.

The tables read the models of :mod:`insider_webpush.metrics`; nothing here knows the wire.
The JSON is the models' own attributes under their Python names (``delivery_rate``, not
``deliveryRate``), in the models' order: counts and rates as JSON numbers (rates as
fractions, 0.3408 for 34.08 %), a revenue as ``{"amount": "2480", "currency": "TRY"}`` (the
amount a string, so that no digit of the ``Decimal`` is lost; null when Insider sent only a
currency), times in ISO 8601; ``extra`` holds the keys Insider sent that the SDK does not
know yet; the raw body is left out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from ..metrics import (
    FUNNEL_STEPS,
    CampaignMetrics,
    CampaignSummary,
    Overview,
    Reason,
    TopMetrics,
)
from .output import Output

__all__ = [
    "FunnelTotals",
    "campaign_json",
    "humanize",
    "overall_header",
    "overall_row",
    "show_campaign",
    "show_overall",
    "show_top",
    "to_json",
]

_FUNNEL_HEADER = ("step", "count", "of previous step", "of targeted")
_REASON_HEADER = ("reason", "count", "share")
_RIGHT_AFTER_FIRST = (False, True, True, True, True, True, True)


def count(n: int) -> str:
    """``411840`` as ``"411,840"``."""
    return f"{n:,}"


def percent(fraction: float) -> str:
    """A fraction as a percentage with two decimals: ``0.3408`` is ``"34.08%"``; one too
    small to show but not nothing is ``"<0.01%"`` (3 conversions of 9 million targeted)."""
    if 0 < fraction < 0.00005:
        return "<0.01%"
    return f"{fraction:.2%}"


def ratio(part: int, whole: int) -> str:
    """``part / whole`` as a percentage; ``"-"`` when ``whole`` is 0."""
    return percent(part / whole) if whole else "-"


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def humanize(label: str) -> str:
    """Insider's reason labels read as words: ``"offlineRecipients"`` is
    ``"offline recipients"``; a label that is not camelCase is kept as it is."""
    if " " in label or not _CAMEL.search(label):
        return label
    return _CAMEL.sub(" ", label).lower()


def interval(since: dt.date, until: dt.date) -> str:
    """``"2026-11-01 to 2026-11-30"``, or the one day."""
    if since == until:
        return since.isoformat()
    return f"{since.isoformat()} to {until.isoformat()}"


# -- JSON -------------------------------------------------------------------------------------


def to_json(value: object) -> Any:
    """A model (or any value inside one) as JSON-ready data (see the module's docstring)."""
    cls = type(value)
    if attrs.has(cls):
        return {
            field.name: to_json(getattr(value, field.name))
            for field in attrs.fields(cls)
            if field.name != "raw"
        }
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # a datetime is a date too
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def campaign_json(campaign_id: int, metrics: CampaignMetrics) -> dict[str, Any]:
    """``stats campaign --json``: the campaign's id (which the answer does not repeat), then
    the model's attributes."""
    return {"campaign_id": campaign_id, **to_json(metrics)}


# -- tables -----------------------------------------------------------------------------------


def funnel_rows(funnel: Sequence[tuple[str, int]]) -> list[tuple[str, str, str, str]]:
    """Each step's count, its share of the step before, and its share of the targeted."""
    targeted = funnel[0][1] if funnel else 0
    rows = []
    previous: int | None = None
    for step, n in funnel:
        of_previous = "-" if previous is None else ratio(n, previous)
        rows.append((step, count(n), of_previous, ratio(n, targeted)))
        previous = n
    return rows


def by_count(reasons: Iterable[Reason]) -> list[Reason]:
    """The biggest first; ties in Insider's order."""
    return sorted(reasons, key=lambda reason: -reason.count)


def _show_reasons(out: Output, title: str, reasons: Sequence[Reason], total: int) -> None:
    if not reasons:
        out.echo(f"{title} ({count(total)}): Insider gave no reasons")
        return
    rows = [(humanize(r.label), count(r.count), percent(r.share)) for r in by_count(reasons)]
    out.grid(f"{title} ({count(total)})", _REASON_HEADER, rows, right=_RIGHT_AFTER_FIRST)


def show_campaign(
    out: Output, campaign_id: int, metrics: CampaignMetrics, since: dt.date, until: dt.date
) -> None:
    """``stats campaign``'s table: the campaign, its funnel, its rates, each kind of device,
    and why messages were lost."""
    o = metrics.overview
    about = [("campaign", str(campaign_id)), ("name", metrics.name)]
    about.append(("interval", interval(since, until)))
    if metrics.alias is not None:
        about.append(("kind", metrics.alias))
    if metrics.primary_goal is not None:
        about.append(("primary goal", metrics.primary_goal))
    out.table(f"campaign {campaign_id}", about)
    out.grid("funnel", _FUNNEL_HEADER, funnel_rows(o.funnel()), right=_RIGHT_AFTER_FIRST)
    out.table("rates (as Insider reports them)", _rate_rows(o))
    if metrics.devices:
        out.grid(
            "by device",
            ("device", "sent", "delivered", "delivery rate", "clicks", "CTR", "revenue"),
            [
                (
                    d.device,
                    count(d.sent),
                    count(d.delivered),
                    percent(d.delivery_rate),
                    count(d.clicks),
                    percent(d.ctr),
                    str(d.revenue),
                )
                for d in metrics.devices
            ],
            right=_RIGHT_AFTER_FIRST,
        )
    _show_reasons(out, "dropped before sending", metrics.dropped, o.dropped)
    _show_reasons(out, "sent but not delivered", metrics.undelivered, o.undelivered)


def _rate_rows(o: Overview) -> list[tuple[str, str]]:
    return [
        ("delivery rate", percent(o.delivery_rate)),
        ("CTR", percent(o.ctr)),
        ("conversion rate", percent(o.conversion_rate)),
        ("revenue", str(o.revenue)),
    ]


def show_top(out: Output, metrics: TopMetrics, since: dt.date, until: dt.date) -> None:
    """``stats top``'s table: the account's funnel, its rates, each campaign type, reasons."""
    o = metrics.overview
    out.grid(
        f"account overview, {interval(since, until)}",
        _FUNNEL_HEADER,
        funnel_rows(o.funnel()),
        right=_RIGHT_AFTER_FIRST,
    )
    out.table("rates (as Insider reports them)", _rate_rows(o))
    if metrics.performance:
        out.grid(
            "by campaign type",
            ("type", "campaigns", "delivery rate", "CTR", "conversion rate", "revenue"),
            [
                (
                    p.label,
                    count(p.campaign_count),
                    percent(p.delivery_rate),
                    percent(p.ctr),
                    percent(p.conversion_rate),
                    str(p.revenue),
                )
                for p in metrics.performance
            ],
            right=_RIGHT_AFTER_FIRST,
        )
    _show_reasons(out, "dropped before sending", metrics.dropped, o.dropped)
    _show_reasons(out, "sent but not delivered", metrics.undelivered, o.undelivered)


def overall_header() -> tuple[str, ...]:
    return ("id", "name", "sent", "delivered", "clicks", "delivery rate", "CTR")


def overall_row(summary: CampaignSummary) -> tuple[str, ...]:
    """One campaign of ``stats overall``'s table, in the order of ``overall_header``."""
    return (
        str(summary.campaign_id),
        summary.name,
        count(summary.sent),
        count(summary.delivered),
        count(summary.clicks),
        percent(summary.delivery_rate),
        percent(summary.ctr),
    )


def show_overall(
    out: Output, rows: Sequence[tuple[str, ...]], since: dt.date, until: dt.date, *, limited: bool
) -> None:
    """``stats overall``'s table, one row a campaign (rows from ``overall_row``)."""
    if not rows:
        out.echo(f"no campaigns from {interval(since, until)}")
        return
    more = " (--limit reached: there may be more)" if limited else ""
    out.grid(
        f"{len(rows)} campaign(s), {interval(since, until)}{more}",
        overall_header(),
        rows,
        right=(True, False, True, True, True, True, True),
    )


@attrs.define
class FunnelTotals:
    """The funnel summed over the campaigns of ``stats overall`` (for its ``--plot``)."""

    campaigns: int = 0
    targeted: int = 0
    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    converted: int = 0

    def add(self, summary: CampaignSummary) -> None:
        self.campaigns += 1
        self.targeted += summary.targeted
        self.sent += summary.sent
        self.delivered += summary.delivered
        self.clicked += summary.clicks
        self.converted += summary.conversions

    def funnel(self) -> tuple[tuple[str, int], ...]:
        counts = (self.targeted, self.sent, self.delivered, self.clicked, self.converted)
        return tuple(zip(FUNNEL_STEPS, counts, strict=True))
