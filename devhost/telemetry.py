"""devhost's span recorder: OTEL_TRACES_EXPORTER=memory with DEVHOST_SPANS_FILE=<path> keeps every finished
span in memory long enough to append it to that file as one JSON object per line, so tests (and people) can
read one operation's trace without Azure. It installs the global tracer provider before the app is imported,
so the app's own setup (shared/telemetry.configure) finds it and leaves it alone: function_app.py is the
same under devhost, `func start` and Azure.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

SPANS_FILE_SETTING = "DEVHOST_SPANS_FILE"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as plain JSON: ids in W3C hex, the parent, links, attributes and status."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "parent_trace_id": f"{parent.trace_id:032x}" if parent else None,
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        "events": [{"name": event.name, "attributes": dict(event.attributes or {})} for event in span.events],
        "status": span.status.status_code.name,
        "start": span.start_time,
        "end": span.end_time,
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span), default=str) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS


def configure(environ: Mapping[str, str]) -> Path | None:
    """Install the recorder when asked to (OTEL_TRACES_EXPORTER=memory and DEVHOST_SPANS_FILE); its path."""
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() != "memory" or not environ.get(SPANS_FILE_SETTING):
        return None
    path = Path(environ[SPANS_FILE_SETTING])
    provider = TracerProvider(resource=Resource.create({"service.name": "excel-async-bridge"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)
    return path


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span recorded so far (a line being written is skipped until it is whole)."""
    if not path.exists():
        return []
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            spans.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return spans
