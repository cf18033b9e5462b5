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
STARTING, ANSWERED = "starting", "answered"  # Operation.start_phase
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
    # Write-ahead of the start (operations.py): "starting" from before the Excel request until Graph's answer is
    # stored, "answered" from then until the follow-up (first poll, or webhook and fan-out) is queued; else None.
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


def from_entity(entity: dict[str, Any], etag: str | None = None) -> Operation:
    kwargs: dict[str, Any] = {"id": entity["PartitionKey"], "etag": etag}
    for name, prop in _ENTITY_NAMES.items():
        value = entity.get(prop)
        kwargs[name] = None if value == "" else value
    for name, prop in _JSON_FIELDS.items():
        raw = entity.get(prop)
        kwargs[name] = loads_stored(raw) if raw else None
    for name in ("poll_count", "generation", "webhook_attempts", "lane_attempts"):
        kwargs[name] = int(kwargs[name] or 0)
    for name in ("webhook_last_status", "webhook_claimed_attempt"):
        if kwargs[name] is not None:
            kwargs[name] = int(kwargs[name])
    kwargs["webhook_state"] = kwargs["webhook_state"] or WEBHOOK_NONE
    kwargs["fail_on_error"] = bool(kwargs["fail_on_error"])
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
