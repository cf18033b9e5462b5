"""Poll schedules on a virtual clock: polls per operation against detection lag, per policy and workload.

Every poll is decided by the real code (`shared.graph.lro.decide` with the policy's `next_poll`, the doubling
policy being today's `next_regular_poll` with production defaults), on a simulated clock: a poll at elapsed t
sees the operation finished iff its duration is <= t. Deterministic (seeded), no I/O:

    .venv/bin/python -m bench.schedule [--json] [--plot docs/schedule.png]

Relative lag = detection lag / max(duration, 10 s). The learned policy learns each kind's durations from that
kind's earlier runs in the same simulation, and only from what the bridge can observe (the middle of the
bracket between the last running poll and the first finished one), never from the true duration.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.graph.answers import Answer, Kind
from shared.graph.lro import NextPoll, PollState, Reschedule, decide, timed_out, whole_seconds
from shared.schedule.history import DurationHistory, sample_quantile
from shared.schedule.plans import COLD, Schedule, learned_plan
from shared.schedule.timing import Timing

# Production defaults (shared/runtime/settings.py): POLL_INITIAL_DELAY_SECONDS=1, POLL_MAX_DELAY_SECONDS=240,
# OPERATION_TIMEOUT_SECONDS=3600.
TIMING = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=8)
SEED = 20261201
POLICIES = ("fixed5", "fixed30", "doubling", "cold", "learned")
WORKLOADS = ("cold", "repeated", "short")
GOALS = {  # issue 10: p95 relative lag at most this, with polls/op at most this share of fixed 5 s
    "cold": (0.20, 0.75),
    "repeated": (0.12, 1 / 3),
}


@dataclass(frozen=True)
class Job:
    kind: int
    duration: float
    hint: float | None = None


def cold_jobs(rng: random.Random, count: int = 4000, low: float = 1.0, high: float = 600.0) -> list[Job]:
    """Durations log-uniform in [low, high]; every job its own kind (no history)."""
    return [Job(i, math.exp(rng.uniform(math.log(low), math.log(high)))) for i in range(count)]


def repeated_jobs(rng: random.Random, kinds: int = 300, runs: int = 30, hinted: bool = False) -> list[Job]:
    """Per kind a lognormal (median log-uniform 1-600 s, sigma uniform 0.1-0.6), its runs in order. `hinted`:
    the caller passes the kind's median as expectedDurationSeconds (a caller who knows its typical run)."""
    jobs = []
    for kind in range(kinds):
        median = math.exp(rng.uniform(0.0, math.log(600.0)))
        sigma = rng.uniform(0.1, 0.6)
        jobs += [Job(kind, median * math.exp(rng.gauss(0.0, sigma)), median if hinted else None) for _ in range(runs)]
    return jobs


class Policy:
    """Gives each job its schedule (a `next_poll` for decide, None = today's doubling) and hears how it ended."""

    name = ""

    def schedule(self, job: Job) -> tuple[NextPoll | None, float]:
        raise NotImplementedError

    def finished(self, job: Job, detected_at: float) -> None:
        return None


class Fixed(Policy):
    def __init__(self, every: int) -> None:
        self.every, self.name = every, f"fixed{every}"

    def schedule(self, job: Job) -> tuple[NextPoll | None, float]:
        every = self.every
        return (lambda elapsed: every - elapsed % every), float(every)


class Doubling(Policy):
    name = "doubling"

    def schedule(self, job: Job) -> tuple[NextPoll | None, float]:
        # the old start path enqueued the first poll after whole_seconds(POLL_INITIAL_DELAY_SECONDS)
        return None, float(whole_seconds(TIMING.initial))


class Cold(Policy):
    name = "cold"

    def schedule(self, job: Job) -> tuple[NextPoll | None, float]:
        plan = Schedule(COLD, TIMING)
        return plan.next_poll, plan.next_poll(0.0)


class Learned(Policy):
    name = "learned"

    def __init__(self, use_hints: bool = True) -> None:
        self.histories: dict[int, DurationHistory] = {}
        self.schedules: dict[int, Schedule] = {}
        self.use_hints = use_hints
        self.runs = 0

    def schedule(self, job: Job) -> tuple[NextPoll | None, float]:
        hint = job.hint if self.use_hints else None
        plan = Schedule(learned_plan(self.histories.get(job.kind), TIMING, hint=hint), TIMING)
        self.schedules[job.kind] = plan
        return plan.next_poll, plan.next_poll(0.0)

    def finished(self, job: Job, detected_at: float) -> None:
        observed = self.schedules[job.kind].observed_duration(detected_at)
        self.runs += 1
        self.histories[job.kind] = self.histories.get(job.kind, DurationHistory()).add(observed, f"run-{self.runs}")


@dataclass(frozen=True)
class Outcome:
    polls: int
    lag: float | None  # None: timed out
    duration: float


def run_job(job: Job, policy: Policy) -> Outcome:
    next_poll, first = policy.schedule(job)
    state = PollState("op", generation=0)
    elapsed = first
    while True:
        if timed_out(elapsed, TIMING):  # poller.poll_once: finishes timedOut without asking Graph
            return Outcome(state.polls, None, job.duration)
        if elapsed >= job.duration:
            policy.finished(job, elapsed)
            return Outcome(state.polls + 1, elapsed - job.duration, job.duration)
        decision = decide(Answer(Kind.RUNNING, status_code=200), state, elapsed, TIMING, next_poll=next_poll)
        assert isinstance(decision, Reschedule)
        state = decision.state
        elapsed += decision.delay


def summarise(outcomes: Sequence[Outcome]) -> dict[str, float]:
    lags = [o.lag for o in outcomes if o.lag is not None]
    relative = [o.lag / max(o.duration, 10.0) for o in outcomes if o.lag is not None]
    return {
        "polls_per_op": round(sum(o.polls for o in outcomes) / len(outcomes), 2),
        "lag_p50": round(sample_quantile(lags, 0.50), 2),
        "lag_p95": round(sample_quantile(lags, 0.95), 2),
        "rel_lag_p95": round(sample_quantile(relative, 0.95), 4),
        "timed_out": sum(1 for o in outcomes if o.lag is None),
    }


def policies() -> dict[str, Callable[[], Policy]]:
    return {
        "fixed5": lambda: Fixed(5),
        "fixed30": lambda: Fixed(30),
        "doubling": Doubling,
        "cold": Cold,
        "learned": Learned,
    }


def workloads() -> dict[str, list[Job]]:
    return {
        "cold": cold_jobs(random.Random(SEED)),
        "repeated": repeated_jobs(random.Random(SEED + 1)),
        "short": cold_jobs(random.Random(SEED + 2), count=2000, low=1.0, high=10.0),
    }


def simulate() -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for workload, jobs in workloads().items():
        figures[workload] = {}
        for name, make in policies().items():
            policy = make()
            figures[workload][name] = summarise([run_job(job, policy) for job in jobs])
    learner = Learned()
    hinted = summarise([run_job(job, learner) for job in repeated_jobs(random.Random(SEED + 1), hinted=True)])
    return figures, hinted


def table(figures: dict[str, dict[str, dict[str, float]]], hinted: dict[str, float]) -> str:
    lines = [
        "| workload | policy | polls/op | lag p50 (s) | lag p95 (s) | p95 relative lag | goal |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for workload, by_policy in figures.items():
        rows = list(by_policy.items())
        if workload == "repeated":
            rows.append(("learned + hint", hinted))
        for name, f in rows:
            lines.append(
                f"| {workload} | {name} | {f['polls_per_op']:.2f} | {f['lag_p50']:.1f} | {f['lag_p95']:.1f} "
                f"| {f['rel_lag_p95']:.1%} | {verdict(figures, workload, f)} |"
            )
    return "\n".join(lines)


def verdict(figures: dict[str, dict[str, dict[str, float]]], workload: str, f: dict[str, float]) -> str:
    if workload not in GOALS:
        return ""
    lag_goal, share = GOALS[workload]
    budget = share * figures[workload]["fixed5"]["polls_per_op"]
    ok = f["rel_lag_p95"] <= lag_goal and f["polls_per_op"] <= budget
    return f"{'meets' if ok else 'misses'} (≤ {lag_goal:.0%} with ≤ {budget:.2f} polls)"


def plot(figures: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"cold": "o", "repeated": "s", "short": "^"}
    colours = dict(zip(POLICIES, ("tab:gray", "tab:brown", "tab:red", "tab:blue", "tab:green"), strict=True))
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for workload, by_policy in figures.items():
        labels: dict[tuple[float, float], list[str]] = {}
        for name, f in by_policy.items():
            point = (f["polls_per_op"], f["rel_lag_p95"] * 100)
            ax.scatter(*point, marker=markers[workload], color=colours[name], s=60, label=f"{workload} / {name}")
            labels.setdefault(point, []).append(name)
        for point, names in labels.items():  # identical figures (no history: learned = cold) share one label
            ax.annotate(" = ".join(names), point, fontsize=7, textcoords="offset points", xytext=(5, 3))
        if workload in GOALS:
            lag_goal, share = GOALS[workload]
            budget = share * by_policy["fixed5"]["polls_per_op"]
            colour = "black" if workload == "cold" else "tab:purple"
            ax.plot(
                [0.5, budget, budget], [lag_goal * 100, lag_goal * 100, 1], linestyle="--", color=colour, linewidth=1
            )
            ax.annotate(
                f"goal, {workload} mix: ≤ {lag_goal:.0%} with ≤ {budget:.1f} polls",
                (budget, lag_goal * 100),
                fontsize=7,
                color=colour,
                xytext=(-190, -11 if workload == "cold" else 4),
                textcoords="offset points",
            )
    ax.set_xlabel("polls per operation")
    ax.set_ylabel("p95 relative lag (%)  [lag / max(duration, 10 s)]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, 30)
    ax.set_ylim(5, 500)
    ax.set_title("Poll schedules: cost against detection lag (o cold mix, ■ repeated jobs, ▲ short mix)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=3, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print {workload: {policy: figures}} as JSON")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here")
    args = parser.parse_args(argv)
    figures, hinted = simulate()
    if args.json:
        print(
            json.dumps(
                {
                    w: {p: {k: v for k, v in f.items() if k != "timed_out"} for p, f in by.items()}
                    for w, by in figures.items()
                },
                indent=2,
            )
        )
    else:
        print(table(figures, hinted))
        timed = sum(f["timed_out"] for by in figures.values() for f in by.values())
        print(f"\n(timed out, excluded from lag figures: {timed:g}; timeout {TIMING.timeout:g} s)")
    if args.plot:
        plot(figures, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
