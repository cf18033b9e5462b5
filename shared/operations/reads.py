"""The HTTP side's reads: one operation (by caller or signed status URL), the list, and the reply that
carries Retry-After and the status link; an active record that lost its chain is re-armed on read."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.api.identity import Caller
from shared.api.problems import FieldError, Problem, invalid, not_found
from shared.crypto.page_tokens import TokenRefused, page_tokens, scope
from shared.crypto.status_links import EXPIRY_PARAM, SIGNATURE_PARAM, LinkRefused, link_expiry, link_params
from shared.crypto.status_links import ROUTE as STATUS_ROUTE
from shared.graph.answers import innermost_code
from shared.lanes import slots as lane_slots
from shared.operations.outcome import resume_start
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
    to_json,
)
from shared.operations.requests import (
    LIST_TOP_DEFAULT,
    LIST_TOP_MAX,
)
from shared.operations.store import Conflict
from shared.runtime.worker import Runtime
from shared.schedule.clock import retry_after_for, stalled
from shared.storage.messages import PollState

log = logging.getLogger("shared.operations.start")  # the reads' log lines keep their category


@dataclass(frozen=True)
class StatusLink:
    """Access through a signed status URL (`se`, `sig` from its query) instead of a caller identity."""

    expires: str | None
    sig: str | None
    refused: str | None = None  # why the query itself is refused (se or sig given twice)

    @classmethod
    def from_query(cls, query: str, params: Mapping[str, str]) -> StatusLink:
        """From the URL's raw query (every value, so a repeated `se` or `sig` is seen); `params` (the host's parsed
        query) only when the URL the host passed carries no query."""
        try:
            expires, sig = link_params(query)
        except LinkRefused as exc:
            return cls(None, None, exc.reason)
        if expires is None and sig is None:
            return cls(params.get(EXPIRY_PARAM), params.get(SIGNATURE_PARAM))
        return cls(expires, sig)


Access = Caller | StatusLink


def status_link(rt: Runtime, op: Operation) -> str:
    """The operation's status URL for pollers, always signed: the runtime always has a key (STATUS_LINK_KEYS, or
    the one kept in the storage account: shared/runtime/link_key.py)."""
    signer = rt.settings.status_links
    expires = link_expiry(parse_iso(op.created_at), rt.timing.timeout)
    return f"{op.base_url}/{STATUS_ROUTE}/{op.id}?{signer.query(op.id, expires)}"


def reply_for(rt: Runtime, op: Operation, now: float, *, created: bool = False) -> Reply:
    """Retry-After while active: the time to the poll the record's schedule plans next (the poller follows the
    same schedule_for, so nothing is written per poll to keep them agreeing)."""
    retry = retry_after_for(op, rt.timing, now) if op.status in ACTIVE else None
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
        if link.refused:
            raise LinkRefused(link.refused)
        rt.settings.status_links.verify(operation_id, link.expires, link.sig, time.time())
    except LinkRefused as exc:
        status = 401 if not (link.expires or link.sig or link.refused) else 403
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
    if not stalled(op, rt.timing, now):
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


@dataclass(frozen=True)
class Listed:
    """A page of the list as the caller sees it: the records and the signed token of the next page."""

    operations: list[Operation]
    continuation: str | None
    damaged: list[DamagedRecord] = field(default_factory=list)  # records of the page that cannot be read


async def list_page(
    rt: Runtime, status: str | None, top: str | None, token: str | None, caller: Caller | None = None
) -> Listed:
    """One page, newest first: the caller's own operations (their index), or everyone's with the read-all role.
    The continuation token is signed and bound to this caller and this filter (shared/crypto/page_tokens.py)."""
    caller = caller or Caller(rt.settings.default_owner)
    errors: list[FieldError] = []
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", "must be one of " + ", ".join(STATUSES)))
    count = parse_top(top)
    if count is None:
        errors.append(FieldError("top", f"must be a whole number from 1 to {LIST_TOP_MAX}"))
    if errors or count is None:
        raise invalid(errors)
    tokens = page_tokens(rt.settings.status_links.keys)
    list_scope = scope(reads_all=caller.reads_all, owner=caller.owner, status=status)
    try:
        position = tokens.open(token, list_scope) if token else None
    except TokenRefused:
        raise Problem(
            400,
            "invalidRequest",
            "The continuation token is not valid",
            "Only the continuationToken of this list's own nextLink continues it (same caller, same status filter).",
            errors=[FieldError("continuationToken", "use the value from a previous page's nextLink")],
        ) from None
    page = await rt.store.list(status, count, position, None if caller.reads_all else caller.owner)
    continuation = tokens.issue(page.continuation, list_scope) if page.continuation else None
    return Listed(page.operations, continuation, page.damaged)


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
