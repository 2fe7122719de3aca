"""The one outcome table: what a status, or how far a request got, says about a push.

Insider has no idempotency key, so the SDK must never resend what it may already have
launched. Every answer and every failure is read from this table, and from nothing else:
the client, the retry policy, the errors, the batch and its journal, the CLI and
FakeInsider all ask it.

Four verdicts:

- `SUCCESS`: Insider carried the request out (2xx).
- `RETRY_SAFE`: Insider certainly did not carry it out and a resend may succeed: a
  `429` (and the statistics endpoints' `403 "Request limit exceeded"`, their throttling
  answer), or a request of which no byte was handed to the operating system.
- `CERTAIN_FAILURE`: Insider certainly did not carry it out, and resending the same
  bytes would fail the same way (400, 401, 403, 404, 422, 424), or the request was cut off
  while being written so the server never had all of it.
- `AMBIGUOUS`: it may have been carried out. Every other status: all of 5xx (503 and the
  CDN's 520-599 included, since a CDN answers them for requests that reached the origin and
  notification services have answered 503 for messages they had delivered), any 3xx (a
  redirect is never followed: a launch is not re-posted elsewhere), and any status this
  table does not know; and a request fully handed to the operating system that got no
  complete answer.

For an idempotent operation (a read, which changes nothing) every failure that is not a
certain failure by its status is retry-safe instead, whatever stage it reached: there is
nothing to launch twice.

How far a request got is a [`Stage`][insider_webpush.outcomes.Stage], which the transport
reports from the wire ([`insider_webpush.transport`][insider_webpush.transport]), never
guessed from an exception's type.

| outcome | verdict |
|---|---|
| 2xx | `SUCCESS` |
| 429; 403 from an endpoint that throttles with it (statistics) | `RETRY_SAFE` |
| `Stage.NOT_SENT` | `RETRY_SAFE` |
| 400, 401, 403 (elsewhere), 404, 422, 424 | `CERTAIN_FAILURE` |
| `Stage.WRITING` | `CERTAIN_FAILURE` |
| any other status: every 5xx, 3xx, unknown | `AMBIGUOUS` (`RETRY_SAFE` for a read) |
| `Stage.SENT` | `AMBIGUOUS` (`RETRY_SAFE` for a read) |

Insider documents 400, 401, 424 and 429; 403, 404 and 422 come from its statistics
endpoints (Postman collection). No source says whether a 5xx was carried out: the SDK
assumes it may have been.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = [
    "CERTAIN_FAILURE_STATUSES",
    "RETRY_SAFE_STATUSES",
    "Stage",
    "Verdict",
    "verdict_for_stage",
    "verdict_for_status",
]


class Verdict(enum.Enum):
    """What one attempt's result says about the push."""

    SUCCESS = "success"
    RETRY_SAFE = "retry-safe"
    CERTAIN_FAILURE = "certain failure"
    AMBIGUOUS = "ambiguous"

    @property
    def ambiguous(self) -> bool:
        """The push may have gone out."""
        return self is Verdict.AMBIGUOUS


class Stage(enum.Enum):
    """How far a failed request got on the wire."""

    NOT_SENT = "not sent"
    """No byte of it was handed to the operating system: it waited for a pooled connection,
    was connecting (TCP, TLS, a proxy), or its connection was found closed before the write."""

    WRITING = "writing"
    """It was being written when it failed: the server never had all of it."""

    SENT = "sent"
    """It was fully handed to the operating system and no complete answer came back."""


RETRY_SAFE_STATUSES: Final = frozenset({429})
"""Statuses that certainly were not carried out and may succeed when resent: the quota's."""
CERTAIN_FAILURE_STATUSES: Final = frozenset({400, 401, 403, 404, 422, 424})
"""Statuses that certainly were not carried out and would fail again the same way."""

_STAGES: Final[Mapping[Stage, Verdict]] = {
    Stage.NOT_SENT: Verdict.RETRY_SAFE,
    Stage.WRITING: Verdict.CERTAIN_FAILURE,
    Stage.SENT: Verdict.AMBIGUOUS,
}


def verdict_for_status(
    status: int,
    *,
    idempotent: bool = False,
    throttle_statuses: frozenset[int] = RETRY_SAFE_STATUSES,
) -> Verdict:
    """The verdict of an HTTP `status`.

    Args:
        status: The HTTP status of an answer.
        idempotent: The operation changes nothing (a read): a status that is not a certain
            failure is then retry-safe rather than ambiguous.
        throttle_statuses: The statuses the endpoint throttles with (`429`; some endpoints
            also answer `403` when their quota is exceeded).

    Returns:
        `SUCCESS` for 2xx, `RETRY_SAFE` for a throttle status, `CERTAIN_FAILURE` for 400,
            401, 403, 404, 422 and 424, and `AMBIGUOUS` (`RETRY_SAFE` when `idempotent`)
            for every other status.
    """
    if 200 <= status < 300:
        return Verdict.SUCCESS
    if status in throttle_statuses:
        return Verdict.RETRY_SAFE
    if status in CERTAIN_FAILURE_STATUSES:
        return Verdict.CERTAIN_FAILURE
    return Verdict.RETRY_SAFE if idempotent else Verdict.AMBIGUOUS


def verdict_for_stage(stage: Stage, *, idempotent: bool = False) -> Verdict:
    """The verdict of a request that failed at `stage` with no answer.

    Args:
        stage: How far the request got.
        idempotent: The operation changes nothing (a read): every stage is then retry-safe.

    Returns:
        `RETRY_SAFE` for `NOT_SENT`, `CERTAIN_FAILURE` for `WRITING`, `AMBIGUOUS` for
            `SENT`; `RETRY_SAFE` for any stage when `idempotent`.
    """
    verdict = _STAGES[stage]
    if idempotent and verdict is not Verdict.RETRY_SAFE:
        return Verdict.RETRY_SAFE
    return verdict
