"""The README's examples run as written, against FakeInsider on loopback.

The README marks each block a test runs with an HTML comment (`<!-- test: NAME -->`, invisible
on GitHub) on the line before it. The quickstart and the stream example run in a fresh Python
process, with the environment the README's `export` line sets (the port aside: the fake here
takes a free one, where `insider-webpush fake-server` takes 8080), in a temporary directory.
The testing example is run by tests/test_testing_plugin.py in a fresh pytest project.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from insider_webpush import WebPush
from insider_webpush.testing import DEFAULT_API_KEY, FakeInsider

README = Path(__file__).resolve().parent.parent / "README.md"
FAKE_SERVER_URL = "http://127.0.0.1:8080"  # insider-webpush fake-server's address by default


def block(name: str) -> str:
    """The fenced block right after `<!-- test: NAME -->`."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^<!-- test: {re.escape(name)} -->\n```\w*\n(.*?)^```", text, re.S | re.M)
    assert found, f"README.md has no block marked <!-- test: {name} -->"
    return found.group(1)


def readme_environment(base_url: str) -> dict[str, str]:
    """The variables the quickstart's `export` line sets, aimed at `base_url`."""
    text = README.read_text(encoding="utf-8")
    quickstart = text[: text.index("<!-- test: quickstart -->")]
    (line,) = re.findall(r"^export (.+)$", quickstart, re.M)
    exported = dict(word.split("=", 1) for word in shlex.split(line))
    assert exported["INSIDER_BASE_URL"] == FAKE_SERVER_URL
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")}
    return {**environ, **exported, "INSIDER_BASE_URL": base_url}


async def run_python(code: str, cwd: Path, env: dict[str, str]) -> str:
    """Run `code` as a script in a fresh interpreter; its output, or a failure with it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 0, text
    return text


@pytest.fixture
async def fake() -> AsyncIterator[FakeInsider]:
    # The fake-server command's fake: the key "test" and partner id "10000001".
    async with FakeInsider() as server:
        yield server


def test_the_quickstart_talks_to_the_fake_server_the_readme_starts() -> None:
    text = README.read_text(encoding="utf-8")
    assert "insider-webpush fake-server" in text[: text.index("<!-- test: quickstart -->")]
    assert DEFAULT_API_KEY == "test"


async def test_readme_quickstart_launches_a_push(fake: FakeInsider, tmp_path: Path) -> None:
    output = await run_python(block("quickstart"), tmp_path, readme_environment(fake.base_url))
    (launch,) = fake.launches
    assert output == f"launched campaign {launch.campaign_id}\n"
    assert launch.body["title"] == "Spring sale"
    assert launch.body["ttl"] == "3600"


async def test_readme_stream_launches_the_push_file_once(fake: FakeInsider, tmp_path: Path) -> None:
    lines = block("pushes.jsonl").splitlines()
    (tmp_path / "pushes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = readme_environment(fake.base_url)

    output = await run_python(block("stream"), tmp_path, env)
    assert sorted(output.splitlines()) == [f"{i} launched" for i in range(len(lines))]
    assert sorted(launch.body["title"] for launch in fake.launches) == sorted(
        json.loads(line)["title"] for line in lines
    )
    assert fake.launches[0].body["partner_id"] == "10000001"
    targeted = [launch for launch in fake.launches if "target" in launch.body]
    assert [launch.body["target"]["values"] for launch in targeted] == [["Edg"]]

    # Run again with the same journal, as the README says after a crash: nothing is resent.
    again = await run_python(block("stream"), tmp_path, env)
    assert sorted(again.splitlines()) == [
        f"{i} done in an earlier run, not sent again" for i in range(len(lines))
    ]
    assert len(fake.launches) == len(lines)


async def test_readme_statistics_read_back_what_was_launched(
    fake: FakeInsider, tmp_path: Path
) -> None:
    async with fake.client() as client:
        for title in ("Spring sale", "Last day"):
            await client.send(
                WebPush(
                    title=title,
                    description="-20 %",
                    image="https://example.com/icon.png",
                    link="https://example.com/sale",
                    ttl=3600,
                )
            )
    ids = [launch.campaign_id for launch in fake.launches]
    output = await run_python(block("statistics"), tmp_path, readme_environment(fake.base_url))
    first, second, funnel, dropped, top = output.splitlines()
    assert first.split()[:3] == [str(ids[0]), "Spring", "sale"]
    assert second.split()[:3] == [str(ids[1]), "Last", "day"]
    assert re.fullmatch(r"\d+ Last day \d+ \d+\.\d% \d+\.\d\d%", second)
    steps = ast.literal_eval(funnel)
    assert list(steps) == ["targeted", "sent", "delivered", "clicked", "converted"]
    assert list(steps.values()) == sorted(steps.values(), reverse=True)
    assert ast.literal_eval(dropped)[0][0] == "frequencyCapped"
    assert top.endswith(" USD")
