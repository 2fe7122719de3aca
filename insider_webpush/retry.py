"""When to try a request again: a pure decision, no I/O, no aiohttp.

Insider has no idempotency key, so a repeated launch can push the same notification to every
subscriber twice. The policy resends only what the outcome table
(:mod:`insider_webpush.outcomes`) calls retry-safe: a 429, and a request of which no byte
was sent. Everything else is reported, never silently repeated, unless the user names a
status in ``RetryPolicy(resend_statuses=...)``, their decision to risk a duplicate.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping

import attrs

from .errors import TransportError
from .outcomes import Verdict, verdict_for_stage, verdict_for_status

__all__ = ["RetryPolicy", "parse_retry_after"]


def _statuses(value: object) -> frozenset[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, frozenset | set | list | tuple):
        raise TypeError(f"resend_statuses must be a set of HTTP statuses, got {value!r}")
    statuses = frozenset(value)
    bad = [s for s in statuses if isinstance(s, bool) or not isinstance(s, int)]
    bad += [s for s in statuses if isinstance(s, int) and not 300 <= s <= 599]
    if bad:
        raise ValueError(f"resend_statuses must hold HTTP error statuses (300-599), got {bad!r}")
    return statuses


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    ``now`` is the Unix time to measure a date from (``time.time()`` when omitted). A date
    in the past gives 0; anything unreadable gives None.
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


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times, and after how long, a request that failed safely is tried again.

    ``max_attempts`` counts the first try. The backoff is ``base * 2**(attempt-1)`` capped at
    ``cap``, minus up to ``jitter`` of itself at random. A 429's ``Retry-After`` is honoured
    as given when it is at most ``max_retry_after``; a longer one stops the retries, since
    waiting less would only earn another 429 (and every send on the key then fails at once
    until the pause is shorter than ``max_retry_after``).

    ``resend_statuses`` (default none) lists statuses to resend although the outcome table
    calls them ambiguous, e.g. ``{503}``: Insider may have launched the push already, so this
    is a decision to risk sending it twice. Never needed for reads, which are resent anyway.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    base: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    cap: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    jitter: float = attrs.field(
        default=0.25, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))
    resend_statuses: frozenset[int] = attrs.field(default=frozenset(), converter=_statuses)

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that tries every request exactly once."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        delay: float = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return delay * (1.0 - self.jitter * rng())

    def delay(
        self,
        attempt: int,
        outcome: int | BaseException,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
        now: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to stop and report.

        ``outcome`` is the HTTP status of attempt ``attempt`` or the exception it raised;
        the outcome table gives its verdict (``idempotent``: the operation changes nothing).
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
        verdict = verdict_for_status(outcome, idempotent=idempotent)
        if verdict is not Verdict.RETRY_SAFE and outcome not in self.resend_statuses:
            return None
        if outcome == 429:
            retry_after = parse_retry_after((headers or {}).get("Retry-After"), now=now)
            if retry_after is not None:
                return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(attempt, rng)
