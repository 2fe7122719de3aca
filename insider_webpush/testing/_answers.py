"""The simulator's vocabulary: answers, the canned errors, routing from the endpoint table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

import attrs

from ..codec import error_body, result_to_body
from ..endpoints import ENDPOINTS, Operation
from ..models import LaunchResult

if TYPE_CHECKING:
    from .faults import Fault

JSON: Final = "application/json"

_DEFAULT_MESSAGES: Final[Mapping[int, str]] = {
    401: "Unauthorized",
    403: "Request limit exceeded",  # Insider's only documented 403: the statistics throttle
    424: "SERVICE:-",
    429: "Request limit exceeded",
}


@attrs.frozen
class Answer:
    """An HTTP answer of the simulator: ``status``, the JSON ``body`` as bytes, extra
    ``headers`` (None: none), the ``campaign_id`` of a success, and whether the request was
    ``carried_out`` (a draft created or deleted, a push launched)."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None
    campaign_id: int | None = None
    carried_out: bool = False


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(error_body(message)).encode(), headers)


def success(operation: Operation, campaign_id: int) -> Answer:
    body = json.dumps(result_to_body(LaunchResult(True, campaign_id))).encode()
    return Answer(ENDPOINTS[operation].success_status, body, None, campaign_id, carried_out=True)


def message_for(status: int) -> str:
    """The default message of an injected ``status``: Insider's own, else the HTTP phrase."""
    message = _DEFAULT_MESSAGES.get(status)
    if message is not None:
        return message
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def retry_after(seconds: float) -> str:
    """Seconds as a decimal string of up to 3 decimals, rounded up: 0.2504 -> "0.251"."""
    millis = max(1, math.ceil(seconds * 1000))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")


def content_type(headers: Mapping[str, str]) -> str:
    """The media type of ``headers``' Content-Type, lower case, without parameters."""
    value = headers.get("Content-Type", "")
    return value.partition(";")[0].strip().lower()


UNAUTHORIZED: Final = error(401, "Unauthorized")
NOT_FOUND: Final = error(404, "Not Found")
NOT_ALLOWED: Final = error(405, "Method Not Allowed")
TOO_LARGE: Final = error(413, "body: is too large")
NOT_JSON_TYPE: Final = error(400, f"Content-Type: must be {JSON}")
NOT_JSON: Final = error(400, "body: is not valid JSON")
NO_CAMPAIGN: Final = error(424, "SERVICE:-Campaign not found")
NO_PARTNER: Final = error(400, "partner_id: is required")
OTHER_PARTNER: Final = error(400, "partner_id: is not this account's partner id")
DUPLICATE_TITLE: Final = error(400, "title: a draft with this title already exists")
QUOTA_MESSAGE: Final = "Request limit exceeded"

# Routing from the one table of endpoints: (method, path) for fixed paths, and
# (method, prefix, suffix) around the {campaign_id} segment for the others.
_FIXED: Final = {(e.method, e.path): e.operation for e in ENDPOINTS.values() if "{" not in e.path}
_TEMPLATED: Final[tuple[tuple[str, str, str, Operation], ...]] = tuple(
    (e.method, e.path.partition("{campaign_id}")[0], e.path.partition("{campaign_id}")[2], op)
    for op, e in ENDPOINTS.items()
    if "{campaign_id}" in e.path
)
_FIXED_PATHS: Final = frozenset(path for _method, path in _FIXED)


def route(method: str, path: str) -> tuple[Operation | None, str | None, Answer | None]:
    """(operation, campaign id segment, None) or (None, None, a 404/405 answer)."""
    operation = _FIXED.get((method, path))
    if operation is not None:
        return operation, None, None
    known_path = path in _FIXED_PATHS
    for route_method, prefix, suffix, route_operation in _TEMPLATED:
        if path.startswith(prefix) and path.endswith(suffix):
            segment = path[len(prefix) : len(path) - len(suffix)]
            if segment and "/" not in segment:
                if route_method == method:
                    return route_operation, segment, None
                known_path = True
    return None, None, NOT_ALLOWED if known_path else NOT_FOUND


def fault_answer(fault: Fault) -> Answer:
    """The answer of a fault with a ``status``: its message, or the status's default one."""
    assert fault.status is not None
    headers = None
    if fault.status in (403, 429) and fault.retry_after is not None:
        headers = {"Retry-After": retry_after(fault.retry_after)}
    message = fault.message if fault.message is not None else message_for(fault.status)
    return error(fault.status, message, headers)
