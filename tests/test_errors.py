"""The error tree and the status -> exception map."""

from __future__ import annotations

import pytest

from insider_webpush import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FailedDependencyError,
    InsiderError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from insider_webpush.errors import error_for_status


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


@pytest.mark.parametrize("status", [402, 403, 404, 405, 409, 413, 418, 422, 499, 302, 201])
def test_other_statuses_are_plain_api_errors(status: int) -> None:
    err = error_for_status(status, "")
    assert type(err) is APIError
    assert err.status == status
    assert str(status) in err.message  # an empty server message still says something
    assert not err.ambiguous


@pytest.mark.parametrize(
    ("status", "ambiguous"),
    [
        (500, True),
        (502, True),
        (504, True),
        (400, False),
        (401, False),
        (424, False),
        (429, False),
        (503, False),
    ],
)
def test_ambiguous_flag(status: int, ambiguous: bool) -> None:
    assert error_for_status(status, "x").ambiguous is ambiguous


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


@pytest.mark.parametrize("ambiguous", [True, False])
def test_transport_error_carries_ambiguity(ambiguous: bool) -> None:
    err = TransportError("could not connect", ambiguous=ambiguous)
    assert err.ambiguous is ambiguous
    assert isinstance(err, InsiderError)
    assert str(err) == "could not connect"


def test_api_error_str_and_repr() -> None:
    err = error_for_status(401, "Unauthorized", body={"message": "Unauthorized"})
    assert str(err) == "HTTP 401: Unauthorized"
    assert repr(err) == "AuthenticationError(status=401, message='Unauthorized')"


def test_base_error_is_not_ambiguous_by_default() -> None:
    assert InsiderError().ambiguous is False
    assert ValidationError("f", "m").ambiguous is False
