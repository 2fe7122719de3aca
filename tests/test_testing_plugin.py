"""The pytest plugin: its fixtures here, and in a fresh project found through the entry point.

The fresh projects run in a subprocess with no conftest and nothing of this repository on
PYTHONPATH: the plugin is loaded from the installed ``pytest11`` entry point, as in a user's
project, under pytest-asyncio's strict and auto modes, and with pytest-asyncio hidden.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from insider_webpush import FakeInsider, WebPush, WebPushClient
from insider_webpush.testing import DEFAULT_API_KEY

README = Path(__file__).resolve().parent.parent / "README.md"
PUSH = WebPush(
    title="title of push",
    description="description of push",
    image="https://image.useinsider.com/icon.jpeg",
    link="https://example.com/",
    ttl=1000,
)

# A second test file of the fresh project: configuration, and a sync test beside them.
MORE_TESTS = """
import pytest

from insider_webpush import WebPush

PUSH = WebPush(title="t", description="d", ttl=60, image="https://example.com/i.png",
               link="https://example.com")


def test_a_sync_test_is_untouched():
    # The plugin leaves a plain sync test alone, in either asyncio mode.
    assert PUSH.ttl == 60


@pytest.mark.asyncio
@pytest.mark.insider_fake(api_key="my-key", partner_id="20000002")
async def test_the_marker_configures_the_fake(insider_fake, insider_client):
    assert insider_fake.api_key == "my-key"
    assert insider_client.partner_id == "20000002"
    await insider_client.send(PUSH)
    assert insider_fake.count(200) == 1


class TestOverridingTheOptions:
    @pytest.fixture
    def insider_fake_options(self):
        return {"rate_limit": 7, "rate_period": 0.7}

    @pytest.mark.asyncio
    async def test_the_options_fixture_configures_the_fake(self, insider_fake, insider_client):
        assert (insider_fake.rate_limit, insider_fake.rate_period) == (7, 0.7)
        assert insider_fake.api_key == "test"
        await insider_client.send(PUSH)
        assert len(insider_fake.launches) == 1
"""


def readme_example() -> str:
    """The README's python block that uses the fixtures (wherever the README puts it)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (example,) = [b for b in blocks if "insider_client" in b and "def test_" in b]
    return example


def run_pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON"))}
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


# -- the fixtures, in this test run -------------------------------------------------------------


async def test_insider_fake_is_a_started_fake_with_the_default_key(
    insider_fake: FakeInsider,
) -> None:
    assert isinstance(insider_fake, FakeInsider)
    assert insider_fake.api_key == DEFAULT_API_KEY
    assert insider_fake.base_url.startswith("http://127.0.0.1:")


async def test_insider_client_is_aimed_at_insider_fake(
    insider_fake: FakeInsider, insider_client: WebPushClient
) -> None:
    assert insider_client.base_url == insider_fake.base_url
    result = await insider_client.send(PUSH)
    assert insider_fake.count(200) == 1
    assert insider_fake.launches[0].campaign_id == result.campaign_id


@pytest.mark.insider_fake(rate_limit=3, rate_period=0.3, partner_id="20000002")
async def test_the_marker_gives_the_fake_its_options(
    insider_fake: FakeInsider, insider_client: WebPushClient
) -> None:
    assert (insider_fake.rate_limit, insider_fake.rate_period) == (3, 0.3)
    assert insider_client.partner_id == "20000002"


class TestAnOverriddenOptionsFixture:
    @pytest.fixture
    def insider_fake_options(self) -> dict[str, Any]:
        return {"api_key": "class-key", "enforce_quota": False}

    async def test_it_configures_the_fake(self, insider_fake: FakeInsider) -> None:
        assert insider_fake.api_key == "class-key"
        assert not insider_fake.enforce_quota


# -- a fresh project --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_fresh_project_uses_the_fixtures_in_either_mode(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_readme_example.py").write_text(readme_example(), encoding="utf-8")
    (tmp_path / "test_more.py").write_text(MORE_TESTS, encoding="utf-8")
    output = run_pytest(
        tmp_path,
        "-o",
        f"asyncio_mode={mode}",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        "error",
    )
    assert output.startswith("exit 0\n"), output
    passed = re.search(r"(\d+) passed", output)
    assert passed is not None, output
    assert int(passed.group(1)) == readme_example().count("\nasync def test_") + 3, output
    assert not re.search(r"\d+ (failed|error|skipped|warning)", output), output


def test_without_pytest_asyncio_the_plugin_stays_out_of_the_way(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden" / "pytest_asyncio"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("pytest_asyncio is hidden")\n')
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_it.py").write_text(
        "def test_plain():\n    pass\n\n\n"
        "def test_wants_the_fake(insider_fake):\n    pass\n\n\n"
        "def test_wants_the_client(insider_client):\n    pass\n",
        encoding="utf-8",
    )
    output = run_pytest(
        project, "-p", "no:asyncio", env={"PYTHONPATH": str(hidden.parent)}
    )  # pytest-asyncio's own plugin off; `import pytest_asyncio` fails
    assert "1 passed, 2 errors" in output, output
    assert output.count("need pytest-asyncio: pip install pytest-asyncio") >= 2, output
    assert "Traceback" not in output, output
