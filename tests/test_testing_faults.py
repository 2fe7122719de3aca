"""Fault: its validation, and Fault.parse, the one-line form of ``fake-server --fault``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from insider_webpush import Operation, ValidationError
from insider_webpush.testing import Fault


def test_at_takes_an_index_or_any_iterable() -> None:
    assert Fault(status=500, at=[1, 3]).at == frozenset({1, 3})
    assert Fault(status=500, at=4).at == frozenset({4})
    assert Fault(status=500).at is None


def test_a_fault_replaces_the_answer_only_with_a_status_or_a_drop() -> None:
    assert Fault(status=500).replaces_answer
    assert Fault(drop=True).replaces_answer
    assert not Fault(latency=1.0).replaces_answer


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": 500, "drop": True}, "status"),
        ({"status": 99}, "status"),
        ({"status": True}, "status"),
        ({"probability": 1.5}, "probability"),
        ({"probability": -0.1}, "probability"),
        ({"at": {-1}}, "at"),
        ({"at": {"3"}}, "at"),
        ({"latency": -1.0}, "latency"),
        ({"latency": math.inf}, "latency"),
        ({"retry_after": -1}, "retry_after"),
    ],
)
def test_a_fault_that_makes_no_sense_is_a_validation_error(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Fault(**kwargs)
    assert caught.value.field == field


def test_an_operation_must_be_an_operation() -> None:
    with pytest.raises(TypeError):
        Fault(operation="launch_v2")  # type: ignore[arg-type]


# -- Fault.parse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("503", Fault(status=503)),
        ("503:0.02", Fault(status=503, probability=0.02)),
        ("drop:0.01", Fault(drop=True, probability=0.01)),
        ("429:0.5,retry-after=2", Fault(status=429, probability=0.5, retry_after=2.0)),
        ("500@3,processed", Fault(status=500, at={3}, processed=True)),
        ("500:1@0", Fault(status=500, probability=1.0, at={0})),
        (
            "drop@0,processed,op=create",
            Fault(drop=True, at={0}, processed=True, operation=Operation.CREATE),
        ),
        ("slow,latency=0.2,op=launch_v2", Fault(latency=0.2, operation=Operation.LAUNCH_V2)),
        ("slow:0.1, latency=2", Fault(probability=0.1, latency=2.0)),  # spaces are allowed
        ("503,latency=1", Fault(status=503, latency=1.0)),
    ],
)
def test_parse_reads_the_fault_syntax(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not 'bogus'"),
        ("", "WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not ''"),
        ("200:0.1", "WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not '200'"),
        ("-500", "WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not '-500'"),
        (
            "latency=abc",
            "WHAT must be an HTTP error status (400-599), 'drop' or 'slow', not "
            "'latency=abc' (OPTIONs come after a comma, e.g. slow,latency=2)",
        ),
        ("500@x", "@INDEX must be a request index, a whole number from 0 up, not 'x'"),
        ("500@-1", "@INDEX must be a request index, a whole number from 0 up, not '-1'"),
        ("500@", "@INDEX must be a request index, a whole number from 0 up, not ''"),
        ("503:0", "PROBABILITY must be a number more than 0 and at most 1, not '0'"),
        ("503:1.5", "PROBABILITY must be a number more than 0 and at most 1, not '1.5'"),
        ("503:x", "PROBABILITY must be a number more than 0 and at most 1, not 'x'"),
        ("503:nan", "PROBABILITY must be a number more than 0 and at most 1, not 'nan'"),
        ("slow,latency=abc", "latency must be a number of seconds >= 0, not 'abc'"),
        ("slow,latency=-1", "latency must be a number of seconds >= 0, not '-1'"),
        ("slow,latency=inf", "latency must be a number of seconds >= 0, not 'inf'"),
        ("429,retry-after=soon", "retry-after must be a number of seconds >= 0, not 'soon'"),
        (
            "drop,colour=red",
            "unknown option 'colour=red': OPTION is latency=SECONDS, retry-after=SECONDS, "
            "processed or op=OPERATION",
        ),
        ("500,processed=yes", "write the option 'processed' as processed"),
        ("slow,latency", "write the option 'latency' as latency=..."),
        (
            "500,op=launch",
            "op must be one of create, launch_v1, launch_v2, delete, campaign_metrics, "
            "overall_metrics, top_metrics, not 'launch'",
        ),
        ("slow,latency=1,latency=2", "the option 'latency' is given twice"),
        ("slow", "'slow' needs latency=SECONDS, e.g. slow,latency=2"),
        ("503,retry-after=1", "retry-after=SECONDS goes with a 429 or a 403 only"),
    ],
)
def test_parse_errors_name_the_part_and_its_values(spec: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Fault.parse(spec)
    assert caught.value.field == "fault"
    assert caught.value.message == message
    assert str(caught.value) == f"fault: {message}"
    assert "invalid literal" not in message


def test_parse_takes_only_text() -> None:
    with pytest.raises(ValidationError, match="fault: must be a string, not int"):
        Fault.parse(503)  # type: ignore[arg-type]
