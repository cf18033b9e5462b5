"""Traces and metrics (OpenTelemetry): the tracer, the meter, the bridge's instruments, and the trace context
that rides in queue messages. One small module that the adapters and use cases call; it decides nothing.

Nothing here is on unless a provider is configured: with no SDK set up, the OpenTelemetry API hands out no-op
spans and instruments, so every call below costs next to nothing and never raises. `configure` sets one up
from the environment (Azure Monitor when APPLICATIONINSIGHTS_CONNECTION_STRING is set, the console exporter
when OTEL_TRACES_EXPORTER=console); devhost may set its own providers first (devhost/telemetry.py), and then
this module leaves them alone. See docs/observability.md.

Attributes never carry a token, a key, a callback URL, a signed status URL or an Excel value: callers pass
identifiers, status codes and counts only, and `set_attributes` drops anything that is not a plain scalar.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

SCOPE = "excel_async_bridge"
_W3C = TraceContextTextMapPropagator()  # messages always carry W3C trace context, whatever the global propagator

AttributeValue = str | int | float | bool


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | histogram | gauge
    unit: str
    description: str


# Every metric the app emits: the instruments below are made from this tuple, and the workbook test
# (tests/infra/test_workbook.py) checks that infra/workbook.json charts exactly these names.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("bridge.operations.started", "counter", "{operation}", "Operations accepted, by action"),
    MetricSpec("bridge.operations.finished", "counter", "{operation}", "Operations ended, by action and status"),
    MetricSpec("bridge.operation.polls", "histogram", "{poll}", "Polls an operation took, recorded when it ends"),
    MetricSpec(
        "bridge.operation.detection_lag",
        "histogram",
        "s",
        "Estimated time from Graph's end of an operation to the poll that saw it (half the last poll gap)",
    ),
    MetricSpec("bridge.graph.responses", "counter", "{response}", "Graph answers, by method and status code"),
    MetricSpec("bridge.webhook.attempts", "counter", "{attempt}", "Webhook attempts, by outcome"),
    MetricSpec("bridge.webhook.dead_lettered", "counter", "{event}", "Webhook events given up (dead-lettered)"),
    MetricSpec("bridge.lane.wait", "histogram", "s", "Time a start waited in its workbook's lane"),
    MetricSpec("bridge.queue.poison", "gauge", "{message}", "Messages in a poison queue (approximate)"),
    MetricSpec(
        "bridge.records.damaged",
        "counter",
        "{record}",
        "Stored operation records that could not be read, by the read that met them and the property at fault",
    ),
)
METRIC_NAMES: tuple[str, ...] = tuple(spec.name for spec in METRICS)


class _Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        made: dict[str, Any] = {}
        for spec in METRICS:
            if spec.kind == "counter":
                made[spec.name] = meter.create_counter(spec.name, spec.unit, spec.description)
            elif spec.kind == "histogram":
                made[spec.name] = meter.create_histogram(spec.name, spec.unit, spec.description)
            else:
                made[spec.name] = meter.create_gauge(spec.name, spec.unit, spec.description)
        self.by_name = made

    def add(self, name: str, amount: int, attributes: Mapping[str, AttributeValue]) -> None:
        self.by_name[name].add(amount, dict(attributes))

    def record(self, name: str, value: float, attributes: Mapping[str, AttributeValue]) -> None:
        self.by_name[name].record(value, dict(attributes))

    def set(self, name: str, value: float, attributes: Mapping[str, AttributeValue]) -> None:
        self.by_name[name].set(value, dict(attributes))


# The API's global providers are proxies until an SDK is installed, so these work whenever configure() runs.
_tracer: trace.Tracer = trace.get_tracer(SCOPE)
_instruments = _Instruments(metrics.get_meter(SCOPE))


def bind(
    tracer_provider: trace.TracerProvider | None = None, meter_provider: metrics.MeterProvider | None = None
) -> None:
    """Use these providers instead of the global ones (tests: an in-memory exporter and metric reader)."""
    global _tracer, _instruments
    _tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE)
    _instruments = _Instruments((meter_provider or metrics.get_meter_provider()).get_meter(SCOPE))


_configured: str | None = None


def configure(environ: Mapping[str, str] | None = None) -> str:
    """Set up the SDK once per worker from the environment; returns which: `azure-monitor`, `console`,
    `preset` (someone, e.g. devhost, installed providers already) or `off` (no-op API)."""
    global _configured
    if _configured is not None:
        return _configured
    env = os.environ if environ is None else environ
    _configured = _configure(env)
    log.info("telemetry: %s", _configured)
    return _configured


def _configure(env: Mapping[str, str]) -> str:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    if isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        return "preset"
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor

            # Reads the connection string and APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ID) itself. Logs
            # stay with the Functions host (it already sends the worker's log lines): no second copy of each.
            configure_azure_monitor(disable_logging=True)
        except Exception:  # telemetry must never stop the app
            log.warning("telemetry: Azure Monitor could not be configured; continuing without it", exc_info=True)
            return "off"
        return "azure-monitor"
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        provider = SdkTracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(
            MeterProvider(metric_readers=[PeriodicExportingMetricReader(ConsoleMetricExporter(), 60_000)])
        )
        return "console"
    return "off"


# --- spans ----------------------------------------------------------------------------------------------------


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """Plain scalars only (and tuples of strings); None and anything else is left out."""
    for key, value in attributes.items():
        if isinstance(value, str | bool | int | float) or (
            isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        ):
            span.set_attribute(key, value)


@contextmanager
def _failure_marked(current: Span) -> Iterator[None]:
    """An exception out of the block marks the span failed (its type as `error.type`) and goes on."""
    try:
        yield
    except BaseException as exc:
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        current.set_attribute("error.type", type(exc).__name__)
        raise


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A child of the current span; an exception marks it failed (and goes on)."""
    with _tracer.start_as_current_span(name, kind=kind, record_exception=False) as current:
        set_attributes(current, attributes or {})
        with _failure_marked(current):
            yield current


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span (the message's or the request's)."""
    set_attributes(trace.get_current_span(), attributes)


@contextmanager
def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Span]:
    """An HTTP request's span: the child of the current span when a host made one (the Functions worker does
    when OpenTelemetry is on), else of the caller's W3C `traceparent`/`tracestate`, else a new trace."""
    parent = None if trace.get_current_span().get_span_context().is_valid else _W3C.extract(_lower(headers))
    token = otel_context.attach(parent) if parent is not None else None
    try:
        with span(name, attributes, SpanKind.SERVER) as current:
            yield current
    finally:
        if token is not None:
            otel_context.detach(token)


def answered(span: Span, status_code: int) -> None:
    """The HTTP status of a request's span; a 5xx marks it failed (a 4xx is the caller's problem, not ours)."""
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status_code))


@contextmanager
def consumer_span(name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Span]:
    """A queue message's processing span: the child of the span that sent the message (its `carrier`), or a
    new trace for a message without one (sent before this version, or by hand). The host's own invocation span,
    if any, is kept as a link."""
    host = trace.get_current_span().get_span_context()
    links = [trace.Link(host)] if host.is_valid else None
    parent = _W3C.extract(dict(carrier)) if carrier else otel_context.Context()
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, links=links, record_exception=False
    ) as current:
        set_attributes(current, attributes)
        with _failure_marked(current):
            yield current


def trace_headers() -> dict[str, str]:
    """W3C headers for an outgoing request (a webhook), so its receiver can continue the trace; empty untraced."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's W3C traceparent (to store with a record whose work resumes later), None untraced."""
    return trace_headers().get("traceparent")


@contextmanager
def resumed_span(name: str, traceparent: str | None, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """Work that belongs to an earlier request's trace (a deferred start): the child of that `traceparent`,
    linked to the current span (the step that runs it now); just a child of the current span without one."""
    if not traceparent:
        with span(name, attributes) as current:
            yield current
        return
    here = trace.get_current_span().get_span_context()
    links = [trace.Link(here)] if here.is_valid else None
    parent = _W3C.extract({"traceparent": traceparent})
    with _tracer.start_as_current_span(name, context=parent, links=links, record_exception=False) as current:
        set_attributes(current, attributes)
        yield current


@contextmanager
def producer_span(destination: str) -> Iterator[dict[str, str]]:
    """Sending a queue message: a PRODUCER span; yields the W3C carrier (`traceparent`, maybe `tracestate`)
    to put in the message, so the step that processes it is this span's child."""
    with span(
        f"send {destination}",
        {"messaging.system": "azure_queue", "messaging.destination.name": destination},
        SpanKind.PRODUCER,
    ):
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        yield carrier


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}


# --- metrics --------------------------------------------------------------------------------------------------


def operation_started(action: str | None) -> None:
    _instruments.add("bridge.operations.started", 1, {"bridge.action": action or "tracked"})


def operation_finished(action: str | None, status: str, polls: int, detection_lag: float | None = None) -> None:
    attributes = {"bridge.action": action or "tracked", "bridge.operation.status": status}
    _instruments.add("bridge.operations.finished", 1, attributes)
    _instruments.record("bridge.operation.polls", polls, attributes)
    if detection_lag is not None:
        _instruments.record("bridge.operation.detection_lag", detection_lag, attributes)


def graph_answer(method: str, status_code: int | None) -> None:
    """One Graph answer (status code 0: no answer, a transport failure)."""
    _instruments.add(
        "bridge.graph.responses", 1, {"http.request.method": method, "http.response.status_code": status_code or 0}
    )


def webhook_attempt(outcome: str, status_code: int | None, kind: str = "operation") -> None:
    """One recorded attempt; `kind`: an operation's own callbackUrl or a subscription's."""
    _instruments.add(
        "bridge.webhook.attempts",
        1,
        {"bridge.webhook.outcome": outcome, "http.response.status_code": status_code or 0, "bridge.webhook.kind": kind},
    )


def webhook_dead_lettered(kind: str = "operation") -> None:
    _instruments.add("bridge.webhook.dead_lettered", 1, {"bridge.webhook.kind": kind})


def lane_wait(seconds: float) -> None:
    _instruments.record("bridge.lane.wait", max(0.0, seconds), {})


def poison_messages(queue: str, count: int) -> None:
    _instruments.set("bridge.queue.poison", count, {"messaging.destination.name": queue})


def damaged_record(read: str, prop: str) -> None:
    """A stored record could not be read (shared/operations/damaged.py); the log line names the operation."""
    _instruments.add("bridge.records.damaged", 1, {"bridge.record.read": read, "bridge.record.property": prop})
