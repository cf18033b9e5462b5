"""The lane's pure decisions (shared/lanes/line.py): admission, order, leases, release, throttle, rechecks."""

from __future__ import annotations

import pytest

from shared.lanes import line as lanes
from shared.lanes.line import Holder, LaneState, Waiter, admit, advance, plan_recheck, position, release

LEASE = 60.0


def _admit_all(state: LaneState, ids: list[str], now: float, concurrency: int) -> tuple[LaneState, list[bool]]:
    held = []
    for op in ids:
        state, admission = admit(state, op, now, concurrency, LEASE)
        held.append(admission.holds)
    return state, held


def test_concurrency_one_holds_the_first_and_lines_up_the_rest_in_arrival_order() -> None:
    state, held = _admit_all(LaneState(), ["a", "b", "c"], 0.0, 1)
    assert held == [True, False, False]
    assert [h.operation_id for h in state.holders] == ["a"]
    assert [w.operation_id for w in state.waiting] == ["b", "c"]
    assert [position(state, op) for op in ("a", "b", "c")] == [None, 1, 2]
    assert state.next_ticket == 4


def test_concurrency_n_holds_n() -> None:
    state, held = _admit_all(LaneState(), ["a", "b", "c", "d"], 0.0, 3)
    assert held == [True, True, True, False]
    assert position(state, "d") == 1


def test_admission_is_idempotent() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    again, admission = admit(state, "b", 5.0, 1, LEASE)
    assert again == state and not admission.holds and admission.position == 1
    again, admission = admit(state, "a", 5.0, 1, LEASE)
    assert again == state and admission.holds


def test_a_newcomer_never_overtakes_the_line_even_when_a_slot_is_free() -> None:
    state = LaneState(holders=(), waiting=(Waiter("b", 2),), next_ticket=3)
    state, admission = admit(state, "c", 0.0, 1, LEASE)
    assert not admission.holds and admission.position == 2


def test_a_throttled_workbook_admits_nobody_at_once() -> None:
    _state, admission = admit(LaneState(throttle_until=10.0), "a", 5.0, 1, LEASE)
    assert not admission.holds and admission.position == 1


def test_release_frees_the_slot_and_is_idempotent() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    once = release(state, "a")
    assert once.holders == () and [w.operation_id for w in once.waiting] == ["b"]
    assert release(once, "a") == once  # twice: nothing more changes
    assert release(once, "b").waiting == ()  # a waiter leaves the line (its cancel)


def test_advance_promotes_in_ticket_order_into_freed_slots() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b", "c", "d"], 0.0, 2)
    state, promoted = advance(release(state, "a"), 1.0, 2, LEASE, frozenset())
    assert promoted == ("c",)
    assert [h.operation_id for h in state.holders] == ["b", "c"]
    assert state.holders[1].lease_until == 1.0 + LEASE


def test_an_expired_lease_frees_the_slot_but_not_before() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    before, promoted = advance(state, LEASE - 0.001, 1, LEASE, frozenset())
    assert promoted == () and before == state
    after, promoted = advance(state, LEASE, 1, LEASE, frozenset())
    assert promoted == ("b",) and [h.operation_id for h in after.holders] == ["b"]


def test_a_gone_holder_is_freed_and_a_canceled_waiter_is_skipped() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b", "c"], 0.0, 1)
    state, promoted = advance(state, 1.0, 1, LEASE, frozenset({"a", "b"}))  # a finished, b canceled
    assert promoted == ("c",) and state.waiting == ()


def test_advance_promotes_nothing_while_throttled() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    state = lanes.throttle(release(state, "a"), 30.0)
    _held, promoted = advance(state, 10.0, 1, LEASE, frozenset())
    assert promoted == ()
    _, promoted = advance(state, 30.0, 1, LEASE, frozenset())
    assert promoted == ("b",)


def test_throttle_keeps_the_later_end() -> None:
    state = lanes.throttle(LaneState(), 30.0)
    assert lanes.throttle(state, 20.0).throttle_until == 30.0
    assert lanes.throttle(state, 40.0).throttle_until == 40.0
    assert lanes.throttle_wait(state, 25.0) == 5.0 and lanes.throttle_wait(state, 31.0) == 0.0


def test_renew_is_due_at_half_the_lease_or_within_the_longest_poll_gap() -> None:
    holder = Holder("a", 1, lease_until=600.0)
    assert not lanes.renew_due(holder, 200.0, 600.0, 240.0)  # 400 s left > max(300, 300)
    assert lanes.renew_due(holder, 301.0, 600.0, 240.0)
    short = Holder("a", 1, lease_until=6.0)
    assert lanes.renew_due(short, 0.0, 6.0, 1.0)  # a lease shorter than a poll gap plus margin: every poll
    renewed = lanes.renew(LaneState(holders=(holder,)), "a", 301.0, 600.0)
    assert renewed.holders[0].lease_until == 901.0


def test_recheck_is_planned_at_the_earliest_lease_expiry_and_not_twice() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    planned, delay = plan_recheck(state, 0.5, 1)
    assert delay == 60 and planned.recheck_at == LEASE
    again, delay = plan_recheck(planned, 10.0, 1)
    assert delay is None and again == planned  # a pending recheck covers it
    _overdue, delay = plan_recheck(planned, 61.0, 1)
    assert delay == 0  # its message ran (or was lost): plan another one
    assert plan_recheck(release(release(state, "a"), "b"), 0.0, 1) == (release(release(state, "a"), "b"), None)


def test_recheck_waits_for_the_throttle() -> None:
    state, _ = _admit_all(LaneState(), ["a", "b"], 0.0, 1)
    planned, delay = plan_recheck(lanes.throttle(release(state, "a"), 12.5), 2.0, 1)
    assert delay == 11 and planned.recheck_at == 12.5


def test_the_line_is_bounded() -> None:
    state = LaneState(
        holders=(Holder("h", 1, 100.0),), waiting=tuple(Waiter(f"w{n}", n + 2) for n in range(lanes.MAX_WAITING))
    )
    with pytest.raises(lanes.LaneFull):
        admit(state, "late", 0.0, 1, LEASE)
