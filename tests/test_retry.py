"""RetryPolicy.delay as a table: (attempt, outcome, headers) -> seconds to wait, or stop."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import aiohttp
import pytest

from insider_webpush import APIError, RetryPolicy, TransportError, ValidationError
from insider_webpush.retry import parse_retry_after

NOW = 1_800_000_000.0  # a fixed "now" for HTTP dates
POLICY = RetryPolicy(max_attempts=5, base=0.5, cap=3.0, jitter=0.25, max_retry_after=60.0)


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


def no_jitter() -> float:
    return 0.0


SAFE = TransportError("could not connect", ambiguous=False)
MAYBE_SENT = TransportError("read timed out", ambiguous=True)

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
    # 503: Insider did not take the request.
    (1, 503, {}, 0.5),
    (2, 503, None, 1.0),
    (4, 503, {}, 3.0),
    # Statuses that are never retried: bad input, or a launch that may have gone out.
    (1, 400, {}, None),
    (1, 401, {}, None),
    (1, 403, {}, None),
    (1, 404, {}, None),
    (1, 424, {}, None),
    (1, 500, {}, None),
    (1, 502, {}, None),
    (1, 504, {}, None),
    (1, 500, {"Retry-After": "1"}, None),
    (1, 200, {}, None),
    # Exceptions: only a connection that never opened is retried.
    (1, SAFE, None, 0.5),
    (3, SAFE, {}, 2.0),
    (4, SAFE, {}, 3.0),
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
    (5, 503, {}, None),
    (5, SAFE, None, None),
    (6, 503, {}, None),
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
    delays = [policy.delay(attempt, 503, rng=rng.random) for _ in range(200)]
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
    assert never.delay(1, 503) is None
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
