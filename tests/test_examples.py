"""Every script in examples/ runs for real, as its docstring says, against the fake
(examples/celery/, which needs a Redis and a Celery worker, in tests/test_fleet_celery.py).

Each runs in a subprocess with ``INSIDER_API_KEY``/``INSIDER_PARTNER_ID``/``INSIDER_BASE_URL``
pointing at a FakeInsider (in this process, so what it received can be checked; or the
``insider-webpush fake-server`` command, as the quickstart's docstring says), and its output
and the fake's records are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from insider_webpush import FakeInsider, Fault, WebPush

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEY = "example-key"
PARTNER = "10000001"
PUSH = {
    "title": "Sale",
    "description": "50% off",
    "image": "https://example.com/i.png",
    "link": "https://example.com/sale",
    "ttl": 3600,
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInsider]:
    async with FakeInsider(api_key=KEY, partner_id=PARTNER) as server:
        yield server


def _env(base_url: str, api_key: str = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")}
    env.update(INSIDER_API_KEY=api_key, INSIDER_PARTNER_ID=PARTNER, INSIDER_BASE_URL=base_url)
    return env


async def _run(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run ``python args...`` without blocking the loop the fake serves on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",  # an unclosed client or session would show on stderr
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- quickstart.py -------------------------------------------------------------------------


async def test_quickstart_sends_one_push_and_prints_its_campaign_id(fake: FakeInsider) -> None:
    code, out, err = await _run(str(EXAMPLES / "quickstart.py"), env=_env(fake.base_url))
    assert (code, err) == (0, ""), err
    (launch,) = fake.launches
    assert out == f"launched: campaign_id={launch.campaign_id}\n"
    assert launch.path == "/v2/single/campaign_id"
    assert isinstance(launch.body, dict)
    assert launch.body["partner_id"] == PARTNER


async def test_quickstart_reports_a_refused_key_and_exits_1(fake: FakeInsider) -> None:
    code, out, err = await _run(
        str(EXAMPLES / "quickstart.py"), env=_env(fake.base_url, api_key="not-the-key-42")
    )
    assert code == 1
    assert out == ""
    assert "failed: HTTP 401" in err
    assert "may have gone out: False" in err
    assert "not-the-key-42" not in err
    assert fake.launches == []


async def test_quickstart_against_the_fake_server_command_as_its_docstring_says() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "insider_webpush",
        "fake-server",
        "--port",
        "0",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        first = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        # The docstring's command: the fake-server's default key and partner id.
        env.update(
            INSIDER_API_KEY="test", INSIDER_PARTNER_ID=PARTNER, INSIDER_BASE_URL=match.group()
        )
        code, out, err = await _run(str(EXAMPLES / "quickstart.py"), env=env)
        assert (code, err) == (0, ""), err
        assert re.fullmatch(r"launched: campaign_id=\d+\n", out)
        server.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(server.communicate(), 30)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    assert server.returncode == 0
    assert "stopped: 1 requests, 1 launches" in rest.decode()


# -- batch_from_csv.py ---------------------------------------------------------------------


async def test_statistics_lists_the_week_s_campaigns_and_the_most_clicked_funnel(
    fake: FakeInsider,
) -> None:
    async with fake.client() as client:
        ids = [
            (await client.send(WebPush(**{**PUSH, "title": f"sale {i}"}))).campaign_id
            for i in range(3)
        ]
    code, out, err = await _run(str(EXAMPLES / "statistics.py"), env=_env(fake.base_url))
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    listed = [int(line.split()[0]) for line in lines[:3]]
    assert listed == ids
    assert all(
        re.search(r"sent +[\d,]+ +delivered +[\d.]+% +ctr +[\d.]+%", line) for line in lines[:3]
    )
    overall = [r for r in fake.requests if r.path == "/v1/statistics/overall-metrics"]
    assert len(overall) == 1  # three campaigns: one page
    async with fake.client() as client:
        today = dt.date.today()
        clicks = {
            c.campaign_id: c.clicks
            async for c in client.overall_metrics(start_date=today, end_date=today)
        }
    best = max(ids, key=clicks.__getitem__)
    assert f"the most clicked: {best} 'sale {ids.index(best)}'" in out
    assert re.search(r"^  targeted +[\d,]+ +100\.00%$", out, re.M)
    assert "  dropped: frequencyCapped" in out


async def test_statistics_with_no_campaign_says_so(fake: FakeInsider) -> None:
    code, out, err = await _run(str(EXAMPLES / "statistics.py"), env=_env(fake.base_url))
    assert (code, err) == (0, ""), err
    assert out.startswith("no campaign from ")


async def test_batch_from_csv_sends_every_row_once_and_a_rerun_sends_nothing(
    fake: FakeInsider, tmp_path: Path
) -> None:
    async with fake.client() as client:
        draft = await client.create("A draft for the CSV")
    image, link = PUSH["image"], PUSH["link"]
    pushes = tmp_path / "pushes.csv"
    pushes.write_text(
        "title,description,image,link,ttl,campaign_id,target_attribute,target_values,"
        "include_unengage\n"
        f"Sale,50% off,{image},{link},3600,,,,\n"
        f"Edge and Chrome,Only for them,{image},{link},600,,d_wp_browser,Edg|Chrome,true\n"
        f"The draft,Launched from its draft,{image},{link},60,{draft},,,\n",
        encoding="utf-8",
    )
    script = str(EXAMPLES / "batch_from_csv.py")

    code, out, err = await _run(script, str(pushes), env=_env(fake.base_url))
    assert (code, err) == (0, ""), err
    assert out.splitlines()[-1] == (
        "total=3 succeeded=3 failed=0 ambiguous=0 from_journal=0 resent=0"
    )
    assert len(fake.launches) == 3
    by_title = {r.body["title"]: r for r in fake.launches if isinstance(r.body, dict)}
    segmented = by_title["Edge and Chrome"]
    assert isinstance(segmented.body, dict)
    assert segmented.body["target"] == {"attribute": "d_wp_browser", "values": ["Edg", "Chrome"]}
    assert by_title["The draft"].path == f"/v2/single/{draft}"
    assert by_title["Sale"].path == "/v2/single/campaign_id"
    assert (tmp_path / "pushes.csv.journal.jsonl").is_file()

    # The rerun reads every outcome from the journal: nothing is launched again.
    code, out, err = await _run(script, str(pushes), env=_env(fake.base_url))
    assert (code, err) == (0, ""), err
    assert out.splitlines()[-1] == (
        "total=3 succeeded=3 failed=0 ambiguous=0 from_journal=3 resent=0"
    )
    assert len(fake.launches) == 3


async def test_batch_from_csv_stops_at_a_bad_line_and_names_it(
    fake: FakeInsider, tmp_path: Path
) -> None:
    image, link = PUSH["image"], PUSH["link"]
    pushes = tmp_path / "bad.csv"
    pushes.write_text(
        "title,description,image,link,ttl\n"
        f"Fine,A good push,{image},{link},3600\n"
        f"{'x' * 101},Its title is too long,{image},{link},3600\n"
        f"Never read,After the bad line,{image},{link},3600\n",
        encoding="utf-8",
    )
    journal = tmp_path / "bad.journal.jsonl"
    code, out, err = await _run(
        str(EXAMPLES / "batch_from_csv.py"),
        str(pushes),
        "--journal",
        str(journal),
        env=_env(fake.base_url),
    )
    assert code == 2, (out, err)
    assert "bad push file: line 3: " in err
    assert "title" in err
    assert [r.body["title"] for r in fake.launches if isinstance(r.body, dict)] == ["Fine"]
    assert journal.is_file()


# -- fastapi_service.py --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _uvicorn(env: Mapping[str, str]) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """The example app under uvicorn on a free loopback port, until it answers."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",
        "-m",
        "uvicorn",
        "fastapi_service:app",
        "--app-dir",
        str(EXAMPLES),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # up to 30 s to start
                if process.returncode is not None:
                    break
                try:
                    async with http.get(f"{url}/openapi.json") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("uvicorn did not answer within 30 s")
        if process.returncode is not None:
            _, err = await process.communicate()
            pytest.fail(f"uvicorn exited {process.returncode}: {err.decode()}")
        yield url, process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_fastapi_service_launches_through_one_shared_client() -> None:
    faults = [
        Fault(status=500, processed=True, at=1),  # launched, then a 500: ambiguous
        Fault(drop=True, at=2),  # no answer at all: ambiguous too
        Fault(status=400, at=3),  # refused: certainly not launched
    ]
    async with (
        FakeInsider(api_key=KEY, partner_id=PARTNER, faults=faults) as fake,
        _uvicorn(_env(fake.base_url)) as (url, process),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{url}/pushes", json=PUSH) as response:
            assert response.status == 200
            answer = await response.json()
        (launch,) = fake.launches
        assert answer == {"campaign_id": launch.campaign_id}

        # A push that breaks a rule: 422 naming the field, and nothing reaches Insider.
        async with http.post(f"{url}/pushes", json={**PUSH, "title": "x" * 101}) as response:
            assert response.status == 422
            detail = (await response.json())["detail"]
        assert detail["field"] == "title"
        assert len(fake.requests) == 1
        assert len(fake.launches) == 1  # exactly one launch so far

        async with http.post(f"{url}/pushes", json=PUSH) as response:  # request #1: a 500
            assert response.status == 502
            detail = (await response.json())["detail"]
        assert detail["may_have_gone_out"] is True
        assert "HTTP 500" in detail["error"]

        async with http.post(f"{url}/pushes", json=PUSH) as response:  # #2: dropped
            assert response.status == 504
            assert (await response.json())["detail"]["may_have_gone_out"] is True

        async with http.post(f"{url}/pushes", json=PUSH) as response:  # #3: a 400
            assert response.status == 502
            assert (await response.json())["detail"]["may_have_gone_out"] is False

        assert len(fake.requests) == 4  # none of the failures was resent
        assert len(fake.launches) == 2  # the first, and the one processed before its 500

        process.send_signal(signal.SIGTERM)  # the lifespan's exit closes the client
        _, err = await asyncio.wait_for(process.communicate(), 30)
    # uvicorn shuts down gracefully, then re-raises the signal to exit by it.
    assert process.returncode in (0, -signal.SIGTERM), err.decode()
    assert "Application shutdown complete" in err.decode()
    assert "Unclosed" not in err.decode()
    assert KEY not in err.decode()
