"""The values the API takes and returns, validated on construction.

Every documented limit lives here and nowhere else. A rule that is broken raises
[`ValidationError`][insider_webpush.errors.ValidationError] naming the field and the limit, so
a bad push fails before anything is sent. Python names only: the wire names are the codec's
([`insider_webpush.codec`][insider_webpush.codec]).

The limits are those of Insider's "Launch Single Web Push (v2)" page: a title of at most 100
characters, a description of at most 255 (30 for a rich push, one with a banner), HTTPS
`image` and `banner` URLs, a TTL of at most 240 hours, target attributes `d_...` (default) or
`c_...` (custom). The page does not give the TTL's unit; the SDK reads it as seconds (the
sample's `"1000"` only fits a 240-hour cap in seconds or minutes).
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
    "PUSH_LINE_MAX",
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
    "check_required_campaign_id",
]

TITLE_MAX = 100
"""Characters in a push's or a draft's `title` (Insider: "It cannot exceed 100 characters")."""
DESCRIPTION_MAX = 255
"""Characters in a push's `description` (Insider: "It cannot be more than 255 characters")."""
DESCRIPTION_WITH_BANNER_MAX = 30
"""Characters in the `description` of a rich push, one with a `banner`, which has less room."""
TTL_MAX_SECONDS = 240 * 3600
"""The longest `ttl`, in seconds: "TTL is limited to 240 hours"; the unit is read as seconds."""
TARGET_PREFIXES = ("d_", "c_")  # default and custom attributes
DEFAULT_LANGUAGE = "all_ALL"
CAMPAIGN_ID_MAX = 2**63 - 1
"""The largest campaign id: a signed 64-bit id, the widest a JSON integer is safe in."""
MAX_CONCURRENCY = 10_000
"""The most workers one batch may run: more than the quota can use only costs memory (~2 KB a
worker)."""
RATE_LIMIT_MAX = 10**9
LAUNCH_BODY_MAX = 64 * 1024
"""The largest launch body, in bytes. A launch body is a few hundred bytes; 64 KiB is aiohttp's
write limit before it waits to drain, so a body within it goes to the kernel in one write (see
`transport._stage`)."""
DEDUPE_KEY_MAX = 200
"""The longest dedupe key, in characters: room for an event id, a user id and a purpose."""
DEDUPE_TTL_MAX = 366 * 24 * 3600.0
"""The longest a dedupe key is remembered, in seconds: a year."""
PUSH_LINE_MAX = 4 * LAUNCH_BODY_MAX
"""The longest line of a push file, in characters (a JSON array's element likewise): room for
the largest body with every character escaped, and a bound on the memory a reader holds."""

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


def _partner_id(value: str | int | None) -> str | int | None:
    """Accept an int partner id and send it as the string the API wants (a bool passes
    through, for the validator to refuse)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _ttl_seconds(value: int | dt.timedelta) -> int | float:
    # A fractional timedelta stays a float, which the validator refuses with its message.
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


def _values(value: list[str] | tuple[str, ...]) -> tuple[str, ...]:
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
    """Segment a push: `Target("d_wp_browser", ["Edg"])` sends only to those users.

    Built positionally or by keyword, `Target(attribute, values)`. On the wire it is the
    launch body's `target` object, required by Insider when a push does not go to everyone.

    Attributes:
        attribute: The attribute to target: a default one, `d_` then its name (e.g.
            `d_wp_browser`; Insider's "Default Attributes" page lists them), or a custom
            one, `c_` then its name.
        values: The values of `attribute` to send to, e.g. `("Edg",)`. Given as a non-empty
            `list` or `tuple` of strings; kept as a tuple.

    Raises:
        ValidationError: `attribute` is not a string starting with `d_` or `c_` and a name
            (`field` is `"target.attribute"`), or `values` is not a non-empty list or tuple
            of strings (`"target.values"`).
    """

    attribute: str = attrs.field(validator=_check_attribute)
    values: tuple[str, ...] = attrs.field(converter=_values, validator=_check_values)


@attrs.frozen(kw_only=True)
class WebPush:
    """One Single Web Push launch: the body of `POST /v2/single/{campaign_id}`.

    Built with keyword arguments of the attributes' names; frozen and validated on
    construction, so an invalid push never reaches the wire. The rules are those of Insider's
    parameter table.

    Attributes:
        title: The push's title, 1 to [`TITLE_MAX`][insider_webpush.models.TITLE_MAX] (100)
            characters. Every launch creates a campaign in InOne under this title.
        description: The push's body, 1 to
            [`DESCRIPTION_MAX`][insider_webpush.models.DESCRIPTION_MAX] (255) characters; at
            most [`DESCRIPTION_WITH_BANNER_MAX`][insider_webpush.models.DESCRIPTION_WITH_BANNER_MAX]
            (30) when `banner` is set (a rich push).
        image: The notification's icon: an absolute `https://` URL (Insider accepts only
            HTTPS).
        link: Where a click goes: an absolute `http://` or `https://` URL.
        ttl: Time to live, in whole seconds: how long Insider keeps trying to reach an offline
            subscriber. Given as an `int` of seconds or a `datetime.timedelta` (converted to
            seconds); `0 < ttl <= 864000` (240 hours, Insider's limit). Sent as a decimal
            string, as Insider's samples do.
        banner: The rich push's image: an absolute `https://` URL, or None (the default) for
            a plain push.
        include_unengaged: True to also reach unengaged subscribers, whom Insider leaves
            out by default; None (the default) leaves the field out of the body. Sent as
            `include_unengage`, the spelling of Insider's samples (see
            [`insider_webpush.codec`][insider_webpush.codec]).
        language: The campaign's language, e.g. `"en_US"`; None (the default) leaves it out.
        target: The segment to send to, or None (the default) for every subscriber.
        partner_id: Your partner id (InOne Settings > Account Settings), a non-empty string;
            an `int` is accepted and kept as its string. None (the default) takes the
            client's `partner_id` at send time.

    Raises:
        ValidationError: A field breaks its rule; `field` names it and the message gives the
            limit. Nothing is sent.
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
    """The body of a `create` (`POST /v1/single`): a draft campaign whose id a later launch
    names. [`WebPushClient.create`][insider_webpush.client.WebPushClient.create] builds it.

    Attributes:
        partner_id: Your partner id, a non-empty string; an `int` is accepted and kept as its
            string.
        title: The draft's title, 1 to 100 characters; Insider refuses a title already in use
            (a 400).
        language: The campaign's language; `"all_ALL"` (every language) by default.
        is_all: True to send to every subscriber; False (the default) for a targeted launch.

    Raises:
        ValidationError: A field breaks its rule; `field` names it.
    """

    partner_id: str = attrs.field(converter=_partner_id, validator=_text())
    title: str = attrs.field(validator=_text(max_len=TITLE_MAX))
    language: str = attrs.field(default=DEFAULT_LANGUAGE, validator=_text())
    is_all: bool = attrs.field(default=False, validator=_check_bool)


@attrs.frozen
class LaunchResult:
    """What a successful launch returns: Insider's `{"success": true, "campaign_id": ...}`.

    Attributes:
        success: Always True: a launch that did not succeed raises instead.
        campaign_id: The id of the campaign Insider launched, a positive 64-bit `int` (Insider
            may send it as a string of digits; it is read as an `int`).
        replayed: True when nothing was sent this time: the push's dedupe key (or its place
            in a journaled batch) was launched before, and this is that launch's result.
    """

    success: bool
    campaign_id: int
    replayed: bool = False


def check_campaign_id(value: object) -> int | None:
    """Check `value` as a draft's campaign id.

    It becomes a path segment of the request, so nothing else may pass: a string such as
    `"../../v1/single"` would otherwise steer the request to another endpoint.

    Args:
        value: None, or a positive `int` of at most
            [`CAMPAIGN_ID_MAX`][insider_webpush.models.CAMPAIGN_ID_MAX] (a `bool` is not).

    Returns:
        `value` itself.

    Raises:
        ValidationError: `value` is not None or an `int` in that range (`field` is
            `"campaign_id"`).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            "campaign_id", f"must be a positive int or None, not {type(value).__name__}"
        )
    if not 1 <= value <= CAMPAIGN_ID_MAX:
        # Not the value itself when it is huge: str() of an int over 4,300 digits raises.
        shown = value if value.bit_length() <= 128 else f"an int of {value.bit_length()} bits"
        raise ValidationError(
            "campaign_id", f"must be between 1 and {CAMPAIGN_ID_MAX}, got {shown}"
        )
    return value


def check_required_campaign_id(value: object, purpose: str) -> int:
    """Check `value` as a campaign id an operation cannot do without.

    Args:
        value: A positive `int` of at most
            [`CAMPAIGN_ID_MAX`][insider_webpush.models.CAMPAIGN_ID_MAX].
        purpose: What the id is for, for the message, e.g. `"the campaign to read"`.

    Returns:
        `value` itself.

    Raises:
        ValidationError: `value` is None, not an `int`, or out of range (`field` is
            `"campaign_id"`).
    """
    if value is None:
        raise ValidationError("campaign_id", f"is required: {purpose}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("campaign_id", f"must be a positive int, not {type(value).__name__}")
    checked = check_campaign_id(value)
    assert checked is not None
    return checked


def check_quota(rate_limit: object, rate_period: object, *, field: str = "rate_limit") -> None:
    """Check a quota of `rate_limit` requests per `rate_period` seconds.

    Args:
        rate_limit: Requests per period: a whole number from 1 to 10**9.
        rate_period: The period, in seconds: a finite number above 0.
        field: The name to report for `rate_limit`; the period's name replaces `limit` in it
            with `period`.

    Raises:
        ValidationError: Either value is out of its range.
    """
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
    """Check `value` as a batch's number of workers.

    Args:
        value: A whole number from 1 to
            [`MAX_CONCURRENCY`][insider_webpush.models.MAX_CONCURRENCY] (10,000).

    Returns:
        `value` itself.

    Raises:
        ValidationError: `value` is out of that range, or not an `int` (`field` is
            `"concurrency"`).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValidationError(
            "concurrency", f"must be a whole number from 1 to {MAX_CONCURRENCY}, got {value!r}"
        )
    return value


def check_dedupe_key(value: object) -> str:
    """Check `value` as a dedupe key.

    Args:
        value: A string of 1 to [`DEDUPE_KEY_MAX`][insider_webpush.models.DEDUPE_KEY_MAX]
            (200) characters with no control characters, e.g. `"order-4711:welcome"`.

    Returns:
        `value` itself.

    Raises:
        ValidationError: It is not such a string (`field` is `"dedupe_key"`).
    """
    if not isinstance(value, str):
        raise ValidationError("dedupe_key", f"must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= DEDUPE_KEY_MAX:
        raise ValidationError(
            "dedupe_key", f"must be 1 to {DEDUPE_KEY_MAX} characters, got {len(value)}"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValidationError("dedupe_key", "must not contain control characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError(
            "dedupe_key", "must be valid text (a lone surrogate is not)"
        ) from None
    return value


def check_dedupe_ttl(value: object) -> float:
    """Check `value` as the seconds a dedupe key is remembered.

    Args:
        value: A finite number of seconds above 0, at most
            [`DEDUPE_TTL_MAX`][insider_webpush.models.DEDUPE_TTL_MAX] (a year).

    Returns:
        `value`, as a float.

    Raises:
        ValidationError: It is out of that range (`field` is `"dedupe_ttl"`).
    """
    if not _positive_seconds(value) or float(value) > DEDUPE_TTL_MAX:  # type: ignore[arg-type]
        raise ValidationError(
            "dedupe_ttl",
            f"must be a number of seconds above 0 and at most {DEDUPE_TTL_MAX:.0f} (a year), "
            f"got {value!r}",
        )
    return float(value)  # type: ignore[arg-type]


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
    """How long one attempt of a request may take, in seconds.

    Built with keyword arguments of the attributes' names, each a finite number of seconds
    above 0. A timeout before the first byte was written leaves the request unsent (retried);
    one after it is ambiguous. `total` and `read` are checked by one sweep per event loop, so
    they fire up to 20 ms late. `WebPushClient(timeout=5.0)` is `Timeouts(total=5.0)`.

    Attributes:
        total: One attempt from start to the whole answer, in seconds (default 30): waiting
            for a pooled connection, connecting and the answer. The limiter's wait is not
            counted.
        pool: Getting a connection, in seconds (default 10): waiting for a free one in the
            pool plus opening a new one.
        connect: Opening a new connection, in seconds (default 10): TCP, TLS and a proxy's
            `CONNECT`.
        read: The longest wait for the whole answer once the request is written, in seconds
            (default 30).
        keepalive: How long an idle connection stays in the pool, in seconds (default 4).
            Shorter than the idle timeouts of common servers and gateways (5 s and up), so
            the client retires a connection before the server can close it under a request.

    Raises:
        ValidationError: A value is zero, negative, NaN, infinite or not a number (`field`
            is `"timeout.<name>"`).
    """

    total: float = attrs.field(default=30.0, validator=_seconds)
    pool: float = attrs.field(default=10.0, validator=_seconds)
    connect: float = attrs.field(default=10.0, validator=_seconds)
    read: float = attrs.field(default=30.0, validator=_seconds)
    keepalive: float = attrs.field(default=4.0, validator=_seconds)

    @classmethod
    def of(cls, value: object) -> Timeouts:
        """Read a client's `timeout=` argument.

        Args:
            value: A `Timeouts`, returned as it is, or a number of seconds for `total` (the
                other fields keep their defaults).

        Returns:
            The timeouts.

        Raises:
            ValidationError: `value` is neither, or not a finite number above 0 (`field` is
                `"timeout"`).
        """
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
