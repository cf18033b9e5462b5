"""The poll message's content: what rides in the queue from poll to poll, and the trace context every message
carries. Pure: no I/O, no imports.

The decisions (shared/polling.py) read and return it; the queue adapter (shared/queue.py) encodes and decodes
it, so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # a Storage queue message becomes visible at most 7 days after it is sent
MAX_REASON_LENGTH = 200  # the last transient reason rides in every poll message: keep it small


@dataclass(frozen=True)
class PollState:
    """What the queue message carries from poll to poll (so uneventful polls write no table entity)."""

    operation_id: str
    generation: int
    polls: int = 0
    transient_failures: int = 0
    last_transient: str = ""  # why the latest transient answer failed (while transient_failures > 0)


# The W3C trace context of the step that sent a message rides in it under these short fields, so the step that
# processes it continues the operation's trace (shared/telemetry.py). Optional: messages sent before they
# existed, or by hand, have none and are processed as before; unknown fields were always ignored, so an older
# worker reading a newer message during a rolling deploy is fine too.
TRACE_FIELDS = {"traceparent": "tp", "tracestate": "ts"}
MAX_TRACE_CHARS = {"traceparent": 55, "tracestate": 512}  # W3C: traceparent is 55 chars; tracestate <= 512


def trace_fields(carrier: dict[str, str]) -> dict[str, str]:
    """The message fields for a W3C carrier (`traceparent`, `tracestate`); oversized values are left out."""
    return {
        field: carrier[name]
        for name, field in TRACE_FIELDS.items()
        if isinstance(carrier.get(name), str) and 0 < len(carrier[name]) <= MAX_TRACE_CHARS[name]
    }


def trace_carrier(raw: dict[str, object]) -> dict[str, str]:
    """The W3C carrier a decoded message holds; empty when it has none (or a malformed one: never an error)."""
    carrier: dict[str, str] = {}
    for name, field in TRACE_FIELDS.items():
        value = raw.get(field)
        if isinstance(value, str) and 0 < len(value) <= MAX_TRACE_CHARS[name]:
            carrier[name] = value
    return carrier if "traceparent" in carrier else {}
