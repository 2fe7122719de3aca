"""The `speed` extra: orjson decodes answers and the command runs on uvloop when installed; the
standard library path stays, and stays correct, without them."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from insider_webpush import codec
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
assert codec._orjson_loads is None
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
