"""What the fake remembers of each request, and the count of arrivals in a sliding window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..endpoints import Operation

__all__ = ["RecordedRequest", "max_in_window"]


@attrs.frozen
class RecordedRequest:
    """One request as the fake received it.

    `index` is its place in order of arrival (0-based); `operation` is None for an unknown route.
    `body` is the decoded JSON (the text itself when it was not JSON, None when empty;
    byte-identical bodies share one object: treat it as read-only); `arrived_at` is its arrival time
    in seconds (for [`FakeInsider`][insider_webpush.testing.server.FakeInsider], the event loop's
    `loop.time()` once the body was read); `status` is what the server answered (None: the
    connection was dropped); `campaign_id` is the id in a success answer. `headers` hold
    `Authorization: Bearer <redacted>`, never the key.
    """

    index: int
    method: str
    path: str
    operation: Operation | None
    body: Any  # decoded JSON, as json.loads types it: `launch.body["title"]` type-checks
    arrived_at: float
    status: int | None
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    campaign_id: int | None = None


def max_in_window(times: Sequence[float], period: float) -> int:
    """Most of the sorted `times` in any half-open window `[s, s + period)`."""
    best = 0
    start = 0
    for end, time in enumerate(times):
        edge = time - period  # the same arithmetic as the quota's, so the two agree
        while times[start] <= edge:
            start += 1
        best = max(best, end - start + 1)
    return best
