"""`Fault`: a misbehaviour for [`FakeInsider`][insider_webpush.testing.server.FakeInsider] to
inject.

`faults` is a list of [`Fault`][insider_webpush.testing.faults.Fault], checked in order for every
request after its arrival is recorded; the first that matches applies. A fault matches a request
when its `operation` is None or the request's, its `at` is None or holds the request's index
(0-based, over every request the server received), and, when `probability` is above 0, a draw of the
`seed`-ed random generator falls below it. A fault with neither `at` nor a `probability` matches
every request. What a matching fault does:

- `status=N` answers `N` with `{"message": ...}` (a `429` or a `403`, the statistics
  endpoints' throttle, carries `Retry-After` when `retry_after` is set; a `403`'s default
  message is theirs, `"Request limit exceeded"`) instead of processing the request: no key,
  quota or body check, nothing created or launched.
- `drop=True` closes the connection without an answer: the client sees the server
  disconnect (`aiohttp.ServerDisconnectedError`); the record's `status` is `None`.
- `processed=True` (with `status` or `drop`) first processes the request as if there were
  no fault, so a launch that would have succeeded is carried out and recorded in
  `launches`, then answers with the fault: Insider launched the push, the client cannot tell.
- `latency=S` waits `S` seconds before answering. With neither `status` nor `drop` the
  request is processed normally when it arrives and the answer is late, so a client that
  times out has still launched the push. `FakeInsider.close()` cuts such waits short.

[`Fault.parse`][insider_webpush.testing.faults.Fault.parse] reads the one-line form the
`insider-webpush fake-server --fault` option takes, e.g. `"503:0.02"` or `"500@3,processed"`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

import attrs

from ..endpoints import Operation
from ..errors import ValidationError

__all__ = ["Fault"]

_OPERATIONS: Final = ", ".join(op.value for op in Operation)
_OPTIONS: Final = "latency=SECONDS, retry-after=SECONDS, processed or op=OPERATION"
_SECONDS_OPTIONS: Final = {"latency": "latency", "retry-after": "retry_after"}
_THROTTLES: Final = frozenset({403, 429})  # statuses that carry Retry-After (403: statistics)


def _indices(value: Iterable[int] | int | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset({value}) if isinstance(value, int) else frozenset(value)


def _check_indices(
    _inst: object, _attr: attrs.Attribute[Any], value: frozenset[int] | None
) -> None:
    if value is not None and any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in value
    ):
        raise ValidationError(
            "at", f"must hold request indices (ints >= 0), got {sorted(value, key=repr)!r}"
        )


def _check_seconds(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (
        isinstance(value, int | float) and math.isfinite(value) and value >= 0
    ):
        raise ValidationError(attr.name, f"must be a finite number of seconds >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """A misbehaviour for [`FakeInsider`][insider_webpush.testing.server.FakeInsider] to inject.

    `Fault(status=500, at={3})` answers the fourth request with a 500,
    `Fault(drop=True, probability=0.01)` drops 1 % of connections, and
    `Fault(status=500, processed=True, operation=Operation.LAUNCH_V2, probability=0.05)`
    launches 5 % of pushes and still answers 500. The module docs say how faults match.

    Args:
        status (int | None): answer this HTTP status (100-599) instead of the server; default
            None (no status of its own).
        drop (bool): close the connection without an answer; not with `status`. Default False.
        latency (float): seconds to wait before answering, >= 0; default 0.
        at (int | Iterable[int] | None): request indices (0-based, in order of arrival) the
            fault applies to; default None (any).
        probability (float): 0 to 1; above 0, the share of matching requests picked at random
            (by the fake's `seed`); default 0 (every matching request).
        processed (bool): carry the request out first, then fail; default False.
        retry_after (float | None): seconds for the `Retry-After` header of a 429 or 403
            fault; default None (no header).
        operation (Operation | None): only requests of this operation; default None (any).
        message (str | None): the error body's message; default None, a message per status.

    Raises:
        ValidationError: a value out of its range, or both `status` and `drop`.
        TypeError: `operation` is not an [`Operation`][insider_webpush.endpoints.Operation].
    """

    status: int | None = attrs.field(default=None)
    drop: bool = False
    latency: float = attrs.field(default=0.0, validator=_check_seconds)
    at: frozenset[int] | None = attrs.field(
        default=None, converter=_indices, validator=_check_indices
    )
    probability: float = attrs.field(default=0.0)
    processed: bool = False
    retry_after: float | None = attrs.field(default=None, validator=_check_seconds)
    operation: Operation | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Operation))
    )
    message: str | None = None

    @status.validator
    def _check_status(self, _attr: attrs.Attribute[Any], value: int | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            raise ValidationError("status", f"must be an HTTP status code, got {value!r}")
        if self.drop:
            raise ValidationError(
                "status", "a fault either answers a status or drops the connection, not both"
            )

    @probability.validator
    def _check_probability(self, _attr: attrs.Attribute[Any], value: float) -> None:
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValidationError("probability", f"must be between 0 and 1, got {value!r}")

    @property
    def replaces_answer(self) -> bool:
        """True when the fault answers (or drops) instead of the server."""
        return self.drop or self.status is not None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Read a fault from its one-line form, as `fake-server --fault` takes it.

        The form is `WHAT[:PROBABILITY][@INDEX][,OPTION...]`. `WHAT` is an HTTP error
        status (400-599), `drop` (close the connection without an answer) or `slow`
        (answer normally, late: needs `latency`). `PROBABILITY` (more than 0, at most 1)
        picks requests at random; `@INDEX` picks the request with that index (0 is the
        first); with neither, every request. Each `OPTION` is `latency=SECONDS` (wait
        before answering), `retry-after=SECONDS` (a 429's header), `processed` (carry the
        request out, then fail) or `op=OPERATION` (only `create`, `launch_v1`,
        `launch_v2`, `delete`, `campaign_metrics`, `overall_metrics` or `top_metrics`
        requests). Examples: `"503:0.02"`, `"drop:0.01"`, `"429:0.05,retry-after=1"`,
        `"500@3,processed"`, `"slow:0.1,latency=2"`, `"403,retry-after=2,op=top_metrics"`.

        Args:
            spec (str): the one-line form.

        Returns:
            Fault: the fault it describes.

        Raises:
            ValidationError: `field` is `"fault"`; the message names the part that is
                wrong and the values it takes, e.g. `WHAT must be an HTTP error status
                (400-599), 'drop' or 'slow', not 'bogus'`.
        """
        if not isinstance(spec, str):
            raise ValidationError("fault", f"must be a string, not {type(spec).__name__}")
        head, *options = (part.strip() for part in spec.split(","))
        what, _, index = head.partition("@")
        what, has_probability, probability = what.partition(":")
        kwargs: dict[str, Any] = {}
        if what == "drop":
            kwargs["drop"] = True
        elif what != "slow":
            kwargs["status"] = _error_status(what)
        if has_probability:
            kwargs["probability"] = _probability(probability)
        if "@" in head:
            kwargs["at"] = {_index(index)}
        for option in options:
            name, eq, value = option.partition("=")
            parsed: object
            if name == "processed" and not eq:
                key, parsed = "processed", True
            elif name == "op" and eq:
                key, parsed = "operation", _operation(value)
            elif name in _SECONDS_OPTIONS and eq:
                key, parsed = _SECONDS_OPTIONS[name], _seconds(name, value)
            elif name in {"processed", "op", *_SECONDS_OPTIONS}:
                form = "processed" if name == "processed" else f"{name}=..."
                raise ValidationError("fault", f"write the option {name!r} as {form}")
            else:
                raise ValidationError("fault", f"unknown option {option!r}: OPTION is {_OPTIONS}")
            if key in kwargs:
                raise ValidationError("fault", f"the option {name!r} is given twice")
            kwargs[key] = parsed
        if what == "slow" and "latency" not in kwargs:
            raise ValidationError("fault", "'slow' needs latency=SECONDS, e.g. slow,latency=2")
        if "retry_after" in kwargs and kwargs.get("status") not in _THROTTLES:
            raise ValidationError("fault", "retry-after=SECONDS goes with a 429 or a 403 only")
        return cls(**kwargs)


def _error_status(text: str) -> int:
    if text.isascii() and text.isdigit() and 400 <= int(text) <= 599:
        return int(text)
    hint = " (OPTIONs come after a comma, e.g. slow,latency=2)" if "=" in text else ""
    raise ValidationError(
        "fault",
        f"WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not {text!r}" + hint,
    )


def _probability(text: str) -> float:
    value = _number(text)
    if value is None or not 0 < value <= 1:  # 0 would mean "every request" to Fault
        raise ValidationError(
            "fault", f"PROBABILITY must be a number more than 0 and at most 1, not {text!r}"
        )
    return value


def _index(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValidationError(
            "fault", f"@INDEX must be a request index, a whole number from 0 up, not {text!r}"
        )
    return int(text)


def _seconds(name: str, text: str) -> float:
    value = _number(text)
    if value is None or value < 0:
        raise ValidationError("fault", f"{name} must be a number of seconds >= 0, not {text!r}")
    return value


def _operation(text: str) -> Operation:
    try:
        return Operation(text)
    except ValueError:
        raise ValidationError("fault", f"op must be one of {_OPERATIONS}, not {text!r}") from None


def _number(text: str) -> float | None:
    """`text` as a finite float; None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
