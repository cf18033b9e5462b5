"""The lane per workbook: who may send an Excel request to a workbook now, who waits, and in what order.

Pure decisions over one lane's state (shared/lanes/store.py keeps it in a table entity, ETag-guarded).
Graph's Excel guidance: one workbook should get one request at a time, the next only after the current one
answered; concurrent requests cause throttling, timeouts and merge conflicts. WORKBOOK_CONCURRENCY bounds the
holders; everyone else waits in ticket (arrival) order. A holder keeps its slot by renewing a lease; a holder
whose lease expired, or whose record is terminal or gone, is free (a crash never blocks the lane for long).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_WAITING = 500  # per lane: the line is one JSON property of the lane entity (Table Storage: 64 KiB a string)
RENEW_MARGIN_SECONDS = 60.0  # renew when less than this is left beyond the longest poll gap


@dataclass(frozen=True)
class Holder:
    operation_id: str
    ticket: int
    lease_until: float


@dataclass(frozen=True)
class Waiter:
    operation_id: str
    ticket: int


@dataclass(frozen=True)
class LaneState:
    holders: tuple[Holder, ...] = ()
    waiting: tuple[Waiter, ...] = ()  # in ticket order
    next_ticket: int = 1
    throttle_until: float = 0.0  # Graph answered 429 for this workbook: nobody calls it before this
    recheck_at: float | None = None  # a delayed advance message is planned for this time


@dataclass(frozen=True)
class Admission:
    holds: bool
    ticket: int
    position: int | None  # 1-based place in line while waiting


class LaneFull(Exception):
    """MAX_WAITING requests already wait for this workbook."""


def find_holder(state: LaneState, operation_id: str) -> Holder | None:
    return next((h for h in state.holders if h.operation_id == operation_id), None)


def position(state: LaneState, operation_id: str) -> int | None:
    """1-based place in line, None when not waiting."""
    for n, waiter in enumerate(state.waiting, start=1):
        if waiter.operation_id == operation_id:
            return n
    return None


def throttle_wait(state: LaneState, now: float) -> float:
    """Seconds until the workbook's shared throttle ends (0 when not throttled)."""
    return max(0.0, state.throttle_until - now)


def idle(state: LaneState, now: float) -> bool:
    """Nobody holds or waits and no throttle is pending: the lane entity can go (a new one starts afresh;
    ticket numbers only order one line, they need not grow forever)."""
    return not state.holders and not state.waiting and throttle_wait(state, now) == 0


def throttle(state: LaneState, until: float) -> LaneState:
    """Graph said 429 with Retry-After: keep the later end."""
    return state if until <= state.throttle_until else replace(state, throttle_until=until)


def _live(state: LaneState, now: float) -> tuple[Holder, ...]:
    return tuple(h for h in state.holders if h.lease_until > now)


def admit(
    state: LaneState, operation_id: str, now: float, concurrency: int, lease: float
) -> tuple[LaneState, Admission]:
    """A new request for the workbook: it holds a slot at once only if nobody waits (arrival order is strict),
    a slot is free and the workbook is not throttled; else it takes the next ticket. Idempotent."""
    held = find_holder(state, operation_id)
    if held is not None:
        return state, Admission(True, held.ticket, None)
    place = position(state, operation_id)
    if place is not None:
        return state, Admission(False, state.waiting[place - 1].ticket, place)
    ticket = state.next_ticket
    live = _live(state, now)
    if not state.waiting and len(live) < concurrency and throttle_wait(state, now) == 0:
        holders = (*live, Holder(operation_id, ticket, now + lease))
        return replace(state, holders=holders, next_ticket=ticket + 1), Admission(True, ticket, None)
    if len(state.waiting) >= MAX_WAITING:
        raise LaneFull(operation_id)
    waiting = (*state.waiting, Waiter(operation_id, ticket))
    return replace(state, waiting=waiting, next_ticket=ticket + 1), Admission(False, ticket, len(waiting))


def release(state: LaneState, operation_id: str) -> LaneState:
    """The operation ended (or was canceled): free its slot, or take it out of the line. Idempotent."""
    holders = tuple(h for h in state.holders if h.operation_id != operation_id)
    waiting = tuple(w for w in state.waiting if w.operation_id != operation_id)
    if len(holders) == len(state.holders) and len(waiting) == len(state.waiting):
        return state
    return replace(state, holders=holders, waiting=waiting)


def advance(
    state: LaneState, now: float, concurrency: int, lease: float, gone: frozenset[str]
) -> tuple[LaneState, tuple[str, ...]]:
    """Free the slots of holders that are gone (record terminal or missing) or whose lease expired, drop gone
    waiters, then, unless throttled, promote waiters in ticket order into the free slots.
    Returns the new state and the promoted operation ids (each must now be started)."""
    holders = [h for h in state.holders if h.operation_id not in gone and h.lease_until > now]
    waiting = [w for w in state.waiting if w.operation_id not in gone]
    promoted: list[str] = []
    if throttle_wait(state, now) == 0:
        while waiting and len(holders) < concurrency:
            nxt = waiting.pop(0)
            holders.append(Holder(nxt.operation_id, nxt.ticket, now + lease))
            promoted.append(nxt.operation_id)
    return replace(state, holders=tuple(holders), waiting=tuple(waiting)), tuple(promoted)


def renew_due(holder: Holder, now: float, lease: float, max_poll_gap: float) -> bool:
    """Renew when less than half the lease is left, or less than the longest poll gap plus a margin (so the
    lease cannot run out between two polls of a live holder): about one write every lease/2 per holder."""
    return holder.lease_until - now < max(lease / 2, max_poll_gap + RENEW_MARGIN_SECONDS)


def renew(state: LaneState, operation_id: str, now: float, lease: float) -> LaneState:
    holders = tuple(replace(h, lease_until=now + lease) if h.operation_id == operation_id else h for h in state.holders)
    return replace(state, holders=holders)


def wanted_recheck(state: LaneState, now: float, concurrency: int) -> float | None:
    """When someone waits, when to look again: the throttle's end, or the earliest lease expiry (a dead
    holder is noticed then); at once if a slot is free. None when nobody waits."""
    if not state.waiting:
        return None
    wait = throttle_wait(state, now)
    if wait > 0:
        return now + wait
    if len(_live(state, now)) < concurrency:
        return now
    return min(h.lease_until for h in state.holders)


def plan_recheck(state: LaneState, now: float, concurrency: int) -> tuple[LaneState, int | None]:
    """Whether to queue a delayed advance message (its delay in whole seconds, rounded up), and the state that
    remembers it. A planned recheck still ahead and no later than the one wanted covers it (its message re-plans
    when it runs); an overdue one (its message ran or was lost) does not. Send the message before writing the
    state, so a remembered recheck always has a message behind it."""
    wanted = wanted_recheck(state, now, concurrency)
    if wanted is None:
        return state, None
    if state.recheck_at is not None and now < state.recheck_at <= wanted:
        return state, None
    return replace(state, recheck_at=wanted), max(0, math.ceil(wanted - now))
