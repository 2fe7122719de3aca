"""Optional OpenTelemetry traces and metrics, and the WARNING lines for everyone else.

With the `otel` extra (`pip install 'insider-webpush[otel]'`, the `opentelemetry-api`
package) every client reports to the global tracer and meter providers, with no
configuration: whatever the application set up with the OpenTelemetry SDK (or an agent such as
`opentelemetry-instrument`) receives them. While no provider is set, nothing is made or
recorded and a request pays one check; a global provider set later is seen within a second.
Without the package nothing is imported (not even by `import insider_webpush`: the first
client imports it) and nothing is recorded.
[`configure`][insider_webpush.telemetry.configure] points the SDK at other providers.

**Traces.** A span per operation (a launch, a create, a delete, a statistics read), kind
`CLIENT`, named `{method} {path template}` as OpenTelemetry's HTTP client conventions name a
span with a low-cardinality target, e.g. `POST /v2/single/{campaign_id}`. It covers every
attempt of the request and the waits between them: the one span of the "top-most operation"
that the conventions allow; an instrumented aiohttp adds a span per attempt below it. Its
attributes:

- `http.request.method`, `server.address`, `server.port`, `url.full`, `url.template`: the
  request (never a header: the key is in one);
- `http.response.status_code`: the last answer's status, when there was one;
- `http.request.resend_count`: the attempts after the first, when there were any;
- `error.type`, on a failure: the status that failed it (`"429"`, `"503"`), else the
  exception's class, e.g. `insider_webpush.errors.TransportError`;
- `insider_webpush.operation`: `launch_v2`, `launch_v1`, `create`, `delete`,
  `campaign_metrics`, `overall_metrics` (a span per page) or `top_metrics`;
- `insider_webpush.result`: the outcome's [`Verdict`][insider_webpush.outcomes.Verdict],
  as `success`, `retry_safe`, `certain_failure` or `ambiguous`;
- `insider_webpush.ambiguous`: the request may have gone out although it failed;
- `insider_webpush.stage`, on a transport failure: `not_sent`, `writing` or `sent`.

Its status is `ERROR` on any failure. One event, `insider_webpush.attempt`, per attempt, with
`insider_webpush.attempt` (its number, from 1), `insider_webpush.result`,
`insider_webpush.ambiguous`, `http.response.status_code` or `insider_webpush.stage`,
`error.type`, `insider_webpush.limiter.wait` (seconds it waited for its grant of the quota)
and, when another attempt follows, `insider_webpush.retry.delay` (seconds before it).

**Metrics**, from the meter `insider_webpush`:

- `insider_webpush.attempts` (counter, `{attempt}`) and `insider_webpush.outcomes` (counter,
  `{operation}`), by `insider_webpush.operation` and `insider_webpush.result`;
- `insider_webpush.rate_limited` (counter, `{response}`): throttling answers (429s, and
  the statistics endpoints' 403s), by operation;
- `insider_webpush.limiter.wait.duration` (histogram, `s`): each grant's wait for the quota,
  by operation;
- `http.client.request.duration` (histogram, `s`), as the HTTP conventions define it: each
  attempt, its wait for the quota excluded, by `http.request.method`, `server.address`,
  `server.port`, `url.template`, `http.response.status_code` and `error.type`;
- `insider_webpush.batch.in_flight` (up-down counter, `{push}`): pushes of running batches
  being sent;
- `insider_webpush.batch.outcomes` (counter, `{push}`): the outcomes of batches, by
  `insider_webpush.result` and `insider_webpush.from_journal`.

**Logs**, for users without OpenTelemetry too: the logger `insider_webpush` writes a WARNING
per 429 (the key pauses) and one per ambiguous outcome ("... may have gone out ..."), naming
the key only by its fingerprint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ._version import __version__
from .errors import APIError, InsiderError, MissingExtraError, TransportError
from .outcomes import Verdict, verdict_for_stage, verdict_for_status

if TYPE_CHECKING:  # opentelemetry-api is an optional extra, imported on first use
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .batch import Outcome
    from .endpoints import Endpoint
    from .sender import AttemptHook
    from .transport import Request, Response

__all__ = ["METER_NAME", "TRACER_NAME", "configure"]

TRACER_NAME: Final = "insider_webpush"
"""The instrumentation scope of the SDK's spans."""
METER_NAME: Final = "insider_webpush"
"""The instrumentation scope (meter name) of the SDK's metrics."""

logger = logging.getLogger("insider_webpush")

# OpenTelemetry's advice for http.client.request.duration, in seconds.
_HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# A grant may wait up to a whole window of the quota (a minute for launch v2).
_WAIT_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_RESULTS: Final = {v: v.name.lower() for v in Verdict}  # success, retry_safe, ...
_RECHECK: Final = 1.0  # seconds between two looks for a global provider while none is set

Send = Callable[["Endpoint", "Request", "AttemptHook | None", "Operation"], Awaitable["Response"]]


def warn_ambiguous(where: str, reason: str, key_id: str) -> None:
    """Log the WARNING of an outcome that may have gone out (never resent automatically).

    Args:
        where: The request's method and path, e.g. `"POST /v2/single/campaign_id"`.
        reason: What happened, e.g. `"HTTP 503"` or a `TransportError`'s message.
        key_id: The key's fingerprint (never the key).
    """
    logger.warning(
        "%s: %s; the push may have gone out, so it is not resent (key sha256:%s)",
        where,
        reason,
        key_id,
        extra={"insider_webpush_event": "ambiguous"},  # client.LOG_EVENT
    )


def log_unreadable(status: int, key_id: str) -> None:
    """Log the WARNING of a success answer whose body cannot be read (ambiguous).

    Args:
        status: Its HTTP status.
        key_id: The key's fingerprint.
    """
    warn_ambiguous(f"HTTP {status}", "an answer that cannot be read", key_id)


def _where(request: Request) -> str:
    return f"{request.method} {urlsplit(request.url).path}"


def attempt_failed(
    op: Operation | None, request: Request, key_id: str, exc: TransportError, delay: float | None
) -> None:
    """An attempt got no complete answer: its WARNING when ambiguous, its telemetry.

    Args:
        op: The operation's telemetry, or None.
        request: The request.
        key_id: The key's fingerprint.
        exc: The failure.
        delay: Seconds before the next attempt, or None when none follows.
    """
    if delay is None and exc.ambiguous:
        warn_ambiguous(_where(request), exc.message, key_id)
    if op is not None:
        idempotent = op.endpoint.idempotent
        op.attempt_done(verdict_for_stage(exc.stage, idempotent=idempotent), None, exc, delay)


def attempt_answered(
    op: Operation | None,
    request: Request,
    key_id: str,
    status: int,
    verdict: Verdict,
    delay: float | None,
) -> None:
    """An attempt got a non-success answer: its WARNING when ambiguous, its telemetry.

    Args:
        op: The operation's telemetry, or None.
        request: The request.
        key_id: The key's fingerprint.
        status: The answer's HTTP status.
        verdict: The outcome table's verdict for it.
        delay: Seconds before the next attempt, or None when none follows.
    """
    if delay is None and verdict.ambiguous:
        warn_ambiguous(_where(request), f"HTTP {status}", key_id)
    if op is not None:
        op.attempt_done(verdict, status, None, delay)


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _verdict_of(exc: BaseException, *, idempotent: bool, on_wire: bool) -> Verdict:
    """The verdict of an operation that raised `exc` (`on_wire`: its last attempt had passed
    its gate and got no answer yet)."""
    if isinstance(exc, InsiderError):
        if exc.ambiguous:
            return Verdict.AMBIGUOUS
        if isinstance(exc, TransportError):
            return verdict_for_stage(exc.stage, idempotent=idempotent)
        if isinstance(exc, APIError):
            return verdict_for_status(exc.status, idempotent=idempotent)
        return Verdict.CERTAIN_FAILURE  # refused before anything went out
    # A cancellation, or a bug: only a request already on the wire may have gone out.
    return Verdict.AMBIGUOUS if on_wire and not idempotent else Verdict.CERTAIN_FAILURE


def _server(prefix: str) -> tuple[str, int]:
    """`(server.address, server.port)` of `scheme://host[:port]`."""
    parts = urlsplit(prefix)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default


class _Instruments:
    """The instruments of one meter provider, and the attribute sets they record with."""

    def __init__(
        self, meter_provider: MeterProvider | None, in_flight: Callable[[Any], Iterable[Any]]
    ) -> None:
        meter = _otel.metrics.get_meter(METER_NAME, __version__, meter_provider)
        self.attempts = meter.create_counter(
            "insider_webpush.attempts", "{attempt}", "Attempts of requests, by their verdict"
        )
        self.outcomes = meter.create_counter(
            "insider_webpush.outcomes", "{operation}", "Operations ended, by their verdict"
        )
        self.rate_limited = meter.create_counter(
            "insider_webpush.rate_limited", "{response}", "Throttling answers (the key's quota)"
        )
        self.limiter_wait = meter.create_histogram(
            "insider_webpush.limiter.wait.duration",
            "s",
            "Time an attempt waited for its grant of the key's quota",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            "s",
            "Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_HTTP_BUCKETS,
        )
        # Observed, not counted up and down: a provider set while pushes are in flight
        # would otherwise get their -1 without their +1.
        self.batch_in_flight = meter.create_observable_up_down_counter(
            "insider_webpush.batch.in_flight",
            [in_flight],
            "{push}",
            "Pushes of running batches being sent",
        )
        self.batch_outcomes = meter.create_counter(
            "insider_webpush.batch.outcomes", "{push}", "Outcomes of batches, by their verdict"
        )
        # Attribute sets are few: each is made once (the SDK hashes them on every record).
        self._op: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._http: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._batch: dict[tuple[str, bool], dict[str, Any]] = {}

    def op_attributes(self, operation: str, result: str | None = None) -> dict[str, Any]:
        """`insider_webpush.operation` and, unless None, `insider_webpush.result`."""
        attributes = self._op.get((operation, result))
        if attributes is None:
            attributes = {"insider_webpush.operation": operation}
            if result is not None:
                attributes["insider_webpush.result"] = result
            self._op[operation, result] = attributes
        return attributes

    def http_attributes(
        self,
        endpoint: Endpoint,
        server: tuple[str, int],
        status: int | None,
        error: str | None,
    ) -> dict[str, Any]:
        """The attributes of `http.client.request.duration`."""
        key = (endpoint.operation, server, status, error)
        attributes = self._http.get(key)
        if attributes is None:
            attributes = {
                "http.request.method": endpoint.method,
                "server.address": server[0],
                "server.port": server[1],
                "url.template": endpoint.path,
            }
            if status is not None:
                attributes["http.response.status_code"] = status
            if error is not None:
                attributes["error.type"] = error
            self._http[key] = attributes
        return attributes

    def batch_attributes(self, result: str, from_journal: bool) -> dict[str, Any]:
        """`insider_webpush.result` and `insider_webpush.from_journal`."""
        attributes = self._batch.get((result, from_journal))
        if attributes is None:
            attributes = self._batch[result, from_journal] = {
                "insider_webpush.result": result,
                "insider_webpush.from_journal": from_journal,
            }
        return attributes


class Operation:
    """The telemetry of one operation in progress: its span, and its current attempt."""

    __slots__ = (
        "_attempt",
        "_gated",
        "_instruments",
        "_on_wire",
        "_op",
        "_recorded",
        "_server",
        "_started",
        "_status",
        "_waited",
        "endpoint",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer,
        instruments: _Instruments,
        endpoint: Endpoint,
        request: Request,
        server: tuple[str, int],
    ) -> None:
        self._instruments = instruments
        self.endpoint = endpoint
        self._op = endpoint.operation.value
        self._server = server
        self.span: Span = tracer.start_span(
            f"{endpoint.method} {endpoint.path}",
            kind=_otel.CLIENT,
            attributes={  # the ones a sampler may read, given at the start as asked
                "http.request.method": endpoint.method,
                "server.address": server[0],
                "server.port": server[1],
                "url.full": request.url,  # the base URL has no user info, query or fragment
                "url.template": endpoint.path,
                "insider_webpush.operation": self._op,
            },
        )
        self._attempt = 0
        self._started = 0.0
        self._waited = 0.0
        self._gated = 0.0
        self._on_wire = False
        self._recorded = True  # no attempt in progress
        self._status: int | None = None

    def attempt_started(self) -> None:
        """An attempt begins (before its connection and its wait for the quota)."""
        self._attempt += 1
        self._started = time.perf_counter()
        self._waited = 0.0
        self._gated = 0.0
        self._on_wire = False
        self._recorded = False

    def granted(self, waited: float) -> None:
        """The attempt has its grant of the quota, after `waited` seconds."""
        self._waited = waited
        instruments = self._instruments
        instruments.limiter_wait.record(waited, instruments.op_attributes(self._op))

    def on_wire(self, gate_entered: float) -> None:
        """The attempt passed its gate (entered at `gate_entered`, a `time.perf_counter()`):
        its first byte goes next."""
        self._gated = time.perf_counter() - gate_entered
        self._on_wire = True

    def attempt_done(
        self,
        verdict: Verdict,
        status: int | None,
        exc: BaseException | None,
        delay: float | None,
    ) -> None:
        """The attempt ended: an answer (`status`) or a failure (`exc`); `delay` seconds
        before the next attempt, or None."""
        # The request's own time: not the gate's (the wait for the quota, a journal write).
        elapsed = time.perf_counter() - self._started - (self._gated or self._waited)
        self._recorded = True
        self._status = status
        instruments = self._instruments
        result = _RESULTS[verdict]
        stage = exc.stage.name.lower() if isinstance(exc, TransportError) else None
        error: str | None = None
        if status is not None:
            error = None if verdict is Verdict.SUCCESS else str(status)
        elif exc is not None:
            error = _error_type(exc)
        instruments.attempts.add(1, instruments.op_attributes(self._op, result))
        if status is not None and status in self.endpoint.throttle_statuses:
            instruments.rate_limited.add(1, instruments.op_attributes(self._op))
        if status is not None or stage is not None or self._on_wire:  # an HTTP request
            instruments.request_duration.record(
                max(elapsed, 0.0),
                instruments.http_attributes(self.endpoint, self._server, status, error),
            )
        span = self.span
        if span.is_recording():
            event: dict[str, Any] = {
                "insider_webpush.attempt": self._attempt,
                "insider_webpush.result": result,
                "insider_webpush.ambiguous": verdict.ambiguous,
                "insider_webpush.limiter.wait": self._waited,
            }
            if status is not None:
                event["http.response.status_code"] = status
            if stage is not None:
                event["insider_webpush.stage"] = stage
            if error is not None:
                event["error.type"] = error
            if delay is not None:
                event["insider_webpush.retry.delay"] = delay
            span.add_event("insider_webpush.attempt", event)

    def end(self, response: Response | None, exc: BaseException | None) -> None:
        """The operation ended with `response` (a success) or `exc`; the span ends."""
        if exc is None:
            assert response is not None
            verdict = Verdict.SUCCESS
            if not self._recorded:
                self.attempt_done(verdict, response.status, None, None)
        else:
            # On the wire: past its gate, no answer yet (not between attempts).
            on_wire = self._on_wire and not self._recorded
            verdict = _verdict_of(exc, idempotent=self.endpoint.idempotent, on_wire=on_wire)
            if not self._recorded:  # cut short by its gate, a cancellation or a bug
                self.attempt_done(verdict, None, exc, None)
        instruments = self._instruments
        result = _RESULTS[verdict]
        instruments.outcomes.add(1, instruments.op_attributes(self._op, result))
        span = self.span
        if span.is_recording():
            self._finish(span, verdict, exc)
        span.end()

    def _finish(self, span: Span, verdict: Verdict, exc: BaseException | None) -> None:
        attributes: dict[str, Any] = {
            "insider_webpush.result": _RESULTS[verdict],
            "insider_webpush.ambiguous": verdict.ambiguous,
        }
        if self._status is not None:
            attributes["http.response.status_code"] = self._status
        if self._attempt > 1:
            attributes["http.request.resend_count"] = self._attempt - 1
        if exc is not None:
            # A status only when the server answered it (a long pause's 429 was not sent).
            answered = isinstance(exc, APIError) and exc.status == self._status
            attributes["error.type"] = str(self._status) if answered else _error_type(exc)
            if isinstance(exc, TransportError):
                attributes["insider_webpush.stage"] = exc.stage.name.lower()
            # The status says why; anything else gets its text (which never holds the key).
            span.set_status(_otel.ERROR, None if answered else str(exc) or None)
        span.set_attributes(attributes)


class _Telemetry:
    """What every client and batch reports to; `configure` rebinds it in place.

    Dormant while no provider is set, neither given to `configure` nor global: then nothing is
    made or recorded, and a request pays one call of `recording`. Global providers set later
    are seen within `_RECHECK` seconds.
    """

    def __init__(self) -> None:
        self._global: _Instruments | None = None
        self.tracer: Tracer = _otel.trace.get_tracer(TRACER_NAME, __version__)
        self.instruments = self._instruments(None)
        self._servers: dict[str, tuple[str, int]] = {}
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()  # batches run on several threads' loops
        self._configured = False
        self._live = False
        self._next_check = 0.0

    def _instruments(self, meter_provider: MeterProvider | None) -> _Instruments:
        if meter_provider is not None:
            return _Instruments(meter_provider, self._observe_in_flight)
        # The global provider's instruments are made once, however often this runs.
        if self._global is None:
            self._global = _Instruments(None, self._observe_in_flight)
        return self._global

    def configure(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self.tracer = _otel.trace.get_tracer(TRACER_NAME, __version__, tracer_provider)
        self.instruments = self._instruments(meter_provider)
        self._configured = tracer_provider is not None or meter_provider is not None
        self._live = self._configured or _otel.providers_set()
        self._next_check = time.monotonic() + _RECHECK

    def recording(self) -> bool:
        """Something receives telemetry: a provider given to `configure`, or a global one."""
        if self._live:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + _RECHECK
        self._live = _otel.providers_set()  # once set, a global provider stays set
        return self._live

    async def observe(
        self, send: Send, endpoint: Endpoint, request: Request, on_attempt: AttemptHook | None
    ) -> Response:
        """Run `send` (the client's request path) inside the operation's span."""
        url = request.url
        prefix = url[: url.find("/", url.find("//") + 2)]  # scheme://host[:port]
        server = self._servers.get(prefix)
        if server is None:
            server = self._servers[prefix] = _server(prefix)
        op = Operation(self.tracer, self.instruments, endpoint, request, server)
        span = op.span
        # Current while it runs, so that an instrumented aiohttp's spans are its children.
        token = None
        if span.get_span_context().is_valid:
            token = _otel.context.attach(_otel.trace.set_span_in_context(span))
        try:
            response = await send(endpoint, request, on_attempt, op)
        except BaseException as exc:
            op.end(None, exc)
            raise
        finally:
            if token is not None:
                _otel.context.detach(token)
        op.end(response, None)
        return response

    def batch_in_flight(self, change: int) -> None:
        """`change` pushes of a batch started (1) or finished (-1) being sent."""
        with self._in_flight_lock:
            self._in_flight += change

    def _observe_in_flight(self, options: Any) -> Iterable[Any]:
        return [_otel.Observation(self._in_flight)]

    def batch_outcome(self, outcome: Outcome) -> None:
        """One push of a batch has its outcome."""
        if not self.recording():
            return
        if outcome.ok:
            verdict = Verdict.SUCCESS
        else:
            assert outcome.error is not None
            verdict = _verdict_of(outcome.error, idempotent=False, on_wire=False)
        instruments = self.instruments
        attributes = instruments.batch_attributes(_RESULTS[verdict], outcome.from_journal)
        instruments.batch_outcomes.add(1, attributes)


class _Otel:
    """The opentelemetry-api names this module uses, imported once (`_load`)."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        self.context = context
        self.metrics = metrics
        self.trace = trace
        self.CLIENT = trace.SpanKind.CLIENT
        self.ERROR = trace.StatusCode.ERROR
        self.Observation = metrics.Observation
        try:  # the API's stand-in until a meter provider is set (not exported by name)
            from opentelemetry.metrics._internal import _ProxyMeterProvider

            self._proxy_meters: type | None = _ProxyMeterProvider
        except ImportError:  # pragma: no cover - another API version: assume one is set
            self._proxy_meters = None

    def providers_set(self) -> bool:
        """A global tracer or meter provider is set (or named in the environment)."""
        if not isinstance(self.trace.get_tracer_provider(), self.trace.ProxyTracerProvider):
            return True
        proxy = self._proxy_meters
        return proxy is None or not isinstance(self.metrics.get_meter_provider(), proxy)


_UNSET: Final = object()
_otel: Any = None  # an _Otel once opentelemetry-api is imported
_state: Any = _UNSET  # _Telemetry, or None without opentelemetry-api; made on first use
_lock = threading.Lock()


def active() -> _Telemetry | None:
    """The telemetry clients and batches report to; None without opentelemetry-api.

    The first call imports `opentelemetry` (a client's construction makes it), so that
    `import insider_webpush` never does.
    """
    state = _state
    if state is _UNSET:
        state = _load()
    return state  # type: ignore[no-any-return]


def _load() -> _Telemetry | None:
    global _state
    with _lock:  # two threads' first clients: one telemetry
        if _state is _UNSET:
            global _otel
            try:
                _otel = _Otel()
            except ImportError:
                _state = None
            else:
                _state = _Telemetry()
        return _state  # type: ignore[no-any-return]


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Report to these providers rather than the global ones.

    Not needed when the application sets the global providers (`trace.set_tracer_provider`,
    `metrics.set_meter_provider`, or an agent): the SDK reports to them by default, even when
    they are set after its clients are made. Applies at once to every client and batch of the
    process, those made before included. Call it with no arguments to go back to the global
    providers.

    Args:
        tracer_provider: Where spans go; None: the global tracer provider.
        meter_provider: Where metrics go; None: the global meter provider.

    Raises:
        MissingExtraError: opentelemetry-api is not installed (also an `ImportError`).
    """
    telemetry = active()
    if telemetry is None:
        raise MissingExtraError(
            "telemetry needs opentelemetry-api: pip install 'insider-webpush[otel]'"
        )
    telemetry.configure(tracer_provider, meter_provider)
