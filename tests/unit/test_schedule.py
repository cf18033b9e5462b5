"""Properties of the poll schedules (shared.schedule.plans, shared.schedule.learned) and their use by
shared.graph.lro.decide. The rules of which plan a new operation gets are tests/unit/test_learned.py's."""

from __future__ import annotations

import itertools
import math
import random
from statistics import NormalDist

import pytest

from shared.graph.answers import Answer, Kind
from shared.graph.lro import PollState, Reschedule, decide
from shared.schedule.clock import status_retry_after
from shared.schedule.history import DurationHistory
from shared.schedule.learned import LearnedPolicy, learned_plan
from shared.schedule.plans import COLD, ColdPolicy, Plan, Schedule
from shared.schedule.timing import Timing

DEFAULT = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=8)
TIMINGS = [
    DEFAULT,
    Timing(initial=0.0, maximum=1.0, timeout=120.0, max_transient_failures=8),
    Timing(initial=1.0, maximum=30.0, timeout=900.5, max_transient_failures=8),
    Timing(initial=1.0, maximum=240.0, timeout=7 * 24 * 3600.0, max_transient_failures=8),
    Timing(initial=1.0, maximum=240.0, timeout=5.0, max_transient_failures=8),
]
RUNNING = Answer(Kind.RUNNING, status_code=200)
STATE = PollState("op-1", generation=1)


def history_of(durations: list[float]) -> DurationHistory:
    history = DurationHistory()
    for i, seconds in enumerate(durations):
        history = history.add(seconds, f"op-{i}")
    return history


def random_plans(rng: random.Random, timing: Timing) -> list[Plan]:
    plans = [COLD]
    for _ in range(8):
        samples = [rng.lognormvariate(rng.uniform(0, 7), rng.uniform(0.05, 1.0)) for _ in range(rng.randint(1, 40))]
        plans.append(learned_plan(history_of(samples), timing))
    plans.append(Plan(start=1000, end=2000, relative_gap=0.12))  # starts long after the cap
    plans.append(learned_plan(None, timing, hint=rng.uniform(1, 3000)))
    return plans


def polls_until(schedule: Schedule, duration: float) -> tuple[int, float]:
    """Drive the schedule like the poller does: (polls made, elapsed at the poll that saw it finished)."""
    elapsed, polls = schedule.next_poll(0.0), 1
    while elapsed < duration and elapsed < schedule.timing.timeout:
        decision = decide(RUNNING, STATE, elapsed, schedule.timing, next_poll=schedule.next_poll)
        assert isinstance(decision, Reschedule)
        elapsed += decision.delay
        polls += 1
    return polls, elapsed


# --- gaps, cap, deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize("timing", TIMINGS)
def test_gaps_are_whole_seconds_between_one_and_the_cap_and_none_past_the_deadline(timing):
    rng = random.Random(1)
    for plan in random_plans(rng, timing):
        offsets = list(Schedule(plan, timing).offsets())
        gaps = [b - a for a, b in itertools.pairwise([0, *offsets])]
        assert all(isinstance(o, int) for o in offsets)
        assert all(1 <= g <= max(1, timing.maximum) for g in gaps), (plan, gaps)
        assert all(o <= math.ceil(timing.timeout) for o in offsets)
        assert offsets[-1] == math.ceil(timing.timeout)  # a last poll at the deadline


def test_the_240_second_cap_binds_on_long_operations():
    offsets = list(Schedule(COLD, DEFAULT).offsets())
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert max(gaps) == 240
    late = [g for o, g in zip(offsets, gaps, strict=False) if o >= 1200]
    assert late[:-1] and set(late[:-1]) == {240}  # from 1200 s on (0.2 x 1200 = 240) every gap is the cap


@pytest.mark.parametrize("timing", TIMINGS)
def test_next_offset_is_never_past_the_deadline_and_always_after_now(timing):
    rng = random.Random(2)
    for plan in random_plans(rng, timing):
        schedule = Schedule(plan, timing)
        for _ in range(300):
            elapsed = rng.uniform(0, timing.timeout * 1.2)
            offset = schedule.next_offset(elapsed)
            assert offset <= max(timing.timeout, elapsed)
            if elapsed < timing.timeout:
                assert offset > elapsed
                assert offset - elapsed <= max(1.0, timing.maximum)


@pytest.mark.parametrize("timing", TIMINGS)
def test_decide_with_a_schedule_never_waits_past_the_deadline(timing):
    rng = random.Random(3)
    for plan in random_plans(rng, timing):
        schedule = Schedule(plan, timing)
        for _ in range(200):
            elapsed = rng.uniform(0, timing.timeout - 0.01)
            decision = decide(RUNNING, STATE, elapsed, timing, next_poll=schedule.next_poll)
            assert isinstance(decision, Reschedule)
            # delays are whole seconds rounded up (clock.until_deadline), so the poll that finds the deadline passed
            # lands less than a second after it, never a schedule gap after it
            assert elapsed + decision.delay < timing.timeout + 1


# --- Retry-After -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [0.5, 7.3, 100.0, 600.0])
def test_retry_after_wins_when_graph_asks_for_longer(retry_after):
    schedule = Schedule(COLD, DEFAULT)
    for elapsed in (0.0, 3.0, 37.0, 500.0, 2000.0):
        planned = schedule.next_poll(elapsed)
        answer = Answer(Kind.RUNNING, status_code=200, retry_after=retry_after)
        decision = decide(answer, STATE, elapsed, DEFAULT, next_poll=schedule.next_poll)
        assert isinstance(decision, Reschedule)
        assert decision.delay == max(math.ceil(planned), math.ceil(retry_after))  # whole seconds, rounded up
        assert decision.delay >= retry_after  # even past the 240 s cap


def test_retry_after_is_still_bounded_by_the_deadline():
    schedule = Schedule(COLD, DEFAULT)
    answer = Answer(Kind.NOT_STARTED, status_code=200, retry_after=10_000.0)
    decision = decide(answer, STATE, 3500.0, DEFAULT, next_poll=schedule.next_poll)
    assert isinstance(decision, Reschedule) and decision.delay == 100


# --- one source of truth ----------------------------------------------------------------------------


def test_status_retry_after_is_the_time_to_the_poll_decide_plans():
    rng = random.Random(4)
    for plan in random_plans(rng, DEFAULT):
        schedule = Schedule(plan, DEFAULT)
        for _ in range(100):
            elapsed = rng.uniform(0, 3000)
            decision = decide(RUNNING, STATE, elapsed, DEFAULT, next_poll=schedule.next_poll)
            assert isinstance(decision, Reschedule)
            assert status_retry_after(elapsed, schedule.next_poll) == max(1, decision.delay)


# --- relative lag ------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative_gap", [0.1, 0.2, 0.35])
def test_cold_schedule_bounds_relative_lag_at_every_duration(relative_gap):
    schedule = Schedule(COLD, DEFAULT, ColdPolicy(relative_gap))
    rng = random.Random(5)
    durations = [math.exp(rng.uniform(math.log(0.1), math.log(3000))) for _ in range(3000)]
    for duration in [*durations, 0.01, 9.99, 10.0, 10.01, 1199.9]:
        _, seen = polls_until(schedule, duration)
        assert (seen - duration) / max(duration, 10.0) <= relative_gap + 1e-9, duration


def test_learned_window_bounds_relative_lag_with_its_own_gap_and_polls_less():
    history = history_of([random.Random(6).lognormvariate(math.log(120), 0.2) for _ in range(30)])
    plan = learned_plan(history, DEFAULT)
    assert not plan.cold and plan.relative_gap == LearnedPolicy().relative_gap
    learned, cold = Schedule(plan, DEFAULT), Schedule(COLD, DEFAULT)
    for duration in [plan.start + (plan.end - plan.start) * k / 50 for k in range(50)]:
        polls, seen = polls_until(learned, duration)
        assert (seen - duration) / max(duration, 10.0) <= plan.relative_gap + 1e-9
        assert polls < polls_until(cold, duration)[0]


def test_a_window_far_out_is_reached_through_fillers_never_more_than_the_cap_apart():
    offsets = list(itertools.takewhile(lambda o: o <= 1000, Schedule(Plan(1000, 2000, 0.12), DEFAULT).offsets()))
    assert offsets == [40, 280, 520, 760, 1000]


# --- learned plans from a sample --------------------------------------------------------------------


def test_no_history_and_no_hint_is_the_cold_plan():
    assert learned_plan(None, DEFAULT) == COLD
    assert learned_plan(DurationHistory(), DEFAULT) == COLD
    assert learned_plan(None, DEFAULT, hint=float("nan")) == COLD
    assert learned_plan(None, DEFAULT, hint=-3.0) == COLD


@pytest.mark.parametrize("seed", range(10))
def test_learned_window_spans_the_samples_quantiles(seed):
    rng = random.Random(seed)
    median, sigma = math.exp(rng.uniform(1, 6)), rng.uniform(0.1, 0.6)
    history = history_of([median * math.exp(rng.gauss(0, sigma)) for _ in range(rng.randint(3, 64))])
    policy = LearnedPolicy()
    plan = learned_plan(history, DEFAULT, policy=policy)
    low = history.quantile(policy.low_quantile)
    assert plan.start <= low and plan.end == math.ceil(DEFAULT.timeout)  # learned gaps to the deadline
    assert plan.early is None  # enough runs of its own: only fillers before the window
    # widened below the sample's quantile by at least z * s / sqrt(n), s no less than the prior's share
    n = history.size
    least_spread = math.sqrt(policy.prior_weight * policy.prior_spread**2 / (policy.prior_weight + n - 1))
    z_low = -NormalDist().inv_cdf(policy.low_quantile)
    assert plan.start <= low * math.exp(-z_low * least_spread / math.sqrt(n)) + 1e-9
    # widened by at most z * s / sqrt(n) with s at most the pooled spread: never absurdly wide
    assert plan.start >= low * math.exp(-3.0 * max(sigma * 1.5, policy.prior_spread) / math.sqrt(history.size)) - 1


def test_the_window_converges_on_the_kinds_quantiles_as_runs_accumulate():
    rng = random.Random(8)
    runs = [100.0 * math.exp(rng.gauss(0, 0.3)) for _ in range(64)]
    policy = LearnedPolicy()
    true_low = 100.0 * math.exp(0.3 * NormalDist().inv_cdf(policy.low_quantile))
    true_high = 100.0 * math.exp(0.3 * NormalDist().inv_cdf(policy.high_quantile))
    one, many = learned_plan(history_of(runs[:1]), DEFAULT), learned_plan(history_of(runs), DEFAULT)
    assert one.start < 0.6 * runs[0]  # one run: the prior's width below it
    assert 0.8 * true_low <= many.start <= 1.1 * true_low
    assert true_high < many.end  # the window does not close before the kind's slow runs


def test_a_hint_alone_centres_the_window_on_it():
    plan = learned_plan(None, DEFAULT, hint=300.0)
    assert not plan.cold and 100 < plan.start < 300 < plan.end
    assert plan.early is not None and plan.early < plan.start  # one run's worth: a guard band of cold gaps


def test_history_beats_a_hint():
    history = history_of([20.0, 21.0, 22.0, 20.5])
    assert learned_plan(history, DEFAULT, hint=3000.0) == learned_plan(history, DEFAULT)


def test_plan_encoding_round_trip_and_garbage_is_cold():
    plan = learned_plan(history_of([50.0, 60.0, 55.0]), DEFAULT)
    assert Plan.decode(plan.encode()) == plan
    assert COLD.encode() == "" and Plan.decode("") == COLD
    for text in (None, "1,2", "a,b,c", "0,10,0.1", "5,10,-1", "5,10,nan", "5,10,0.001", "5,10,2", "5,99999999999,0.1"):
        assert Plan.decode(text) == COLD
    for text in ("5,10,0.1,6", "5,10,0.1,-1", "5,10,0.1,x", "5,10,0.1,2,3"):  # early after the window, or garbage
        assert Plan.decode(text) == COLD


def test_a_plan_with_fillers_only_keeps_the_three_number_format_and_early_ones_add_a_fourth():
    assert Plan(84, 696, 0.12).encode() == "84,696,0.12"  # what records written before hold, and mean
    assert Plan.decode("84,696,0.12") == Plan(84, 696, 0.12) == Plan.decode("84,696,0.12,84")
    assert Plan(84, 3600, 0.12, 42).encode() == "84,3600,0.12,42"
    assert Plan.decode("84,3600,0.12,42") == Plan(84, 3600, 0.12, 42)
    assert Plan.decode("84,3600,0.12,0") == Plan(84, 3600, 0.12, 0)


def test_a_guard_band_leads_to_the_window_with_the_cold_gaps_and_fillers_before_it():
    offsets = list(itertools.takewhile(lambda o: o <= 700, Schedule(Plan(600, 3600, 0.12, 300), DEFAULT).offsets()))
    assert offsets[:2] == [60, 300]  # fillers, never more than the cap apart, landing on `early`
    guard = [(a, b - a) for a, b in itertools.pairwise(offsets) if 300 <= a < 600]
    assert guard and all(g == math.floor(0.2 * a) for a, g in guard)  # the cold gaps from `early` on
    inside = [(a, b - a) for a, b in itertools.pairwise(offsets) if a >= 600]
    assert inside and all(g == math.floor(0.12 * a) for a, g in inside)
    from_creation = list(itertools.islice(Schedule(Plan(600, 3600, 0.12, 0), DEFAULT).offsets(), 5))
    assert from_creation == list(itertools.islice(Schedule(COLD, DEFAULT).offsets(), 5))  # early 0: cold from 0


def test_observed_duration_lies_between_the_previous_poll_and_this_one():
    schedule = Schedule(COLD, DEFAULT)
    offsets = list(itertools.islice(schedule.offsets(), 30))
    for previous, current in itertools.pairwise(offsets):
        assert previous < schedule.observed_duration(current) < current
        assert schedule.observed_duration(current) == (previous + current) / 2
    assert schedule.observed_duration(offsets[0]) == offsets[0] / 2


def test_the_plain_function_agrees_with_the_schedule():
    from shared.schedule.plans import next_poll_offset

    plan = Plan(30, 300, 0.12)
    schedule = Schedule(plan, DEFAULT)
    for elapsed in (0.0, 29.9, 30.0, 31.5, 299.0, 1234.5, 3599.5, 4000.0):
        assert next_poll_offset(elapsed, plan, DEFAULT) == schedule.next_offset(elapsed)
    assert next_poll_offset(0.0, COLD, DEFAULT) == 2.0  # 20 % of 10 s
    assert next_poll_offset(2.0, COLD, DEFAULT) == 4.0


@pytest.mark.parametrize("plan", [COLD, Plan(3, 40, 0.12), Plan(400, 900, 0.12)], ids=["cold", "near", "far"])
@pytest.mark.parametrize("initial", [0.0, 1.0, 5.0, 7.5])
def test_no_poll_before_poll_initial_delay_seconds(plan: Plan, initial: float) -> None:
    timing = Timing(initial=initial, maximum=240.0, timeout=3600.0, max_transient_failures=8)
    offsets = list(itertools.islice(Schedule(plan, timing).offsets(), 40))
    plain = list(itertools.islice(Schedule(plan, DEFAULT).offsets(), 60))
    assert offsets[0] == max(math.ceil(initial), plain[0])  # planned polls before it merge into one at it
    assert all(b > a for a, b in itertools.pairwise(offsets))
    after = [o for o in offsets if o > math.ceil(initial)]
    assert after == [o for o in plain if o > math.ceil(initial)][: len(after)]  # after it, the plan's own polls
