"""The statistics endpoints' wire: request bodies out, answers in, and answers out for the fake.

Each model of [`insider_webpush.metrics`][insider_webpush.metrics] has one table here: for
every attribute, the path of its JSON key and its kind (a count, a rate, revenue, a time...).
Reading and writing both follow that table, so FakeInsider formats its answers exactly as the
SDK reads them, and `read(write(m)) == m`.

The shapes are those of the sample bodies in Insider's Postman collection (`Web Push`
folder):

- campaign and top metrics format figures as text: counts with thousands separators
  (`"411,840"`), rates as percentages (`"34.08%"`, or `"91.33"` without the sign in drop
  reasons and per-type performance), revenue with its currency (`"2,480 TRY"`, or just
  `"USD"`);
- overall metrics send numbers: counts as `411840`, rates as fractions (`0.3407...`),
  revenue as a plain number.

Every reader takes either shape, so a figure has one type whatever the endpoint sent. A key
no table names is kept in the model's `extra` by its dotted path; a figure that is there but
cannot be read raises [`APIError`][insider_webpush.errors.APIError] naming its path.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from ..errors import APIError
from ..metrics import (
    FIGURE_MAX,
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
from ..models import CAMPAIGN_ID_MAX

__all__ = [
    "campaign_metrics_from_body",
    "campaign_metrics_request",
    "campaign_metrics_to_body",
    "field_errors",
    "metrics_page_from_body",
    "metrics_page_to_body",
    "overall_metrics_request",
    "status_body",
    "top_metrics_from_body",
    "top_metrics_request",
    "top_metrics_to_body",
    "unprocessable_body",
]

# -- requests -----------------------------------------------------------------------------

PARTNER_ID: Final = "partner_id"
START_DATE: Final = "start_date"
END_DATE: Final = "end_date"
CAMPAIGN_ID: Final = "campaign_id"
PAGE: Final = "page"
PER_PAGE: Final = "per_page"
DATE_FORMAT: Final = "%Y-%m-%d"
"""Insider's `Y-m-d`: every date of a statistics request."""


def _interval(partner_id: str, start: dt.date, end: dt.date) -> dict[str, str]:
    # Every value a string, as the collection documents them.
    return {PARTNER_ID: partner_id, START_DATE: start.isoformat(), END_DATE: end.isoformat()}


def campaign_metrics_request(
    partner_id: str, campaign_id: int, start: dt.date, end: dt.date
) -> dict[str, str]:
    """The body of `POST /v1/statistics/campaign-metrics`; values already checked.

    Returns:
        `{"partner_id", "start_date", "end_date", "campaign_id"}`, every value a string.
    """
    return {**_interval(partner_id, start, end), CAMPAIGN_ID: str(campaign_id)}


def top_metrics_request(partner_id: str, start: dt.date, end: dt.date) -> dict[str, str]:
    """The body of `POST /v1/statistics/top-metrics`: `{"partner_id", "start_date",
    "end_date"}`, every value a string."""
    return _interval(partner_id, start, end)


def overall_metrics_request(
    partner_id: str, start: dt.date, end: dt.date, page: int, per_page: int
) -> dict[str, str]:
    """The body of `POST /v1/statistics/overall-metrics`: `{"partner_id", "start_date",
    "end_date", "page", "per_page"}`, every value a string (the collection's sample sends
    `"per_page": "100", "page": "1"`)."""
    return {**_interval(partner_id, start, end), PAGE: str(page), PER_PAGE: str(per_page)}


# -- errors -------------------------------------------------------------------------------

_ERRORS: Final = "errors"
_STATUS_CODE: Final = "status_code"


def field_errors(body: object) -> dict[str, tuple[str, ...]]:
    """The field errors of a 422, Insider's `{"status_code": 422, "errors": {field: [msg]}}`.

    Args:
        body: The decoded body.

    Returns:
        Field name to its messages; empty when the body has none (a message that is one
            string rather than a list is read as a list of one).
    """
    errors = body.get(_ERRORS) if isinstance(body, Mapping) else None
    if not isinstance(errors, Mapping):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for field, messages in errors.items():
        if isinstance(messages, str):
            messages = [messages]
        if isinstance(messages, list):
            out[str(field)] = tuple(str(m) for m in messages)
    return out


def unprocessable_body(errors: Mapping[str, list[str]]) -> dict[str, Any]:
    """A 422 as the statistics endpoints send it: `{"status_code": 422, "errors": {...}}`."""
    return {_STATUS_CODE: 422, _ERRORS: {k: list(v) for k, v in errors.items()}}


def status_body(status: int) -> dict[str, Any]:
    """An error without a message as the statistics endpoints send it, e.g. their 401:
    `{"status_code": 401}`."""
    return {_STATUS_CODE: status}


# -- the kinds of value ---------------------------------------------------------------------


class _Unreadable(Exception):
    """A value of the answer that cannot be read: where, and why."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@attrs.frozen
class _Kind:
    """How one kind of value is read from the wire (`read(value, where)`), and written;
    `writes_none`: None has a wire spelling (a link's `"N/A"`) rather than no key."""

    read: Callable[[object, str], Any]
    write: Callable[[Any], object]
    writes_none: bool = False


_GROUPED = r"(?:\d{1,3}(?:,\d{3})+|\d+)"  # 411,840 or 411840
_COUNT_TEXT = re.compile(_GROUPED)
_DECIMAL_TEXT = re.compile(rf"{_GROUPED}(?:\.\d+)?")
_SIGNED_DECIMAL_TEXT = re.compile(rf"-?{_GROUPED}(?:\.\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_NA: Final = "N/A"
_TEXT_MAX: Final = 40  # the longest figure read from text: a count of 2**53 has 21 characters


def _number(value: object) -> float | None:
    """`value` as a finite JSON number within a figure's range, or None (a `bool` is not
    one; nor is an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return value if abs(value) <= FIGURE_MAX else None
    return value if math.isfinite(value) and abs(value) <= FIGURE_MAX else None


def _read_count(value: object, where: str) -> int:
    number = _number(value)
    if number is not None and number >= 0 and number == int(number):
        return int(number)
    if isinstance(value, str) and len(value) <= _TEXT_MAX and _COUNT_TEXT.fullmatch(value.strip()):
        count = int(value.strip().replace(",", ""))
        if count <= FIGURE_MAX:
            return count
    raise _Unreadable(where, f"{_shown(value)} is not a count")


def _percentage(text: str) -> float | None:
    """`"34.08%"`, `"34.08 %"` or `"34.08"` as the fraction 0.3408; None if not one."""
    text = text.strip().removesuffix("%").rstrip()
    if len(text) > _TEXT_MAX or not _DECIMAL_TEXT.fullmatch(text):
        return None
    return float(Decimal(text.replace(",", "")) / 100)


def _read_percent(value: object, where: str) -> float:
    # The campaign and top metrics send a rate as a percentage in text, with or without its
    # sign ("34.08%", "91.33"). A number there has no known scale (is 0.76 a fraction or
    # 0.76 %?): only 0, the same on both, is read; any other is an error, never a guess.
    if isinstance(value, str) and (rate := _percentage(value)) is not None:
        return rate
    if _number(value) == 0:
        return 0.0
    raise _Unreadable(where, f"{_shown(value)} is not a percentage in text, e.g. '34.08%'")


def _read_fraction(value: object, where: str) -> float:
    # The overall metrics send a rate as a fraction, a JSON number (0.3407...). Text there
    # is read only when it says its scale: a percentage with its sign ("34.08%"), or 0.
    number = _number(value)
    if number is not None and number >= 0:
        return float(number)
    rate = _percentage(value) if isinstance(value, str) else None
    if rate is not None and (rate == 0 or str(value).strip().endswith("%")):
        return rate
    raise _Unreadable(where, f"{_shown(value)} is not a fraction, e.g. 0.3408")


def _shown(value: object) -> str:
    """`value` for a message: its repr, cut short (a server may send anything)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _decimal(text: str) -> Decimal | None:
    if len(text) > _TEXT_MAX or not _SIGNED_DECIMAL_TEXT.fullmatch(text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None


def _read_revenue(value: object, where: str) -> Revenue:
    number = _number(value)
    if number is not None:  # repr: 0.1 is "0.1", not 0.1000000000000000055...
        return Revenue(Decimal(repr(number)), None)
    if isinstance(value, str):
        amount: Decimal | None = None
        currency: str | None = None
        for token in value.split():  # "2,480 TRY", "USD", "2479.66", or "TRY 2,480"
            if currency is None and _CURRENCY.fullmatch(token):
                currency = token
            elif amount is None and (parsed := _decimal(token)) is not None:
                amount = parsed
            else:
                break
        else:
            return Revenue(amount, currency)
    raise _Unreadable(where, f"{_shown(value)} is not an amount of money")


def _read_text(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    raise _Unreadable(where, f"{_shown(value)} is not text")


def _read_flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _Unreadable(where, f"{_shown(value)} is not true or false")


def _read_id(value: object, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= CAMPAIGN_ID_MAX:
        return value
    raise _Unreadable(where, f"{_shown(value)} is not an id")


def _read_time(value: object, where: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise _Unreadable(where, f"{_shown(value)} is not a date and time")


def _read_link(value: object, where: str) -> str | None:
    text = _read_text(value, where)
    return None if text == _NA else text


def _read_tags(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _Unreadable(where, f"{_shown(value)} is not a list of tags")


def _read_labels(value: object, where: str) -> dict[str, str]:
    if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    raise _Unreadable(where, f"{_shown(value)} is not an object of labels")


def _write_money_text(revenue: Revenue) -> str:  # "2,480 TRY", "0 USD", "USD"
    return str(revenue) if revenue.amount is not None or revenue.currency else ""


def _write_money_number(revenue: Revenue) -> int | float:
    amount = revenue.amount or Decimal(0)
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _write_instant(value: dt.datetime) -> str:  # "2023-05-31T21:00:00.000000Z"
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


COUNT_TEXT = _Kind(_read_count, lambda n: f"{n:,}")
COUNT = _Kind(_read_count, int)
PERCENT = _Kind(_read_percent, lambda r: f"{r * 100:.2f}%")
BARE_PERCENT = _Kind(_read_percent, lambda r: f"{r * 100:.2f}")
FRACTION = _Kind(_read_fraction, float)
MONEY_TEXT = _Kind(_read_revenue, _write_money_text)
BARE_MONEY = _Kind(_read_revenue, lambda r: str(r.amount if r.amount is not None else 0))
MONEY_NUMBER = _Kind(_read_revenue, _write_money_number)
TEXT = _Kind(_read_text, str)
FLAG = _Kind(_read_flag, bool)
ID = _Kind(_read_id, int)
INSTANT = _Kind(_read_time, _write_instant)
LOCAL_TIME = _Kind(_read_time, lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
LINK = _Kind(_read_link, lambda link: _NA if link is None else link, writes_none=True)
TAGS = _Kind(_read_tags, list)
LABELS = _Kind(_read_labels, dict)


# -- the tables -----------------------------------------------------------------------------


@attrs.frozen
class _Field:
    """One attribute of a model: its name, its JSON path and kind, and whether it must be
    there (an optional one that is missing or null is the attribute's default)."""

    name: str
    path: tuple[str, ...]
    kind: _Kind
    required: bool = True


@attrs.frozen
class _Shape:
    model: type[Any]
    fields: tuple[_Field, ...]


def _f(name: str, path: str, kind: _Kind, *, required: bool = True) -> _Field:
    return _Field(name, tuple(path.split(".")), kind, required)


_MISSING: Final = object()


def _get(obj: Mapping[str, Any], path: tuple[str, ...], where: str) -> object:
    """The value at `path`, or `_MISSING`; a key on the way that holds something other than
    an object is an error there (a list where Insider sends an object), not a missing key."""
    value: object = obj
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping):
            at = ".".join((where, *path[:depth]) if where else path[:depth])
            raise _Unreadable(at, f"is not a JSON object ({type(value).__name__})")
        if key not in value:
            return _MISSING
        value = value[key]
    return value


def _unread(obj: Mapping[str, Any], paths: frozenset[tuple[str, ...]]) -> dict[str, Any]:
    """Every key of `obj` no path of the table reaches, by its dotted path."""
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, str(key))
            if path in paths:
                continue
            if isinstance(value, Mapping) and any(p[: len(path)] == path for p in paths):
                walk(value, path)
            else:
                out[".".join(path)] = value

    walk(obj, ())
    return out


def _read(shape: _Shape, value: object, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise _Unreadable(where or "body", f"is not a JSON object ({type(value).__name__})")
    kwargs: dict[str, Any] = {}
    for field in shape.fields:
        item = _get(value, field.path, where)
        at = ".".join((where, *field.path)) if where else ".".join(field.path)
        if item is _MISSING or item is None:
            if field.required:
                raise _Unreadable(at, "is missing" if item is _MISSING else "is null")
            continue
        kwargs[field.name] = field.kind.read(item, at)
    names = attrs.fields_dict(shape.model)
    if "extra" in names:
        kwargs["extra"] = _unread(value, frozenset(f.path for f in shape.fields))
    if "raw" in names:
        kwargs["raw"] = value
    return shape.model(**kwargs)


def _write(shape: _Shape, model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in shape.fields:
        value = getattr(model, field.name)
        if value is None and not field.kind.writes_none:
            continue
        node = out
        for key in field.path[:-1]:
            node = node.setdefault(key, {})
        node[field.path[-1]] = field.kind.write(value)
    for dotted, value in getattr(model, "extra", {}).items():
        node = out
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def _object(shape: _Shape) -> _Kind:
    return _Kind(lambda v, where: _read(shape, v, where), lambda m: _write(shape, m))


def _items(shape: _Shape) -> _Kind:
    def read(value: object, where: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Unreadable(where, f"is not a list ({type(value).__name__})")
        return tuple(_read(shape, item, f"{where}[{i}]") for i, item in enumerate(value))

    return _Kind(read, lambda models: [_write(shape, m) for m in models])


_REASON = _Shape(
    Reason,
    (
        _f("label", "label", TEXT),
        _f("count", "count", COUNT_TEXT),
        _f("share", "percentage", BARE_PERCENT),
    ),
)
_OVERVIEW = _Shape(
    Overview,
    (
        _f("targeted", "total.targeted", COUNT_TEXT),
        _f("delivery_rate", "total.deliveryRate", PERCENT),
        _f("ctr", "total.ctr", PERCENT),
        _f("conversion_rate", "total.conversionRate", PERCENT),
        _f("sent", "targeted.sent", COUNT_TEXT),
        _f("dropped", "targeted.dropped", COUNT_TEXT),
        _f("delivered", "deliveryRate.delivered", COUNT_TEXT),
        _f("undelivered", "deliveryRate.undelivered", COUNT_TEXT),
        _f("clicks", "ctr.clicks", COUNT_TEXT),
        _f("conversions", "conversionRate.conversions", COUNT_TEXT),
        _f("revenue", "revenue", MONEY_TEXT),
    ),
)
_DEVICE = _Shape(
    DeviceMetrics,
    (
        _f("device", "device", TEXT),
        _f("sent", "sent", COUNT_TEXT),
        _f("delivered", "delivered", COUNT_TEXT),
        _f("delivery_rate", "deliveryRate", PERCENT),
        _f("clicks", "clicks", COUNT_TEXT),
        _f("ctr", "ctr", PERCENT),
        _f("conversions", "conversions", COUNT_TEXT),
        _f("conversion_rate", "conversionRate", PERCENT),
        _f("revenue", "revenue", MONEY_TEXT),
    ),
)
_CLICK = _Shape(
    ClickMetrics,
    (
        _f("name", "name", TEXT),
        _f("header", "header", TEXT),
        _f("clicks", "clicks", COUNT_TEXT),
        _f("click_ratio", "clickRatio", PERCENT),
    ),
)
_CAMPAIGN = _Shape(
    CampaignMetrics,
    (
        _f("name", "name", TEXT),
        _f("primary_goal", "primaryGoal", TEXT, required=False),
        _f("start", "startDate", INSTANT, required=False),
        _f("end", "endDate", INSTANT, required=False),
        _f("is_recurring", "isRecurring", FLAG, required=False),
        _f("alias", "alias", TEXT, required=False),
        _f("preferred_currency", "preferredCurrency", TEXT, required=False),
        _f("personalization_status", "personalizationStatus", TEXT, required=False),
        _f("ttl_ended", "isTTLEnded", FLAG, required=False),
        _f("goal_menu", "goalMenu", LABELS, required=False),
        _f("overview", "overview", _object(_OVERVIEW)),
        _f("devices", "deviceMetrics", _items(_DEVICE), required=False),
        _f("clicks", "clickMetrics", _items(_CLICK), required=False),
        _f("dropped", "unsuccessfulMessages.dropped", _items(_REASON), required=False),
        _f("undelivered", "unsuccessfulMessages.undelivered", _items(_REASON), required=False),
    ),
)
_PERFORMANCE = _Shape(
    TypePerformance,
    (
        _f("label", "label", TEXT),
        _f("campaign_count", "campaignCount", COUNT),
        _f("delivery_rate", "deliveryRate", BARE_PERCENT),
        _f("ctr", "ctr", BARE_PERCENT),
        _f("conversion_rate", "conversionRate", BARE_PERCENT),
        _f("revenue", "revenue", BARE_MONEY),
    ),
)
_TOP = _Shape(
    TopMetrics,
    (
        _f("overview", "overview", _object(_OVERVIEW)),
        _f("performance", "performance", _items(_PERFORMANCE), required=False),
        _f("dropped", "dropped", _items(_REASON), required=False),
        _f("undelivered", "undelivered", _items(_REASON), required=False),
    ),
)
_SUMMARY = _Shape(
    CampaignSummary,
    (
        _f("campaign_id", "id", ID),
        _f("tags", "tags", TAGS, required=False),
        _f("type", "type", TEXT),
        _f("name", "campName", TEXT),
        _f("status", "status", TEXT),
        _f("builder_id", "builderId", ID, required=False),
        _f("sent_at", "sendDate", LOCAL_TIME, required=False),
        _f("starts_at", "startDate", LOCAL_TIME, required=False),
        _f("ends_at", "endDate", LOCAL_TIME, required=False),
        _f("days_active", "daysActive", COUNT, required=False),
        _f("message_link", "messageLink", LINK, required=False),
        _f("first_button_link", "firstButtonLink", LINK, required=False),
        _f("second_button_link", "secondButtonLink", LINK, required=False),
        _f("targeted", "targeted", COUNT),
        _f("sent", "sent", COUNT),
        _f("dropped", "dropped", COUNT),
        _f("delivery_rate", "deliveryRate", FRACTION),
        _f("delivered", "delivered", COUNT),
        _f("undelivered", "undelivered", COUNT),
        _f("ctr", "ctr", FRACTION),
        _f("clicks", "clicks", COUNT),
        _f("conversion_rate", "conversionRate", FRACTION),
        _f("conversions", "conversions", COUNT),
        _f("revenue", "revenue", MONEY_NUMBER),
    ),
)
_PAGE = _Shape(
    MetricsPage,
    (
        _f("page", "page", ID),
        _f("per_page", "per_page", ID),
        _f("total", "total", COUNT),
        _f("campaigns", "data", _items(_SUMMARY), required=False),
    ),
)


# -- answers in and out ---------------------------------------------------------------------


def _from_body(shape: _Shape, status: int, body: object) -> Any:
    try:
        return _read(shape, body, "")
    except _Unreadable as exc:
        raise APIError(
            status,
            f"unexpected response body: {exc.where}: {exc.reason}",
            body=body,
            ambiguous=False,  # a read: nothing was launched
        ) from None


def campaign_metrics_from_body(status: int, body: object) -> CampaignMetrics:
    """Read a campaign metrics answer.

    Args:
        status: Its HTTP status, for the error.
        body: The decoded body.

    Returns:
        The [`CampaignMetrics`][insider_webpush.metrics.CampaignMetrics].

    Raises:
        APIError: A figure is missing or cannot be read; the message names its path (e.g.
            `overview.total.targeted`). Not ambiguous: a read launches nothing.
    """
    return _from_body(_CAMPAIGN, status, body)  # type: ignore[no-any-return]


def top_metrics_from_body(status: int, body: object) -> TopMetrics:
    """Read a top metrics answer; as `campaign_metrics_from_body`."""
    return _from_body(_TOP, status, body)  # type: ignore[no-any-return]


def metrics_page_from_body(status: int, body: object) -> MetricsPage:
    """Read one page of the overall metrics; as `campaign_metrics_from_body`."""
    return _from_body(_PAGE, status, body)  # type: ignore[no-any-return]


def campaign_metrics_to_body(metrics: CampaignMetrics) -> dict[str, Any]:
    """A campaign metrics answer, formatted as Insider formats it (FakeInsider's)."""
    return _write(_CAMPAIGN, metrics)


def top_metrics_to_body(metrics: TopMetrics) -> dict[str, Any]:
    """A top metrics answer, formatted as Insider formats it (FakeInsider's)."""
    return _write(_TOP, metrics)


def metrics_page_to_body(page: MetricsPage) -> dict[str, Any]:
    """A page of the overall metrics, as Insider sends it (FakeInsider's)."""
    return _write(_PAGE, page)
