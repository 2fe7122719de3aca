"""The wire format: exact dicts out, validated pushes in, response bodies read safely."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insider_webpush import APIError, Draft, LaunchResult, Target, ValidationError, WebPush
from insider_webpush.codec import (
    INCLUDE_UNENGAGED_WIRE_KEY,
    draft_to_dict,
    encode_json,
    encode_push,
    error_message,
    launch_result_from_body,
    push_from_dict,
    push_to_dict,
)

from .samples import IMAGE, MINIMAL_FIELDS, MINIMAL_WIRE, full_push, full_wire

FULL_PUSH = full_push("10000001")
FULL_WIRE = full_wire("10000001")


def minimal_push(**changes: Any) -> WebPush:
    return WebPush(**{**MINIMAL_FIELDS, **changes})


# -- push_to_dict ---------------------------------------------------------------------------


def test_wire_spelling_follows_the_samples() -> None:
    # DESIGN §2: every sample and the Postman collection say "include_unengage".
    assert INCLUDE_UNENGAGED_WIRE_KEY == "include_unengage"


def test_minimal_push_omits_every_optional() -> None:
    wire = push_to_dict(minimal_push())
    assert wire == MINIMAL_WIRE
    assert not ({"banner", "language", "target", "partner_id"} & wire.keys())
    assert not ({"include_unengage", "include_unengaged"} & wire.keys())


def test_full_push_exact_wire_dict() -> None:
    wire = push_to_dict(FULL_PUSH)
    assert wire == FULL_WIRE
    assert "include_unengaged" not in wire
    assert type(wire["target"]["values"]) is list  # a JSON array, not a tuple
    assert json.loads(json.dumps(wire)) == FULL_WIRE


def test_include_unengaged_false_is_sent() -> None:
    assert push_to_dict(minimal_push(include_unengaged=False))[INCLUDE_UNENGAGED_WIRE_KEY] is False


@pytest.mark.parametrize(
    ("ttl", "wire"),
    [(1, "1"), (3600, "3600"), (864_000, "864000"), (dt.timedelta(hours=2), "7200")],
)
def test_ttl_goes_out_as_a_decimal_string(ttl: int | dt.timedelta, wire: str) -> None:
    assert push_to_dict(minimal_push(ttl=ttl))["ttl"] == wire


def test_int_partner_id_goes_out_as_a_string() -> None:
    assert push_to_dict(minimal_push(partner_id=10000001))["partner_id"] == "10000001"


def test_draft_to_dict() -> None:
    assert draft_to_dict(Draft(partner_id=10000001, title="Spring sale")) == {
        "partner_id": "10000001",
        "title": "Spring sale",
        "language": "all_ALL",
        "is_all": False,
    }


# -- push_from_dict -------------------------------------------------------------------------


def test_from_dict_minimal_and_full() -> None:
    assert push_from_dict(MINIMAL_WIRE) == minimal_push()
    assert push_from_dict(FULL_WIRE) == FULL_PUSH


@pytest.mark.parametrize("key", ["include_unengaged", INCLUDE_UNENGAGED_WIRE_KEY])
@pytest.mark.parametrize("value", [True, False])
def test_from_dict_accepts_both_spellings(key: str, value: bool) -> None:
    assert push_from_dict({**MINIMAL_WIRE, key: value}).include_unengaged is value


def test_from_dict_refuses_both_spellings_at_once() -> None:
    data = {**MINIMAL_WIRE, "include_unengaged": True, "include_unengage": True}
    with pytest.raises(ValidationError) as info:
        push_from_dict(data)
    assert info.value.field == "include_unengaged"
    assert "include_unengage'" in info.value.message
    assert "not both" in info.value.message


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**MINIMAL_WIRE, "colour": "red"}, "colour"),
        ({**MINIMAL_WIRE, "is_all": True}, "is_all"),
        ({**MINIMAL_WIRE, 7: "x", "a": 1}, "7"),
        (
            {**MINIMAL_WIRE, "target": {"attribute": "d_x", "values": ["a"], "op": "in"}},
            "target.op",
        ),
    ],
)
def test_from_dict_refuses_unknown_keys_naming_them(data: dict[Any, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict(data)
    assert info.value.field == field
    assert "not a field" in info.value.message


@pytest.mark.parametrize("missing", ["title", "description", "image", "link", "ttl"])
def test_from_dict_names_a_missing_field(missing: str) -> None:
    data = {k: v for k, v in MINIMAL_WIRE.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        push_from_dict(data)
    assert info.value.field == missing
    assert "required" in info.value.message


def test_from_dict_names_a_missing_target_field() -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, "target": {"attribute": "d_x"}})
    assert info.value.field == "target.values"


@pytest.mark.parametrize(("ttl", "expected"), [("1000", 1000), (1000, 1000), ("864000", 864_000)])
def test_from_dict_ttl_string_or_int(ttl: object, expected: int) -> None:
    assert push_from_dict({**MINIMAL_WIRE, "ttl": ttl}).ttl == expected


@pytest.mark.parametrize("ttl", ["0", "864001", "1000.5", " 1000", "-5", "", "1e3", 1000.0, True])
def test_from_dict_bad_ttl(ttl: object) -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, "ttl": ttl})
    assert info.value.field == "ttl"


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", 5), ("description", None), ("image", ["https://x.test"]), ("language", 1)],
)
def test_from_dict_does_not_coerce_to_str(field: str, value: object) -> None:
    # cattrs would happily str(5); the model must judge the real input instead.
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, field: value})
    assert info.value.field == field


def test_from_dict_int_partner_id_becomes_a_string() -> None:
    assert push_from_dict({**MINIMAL_WIRE, "partner_id": 42}).partner_id == "42"


@pytest.mark.parametrize("data", [None, [], "title", 5, [("title", "t")]])
def test_from_dict_refuses_non_objects(data: Any) -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict(data)
    assert info.value.field == "push"


@pytest.mark.parametrize("target", [["d_x", ["a"]], "d_x", 5])
def test_from_dict_refuses_a_non_object_target(target: object) -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, "target": target})
    assert info.value.field == "target"


def test_from_dict_runs_target_rules() -> None:
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, "target": {"attribute": "x_y", "values": ["a"]}})
    assert info.value.field == "target.attribute"
    with pytest.raises(ValidationError) as info:
        push_from_dict({**MINIMAL_WIRE, "target": {"attribute": "d_y", "values": []}})
    assert info.value.field == "target.values"


# -- round trip -------------------------------------------------------------------------------

urls = st.sampled_from([IMAGE, "https://x.test", "https://x.test:8443/a?b=c#d"])
valid_pushes = st.builds(
    WebPush,
    title=st.text(min_size=1, max_size=100),
    description=st.text(min_size=1, max_size=30),
    image=urls,
    link=st.one_of(urls, st.just("http://shop.example.com/")),
    ttl=st.one_of(
        st.integers(1, 864_000),
        st.timedeltas(dt.timedelta(seconds=1), dt.timedelta(hours=240)).map(
            lambda d: dt.timedelta(seconds=int(d.total_seconds()))
        ),
    ),
    banner=st.one_of(st.none(), urls),
    include_unengaged=st.one_of(st.none(), st.booleans()),
    language=st.one_of(st.none(), st.sampled_from(["en_US", "all_ALL"]), st.text(min_size=1)),
    target=st.one_of(
        st.none(),
        st.builds(
            Target,
            st.sampled_from(["d_wp_browser", "c_tier", "d_\u00fc"]),
            st.lists(st.text(max_size=8), min_size=1, max_size=4),
        ),
    ),
    partner_id=st.one_of(st.none(), st.integers(0, 10**12), st.text(min_size=1, max_size=12)),
)


@settings(max_examples=200)
@given(push=valid_pushes)
def test_round_trip(push: WebPush) -> None:
    wire = push_to_dict(push)
    assert push_from_dict(wire) == push
    assert push_from_dict(json.loads(json.dumps(wire))) == push  # through real JSON too
    assert all(value is not None for value in wire.values())
    assert isinstance(wire["ttl"], str)


def test_round_trip_of_the_samples() -> None:
    assert push_to_dict(push_from_dict(FULL_WIRE)) == FULL_WIRE
    assert push_to_dict(push_from_dict(MINIMAL_WIRE)) == MINIMAL_WIRE


# -- responses ------------------------------------------------------------------------------


def test_launch_result_from_success_body() -> None:
    body = {"success": True, "campaign_id": 1697300275}
    assert launch_result_from_body(200, body) == LaunchResult(success=True, campaign_id=1697300275)


def test_launch_result_tolerates_a_numeric_string_id() -> None:
    assert launch_result_from_body(201, {"success": True, "campaign_id": "25696"}).campaign_id == (
        25696
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        ["success", True],
        "OK",
        b"{}",
        5,
        {},
        {"success": False, "campaign_id": 1},
        {"success": True},
        {"campaign_id": 1},
        {"success": True, "campaign_id": None},
        {"success": True, "campaign_id": True},
        {"success": True, "campaign_id": 1.5},
        {"success": True, "campaign_id": "abc"},
        {"success": True, "campaign_id": "-1"},
        {"success": True, "campaign_id": "\u00b2"},  # isdigit() but not int()-able
        {"success": "true", "campaign_id": 1},
        {"success": 1, "campaign_id": 1},
    ],
)
def test_unexpected_success_body_is_an_api_error(body: object) -> None:
    with pytest.raises(APIError) as info:
        launch_result_from_body(200, body)
    assert type(info.value) is APIError
    assert info.value.status == 200
    assert info.value.body == body
    assert info.value.ambiguous  # a 2xx we cannot read may well have launched
    assert "campaign_id" in info.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": "Unauthorized"}, "Unauthorized"),
        ({"message": "SERVICE:-Campaign not found"}, "SERVICE:-Campaign not found"),
        ({"message": 5}, ""),
        ({"error": "x"}, ""),
        ("  quota exceeded \n", "quota exceeded"),
        ("x" * 600, "x" * 500),
        (None, ""),
        ([1, 2], ""),
        (5, ""),
    ],
)
def test_error_message(body: object, message: str) -> None:
    assert error_message(body) == message


# -- the launch body, encoded once --------------------------------------------------------------


@settings(max_examples=300)
@given(
    push=valid_pushes,
    client_partner=st.one_of(st.none(), st.just("10000001"), st.text(min_size=1, max_size=6)),
)
def test_encode_push_is_byte_for_byte_the_generic_encoding(
    push: WebPush, client_partner: str | None
) -> None:
    # The fast encoder and the converter must agree to the byte: the journal hashes these
    # bytes, and FakeInsider reads them with push_from_dict.
    fast = encode_push(push, partner_id=client_partner)
    assert fast == encode_json(push_to_dict(push, partner_id=client_partner))
    assert json.loads(fast) == push_to_dict(push, partner_id=client_partner)


def test_encode_push_escapes_what_json_escapes() -> None:
    push = WebPush(
        title='quote " backslash \\ newline \n tab \t nul \x00 é 😀 \ud800',
        description="d",
        image=IMAGE,
        link="https://example.com",
        ttl=60,
        target=Target("c_x", ['"', "\\", "\u2028"]),
        include_unengaged=False,
    )
    body = encode_push(push, partner_id="1")
    assert body.isascii()
    assert json.loads(body)["title"] == push.title
    assert body == json.dumps(push_to_dict(push, partner_id="1"), separators=(",", ":")).encode()


@pytest.mark.parametrize("campaign_id", [0, -1, 2**63, 2**64, "18446744073709551616"])
def test_a_campaign_id_out_of_range_in_a_success_is_unreadable_and_ambiguous(
    campaign_id: object,
) -> None:
    # A journal keeps ids as signed 64-bit integers; a larger one could never be resumed.
    with pytest.raises(APIError) as info:
        launch_result_from_body(200, {"success": True, "campaign_id": campaign_id})
    assert info.value.ambiguous
