"""Which plan a new operation gets (shared/schedule/learned.py, through shared/schedule/clock.py `plan_for`): its
own kind's runs, the caller's hint, or the cold plan that a pooled prior may shape but never make later."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from shared.schedule.clock import plan_for
from shared.schedule.history import DurationHistory
from shared.schedule.learned import LearnedPolicy, recent_runs, window
from shared.schedule.plans import COLD, Plan, Schedule
from shared.schedule.timing import Timing

DEFAULT = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=8)
POLICY = LearnedPolicy()


def history_of(durations: list[float], prefix: str = "op") -> DurationHistory:
    history = DurationHistory()
    for i, seconds in enumerate(durations):
        history = history.add(seconds, f"{prefix}-{i}", at=i)
    return history


def seen_at(plan: Plan, duration: float, timing: Timing = DEFAULT) -> int:
    """The offset of the poll that first sees an operation of this duration finished."""
    return next(o for o in Schedule(plan, timing).offsets() if o >= duration or o >= timing.timeout)


def relative_lag(plan: Plan, duration: float) -> float:
    return (seen_at(plan, duration) - duration) / max(duration, 10.0)


def pools(rng: random.Random) -> list[DurationHistory]:
    """Pools of other work: one kind (narrow), a few kinds, a wide mix, tiny ones."""
    found = [
        history_of([m * math.exp(rng.gauss(0, 0.25)) for _ in range(rng.randint(8, 64))], f"one{m:.0f}")
        for m in (math.exp(rng.uniform(0, 7)) for _ in range(10))
    ]
    for _ in range(30):
        kinds = [(math.exp(rng.uniform(0, 7)), rng.uniform(0.05, 0.7)) for _ in range(rng.randint(1, 4))]
        runs = [m * math.exp(rng.gauss(0, s)) for m, s in (rng.choice(kinds) for _ in range(rng.randint(1, 64)))]
        found.append(history_of(runs, f"pool{len(found)}"))
    return found


# --- a pooled prior: never later than the cold schedule ----------------------------------------------------


def test_a_pool_of_other_work_never_moves_a_poll_later_than_the_cold_bound() -> None:
    """Issue 21: with no run of its own, an operation planned from the owner + action pool keeps the cold
    schedule's polls up to the pool's window, its k-th poll is never later than the cold schedule's k-th, and
    whatever its duration it is seen within the cold bound (20 % of max(duration, 10 s)), whatever the pool holds."""
    rng = random.Random(21)
    cold = list(itertools.takewhile(lambda o: o <= 3600, Schedule(COLD, DEFAULT).offsets()))
    shaped = 0
    for pool in pools(rng):
        plan = plan_for(None, pool, DEFAULT)
        shaped += not plan.cold
        offsets = list(itertools.takewhile(lambda o: o <= 3600, Schedule(plan, DEFAULT).offsets()))
        assert all(mine <= theirs for mine, theirs in zip(offsets, cold, strict=False)), plan  # the k-th poll
        before = [o for o in offsets if o < plan.start]
        assert before == cold[: len(before)], plan  # the cold polls up to the window
        for duration in [0.3, 1.0, 9.0, *(math.exp(rng.uniform(-1, 8)) for _ in range(200))]:
            assert relative_lag(plan, duration) <= 0.2 + 1e-9, (plan, duration)
            if duration <= plan.start:
                assert seen_at(plan, duration) <= seen_at(COLD, duration), (plan, duration)
    assert shaped >= 10  # the narrow pools did shape their plans (denser polls, not fewer)


def test_a_narrow_pool_of_unrelated_work_adds_polls_where_it_finished_and_keeps_the_early_ones() -> None:
    """The issue's real run: the owner ran other createSession work of about 200 s; a new workbook's 1 s operation
    is still seen at the cold schedule's first poll (2 s), not at the pool's window."""
    rng = random.Random(3)
    pool = history_of([200.0 * math.exp(rng.gauss(0, 0.2)) for _ in range(64)])
    plan = plan_for(None, pool, DEFAULT)
    assert not plan.cold and plan.early == 0 and 100 < plan.start < 200 < plan.end < 3600
    assert seen_at(plan, 1.0) == 2
    assert relative_lag(plan, 190.0) <= POLICY.relative_gap  # inside the pool's window: its denser gaps
    assert relative_lag(plan, 2000.0) <= 0.2  # past it: the cold gaps again


@pytest.mark.parametrize("spread", [0.9, 1.8])
def test_a_wide_pool_is_many_kinds_and_shapes_nothing(spread: float) -> None:
    rng = random.Random(4)
    pool = history_of([30.0 * math.exp(rng.gauss(0, spread)) for _ in range(64)])
    assert plan_for(None, pool, DEFAULT) == COLD
    assert plan_for(None, history_of([30.0, 31.0, 29.0]), DEFAULT) == COLD  # too few runs to say


# --- its own kind -----------------------------------------------------------------------------------------


def test_its_own_runs_win_over_the_pool_and_the_hint() -> None:
    own = history_of([100.0, 110.0])  # fewer runs than the pool has: still its own kind's
    pool = history_of([5.0] * 40, "pool")
    plan = plan_for(own, pool, DEFAULT, hint=3000.0)
    assert plan == plan_for(own, None, DEFAULT) and 30 < plan.start < 100


def test_with_enough_runs_only_fillers_lead_to_the_window_and_its_gaps_run_to_the_deadline() -> None:
    plan = plan_for(history_of([600.0, 620.0, 580.0, 610.0]), None, DEFAULT)
    assert plan.early is None and plan.early_from == plan.start and plan.end == 3600
    offsets = list(itertools.takewhile(lambda o: o < plan.start, Schedule(plan, DEFAULT).offsets()))
    assert all(b - a == DEFAULT.maximum for a, b in itertools.pairwise(offsets))  # fillers only


def test_with_few_runs_a_guard_band_of_cold_gaps_comes_before_the_window() -> None:
    runs = [300.0 * (1 + 0.1 * i) for i in range(POLICY.trusted_runs - 1)]  # fewer than the policy trusts
    own = history_of(runs)
    plan = plan_for(own, None, DEFAULT)
    assert plan.early == math.floor(plan.start / POLICY.guard)
    # an operation ending anywhere in the guard band is seen within the cold bound
    for duration in range(plan.early + 1, plan.start):
        assert relative_lag(plan, duration) <= 0.2


def test_the_hint_counts_as_one_run_of_its_own_only_without_runs() -> None:
    hinted = plan_for(None, None, DEFAULT, hint=120.0)
    assert hinted == plan_for(history_of([120.0]), None, DEFAULT)
    assert plan_for(None, None, DEFAULT) == COLD
    for bad in (float("nan"), -3.0, 0.0, float("inf")):
        assert plan_for(None, None, DEFAULT, hint=bad) == COLD


# --- a kind that changed ---------------------------------------------------------------------------------


def test_two_runs_in_a_row_before_their_window_make_the_runs_before_them_forgotten() -> None:
    rng = random.Random(5)
    before = [100.0 * math.exp(rng.gauss(0, 0.2)) for _ in range(30)]
    start = window(before, DEFAULT, POLICY)
    assert start is not None
    one = [*before, 10.0]
    assert recent_runs(one, DEFAULT, POLICY) == one  # one early run is what the low quantile allows for
    two = [*before, 10.0, 12.0]
    assert recent_runs(two, DEFAULT, POLICY) == [10.0, 12.0]
    plan = plan_for(history_of(two), None, DEFAULT)
    assert plan.start < 10 and plan.early == 0  # planned from the two, with the cold gaps from creation


def test_a_kind_that_became_ten_times_faster_is_seen_within_the_cold_bound_from_its_third_fast_run() -> None:
    """A plan that finds it was wrong corrects the kind quickly: the runs are simulated through the schedule, the
    history learning only what the bridge observes (the middle of the last bracket)."""

    def late_runs(policy: LearnedPolicy) -> list[float]:
        rng = random.Random(6)
        history, lags = DurationHistory(), []
        for run in range(40):
            duration = (200.0 if run < 25 else 20.0) * math.exp(rng.gauss(0, 0.15))
            schedule = Schedule(plan_for(history, None, DEFAULT, policy=policy), DEFAULT)
            seen = next(o for o in schedule.offsets() if o >= duration)
            lags.append((seen - duration) / max(duration, 10.0))
            history = history.add(schedule.observed_duration(seen), f"run-{run}", at=run)
        return lags[27:]  # from the third fast run on

    assert max(late_runs(POLICY)) <= 0.2
    assert max(late_runs(LearnedPolicy(surprise_runs=10**6))) > 1.0  # without the rule: late for many runs


def test_a_damaged_or_empty_history_plans_like_none() -> None:
    assert plan_for(DurationHistory(), DurationHistory(), DEFAULT) == COLD
    assert window([], DEFAULT, POLICY) is None
    assert window([5000.0] * 5, Timing(1.0, 240.0, 100.0, 8), POLICY) is None  # no room before the deadline
