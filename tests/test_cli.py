"""The ``insider-webpush`` command, run in-process through ``main(argv)`` against a FakeInsider
serving from its own thread, and as a subprocess where the process itself matters."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from insider_webpush import FakeInsider, Fault
from insider_webpush.cli import main, output, parser
from insider_webpush.cli import output as cli_output
from insider_webpush.endpoints import Operation
from insider_webpush.testing import RecordedRequest

KEY = "cli-test-secret-key"
PARTNER = "10000001"
PUSH = {
    "title": "Sale",
    "description": "50% off today",
    "image": "https://example.com/icon.png",
    "link": "https://example.com/sale",
    "ttl": 3600,
}
SEND_ARGS = [
    "send",
    "--title",
    "Sale",
    "--description",
    "50% off today",
    "--image",
    "https://example.com/icon.png",
    "--link",
    "https://example.com/sale",
    "--ttl",
    "3600",
]


class ThreadedFake:
    """A FakeInsider on its own event loop in a thread, so that ``main`` (which runs
    ``asyncio.run``) can be called from the test itself."""

    def __init__(self, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.fake = FakeInsider(api_key=KEY, partner_id=PARTNER, **kwargs)
        self._call(self.fake.start)

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    def requests(self) -> list[RecordedRequest]:
        return list(self._call(lambda: list(self.fake.requests)))

    def launches(self) -> list[RecordedRequest]:
        return list(self._call(lambda: list(self.fake.launches)))

    def add_fault(self, fault: Fault) -> None:
        self._call(lambda: self.fake.faults.append(fault))

    def close(self) -> None:
        self._call(self.fake.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedFake]:
    fake = ThreadedFake(rate_limit=6000, rate_period=60.0)
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    monkeypatch.setenv("INSIDER_BASE_URL", fake.base_url)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(autouse=True)
def _no_inherited_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INSIDER_API_KEY",
        "INSIDER_PARTNER_ID",
        "INSIDER_BASE_URL",
        "INSIDER_REDIS_URL",
        "INSIDER_DEDUPE_STORE",
    ):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert KEY not in out + err  # the key is never echoed, whatever the command
    return code, out, err


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def pushes(n: int) -> list[dict[str, Any]]:
    return [{**PUSH, "title": f"Push {i}"} for i in range(n)]


# -- send ----------------------------------------------------------------------------------


def test_send_prints_the_campaign_id(server: ThreadedFake, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(
        capsys,
        *SEND_ARGS,
        "--target-attribute",
        "d_wp_browser",
        "--target-value",
        "Edg",
        "--target-value",
        "Chrome",
        "--include-unengaged",
    )
    assert code == 0
    (launch,) = server.launches()
    assert out.strip() == str(launch.campaign_id)
    assert launch.body == {
        **PUSH,
        "ttl": "3600",
        "partner_id": PARTNER,
        "target": {"attribute": "d_wp_browser", "values": ["Edg", "Chrome"]},
        "include_unengage": True,
    }


def test_send_with_a_dedupe_key_launches_once_across_processes(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    store = str(tmp_path / "dedupe.sqlite")  # a file: shared by every process of the host
    args = (*SEND_ARGS, "--dedupe-key", "order-4711:welcome", "--dedupe-store", store)
    code, first, _ = run(capsys, *args)
    assert code == 0
    again = subprocess.run(  # another process: the record is in the file, not in memory
        [sys.executable, "-m", "insider_webpush", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "INSIDER_API_KEY": KEY},
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == first
    assert "already launched under dedupe key 'order-4711:welcome'" in again.stderr
    assert len(server.launches()) == 1


def test_the_sdk_warnings_show_a_429_once_and_an_ambiguous_push_only_in_the_report(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    server.add_fault(Fault(status=429, retry_after=0.01, at={0}))
    code, _, err = run(capsys, *SEND_ARGS)
    assert code == 0
    assert err.count("HTTP 429 (quota exceeded)") == 1
    assert err.startswith("warning: POST /v2/single/campaign_id: HTTP 429")
    server.add_fault(Fault(status=503, at={2}))
    code, _, err = run(capsys, *SEND_ARGS)
    assert code == 1
    assert err.count("may have gone out") == 1  # the command's line, not the SDK's log too


def test_a_dedupe_key_without_a_store_that_outlives_the_command_is_refused(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    code, _, err = run(capsys, *SEND_ARGS, "--dedupe-key", "k")
    assert code == 2
    assert "--dedupe-key needs a store that outlives this command" in err
    assert server.launches() == []


def test_redis_and_dedupe_store_passwords_are_never_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_PARTNER_ID", PARTNER)
    code, out, err = run(
        capsys,
        *SEND_ARGS,
        "--base-url",
        "http://127.0.0.1:1",
        "--redis-url",
        "redis://:hunter2-secret@127.0.0.1:1/0",
        "--dedupe-key",
        "k",
    )
    assert code == 1
    assert "hunter2-secret" not in out + err
    assert "unreachable" in err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--title", "x" * 101, "title: must be at most 100 characters"),
        ("--ttl", "864001", "ttl: must be more than 0 and at most 864000 seconds"),
        ("--ttl", "1x", "argument --ttl: must be a whole number of seconds"),
        ("--image", "http://example.com/i.png", "image: must be an absolute https:// URL"),
    ],
)
def test_send_with_a_bad_field_exits_2_and_sends_nothing(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], flag: str, value: str, expected: str
):
    argv = list(SEND_ARGS)
    argv[argv.index(flag) + 1] = value
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert expected in err
    assert out == ""
    assert server.requests() == []


def test_send_with_a_banner_checks_the_shorter_description(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str]
):
    argv = [*SEND_ARGS, "--banner", "https://example.com/banner.png"]
    argv[argv.index("--description") + 1] = "d" * 31
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "description: must be at most 30 characters when a banner is set" in err
    assert server.requests() == []


def test_send_without_a_key_says_so_and_exits_2(capsys: pytest.CaptureFixture[str]):
    code, out, err = run(capsys, *SEND_ARGS, "--partner-id", PARTNER)
    assert code == 2
    assert "no API key: set INSIDER_API_KEY (or pass --api-key)" in err
    assert out == ""


def test_missing_key_in_a_subprocess_has_no_traceback(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "insider_webpush", *SEND_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "error: no API key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_refused_key_is_an_error_that_does_not_echo_it(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("INSIDER_API_KEY")
    wrong = "wrong-but-secret-key"
    code, out, err = run(capsys, *SEND_ARGS, "--api-key", wrong)
    assert code == 2  # credentials: check the key
    assert "the API key was refused (HTTP 401: Unauthorized): check --api-key" in err
    assert wrong not in out + err


def test_a_mistyped_command_line_does_not_echo_the_key(capsys: pytest.CaptureFixture[str]):
    # A mistyped command: argparse's complaint would quote what stood there.
    code, _, err = run(capsys, "--api-key", KEY, "sned", *SEND_ARGS[1:])
    assert code == 2
    assert "argument COMMAND: invalid choice (choose from send, batch" in err
    assert KEY not in err
    # The connection options go before the command too (they used to be refused there).
    code, _, err = run(capsys, "--api-key", KEY, *SEND_ARGS)
    assert code == 2
    assert "no partner id" in err
    code, _, err = run(capsys, *SEND_ARGS, "stray", f"--api-key={KEY}x")
    assert code == 2
    assert "1 unrecognized argument(s), not shown" in err
    assert "stray" not in err


def test_help_shows_no_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    for command in ("send", "batch"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        assert "INSIDER_API_KEY" in out


# -- batch -----------------------------------------------------------------------------------


def test_batch_jsonl_sends_every_line(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    rows = pushes(5)
    rows[2] = {**rows[2], "partner_id": PARTNER, "language": "en_US"}
    path = write_jsonl(tmp_path / "pushes.jsonl", rows)
    path.write_text(path.read_text() + "\n\n")  # blank lines are skipped
    code, out, err = run(capsys, "batch", str(path))
    assert code == 0
    assert sorted(r.body["title"] for r in server.launches()) == [f"Push {i}" for i in range(5)]
    assert "batch summary" in out
    assert "succeeded" in out
    assert "no --journal" in err


def test_batch_csv_reads_wire_names_target_columns_and_flags(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "pushes.csv"
    path.write_text(
        "title,description,image,link,ttl,banner,include_unengage,target_attribute,target_values\n"
        "A,short,https://e.com/i.png,https://e.com,60,https://e.com/b.png,true,d_wp_browser,Edg|Chrome\n"
        'B,"with, a comma",https://e.com/i.png,https://e.com,120,,no,,\n',
        encoding="utf-8",
    )
    code, _, _ = run(capsys, "batch", str(path))
    assert code == 0
    bodies = {r.body["title"]: r.body for r in server.launches()}
    assert bodies["A"] == {
        "title": "A",
        "description": "short",
        "image": "https://e.com/i.png",
        "link": "https://e.com",
        "ttl": "60",
        "banner": "https://e.com/b.png",
        "include_unengage": True,
        "target": {"attribute": "d_wp_browser", "values": ["Edg", "Chrome"]},
        "partner_id": PARTNER,
    }
    assert bodies["B"]["description"] == "with, a comma"
    assert bodies["B"]["include_unengage"] is False
    assert "banner" not in bodies["B"]
    assert "target" not in bodies["B"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_batch_reads_stdin(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
):
    if fmt == "jsonl":
        text = "".join(json.dumps(p) + "\n" for p in pushes(3))
    else:
        text = "title,description,image,link,ttl\n" + "".join(
            f"{p['title']},{p['description']},{p['image']},{p['link']},{p['ttl']}\n"
            for p in pushes(3)
        )
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code, out, _ = run(capsys, "batch", "-")  # the format is told from the first line
    assert code == 0
    assert len(server.launches()) == 3
    assert "3" in out


def test_batch_of_a_file_with_bad_lines_sends_nothing(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "pushes.jsonl"
    path.write_text(
        json.dumps(PUSH) + "\n" + json.dumps({**PUSH, "title": "x" * 101}) + "\n{oops\n",
        encoding="utf-8",
    )
    code, _, err = run(capsys, "batch", str(path))
    assert code == 2
    assert "line 2: title: must be at most 100 characters" in err
    assert "line 3: is not valid JSON" in err
    assert "nothing was sent" in err
    assert server.requests() == []


def test_batch_from_stdin_stops_at_a_bad_line(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    rows: list[Any] = [*pushes(2), {**PUSH, "ttl": 0}, *pushes(2)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(r) + "\n" for r in rows)))
    code, _, err = run(capsys, "batch", "-")
    assert code == 2
    assert "line 3: ttl: must be more than 0" in err
    assert len(server.launches()) == 2  # the lines before it, none after


def test_batch_needs_a_partner_id_somewhere(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.delenv("INSIDER_PARTNER_ID")
    path = write_jsonl(tmp_path / "p.jsonl", [{**PUSH, "partner_id": PARTNER}, PUSH])
    code, _, err = run(capsys, "batch", str(path))
    assert code == 2
    assert "line 2: partner_id: is required" in err
    assert server.requests() == []


def test_batch_exits_1_when_a_push_fails_and_lists_it(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    server.add_fault(Fault(status=424, at={1}))
    server.add_fault(Fault(status=500, at={3}, processed=True))
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(5))
    code, out, _ = run(capsys, "batch", str(path), "--concurrency", "1")
    assert code == 1
    assert "line 2: HTTP 424" in out
    assert "line 4: HTTP 500" in out
    assert "ambiguous" in out
    assert len(server.requests()) == 5  # neither was retried


def test_batch_resumes_with_its_journal(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    journal = tmp_path / "batch.journal"
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(3))
    assert run(capsys, "batch", str(path), "--journal", str(journal))[0] == 0
    assert len(server.requests()) == 3

    # The same file again: everything comes back from the journal, nothing is sent.
    code, out, _ = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 0
    assert len(server.requests()) == 3
    assert "replayed from the journal" in out

    # More lines appended: only those go out.
    write_jsonl(path, pushes(5))
    assert run(capsys, "batch", str(path), "--journal", str(journal))[0] == 0
    assert sorted(r.body["title"] for r in server.launches()) == [f"Push {i}" for i in range(5)]


@pytest.mark.parametrize(
    "failure",
    # A refused connection is retried with the default backoff (~6 s): the same on every
    # Python, so CI runs it on 3.11 only.
    ["wrong key", pytest.param("dead server", marks=pytest.mark.slow)],
)
def test_a_rerun_resends_what_certainly_never_went_out_and_says_so(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
):
    journal = tmp_path / "batch.journal"
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(6))
    if failure == "wrong key":
        monkeypatch.setenv("INSIDER_API_KEY", "not-the-key")
    else:  # a port nobody listens on: every connection is refused
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        monkeypatch.setenv("INSIDER_BASE_URL", f"http://127.0.0.1:{port}")
    code, out, _ = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code != 0
    assert re.search(r"of which ambiguous\s+0\b", out), out
    assert not server.launches()

    monkeypatch.setenv("INSIDER_API_KEY", KEY)
    monkeypatch.setenv("INSIDER_BASE_URL", server.base_url)
    code, out, _ = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 0, out
    assert sorted(r.body["title"] for r in server.launches()) == [f"Push {i}" for i in range(6)]
    if failure == "wrong key":  # answered 401: journaled as a certain failure, then resent
        assert re.search(r"resent: certain failures\s+6\b", out), out
        assert "6 push(es) had failed for certain in an earlier run" in out
    else:  # refused before any byte: no attempt reached the wire, so none was journaled
        assert "resent" not in out


def test_batch_with_an_edited_file_refuses_its_old_journal(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    journal = tmp_path / "batch.journal"
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(2))
    assert run(capsys, "batch", str(path), "--journal", str(journal))[0] == 0
    write_jsonl(path, [{**PUSH, "title": "Edited"}, *pushes(2)[1:]])
    code, _, err = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 2
    assert "does not match the journal" in err
    assert len(server.requests()) == 2


# -- validate --------------------------------------------------------------------------------


def test_validate_a_good_file(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(3))
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 0
    assert "3 pushes checked: 3 valid, 0 invalid" in out


def test_validate_reports_each_bad_line_with_its_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "pushes.jsonl"
    lines = [
        json.dumps(PUSH),
        json.dumps({**PUSH, "colour": "red"}),
        "",
        "[1, 2",
        json.dumps({**PUSH, "banner": "https://e.com/b.png", "description": "d" * 31}),
        json.dumps({k: v for k, v in PUSH.items() if k != "link"}),
        json.dumps({**PUSH, "target": {"attribute": "browser", "values": ["Edg"]}}),
        json.dumps({**PUSH, "campaign_id": "abc"}),
        json.dumps({**PUSH, "campaign_id": 25696}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert out.splitlines() == [
        "line 2: colour: is not a field of a web push",
        "line 4: is not valid JSON: Expecting ',' delimiter (column 6)",
        "line 5: description: must be at most 30 characters when a banner is set (a rich "
        "push), got 31",
        "line 6: link: is required",
        "line 7: target.attribute: must name a default (d_...) or custom (c_...) attribute, "
        "e.g. d_wp_browser",
        "line 8: campaign_id: must be a positive whole number, a draft's id",
        "8 pushes checked: 2 valid, 6 invalid",
    ]


def test_validate_csv_reports_rows_by_their_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "pushes.csv"
    path.write_text(
        "title,description,image,link,ttl\n"
        "first,d,https://e.com/i.png,https://e.com,0\n"
        'ok,"two\nlines",https://e.com/i.png,https://e.com,60\n'
        "bad,d,https://e.com/i.png,https://e.com,forever\n"
        "extra,d,https://e.com/i.png,https://e.com,60,surplus\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert out.splitlines() == [
        "line 2: ttl: must be more than 0 and at most 864000 seconds (240 hours), got 0",
        "line 5: ttl: must be a whole number of seconds, at most 864000",
        "line 6: has 6 cells; the header has 5 columns",
        "4 pushes checked: 1 valid, 3 invalid",
    ]


def test_validate_a_missing_or_binary_file(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert "nope.jsonl: can't be read: No such file or directory" in err
    (tmp_path / "latin1.csv").write_bytes(b"title\ncaf\xe9\n")
    code, out, _ = run(capsys, "validate", str(tmp_path / "latin1.csv"))
    assert code == 1
    assert "line 2: holds a byte that is not utf-8 text: 0xe9" in out
    assert "Traceback" not in err


def test_a_journal_that_cannot_be_opened_is_a_clear_error(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(1))
    code, _, err = run(capsys, "batch", str(path), "--journal", str(tmp_path / "no" / "j"))
    assert code == 2
    assert "No such file or directory" in err
    assert server.requests() == []


# -- fake-server -----------------------------------------------------------------------------


def test_fake_server_serves_until_terminated():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDER_")}
    env["INSIDER_API_KEY"] = KEY
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insider_webpush",
            "--plain",
            "fake-server",
            "--port",
            "0",
            "--fault",
            "503@0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("FakeInsider listening on http://127.0.0.1:")
        base_url = first.rsplit(" ", 1)[1].strip()

        def launch() -> int:
            request = urllib.request.Request(
                base_url + "/v2/single/campaign_id",
                data=json.dumps({**PUSH, "ttl": "60", "partner_id": PARTNER}).encode(),
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert launch() == 503  # the --fault
        assert launch() == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped: 2 requests, 1 launches" in out
    assert KEY not in out + err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("503:0.02", {"status": 503, "probability": 0.02}),
        ("drop:0.01", {"drop": True, "probability": 0.01}),
        ("429:0.5,retry-after=2", {"status": 429, "probability": 0.5, "retry_after": 2.0}),
        ("500@3,processed", {"status": 500, "at": {3}, "processed": True}),
        ("slow,latency=0.2,op=launch_v2", {"latency": 0.2, "operation": Operation.LAUNCH_V2}),
    ],
)
def test_fault_syntax(spec: str, expected: dict[str, Any]):
    assert parser.fault(spec) == Fault(**expected)  # read by Fault.parse


@pytest.mark.parametrize("spec", ["200:0.1", "503:0", "503:1.5", "drop,colour=red", "slow", "x"])
def test_a_bad_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str], spec: str):
    code, _, err = run(capsys, "fake-server", "--fault", spec)
    assert code == 2
    assert "argument --fault: " in err
    assert "(see fake-server --help)" in err
    assert "Traceback" not in err


# -- demo ------------------------------------------------------------------------------------


def test_demo_runs_at_the_real_default_quota_unless_told():
    args = parser.build_parser().parse_args(["demo"])
    assert (args.count, args.rate_limit, args.rate_period) == (1000, 6000, 60.0)


def test_demo_help_hides_the_test_options(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "demo", "--help")
    assert code == 0
    assert "--count" in out
    assert "--rate-period" not in out


def test_demo_reaches_its_own_fake_past_a_proxy_of_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "example.com")
    code, out, _ = run(capsys, "demo", "--count", "5", "--rate-limit", "200", "--rate-period", "2")
    assert code == 0
    assert "5 of 5" in out


def test_demo_sends_through_the_client_and_reports_the_busiest_window(
    capsys: pytest.CaptureFixture[str],
):
    # The default rate (100/s) with the period scaled down to 2 s: 150 pushes are paced by
    # the limiter (1.5 s) and all fall in one window, below its quota. (Filling windows to
    # the brim is benchmarks/rate.py's job: on a loaded machine a scaled-down period's margin
    # is only milliseconds.)
    code, out, err = run(
        capsys, "demo", "--count", "150", "--rate-limit", "200", "--rate-period", "2"
    )
    assert code == 0
    assert "demo: 150 pushes to an embedded FakeInsider at http://127.0.0.1:" in err
    assert "demo summary" in out
    assert "150 of 150" in out
    busiest = next(line for line in out.splitlines() if "most requests in any 2 s" in line)
    assert busiest.split()[-3:] == ["150", "(quota", "200)"]
    progress = [line for line in err.splitlines() if line.startswith("demo: 150/150 done")]
    assert progress  # the last progress line (plain: stderr is not a terminal here)
    assert "429s from the server" in out


# -- output without rich -----------------------------------------------------------------------


def test_plain_output_when_rich_is_missing(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.setitem(sys.modules, "rich", None)  # `import rich` now fails
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)  # would be the bar
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(60))  # paced over ~0.6 s
    code, out, err = run(
        capsys,
        "batch",
        str(path),
        "--rate-limit",
        "60",
        "--rate-period",
        "0.6",
        "--progress-interval",
        "0.1",
    )
    assert code == 0
    progress = [line for line in err.splitlines() if line.startswith("batch: ")]
    assert len(progress) >= 2  # periodic lines, then the last one
    assert progress[-1].startswith("batch: 60/60 done, 0 failed, ")
    assert "/s quota" in progress[-1]
    assert out.splitlines()[0] == "batch summary"
    assert any(line.split() == ["succeeded", "60"] for line in out.splitlines())


def test_rich_progress_bar_on_a_terminal(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(4))
    code, out, err = run(capsys, "batch", str(path))
    assert code == 0
    assert "4/4" in err
    assert "0 failed" in err
    assert "quota" in err
    assert not any(line.startswith("batch: ") for line in err.splitlines())
    assert "batch summary" in out


def test_plain_flag_forces_plain_output(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.setattr(output, "stderr_is_terminal", lambda: True)
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(2))
    code, out, err = run(capsys, "--plain", "batch", str(path))
    assert code == 0
    assert "batch: 2/2 done, 0 failed" in err
    assert out.splitlines()[0] == "batch summary"


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")]
)
def test_ctrl_c_or_sigterm_stops_a_batch_cleanly_and_a_rerun_sends_the_rest(
    server: ThreadedFake, tmp_path: Path, signum: signal.Signals, name: str
):
    # SIGTERM (what kill, systemd and Kubernetes send) used to be handled like SIGKILL.
    journal = tmp_path / "batch.journal"
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(60))
    argv = [sys.executable, "-m", "insider_webpush", "batch", str(path), "--journal", str(journal)]
    argv += ["--rate-limit", "40", "--rate-period", "1", "--concurrency", "4"]
    env = {**os.environ, "INSIDER_API_KEY": KEY}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 20
    while len(server.launches()) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert f"stopping ({name}): finishing the pushes already on the wire, sending no more" in err
    assert "batch summary" in out  # what was done so far
    assert re.search(r"^\s*of which ambiguous\s+0\s*$", out, re.MULTILINE)  # none cut off
    # The pushes taken but not yet on the wire are "not sent", not failures.
    assert re.search(r"^\s*failed\s+0\s*$", out, re.MULTILINE)
    assert f"stopped by {name}: run the same command again to send the rest" in err
    sent_before = len(server.launches())
    assert 10 <= sent_before < 60

    resumed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=False)
    assert resumed.returncode == 0, resumed.stderr
    titles = [r.body["title"] for r in server.launches()]
    assert sorted(titles) == sorted(p["title"] for p in pushes(60))  # each exactly once


# -- the edges a hostile user found (issue 10) ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--plain", "batch", "{path}"],
        ["batch", "--plain", "{path}"],
        ["batch", "{path}", "--plain"],
        ["batch", "{path}", "-v", "--plain"],
    ],
)
def test_global_options_are_accepted_anywhere(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
):
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(2))
    code, out, _ = run(capsys, *(a.format(path=path) for a in argv))
    assert code == 0
    assert out.splitlines()[0] == "batch summary"  # plain: no rich table


@pytest.mark.parametrize(
    "mistyped", [["--apikey", KEY], ["--api_key", KEY], [f"--api-kee={KEY}"], ["--key", KEY]]
)
def test_a_mistyped_key_flag_never_prints_the_key(
    capsys: pytest.CaptureFixture[str], mistyped: list[str]
):
    code, _, err = run(capsys, *SEND_ARGS, *mistyped)  # run() asserts KEY is absent
    assert code == 2
    assert "unrecognized option(s): " in err


def test_a_short_key_is_masked_as_a_token_not_inside_words(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("INSIDER_API_KEY", "ck")
    path = write_jsonl(tmp_path / "pushes.jsonl", [PUSH, {**PUSH, "ttl": 0}])
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert "2 pushes checked: 1 valid, 1 invalid" in out  # not "che***ed"
    assert cli_output.Output(plain=True, secrets=["ck"]).redact("key ck, checked") == (
        "key ***, checked"
    )


def test_a_wrong_key_stops_the_batch_at_the_first_401_and_exits_2(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("INSIDER_API_KEY", "a-wrong-key-0000")
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(500))
    failed_out = tmp_path / "failed.jsonl"
    code, out, err = run(
        capsys, "batch", str(path), "--concurrency", "4", "--failed-out", str(failed_out)
    )
    assert code == 2
    assert len(server.requests()) <= 4  # only those already in flight saw the 401
    assert "the API key was refused (HTTP 401: Unauthorized): check INSIDER_API_KEY" in err
    assert "push(es) not sent" in err
    assert "a-wrong-key-0000" not in out + err
    # Every push is in the failed file, in line order, ready for a rerun with the right key.
    assert [p["title"] for p in map(json.loads, failed_out.read_text().splitlines())] == [
        p["title"] for p in pushes(500)
    ]


def test_failed_out_writes_certain_failures_in_the_input_format_and_line_order(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    for index in (7, 2, 5):
        server.add_fault(Fault(status=400, at={index}))
    server.add_fault(Fault(status=500, at={9}))  # ambiguous: not in the file
    path = tmp_path / "pushes.csv"
    path.write_text(
        "title,description,image,link,ttl\n"
        + "".join(f"Push {i},d,https://e.com/i.png,https://e.com,60\n" for i in range(12)),
        encoding="utf-8",
    )
    failed_out = tmp_path / "failed.csv"
    code, out, err = run(
        capsys, "batch", str(path), "--concurrency", "1", "--failed-out", str(failed_out)
    )
    assert code == 1
    rows = failed_out.read_text().splitlines()
    assert rows[0].startswith("campaign_id,title,")
    assert [r.split(",")[1] for r in rows[1:]] == ["Push 2", "Push 5", "Push 7"]
    listed = [line.strip() for line in out.splitlines() if line.strip().startswith("line ")]
    assert [line.split(":")[0] for line in listed] == ["line 4", "line 7", "line 9", "line 11"]
    assert "see the journal" not in out
    assert "3 failed push(es) written to" in err


def test_more_failures_than_listed_point_to_failed_out_not_a_missing_journal(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    server.add_fault(Fault(status=400))
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(25))
    code, out, _ = run(capsys, "batch", str(path))
    assert code == 1
    assert "... and 5 more (--failed-out FILE writes them all)" in out
    assert "journal" not in out


@pytest.mark.parametrize(
    ("content", "extra"),
    [("", []), ("title,description,image,link,ttl\n", []), ("\n\n", [])],
)
def test_an_empty_input_is_an_error_unless_allowed(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str,
    extra: list[str],
):
    path = tmp_path / "pushes.csv"
    path.write_text(content, encoding="utf-8")
    for command in ("batch", "validate"):
        code, _, err = run(capsys, command, str(path), *extra)
        assert code == 2
        assert "holds no pushes" in err
        assert "--allow-empty" in err
        code, _, _ = run(capsys, command, str(path), "--allow-empty")
        assert code == 0
    assert server.requests() == []


def test_stdin_with_a_bom_or_a_json_array_is_read_not_taken_for_an_empty_csv(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    inputs = [
        b"\xef\xbb\xbf" + json.dumps(PUSH).encode() + b"\r\n",
        json.dumps(pushes(2)).encode(),
    ]
    for data in inputs:
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="latin-1")
        monkeypatch.setattr(sys, "stdin", stdin)
        code, out, _ = run(capsys, "validate", "-")
        assert code == 0
        assert "0 invalid" in out
        assert "0 pushes" not in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello\n")))
    code, _, err = run(capsys, "batch", "-")
    assert code == 2
    assert "can't tell its format" in err
    assert server.requests() == []


def test_hostile_file_content_is_reported_escaped_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = tmp_path / "pushes.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({**PUSH, "\x1b[31mred": 1}) + "\n")
        handle.write(json.dumps({**PUSH, "\ud800": 1}) + "\n")  # a lone surrogate, escaped
        handle.write('{"title": ' + "[" * 100_000 + "\n")
        handle.write("x" * 50_000_000 + "\n")
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    assert "\x1b" not in out + err
    assert out.splitlines() == [
        "line 1: \\x1b[31mred: is not a field of a web push",
        "line 2: \\ud800: is not a field of a web push",
        "line 3: is JSON nested too deeply",
        "line 4: is longer than 262144 characters",
        "4 pushes checked: 0 valid, 4 invalid",
    ]


def test_messages_speak_the_users_terms(server: ThreadedFake, capsys: pytest.CaptureFixture[str]):
    argv = list(SEND_ARGS)
    argv[argv.index("--ttl") + 1] = "1h"  # a unit is understood
    code, _, _ = run(capsys, *argv, "--partner-id", PARTNER)
    assert code == 0
    assert server.launches()[0].body["ttl"] == "3600"
    code, _, err = run(capsys, "fake-server", "--fault", "bogus")
    assert code == 2
    assert "invalid literal" not in err
    assert "int()" not in err
    assert "argument --fault: " in err


def test_a_locked_journal_is_an_error_before_any_summary(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    import fcntl

    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(3))
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"journal":"insider-webpush batch","version":2}\n')
    with open(journal, "rb+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, out, err = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 2
    assert "in use by another batch" in err
    assert "batch summary" not in out  # no blank "0 of 3"
    assert "0/3 done" not in err  # nor a progress line for a run that never started
    assert server.requests() == []


def test_a_journal_mismatch_is_reported_by_line(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(5))
    journal = tmp_path / "journal.jsonl"
    code, _, _ = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 0
    rows = pushes(5)
    rows[3]["title"] = "edited"
    path.write_text("\n" + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, _, err = run(capsys, "batch", str(path), "--journal", str(journal))
    assert code == 2
    assert "error: line 5 does not match the journal" in err  # push #3, after a blank line
    assert "push #" not in err


def test_failed_out_is_checked_before_anything_is_sent(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(3))
    before = path.read_text()
    code, _, err = run(capsys, "batch", str(path), "--failed-out", str(path))
    assert code == 2
    assert "is the input file" in err
    assert path.read_text() == before  # the input is never wiped
    code, _, err = run(capsys, "batch", str(path), "--failed-out", str(tmp_path / "no" / "x"))
    assert code == 2
    assert "No such file or directory" in err
    assert server.requests() == []


def test_a_fifo_is_read_once_like_stdin(
    server: ThreadedFake, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    server.add_fault(Fault(status=400, at={1}))
    fifo = tmp_path / "pushes.fifo"
    os.mkfifo(fifo)
    text = "".join(json.dumps(p) + "\n" for p in pushes(3))

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    failed_out = tmp_path / "failed.jsonl"
    code, _, _ = run(
        capsys, "batch", str(fifo), "--concurrency", "1", "--failed-out", str(failed_out)
    )
    writer.join(timeout=10)
    assert code == 1
    assert len(server.launches()) == 2
    assert [json.loads(line)["title"] for line in failed_out.read_text().splitlines()] == ["Push 1"]


def test_a_refused_key_exits_2_even_when_no_push_was_left_unsent(
    server: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("INSIDER_API_KEY", "ck")
    path = write_jsonl(tmp_path / "pushes.jsonl", pushes(3))
    code, _, err = run(capsys, "batch", str(path))
    assert code == 2
    assert "check INSIDER_API_KEY" in err
