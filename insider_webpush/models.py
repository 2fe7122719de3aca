"""The values the API takes and returns, validated on construction.

Every documented limit lives here and nowhere else. A rule that is broken raises
:class:`~insider_webpush.errors.ValidationError` naming the field and the limit, so a bad
push fails before anything is sent. Python names only: the wire names are the codec's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs

from .errors import ValidationError

__all__ = [
    "CAMPAIGN_ID_MAX",
    "DESCRIPTION_MAX",
    "DESCRIPTION_WITH_BANNER_MAX",
    "LAUNCH_BODY_MAX",
    "MAX_CONCURRENCY",
    "TITLE_MAX",
    "TTL_MAX_SECONDS",
    "Draft",
    "LaunchResult",
    "Target",
    "Timeouts",
    "WebPush",
    "check_campaign_id",
    "check_concurrency",
    "check_quota",
]

TITLE_MAX = 100
DESCRIPTION_MAX = 255
DESCRIPTION_WITH_BANNER_MAX = 30  # a rich push (one with a banner) has less room
TTL_MAX_SECONDS = 240 * 3600  # "TTL is limited to 240 hours"; unit read as seconds
TARGET_PREFIXES = ("d_", "c_")  # default and custom attributes
DEFAULT_LANGUAGE = "all_ALL"
CAMPAIGN_ID_MAX = 2**63 - 1  # a signed 64-bit id, the widest a JSON integer is safe in
# Workers of one batch: more than the quota can use only costs memory (~2 KB a worker).
MAX_CONCURRENCY = 10_000
RATE_LIMIT_MAX = 10**9
# A launch body is a few hundred bytes; 64 KiB is aiohttp's write limit before it waits to
# drain, so a body within it goes to the kernel in one write (see transport._stage).
LAUNCH_BODY_MAX = 64 * 1024

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _text(*, min_len: int = 1, max_len: int | None = None) -> _Validator:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str):
            raise ValidationError(attribute.name, f"must be a string, not {type(value).__name__}")
        if len(value) < min_len:
            raise ValidationError(attribute.name, "must not be empty")
        if max_len is not None and len(value) > max_len:
            raise ValidationError(
                attribute.name, f"must be at most {max_len} characters, got {len(value)}"
            )

    return check


def _url(*, schemes: tuple[str, ...]) -> _Validator:
    wanted = " or ".join(f"{s}://" for s in schemes)

    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _text()(_inst, attribute, value)
        assert isinstance(value, str)
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError as exc:
            raise ValidationError(attribute.name, f"is not a valid URL ({exc})") from None
        if parts.scheme.lower() not in schemes or not host or any(c.isspace() for c in value):
            raise ValidationError(attribute.name, f"must be an absolute {wanted} URL")

    return check


def _optional(validator: _Validator) -> _Validator:
    def check(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            validator(inst, attribute, value)

    return check


def _check_bool(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be true or false, not {type(value).__name__}")


def _partner_id(value: object) -> object:
    """Accept an int partner id and send it as the string the API wants."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _ttl_seconds(value: object) -> object:
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds == int(seconds) else seconds
    return value


def _check_ttl(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            attribute.name, "must be whole seconds, as an int or a datetime.timedelta"
        )
    if not 0 < value <= TTL_MAX_SECONDS:
        raise ValidationError(
            attribute.name,
            f"must be more than 0 and at most {TTL_MAX_SECONDS} seconds (240 hours), got {value}",
        )


def _values(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def _check_values(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not value:
        raise ValidationError("target.values", "must be a non-empty list of strings")
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(
                "target.values", f"must hold only strings, not {type(item).__name__}"
            )


def _check_attribute(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.startswith(TARGET_PREFIXES) or len(value) <= 2:
        raise ValidationError(
            "target.attribute",
            "must name a default (d_...) or custom (c_...) attribute, e.g. d_wp_browser",
        )


def _check_target(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Target):
        raise ValidationError(attribute.name, f"must be a Target, not {type(value).__name__}")


@attrs.frozen
class Target:
    """Segment a push: ``Target("d_wp_browser", ["Edg"])`` sends only to those users."""

    attribute: str = attrs.field(validator=_check_attribute)
    values: tuple[str, ...] = attrs.field(converter=_values, validator=_check_values)


@attrs.frozen(kw_only=True)
class WebPush:
    """One Single Web Push launch. ``ttl`` is in seconds (an int) or a ``timedelta``.

    ``partner_id`` is optional here: the client's ``partner_id`` fills a push without one.
    """

    title: str = attrs.field(validator=_text(max_len=TITLE_MAX))
    description: str = attrs.field(validator=_text(max_len=DESCRIPTION_MAX))
    image: str = attrs.field(validator=_url(schemes=("https",)))
    link: str = attrs.field(validator=_url(schemes=("http", "https")))
    ttl: int = attrs.field(converter=_ttl_seconds, validator=_check_ttl)
    banner: str | None = attrs.field(default=None, validator=_optional(_url(schemes=("https",))))
    include_unengaged: bool | None = attrs.field(default=None, validator=_optional(_check_bool))
    language: str | None = attrs.field(default=None, validator=_optional(_text()))
    target: Target | None = attrs.field(default=None, validator=_check_target)
    partner_id: str | None = attrs.field(
        default=None, converter=_partner_id, validator=_optional(_text())
    )

    def __attrs_post_init__(self) -> None:
        if self.banner is not None and len(self.description) > DESCRIPTION_WITH_BANNER_MAX:
            raise ValidationError(
                "description",
                f"must be at most {DESCRIPTION_WITH_BANNER_MAX} characters when a banner is "
                f"set (a rich push), got {len(self.description)}",
            )


@attrs.frozen(kw_only=True)
class Draft:
    """The body of a ``create``: a draft campaign whose id a later launch names."""

    partner_id: str = attrs.field(converter=_partner_id, validator=_text())
    title: str = attrs.field(validator=_text(max_len=TITLE_MAX))
    language: str = attrs.field(default=DEFAULT_LANGUAGE, validator=_text())
    is_all: bool = attrs.field(default=False, validator=_check_bool)


@attrs.frozen
class LaunchResult:
    """What a successful launch returns."""

    success: bool
    campaign_id: int


def check_campaign_id(value: object) -> int | None:
    """``value`` as a draft's campaign id: None, or a positive ``int`` (a ``bool`` is not).

    It becomes a path segment of the request, so nothing else may pass: a string such as
    ``"../../v1/single"`` would otherwise steer the request to another endpoint.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            "campaign_id", f"must be a positive int or None, not {type(value).__name__}"
        )
    if not 1 <= value <= CAMPAIGN_ID_MAX:
        raise ValidationError(
            "campaign_id", f"must be between 1 and {CAMPAIGN_ID_MAX}, got {value}"
        )
    return value


def check_quota(rate_limit: object, rate_period: object, *, field: str = "rate_limit") -> None:
    """A quota of ``rate_limit`` requests per ``rate_period`` seconds, or ValidationError."""
    if (
        isinstance(rate_limit, bool)
        or not isinstance(rate_limit, int)
        or not 1 <= rate_limit <= RATE_LIMIT_MAX
    ):
        raise ValidationError(
            field, f"must be a whole number from 1 to {RATE_LIMIT_MAX}, got {rate_limit!r}"
        )
    period_field = field.replace("limit", "period")
    if not _positive_seconds(rate_period):
        raise ValidationError(
            period_field, f"must be a finite number of seconds above 0, got {rate_period!r}"
        )


def check_concurrency(value: object) -> int:
    """``value`` as a batch's number of workers: 1 to :data:`MAX_CONCURRENCY`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError(
            "concurrency", f"must be a whole number from 1 to {MAX_CONCURRENCY}, got {value!r}"
        )
    return value


def _positive_seconds(value: object) -> bool:
    """A finite number above 0 (an int too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # math.isfinite(10**400)
        return False


def _seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _positive_seconds(value):
        raise ValidationError(
            f"timeout.{attribute.name}",
            f"must be a finite number of seconds above 0, got {value!r}",
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long one attempt of a request may take, in seconds; every field is finite and > 0.

    - ``total`` (30): one attempt from start to the whole answer: waiting for a pooled
      connection, connecting and the answer. The limiter's wait is not counted.
    - ``pool`` (10): getting a connection, i.e. waiting for a free one in the pool plus
      opening a new one.
    - ``connect`` (10): opening a new connection: TCP, TLS and a proxy's ``CONNECT``.
    - ``read`` (30): the longest wait for the whole answer once the request is written.
    - ``keepalive`` (4): how long an idle connection stays in the pool. Shorter than the idle
      timeouts of common servers and gateways (5 s and up), so the client retires a
      connection before the server can close it under a request.

    A timeout before the first byte was written leaves the request unsent (retried); one after
    it is ambiguous. ``total`` and ``read`` are checked by one sweep per event loop, so they
    fire up to 20 ms late. ``WebPushClient(timeout=5.0)`` is ``Timeouts(total=5.0)``.
    """

    total: float = attrs.field(default=30.0, validator=_seconds)
    pool: float = attrs.field(default=10.0, validator=_seconds)
    connect: float = attrs.field(default=10.0, validator=_seconds)
    read: float = attrs.field(default=30.0, validator=_seconds)
    keepalive: float = attrs.field(default=4.0, validator=_seconds)

    @classmethod
    def of(cls, value: object) -> Timeouts:
        """``value`` as Timeouts: a Timeouts, or a number of seconds for ``total``."""
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(
                "timeout", f"must be seconds (a number) or a Timeouts, not {type(value).__name__}"
            )
        if not _positive_seconds(value):
            raise ValidationError(
                "timeout", f"must be a finite number of seconds above 0, got {value!r}"
            )
        return cls(total=float(value))
