"""Shares of a run's CPU, sampled by Linux perf: what part of a batch some functions take,
counted within one run, so the machine's speed that hour (which moves CPU time by 10-20 %
from run to run) falls on both sides of the share alike.

Python 3.13's ``-X perf_jit`` names each Python frame in perf's call chains
(``py::FileJournal.write_sending:/…/ledger.py``); perf samples the CPU every 2.5 ms
(``cpu-clock``, 400 Hz: the only event a virtual machine without hardware counters has) with
the whole call chain, the kernel's part included (DWARF unwinding). A sample counts once
toward each frame it has in its chain, so nested functions are never counted twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence

SAMPLES_PER_SECOND = 400


def shares(argv: Sequence[str], within: str, parts: Sequence[str]) -> tuple[int, int]:
    """Run ``argv`` (a Python command line, its interpreter first) under ``perf record`` and
    count its samples: ``(inside, total)``, ``total`` the samples with a frame whose name
    contains ``within`` and ``inside`` those of them with a frame containing any of
    ``parts``. Needs Linux perf and Python 3.13 or newer (``-X perf_jit``)."""
    require()
    with tempfile.TemporaryDirectory(prefix="perf-share-") as tmp:
        raw, injected = os.path.join(tmp, "perf.data"), os.path.join(tmp, "perf.jit.data")
        # -k 1: the clock perf's JIT injection needs; the JIT dumps land in the working folder.
        record = ["perf", "record", "-k", "1", "--call-graph", "dwarf,16384", "-e", "cpu-clock"]
        record += ["-F", str(SAMPLES_PER_SECOND), "-o", raw, "--"]
        _run([*record, argv[0], "-X", "perf_jit", *argv[1:]], tmp)
        _run(["perf", "inject", "--jit", "-i", raw, "-o", injected], tmp)
        script = _run(["perf", "script", "-i", injected, "-F", "ip,sym"], tmp)
    return count(script.split("\n\n"), within, parts)


def require() -> None:
    """Raise SystemExit, naming what is missing, unless perf and Python 3.13+ are here."""
    if shutil.which("perf") is None:
        raise SystemExit("--share needs Linux perf (Debian package linux-perf)")
    if sys.version_info < (3, 13):
        raise SystemExit("--share needs Python 3.13 or newer (-X perf_jit names Python frames)")


def _run(argv: list[str], cwd: str) -> str:
    """``argv``'s standard output; SystemExit with the end of its standard error if it fails
    (e.g. perf refused by ``kernel.perf_event_paranoid``)."""
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        raise SystemExit(f"--share: {argv[0]} {argv[1]} failed: {done.stderr[-1500:]}")
    return done.stdout


def count(samples: Iterable[str], within: str, parts: Sequence[str]) -> tuple[int, int]:
    """``(inside, total)`` over ``samples``, each one sample's call chain as ``perf script``
    prints it (one frame a line): see ``shares``."""
    inside = total = 0
    for sample in samples:
        if within not in sample:
            continue
        total += 1
        frames = sample.splitlines()
        if any(part in frame for frame in frames for part in parts):
            inside += 1
    return inside, total
