"""When to try a request again: a pure decision, no I/O, no aiohttp.

Insider has no idempotency key, so a repeated launch can push the same notification to every
subscriber twice. The policy resends only what the outcome table
([`insider_webpush.outcomes`][insider_webpush.outcomes]) calls retry-safe: a 429, and a
request of which no byte was sent. Everything else is reported, never silently repeated,
unless the user names a status in `RetryPolicy(resend_statuses=...)`, their decision to risk
a duplicate.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import TransportError, ValidationError
from .outcomes import RETRY_SAFE_STATUSES, Verdict, verdict_for_stage, verdict_for_status

__all__ = ["RetryPolicy", "parse_retry_after"]


def _statuses(
    value: int | frozenset[int] | set[int] | list[int] | tuple[int, ...],
) -> frozenset[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, frozenset | set | list | tuple):
        raise TypeError(f"resend_statuses must be a set of HTTP statuses, got {value!r}")
    statuses = frozenset(value)
    bad: list[object] = [s for s in statuses if isinstance(s, bool) or not isinstance(s, int)]
    bad += [s for s in statuses if isinstance(s, int) and not 300 <= s <= 599]
    if bad:
        raise ValueError(f"resend_statuses must hold HTTP error statuses (300-599), got {bad!r}")
    return statuses


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a `Retry-After` header: delta-seconds or an HTTP date.

    Insider's 429 *may* carry it, in seconds; a proxy or CDN in front may send a date.

    Args:
        value: The header's value, or None when the answer had none.
        now: The Unix time, in seconds, to measure a date from; `time.time()` when None.

    Returns:
        The seconds to wait, at least 0 (a date in the past gives 0), or None when `value`
        is None, negative, not finite, or unreadable (including a date without a time zone).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(
    low: float,
    *,
    above: bool = False,
    most: float | None = None,
    whole: bool = False,
    infinite: bool = False,
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An attrs validator raising `ValidationError` naming the field and its range."""
    kind = "a whole number" if whole else "a number"
    bound = f"above {low:g}" if above else f"at least {low:g}"
    if most is not None:
        bound = f"from {low:g} to {most:g}"
    rule = f"must be {kind} {bound}"

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        ok = isinstance(value, int if whole else int | float) and not isinstance(value, bool)
        if ok:
            number = float(value)
            ok = (number > low if above else number >= low) and (most is None or number <= most)
            ok = ok and (math.isfinite(number) or (infinite and number > 0))
        if not ok:
            raise ValidationError(attribute.name, f"{rule}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times, and after how long, a request that failed safely is tried again.

    Built with keyword arguments of the attributes' names. The backoff before attempt `n + 1`
    is `base * 2**(n - 1)` seconds capped at `cap`, minus up to `jitter` of itself at random.
    A 429's `Retry-After` is honoured as given when it is at most `max_retry_after`; a longer
    one stops the retries, since waiting less would only earn another 429 (and every send on
    the key then fails at once until the pause is shorter than `max_retry_after`).

    Attributes:
        max_attempts: Attempts of one request, the first one included; at least 1 (default
            5). 1 never retries.
        base: The first backoff, in seconds; above 0 (default 0.5).
        cap: The longest backoff, in seconds; above 0 (default 30).
        jitter: The fraction of a backoff taken off at random, 0 to 1 (default 0.25).
        max_retry_after: The longest `Retry-After` (or pause left by an earlier 429) a send
            waits, in seconds; at least 0 (default 120). A longer one raises
            [`RateLimitError`][insider_webpush.errors.RateLimitError].
        resend_statuses: Statuses to resend although the outcome table calls them
            ambiguous, e.g. `{503}`: Insider may have launched the push already, so this is
            a decision to risk sending it twice. HTTP statuses from 300 to 599, given as one
            `int` or a set, list or tuple of them (default none). Never needed for reads,
            which are resent anyway.

    Raises:
        ValidationError: A number is out of its range (naming the field and the range; also
            a `ValueError`), or `resend_statuses` holds something other than a status from
            300 to 599.
        TypeError: `resend_statuses` is not an `int`, set, list or tuple.
    """

    max_attempts: int = attrs.field(default=5, validator=_number(1, whole=True))
    base: float = attrs.field(default=0.5, validator=_number(0, above=True))
    cap: float = attrs.field(default=30.0, validator=_number(0, above=True))
    jitter: float = attrs.field(default=0.25, validator=_number(0, most=1))
    max_retry_after: float = attrs.field(default=120.0, validator=_number(0, infinite=True))
    resend_statuses: frozenset[int] = attrs.field(default=frozenset(), converter=_statuses)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries every request exactly once.

        Returns:
            `RetryPolicy(max_attempts=1)`.
        """
        return cls(max_attempts=1)

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The backoff after attempt `attempt`, jitter included.

        Args:
            attempt: The number of the attempt that failed, from 1.
            rng: A source of random floats in [0, 1); `random.random` by default.

        Returns:
            Seconds to wait: `min(cap, base * 2**(attempt - 1))` less up to `jitter` of it.
        """
        delay: float = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return delay * (1.0 - self.jitter * rng())

    def delay(
        self,
        attempt: int,
        outcome: int | BaseException,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
        throttle_statuses: frozenset[int] = RETRY_SAFE_STATUSES,
        now: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Decide whether to try again, and when.

        Args:
            attempt: The number of the attempt that just failed, from 1.
            outcome: Its HTTP status, or the exception it raised. An exception is retried
                only when it is a [`TransportError`][insider_webpush.errors.TransportError]
                whose stage the outcome table calls retry-safe; a status when the table calls
                it retry-safe or it is in `resend_statuses`.
            headers: The answer's headers, for a throttling answer's `Retry-After`.
            idempotent: The operation changes nothing (a read), so the table lets more
                failures be retried.
            throttle_statuses: The statuses the endpoint throttles with (the endpoint
                table's; default `{429}`, and the statistics endpoints' 403 too): retried
                after their `Retry-After`.
            now: The Unix time, in seconds, to read an HTTP-date `Retry-After` against;
                `time.time()` when None.
            rng: A source of random floats in [0, 1), for the jitter.

        Returns:
            Seconds to wait before attempt `attempt + 1`, or None to stop and report: the
            attempts are used up, the outcome must not be resent, or a `Retry-After` is
            longer than `max_retry_after`.
        """
        if attempt >= self.max_attempts:
            return None
        if isinstance(outcome, BaseException):
            # How far the request got decides, never the exception's type.
            if isinstance(outcome, TransportError) and (
                verdict_for_stage(outcome.stage, idempotent=idempotent) is Verdict.RETRY_SAFE
            ):
                return self.backoff(attempt, rng)
            return None
        verdict = verdict_for_status(
            outcome, idempotent=idempotent, throttle_statuses=throttle_statuses
        )
        if verdict is not Verdict.RETRY_SAFE and outcome not in self.resend_statuses:
            return None
        if outcome in throttle_statuses:
            retry_after = parse_retry_after((headers or {}).get("Retry-After"), now=now)
            if retry_after is not None:
                return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(attempt, rng)
