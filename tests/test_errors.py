"""The error tree, the status -> exception map, redaction, and pickling across processes."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import attrs
import pytest

from insider_webpush import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    InsiderError,
    LaunchResult,
    RateLimitError,
    ServerError,
    TransportError,
    UnprocessableEntityError,
    ValidationError,
    WebPush,
)
from insider_webpush.batch import (
    BatchError,
    BatchInputError,
    BatchResult,
    JournalError,
    JournalMismatchError,
    NotSentError,
    Outcome,
)
from insider_webpush.errors import (
    REDACTED,
    DedupeConflictError,
    MissingExtraError,
    error_for_status,
    redact,
)
from insider_webpush.outcomes import Stage
from insider_webpush.pushfile import PushFileError

from .samples import MINIMAL_FIELDS


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (424, FailedDependencyError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (520, ServerError),
        (524, ServerError),
        (599, ServerError),
    ],
)
def test_status_maps_to_its_class(status: int, cls: type[APIError]) -> None:
    err = error_for_status(status, "boom", body={"message": "boom"})
    assert type(err) is cls
    assert err.status == status
    assert err.message == "boom"
    assert err.body == {"message": "boom"}
    assert isinstance(err, APIError)
    assert isinstance(err, InsiderError)


@pytest.mark.parametrize(
    "status", [402, 403, 404, 405, 409, 413, 418, 499, 301, 302, 201, 600, 999, 100]
)
def test_other_statuses_are_plain_api_errors(status: int) -> None:
    err = error_for_status(status, "")
    assert type(err) is APIError
    assert err.status == status
    assert str(status) in err.message  # an empty server message still says something


@pytest.mark.parametrize(
    ("status", "ambiguous"),
    [
        # Certain failures and the quota: Insider did not carry the request out.
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
        (424, False),
        (429, False),
        # Every 5xx, 503 and the CDN's 52x included: it may have gone out.
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (520, True),
        (524, True),
        (599, True),
        # Redirects (never followed) and statuses the table does not know.
        (301, True),
        (302, True),
        (402, True),
        (405, True),
        (409, True),
        (413, True),
        (418, True),
        (499, True),
        (600, True),
    ],
)
def test_ambiguous_flag(status: int, ambiguous: bool) -> None:
    assert error_for_status(status, "x").ambiguous is ambiguous


@pytest.mark.parametrize("ambiguous", [True, False])
def test_ambiguous_can_be_given(ambiguous: bool) -> None:
    """The client passes its own verdict (e.g. a 503 it was told to resend stays ambiguous)."""
    assert error_for_status(400, "x", ambiguous=ambiguous).ambiguous is ambiguous
    assert error_for_status(503, "x", ambiguous=ambiguous).ambiguous is ambiguous


def test_every_server_error_is_ambiguous() -> None:
    for status in range(500, 600):
        err = error_for_status(status, "x")
        assert type(err) is ServerError, status
        assert err.ambiguous, status


def test_retry_after_is_carried() -> None:
    err = error_for_status(429, "Too Many Requests", retry_after=2.5)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 2.5
    assert error_for_status(429, "x").retry_after is None


def test_validation_error_is_a_value_error_with_field() -> None:
    err = ValidationError("title", "must be at most 100 characters")
    assert isinstance(err, ValueError)
    assert isinstance(err, InsiderError)
    assert err.field == "title"
    assert err.message == "must be at most 100 characters"
    assert str(err) == "title: must be at most 100 characters"
    with pytest.raises(ValueError, match="title"):
        raise err


@pytest.mark.parametrize(
    ("stage", "ambiguous"),
    [(Stage.NOT_SENT, False), (Stage.WRITING, False), (Stage.SENT, True)],
)
def test_transport_error_carries_its_stage(stage: Stage, ambiguous: bool) -> None:
    err = TransportError("could not connect", stage=stage)
    assert err.stage is stage
    assert err.ambiguous is ambiguous
    assert err.message == "could not connect"
    assert isinstance(err, InsiderError)
    assert str(err) == "could not connect"
    assert repr(err) == f"TransportError('could not connect', stage={stage.name})"


def test_transport_error_needs_a_stage() -> None:
    with pytest.raises(TypeError):
        TransportError("x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        TransportError("x", ambiguous=True)  # type: ignore[call-arg]


def test_api_error_str_and_repr() -> None:
    err = error_for_status(401, "Unauthorized", body={"message": "Unauthorized"})
    assert str(err) == "HTTP 401: Unauthorized"
    assert repr(err) == "AuthenticationError(status=401, message='Unauthorized')"


def test_base_error_is_not_ambiguous_by_default() -> None:
    assert InsiderError().ambiguous is False
    assert ValidationError("f", "m").ambiguous is False


# -- redact ------------------------------------------------------------------------------------

SECRET = "SECRET-KEY-123"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bad key Bearer SECRET-KEY-123", f"bad key Bearer {REDACTED}"),
        ("SECRET-KEY-123SECRET-KEY-123", REDACTED * 2),
        ("nothing to hide", "nothing to hide"),
        ("", ""),
        (
            {"message": "x", "echo": {"Authorization": "Bearer SECRET-KEY-123"}},
            {"message": "x", "echo": {"Authorization": f"Bearer {REDACTED}"}},
        ),
        ({"SECRET-KEY-123": 1}, {REDACTED: 1}),
        (
            ["a", ["SECRET-KEY-123"], {"k": "SECRET-KEY-123!"}],
            ["a", [REDACTED], {"k": "<redacted>!"}],
        ),
        (None, None),
        (42, 42),
        (True, True),
        (1.5, 1.5),
    ],
)
def test_redact(value: object, expected: object) -> None:
    assert redact(value, SECRET) == expected
    assert SECRET not in repr(redact(value, SECRET))


def test_redact_leaves_the_input_alone() -> None:
    body = {"message": ["Bearer SECRET-KEY-123"]}
    redact(body, SECRET)
    assert body == {"message": ["Bearer SECRET-KEY-123"]}


# -- pickling: every exception crosses a process boundary with all its fields -----------------

PUSH = WebPush(**MINIMAL_FIELDS)


def _outcomes() -> list[Outcome]:
    return [
        Outcome(0, PUSH, result=LaunchResult(True, 1001), attempts=1),
        Outcome(
            1,
            PUSH,
            campaign_id=7,
            error=ServerError(503, "Service Unavailable", body={"message": "Service Unavailable"}),
            attempts=1,
        ),
        Outcome(2, None, error=ValidationError("push", "must be a WebPush, not int")),
        Outcome(
            3,
            PUSH,
            error=TransportError("refused", stage=Stage.NOT_SENT),
            attempts=5,
            from_journal=True,
        ),
    ]


def _batch_error() -> BatchError:
    outcomes = _outcomes()
    return BatchError([o for o in outcomes if not o.ok], len(outcomes))


def _batch_input_error() -> BatchInputError:
    err = BatchInputError(4, RuntimeError("the generator broke"))
    err.result = BatchResult(_outcomes())
    return err


def _journal_mismatch_error() -> JournalMismatchError:
    err = JournalMismatchError(2, "00112233445566ff", "ffeeddccbbaa9988")
    err.result = BatchResult(_outcomes()[:2])
    return err


# Module level, so a child process can build each by name.
EXAMPLES: dict[str, Callable[[], BaseException]] = {
    "InsiderError": lambda: InsiderError("something failed"),
    "InsiderError-no-args": InsiderError,
    "ValidationError": lambda: ValidationError("title", "must be at most 100 characters"),
    "TransportError-NOT_SENT": lambda: TransportError("refused", stage=Stage.NOT_SENT),
    "TransportError-WRITING": lambda: TransportError("reset mid-write", stage=Stage.WRITING),
    "TransportError-SENT": lambda: TransportError("read timed out", stage=Stage.SENT),
    "APIError": lambda: APIError(
        409, "Conflict", body={"message": "Conflict", "n": [1, 2.5, None]}, retry_after=None
    ),
    "APIError-200-unreadable": lambda: APIError(200, "unexpected body", body="OK", ambiguous=True),
    "BadRequestError": lambda: BadRequestError(
        400, "title is duplicated", body={"message": "title is duplicated"}
    ),
    "AuthenticationError": lambda: AuthenticationError(
        401, "Unauthorized", body={"message": "Unauthorized"}, ambiguous=False
    ),
    "FailedDependencyError": lambda: FailedDependencyError(
        424, "SERVICE:-Campaign not found", body={"message": "SERVICE:-Campaign not found"}
    ),
    "RateLimitError": lambda: RateLimitError(
        429, "Request limit exceeded", body={"message": "x"}, retry_after=86400.0
    ),
    "RateLimitError-403": lambda: error_for_status(
        403, "Request limit exceeded", retry_after=2.0, ambiguous=False, throttled=True
    ),
    "UnprocessableEntityError": lambda: error_for_status(
        422,
        "end_date: The end date does not match the format Y-m-d.",
        body={"status_code": 422, "errors": {"end_date": ["The end date does not ..."]}},
        errors={"end_date": ("The end date does not match the format Y-m-d.",)},
    ),
    "RateLimitError-paused": lambda: RateLimitError(
        429, "paused; nothing was sent", retry_after=12.25, ambiguous=False
    ),
    "ServerError": lambda: ServerError(503, "Service Unavailable", body="<html>503</html>"),
    "ServerError-resent": lambda: ServerError(
        520,
        "Web server is returning an unknown error",
        body=None,
        retry_after=3.0,
        ambiguous=True,
    ),
    "BatchError": _batch_error,
    "BatchInputError": _batch_input_error,
    "BatchInputError-no-result": lambda: BatchInputError(0, ValueError("bad first item")),
    "JournalError": lambda: JournalError("not a journal: /tmp/x.jsonl"),
    "JournalMismatchError": _journal_mismatch_error,
    "NotSentError": lambda: NotSentError(
        "not sent: the batch stopped at the 401 of push #3",
        cause=AuthenticationError(401, "Unauthorized", body={"message": "Unauthorized"}),
        index=3,
    ),
    "NotSentError-stopped": lambda: NotSentError("not sent: the batch was stopped"),
    "PushFileError": lambda: PushFileError(
        "must be at most 100 characters", line=7, field="title", source="pushes.jsonl"
    ),
    "MissingExtraError": lambda: MissingExtraError("redis_url needs redis-py"),
    "DedupeConflictError": lambda: DedupeConflictError(
        "dedupe key 'order-1' may have gone out", dedupe_key="order-1", ambiguous=True
    ),
    "DedupeConflictError-in-flight": lambda: DedupeConflictError(
        "dedupe key 'order-1' is being sent", dedupe_key="order-1", in_flight=True
    ),
    "PushFileError-file": lambda: PushFileError("can't tell its format", field="file"),
}


def raise_example(name: str) -> None:
    """Runs in the child process: build the named exception there and raise it."""
    raise EXAMPLES[name]()


def fields_of(value: object) -> object:
    """``value`` as plain data, so that two exceptions (compared by identity) and what holds
    them (an ``Outcome``, a ``BatchResult``) compare by everything they carry."""
    if isinstance(value, BaseException):
        state = {k: fields_of(v) for k, v in vars(value).items()}
        return (type(value), fields_of(value.args), str(value), repr(value), state)
    if isinstance(value, BatchResult):
        return ("BatchResult", fields_of(list(value)), value.counts)
    if attrs.has(type(value)):
        names = [a.name for a in attrs.fields(type(value))]  # type: ignore[arg-type]
        return (type(value), {name: fields_of(getattr(value, name)) for name in names})
    if isinstance(value, tuple | list):
        return [fields_of(v) for v in value]
    if isinstance(value, dict):
        return {k: fields_of(v) for k, v in value.items()}
    return value


def assert_same(copy: BaseException, original: BaseException) -> None:
    assert type(copy) is type(original)
    assert copy is not original
    assert fields_of(copy) == fields_of(original)
    assert copy.ambiguous == original.ambiguous  # type: ignore[attr-defined]
    for name in ("status", "message", "body", "retry_after", "stage", "field", "index", "total"):
        assert getattr(copy, name, None) == getattr(original, name, None), name


def test_examples_cover_every_exception_class() -> None:
    import insider_webpush.batch
    import insider_webpush.errors
    import insider_webpush.pushfile

    classes = {
        obj
        for module in (insider_webpush.errors, insider_webpush.batch, insider_webpush.pushfile)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, InsiderError)
    }
    assert classes <= {type(factory()) for factory in EXAMPLES.values()}
    stages = {
        e.stage for e in map(lambda f: f(), EXAMPLES.values()) if isinstance(e, TransportError)
    }
    assert stages == set(Stage)


@pytest.mark.parametrize("name", list(EXAMPLES))
@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_pickles_with_every_field(name: str, protocol: int) -> None:
    original = EXAMPLES[name]()
    copy = pickle.loads(pickle.dumps(original, protocol=protocol))
    assert_same(copy, original)
    # ... and again: a copy of a copy is the same.
    assert_same(pickle.loads(pickle.dumps(copy, protocol=protocol)), original)


def test_batch_error_keeps_its_outcomes() -> None:
    original = _batch_error()
    copy = pickle.loads(pickle.dumps(original))
    assert [o.index for o in copy.failed] == [1, 2, 3]
    assert copy.total == 4
    assert copy.ambiguous is True  # the 503
    assert isinstance(copy.failed[0].error, ServerError)
    assert copy.failed[0].error.body == {"message": "Service Unavailable"}
    assert copy.failed[2].error.stage is Stage.NOT_SENT


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    # spawn: a fresh interpreter that shares nothing with this one (fork would copy the
    # objects rather than unpickle them, and warns in a threaded process).
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_survives_a_process_pool(pool: ProcessPoolExecutor, name: str) -> None:
    future = pool.submit(raise_example, name)
    with pytest.raises(type(EXAMPLES[name]())) as info:
        future.result(timeout=60)
    assert_same(info.value, EXAMPLES[name]())


def test_survives_a_process_pool_as_an_argument(pool: ProcessPoolExecutor) -> None:
    """Sent to a child (pickled here, unpickled there) and back again."""
    original = _batch_error()
    copy = pool.submit(_echo, original).result(timeout=60)
    assert_same(copy, original)


def _echo(value: Any) -> Any:
    return value


def test_a_422_carries_its_field_errors_and_a_throttling_403_is_a_rate_limit_error() -> None:
    errors = {"end_date": ("The end date does not match the format Y-m-d.",)}
    err = error_for_status(422, "end_date: ...", errors=errors)
    assert type(err) is UnprocessableEntityError
    assert err.errors == errors
    assert err.ambiguous is False
    assert type(error_for_status(422, "")).__name__ == "UnprocessableEntityError"
    assert error_for_status(422, "").errors == {}  # type: ignore[attr-defined]
    throttled = error_for_status(403, "Request limit exceeded", retry_after=1.5, throttled=True)
    assert type(throttled) is RateLimitError
    assert (throttled.status, throttled.retry_after, throttled.ambiguous) == (403, 1.5, False)
    assert type(error_for_status(403, "Forbidden")) is APIError  # a 403 elsewhere
