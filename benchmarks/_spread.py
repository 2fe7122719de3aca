"""How far the median of a benchmark's rounds can be trusted on a noisy machine.

The ratios of paired rounds (both sides of a round run side by side) move by far more than
the differences measured on a shared machine, and not in any known distribution. The
interval here assumes no shape for that noise, only that the rounds are independent draws
of it: it is the sign test's interval for the median, read off the sorted rounds (order
statistics). A machine whose speed drifts during a run breaks that assumption, and then
the interval is too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb


def median_interval(values: Sequence[float], confidence: float = 0.95) -> list[float] | None:
    """``[low, high]``, as ``RESULT`` gives it: the sorted values ``x[k-1]`` and ``x[n-k]``
    for the largest ``k`` at which they still hold the true median with at least
    ``confidence``, whatever the noise's distribution (``k`` or more of ``n`` values fall on
    one side of the median as often as a fair coin's heads do). None when there are too few
    values for any such pair: fewer than 6 at 95 %."""
    xs = sorted(values)
    n = len(xs)
    chosen = 0
    below = 0  # ways for fewer than k of n values to fall below the median
    for k in range(1, n // 2 + 1):
        below += comb(n, k - 1)
        if 1 - 2 * below / 2**n < confidence:
            break
        chosen = k
    if chosen == 0:
        return None
    return [xs[chosen - 1], xs[n - chosen]]
