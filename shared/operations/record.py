"""The operation record: its table entity form and its public JSON form."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from shared.wire.strict_json import dumps, loads_stored

# The webhook formats a record (or a subscription) can ask for: CloudEvents binary or structured mode.
BINARY, STRUCTURED = "binary", "structured"
CALLBACK_FORMATS = (BINARY, STRUCTURED)

NOT_STARTED, RUNNING = "notStarted", "running"
WAITING = "waiting"  # accepted, in its workbook's lane, not sent to Graph yet (shared/lanes/line.py)
# Operation.start_phase (shared/operations/phases.py): the intent is stored `prepared` (nothing sent yet), marked
# `starting` just before the Excel request goes out (it may have reached Graph from then on), `answered` once
# Graph's answer is stored. Records from before `prepared` existed were stored `starting`, which stays "maybe sent".
PREPARED, STARTING, ANSWERED = "prepared", "starting", "answered"
SUCCEEDED, FAILED, TIMED_OUT, CANCELED = "succeeded", "failed", "timedOut", "canceled"
ACTIVE = frozenset({NOT_STARTED, RUNNING, WAITING})
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELED})
STATUSES = (WAITING, NOT_STARTED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELED)

WEBHOOK_NONE, WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED = "none", "pending", "delivered", "failed"
WEBHOOK_STATES = (WEBHOOK_NONE, WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED)
FANOUT_PENDING = "pending"  # a terminal record whose event goes to the owner's subscriptions
ROW_KEY = "operation"
OPERATION_ID_PATTERN = r"^[0-9]{13}[0-9a-f]{10}$"  # new_operation_id: 13 digits of milliseconds, 10 hex digits
_ID_RE = re.compile(OPERATION_ID_PATTERN)
_MAX_MS = 9_999_999_999_999
# The record's timeline (`history`): status changes, webhook attempts and redeliveries, each appended in the
# write that already makes the change (no extra storage transaction). Bounded: the newest HISTORY_LIMIT events,
# texts cut to HISTORY_TEXT_CHARS, and the stored JSON at most HISTORY_MAX_CHARS (oldest events dropped first: a
# non-ASCII text is stored \u-escaped, up to 6 characters each), far under Table Storage's 32 K characters per string.
HISTORY_LIMIT = 32
HISTORY_TEXT_CHARS = 200
HISTORY_MAX_CHARS = 16_000


def new_operation_id(now: float) -> str:
    """13 digits of inverted milliseconds + 10 hex: ids sort newest first, as Table Storage lists them."""
    millis = int(now * 1000)
    return f"{_MAX_MS - millis:013d}{secrets.token_hex(5)}"


def is_operation_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Operation:
    id: str
    status: str
    action: str | None
    workbook: str
    operation_url: str | None
    created_at: str
    updated_at: str
    base_url: str
    client_reference: str | None = None
    completed_at: str | None = None
    poll_count: int = 0
    generation: int = 0
    result: Any = None
    error: dict[str, Any] | None = None
    callback_sealed: str | None = None
    event_id: str | None = None
    webhook_state: str = WEBHOOK_NONE
    webhook_attempts: int = 0
    webhook_last_status: int | None = None
    webhook_last_attempt_at: str | None = None
    webhook_last_error: str | None = None
    webhook_next_attempt_at: str | None = None
    webhook_dead_lettered_at: str | None = None
    # The attempt a delivery has claimed (with webhook_last_attempt_at as the claim's time): copies of its
    # queue message send nothing while the claim holds. Internal: not in the public record.
    webhook_claimed_attempt: int | None = None
    fail_on_error: bool = False
    owner: str | None = None
    credential_sealed: str | None = None  # delegated mode: the caller's token, sealed; erased when it ends
    callback_format: str | None = None  # BINARY | STRUCTURED; None on older records: structured
    fanout_state: str | None = None  # "pending" from the terminal write on (done: a marker entity, fanout.py)
    expires_at: str | None = None  # terminal: when the purge may delete it (stamped by the store, retention.py)
    # Write-ahead of the start (shared/operations/write_ahead.py): "prepared" from the intent's write until just
    # before the Excel request, "starting" from then until Graph's answer is stored, "answered" from then until the
    # follow-up (first poll, or webhook and fan-out) is queued; else None.
    start_phase: str | None = None
    result_blob: str | None = None  # the result is in this blob of RESULTS_CONTAINER (shared/storage/result_blobs.py)
    chain_message: str | None = None  # the queue message id that last claimed the poll chain (poller.py)
    # The poll schedule fixed at creation (shared/schedule/plans.py Plan.encode(); None or "": the cold one, as for
    # records written before plans existed). Internal: the public record shows it only as Retry-After.
    poll_plan: str | None = None
    # When the Excel request was sent, if later than creation (it waited in its workbook's lane): the poll
    # schedule counts from here (shared/schedule/clock.py schedule_for). None: at creation.
    started_at: str | None = None
    # The workbook lane (shared/lanes/admission.py): its key, the validated request kept until it is sent (or
    # {"blob": name} when too big for a property), failed deferred attempts, and (read, not stored) the place in line.
    lane: str | None = None
    lane_request: dict[str, Any] | None = None
    lane_attempts: int = 0
    # The W3C traceparent of the request that stored a `waiting` start, so its deferred start (sent from the
    # lane's advance step, a per-workbook message) continues the operation's own trace
    # (shared/observability/telemetry.py).
    trace_parent: str | None = None
    lane_position: int | None = field(default=None, compare=False)
    # The timeline (with_event): [{"at": iso, "type": "status" | "webhook" | "redeliver" | ..., ...}], oldest first.
    history: list[dict[str, Any]] | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def with_(self, **changes: Any) -> Operation:
        return replace(self, **changes)


_ENTITY_NAMES = {
    "status": "Status",
    "action": "Action",
    "workbook": "Workbook",
    "operation_url": "OperationUrl",
    "created_at": "CreatedAt",
    "updated_at": "UpdatedAt",
    "base_url": "BaseUrl",
    "client_reference": "ClientReference",
    "completed_at": "CompletedAt",
    "poll_count": "PollCount",
    "generation": "Generation",
    "callback_sealed": "CallbackSealed",
    "event_id": "EventId",
    "webhook_state": "WebhookState",
    "webhook_attempts": "WebhookAttempts",
    "webhook_last_status": "WebhookLastStatus",
    "webhook_last_attempt_at": "WebhookLastAttemptAt",
    "webhook_last_error": "WebhookLastError",
    "webhook_next_attempt_at": "WebhookNextAttemptAt",
    "webhook_dead_lettered_at": "WebhookDeadLetteredAt",
    "webhook_claimed_attempt": "WebhookClaimedAttempt",
    "fail_on_error": "FailOnError",
    "owner": "Owner",
    "credential_sealed": "CredentialSealed",
    "callback_format": "CallbackFormat",
    "fanout_state": "FanoutState",
    "expires_at": "ExpiresAt",
    "start_phase": "StartPhase",
    "result_blob": "ResultBlob",
    "chain_message": "ChainMessage",
    "poll_plan": "PollPlan",
    "started_at": "StartedAt",
    "lane": "Lane",
    "lane_attempts": "LaneAttempts",
    "trace_parent": "TraceParent",
}
_JSON_FIELDS = {
    "result": "ResultJson",
    "error": "ErrorJson",
    "lane_request": "LaneRequestJson",
    "history": "HistoryJson",
}
_NOT_STORED = ("id", "etag", "lane_position")


def to_entity(op: Operation, only: set[str] | None = None) -> dict[str, Any]:
    """Entity properties; `only` limits them to some fields (for merges). None values are omitted."""
    entity: dict[str, Any] = {"PartitionKey": op.id, "RowKey": ROW_KEY}
    for f in fields(op):
        if f.name in _NOT_STORED or (only is not None and f.name not in only):
            continue
        value = getattr(op, f.name)
        if f.name in _JSON_FIELDS:
            entity[_JSON_FIELDS[f.name]] = dumps(value, separators=(",", ":"))
        elif value is not None:
            entity[_ENTITY_NAMES[f.name]] = value
        else:
            entity[_ENTITY_NAMES[f.name]] = ""  # merge clears the property's value
    return entity


class DamagedRecord(ValueError):
    """A stored operation entity this code cannot read: one property damaged by a bug or a manual edit, a value
    another app version wrote, a property missing. `prop` names the property and `reason` says what is wrong
    (never its value, except for the enumerated ones). The store adds what it could still read: the record's
    owner and lane (for access checks and freeing its lane slot), its ETag and its raw properties (the purge)."""

    def __init__(self, operation_id: str, prop: str, reason: str) -> None:
        super().__init__(f"the stored record of operation {operation_id} is damaged: {prop} {reason}")
        self.operation_id, self.prop, self.reason = operation_id, prop, reason
        self.owner: str | None = None
        self.lane: str | None = None
        self.etag: str | None = None
        self.raw: dict[str, Any] = {}


START_PHASES = (PREPARED, STARTING, ANSWERED)
_REQUIRED = ("status", "created_at", "updated_at")
_COUNTS = ("poll_count", "generation", "webhook_attempts", "lane_attempts")
_NUMBERS = (*_COUNTS, "webhook_last_status", "webhook_claimed_attempt")
_TIMES = (
    "created_at",
    "updated_at",
    "completed_at",
    "webhook_last_attempt_at",
    "webhook_next_attempt_at",
    "webhook_dead_lettered_at",
    "expires_at",
    "started_at",
)
_CHOICES: dict[str, tuple[str, ...]] = {
    "status": STATUSES,
    "webhook_state": WEBHOOK_STATES,
    "callback_format": CALLBACK_FORMATS,
    "fanout_state": (FANOUT_PENDING,),
    "start_phase": START_PHASES,
}
_SHAPES: dict[str, tuple[type, ...]] = {"error": (dict,), "lane_request": (dict,), "history": (list,)}


def _property(name: str, value: Any) -> Any:
    """One stored property as the record holds it; ValueError saying what is wrong with it."""
    if value is None or value == "":
        if name in _REQUIRED:
            raise ValueError("is missing")
        return {"webhook_state": WEBHOOK_NONE, "fail_on_error": False}.get(name, 0 if name in _COUNTS else None)
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
            raise ValueError("is not a whole number")
        return int(value)
    if name == "fail_on_error":
        if not isinstance(value, bool):
            raise ValueError("is not a boolean")
        return value
    if not isinstance(value, str):
        raise ValueError(f"is not text ({type(value).__name__})")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"has a value this version does not know: {value[:40]!r}")
    if name in _TIMES:
        try:
            parse_iso(value)
        except ValueError:
            raise ValueError("is not a time (YYYY-MM-DDTHH:MM:SS.mmmZ)") from None
    return value


def _json_property(name: str, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"is not text ({type(raw).__name__})")
    try:
        value = loads_stored(raw)
    except ValueError:  # JsonRefused is one
        raise ValueError("is not JSON") from None
    if value is not None and name in _SHAPES and not isinstance(value, _SHAPES[name]):
        raise ValueError(f"is not a JSON {_SHAPES[name][0].__name__.replace('dict', 'object')}")
    if name == "history" and value is not None and not all(isinstance(event, dict) for event in value):
        raise ValueError("holds an event that is not a JSON object")
    return value


def from_entity(entity: dict[str, Any], etag: str | None = None) -> Operation:
    """The record an entity holds; DamagedRecord (naming the property) when it cannot be read as one."""
    operation_id = entity.get("PartitionKey")
    if not isinstance(operation_id, str) or not is_operation_id(operation_id):
        raise DamagedRecord(str(operation_id)[:40], "PartitionKey", "is not an operation id")
    kwargs: dict[str, Any] = {"id": operation_id, "etag": etag}
    for name, prop in (*_ENTITY_NAMES.items(), *_JSON_FIELDS.items()):
        try:
            if name in _JSON_FIELDS:
                kwargs[name] = _json_property(name, entity.get(prop))
            else:
                kwargs[name] = _property(name, entity.get(prop))
        except ValueError as exc:
            raise DamagedRecord(operation_id, prop, str(exc)) from None
    return Operation(**kwargs)


def with_event(op: Operation, at: str, kind: str, **details: Any) -> Operation:
    """The record with one more timeline event (written by the caller's own update: add "history" to its
    fields). None details are left out, texts are cut; only the newest HISTORY_LIMIT events are kept."""
    event: dict[str, Any] = {"at": at, "type": kind}
    for name, value in details.items():
        if value is not None:
            event[name] = value[:HISTORY_TEXT_CHARS] if isinstance(value, str) else value
    events = [*(op.history or []), event][-HISTORY_LIMIT:]
    while len(events) > 1 and len(dumps(events, separators=(",", ":"))) > HISTORY_MAX_CHARS:
        events.pop(0)
    return op.with_(history=events)


def delivery_format(op: Operation) -> str:
    """How the operation's webhook is sent: as requested; records from before the choice existed were
    promised CloudEvents structured mode, so they keep it."""
    return op.callback_format or STRUCTURED


def status_url(op: Operation) -> str:
    return f"{op.base_url}/operations/{op.id}"


def to_json(op: Operation, *, include_webhook: bool = True, link: str | None = None) -> dict[str, Any]:
    """The public record. Never contains the callback URL, tokens or Graph URLs.

    `link` replaces the status URL in `links` (a signed status URL, for the caller who may hold it)."""
    body: dict[str, Any] = {
        "id": op.id,
        "status": op.status,
        "action": op.action,
        "workbook": op.workbook,
        "clientReference": op.client_reference,
        "createdAt": op.created_at,
        "updatedAt": op.updated_at,
        "completedAt": op.completed_at,
        "expiresAt": op.expires_at,
        "pollCount": op.poll_count,
        "result": op.result,
        "error": op.error,
        "failOnError": op.fail_on_error,
        "owner": op.owner,
    }
    if include_webhook:
        body["webhook"] = {
            "state": op.webhook_state,
            "attempts": op.webhook_attempts,
            "lastStatusCode": op.webhook_last_status,
            "lastAttemptAt": op.webhook_last_attempt_at,
            "lastError": op.webhook_last_error,
            "nextAttemptAt": op.webhook_next_attempt_at,
            "deadLetteredAt": op.webhook_dead_lettered_at,
        }
        if op.callback_sealed:
            body["webhook"]["format"] = delivery_format(op)
        body["history"] = list(op.history or [])
    if op.status == WAITING:
        body["lane"] = {"position": op.lane_position}
    body["links"] = {"self": link or status_url(op), "cancel": link or status_url(op)}
    if op.callback_sealed:
        body["links"]["redeliver"] = f"{status_url(op)}/webhook/redeliver"
    return body


@dataclass(frozen=True)
class Reply:
    """An operation and how to answer about it: 202 while active, 200 once terminal. Made by the use cases
    (shared/operations/start.py), formatted by shared/api/responses.py.

    `location` is the status URL to give this caller: signed (it opens this operation's status and cancel,
    nothing else) when STATUS_LINK_KEYS is set, so pollers that re-send no credential can follow it.
    """

    operation: Operation
    retry_after: int | None
    location: str
    created: bool = False  # a webhook subscription was registered: 201, as webhook subscribers expect

    @property
    def status_code(self) -> int:
        if self.created:
            return 201
        return 202 if self.operation.status in ACTIVE else 200
