"""Telemetry: the spans, events and metrics the SDK reports, its WARNING lines, and nothing at
all without opentelemetry-api.

Every test gets fresh providers (the SDK's in-memory span exporter and metric reader) through
`telemetry.configure`: the global providers can be set only once per process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from insider_webpush import (
    APIError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SlidingWindowLimiter,
    TransportError,
    WebPush,
    WebPushClient,
    telemetry,
)
from insider_webpush.limiter import key_fingerprint
from insider_webpush.models import Timeouts
from insider_webpush.outcomes import Stage
from insider_webpush.transport import Gate, Request, Response

from .samples import MINIMAL_FIELDS
from .stub_transport import ScriptedTransport

KEY = "sk-live-0123456789abcdef-SECRET"
PARTNER = "10000001"
MINIMAL = WebPush(**MINIMAL_FIELDS)
FAST = RetryPolicy(max_attempts=3, base=0.001, cap=0.01)
SPAN_NAME = "POST /v2/single/{campaign_id}"
ATTEMPT = "insider_webpush.attempt"
GONE_OUT = "may have gone out"


@attrs.frozen
class Otel:
    """This test's providers and what they received."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def span(self) -> ReadableSpan:
        (span,) = self.finished()
        return span

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric `name` (none when it was never recorded)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def counts(self, name: str, *keys: str) -> dict[tuple[Any, ...], Any]:
        """A counter's values by the attributes `keys`."""
        return {
            tuple(point.attributes.get(k) for k in keys): point.value
            for point in self.points(name)
            if point.value
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Otel(spans, reader)
    finally:
        telemetry.configure()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def client(transport: Any, **kwargs: Any) -> WebPushClient:
    kwargs.setdefault("partner_id", PARTNER)
    kwargs.setdefault("retry", FAST)
    return WebPushClient(KEY, transport=transport, **kwargs)


def events(span: ReadableSpan) -> list[dict[str, Any]]:
    assert all(event.name == ATTEMPT for event in span.events)
    return [dict(event.attributes or {}) for event in span.events]


def assert_no_key(otel: Otel) -> None:
    """No span attribute or event holds the key, or any header."""
    for span in otel.finished():
        text = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
        assert KEY not in text
        assert "Authorization" not in text
        assert "Bearer" not in text


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "insider_webpush" and r.levelno == logging.WARNING
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- one operation --------------------------------------------------------------------------


async def test_a_success_is_one_client_span_with_one_attempt_event(otel: Otel) -> None:
    stub = ScriptedTransport()
    async with client(stub) as c:
        await c.send(MINIMAL, campaign_id=25696)
    span = otel.span()
    assert span.name == SPAN_NAME
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "web-push.api.useinsider.com",
        "server.port": 443,
        "url.full": "https://web-push.api.useinsider.com/v2/single/25696",
        "url.template": "/v2/single/{campaign_id}",
        "insider_webpush.operation": "launch_v2",
        "insider_webpush.result": "success",
        "insider_webpush.ambiguous": False,
        "http.response.status_code": 200,
    }
    (event,) = events(span)
    assert event["insider_webpush.attempt"] == 1
    assert event["http.response.status_code"] == 200
    assert event["insider_webpush.result"] == "success"
    assert event["insider_webpush.ambiguous"] is False
    assert event["insider_webpush.limiter.wait"] >= 0
    assert "insider_webpush.retry.delay" not in event
    assert otel.counts("insider_webpush.attempts", "insider_webpush.operation") == {
        ("launch_v2",): 1
    }
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.result") == {("success",): 1}
    (duration,) = otel.points("http.client.request.duration")
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "http.request.method": "POST",
        "server.address": "web-push.api.useinsider.com",
        "server.port": 443,
        "url.template": "/v2/single/{campaign_id}",
        "http.response.status_code": 200,
    }
    (wait,) = otel.points("insider_webpush.limiter.wait.duration")
    assert wait.count == 1
    assert otel.points("insider_webpush.rate_limited") == []
    assert_no_key(otel)


async def test_create_and_delete_have_their_own_spans(otel: Otel) -> None:
    stub = ScriptedTransport([(201, {"success": True, "campaign_id": 7}), (200, {})])
    async with client(stub) as c:
        draft = await c.create("Sale")
        await c.delete(draft)
    assert [s.name for s in otel.finished()] == [
        "POST /v1/single",
        "DELETE /v1/single/{campaign_id}",
    ]
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.operation") == {
        ("create",): 1,
        ("delete",): 1,
    }


async def test_a_429_then_a_success(otel: Otel, caplog: pytest.LogCaptureFixture) -> None:
    stub = ScriptedTransport(
        [(429, {}, {"Retry-After": "0.01"}), (200, {"success": True, "campaign_id": 1})]
    )
    async with client(stub, retry=RetryPolicy()) as c:
        await c.send(MINIMAL)
    span = otel.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["http.request.resend_count"] == 1
    assert span.attributes["insider_webpush.result"] == "success"
    first, second = events(span)
    assert first["http.response.status_code"] == 429
    assert first["insider_webpush.result"] == "retry_safe"
    assert first["error.type"] == "429"
    assert first["insider_webpush.retry.delay"] == pytest.approx(0.01)
    assert (second["insider_webpush.attempt"], second["http.response.status_code"]) == (2, 200)
    assert otel.counts("insider_webpush.rate_limited", "insider_webpush.operation") == {
        ("launch_v2",): 1
    }
    assert otel.counts("insider_webpush.attempts", "insider_webpush.result") == {
        ("retry_safe",): 1,
        ("success",): 1,
    }
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.result") == {("success",): 1}
    assert len(otel.points("http.client.request.duration")) == 2  # by status: 429 and 200
    (warning,) = warnings_of(caplog)  # exactly one per 429, the client's
    assert "HTTP 429" in warning
    assert f"sha256:{key_fingerprint(KEY)}" in warning
    assert KEY not in caplog.text


async def test_a_statistics_403_counts_as_throttling_and_its_read_has_a_span(otel: Otel) -> None:

    from tests.insider_collection import TOP, sample

    stub = ScriptedTransport(
        [(403, {"message": "Request limit exceeded"}), (200, sample(TOP, 200))]
    )
    async with client(stub, retry=RetryPolicy(base=0.01), partner_id="1") as c:
        day = dt.date(2026, 11, 1)
        await c.top_metrics(start_date=day, end_date=day)
    span = otel.span()
    assert span.name == "POST /v1/statistics/top-metrics"
    assert span.attributes is not None
    assert span.attributes["insider_webpush.operation"] == "top_metrics"
    assert span.attributes["insider_webpush.result"] == "success"
    first, _ = events(span)
    assert (first["http.response.status_code"], first["insider_webpush.result"]) == (
        403,
        "retry_safe",
    )
    assert otel.counts("insider_webpush.rate_limited", "insider_webpush.operation") == {
        ("top_metrics",): 1
    }


async def test_a_500_is_ambiguous(otel: Otel, caplog: pytest.LogCaptureFixture) -> None:
    stub = ScriptedTransport([(500, {"message": "boom"})])
    async with client(stub) as c:
        with pytest.raises(ServerError):
            await c.send(MINIMAL)
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None  # the status code says why
    assert span.attributes is not None
    assert span.attributes["error.type"] == "500"
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["insider_webpush.ambiguous"] is True
    assert span.attributes["insider_webpush.result"] == "ambiguous"
    (event,) = events(span)
    assert event["insider_webpush.ambiguous"] is True
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.result") == {("ambiguous",): 1}
    (warning,) = warnings_of(caplog)
    assert warning == (
        "POST /v2/single/campaign_id: HTTP 500; the push may have gone out, so it is not "
        f"resent (key sha256:{key_fingerprint(KEY)})"
    )


@pytest.mark.parametrize(
    ("step", "error", "reason"),
    [
        ((503, {"message": "down"}), ServerError, "HTTP 503"),
        (Stage.SENT, TransportError, "scripted"),
        ((200, b"<html>not json</html>"), APIError, "an answer that cannot be read"),
    ],
)
async def test_one_warning_per_ambiguous_outcome_without_opentelemetry(
    step: Any, error: type[Exception], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No fixture: the WARNING does not depend on OpenTelemetry.
    stub = ScriptedTransport([step])
    async with client(stub) as c:
        with pytest.raises(error) as info:
            await c.send(MINIMAL)
    assert getattr(info.value, "ambiguous", None) is True
    (warning,) = warnings_of(caplog)
    assert GONE_OUT in warning
    assert reason in warning


@pytest.mark.parametrize("step", [(400, {"message": "bad"}), Stage.WRITING, (401, {})])
async def test_no_warning_for_a_certain_failure(
    step: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stub = ScriptedTransport([step])
    async with client(stub) as c:
        with pytest.raises((APIError, TransportError)):
            await c.send(MINIMAL)
    assert warnings_of(caplog) == []


async def test_a_refused_connection_is_retried_not_sent(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    async with WebPushClient(
        KEY, partner_id=PARTNER, base_url=f"http://127.0.0.1:{port}", retry=FAST
    ) as c:
        with pytest.raises(TransportError):
            await c.send(MINIMAL)
    span = otel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None
    assert "could not connect" in span.status.description
    assert span.attributes is not None
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == port
    assert span.attributes["error.type"] == "insider_webpush.errors.TransportError"
    assert span.attributes["insider_webpush.stage"] == "not_sent"
    assert span.attributes["insider_webpush.result"] == "retry_safe"
    assert span.attributes["http.request.resend_count"] == 2
    assert "http.response.status_code" not in span.attributes
    attempts = events(span)
    assert [e["insider_webpush.stage"] for e in attempts] == ["not_sent"] * 3
    assert [e["insider_webpush.result"] for e in attempts] == ["retry_safe"] * 3
    assert ["insider_webpush.retry.delay" in e for e in attempts] == [True, True, False]
    assert otel.counts("insider_webpush.attempts", "insider_webpush.result") == {("retry_safe",): 3}
    (duration,) = otel.points("http.client.request.duration")
    assert duration.count == 3
    assert duration.attributes["error.type"] == "insider_webpush.errors.TransportError"
    assert otel.points("insider_webpush.limiter.wait.duration") == []  # never reached a gate
    assert warnings_of(caplog) == []  # nothing may have gone out


async def test_a_long_pause_refuses_in_a_span_with_no_attempt(otel: Otel) -> None:
    limiter = SlidingWindowLimiter(10, 1.0)
    limiter.penalize(1000)  # longer than RetryPolicy.max_retry_after
    stub = ScriptedTransport()
    async with client(stub, limiter=limiter) as c:
        with pytest.raises(RateLimitError):
            await c.send(MINIMAL)
    assert stub.sent == []
    span = otel.span()
    assert span.events == ()
    assert span.attributes is not None
    # Its 429 was never answered by a server: the error is named by its class.
    assert span.attributes["error.type"] == "insider_webpush.errors.RateLimitError"
    assert span.attributes["insider_webpush.result"] == "retry_safe"
    assert otel.counts("insider_webpush.attempts", "insider_webpush.result") == {}
    assert otel.points("insider_webpush.rate_limited") == []


class Hang:
    """A transport that hangs, after its gate (`gated=True`: the request is on the wire) or
    before it, until cancelled."""

    def __init__(self, *, gated: bool) -> None:
        self.gated = gated
        self.waiting = asyncio.Event()

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        if self.gated:
            await gate()
        self.waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(("gated", "result"), [(True, "ambiguous"), (False, "certain_failure")])
async def test_a_cancelled_send_is_ambiguous_only_once_on_the_wire(
    otel: Otel, gated: bool, result: str
) -> None:
    transport = Hang(gated=gated)
    async with client(transport) as c:
        task = asyncio.create_task(c.send(MINIMAL))
        await transport.waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    span = otel.span()
    assert span.attributes is not None
    assert span.attributes["insider_webpush.result"] == result
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.result") == {(result,): 1}


async def test_the_request_duration_leaves_out_the_wait_for_the_quota(otel: Otel) -> None:
    stub = ScriptedTransport()
    async with client(stub, limiter=SlidingWindowLimiter(1, 0.3)) as c:
        await c.send(MINIMAL)
        await c.send(MINIMAL)  # waits ~0.3 s for its grant
    (wait,) = otel.points("insider_webpush.limiter.wait.duration")
    assert wait.count == 2
    assert wait.sum >= 0.25
    (duration,) = otel.points("http.client.request.duration")
    assert duration.count == 2
    assert duration.sum < 0.1
    waits = [events(span)[0]["insider_webpush.limiter.wait"] for span in otel.finished()]
    assert waits[1] >= 0.25


async def test_a_slow_attempt_hook_is_neither_request_time_nor_on_the_wire(otel: Otel) -> None:
    # The hook (a journal or dedupe record) runs in the gate, before the first byte.
    async def record() -> None:
        await asyncio.sleep(0.2)

    async with client(ScriptedTransport()) as c:
        await c.send(MINIMAL, on_attempt=lambda number: record())
        (duration,) = otel.points("http.client.request.duration")
        assert duration.sum < 0.1
        stuck = asyncio.Event()

        async def never() -> None:
            stuck.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(c.send(MINIMAL, on_attempt=lambda number: never()))
        await stuck.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Cancelled in its hook: nothing was written, so it cannot have gone out.
    assert otel.counts("insider_webpush.outcomes", "insider_webpush.result") == {
        ("success",): 1,
        ("certain_failure",): 1,
    }


async def test_the_span_is_current_while_the_request_runs(otel: Otel) -> None:
    from opentelemetry import trace

    seen: list[Any] = []

    def on_attempt(number: int) -> None:
        seen.append(trace.get_current_span().get_span_context().span_id)

    async with client(ScriptedTransport()) as c:
        await c.send(MINIMAL, on_attempt=on_attempt)
    assert seen == [otel.span().context.span_id]
    assert not trace.get_current_span().get_span_context().is_valid  # detached after


async def test_a_client_made_before_configure_reports_to_the_new_providers() -> None:
    made_before = client(ScriptedTransport())
    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    telemetry.configure(tracer_provider=provider, meter_provider=meters)
    try:
        async with made_before as c:
            await c.send(MINIMAL)
    finally:
        telemetry.configure()
        provider.shutdown()
        meters.shutdown()
    assert [s.name for s in spans.get_finished_spans()] == [SPAN_NAME]


async def test_with_no_provider_set_nothing_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    # No fixture, and no test sets a global provider: telemetry is dormant, and a request
    # pays one check (benchmarks/overhead.py measures it), not a span and four records.
    def made(*args: Any) -> None:
        raise AssertionError("an Operation was made with no provider set")

    monkeypatch.setattr(telemetry, "Operation", made)
    active = telemetry.active()
    assert active is not None
    monkeypatch.setattr(active, "_next_check", 0.0)  # look for a global provider now
    async with client(ScriptedTransport()) as c:
        assert (await c.send(MINIMAL)).campaign_id == 1
    assert active.recording() is False


_GLOBAL = """
import asyncio, json, sys
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from insider_webpush import FakeInsider, WebPush, telemetry

push = WebPush(**json.loads(sys.argv[1]))
fake = FakeInsider()
client = fake.client(in_process=True)  # made before any provider is set

async def send():
    async with client:
        await client.send(push)

asyncio.run(send())
dormant = not telemetry.active().recording()
spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
telemetry.active()._next_check = 0  # rather than wait for the next look (a second)
asyncio.run(send())
names = [m.name for r in reader.get_metrics_data().resource_metrics
         for s in r.scope_metrics for m in s.metrics]
print(json.dumps({"dormant": dormant, "spans": [s.name for s in spans.get_finished_spans()],
                  "metrics": sorted(names)}))
"""


def test_zero_config_global_providers_set_after_the_client_is_made() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _GLOBAL, json.dumps(MINIMAL_FIELDS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    assert report["dormant"] is True  # no provider: nothing made, nothing recorded
    assert report["spans"] == [SPAN_NAME]  # only the send made once they were set
    assert "insider_webpush.outcomes" in report["metrics"]
    assert "http.client.request.duration" in report["metrics"]


# -- batches ---------------------------------------------------------------------------------


class Held(ScriptedTransport):
    """A ScriptedTransport that holds every request after its gate until `release` is set;
    `all_held` is set once `expected` requests are held."""

    def __init__(self, *args: Any, expected: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.all_held = asyncio.Event()
        self.expected = expected
        self.held = 0

    async def send(self, request: Request, gate: Gate, timeouts: Timeouts) -> Response:
        async def held_gate() -> None:
            await gate()
            self.held += 1
            if self.held >= self.expected:
                self.all_held.set()
            await self.release.wait()

        return await super().send(request, held_gate, timeouts)


async def test_batch_progress(
    otel: Otel, caplog: pytest.LogCaptureFixture, tmp_path: os.PathLike[str]
) -> None:
    stub = Held(
        [(200, {"success": True, "campaign_id": 1}), (400, {"message": "bad"}), (500, {})],
        expected=3,
    )
    pushes: list[Any] = [MINIMAL, MINIMAL, MINIMAL, "not a push"]
    journal = os.path.join(tmp_path, "batch.jsonl")
    async with client(stub) as c:
        run = asyncio.create_task(c.send_many(pushes, concurrency=4, journal=journal))
        await stub.all_held.wait()
        (in_flight,) = otel.points("insider_webpush.batch.in_flight")
        assert in_flight.value == 3  # the three pushes, not the item that is not one
        stub.release.set()
        result = await run
        assert result.counts["ambiguous"] == 1
        (in_flight,) = otel.points("insider_webpush.batch.in_flight")
        assert in_flight.value == 0
        assert otel.counts(
            "insider_webpush.batch.outcomes",
            "insider_webpush.result",
            "insider_webpush.from_journal",
        ) == {
            ("success", False): 1,
            ("certain_failure", False): 2,  # the 400, and the item that is not a push
            ("ambiguous", False): 1,
        }
        # The client warned of the ambiguous push; the batch adds no second line.
        assert [w for w in warnings_of(caplog) if GONE_OUT in w] == [
            w for w in warnings_of(caplog) if "HTTP 500" in w
        ]
        assert len(warnings_of(caplog)) == 1
        # A rerun: the success and the ambiguous push come from the journal, not the wire.
        await c.send_many(pushes, concurrency=4, journal=journal)
    assert otel.counts(
        "insider_webpush.batch.outcomes", "insider_webpush.result", "insider_webpush.from_journal"
    ) == {
        ("success", False): 2,  # the 400 resent (a certain failure): now a success
        ("success", True): 1,
        ("certain_failure", False): 3,
        ("ambiguous", False): 1,
        ("ambiguous", True): 1,
    }
    assert len(warnings_of(caplog)) == 1


# -- without OpenTelemetry -------------------------------------------------------------------

_ABSENT = """
import asyncio, json, sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
from insider_webpush import FakeInsider, MissingExtraError, WebPush, telemetry

async def main():
    fake = FakeInsider()
    async with fake.client(in_process=True) as client:
        result = await client.send(WebPush(**json.loads(sys.argv[1])))
    return result.campaign_id

campaign_id = asyncio.run(main())
try:
    telemetry.configure()
    refused = False
except MissingExtraError:
    refused = True
loaded = sorted(m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v)
print(json.dumps({"campaign_id": campaign_id, "refused": refused, "loaded": loaded,
                  "active": telemetry.active() is not None}))
"""


def test_without_opentelemetry_the_client_works_and_imports_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ABSENT, json.dumps(MINIMAL_FIELDS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    assert report["campaign_id"] > 0
    assert report == {**report, "refused": True, "loaded": [], "active": False}


def test_importing_the_sdk_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, insider_webpush, insider_webpush.telemetry; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
