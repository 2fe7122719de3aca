"""The outcome table, row by row: what a status, or how far a request got, says of a push."""

from __future__ import annotations

import pytest

from insider_webpush.outcomes import (
    CERTAIN_FAILURE_STATUSES,
    RETRY_SAFE_STATUSES,
    Stage,
    Verdict,
    verdict_for_stage,
    verdict_for_status,
)

SUCCESS = Verdict.SUCCESS
RETRY_SAFE = Verdict.RETRY_SAFE
CERTAIN = Verdict.CERTAIN_FAILURE
AMBIGUOUS = Verdict.AMBIGUOUS

# (status, verdict for a launch, verdict for an idempotent operation)
STATUS_TABLE: list[tuple[int, Verdict, Verdict]] = [
    # 2xx: carried out.
    (200, SUCCESS, SUCCESS),
    (201, SUCCESS, SUCCESS),
    (204, SUCCESS, SUCCESS),
    # 3xx: a redirect is never followed, and the launch may have happened.
    (301, AMBIGUOUS, RETRY_SAFE),
    (302, AMBIGUOUS, RETRY_SAFE),
    # The statuses that say Insider refused the request as it stands.
    (400, CERTAIN, CERTAIN),
    (401, CERTAIN, CERTAIN),
    (403, CERTAIN, CERTAIN),
    (404, CERTAIN, CERTAIN),
    (422, CERTAIN, CERTAIN),
    (424, CERTAIN, CERTAIN),
    # Other 4xx the table does not know: ambiguous.
    (405, AMBIGUOUS, RETRY_SAFE),
    (408, AMBIGUOUS, RETRY_SAFE),
    (409, AMBIGUOUS, RETRY_SAFE),
    (413, AMBIGUOUS, RETRY_SAFE),
    # The quota: certainly not carried out, worth resending.
    (429, RETRY_SAFE, RETRY_SAFE),
    # Every 5xx, 503 and the CDN's 520-599 included.
    (500, AMBIGUOUS, RETRY_SAFE),
    (502, AMBIGUOUS, RETRY_SAFE),
    (503, AMBIGUOUS, RETRY_SAFE),
    (504, AMBIGUOUS, RETRY_SAFE),
    (520, AMBIGUOUS, RETRY_SAFE),
    (521, AMBIGUOUS, RETRY_SAFE),
    (522, AMBIGUOUS, RETRY_SAFE),
    (523, AMBIGUOUS, RETRY_SAFE),
    (524, AMBIGUOUS, RETRY_SAFE),
    (525, AMBIGUOUS, RETRY_SAFE),
    (526, AMBIGUOUS, RETRY_SAFE),
    (527, AMBIGUOUS, RETRY_SAFE),
    (599, AMBIGUOUS, RETRY_SAFE),
    # Not HTTP statuses one expects: unknown, so ambiguous.
    (600, AMBIGUOUS, RETRY_SAFE),
    (999, AMBIGUOUS, RETRY_SAFE),
    (100, AMBIGUOUS, RETRY_SAFE),
]


@pytest.mark.parametrize(("status", "verdict", "_idempotent"), STATUS_TABLE)
def test_status_verdict(status: int, verdict: Verdict, _idempotent: Verdict) -> None:
    assert verdict_for_status(status) is verdict
    assert verdict_for_status(status, idempotent=False) is verdict


@pytest.mark.parametrize(("status", "_verdict", "verdict"), STATUS_TABLE)
def test_status_verdict_idempotent(status: int, _verdict: Verdict, verdict: Verdict) -> None:
    assert verdict_for_status(status, idempotent=True) is verdict


def test_status_table_covers_the_named_statuses() -> None:
    statuses = {status for status, _, _ in STATUS_TABLE}
    assert statuses >= CERTAIN_FAILURE_STATUSES | RETRY_SAFE_STATUSES
    assert frozenset({400, 401, 403, 404, 422, 424}) == CERTAIN_FAILURE_STATUSES
    assert frozenset({429}) == RETRY_SAFE_STATUSES


@pytest.mark.parametrize("status", [403, 429])
def test_throttle_statuses(status: int) -> None:
    """An endpoint that throttles with 403 makes its 403 retry-safe, not a certain failure."""
    assert verdict_for_status(status, throttle_statuses=frozenset({403, 429})) is RETRY_SAFE


def test_throttle_statuses_replace_the_default() -> None:
    assert verdict_for_status(429, throttle_statuses=frozenset()) is AMBIGUOUS


# (stage, verdict for a launch, verdict for an idempotent operation)
STAGE_TABLE: list[tuple[Stage, Verdict, Verdict]] = [
    (Stage.NOT_SENT, RETRY_SAFE, RETRY_SAFE),
    (Stage.WRITING, CERTAIN, RETRY_SAFE),  # a read cut off mid-write is simply sent again
    (Stage.SENT, AMBIGUOUS, RETRY_SAFE),
]


@pytest.mark.parametrize(("stage", "verdict", "idempotent_verdict"), STAGE_TABLE)
def test_stage_verdict(stage: Stage, verdict: Verdict, idempotent_verdict: Verdict) -> None:
    assert verdict_for_stage(stage) is verdict
    assert verdict_for_stage(stage, idempotent=False) is verdict
    assert verdict_for_stage(stage, idempotent=True) is idempotent_verdict


def test_stage_table_covers_every_stage() -> None:
    assert [stage for stage, _, _ in STAGE_TABLE] == list(Stage)


@pytest.mark.parametrize(
    ("verdict", "ambiguous"),
    [(SUCCESS, False), (RETRY_SAFE, False), (CERTAIN, False), (AMBIGUOUS, True)],
)
def test_only_ambiguous_is_ambiguous(verdict: Verdict, ambiguous: bool) -> None:
    assert verdict.ambiguous is ambiguous
