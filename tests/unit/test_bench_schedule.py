"""The schedule bench's mechanics on tiny workloads (its figures are the bench's business, not a test's)."""

from __future__ import annotations

import json
import random

import pytest

from bench import schedule as bench
from bench.workloads import Job, Stream, mixed_streams
from shared.schedule.plans import Schedule


def run(job: Job, policy: bench.Policy) -> bench.Outcome:
    return bench.run_job(job, policy.schedule(job))


def test_fixed_and_doubling_count_polls_and_lag_on_the_virtual_clock():
    assert run(Job(0, 12.0), bench.Fixed(5)) == bench.Outcome(3, 3.0, 12.0)  # 5, 10, 15
    assert run(Job(0, 5.0), bench.Doubling()) == bench.Outcome(4, 3.0, 5.0)  # 1, 2, 4, 8
    assert run(Job(0, 1.0), bench.Doubling()) == bench.Outcome(1, 0.0, 1.0)


def test_cold_policy_follows_the_cold_schedule():
    offsets = list(Schedule(bench.COLD, bench.TIMING).offsets())
    outcome = run(Job(0, 100.0), bench.Cold())
    seen = next(o for o in offsets if o >= 100.0)
    assert outcome == bench.Outcome(offsets.index(seen) + 1, seen - 100.0, 100.0)


def test_learned_policy_learns_from_what_it_observed_not_the_true_duration():
    policy = bench.Learned()
    first, second = bench.play([Job(7, 100.0, run=0), Job(7, 100.0, run=1)], policy)
    assert first == run(Job(7, 100.0), bench.Cold())  # no history: cold
    recorded = policy.own[7].durations()
    assert len(recorded) == 2 and recorded[0] != 100.0 and recorded[0] < 100.0 + (first.lag or 0.0)
    assert second.polls < first.polls
    assert policy.pool.size == 2  # the owner + action pool learns every kind's runs


def test_timed_out_operations_are_counted_apart():
    outcome = run(Job(0, 10 * bench.TIMING.timeout), bench.Cold())
    assert outcome.lag is None
    assert bench.summarise([outcome, bench.Outcome(2, 1.0, 5.0)])["timed_out"] == 1


def test_mixed_workload_has_its_shape():
    streams = mixed_streams(random.Random(1))
    assert len(streams) == 60 and all(len(s.jobs) == 20 for s in streams)
    assert {j.kind for s in streams for j in s.jobs} == set(range(60))
    medians = sorted(sorted(j.duration for j in s.jobs)[10] for s in streams)
    assert medians[0] < 10 and medians[-1] > 100  # spread over 1-600 s
    appear = sorted(s.appears for s in streams)
    assert appear[0] < 1800 and appear[-1] > 5400  # new workbooks appear throughout


def test_streams_interleave_and_a_run_learns_only_from_runs_seen_finished_before_it_starts():
    """Two workbooks: a's second run starts after its first was seen; b's first run starts while a's first is still
    running, so it is planned without a's run in the pool."""
    a = Stream(0.0, (Job(0, 100.0, run=0), Job(0, 100.0, run=1)), (10.0, 10.0))
    b = Stream(50.0, (Job(1, 100.0, run=0),), (10.0,))

    class Recorder(bench.Learned):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, int, int]] = []  # (kind, run, pool size when planned)

        def schedule(self, job: Job) -> bench.Planned:
            self.seen.append((job.kind, job.run, self.pool.size))
            return super().schedule(job)

    policy = Recorder()
    outcomes = bench.play_streams([a, b], policy)
    assert [(o.run, o.duration) for o in outcomes] == [(0, 100.0), (0, 100.0), (1, 100.0)]
    assert policy.seen == [(0, 0, 0), (1, 0, 0), (0, 1, 1)]  # b (seen at 155) not yet in the pool at 115


def test_json_has_every_workload_and_policy(monkeypatch, capsys):
    monkeypatch.setattr(
        bench,
        "workloads",
        lambda seed=bench.SEED: {
            "cold": [Job(0, 30.0), Job(1, 300.0)],
            "repeated": [Job(0, 30.0), Job(0, 33.0, run=1)],
            "short": [Job(0, 3.0), Job(1, 7.0)],
            "mixed": [Stream(0.0, (Job(0, 30.0), Job(0, 33.0, run=1)), (5.0, 5.0))],
        },
    )
    monkeypatch.setattr(bench, "repeated_jobs", lambda rng, hinted=False: [Job(0, 30.0, 30.0)])
    bench.main(["--json"])
    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == list(bench.WORKLOADS)
    for by_policy in figures.values():
        assert list(by_policy) == list(bench.POLICIES)
        for f in by_policy.values():
            assert set(f) == {"polls_per_op", "lag_p50", "lag_p95", "rel_lag_p95"}
    assert figures["cold"]["fixed5"]["polls_per_op"] == pytest.approx((6 + 60) / 2)
