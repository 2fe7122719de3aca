"""The one place that knows the wire: JSON names, omitted optionals, ttl as a string.

Everything goes through one cattrs `Converter`. Structuring passes values through
untouched (no `str(5)` coercion) so that the models' validators judge the real input.

A launch body, as Insider's samples send it:

```json
{"title": "Sale", "description": "50% off", "image": "https://example.com/i.png",
 "link": "https://example.com/sale", "ttl": "3600", "include_unengage": true,
 "target": {"attribute": "d_wp_browser", "values": ["Edg"]}, "partner_id": "10000001"}
```

`ttl` goes out as a decimal string of seconds; a field that is None is left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..errors import APIError, ValidationError
from ..models import CAMPAIGN_ID_MAX, TTL_MAX_SECONDS, Draft, LaunchResult, Target, WebPush
from ..outcomes import Stage, verdict_for_stage
from .statistics import field_errors

__all__ = [
    "INCLUDE_UNENGAGED_PYTHON_KEY",
    "INCLUDE_UNENGAGED_WIRE_KEY",
    "TARGET_KEY",
    "converter",
    "decode_json",
    "delete_body",
    "draft_from_dict",
    "draft_to_dict",
    "encode_json",
    "encode_push",
    "error_body",
    "error_message",
    "field_errors",
    "launch_result_from_body",
    "partner_id_from_delete_body",
    "push_from_dict",
    "push_to_dict",
    "result_to_body",
    "target_to_dict",
]

INCLUDE_UNENGAGED_WIRE_KEY = "include_unengage"
"""The key `WebPush.include_unengaged` is sent under. Insider's parameter table says
`include_unengaged`; every sample and Insider's Postman collection send `include_unengage`.
We follow the samples (what the live API was shown to take); change this one constant if
Insider says otherwise."""
INCLUDE_UNENGAGED_PYTHON_KEY = _PYTHON_ONLY_SPELLING = "include_unengaged"
"""The parameter table's spelling, also accepted by `push_from_dict`."""
_TARGET_FIELDS = frozenset(a.name for a in attrs.fields(Target))
PUSH_WIRE_KEYS = tuple(
    INCLUDE_UNENGAGED_WIRE_KEY if a.name == _PYTHON_ONLY_SPELLING else a.name
    for a in attrs.fields(WebPush)
)  # a launch body's keys, in the model's order

converter = cattrs.Converter()
"""The one cattrs converter between the models and the wire's dicts."""


def _passthrough(value: Any, _type: Any) -> Any:
    return value


def _ttl_from_wire(value: Any, _type: Any) -> Any:
    # The wire carries ttl as a decimal string ("1000"); a JSON file may hold an int.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):  # said in a file's terms
        raise ValidationError(
            "ttl", f"must be a whole number of seconds, at most {TTL_MAX_SECONDS}"
        )
    return value


for _type in (str, int, bool):
    converter.register_structure_hook(_type, _passthrough)

converter.register_unstructure_hook(
    Target,
    make_dict_unstructure_fn(Target, converter, values=override(unstruct_hook=list)),
)
converter.register_unstructure_hook(
    WebPush,
    make_dict_unstructure_fn(
        WebPush,
        converter,
        _cattrs_omit_if_default=True,  # every optional defaults to None: None is never sent
        ttl=override(unstruct_hook=str),
        include_unengaged=override(rename=INCLUDE_UNENGAGED_WIRE_KEY),
    ),
)
converter.register_structure_hook(
    WebPush,
    make_dict_structure_fn(
        WebPush,
        converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=False,
        ttl=override(struct_hook=_ttl_from_wire),
        include_unengaged=override(rename=INCLUDE_UNENGAGED_WIRE_KEY),
    ),
)
converter.register_structure_hook(
    Target,
    make_dict_structure_fn(
        Target,
        converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=False,
        values=override(struct_hook=_passthrough),  # the model checks the list itself
    ),
)
converter.register_unstructure_hook(Draft, make_dict_unstructure_fn(Draft, converter))


_dumps = json.JSONEncoder(separators=(",", ":")).encode  # ASCII: a lone surrogate stays valid


def encode_json(value: object) -> bytes:
    """Encode `value` as compact JSON (no spaces; non-ASCII escaped), as UTF-8 bytes.

    Args:
        value: Anything `json` encodes.

    Returns:
        The exact bytes a request carries.

    Raises:
        TypeError: `value` holds something JSON cannot encode.
    """
    return _dumps(value).encode()


_quote = json.encoder.encode_basestring_ascii  # json.dumps's own string escaping, in C


def encode_push(push: WebPush, *, partner_id: str | None = None) -> bytes:
    """The launch body of `push`, as bytes.

    Exactly `encode_json(push_to_dict(push, partner_id=partner_id))` (a test holds the two
    equal), built without the intermediate dict. This runs on every launch, and a generic
    encoder costs several times more. With the `speed` extra (orjson) installed, orjson
    encodes it when its bytes are these bytes (every text ASCII and no DEL, which only the
    standard library escapes), about a third faster; otherwise the standard library does: the
    bytes never depend on the extra, so a journal begun without it goes on with it.

    Args:
        push: The push.
        partner_id: An already validated partner id (e.g. the client's) for a push that has
            none; None by default.

    Returns:
        The body's bytes.
    """
    if partner_id is not None and not isinstance(partner_id, str):
        # Refused on both paths alike (orjson would write a number where json refuses).
        raise TypeError(f"partner_id must be a str, not {type(partner_id).__name__}")
    partner_id = push.partner_id if push.partner_id is not None else partner_id
    if _orjson_dumps is not None:
        # The body as a dict in the key order below.
        fields: dict[str, object] = {
            "title": push.title,
            "description": push.description,
            "image": push.image,
            "link": push.link,
            "ttl": str(push.ttl),
        }
        if push.banner is not None:
            fields["banner"] = push.banner
        if push.include_unengaged is not None:
            fields[INCLUDE_UNENGAGED_WIRE_KEY] = push.include_unengaged
        if push.language is not None:
            fields["language"] = push.language
        if push.target is not None:
            fields["target"] = {"attribute": push.target.attribute, "values": push.target.values}
        if partner_id is not None:
            fields["partner_id"] = partner_id
        try:
            body = _orjson_dumps(fields)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate; the stdlib escapes it
            pass
        else:
            if body.isascii() and b"\x7f" not in body:
                return body
    parts = [
        '{"title":',
        _quote(push.title),
        ',"description":',
        _quote(push.description),
        ',"image":',
        _quote(push.image),
        ',"link":',
        _quote(push.link),
        ',"ttl":"',
        str(push.ttl),
        '"',
    ]
    if push.banner is not None:
        parts += (',"banner":', _quote(push.banner))
    if push.include_unengaged is not None:
        parts += (_UNENGAGED, "true" if push.include_unengaged else "false")
    if push.language is not None:
        parts += (',"language":', _quote(push.language))
    target = push.target
    if target is not None:
        parts += (
            ',"target":{"attribute":',
            _quote(target.attribute),
            ',"values":[',
            ",".join(map(_quote, target.values)),
            "]}",
        )
    if partner_id is not None:
        parts += (',"partner_id":', _quote(partner_id))
    parts.append("}")
    return "".join(parts).encode()


_UNENGAGED = f',"{INCLUDE_UNENGAGED_WIRE_KEY}":'


def decode_json(raw: bytes) -> object:
    """Decode a response body.

    With the `speed` extra (orjson) installed, orjson reads it, and what orjson refuses that
    the standard library reads (`NaN`, `Infinity`) is read by the standard library. One
    difference remains: orjson reads a whole number beyond 64 bits as a float, the standard
    library as an `int`; no answer the SDK reads holds one (an id or a figure that large is
    refused either way).

    Args:
        raw: The body's bytes.

    Returns:
        Its JSON; the text itself (undecodable bytes replaced) when it is not JSON; None
            when it is empty.
    """
    if not raw:
        return None
    if _orjson_loads is not None:
        try:
            return _orjson_loads(raw)
        except ValueError:  # orjson.JSONDecodeError: the standard library decides
            pass
    try:
        # Decoding first skips json's encoding sniffing (~0.5 us a request); JSON is UTF-8.
        return json.loads(raw.decode())
    except ValueError:  # not UTF-8, or not JSON
        return raw.decode("utf-8", "replace")


def _orjson() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]] | tuple[None, None]:
    """orjson's `loads` and `dumps` with the `speed` extra installed (~10x faster on every
    answer, a third on every launch body), else None."""
    try:
        import orjson
    except ImportError:
        return None, None
    return orjson.loads, orjson.dumps


_orjson_loads, _orjson_dumps = _orjson()


def push_to_dict(push: WebPush, *, partner_id: str | None = None) -> dict[str, Any]:
    """The JSON body of a launch, with wire names and no `None` fields.

    Args:
        push: The push.
        partner_id: An already validated partner id (e.g. the client's) that fills a push
            that has none: cheaper than `attrs.evolve`, which would validate the whole push
            again on every send. None by default.

    Returns:
        The body as a dict: `ttl` a decimal string, `target` a dict with a list of values,
            `include_unengaged` under
            [`INCLUDE_UNENGAGED_WIRE_KEY`][insider_webpush.codec.INCLUDE_UNENGAGED_WIRE_KEY].
    """
    body: dict[str, Any] = converter.unstructure(push, WebPush)
    if push.partner_id is None and partner_id is not None:
        body["partner_id"] = partner_id
    return body


def push_from_dict(data: Mapping[str, Any]) -> WebPush:
    """A validated push from a wire-shaped dict (e.g. a line of a JSON file).

    Args:
        data: The push's fields by their wire names. `ttl` may be an `int` or a string of
            digits; `include_unengaged` is accepted in either spelling (not both); `target`
            is `{"attribute": ..., "values": [...]}`.

    Returns:
        The [`WebPush`][insider_webpush.models.WebPush].

    Raises:
        ValidationError: `data` is not a mapping, or a field is missing, unknown or
            invalid; `field` names it (`"target.values"` for a target's).
    """
    if not isinstance(data, Mapping):
        raise ValidationError("push", f"must be a JSON object, not {type(data).__name__}")
    data = dict(data)
    if _PYTHON_ONLY_SPELLING in data:
        if INCLUDE_UNENGAGED_WIRE_KEY in data:
            raise ValidationError(
                _PYTHON_ONLY_SPELLING,
                f"give {_PYTHON_ONLY_SPELLING!r} or {INCLUDE_UNENGAGED_WIRE_KEY!r}, not both",
            )
        data[INCLUDE_UNENGAGED_WIRE_KEY] = data.pop(_PYTHON_ONLY_SPELLING)
    target = data.get("target")
    if target is not None and not isinstance(target, Mapping | Target):
        raise ValidationError("target", "must be an object with 'attribute' and 'values'")
    try:
        return converter.structure(data, WebPush)
    except ValidationError:
        raise
    except cattrs.ForbiddenExtraKeysError as exc:
        field = sorted(map(str, exc.extra_fields))[0]  # keys of any type, e.g. 1 and 'a'
        if exc.cl is Target:
            field = f"target.{field}"
        raise ValidationError(field, "is not a field of a web push") from None
    except KeyError as exc:
        field = str(exc.args[0])
        if field in _TARGET_FIELDS:
            field = f"target.{field}"
        raise ValidationError(field, "is required") from None
    except (TypeError, ValueError) as exc:
        raise ValidationError("push", f"cannot be read: {exc}") from None


def draft_to_dict(draft: Draft) -> dict[str, Any]:
    """The JSON body of a `create`.

    Args:
        draft: The draft.

    Returns:
        `{"partner_id", "title", "language", "is_all"}`.
    """
    return converter.unstructure(draft, Draft)  # type: ignore[no-any-return]


def draft_from_dict(data: object) -> Draft:
    """A validated draft from a `create` body (FakeInsider reads requests with it).

    Args:
        data: The decoded body.

    Returns:
        The [`Draft`][insider_webpush.models.Draft].

    Raises:
        ValidationError: `data` is not a mapping, or a field is missing, unknown or
            invalid; `field` names it.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    fields = attrs.fields_dict(Draft)
    for name in data:
        if name not in fields:
            raise ValidationError(str(name), "is not a field of a draft")
    for name, field in fields.items():
        if field.default is attrs.NOTHING and name not in data:
            raise ValidationError(name, "is required")
    return Draft(**data)


_PARTNER_ID_KEY = "partner_id"


def delete_body(partner_id: str) -> dict[str, Any]:
    """The JSON body of a `delete`.

    Args:
        partner_id: The partner id.

    Returns:
        `{"partner_id": partner_id}`.
    """
    return {_PARTNER_ID_KEY: partner_id}


def partner_id_from_delete_body(data: object) -> str:
    """The partner id of a `delete` body, validated as a draft's.

    Args:
        data: The decoded body.

    Returns:
        The partner id, as a string.

    Raises:
        ValidationError: `data` is not a mapping, or its `partner_id` is missing or invalid.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object")
    if _PARTNER_ID_KEY not in data:
        raise ValidationError(_PARTNER_ID_KEY, "is required")
    return Draft(partner_id=data[_PARTNER_ID_KEY], title="-").partner_id


def result_to_body(result: LaunchResult) -> dict[str, Any]:
    """The success body Insider answers with (FakeInsider speaks it); `replayed` is ours,
    not Insider's, and is left out."""
    body: dict[str, Any] = converter.unstructure(result, LaunchResult)
    body.pop("replayed", None)
    return body


def error_body(message: str) -> dict[str, Any]:
    """An error body as Insider sends it, e.g. `{"message": "Unauthorized"}`.

    Args:
        message: The message.

    Returns:
        `{"message": message}`.
    """
    return {"message": message}


TARGET_KEY = "target"


def target_to_dict(attribute: object, values: object) -> dict[str, Any]:
    """A target's wire shape from loose parts (e.g. two CSV columns); checked on structuring."""
    return {"attribute": attribute, "values": values}


_DICT_OR_MAPPING = (dict, Mapping)


def launch_result_from_body(status: int, body: object) -> LaunchResult:
    """Read a success body, Insider's `{"success": true, "campaign_id": 1697300275}`.

    Args:
        status: The answer's HTTP status, for the error.
        body: The decoded body; `campaign_id` may be an `int` or a string of digits.

    Returns:
        The [`LaunchResult`][insider_webpush.models.LaunchResult].

    Raises:
        APIError: The body is not that shape, or the id is not a positive 64-bit integer;
            ambiguous, since the request was carried out or not with no answer we can read.
    """
    # On every launch: dict before the Mapping ABC, and LaunchResult's arguments by
    # position, are ~0.3 us a request cheaper (benchmarks/overhead.py).
    if isinstance(body, _DICT_OR_MAPPING):
        success = body.get("success")
        campaign_id = body.get("campaign_id")
        if (
            success is True
            and isinstance(campaign_id, int)
            and not isinstance(campaign_id, bool)
            and 0 < campaign_id <= CAMPAIGN_ID_MAX
        ):
            return LaunchResult(True, campaign_id)
        if (
            success is True
            and isinstance(campaign_id, str)
            and campaign_id.isascii()  # str.isdigit() also takes '²', which int() refuses
            and campaign_id.isdigit()
            and 0 < int(campaign_id) <= CAMPAIGN_ID_MAX
        ):
            return LaunchResult(success=True, campaign_id=int(campaign_id))
    raise APIError(
        status,
        "unexpected response body: expected {'success': true, 'campaign_id': <a positive "
        "64-bit int>}",
        body=body,
        # Sent, and no answer we can read: the outcome table's verdict for that (ambiguous).
        ambiguous=verdict_for_stage(Stage.SENT).ambiguous,
    )


def error_message(body: object) -> str:
    """The human message of an error body.

    Args:
        body: The decoded body: Insider's `{"message": "..."}`, a statistics endpoint's
            `{"status_code": 422, "errors": {field: [messages]}}`, or plain text.

    Returns:
        The message (a 422's fields and messages as `"field: message; ..."`); plain text
            stripped and cut to 500 characters; empty when there is none.
    """
    if isinstance(body, Mapping):
        value = body.get("message")
        if isinstance(value, str):
            return value
        errors = field_errors(body)
        if errors:
            return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        listed = body.get("errors")  # a list of messages, with no field to file them under
        if isinstance(listed, list):
            return "; ".join(str(m) for m in listed)[:500]
        return ""
    if isinstance(body, str):
        return body.strip()[:500]
    return ""
