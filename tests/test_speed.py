"""The `speed` extra: orjson encodes launches and decodes answers, and the command runs on
uvloop, when installed; the standard library path stays, and stays correct, without them."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from insider_webpush import Target, ValidationError, WebPush, codec
from insider_webpush.cli import _run_on_a_loop

BODIES = [
    b'{"success": true, "campaign_id": 1697300275}',
    b'{"success": true, "campaign_id": "1697300275"}',
    b'{"message": "Unauthorized"}',
    b'{"status_code": 422, "errors": {"end_date": ["The end date ..."]}}',
    b"[1, 2.5, null, false]",
    b"NaN",  # the standard library reads it; orjson refuses it and hands it over
    b"[Infinity]",
    b'{"a": "\\ud800"}',  # a lone surrogate
    b'{"a": "caf\\u00e9 \xc3\xa9"}',
    b"<html>502 Bad Gateway</html>",  # not JSON: its text
    b"\xff\xfe\x00",  # not UTF-8: its text, replaced
    b"",
]


def _same(a: object, b: object) -> bool:
    # NaN is not equal to itself: compare reprs, which are equal for equal values.
    return repr(a) == repr(b)


def test_the_extra_is_installed_for_the_tests() -> None:
    # The README's test command installs the `speed` extra: its path is the one tested here.
    assert codec._orjson_loads is not None


@pytest.mark.parametrize("raw", BODIES)
def test_orjson_and_the_standard_library_decode_every_body_alike(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = codec.decode_json(raw)
    monkeypatch.setattr(codec, "_orjson_loads", None)
    assert _same(fast, codec.decode_json(raw))


def _stdlib_bytes(push: WebPush, monkeypatch: pytest.MonkeyPatch) -> bytes:
    with monkeypatch.context() as patch:
        patch.setattr(codec, "_orjson_dumps", None)
        return codec.encode_push(push, partner_id="10000001")


TEXTS = [
    "Flash sale",
    # Every ASCII character, controls and DEL included, 30 at a time (a rich push's limit).
    *("".join(map(chr, range(start, min(start + 30, 128)))) for start in range(1, 128, 30)),
    "caf\u00e9 \u2603 \U0001f600",  # not ASCII: orjson writes UTF-8, the stdlib escapes
    "lone \ud800 surrogate",  # orjson refuses it
    "DEL \x7f alone",  # orjson writes it as it is, the stdlib escapes it
    'quote " backslash \\ slash /',
]


def _push(text: str) -> WebPush:
    return WebPush(
        title=text,
        description=text,
        image="https://example.com/i.png",
        link="https://example.com/sale",
        ttl=3600,
        banner="https://example.com/b.png",
        include_unengaged=True,
        language="en_US",
        target=Target("c_segment", [text, "b"]),
    )


@pytest.mark.parametrize("text", TEXTS)
def test_orjson_and_the_standard_library_encode_every_push_alike(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert codec.encode_push(_push(text), partner_id="10000001") == _stdlib_bytes(
        _push(text), monkeypatch
    )


@given(text=st.text(min_size=1, max_size=40))
def test_orjson_and_the_standard_library_encode_any_text_alike(text: str) -> None:
    try:
        push = _push(text)
    except ValidationError:
        return  # e.g. a blank title: refused before any encoder
    fast = codec.encode_push(push, partner_id="10000001")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "_orjson_dumps", None)
        assert fast == codec.encode_push(push, partner_id="10000001")


@pytest.mark.parametrize("fast", [True, False])
def test_a_partner_id_that_is_not_text_is_refused_with_or_without_orjson(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:
        monkeypatch.setattr(codec, "_orjson_dumps", None)
    for wrong in (123, True):
        with pytest.raises(TypeError, match="partner_id must be a str"):
            codec.encode_push(_push("t"), partner_id=wrong)  # type: ignore[arg-type]


def test_with_the_extra_orjson_encodes_an_ascii_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec._orjson_dumps
    assert real is not None
    encoded: list[bytes] = []

    def spy(value: object) -> bytes:
        encoded.append(real(value))
        return encoded[-1]

    monkeypatch.setattr(codec, "_orjson_dumps", spy)
    body = codec.encode_push(_push("Flash sale"), partner_id="10000001")
    assert encoded == [body]  # orjson's bytes are the ones sent
    assert codec.encode_push(_push("caf\u00e9"), partner_id="10000001").isascii()  # stdlib's


def test_the_command_runs_on_uvloop_when_it_is_installed() -> None:
    import uvloop

    async def which() -> int:
        return 1 if isinstance(asyncio.get_running_loop(), uvloop.Loop) else 0

    assert _run_on_a_loop(which()) == 1


def test_without_the_extra_the_sdk_and_the_command_use_the_standard_library() -> None:
    code = """
import sys
sys.modules["orjson"] = None  # as if the speed extra were not installed
sys.modules["uvloop"] = None
import asyncio
from insider_webpush import codec
from insider_webpush.cli import _run_on_a_loop, main
assert codec._orjson_loads is None and codec._orjson_dumps is None
assert codec.decode_json(b'{"success": true, "campaign_id": 5}') == {
    "success": True, "campaign_id": 5}

async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__

assert _run_on_a_loop(loop_module()).startswith("asyncio"), "not asyncio's loop"
sys.exit(main(["demo", "--count", "30", "--rate-limit", "300", "--rate-period", "1", "--plain"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "30" in done.stdout
