"""The terminal event of an operation, as every webhook sender renders it."""

from __future__ import annotations

from shared.delivery.formats import EventMessage, render_event
from shared.operations.record import Operation, delivery_format, to_json


def event_message(op: Operation, callback_format: str | None = None, event_id: str | None = None) -> EventMessage:
    """The terminal event in the record's (or the given) format; the same headers and bytes on every attempt
    (the record's data without delivery state, which is all that changes once an operation is terminal)."""
    return render_event(
        callback_format or delivery_format(op),
        event_id=event_id or op.event_id or op.id,
        status=op.status,
        time=op.completed_at or op.updated_at,
        subject=op.id,
        data=to_json(op, include_webhook=False),
    )
