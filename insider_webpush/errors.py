"""Every exception the SDK raises, and the HTTP status -> exception map.

Nothing here ever holds the API key: the client redacts a server's text with
:func:`redact` before it enters an exception. Every exception pickles with all its fields,
so it crosses a process boundary (``ProcessPoolExecutor``, Celery) intact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .outcomes import Stage, verdict_for_stage, verdict_for_status

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "FailedDependencyError",
    "InsiderError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "error_for_status",
    "redact",
]

REDACTED = "<redacted>"


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InsiderError(Exception):
    """Base of every error raised by insider-webpush.

    ``ambiguous`` is True when the request may have been carried out by Insider although it
    failed here (see :mod:`insider_webpush.outcomes`). Such a push may have gone out; it is
    never resent automatically.
    """

    ambiguous: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls cls(*args), which keyword-only fields break.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class ValidationError(InsiderError, ValueError):
    """Input broke a documented rule; raised before anything is sent.

    ``field`` names the input (``"title"``, ``"target.values"``, ``"timeout"``...) and
    ``message`` the rule it broke, with its limit.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class TransportError(InsiderError):
    """The request failed below HTTP: no connection, a dropped connection, or a timeout.

    ``stage`` (:class:`~insider_webpush.outcomes.Stage`) says how far the request got, as
    the transport saw it on the wire: ``NOT_SENT`` (no byte left: safe to resend, and the
    client does), ``WRITING`` (cut off while being written: certainly not carried out, not
    resent automatically) or ``SENT`` (fully handed over, no complete answer: ambiguous).
    """

    def __init__(self, message: str, *, stage: Stage) -> None:
        self.message = message
        self.stage = stage
        self.ambiguous = verdict_for_stage(stage).ambiguous
        super().__init__(message)

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, stage={self.stage.name})"


class APIError(InsiderError):
    """Insider answered with a status that is not a success, or with a body we cannot read.

    ``status`` is the HTTP status, ``message`` the server's message (the API key redacted),
    ``body`` the decoded answer, ``retry_after`` the seconds a ``Retry-After`` asked for.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: object = None,
        retry_after: float | None = None,
        ambiguous: bool | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.retry_after = retry_after
        self.ambiguous = verdict_for_status(status).ambiguous if ambiguous is None else ambiguous
        super().__init__(f"HTTP {status}: {message}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadRequestError(APIError):
    """400: the server rejected the body."""


class AuthenticationError(APIError):
    """401: the API key was refused."""


class FailedDependencyError(APIError):
    """424: Insider's service failed the operation, e.g. ``SERVICE:-Campaign not found``."""


class RateLimitError(APIError):
    """429: the key's quota was exceeded; ``retry_after`` is in seconds when known.

    Also raised, with nothing sent, while the key is paused by an earlier 429 for longer than
    ``RetryPolicy.max_retry_after``: ``retry_after`` is then the pause still to run.
    """


class ServerError(APIError):
    """5xx: Insider, or the CDN in front of it, failed. Every 5xx is ambiguous: the push
    may have gone out."""


_STATUS_TO_ERROR: Mapping[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    424: FailedDependencyError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    message: str,
    *,
    body: object = None,
    retry_after: float | None = None,
    ambiguous: bool | None = None,
) -> APIError:
    """The typed error for a non-success ``status``; ``message`` comes from the codec.

    ``ambiguous`` defaults to the outcome table's verdict for ``status``.
    """
    cls = _STATUS_TO_ERROR.get(status)
    if cls is None:
        cls = ServerError if 500 <= status < 600 else APIError
    return cls(
        status,
        message or f"unexpected status {status}",
        body=body,
        retry_after=retry_after,
        ambiguous=ambiguous,
    )


def redact(value: object, secret: str) -> Any:
    """``value`` with every occurrence of ``secret`` replaced, in strings, lists and dicts.

    A server that echoes the request (its ``Authorization`` header included) must not put
    the API key into an exception, a log line or a journal.
    """
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return value
