"""The schedule bench's mechanics on tiny workloads (its figures are the bench's business, not a test's)."""

from __future__ import annotations

import json

import pytest

from bench import schedule as bench
from shared.schedule.plans import Schedule


def test_fixed_and_doubling_count_polls_and_lag_on_the_virtual_clock():
    assert bench.run_job(bench.Job(0, 12.0), bench.Fixed(5)) == bench.Outcome(3, 3.0, 12.0)  # 5, 10, 15
    assert bench.run_job(bench.Job(0, 5.0), bench.Doubling()) == bench.Outcome(4, 3.0, 5.0)  # 1, 2, 4, 8
    assert bench.run_job(bench.Job(0, 1.0), bench.Doubling()) == bench.Outcome(1, 0.0, 1.0)


def test_cold_policy_follows_the_cold_schedule():
    offsets = list(Schedule(bench.COLD, bench.TIMING).offsets())
    outcome = bench.run_job(bench.Job(0, 100.0), bench.Cold())
    seen = next(o for o in offsets if o >= 100.0)
    assert outcome == bench.Outcome(offsets.index(seen) + 1, seen - 100.0, 100.0)


def test_learned_policy_learns_from_what_it_observed_not_the_true_duration():
    policy = bench.Learned()
    first = bench.run_job(bench.Job(7, 100.0), policy)
    assert first == bench.run_job(bench.Job(7, 100.0), bench.Cold())  # no history: cold
    recorded = policy.histories[7].durations()
    assert len(recorded) == 1 and recorded[0] != 100.0 and recorded[0] < 100.0 + first.lag
    second = bench.run_job(bench.Job(7, 100.0), policy)
    assert second.polls < first.polls
    assert policy.histories[7].size == 2


def test_timed_out_operations_are_counted_apart():
    outcome = bench.run_job(bench.Job(0, 10 * bench.TIMING.timeout), bench.Cold())
    assert outcome.lag is None
    assert bench.summarise([outcome, bench.Outcome(2, 1.0, 5.0)])["timed_out"] == 1


def test_json_has_every_workload_and_policy(monkeypatch, capsys):
    monkeypatch.setattr(
        bench,
        "workloads",
        lambda: {
            "cold": [bench.Job(0, 30.0), bench.Job(1, 300.0)],
            "repeated": [bench.Job(0, 30.0), bench.Job(0, 33.0)],
            "short": [bench.Job(0, 3.0), bench.Job(1, 7.0)],
        },
    )
    monkeypatch.setattr(bench, "repeated_jobs", lambda rng, hinted=False: [bench.Job(0, 30.0, 30.0)])
    bench.main(["--json"])
    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == list(bench.WORKLOADS)
    for by_policy in figures.values():
        assert list(by_policy) == list(bench.POLICIES)
        for f in by_policy.values():
            assert set(f) == {"polls_per_op", "lag_p50", "lag_p95", "rel_lag_p95"}
    assert figures["cold"]["fixed5"]["polls_per_op"] == pytest.approx((6 + 60) / 2)
