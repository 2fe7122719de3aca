"""Instructions counted by valgrind's callgrind: what the benchmarks give beside CPU time,
because the machine's load does not move it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable


def per_unit(argv_for: Callable[[int], list[str]], small: int, large: int) -> float:
    """Instructions per unit of work: a run of ``large`` units minus one of ``small`` (start-up
    and warm-up cancel out), divided by ``large - small``. ``argv_for(n)`` is the command line
    of a run of ``n`` units."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    totals = []
    for n in (small, large):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv_for(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        collected = re.search(r"Collected : (\d+)", done.stderr)
        assert collected is not None, done.stderr[-2000:]
        totals.append(int(collected.group(1)))
    return (totals[1] - totals[0]) / (large - small)
