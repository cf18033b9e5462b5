"""Poll schedules on a virtual clock: polls per operation against detection lag, per policy and workload.

Every poll is decided by the real code (`shared.graph.lro.decide` with the policy's `next_poll`; the doubling
policy is bench/doubling.py with production defaults), on a simulated clock: a poll at elapsed t sees the
operation finished iff its duration is <= t. Deterministic (seeded), no I/O:

    .venv/bin/python -m bench.schedule [--json] [--plot docs/schedule.png] [--seed N] [--seeds K]

Relative lag = detection lag / max(duration, 10 s). The learned policy is the production one
(shared/schedule/clock.py `plan_for`): each workload is one owner and action, a kind is a workbook, so it reads
the kind's own sample and the owner + action pool, and learns into both the way the store keeps them (a slot
per finish, shared/schedule/history.py), only from what the bridge can observe (the middle of the bracket
between the last running poll and the first finished one), never from the true duration. Workloads:
bench/workloads.py. `mixed_first3` is the mixed run's first 3 runs of each workbook.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import doubling
from bench.workloads import Job, Stream, cold_jobs, mixed_streams, repeated_jobs
from shared.graph.answers import Answer, Kind
from shared.graph.lro import PollState, Reschedule, decide
from shared.schedule.clock import NextPoll, plan_for, timed_out
from shared.schedule.history import DurationHistory, sample_quantile
from shared.schedule.plans import COLD, Schedule
from shared.schedule.timing import Timing

# Production defaults (shared/runtime/settings.py): POLL_INITIAL_DELAY_SECONDS=1, POLL_MAX_DELAY_SECONDS=240,
# OPERATION_TIMEOUT_SECONDS=3600.
TIMING = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=8)
SEED = 20261201
POLICIES = ("fixed5", "fixed30", "doubling", "cold", "learned")
WORKLOADS = ("cold", "repeated", "short", "mixed", "mixed_first3")
GOALS: dict[str, tuple[float, float | None]] = {  # p95 relative lag at most this, polls/op at most this x fixed 5 s
    "cold": (0.20, 0.75),  # issue 10
    "repeated": (0.12, 1 / 3),  # issue 10
    "mixed": (0.15, 0.4),  # issue 21
    "mixed_first3": (0.20, None),  # issue 21: each workbook's first 3 runs
}
TODAY = {  # the learned policy on main before issue 21 (`bench.schedule --json`): issue 21 keeps these or better
    "cold": (12.09, 0.1853),
    "repeated": (5.79, 0.1165),
    "short": (2.39, 0.1888),
}


@dataclass(frozen=True)
class Planned:
    """One operation's schedule: `next_poll` for decide, the first poll's delay and (learned) its Schedule."""

    next_poll: NextPoll
    first: float
    schedule: Schedule | None = None


class Policy:
    """Gives each job its schedule and hears how it ended (`at`: the virtual time of the finish)."""

    name = ""

    def schedule(self, job: Job) -> Planned:
        raise NotImplementedError

    def finished(self, job: Job, planned: Planned, detected_at: float, at: float) -> None:
        return None


class Fixed(Policy):
    def __init__(self, every: int) -> None:
        self.every, self.name = every, f"fixed{every}"

    def schedule(self, job: Job) -> Planned:
        every = self.every
        return Planned(lambda elapsed: every - elapsed % every, float(every))


class Doubling(Policy):
    name = "doubling"

    def schedule(self, job: Job) -> Planned:
        return Planned(doubling.next_poll(TIMING), doubling.first_delay(TIMING))


def _planned(schedule: Schedule) -> Planned:
    return Planned(schedule.next_poll, schedule.next_poll(0.0), schedule)


class Cold(Policy):
    name = "cold"

    def schedule(self, job: Job) -> Planned:
        return _planned(Schedule(COLD, TIMING))


class Learned(Policy):
    """The production plan (shared.schedule.clock.plan_for) from the kind's own sample and the pool."""

    name = "learned"

    def __init__(self, use_hints: bool = True) -> None:
        self.own: dict[int, DurationHistory] = {}
        self.pool = DurationHistory()
        self.use_hints = use_hints
        self.runs = 0

    def schedule(self, job: Job) -> Planned:
        hint = job.hint if self.use_hints else None
        return _planned(Schedule(plan_for(self.own.get(job.kind), self.pool, TIMING, hint=hint), TIMING))

    def finished(self, job: Job, planned: Planned, detected_at: float, at: float) -> None:
        assert planned.schedule is not None
        observed = planned.schedule.observed_duration(detected_at)
        self.runs += 1
        operation = f"run-{self.runs}"
        self.own[job.kind] = self.own.get(job.kind, DurationHistory()).add(observed, operation, int(at))
        self.pool = self.pool.add(observed, operation, int(at))


@dataclass(frozen=True)
class Outcome:
    polls: int
    lag: float | None  # None: timed out
    duration: float
    run: int = 0  # the job's run of its kind

    @property
    def seen_at(self) -> float:
        return self.duration + (self.lag or 0.0) if self.lag is not None else TIMING.timeout


def run_job(job: Job, planned: Planned) -> Outcome:
    """One operation polled on the virtual clock through the real decide."""
    state = PollState("op", generation=0)
    elapsed = planned.first
    while True:
        if timed_out(elapsed, TIMING):  # the poll step ends it timedOut without asking Graph
            return Outcome(state.polls, None, job.duration, job.run)
        if elapsed >= job.duration:
            return Outcome(state.polls + 1, elapsed - job.duration, job.duration, job.run)
        decision = decide(Answer(Kind.RUNNING, status_code=200), state, elapsed, TIMING, next_poll=planned.next_poll)
        assert isinstance(decision, Reschedule)
        state = decision.state
        elapsed += decision.delay


def play(jobs: Sequence[Job], policy: Policy) -> list[Outcome]:
    """One job after another, each learned from before the next starts."""
    outcomes, now = [], 0.0
    for job in jobs:
        planned = policy.schedule(job)
        outcome = run_job(job, planned)
        if outcome.lag is not None:
            policy.finished(job, planned, outcome.seen_at, now + outcome.seen_at)
        now += outcome.seen_at
        outcomes.append(outcome)
    return outcomes


def play_streams(streams: Sequence[Stream], policy: Policy) -> list[Outcome]:
    """Every workbook's runs on one virtual clock: a run is planned when it starts, from what had been seen finished
    by then, and learned from when its end is seen; the workbook's next run starts a pause after that."""
    events: list[tuple[float, int, int, int]] = [(s.appears, 0, n, 0) for n, s in enumerate(streams)]
    heapq.heapify(events)
    pending: dict[tuple[int, int], tuple[Planned, Outcome]] = {}
    outcomes: list[Outcome] = []
    while events:
        now, finishing, n, run = heapq.heappop(events)
        stream = streams[n]
        job = stream.jobs[run]
        if finishing:
            planned, outcome = pending.pop((n, run))
            if outcome.lag is not None:
                policy.finished(job, planned, outcome.seen_at, now)
            if run + 1 < len(stream.jobs):
                heapq.heappush(events, (now + stream.thinks[run], 0, n, run + 1))
            continue
        planned = policy.schedule(job)
        outcome = run_job(job, planned)
        outcomes.append(outcome)
        pending[(n, run)] = (planned, outcome)
        heapq.heappush(events, (now + outcome.seen_at, 1, n, run))
    return outcomes


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


def workloads(seed: int = SEED) -> dict[str, list[Job] | list[Stream]]:
    return {
        "cold": cold_jobs(random.Random(seed)),
        "repeated": repeated_jobs(random.Random(seed + 1)),
        "short": cold_jobs(random.Random(seed + 2), count=2000, low=1.0, high=10.0),
        "mixed": mixed_streams(random.Random(seed + 3)),
    }


Figures = dict[str, dict[str, dict[str, float]]]


def simulate(seed: int = SEED) -> tuple[Figures, dict[str, float]]:
    figures: Figures = {}
    for workload, jobs in workloads(seed).items():
        figures[workload] = {}
        if workload == "mixed":
            figures["mixed_first3"] = {}
        for name, make in policies().items():
            if workload == "mixed":
                outcomes = play_streams([s for s in jobs if isinstance(s, Stream)], make())
                figures["mixed_first3"][name] = summarise([o for o in outcomes if o.run < 3])
            else:
                outcomes = play([j for j in jobs if isinstance(j, Job)], make())
            figures[workload][name] = summarise(outcomes)
    hinted = summarise(play(repeated_jobs(random.Random(seed + 1), hinted=True), Learned()))
    return figures, hinted


def verdict(figures: Figures, workload: str, policy: str, f: dict[str, float]) -> str:
    """The issue's goal for this workload (if any), and for the learned policy today's figures (if kept)."""
    said = []
    if workload in GOALS:
        lag_goal, share = GOALS[workload]
        if share is None:
            said.append(f"{'meets' if f['rel_lag_p95'] <= lag_goal else 'misses'} (≤ {lag_goal:.0%})")
        else:
            base = "mixed" if workload == "mixed_first3" else workload
            budget = share * figures[base]["fixed5"]["polls_per_op"]
            ok = f["rel_lag_p95"] <= lag_goal and f["polls_per_op"] <= budget
            said.append(f"{'meets' if ok else 'misses'} (≤ {lag_goal:.0%} with ≤ {budget:.2f} polls)")
    if policy == "learned" and workload in TODAY:
        polls, lag = TODAY[workload]
        kept = f["polls_per_op"] <= polls and f["rel_lag_p95"] <= lag
        said.append(f"{'keeps' if kept else 'worse than'} today's {polls:.2f} / {lag:.1%}")
    return "; ".join(said)


def table(figures: Figures, hinted: dict[str, float]) -> str:
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
                f"| {f['rel_lag_p95']:.1%} | {verdict(figures, workload, name, f)} |"
            )
    return "\n".join(lines)


def seeds_table(seeds: Sequence[int]) -> str:
    """The learned policy on other draws of the workloads: polls/op as a share of fixed 5 s, p95 relative lag."""
    lines = [
        "| seed | cold | repeated | short | mixed | mixed, first 3 runs |",
        "|---|---|---|---|---|---|",
    ]
    for seed in seeds:
        figures, _ = simulate(seed)
        cells = []
        for workload in ("cold", "repeated", "short", "mixed", "mixed_first3"):
            f = figures[workload]["learned"]
            base = figures["mixed" if workload == "mixed_first3" else workload]["fixed5"]["polls_per_op"]
            cells.append(f"{f['polls_per_op']:.2f} ({f['polls_per_op'] / base:.2f}x) / {f['rel_lag_p95']:.1%}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(figures: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"cold": "o", "repeated": "s", "short": "^", "mixed": "D", "mixed_first3": "d"}
    colours = dict(zip(POLICIES, ("tab:gray", "tab:brown", "tab:red", "tab:blue", "tab:green"), strict=True))
    goal_colours = {"cold": "black", "repeated": "tab:purple", "mixed": "tab:orange"}
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for workload, by_policy in figures.items():
        labels: dict[tuple[float, float], list[str]] = {}
        for name, f in by_policy.items():
            point = (f["polls_per_op"], f["rel_lag_p95"] * 100)
            ax.scatter(*point, marker=markers[workload], color=colours[name], s=50, label=f"{workload} / {name}")
            labels.setdefault(point, []).append(name)
        for point, names in labels.items():  # identical figures (no history: learned = cold) share one label
            ax.annotate(" = ".join(names), point, fontsize=6, textcoords="offset points", xytext=(5, 3))
        lag_goal, share = GOALS.get(workload, (0.0, None))
        if share is not None:
            budget = share * by_policy["fixed5"]["polls_per_op"]
            colour = goal_colours[workload]
            ax.plot(
                [0.5, budget, budget], [lag_goal * 100, lag_goal * 100, 1], linestyle="--", color=colour, linewidth=1
            )
            ax.annotate(
                f"goal, {workload}: ≤ {lag_goal:.0%} with ≤ {budget:.1f} polls",
                (budget, lag_goal * 100),
                fontsize=7,
                color=colour,
                xytext=(-170, 4),
                textcoords="offset points",
            )
    ax.set_xlabel("polls per operation")
    ax.set_ylabel("p95 relative lag (%)  [lag / max(duration, 10 s)]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, 30)
    ax.set_ylim(5, 500)
    ax.set_title("Poll schedules: cost against detection lag (o cold, ■ repeated, ▲ short, ◆ mixed, ♦ first 3 runs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=5, ncol=3, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print {workload: {policy: figures}} as JSON")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here")
    parser.add_argument("--seed", type=int, default=SEED, help="the workloads' seed")
    parser.add_argument("--seeds", type=int, default=0, help="also the learned policy on this many other seeds")
    args = parser.parse_args(argv)
    figures, hinted = simulate(args.seed)
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
    if args.seeds:
        print("\n" + seeds_table([args.seed + 1000 * (k + 1) for k in range(args.seeds)]))
    if args.plot:
        plot(figures, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
