"""Every exception the SDK raises, and the HTTP status -> exception map.

Nothing here ever holds the API key: the client redacts a server's text with
[`redact`][insider_webpush.errors.redact] before it enters an exception. Every exception
pickles with all its fields, so it crosses a process boundary (`ProcessPoolExecutor`, Celery)
intact.

The tree:

```text
InsiderError
├── ValidationError (also a ValueError)   bad input; nothing was sent
├── TransportError                        no complete answer; .stage says how far it got
├── DedupeConflictError                   a dedupe key held by another send; nothing sent
├── JournalError                          a batch journal that cannot be used
│   └── JournalMismatchError              the input no longer matches its journal
└── APIError                              any other non-success status, or an unreadable 2xx
    ├── BadRequestError                   400
    ├── AuthenticationError               401
    ├── UnprocessableEntityError          422; .errors, field -> messages (statistics)
    ├── FailedDependencyError             424, e.g. "SERVICE:-Campaign not found"
    ├── RateLimitError                    429, or a statistics endpoint's 403; .retry_after
    └── ServerError                       5xx
```

The statuses are those of Insider's "Error Codes" lists (400, 401, 424, 429 for the Single
Web Push pages; 400, 401, 403 "Request limit exceeded" and 422 for the statistics endpoints
of its Postman collection); any other status is an `APIError` (a 5xx a `ServerError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .outcomes import Stage, verdict_for_stage, verdict_for_status

if TYPE_CHECKING:
    from .batch import BatchResult

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "DedupeConflictError",
    "FailedDependencyError",
    "InsiderError",
    "JournalError",
    "JournalMismatchError",
    "MissingExtraError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "UnprocessableEntityError",
    "ValidationError",
    "error_for_status",
    "printable",
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

    Attributes:
        ambiguous: True when the request may have been carried out by Insider although it
            failed here (see [`insider_webpush.outcomes`][insider_webpush.outcomes]). Such a
            push may have gone out; it is never resent automatically.
    """

    ambiguous: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls cls(*args), which keyword-only fields break.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class ValidationError(InsiderError, ValueError):
    """Input broke a documented rule; raised before anything is sent.

    Also a `ValueError`. Its text is `"<field>: <message>"`; `ambiguous` is always False.

    Args:
        field: The input that broke the rule: `"title"`, `"target.values"`,
            `"timeout"`...
        message: The rule it broke, with its limit.

    Attributes:
        field: As given.
        message: As given.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class MissingExtraError(InsiderError, ImportError):
    """An option needs a package the SDK's install lacks, e.g. `redis_url=` without the
    `redis` extra. Raised when the option is given, before anything is sent; also an
    `ImportError`.

    Args:
        message: What is missing, and the `pip install` that adds it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportError(InsiderError):
    """The request failed below HTTP: no connection, a dropped connection, or a timeout.

    Args:
        message: What happened, without the API key.
        stage: How far the request got, as the transport saw it on the wire:
            `Stage.NOT_SENT` (no byte left: safe to resend, and the client does),
            `Stage.WRITING` (cut off while being written: certainly not carried out, not
            resent automatically) or `Stage.SENT` (fully handed over, no complete answer:
            ambiguous).

    Attributes:
        message: As given.
        stage: As given, a [`Stage`][insider_webpush.outcomes.Stage].
        ambiguous: The outcome table's verdict for `stage`: True only for `Stage.SENT`.
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

    Its text is `"HTTP <status>: <message>"`.

    Args:
        status: The HTTP status.
        message: The server's message (the API key redacted), e.g. Insider's
            `{"message": "..."}`.
        body: The decoded answer: its JSON, its text when it is not JSON, or None when empty.
        retry_after: The seconds a `Retry-After` header asked for, or None.
        ambiguous: Whether the request may have been carried out; None (the default) takes
            the outcome table's verdict for `status`.

    Attributes:
        status: As given.
        message: As given.
        body: As given.
        retry_after: As given.
        ambiguous: As given, or the outcome table's verdict.
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
    """400: the server rejected the body (a certain failure: nothing was launched)."""


class AuthenticationError(APIError):
    """401: the API key was refused (Insider answers `{"message": "Unauthorized"}`)."""


class FailedDependencyError(APIError):
    """424: Insider's service failed the operation, e.g. ``SERVICE:-Campaign not found``."""


class RateLimitError(APIError):
    """429: the key's quota was exceeded; `retry_after` is in seconds when known.

    Insider's 429 *may* carry `Retry-After`. The statistics endpoints also throttle with
    `403 "Request limit exceeded"` (their docs' error codes), which raises this too, with
    `status` 403. Also raised, with nothing sent, while the key is paused by an earlier
    throttling answer for longer than `RetryPolicy.max_retry_after`: `retry_after` is then
    the pause still to run.
    """


class UnprocessableEntityError(APIError):
    """422: Insider refused fields of a statistics request (a certain failure).

    Insider answers `{"status_code": 422, "errors": {"end_date": ["The end date does not
    match the format Y-m-d."]}}` (its Postman collection); `errors` holds that map.

    Args:
        status: The HTTP status (422).
        message: The fields and their messages, as one line.
        body: The decoded answer.
        retry_after: As for `APIError`.
        ambiguous: As for `APIError`.
        errors: Each refused field's messages; None (the default) is none.

    Attributes:
        errors: Field name -> its messages, e.g. `{"end_date": ("The end date does not match
            the format Y-m-d.",)}`; empty when Insider named none.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: object = None,
        retry_after: float | None = None,
        ambiguous: bool | None = None,
        errors: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(status, message, body=body, retry_after=retry_after, ambiguous=ambiguous)
        self.errors: dict[str, tuple[str, ...]] = dict(errors or {})


class ServerError(APIError):
    """5xx: Insider, or the CDN in front of it, failed. Every 5xx is ambiguous: the push
    may have gone out."""


_STATUS_TO_ERROR: Mapping[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    422: UnprocessableEntityError,
    424: FailedDependencyError,
    429: RateLimitError,
}


class JournalError(InsiderError):
    """The journal cannot be used: not a journal, a damaged line, or in use by another batch."""


class JournalMismatchError(JournalError):
    """The push at `index` is not the one the journal recorded there.

    The input changed since the journal was written (a push edited, inserted or removed, or
    the client's partner id changed). Nothing from it on is sent, since the journal can no
    longer say what went out; restore the input, or use a new journal for a new batch.

    Args:
        index: The push's position.
        journaled: The hash the journal holds, in hex.
        now: The push's hash now, in hex.

    Attributes:
        index: As given.
        result: The outcomes reported before it, a
            [`BatchResult`][insider_webpush.batch.BatchResult], from `send_many`; None from
            `stream`.
    """

    def __init__(self, index: int, journaled: str, now: str) -> None:
        self.index = index
        self.result: BatchResult | None = None  # what was reported before it (send_many)
        super().__init__(
            f"push #{index} does not match the journal (journaled hash {journaled}, now {now}): "
            "the input changed since the journal was written; nothing more was sent"
        )


class DedupeConflictError(InsiderError):
    """A push was not sent because its dedupe key is held by another send.

    The key's first attempt is still in flight (another process, task or thread is sending
    it now; `ambiguous` is False and `in_flight` True), or it may have gone out (its answer
    never came, or its holder died on the wire: `ambiguous` True), or the key was launched
    for a different push (`ambiguous` False). This send sent nothing; a push whose key is
    ambiguous is sent again only with `retry_ambiguous=True`, the caller's decision to risk
    a duplicate.

    Args:
        message: What holds the key.
        dedupe_key: The key.
        ambiguous: The first attempt may have gone out.
        in_flight: The first attempt is being sent now.

    Attributes:
        message: As given.
        dedupe_key: As given.
        ambiguous: As given.
        in_flight: As given.
    """

    def __init__(
        self, message: str, *, dedupe_key: str, ambiguous: bool = False, in_flight: bool = False
    ) -> None:
        self.message = message
        self.dedupe_key = dedupe_key
        self.ambiguous = ambiguous
        self.in_flight = in_flight
        super().__init__(message)


def error_for_status(
    status: int,
    message: str,
    *,
    body: object = None,
    retry_after: float | None = None,
    ambiguous: bool | None = None,
    throttled: bool = False,
    errors: Mapping[str, tuple[str, ...]] | None = None,
) -> APIError:
    """The typed error for a non-success `status`.

    Args:
        status: The HTTP status.
        message: The server's message (from the codec's `error_message`); empty gives
            `"unexpected status <status>"`.
        body: The decoded answer.
        retry_after: The seconds a `Retry-After` asked for, or None.
        ambiguous: None (the default) takes the outcome table's verdict for `status`.
        throttled: `status` is the endpoint's quota answer (a 429, or a statistics
            endpoint's 403): a `RateLimitError` whatever the status (default False).
        errors: A 422's field errors (the codec's `field_errors`); None by default.

    Returns:
        A `BadRequestError` (400), `AuthenticationError` (401), `UnprocessableEntityError`
            (422), `FailedDependencyError` (424), `RateLimitError` (429, or `throttled`),
            `ServerError` (5xx) or a plain `APIError`.
    """
    message = message or f"unexpected status {status}"
    cls = RateLimitError if throttled else _STATUS_TO_ERROR.get(status)
    if cls is UnprocessableEntityError:
        return UnprocessableEntityError(
            status, message, body=body, retry_after=retry_after, ambiguous=ambiguous, errors=errors
        )
    if cls is None:
        cls = ServerError if 500 <= status < 600 else APIError
    return cls(status, message, body=body, retry_after=retry_after, ambiguous=ambiguous)


def redact(value: object, secret: str) -> Any:
    """Replace every occurrence of `secret` in `value` with `"<redacted>"`.

    A server that echoes the request (its `Authorization` header included) must not put
    the API key into an exception, a log line or a journal.

    Args:
        value: A decoded body: strings, and lists and dicts of them, are searched (dict
            keys too); anything else is returned as it is.
        secret: The text to remove, e.g. the API key.

    Returns:
        A copy of `value` without `secret`.
    """
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return value


def printable(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\x1b``, ``\\ud800``...).

    Text read from a file or a server goes through this before it is shown: an ANSI escape
    sequence must not reach a terminal raw, and a lone surrogate can't be written to one.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )
