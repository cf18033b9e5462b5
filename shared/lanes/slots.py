"""The lane per workbook as seen by every step that is not the start: free a slot or a place in line when an
operation ends, show a waiter its place, and share Graph's throttling of a workbook between its chains (renewing a
holder's lease on the way). The poll step uses only this module (it must not depend on the HTTP side, which the
start in shared/lanes/admission.py needs). Decisions are in shared/lanes/line.py, the entity in shared/lanes/store.py.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.lanes.line import (
    LaneState,
    admit,
    find_holder,
    plan_recheck,
    position,
    release,
    renew,
    renew_due,
    throttle,
    throttle_wait,
)
from shared.lanes.store import LaneContention, lane_key
from shared.operations.record import WAITING, Operation, parse_iso
from shared.runtime.worker import Runtime

log = logging.getLogger(__name__)

DEFAULT_THROTTLE_SECONDS = 5.0  # a 429 without Retry-After
READMIT_GRACE_SECONDS = 10.0  # a `waiting` record found in no line this long after its write is admitted again


def enabled(rt: Runtime) -> bool:
    return getattr(rt, "lanes", None) is not None and rt.settings.workbook_concurrency > 0


def lanes_of(rt: Runtime) -> Any:
    if rt.lanes is None:  # not `assert`: -O
        raise RuntimeError("lanes are off (WORKBOOK_CONCURRENCY=0)")
    return rt.lanes


def lane_of(op: Operation) -> str | None:
    """The operation's lane: the one it was admitted to, else its workbook's (tracked operations: throttle only)."""
    if op.lane:
        return op.lane
    return lane_key(op.workbook, op.owner) if op.workbook else None


async def send_recheck(rt: Runtime, lane: str, delay: int | None) -> None:
    if delay is not None:
        await rt.polls.send_lane(lane, delay)


# --- release, position, throttle -------------------------------------------------------------------------------


async def release_slot(rt: Runtime, lane: str, operation_id: str) -> None:
    def decide(state: LaneState) -> tuple[LaneState, None]:
        return release(state, operation_id), None

    async def prepare(new: LaneState, _: None) -> None:
        if new.waiting:  # queued before the write: a crash after it cannot leave the line without an advance
            await rt.polls.send_lane(lane, 0)

    await lanes_of(rt).change(lane, decide, prepare)


async def on_terminal(rt: Runtime, op: Operation) -> None:
    """A lane member reached a terminal state (or its intent was removed): free its slot or its place, and let
    the next one in. Never raises: if this fails, the advance step finds the record terminal (or the lease runs
    out) and frees the slot then."""
    if not enabled(rt) or not op.lane:
        return
    try:
        await release_slot(rt, op.lane, op.id)
    except Exception:
        log.warning(
            "could not release operation %s from its lane; the lease or the next advance frees it", op.id, exc_info=True
        )


async def free_damaged(rt: Runtime, lane: str | None, operation_id: str) -> None:
    """A member whose record cannot be read any more (shared/operations/damaged.py) gives up its slot or its place,
    so its workbook's next request goes ahead. Never raises: the lease or the next advance frees it otherwise."""
    if not enabled(rt) or not lane:
        return
    try:
        await release_slot(rt, lane, operation_id)
        log.warning("operation %s: its record is damaged; its place in lane %s was freed", operation_id, lane)
    except Exception:
        log.warning("could not free the lane slot of damaged operation %s", operation_id, exc_info=True)


async def with_position(rt: Runtime, op: Operation) -> Operation:
    """A waiting record with its place in line (0: it holds the slot and is being started). A waiting record
    in no line (a crash between its write and its admission) is admitted again."""
    if not enabled(rt) or op.status != WAITING or not op.lane:
        return op
    lane = op.lane
    state, _ = await lanes_of(rt).read(lane)
    now = time.time()
    if find_holder(state, op.id) is not None:
        if now - parse_iso(op.updated_at) >= READMIT_GRACE_SECONDS:  # holds its slot but was never started
            await rt.polls.send_lane(lane, 0)
        return op.with_(lane_position=0)
    place = position(state, op.id)
    if place is None and now - parse_iso(op.updated_at) >= READMIT_GRACE_SECONDS:
        concurrency, lease = rt.settings.workbook_concurrency, rt.settings.lane_lease_seconds

        def decide(s: LaneState) -> tuple[LaneState, int | None]:
            s, admission = admit(s, op.id, now, concurrency, lease)
            return s, admission.position

        async def prepare(_: LaneState, __: int | None) -> None:
            await rt.polls.send_lane(lane, 0)

        _, place = await lanes_of(rt).change(lane, decide, prepare)
        log.warning("operation %s was waiting in no line; admitted again", op.id)
    return op.with_(lane_position=place if place is not None else 0)


async def throttled_for(rt: Runtime, op: Operation, now: float) -> float:
    """Before a poll's Graph GET: seconds the workbook is still throttled (0: go ahead). Renews the holder's
    lease when less than half of it is left (one write per LANE_LEASE_SECONDS/2, not per poll)."""
    lane = lane_of(op) if enabled(rt) else None
    if lane is None:
        return 0.0
    state, _ = await lanes_of(rt).read(lane)
    holder = find_holder(state, op.id)
    lease = rt.settings.lane_lease_seconds
    if holder is not None and renew_due(holder, now, lease, rt.timing.maximum):
        try:
            await lanes_of(rt).change(
                lane, lambda s: (renew(s, op.id, now, lease) if find_holder(s, op.id) else s, None)
            )
        except LaneContention:
            log.warning("could not renew the lane lease of %s this time", op.id)
    return throttle_wait(state, now)


async def note_throttle(rt: Runtime, op: Operation, retry_after: float | None, now: float) -> None:
    """Graph answered 429 for this operation's workbook: every chain and the lane wait it out. Never raises."""
    lane = lane_of(op) if enabled(rt) else None
    if lane is None:
        return
    until = now + (retry_after if retry_after else DEFAULT_THROTTLE_SECONDS)
    concurrency = rt.settings.workbook_concurrency

    def decide(state: LaneState) -> tuple[LaneState, int | None]:
        return plan_recheck(throttle(state, until), now, concurrency)

    async def prepare(_: LaneState, delay: int | None) -> None:
        await send_recheck(rt, lane, delay)

    try:
        await lanes_of(rt).change(lane, decide, prepare)
        log.info("workbook of %s throttled by Graph for %.1f s; its lane and siblings wait", op.id, until - now)
    except Exception:
        log.warning("could not record Graph's throttle for %s", op.id, exc_info=True)
