"""shared/observability/telemetry.py and the trace context in queue messages, in process: an SDK tracer provider with an
in-memory span exporter and a meter provider with an in-memory metric reader (opentelemetry-sdk's own test
doubles), bound to the module for each test and unbound after.

W3C trace context (https://www.w3.org/TR/trace-context/): `traceparent` is version-traceid-parentid-flags.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.graph.lro import Finish, PollState
from shared.observability import telemetry
from shared.operations import poll_step as poller
from shared.operations.record import Operation, iso
from shared.schedule.clock import detection_lag, schedule_for
from shared.schedule.timing import Timing
from shared.storage.messages import (
    MAX_TRACE_CHARS,
    DeliveryTask,
    decode,
    decode_delivery,
    decode_lane,
    encode,
    encode_delivery,
    encode_lane,
    trace_context,
)
from shared.storage.queues import DeliveryQueue, PollQueue
from tests.unit.fakes import fake_runtime

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OP_ID = "1234567890123abcdef0123"


@dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.bind(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield Recorded(spans, reader)
    telemetry.bind()  # back to the global (no-op) providers


# --- the message formats ---------------------------------------------------------------------------------------


def test_a_message_carries_the_trace_context_and_decodes_as_before() -> None:
    carrier = {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    text = encode(PollState(OP_ID, 3, 2, 1, "busy"), carrier)
    raw = json.loads(text)
    assert raw["tp"] == TRACEPARENT and raw["ts"] == "congo=t61rcWkgMzE"
    assert decode(text) == PollState(OP_ID, 3, 2, 1, "busy")
    assert trace_context(text) == carrier
    task = DeliveryTask(OP_ID, "event-1", 2, 1700000000.0)
    assert decode_delivery(encode_delivery(task, carrier)) == task
    assert trace_context(encode_delivery(task, carrier)) == carrier
    lane = "lane-" + "a" * 32
    assert decode_lane(encode_lane(lane, carrier)) == lane


def test_an_old_message_without_trace_context_is_still_accepted() -> None:
    """Sent by the version before this one (at-least-once, rolling deploys): exactly the old bytes."""
    old = '{"v":1,"id":"1234567890123abcdef0123","gen":0,"polls":0,"transient":0}'
    assert encode(PollState(OP_ID, 0)) == old  # no carrier: the format is unchanged
    assert decode(old) == PollState(OP_ID, 0)
    assert trace_context(old) == {}
    old_delivery = '{"v":1,"kind":"webhook","id":"1234567890123abcdef0123","event":"e","attempt":1,"since":1.0}'
    assert decode_delivery(old_delivery).attempt == 1 and trace_context(old_delivery) == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"tp": 7},
        {"tp": ""},
        {"tp": "x" * (MAX_TRACE_CHARS["traceparent"] + 1)},
        {"ts": "a=b"},  # a tracestate alone means nothing
        {"tp": TRACEPARENT, "ts": ["a=b"]},
    ],
)
def test_a_malformed_trace_context_is_ignored_never_an_error(fields: dict[str, Any]) -> None:
    text = json.dumps({"v": 1, "id": OP_ID, "gen": 0, **fields})
    assert decode(text) == PollState(OP_ID, 0)
    carrier = trace_context(text)
    assert carrier in ({}, {"traceparent": TRACEPARENT})
    assert trace_context("not json") == {} and trace_context('{"v":2}') == {}


def test_an_oversized_carrier_is_left_out_of_the_message() -> None:
    text = encode(PollState(OP_ID, 0), {"traceparent": TRACEPARENT, "tracestate": "k=" + "v" * 600})
    assert json.loads(text) == {"v": 1, "id": OP_ID, "gen": 0, "polls": 0, "transient": 0, "tp": TRACEPARENT}


# --- spans across a queue hop ----------------------------------------------------------------------------------


@dataclass
class FakeQueueClient:
    """azure.storage.queue.aio.QueueClient's send_message, recording the text (what Put Message would store)."""

    queue_name: str = "operation-polls"
    sent: list[str] = field(default_factory=list)

    async def send_message(self, content: str, **_: Any) -> None:
        self.sent.append(content)


def test_the_step_that_processes_a_message_is_the_child_of_the_span_that_sent_it(recorded: Recorded) -> None:
    client = FakeQueueClient()
    queue = PollQueue(cast(Any, client))
    with telemetry.server_span("POST /api/operations", {"TraceParent": TRACEPARENT}, {}):
        asyncio.run(queue.send(PollState(OP_ID, 0), 1))
    [text] = client.sent
    assert decode(text) == PollState(OP_ID, 0)
    with telemetry.consumer_span("process operation-polls", trace_context(text), {"bridge.operation.id": OP_ID}):
        asyncio.run(queue.send(PollState(OP_ID, 0, 1), 1))  # the next poll
    with telemetry.consumer_span("process operation-polls", trace_context(client.sent[1]), {}):
        pass
    spans = {(s.name, s.context.span_id): s for s in recorded.finished()}
    by_id = {s.context.span_id: s for s in spans.values()}
    post = next(s for s in spans.values() if s.kind is SpanKind.SERVER)
    assert post.parent is not None and post.parent.span_id == int(TRACEPARENT.split("-")[2], 16)
    assert {s.context.trace_id for s in spans.values()} == {int(TRACEPARENT.split("-")[1], 16)}
    consumers = sorted((s for s in spans.values() if s.kind is SpanKind.CONSUMER), key=lambda s: s.start_time or 0)
    assert len(consumers) == 2
    for consumer in consumers:
        assert consumer.parent is not None
        producer = by_id[consumer.parent.span_id]
        assert producer.kind is SpanKind.PRODUCER and producer.name == "send operation-polls"
    assert by_id[cast(Any, consumers[0].parent).span_id].parent.span_id == post.context.span_id  # type: ignore[union-attr]
    assert by_id[cast(Any, consumers[1].parent).span_id].parent.span_id == consumers[0].context.span_id  # type: ignore[union-attr]
    assert consumers[0].attributes is not None and consumers[0].attributes["bridge.operation.id"] == OP_ID


def test_a_message_without_trace_context_starts_a_new_trace(recorded: Recorded) -> None:
    with telemetry.span("unrelated current work"):
        with telemetry.consumer_span("process operation-polls", {}, {}):
            pass
    consumer = next(s for s in recorded.finished() if s.kind is SpanKind.CONSUMER)
    other = next(s for s in recorded.finished() if s.kind is SpanKind.INTERNAL)
    assert consumer.parent is None and consumer.context.trace_id != other.context.trace_id
    assert [link.context.span_id for link in consumer.links] == [other.context.span_id]  # the host's span, linked


def test_a_request_without_traceparent_is_a_new_trace_and_failures_mark_the_span(recorded: Recorded) -> None:
    with pytest.raises(ValueError):
        with telemetry.server_span("GET /api/health", {}, {"http.route": "/api/health", "ignored": None}):
            raise ValueError("boom")
    [span] = recorded.finished()
    assert span.parent is None and span.status.status_code.name == "ERROR"
    assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    assert "ignored" not in span.attributes


def test_a_delivery_message_is_sent_with_the_current_trace(recorded: Recorded) -> None:
    client = FakeQueueClient("webhook-deliveries")
    with telemetry.span("finish operation"):
        asyncio.run(DeliveryQueue(cast(Any, client)).send(DeliveryTask(OP_ID, "e", 1, 1.0)))
    carrier = trace_context(client.sent[0])
    producer = next(s for s in recorded.finished() if s.kind is SpanKind.PRODUCER)
    version, trace_id, parent_id, _flags = carrier["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{producer.context.trace_id:032x}",
        f"{producer.context.span_id:016x}",
    )


def test_without_a_provider_nothing_is_recorded_and_nothing_breaks() -> None:
    telemetry.bind()  # the API's defaults: no SDK installed in this process
    client = FakeQueueClient()
    with telemetry.server_span("POST /api/operations", {}, {}) as span:
        asyncio.run(PollQueue(cast(Any, client)).send(PollState(OP_ID, 0), 1))
        assert not span.is_recording()
    assert trace_context(client.sent[0]) == {}  # no context to carry: the old format
    telemetry.operation_started("createSession")
    telemetry.graph_answer("GET", 429)


# --- metrics ---------------------------------------------------------------------------------------------------


def test_the_terminal_write_records_finished_polls_and_detection_lag(recorded: Recorded) -> None:
    rt, _ = fake_runtime()
    now = time.time()
    op = asyncio.run(
        rt.store.create(
            Operation(
                id=OP_ID,
                status="running",
                action="createTableRow",
                workbook="/me/x",
                operation_url="http://127.0.0.1:1/v1.0/op",
                created_at=iso(now - 7.0),
                updated_at=iso(now - 7.0),
                base_url="http://h/api",
            )
        )
    )
    lag = detection_lag(op, rt.timing, now)
    asyncio.run(poller.finish(rt, op, Finish("succeeded", PollState(OP_ID, 0, 3)), now, None, lag))
    [finished] = recorded.points("bridge.operations.finished")
    assert finished.value == 1
    assert dict(finished.attributes) == {"bridge.action": "createTableRow", "bridge.operation.status": "succeeded"}
    [polls] = recorded.points("bridge.operation.polls")
    assert polls.count == 1 and polls.sum == 3
    [lagged] = recorded.points("bridge.operation.detection_lag")
    assert lagged.count == 1 and lagged.sum == pytest.approx(lag)
    assert any(s.name == "finish operation" for s in recorded.finished())
    # the same finish again (a redelivered message that lost the race) writes nothing and counts nothing
    asyncio.run(poller.finish(rt, op, Finish("succeeded", PollState(OP_ID, 0, 3)), now, None, lag))
    assert recorded.points("bridge.operations.finished")[0].value == 1


def test_detection_lag_is_the_rest_of_the_last_poll_bracket() -> None:
    """docs/performance.md: lag = time from the end to the poll that sees it; Graph gives no end time, so the
    end is taken in the middle between the previous planned poll and this one (schedule.observed_duration)."""
    timing = Timing(1, 30, 3600, 8)
    now = 1_000_000.0
    op = Operation(
        id=OP_ID,
        status="running",
        action="createSession",
        workbook="/me/x",
        operation_url="http://127.0.0.1:1/v1.0/op",
        created_at=iso(now - 11.0),
        updated_at=iso(now - 11.0),
        base_url="http://h/api",
    )
    previous = schedule_for(op, timing).schedule.previous_offset(11.0)
    assert 0 < previous < 11.0
    assert detection_lag(op, timing, now) == pytest.approx((11.0 - previous) / 2)
    waited = op.with_(started_at=iso(now - 5.0))  # it waited 6 s in its lane: only Excel's 5 s count
    previous = schedule_for(waited, timing).schedule.previous_offset(5.0)
    assert detection_lag(waited, timing, now) == pytest.approx((5.0 - previous) / 2)


def test_the_metric_helpers_record_under_the_listed_names(recorded: Recorded) -> None:
    telemetry.operation_started(None)
    telemetry.graph_answer("GET", 429)
    telemetry.graph_answer("POST", None)
    telemetry.webhook_attempt("retry", 503)
    telemetry.webhook_dead_lettered()
    telemetry.lane_wait(2.5)
    telemetry.poison_messages("operation-polls-poison", 4)
    assert dict(recorded.points("bridge.operations.started")[0].attributes) == {"bridge.action": "tracked"}
    answers = {
        (p.attributes["http.request.method"], p.attributes["http.response.status_code"]): p.value
        for p in recorded.points("bridge.graph.responses")
    }
    assert answers == {("GET", 429): 1, ("POST", 0): 1}  # 429s visible; 0: no answer at all
    [attempt] = recorded.points("bridge.webhook.attempts")
    assert attempt.attributes["bridge.webhook.outcome"] == "retry" and attempt.value == 1
    assert recorded.points("bridge.webhook.dead_lettered")[0].value == 1
    assert recorded.points("bridge.lane.wait")[0].sum == 2.5
    [poison] = recorded.points("bridge.queue.poison")
    assert poison.value == 4 and poison.attributes["messaging.destination.name"] == "operation-polls-poison"
    emitted = {
        metric.name
        for resource in recorded.metrics.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert emitted <= set(telemetry.METRIC_NAMES)
    assert len(set(telemetry.METRIC_NAMES)) == len(telemetry.METRIC_NAMES)
    assert all(name.startswith("bridge.") for name in telemetry.METRIC_NAMES)


def test_with_nothing_configured_telemetry_is_off() -> None:
    """No connection string, no exporter asked for, no provider preset (as in `func start` with no settings)."""
    assert telemetry._configure({}) == "off"
    assert telemetry._configure({"OTEL_TRACES_EXPORTER": "memory"}) == "off"  # devhost's, without its file


def test_a_5xx_answer_marks_the_request_span_failed_and_a_4xx_does_not(recorded: Recorded) -> None:
    for code in (400, 503):
        with telemetry.server_span("POST /api/operations", {}, {}) as span:
            telemetry.answered(span, code)
    client_error, server_error = recorded.finished()
    assert client_error.status.status_code.name == "UNSET"
    assert server_error.status.status_code.name == "ERROR"
    assert server_error.attributes is not None and server_error.attributes["http.response.status_code"] == 503
