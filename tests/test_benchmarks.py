"""Each benchmark script runs end to end at a tiny size and ends with its RESULT line.

The figures themselves are not judged here (a loaded CI machine would make that flaky); only
that the scripts still run against the current SDK and report every key they promise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(path: Path) -> Any:
    """The module at `path`, loaded by its path (neither benchmarks/ nor tests/ is on
    sys.path)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


spread = _module(BENCHMARKS / "_spread.py")  # loaded once
perf = _module(BENCHMARKS / "_perf.py")


def run_script(script: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def result_of(script: str, *args: str) -> dict[str, Any]:
    proc = run_script(script, *args)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.rstrip("\n").splitlines()[-1]
    assert last.startswith("RESULT {"), proc.stdout
    assert sum(line.startswith("RESULT ") for line in proc.stdout.splitlines()) == 1
    result: dict[str, Any] = json.loads(last.removeprefix("RESULT "))
    return result


def usage_error(script: str, *args: str) -> str:
    """What the script prints to stderr when it refuses its arguments (exit status 2)."""
    proc = run_script(script, *args, timeout=30)
    assert proc.returncode == 2, proc.stdout
    return proc.stderr


def test_rate(tmp_path: Path) -> None:
    plot = tmp_path / "rate.png"
    result = result_of("rate.py", "--runs", "40/0.4", "--windows", "1", "--plot", str(plot))
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert result["rate_limit"] == 40
    assert result["rate_period"] == 0.4
    assert result["sent"] == 80  # every push of the run was confirmed
    assert isinstance(result["rejected_429"], int)
    assert 0 < result["max_in_window"] <= 80
    assert 0 < result["utilization"] <= 1.0
    assert result["cpu_hogs"] == 0
    assert result["server"] == "process"
    # The server stands in for Insider's: ahead of this machine's load when this user may.
    if os.geteuid() == 0:
        assert result["server_nice"] == -20
    assert result["runs"][0]["server_nice"] == result["server_nice"]
    # The grants the client's limiter made, timed at the client: never over the quota.
    assert 0 < result["runs"][0]["client_max_in_window"] <= 40


def test_rate_server_nice() -> None:
    # A lower priority is allowed to everyone.
    result = result_of("rate.py", "--runs", "40/0.4", "--windows", "1", "--server-nice", "5")
    assert result["server_nice"] == 5
    assert "--server-nice must be between -20 and 19" in usage_error(
        "rate.py", "--server-nice", "20"
    )
    assert "not with --inline-server" in usage_error(
        "rate.py", "--server-nice", "0", "--inline-server"
    )


def test_rate_says_when_the_server_may_not_be_raised() -> None:
    # Root without CAP_SYS_NICE (setpriv, from util-linux), or any other user, may not raise
    # the server's priority: the run goes on at nice 0, and says so.
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to drop CAP_SYS_NICE"
        prefix = [setpriv, "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]
    proc = subprocess.run(
        [
            *prefix,
            sys.executable,
            str(BENCHMARKS / "rate.py"),
            "--runs",
            "40/0.4",
            "--windows",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "the server runs at nice 0, not -20" in proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1].removeprefix("RESULT "))
    assert result["server_nice"] == 0
    assert result["runs"][0]["client_max_in_window"] <= 40  # the client's own grants


def test_rate_arguments() -> None:
    assert "is not LIMIT/PERIOD" in usage_error("rate.py", "--runs", "x")
    assert "the limit must be 1 or more" in usage_error("rate.py", "--runs", "0/1")
    assert "the period above 0" in usage_error("rate.py", "--runs", "10/0")
    assert "--windows must be 1 or more" in usage_error("rate.py", "--windows", "0")
    assert "--processes must be 1 or more" in usage_error(
        "rate.py", "--redis", "redis://127.0.0.1:1/0", "--processes", "0"
    )
    assert "--inline-server is not for --redis" in usage_error(
        "rate.py", "--redis", "redis://127.0.0.1:1/0", "--inline-server"
    )


def test_rate_cpu_hog() -> None:
    result = result_of("rate.py", "--runs", "40/0.4", "--windows", "1", "--cpu-hog", "1")
    assert result["cpu_hogs"] == 1
    (run,) = result["runs"]
    for key in ("rate_limit", "rate_period", "sent", "rejected_429", "max_in_window"):
        assert run[key] == result[key], key
    assert run["sent"] == 80
    assert 0 < run["utilization"] <= 1.0
    assert run["client_cpu"] > 0
    assert run["server_cpu"] > 0


def test_journal() -> None:
    result = result_of("journal.py", "--pushes", "200", "--rounds", "1")
    assert result["pushes"] == 200
    assert result["wire"] == "loopback"  # a batch talks to a server: its figures head RESULT
    assert set(result["wires"]) == {"stub", "loopback"}
    for figures in (result, *result["wires"].values()):
        for key in ("journaled_pps", "unjournaled_pps", "throughput_ratio"):
            assert figures[key] > 0, key
        # One round: its ratio is the ratio of the two sides' pushes/s.
        assert figures["throughput_ratio_rounds"] == [figures["throughput_ratio"]]
        assert figures["throughput_ratio_ci95"] is None  # too few rounds for an interval
        assert figures["throughput_ratio"] == pytest.approx(
            figures["journaled_pps"] / figures["unjournaled_pps"], 0.01
        )
        assert figures["journal_bytes_per_push"] > 100  # a sending and a done line a push
    # Pinned like overhead.py where the machine has two CPUs for it.
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        assert len(result["pinned_cpus"]) == 2
    else:
        assert result["pinned_cpus"] is None


def test_journal_interval_of_six_rounds() -> None:
    """Six rounds are the fewest with a 95 % interval of their median: the lowest and the
    highest round."""
    result = result_of("journal.py", "--pushes", "60", "--rounds", "6", "--wire", "stub")
    rounds = result["throughput_ratio_rounds"]
    assert len(rounds) == 6
    assert result["throughput_ratio_ci95"] == [min(rounds), max(rounds)]


def test_journal_says_why_it_gives_no_interval() -> None:
    proc = run_script("journal.py", "--pushes", "50", "--rounds", "5", "--wire", "stub")
    assert proc.returncode == 0, proc.stderr
    assert "95 % interval: none under 6 rounds (--rounds 6 or more)" in proc.stdout


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, None),
        (5, None),  # all five on one side of the median: 1 chance in 16, over 5 %
        (6, [1, 6]),  # ... of six: 1 in 32
        (9, [2, 8]),
        (15, [4, 12]),  # P(3 or fewer of 15 below) = 1.76 %; 4 or fewer: 5.9 %
        (36, [12, 25]),
    ],
)
def test_median_interval(n: int, expected: list[int] | None) -> None:
    values = list(range(n, 0, -1))  # unsorted: the interval sorts them
    assert spread.median_interval(values) == expected


def test_median_interval_at_another_confidence() -> None:
    assert spread.median_interval(list(range(1, 6)), confidence=0.9) == [1, 5]


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99, 0.999, 1 - 2**-52])
def test_median_interval_is_the_exact_sign_test_one(confidence: float) -> None:
    """Against the binomial coverage computed in fractions: the largest k whose pair still
    covers the median with at least `confidence` (no float rounding lets a pair through)."""
    from fractions import Fraction
    from math import comb

    for n in range(80):
        best = None
        for k in range(1, n // 2 + 1):
            missed = Fraction(2 * sum(comb(n, i) for i in range(k)), 2**n)
            if 1 - missed < Fraction(confidence):
                break
            best = [k - 1, n - k]
        assert spread.median_interval(list(range(n)), confidence) == best, n


@pytest.mark.parametrize("confidence", [0, 1, -0.5, 1.5, float("nan")])
def test_median_interval_refuses_a_confidence_outside_0_1(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence: must be between 0 and 1"):
        spread.median_interval([1, 2, 3, 4, 5, 6], confidence)


def test_median_interval_refuses_nan() -> None:
    with pytest.raises(ValueError, match="values: NaN has no rank"):
        spread.median_interval([1.0, 2.0, float("nan"), 3.0, 4.0, 5.0])


def test_journal_no_pin() -> None:
    result = result_of(
        "journal.py", "--pushes", "50", "--rounds", "1", "--wire", "loopback", "--no-pin"
    )
    assert result["pinned_cpus"] is None


def test_perf_counts_a_sample_once_and_only_within_the_batch() -> None:
    within = "py::run:/b/journal.py"
    parts = ("py::_position_digest:", "py::FileJournal.")
    samples = [
        # in the batch, in the journal twice over (its write under its line): one sample
        "\t1 vfs_write\n\t2 py::FileJournal._write:/p/ledger.py\n"
        "\t3 py::FileJournal.write_sending:/p/ledger.py\n\t4 py::run:/b/journal.py",
        # in the batch, in the position's hash
        "\t1 _hashlib_openssl_sha256\n\t2 py::_position_digest:/p/batch.py\n"
        "\t3 py::run:/b/journal.py",
        # in the batch, elsewhere
        "\t1 tcp_sendmsg\n\t2 py::_exchange:/p/transport.py\n\t3 py::run:/b/journal.py",
        # outside it (start-up), a journal frame or not
        "\t1 py::FileJournal._load:/p/ledger.py\n\t2 py::<module>:/b/journal.py",
        "\t1 py::_find_and_load:<frozen importlib._bootstrap>",
        "",
    ]
    assert perf.count(samples, within, parts) == (2, 3)


def test_the_frames_journal_share_counts_are_the_sdks() -> None:
    # journal.py --share finds the journal's code by these names (JOURNAL_FRAMES): a rename
    # would make its share silently 0.
    from insider_webpush import batch, ledger

    assert callable(batch._position_digest)
    assert ledger.FileJournal.__qualname__ == "FileJournal"
    text = (BENCHMARKS / "journal.py").read_text()
    assert 'JOURNAL_FRAMES = ("py::_position_digest:", "py::FileJournal.")' in text


def test_perf_share_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [sys.executable, "-c", "pass"]
    monkeypatch.setattr(perf.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="needs Linux perf"):
        perf.shares(argv, "py::run:", ("py::FileJournal.",))
    monkeypatch.setattr(perf.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(perf, "sys", SimpleNamespace(version_info=(3, 12, 1)))
    with pytest.raises(SystemExit, match=r"needs Python 3\.13 or newer"):
        perf.shares(argv, "py::run:", ("py::FileJournal.",))


def test_journal_share_refuses_before_the_rounds() -> None:
    # No perf on the PATH: said at once, by name, before any round is measured.
    args = ["--pushes", "50", "--rounds", "1", "--wire", "stub", "--share"]
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "journal.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": "/nonexistent"},
    )
    assert proc.returncode == 1
    assert "--share needs Linux perf" in proc.stderr
    assert proc.stdout == ""  # no table, no RESULT: nothing was measured


def test_overhead() -> None:
    result = result_of(
        "overhead.py", "--requests", "300", "--stub-requests", "300", "--rounds", "1"
    )
    for key in ("sdk_cpu_us", "bare_cpu_us", "cpu_ratio", "sdk_rps", "bare_rps"):
        assert result[key] > 0, key
    assert result["cpu_ratio"] == pytest.approx(result["sdk_cpu_us"] / result["bare_cpu_us"], 0.01)
    assert result["cpu_ratio_rounds"] == [result["cpu_ratio"]]  # one round
    assert result["cpu_ratio_ci95"] is None  # too few rounds for an interval
    if importlib.util.find_spec("uvloop") and importlib.util.find_spec("orjson"):
        assert result["cpu_ratio_speed_rounds"] == [result["cpu_ratio_speed"]]
        assert result["cpu_ratio_speed_ci95"] is None
    assert "pinned_cpus" in result


def test_memory() -> None:
    result = result_of("memory.py", "--n", "3000", "--gather-n", "1000")
    assert result["n"] == 3000
    assert isinstance(result["rss_growth_mb"], float)
    assert result["gather_n"] == 1000


# tests/redis_server.py's fixture (tests/ is not on sys.path: loaded by its path).
redis_server = _module(Path(__file__).resolve().parent / "redis_server.py").redis_server


@pytest.mark.redis
def test_fleet(redis_server: Any) -> None:
    result = result_of(
        "fleet.py", "--sends", "50", "--rounds", "1", "--warmup", "5", "--redis", redis_server.url
    )
    assert result["sync_ratio"] == pytest.approx(result["sync_us"] / result["async_us"], 0.01)
    assert len(result["sync"]) == 4  # two wires, one caller and eight
    assert result["hop_us"] > 0
    stores = result["dedupe"]
    assert set(stores) == {"none", "memory", "sqlite", "redis"}
    for name in ("memory", "sqlite", "redis"):
        assert stores[name]["claim_us"] > 0, name
        assert stores[name]["replay_us"] > 0, name
    assert stores["redis"]["claim_round_trips"] >= 1
    assert stores["redis"]["replay_round_trips"] >= 1
