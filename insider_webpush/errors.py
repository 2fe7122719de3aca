"""Every exception the SDK raises, and the HTTP status -> exception map.

Nothing here ever holds the API key: messages are built from the server's body and our own
words only.
"""

from __future__ import annotations

from collections.abc import Mapping

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
]


class InsiderError(Exception):
    """Base of every error raised by insider-webpush.

    ``ambiguous`` is True when the request may have been processed by Insider even though
    it failed here (a 500/502/504, a dropped connection or a read timeout after the body
    was sent). Such a push may have gone out; it is never silently resent.
    """

    ambiguous: bool = False


class ValidationError(InsiderError, ValueError):
    """Input broke a documented rule; raised before anything is sent."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class TransportError(InsiderError):
    """The request failed below HTTP: connection refused or dropped, or a timeout.

    ``ambiguous`` is False only when the request certainly never reached the server
    (the connection could not be opened); those are safe to retry.
    """

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        self.message = message
        self.ambiguous = ambiguous
        super().__init__(message)


class APIError(InsiderError):
    """Insider answered with a status that is not a success, or with a body we cannot read."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: object = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        self.status = status
        self.message = message
        self.body = body
        self.retry_after = retry_after
        self.ambiguous = ambiguous
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
    """429: the key's quota was exceeded; ``retry_after`` is in seconds when the server said."""


class ServerError(APIError):
    """5xx: Insider failed. 500/502/504 are ambiguous: the push may have gone out."""


_STATUS_TO_ERROR: Mapping[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    424: FailedDependencyError,
    429: RateLimitError,
}

# A launch answered with one of these may still have been carried out by Insider.
AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


def error_for_status(
    status: int, message: str, *, body: object = None, retry_after: float | None = None
) -> APIError:
    """The typed error for a non-success ``status``; ``message`` comes from the codec."""
    cls = _STATUS_TO_ERROR.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(
        status,
        message or f"unexpected status {status}",
        body=body,
        retry_after=retry_after,
        ambiguous=status in AMBIGUOUS_STATUSES,
    )
