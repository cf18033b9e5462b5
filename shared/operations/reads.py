"""The HTTP side's reads: one operation (by caller or signed status URL), the list, and the reply that
carries Retry-After and the status link; an active record that lost its chain is re-armed on read."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid, not_found
from shared.crypto.status_links import ROUTE as STATUS_ROUTE
from shared.crypto.status_links import LinkRefused, link_expiry
from shared.graph.answers import innermost_code
from shared.graph.lro import status_retry_after
from shared.lanes import slots as lane_slots
from shared.operations.lifecycle import schedule_for
from shared.operations.record import (  # Reply lives with the record: shared/api/responses.py imports no use case
    ACTIVE,
    CANCELED,
    FAILED,
    STATUSES,
    TIMED_OUT,
    WAITING,
    DamagedRecord,
    Operation,
    Reply,
    is_operation_id,
    iso,
    parse_iso,
    status_url,
    to_json,
)
from shared.operations.requests import (
    LIST_TOP_DEFAULT,
    LIST_TOP_MAX,
)
from shared.operations.store import BadContinuation, Conflict, Page
from shared.operations.write_ahead import (
    resume_start,
)
from shared.runtime.worker import Runtime
from shared.storage.messages import PollState

log = logging.getLogger("shared.operations.start")  # the reads' log lines keep their category


STALL_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class StatusLink:
    """Access through a signed status URL (`se`, `sig` from its query) instead of a caller identity."""

    expires: str | None
    sig: str | None


Access = Caller | StatusLink


def status_link(rt: Runtime, op: Operation) -> str:
    """The operation's status URL for pollers: signed when STATUS_LINK_KEYS is set, else the keyed route."""
    signer = rt.settings.status_links
    if not signer.configured:
        return status_url(op)
    expires = link_expiry(parse_iso(op.created_at), rt.timing.timeout)
    return f"{op.base_url}/{STATUS_ROUTE}/{op.id}?{signer.query(op.id, expires)}"


def reply_for(rt: Runtime, op: Operation, now: float, *, created: bool = False) -> Reply:
    """Retry-After while active: the time to the poll the record's schedule plans next (the poller follows the
    same schedule_for, so nothing is written per poll to keep them agreeing)."""
    retry = (
        status_retry_after(now - parse_iso(op.created_at), rt.timing, next_poll=schedule_for(op, rt.timing).next_poll)
        if op.status in ACTIVE
        else None
    )
    return Reply(op, retry, status_link(rt, op), created)


async def get(rt: Runtime, operation_id: str, caller: Access | None = None) -> Reply:
    op = await load_for(rt, operation_id, caller)
    now = time.time()
    if op.start_phase:
        op = await resume_start(rt, op, now, retry=False)
    if op.status == WAITING:
        op = await lane_slots.with_position(rt, op)  # its place in its workbook's lane
    return reply_for(rt, await rearm_if_stalled(rt, op, now), now)


async def load_for(rt: Runtime, operation_id: str, access: Access | None) -> Operation:
    """The operation, if it exists and this access may see it; others' operations are 404, as if absent.

    A signed status URL opens its own operation whoever presents it (it is a capability, like a SAS);
    a caller sees the operations they own (or all, with the read-all role)."""
    if isinstance(access, StatusLink):
        _check_link(rt, operation_id, access)
        op = await _stored(rt, operation_id, None)
        if op is None:
            raise not_found(operation_id)
        return op
    caller = access or Caller(rt.settings.default_owner)
    op = await _stored(rt, operation_id, caller) if is_operation_id(operation_id) else None
    if op is None or not caller.may_see(op.owner or rt.settings.default_owner):  # ownerless: older records
        raise not_found(operation_id)
    return op


def damaged_problem(damaged: DamagedRecord) -> Problem:
    """The answer about a record that cannot be read (shared/operations/damaged.py reported it): a server-side
    fault, named, that no retry of the same request will fix; the rest of the caller's operations are unaffected."""
    return Problem(
        500,
        "recordDamaged",
        "The operation's stored record cannot be read",
        f"The stored record of operation {damaged.operation_id} is damaged (its {damaged.prop} property); its "
        "poll chain has stopped. An operator must repair or delete it; the caller's other operations are unaffected.",
        extra={"operationId": damaged.operation_id, "property": damaged.prop},
    )


async def _stored(rt: Runtime, operation_id: str, caller: Caller | None) -> Operation | None:
    """The record; a damaged one is this caller's problem to see only if it is theirs (else it is absent)."""
    try:
        return await rt.store.get(operation_id)
    except DamagedRecord as exc:
        if caller is None or caller.may_see(exc.owner or rt.settings.default_owner):
            raise damaged_problem(exc) from None
        return None


def _check_link(rt: Runtime, operation_id: str, link: StatusLink) -> None:
    if not is_operation_id(operation_id):
        raise not_found(operation_id)
    try:
        rt.settings.status_links.verify(operation_id, link.expires, link.sig, time.time())
    except LinkRefused as exc:
        status = 401 if not (link.expires or link.sig) else 403
        raise Problem(
            status,
            "statusLinkRefused",
            "This status URL does not open this operation",
            exc.reason,
            headers={"WWW-Authenticate": 'SignedURL realm="status"'} if status == 401 else {},
        ) from None


async def rearm_if_stalled(rt: Runtime, op: Operation, now: float) -> Operation:
    """Self-healing: an active record long past its deadline has lost its queue message; start a new chain."""
    if op.status not in ACTIVE or op.status == WAITING:  # a waiting record has no chain: its lane starts it
        return op
    grace = max(STALL_GRACE_SECONDS, 2 * rt.timing.maximum)
    if now - parse_iso(op.created_at) < rt.timing.timeout + grace or now - parse_iso(op.updated_at) < grace:
        return op  # within its life, or re-armed a moment ago
    try:
        op = await rt.store.update(
            op.with_(generation=op.generation + 1, updated_at=iso(now), chain_message=None),
            {"generation", "updated_at", "chain_message"},
        )
    except Conflict:
        return op
    log.warning("operation %s had no poll chain; re-armed as generation %s", op.id, op.generation)
    await rt.polls.send(PollState(op.id, op.generation, op.poll_count), 0)
    return op


_TOP = re.compile(r"[0-9]{1,3}")


def parse_top(top: str | None, default: int | None = LIST_TOP_DEFAULT) -> int | None:
    """`top` as 1-LIST_TOP_MAX (100) in ASCII digits, or None when it is not. `str.isdigit` is not enough: it accepts
    "²" (which int() refuses) and "٣" (which int() reads as 3)."""
    if top is None:
        return default
    if not _TOP.fullmatch(top) or not 1 <= int(top) <= LIST_TOP_MAX:
        return None
    return int(top)


async def list_page(
    rt: Runtime, status: str | None, top: str | None, token: str | None, caller: Caller | None = None
) -> Page:
    caller = caller or Caller(rt.settings.default_owner)
    errors: list[FieldError] = []
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", "must be one of " + ", ".join(STATUSES)))
    count = parse_top(top)
    if count is None:
        errors.append(FieldError("top", f"must be a whole number from 1 to {LIST_TOP_MAX}"))
    if errors or count is None:
        raise invalid(errors)
    try:
        return await rt.store.list(status, count, token, None if caller.reads_all else caller.owner)
    except BadContinuation:
        raise Problem(
            400,
            "invalidRequest",
            "The continuation token is not valid",
            errors=[FieldError("continuationToken", "use the value from a previous page's nextLink")],
        ) from None


FAILURE_STATUS = {FAILED: 422, TIMED_OUT: 422, CANCELED: 409}


def failure_problem(op: Operation) -> Problem | None:
    """With failOnError, a finished-but-unsuccessful operation is answered as a problem (so Logic Apps'
    "has failed" branches run): failed and timedOut give 422, canceled gives 409; the record rides along."""
    if not op.fail_on_error or op.status not in FAILURE_STATUS:
        return None
    error = op.error or {}
    return Problem(
        FAILURE_STATUS[op.status],
        innermost_code(error) if error else op.status,
        f"The operation {op.status}",
        str(error.get("message") or ""),
        extra={"operation": to_json(op)},
    )
