"""How far the median of a benchmark's rounds can be trusted on a noisy machine.

The ratios of paired rounds (both sides of a round run side by side) move by far more than
the differences measured on a shared machine, and not in any known distribution. The
interval here assumes no shape for that noise, only that the rounds are independent draws
of it: it is the sign test's interval for the median, read off the sorted rounds (order
statistics). A machine whose speed drifts during a run breaks that assumption, and then
the interval is too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def median_interval(values: Sequence[float], confidence: float = 0.95) -> list[float] | None:
    """``[low, high]``, as ``RESULT`` gives it: the sorted values ``x[k-1]`` and ``x[n-k]``
    for the largest ``k`` at which they still hold the median with at least ``confidence``.
    The count of values below the median is that of heads in ``n`` tosses of a fair coin;
    the pair misses the median only when fewer than ``k`` fall on one side, whose chance is
    computed exactly (integers, no rounding). None when there are too few values for any
    such pair: fewer than 6 at 95 %.

    Raises:
        ValueError: ``confidence`` not strictly between 0 and 1, or a value is NaN (it has
            no rank).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be between 0 and 1 (exclusive), not {confidence!r}")
    xs = sorted(values)
    if any(math.isnan(x) for x in xs):
        raise ValueError("values: NaN has no rank")
    n = len(xs)
    num, den = float(confidence).as_integer_ratio()
    total = 2**n
    chosen = 0
    term = 1  # comb(n, k - 1), carried from one k to the next
    below = 0  # ways for fewer than k of n values to fall below the median
    for k in range(1, n // 2 + 1):
        below += term
        term = term * (n - k + 1) // k
        # coverage = 1 - 2 * below / 2**n, compared with confidence = num / den exactly
        if (total - 2 * below) * den < num * total:
            break
        chosen = k
    if chosen == 0:
        return None
    return [xs[chosen - 1], xs[n - chosen]]


def interval_words(interval: list[float] | None) -> str:
    """How the scripts print a `median_interval` (and why there is none)."""
    if interval is None:
        return "95 % interval: none under 6 rounds (--rounds 6 or more)"
    return f"95 % interval {interval[0]:.3f}-{interval[1]:.3f}"
