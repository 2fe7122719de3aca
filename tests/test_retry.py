"""RetryPolicy.delay as a table: (attempt, outcome, headers) -> seconds to wait, or stop."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any

import aiohttp
import pytest

from insider_webpush import APIError, RetryPolicy, TransportError, ValidationError
from insider_webpush.outcomes import Stage
from insider_webpush.retry import parse_retry_after

NOW = 1_800_000_000.0  # a fixed "now" for HTTP dates
POLICY = RetryPolicy(max_attempts=5, base=0.5, cap=3.0, jitter=0.25, max_retry_after=60.0)


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


def no_jitter() -> float:
    return 0.0


SAFE = TransportError("could not connect", stage=Stage.NOT_SENT)
CUT_OFF = TransportError("reset while writing", stage=Stage.WRITING)
MAYBE_SENT = TransportError("read timed out", stage=Stage.SENT)

TABLE: list[tuple[int, int | BaseException, dict[str, str] | None, float | None]] = [
    # 429 with Retry-After in seconds: honoured as given, whatever the attempt.
    (1, 429, {"Retry-After": "7"}, 7.0),
    (3, 429, {"Retry-After": "7"}, 7.0),
    (1, 429, {"Retry-After": "0.01"}, 0.01),
    (1, 429, {"Retry-After": " 3 "}, 3.0),
    (1, 429, {"Retry-After": "0"}, 0.0),
    # ... as an HTTP date, measured from `now`; a date in the past means "now".
    (1, 429, {"Retry-After": http_date(30)}, 30.0),
    (2, 429, {"Retry-After": http_date(-30)}, 0.0),
    # ... unreadable, negative or infinite: fall back to the backoff.
    (1, 429, {"Retry-After": "soon"}, 0.5),
    (2, 429, {"Retry-After": "soon"}, 1.0),
    (1, 429, {"Retry-After": "-1"}, 0.5),
    (1, 429, {"Retry-After": "inf"}, 0.5),
    (1, 429, {"Retry-After": "nan"}, 0.5),
    (1, 429, {"Retry-After": ""}, 0.5),
    (1, 429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}, 0.5),  # no zone: not HTTP
    # ... at and over max_retry_after: waiting less would only earn another 429.
    (1, 429, {"Retry-After": "60"}, 60.0),
    (1, 429, {"Retry-After": "60.5"}, None),
    (1, 429, {"Retry-After": http_date(61)}, None),
    # ... without the header: exponential backoff, capped.
    (1, 429, {}, 0.5),
    (1, 429, None, 0.5),
    (2, 429, {}, 1.0),
    (3, 429, {}, 2.0),
    (4, 429, {}, 3.0),
    # Statuses that are never retried: bad input, or a launch that may have gone out (every
    # 5xx, 503 included, every 3xx and every status the outcome table does not know).
    (1, 400, {}, None),
    (1, 401, {}, None),
    (1, 403, {}, None),
    (1, 404, {}, None),
    (1, 424, {}, None),
    (1, 422, {}, None),
    (1, 500, {}, None),
    (1, 502, {}, None),
    (1, 503, {}, None),
    (1, 503, {"Retry-After": "1"}, None),
    (1, 504, {}, None),
    (1, 520, {}, None),
    (1, 524, {}, None),
    (1, 500, {"Retry-After": "1"}, None),
    (1, 301, {}, None),
    (1, 302, {"Location": "https://elsewhere.example"}, None),
    (1, 405, {}, None),
    (1, 999, {}, None),
    (1, 200, {}, None),
    # Exceptions: only a request of which no byte was sent is retried.
    (1, SAFE, None, 0.5),
    (3, SAFE, {}, 2.0),
    (4, SAFE, {}, 3.0),
    (1, CUT_OFF, None, None),
    (1, MAYBE_SENT, None, None),
    (1, ValueError("x"), None, None),
    (1, TimeoutError(), None, None),
    (1, aiohttp.ServerDisconnectedError(), None, None),
    (1, aiohttp.ClientConnectionError(), None, None),  # raw aiohttp errors are not judged
    (1, APIError(503, "x"), None, None),
    (1, asyncio.CancelledError(), None, None),
    (1, KeyboardInterrupt(), None, None),
    # The last attempt: stop, whatever the outcome said.
    (5, 429, {"Retry-After": "1"}, None),
    (5, 429, {}, None),
    (5, SAFE, None, None),
    (6, 429, {}, None),
]


@pytest.mark.parametrize(("attempt", "outcome", "headers", "expected"), TABLE)
def test_delay_table(
    attempt: int,
    outcome: int | BaseException,
    headers: dict[str, str] | None,
    expected: float | None,
) -> None:
    delay = POLICY.delay(attempt, outcome, headers, now=NOW, rng=no_jitter)
    if expected is None:
        assert delay is None
    else:
        assert delay == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 10, 40])
def test_backoff_is_exponential_then_capped(attempt: int) -> None:
    policy = RetryPolicy(base=0.1, cap=2.0, jitter=0.0)
    assert policy.backoff(attempt) == pytest.approx(min(2.0, 0.1 * 2 ** (attempt - 1)))


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8])
def test_jitter_bounds(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=10, base=0.5, cap=4.0, jitter=0.25)
    full = min(4.0, 0.5 * 2 ** (attempt - 1))
    assert policy.backoff(attempt, rng=lambda: 0.0) == pytest.approx(full)
    assert policy.backoff(attempt, rng=lambda: 1.0) == pytest.approx(full * 0.75)
    rng = random.Random(attempt)
    delays = [policy.delay(attempt, 429, rng=rng.random) for _ in range(200)]
    assert all(d is not None and full * 0.75 <= d <= full for d in delays)
    assert len(set(delays)) > 100  # the rng is really used: no two senders wait in lockstep


def test_jitter_applies_to_connection_retries_but_not_to_retry_after() -> None:
    assert POLICY.delay(1, SAFE, rng=lambda: 1.0) == pytest.approx(0.5 * 0.75)
    assert POLICY.delay(1, 429, {"Retry-After": "4"}, rng=lambda: 1.0) == 4.0


def test_retry_after_date_uses_the_clock_without_now() -> None:
    header = email.utils.formatdate(time.time() + 50, usegmt=True)
    delay = RetryPolicy(max_retry_after=120).delay(1, 429, {"Retry-After": header})
    assert delay is not None
    assert 45 < delay <= 50


def test_never_tries_once() -> None:
    never = RetryPolicy.never()
    assert never.max_attempts == 1
    assert never.delay(1, 429, {"Retry-After": "1"}) is None
    assert never.delay(1, 429) is None
    assert never.delay(1, SAFE) is None


def test_defaults_retry_a_429() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts > 1
    assert policy.delay(1, 429, {"Retry-After": "2"}) == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base": 0},
        {"cap": -1},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"max_retry_after": -1},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - attrs' validators raise plain ValueError
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        ("1.5", 1.5),
        ("  2  ", 2.0),
        ("-3", None),
        ("inf", None),
        ("", None),
        ("tomorrow", None),
        (http_date(10), 10.0),
        (http_date(-10), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_validation_error_is_not_retried() -> None:
    assert POLICY.delay(1, ValidationError("title", "x")) is None


# -- the outcome table through the policy: idempotent operations and resend_statuses --------

RESEND_503 = RetryPolicy(
    max_attempts=5, base=0.5, cap=3.0, jitter=0.25, max_retry_after=60.0, resend_statuses={503}
)
B = 0.5  # the backoff of attempt 1 without jitter

# outcome -> (launch, idempotent, launch with resend_statuses={503}, idempotent with it)
OUTCOME_TABLE: list[
    tuple[int | BaseException, float | None, float | None, float | None, float | None]
] = [
    (200, None, None, None, None),
    (201, None, None, None, None),
    (301, None, B, None, B),
    (302, None, B, None, B),
    (400, None, None, None, None),
    (401, None, None, None, None),
    (403, None, None, None, None),
    (404, None, None, None, None),
    (422, None, None, None, None),
    (424, None, None, None, None),
    (405, None, B, None, B),
    (408, None, B, None, B),
    (409, None, B, None, B),
    (429, B, B, B, B),
    (500, None, B, None, B),
    (502, None, B, None, B),
    (503, None, B, B, B),
    (504, None, B, None, B),
    (520, None, B, None, B),
    (524, None, B, None, B),
    (599, None, B, None, B),
    (999, None, B, None, B),
    (SAFE, B, B, B, B),
    (CUT_OFF, None, B, None, B),
    (MAYBE_SENT, None, B, None, B),
    (ValueError("not ours"), None, None, None, None),
    (APIError(503, "an error object is not a status"), None, None, None, None),
    (asyncio.CancelledError(), None, None, None, None),
]


def _ids(row: tuple[object, ...]) -> str:
    outcome = row[0]
    if isinstance(outcome, TransportError):
        return outcome.stage.name
    return str(outcome) if isinstance(outcome, int) else type(outcome).__name__


@pytest.mark.parametrize(
    ("outcome", "launch", "idempotent", "launch_resend", "idempotent_resend"),
    OUTCOME_TABLE,
    ids=[_ids(row) for row in OUTCOME_TABLE],
)
def test_delay_follows_the_outcome_table(
    outcome: int | BaseException,
    launch: float | None,
    idempotent: float | None,
    launch_resend: float | None,
    idempotent_resend: float | None,
) -> None:
    for policy, flag, expected in [
        (POLICY, False, launch),
        (POLICY, True, idempotent),
        (RESEND_503, False, launch_resend),
        (RESEND_503, True, idempotent_resend),
    ]:
        delay = policy.delay(1, outcome, {}, idempotent=flag, now=NOW, rng=no_jitter)
        assert delay == (None if expected is None else pytest.approx(expected)), (policy, flag)
        # The last attempt stops whatever the verdict.
        assert policy.delay(5, outcome, {}, idempotent=flag, now=NOW, rng=no_jitter) is None


def test_resent_503_backs_off_exponentially() -> None:
    delays = [RESEND_503.delay(n, 503, {}, rng=no_jitter) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, None]


def test_resend_statuses_default_is_empty() -> None:
    assert RetryPolicy().resend_statuses == frozenset()
    assert RetryPolicy().delay(1, 503) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({503}, frozenset({503})),
        ([503, 502], frozenset({502, 503})),
        ((504,), frozenset({504})),
        (frozenset({520}), frozenset({520})),
        (503, frozenset({503})),
        (set(), frozenset()),
    ],
)
def test_resend_statuses_are_converted(value: object, expected: frozenset[int]) -> None:
    assert RetryPolicy(resend_statuses=value).resend_statuses == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({200}, ValueError),
        ({100}, ValueError),
        ({600}, ValueError),
        ({True}, ValueError),
        ({"503"}, ValueError),
        ("503", TypeError),
        (True, TypeError),
        (None, TypeError),
        (503.0, TypeError),
    ],
)
def test_resend_statuses_refuse_nonsense(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        RetryPolicy(resend_statuses=value)


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"max_attempts": 0}, "max_attempts", "must be a whole number at least 1, got 0"),
        ({"max_attempts": 2.5}, "max_attempts", "must be a whole number at least 1"),
        ({"base": 0}, "base", "must be a number above 0, got 0"),
        ({"cap": float("nan")}, "cap", "must be a number above 0"),
        ({"jitter": 1.5}, "jitter", "must be a number from 0 to 1, got 1.5"),
        ({"max_retry_after": -1}, "max_retry_after", "must be a number at least 0"),
    ],
)
def test_a_bad_policy_is_a_validation_error_naming_the_field(
    kwargs: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy(**kwargs)
    assert caught.value.field == field
    assert rule in caught.value.message
    assert isinstance(caught.value, ValueError)
