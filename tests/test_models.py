"""Every documented rule of the models, at and just past each limit, plus fuzzing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from insider_webpush import Draft, LaunchResult, Target, ValidationError, WebPush
from insider_webpush.codec import push_from_dict, push_to_dict

VALID: dict[str, Any] = {
    "title": "Flash sale",
    "description": "Everything half price today",
    "image": "https://img.example.com/icon.png",
    "link": "https://shop.example.com/sale",
    "ttl": 3600,
}
PUSH_FIELDS = {a.name for a in attrs.fields(WebPush)}
TARGET_FIELDS = {"target.attribute", "target.values"}


def push(**changes: Any) -> WebPush:
    return WebPush(**{**VALID, **changes})


def invalid(field: str, *in_message: str, make: Callable[[], object]) -> ValidationError:
    """``make()`` must raise a ValidationError for ``field`` whose message names the limit."""
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.field == field
    for words in in_message:
        assert words in info.value.message
    return info.value


# -- title: 1..100 ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 50, 100])
def test_title_within_limit(length: int) -> None:
    assert push(title="t" * length).title == "t" * length


def test_title_over_limit() -> None:
    invalid("title", "100", "101", make=lambda: push(title="t" * 101))


def test_title_empty() -> None:
    invalid("title", "empty", make=lambda: push(title=""))


@pytest.mark.parametrize("value", [None, 5, b"bytes", ["t"]])
def test_title_must_be_text(value: object) -> None:
    invalid("title", "string", make=lambda: push(title=value))


# -- description: <= 255, <= 30 with a banner -------------------------------------------------


def test_description_at_limit() -> None:
    assert len(push(description="d" * 255).description) == 255


def test_description_over_limit() -> None:
    invalid("description", "255", "256", make=lambda: push(description="d" * 256))


def test_description_empty() -> None:
    invalid("description", "empty", make=lambda: push(description=""))


def test_description_with_banner_at_limit() -> None:
    p = push(description="d" * 30, banner="https://img.example.com/banner.png")
    assert p.banner == "https://img.example.com/banner.png"


def test_description_with_banner_over_limit() -> None:
    invalid(
        "description",
        "30",
        "banner",
        make=lambda: push(description="d" * 31, banner="https://img.example.com/b.png"),
    )


def test_description_without_banner_may_exceed_banner_limit() -> None:
    assert len(push(description="d" * 31).description) == 31


# -- image and banner: https only; link: absolute http(s) ------------------------------------

NOT_HTTPS = [
    "http://img.example.com/i.png",
    "ftp://img.example.com/i.png",
    "//img.example.com/i.png",
    "img.example.com/i.png",
    "https://",
    "https:///path-only.png",
    "https://img.example.com/a b.png",
    "https://[::1",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("url", ["https://img.example.com/i.png", "HTTPS://IMG.EXAMPLE.COM/i"])
@pytest.mark.parametrize("field", ["image", "banner"])
def test_https_url_accepted(field: str, url: str) -> None:
    assert getattr(push(**{field: url, "description": "short"}), field) == url


@pytest.mark.parametrize("url", NOT_HTTPS)
@pytest.mark.parametrize("field", ["image", "banner"])
def test_non_https_url_refused(field: str, url: str) -> None:
    invalid(field, make=lambda: push(**{field: url, "description": "short"}))


@pytest.mark.parametrize("field", ["image", "banner"])
def test_http_url_refused_naming_https(field: str) -> None:
    invalid(field, "https://", make=lambda: push(**{field: "http://x.example.com/i.png"}))


def test_image_required_and_banner_optional() -> None:
    invalid("image", "empty", make=lambda: push(image=""))
    assert push().banner is None


@pytest.mark.parametrize("url", ["https://shop.example.com/", "http://shop.example.com/x?y=1#z"])
def test_link_http_or_https_accepted(url: str) -> None:
    assert push(link=url).link == url


@pytest.mark.parametrize(
    "url",
    [
        "/relative/path",
        "shop.example.com",
        "ftp://shop.example.com/",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "https://",
        "https://shop example.com/",
    ],
)
def test_link_must_be_absolute_http(url: str) -> None:
    invalid("link", "http://", "https://", make=lambda: push(link=url))


# -- ttl: int seconds or timedelta, 0 < ttl <= 864000 ----------------------------------------


@pytest.mark.parametrize("ttl", [1, 1000, 864_000])
def test_ttl_int_within_limit(ttl: int) -> None:
    assert push(ttl=ttl).ttl == ttl


@pytest.mark.parametrize("ttl", [864_001, 10**12])
def test_ttl_over_limit(ttl: int) -> None:
    invalid("ttl", "864000", "240 hours", make=lambda: push(ttl=ttl))


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(ttl: int) -> None:
    invalid("ttl", "more than 0", make=lambda: push(ttl=ttl))


@pytest.mark.parametrize(
    ("delta", "seconds"),
    [
        (dt.timedelta(seconds=1), 1),
        (dt.timedelta(hours=1), 3600),
        (dt.timedelta(hours=240), 864_000),
        (dt.timedelta(days=10), 864_000),
    ],
)
def test_ttl_timedelta_becomes_int_seconds(delta: dt.timedelta, seconds: int) -> None:
    ttl = push(ttl=delta).ttl
    assert ttl == seconds
    assert type(ttl) is int


def test_ttl_timedelta_over_limit() -> None:
    invalid("ttl", "864000", make=lambda: push(ttl=dt.timedelta(hours=240, seconds=1)))


@pytest.mark.parametrize("delta", [dt.timedelta(0), dt.timedelta(seconds=-5)])
def test_ttl_timedelta_must_be_positive(delta: dt.timedelta) -> None:
    invalid("ttl", "more than 0", make=lambda: push(ttl=delta))


@pytest.mark.parametrize(
    "delta",
    [
        dt.timedelta(seconds=1.5),
        dt.timedelta(milliseconds=1),
        dt.timedelta(hours=1, microseconds=1),
    ],
)
def test_ttl_fractional_timedelta_refused(delta: dt.timedelta) -> None:
    invalid("ttl", "whole seconds", make=lambda: push(ttl=delta))


@pytest.mark.parametrize("ttl", [True, False])
def test_ttl_bool_refused(ttl: bool) -> None:
    invalid("ttl", "whole seconds", make=lambda: push(ttl=ttl))


@pytest.mark.parametrize("ttl", [3600.0, "3600", None, [3600]])
def test_ttl_other_types_refused(ttl: object) -> None:
    invalid("ttl", "int", "timedelta", make=lambda: push(ttl=ttl))


# -- target: attribute d_/c_, values a non-empty list of strings ------------------------------


@pytest.mark.parametrize("attribute", ["d_wp_browser", "c_loyalty_tier", "d_x"])
def test_target_attribute_prefixes(attribute: str) -> None:
    assert Target(attribute, ["Edg"]).attribute == attribute


@pytest.mark.parametrize("attribute", ["wp_browser", "x_browser", "d_", "c_", "", "_d_x", 5, None])
def test_target_attribute_refused(attribute: object) -> None:
    invalid("target.attribute", "d_", "c_", make=lambda: Target(attribute, ["Edg"]))  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [["Edg"], ("Edg", "Chrome"), ["a"] * 50])
def test_target_values_list_of_strings(values: Any) -> None:
    target = Target("d_wp_browser", values)
    assert target.values == tuple(values)
    assert push(target=target).target == target


@pytest.mark.parametrize("values", [[], ()])
def test_target_values_empty_refused(values: Any) -> None:
    invalid("target.values", "non-empty", make=lambda: Target("d_wp_browser", values))


@pytest.mark.parametrize("values", [["Edg", 1], [None], [["Edg"]], [b"Edg"]])
def test_target_values_non_strings_refused(values: Any) -> None:
    invalid("target.values", "strings", make=lambda: Target("d_wp_browser", values))


@pytest.mark.parametrize("values", ["Edg", None, 5, {"Edg"}, {"Edg": 1}])
def test_target_values_not_a_list_refused(values: Any) -> None:
    invalid("target.values", "list", make=lambda: Target("d_wp_browser", values))


@pytest.mark.parametrize("target", [{"attribute": "d_x", "values": ["a"]}, "d_x", 5])
def test_push_target_must_be_a_target(target: object) -> None:
    invalid("target", "Target", make=lambda: push(target=target))


# -- partner_id: non-empty string; an int is stringified; a bool is not an int ----------------


def test_partner_id_string() -> None:
    assert push(partner_id="10000001").partner_id == "10000001"
    assert Draft(partner_id="1", title="t").partner_id == "1"


@pytest.mark.parametrize("make", [push, lambda **kw: Draft(title="t", **kw)])
def test_partner_id_int_is_stringified(make: Callable[..., Any]) -> None:
    assert make(partner_id=10000001).partner_id == "10000001"


@pytest.mark.parametrize("make", [push, lambda **kw: Draft(title="t", **kw)])
def test_partner_id_empty_refused(make: Callable[..., Any]) -> None:
    invalid("partner_id", "empty", make=lambda: make(partner_id=""))


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("make", [push, lambda **kw: Draft(title="t", **kw)])
def test_partner_id_bool_refused(make: Callable[..., Any], value: bool) -> None:
    invalid("partner_id", "string", make=lambda: make(partner_id=value))


@pytest.mark.parametrize("value", [1.5, b"1", ["1"]])
def test_partner_id_other_types_refused(value: object) -> None:
    invalid("partner_id", "string", make=lambda: push(partner_id=value))


def test_partner_id_optional_on_push_required_on_draft() -> None:
    assert push().partner_id is None
    invalid("partner_id", make=lambda: Draft(partner_id=None, title="t"))  # type: ignore[arg-type]


# -- the optional fields and Draft ------------------------------------------------------------


def test_include_unengaged_must_be_bool() -> None:
    assert push(include_unengaged=True).include_unengaged is True
    assert push(include_unengaged=False).include_unengaged is False
    invalid("include_unengaged", "true or false", make=lambda: push(include_unengaged=1))
    invalid("include_unengaged", "true or false", make=lambda: push(include_unengaged="true"))


def test_language_non_empty_string() -> None:
    assert push(language="en_US").language == "en_US"
    invalid("language", "empty", make=lambda: push(language=""))
    invalid("language", "string", make=lambda: push(language=1))


def test_draft_rules() -> None:
    draft = Draft(partner_id=1, title="t" * 100)
    assert (draft.partner_id, draft.language, draft.is_all) == ("1", "all_ALL", False)
    invalid("title", "100", make=lambda: Draft(partner_id="1", title="t" * 101))
    invalid("title", "empty", make=lambda: Draft(partner_id="1", title=""))
    invalid("is_all", "true or false", make=lambda: Draft(partner_id="1", title="t", is_all=1))
    invalid("language", "empty", make=lambda: Draft(partner_id="1", title="t", language=""))


def test_models_are_frozen() -> None:
    p = push()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.title = "other"  # type: ignore[misc]
    assert LaunchResult(success=True, campaign_id=5) == LaunchResult(True, 5)


# -- fuzzing: only ValidationError (or success) ever comes out --------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-2, max_value=900_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.binary(max_size=10),
    st.timedeltas(),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(hours=241)),
    st.sampled_from(
        [
            "https://img.example.com/i.png",
            "http://img.example.com/i.png",
            "https://[::1",
            "d_wp_browser",
            "c_",
            "1000",
            "",
        ]
    ),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4),
    ),
    max_leaves=8,
)
valid_target = st.builds(
    Target,
    st.sampled_from(["d_wp_browser", "c_tier"]),
    st.lists(st.text(max_size=5), min_size=1, max_size=3),
)
https_urls = st.sampled_from(["https://img.example.com/i.png", "https://x.test"])
valid_push_fields: dict[str, st.SearchStrategy[Any]] = {
    "title": st.text(min_size=1, max_size=100),
    "description": st.text(min_size=1, max_size=30),
    "image": https_urls,
    "link": st.sampled_from(["https://shop.example.com/", "http://127.0.0.1:8080/a"]),
    "ttl": st.one_of(
        st.integers(1, 864_000), st.timedeltas(dt.timedelta(seconds=1), dt.timedelta(hours=240))
    ).filter(lambda t: not isinstance(t, dt.timedelta) or not t.microseconds),
    "banner": st.one_of(st.none(), https_urls),
    "include_unengaged": st.one_of(st.none(), st.booleans()),
    "language": st.one_of(st.none(), st.sampled_from(["en_US", "tr_TR"])),
    "target": st.one_of(st.none(), valid_target),
    "partner_id": st.one_of(st.none(), st.integers(0, 10**9), st.text(min_size=1, max_size=9)),
}
valid_draft_fields: dict[str, st.SearchStrategy[Any]] = {
    "partner_id": st.one_of(st.integers(0, 10**9), st.text(min_size=1, max_size=9)),
    "title": st.text(min_size=1, max_size=100),
    "language": st.sampled_from(["all_ALL", "en_US"]),
    "is_all": st.booleans(),
}


@st.composite
def fields_with_some_broken(
    draw: st.DrawFn, valid: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """A valid set of fields, then up to three of them replaced by anything at all."""
    fields = {name: draw(strategy) for name, strategy in valid.items()}
    for name in draw(st.lists(st.sampled_from(sorted(valid)), max_size=3, unique=True)):
        fields[name] = draw(anything)
    return fields


def attempt(make: Callable[[], object]) -> object:
    """What ``make()`` returns, or the ValidationError it raised (anything else propagates)."""
    try:
        return make()
    except ValidationError as exc:
        return exc


@settings(max_examples=200)
@given(fields=fields_with_some_broken(valid_push_fields))
def test_webpush_fuzz_only_validation_errors(fields: dict[str, Any]) -> None:
    result = attempt(lambda: WebPush(**fields))
    if isinstance(result, ValidationError):
        assert result.field in PUSH_FIELDS
    else:
        assert isinstance(result, WebPush)
        assert type(result.ttl) is int
        assert 0 < result.ttl <= 864_000


@settings(max_examples=200)
@given(
    attribute=st.one_of(st.sampled_from(["d_wp_browser", "c_x"]), anything),
    values=st.one_of(st.lists(st.text(max_size=3), min_size=1, max_size=3), anything),
)
def test_target_fuzz_only_validation_errors(attribute: Any, values: Any) -> None:
    result = attempt(lambda: Target(attribute, values))
    if isinstance(result, ValidationError):
        assert result.field in TARGET_FIELDS
    else:
        assert isinstance(result, Target)
        assert result.values
        assert all(isinstance(v, str) for v in result.values)


@settings(max_examples=200)
@given(fields=fields_with_some_broken(valid_draft_fields))
def test_draft_fuzz_only_validation_errors(fields: dict[str, Any]) -> None:
    result = attempt(lambda: Draft(**fields))
    if isinstance(result, ValidationError):
        assert result.field in {"partner_id", "title", "language", "is_all"}
    else:
        assert isinstance(result, Draft)
        assert isinstance(result.partner_id, str)


wire_keys = st.sampled_from(
    [*sorted(PUSH_FIELDS - {"include_unengaged"}), "include_unengage", "include_unengaged"]
)


@st.composite
def wire_dicts_with_some_broken(draw: st.DrawFn) -> dict[Any, Any]:
    """The wire dict of a valid push, then up to three keys (maybe in its target) set to
    anything, or deleted."""
    data: dict[Any, Any] = push_to_dict(draw(st.builds(WebPush, **valid_push_fields)))
    for _ in range(draw(st.integers(0, 3))):
        into = data
        # An earlier round may have set the target to anything: only a dict is edited.
        if isinstance(data.get("target"), dict) and draw(st.booleans()):
            into = data["target"] = dict(data["target"])
        key = draw(st.one_of(wire_keys, st.sampled_from(["attribute", "values"]), st.integers()))
        if draw(st.booleans()):
            into.pop(key, None)
        else:
            odd_ttls = st.sampled_from(["1000", "\u0661\u0660", " 5", "5.0"])
            into[key] = draw(st.one_of(anything, odd_ttls))
    return data


@settings(max_examples=200)
@given(
    data=st.one_of(
        wire_dicts_with_some_broken(),
        anything,
        st.dictionaries(st.one_of(wire_keys, st.text(max_size=8), st.integers()), anything),
    )
)
def test_push_from_dict_fuzz_only_validation_errors(data: Any) -> None:
    result = attempt(lambda: push_from_dict(data))
    if isinstance(result, ValidationError):
        assert isinstance(result.field, str)  # a field name, even for a key like 1
    else:
        assert isinstance(result, WebPush)
