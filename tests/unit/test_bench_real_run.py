"""The real-run bench's pure parts: the parameterised simulation, dispatch latency, figures and the verdict."""

from __future__ import annotations

import math

import pytest

from bench import real_run_sim as rr
from bench import schedule as sim
from shared.schedule.plans import COLD, Plan, Schedule


@pytest.mark.parametrize("duration", [0.5, 1.0, 5.0, 37.0, 250.0, 3000.0])
def test_simulation_without_latency_is_bench_schedules_for_doubling_and_cold(duration):
    doubling = rr.simulate_op(duration, rr.doubling(rr.PRODUCTION), rr.PRODUCTION)
    job = sim.Job(0, duration)
    expected = sim.run_job(job, sim.Doubling().schedule(job))
    assert (doubling.polls, doubling.lag) == (expected.polls, expected.lag)
    cold = rr.simulate_op(duration, rr.from_plan(COLD, sim.TIMING), sim.TIMING)
    expected = sim.run_job(job, sim.Cold().schedule(job))
    assert (cold.polls, cold.lag) == (expected.polls, expected.lag)


def test_latency_delays_every_poll_and_the_schedule_reacts_to_the_late_elapsed():
    # doubling offsets 1, 2, 4, 8; each poll 0.5 s late: 1.5, then +1 (to 2, rounded up) + 0.5 = 3.0,
    # then +1 + 0.5 = 4.5 (still running at 4.5 < 5), then +4 (8 - 4.5 = 3.5, rounded up) + 0.5 = 9.0
    assert rr.simulate_op(5.0, rr.doubling(rr.PRODUCTION), rr.PRODUCTION, latency=rr.constant(0.5)) == rr.Sim(4, 4.0)
    assert rr.simulate_op(5.0, rr.doubling(rr.PRODUCTION), rr.PRODUCTION) == rr.Sim(4, 3.0)


def test_an_operation_past_the_deadline_is_not_seen_done():
    timing = rr.scaled_timing(0.01)  # timeout 36 s
    assert rr.simulate_op(100.0, rr.doubling(timing), timing).lag is None


def test_scaled_timing_scales_all_three_settings_with_a_one_second_floor_on_the_cap():
    t = rr.scaled_timing(0.1)
    assert (t.initial, t.maximum, t.timeout) == pytest.approx((0.1, 24.0, 360.0))
    assert rr.scaled_timing(0.001).maximum == 1.0


def test_dispatch_latency_is_each_poll_minus_its_planned_visibility():
    created, graph_created = 100.0, 100.05
    planned = rr.doubling(rr.PRODUCTION)  # first poll 1 s after the start
    # 101.35: 0.3 late; elapsed 1.35 -> next offset 2 -> delay 1 (whole seconds) -> due 102.35, polled 102.55;
    # elapsed 2.55 -> next offset 4 -> delay 2 -> due 104.55, polled 104.65 (terminal: the last one)
    times = [101.35, 102.55, 104.65]
    got = rr.dispatch_latencies(
        times, ["running", "running", "succeeded"], created, graph_created, planned, rr.PRODUCTION
    )
    assert got == pytest.approx([0.3, 0.2, 0.1])
    assert rr.dispatch_latencies([], [], created, graph_created, planned, rr.PRODUCTION) == []


def test_dispatch_latency_follows_a_stored_plan():
    timing = rr.scaled_timing(0.1)
    planned = rr.from_plan(Plan(5, 20, 0.12), timing)
    offsets = list(Schedule(Plan(5, 20, 0.12), timing).offsets())[:4]
    times = [10.0 + o for o in offsets]  # on time, Graph created with the record
    assert rr.dispatch_latencies(times, ["running"] * 4, 10.0, 10.0, planned, timing) == pytest.approx([0.0] * 4)


def test_summarise_counts_polls_over_all_and_lags_over_the_seen_ones():
    figures = rr.summarise([2, 4, 6], [1.0, 3.0, None], [5.0, 30.0, 50.0], floor=10.0)
    assert figures["polls_per_op"] == 4.0
    assert figures["lag_p50"] == 2.0  # median of 1 and 3
    assert figures["lag_p95"] == pytest.approx(1.0 + 0.95 * 2.0)
    assert figures["rel_lag_p95"] == pytest.approx(0.1)  # 1 / max(5, 10) and 3 / 30
    assert figures["unseen"] == 1
    with pytest.raises(ValueError):
        rr.summarise([1], [None], [1.0], floor=1.0)


def test_relative_difference_and_agreement():
    assert rr.relative_difference(115, 100) == pytest.approx(0.15)
    assert rr.relative_difference(85, 100) == pytest.approx(0.15)
    assert rr.relative_difference(0, 0) == 0.0 and math.isinf(rr.relative_difference(1, 0))
    real = {"polls_per_op": 5.0, "lag_p50": 1.1, "lag_p95": 10.0}
    ok = rr.agreement(real, {"polls_per_op": 4.5, "lag_p50": 1.0, "lag_p95": 11.0})
    assert ok["pass"] and ok["metrics"]["polls_per_op"]["relative_difference"] == pytest.approx(0.1111, abs=1e-4)
    bad = rr.agreement(real, {"polls_per_op": 5.0, "lag_p50": 0.9, "lag_p95": 10.0})
    assert not bad["pass"] and not bad["metrics"]["lag_p50"]["within"] and bad["metrics"]["lag_p95"]["within"]


def test_compare_simulates_each_operation_from_the_bridges_creation():
    timing = rr.PRODUCTION
    observed = [rr.Observed(duration=4.9, polls=4, lag=3.0, start_offset=0.1)]  # 5 s from the bridge's creation
    out = rr.compare(observed, [rr.doubling(timing)], timing, latencies=[], floor=10.0)
    assert out["simulated"]["raw"]["polls_per_op"] == 4 and out["simulated"]["raw"]["lag_p50"] == pytest.approx(3.0)
    assert out["agreement"]["raw"]["pass"] and out["verdict_uses"] == "with_latency"


def test_policy_detection_and_the_stored_plan():
    assert rr.detect_policy("from .polling import decide, next_regular_poll\n") == "doubling"
    assert rr.detect_policy("from .schedule import Plan, Schedule\n") == "plan"
    assert rr.detect_policy("decision = decide(answer, state, elapsed, rt.timing, next_poll=plan.next_poll)") == "plan"
    assert rr.detect_policy("async def reschedule(rt, op, decision):") == "doubling"
    assert rr.plan_of({"PollPlan": "5,20,0.12"}) == Plan(5, 20, 0.12)
    assert rr.plan_of({"poll_plan": "5,20,0.12"}) == Plan(5, 20, 0.12)
    assert rr.plan_of({"status": "running"}) == COLD


def test_resampled_latency_draws_only_measured_values():
    import random

    draw = rr.resampled([0.1, 0.7], random.Random(1))
    seen = {draw() for _ in range(50)}
    assert seen == {0.1, 0.7}
    assert rr.resampled([], random.Random(1))() == 0.0


def test_analyse_a_collected_run_on_time_agrees_with_its_simulation():
    # production timing (scale 1): doubling polls at 1, 2, 4, 8 s after creation, each on time
    op = {
        "status": "succeeded",
        "createdAt": 100.0,
        "graphCreatedAt": 100.0,
        "durationSeconds": 4.9,
        "completedAt": 104.9,
        "firstTerminalPollAt": 108.0,
        "plan": None,
        "polls": [[101.0, "running"], [102.0, "running"], [104.0, "running"], [108.0, "succeeded"]],
    }
    raw = {"policy": "doubling", "operations": 1, "scale": 1.0, "spread": 0.0, "wall_seconds": 9.0, "ops": [op]}
    out = rr.analyse(raw)
    assert out["real"]["polls_per_op"] == 4 and out["real"]["lag_p50"] == pytest.approx(3.1)
    assert out["dispatch_latency"]["mean"] == pytest.approx(0.0)
    assert out["simulated"]["raw"]["lag_p50"] == pytest.approx(3.1)
    assert out["agreement"]["with_latency"]["pass"] and out["statuses"] == {"succeeded": 1}
    late = {
        **op,
        "polls": [[101.0, "running"], [102.0, "running"], [104.0, "running"], [112.0, "succeeded"]],
        "firstTerminalPollAt": 112.0,
    }
    assert not rr.analyse({**raw, "ops": [late]})["agreement"]["raw"]["pass"]  # 7.1 s late against 3.1 s


def test_latency_against_the_wrong_policy_is_implausible_and_fails_the_verdict():
    assert rr.host_latency_bound({"extensions": {"queues": {"maxPollingInterval": "00:00:02"}}}) == 3.0
    assert rr.host_latency_bound({}) == 3.0
    assert rr.latency_plausible({"p50": 0.2, "p95": 0.8}, 3.0)
    assert not rr.latency_plausible({"p50": 1.2, "p95": 15.6}, 3.0)  # polls much later than planned
    assert not rr.latency_plausible({"p50": -0.5, "p95": 0.2}, 3.0)  # polls before they were due
    # a run polled on time on the doubling schedule (1, 2, 4, 8, 16, 32 s), analysed as if it were the cold
    # one (2, 4, 6, 8, 10, ... s): its polls come up to 13 s "late"
    op = {
        "status": "succeeded",
        "createdAt": 100.0,
        "graphCreatedAt": 100.0,
        "durationSeconds": 30.0,
        "completedAt": 130.0,
        "firstTerminalPollAt": 132.0,
        "plan": None,
        "polls": [
            [101.0, "running"],
            [102.0, "running"],
            [104.0, "running"],
            [108.0, "running"],
            [116.0, "running"],
            [132.0, "succeeded"],
        ],
    }
    raw = {"policy": "doubling", "operations": 1, "scale": 1.0, "spread": 0.0, "wall_seconds": 32.0, "ops": [op]}
    assert rr.analyse(raw)["dispatch_latency"]["plausible"]
    wrong = rr.analyse({**raw, "policy": "cold"})
    assert not wrong["dispatch_latency"]["plausible"] and not wrong["agreement"]["with_latency"]["pass"]
