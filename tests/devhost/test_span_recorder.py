"""devhost/telemetry.py: every finished span becomes one JSON line the tests can read (a local provider here,
never the global one, so no other test sees it)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from devhost.telemetry import JsonLinesSpanExporter, configure, read_spans


def test_spans_are_written_as_json_lines_with_parents_links_and_attributes(tmp_path: Path) -> None:
    path = tmp_path / "spans" / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        with tracer.start_as_current_span(
            "inner", links=[Link(outer.get_span_context())], attributes={"ids": ("a", "b"), "n": 3}
        ):
            pass
    inner, whole = read_spans(path)  # a child ends (and is written) before its parent
    assert whole["name"] == "outer" and whole["kind"] == "SERVER" and whole["parent_span_id"] is None
    assert inner["parent_span_id"] == whole["span_id"] and inner["trace_id"] == whole["trace_id"]
    assert inner["links"] == [{"trace_id": whole["trace_id"], "span_id": whole["span_id"]}]
    assert inner["attributes"] == {"ids": ["a", "b"], "n": 3} and inner["status"] == "UNSET"
    with path.open("a") as out:
        out.write('{"name": "half a li')  # a line still being written is skipped, not an error
    assert len(read_spans(path)) == 2
    assert read_spans(tmp_path / "missing.jsonl") == []


def test_the_recorder_is_off_unless_asked_for_with_a_file() -> None:
    assert configure({}) is None
    assert configure({"OTEL_TRACES_EXPORTER": "memory"}) is None  # no DEVHOST_SPANS_FILE
    assert configure({"OTEL_TRACES_EXPORTER": "console", "DEVHOST_SPANS_FILE": "x"}) is None
