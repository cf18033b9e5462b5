"""The real-run bench's analysis (bench/real_run.py runs the bridge): the same operations simulated through the
real decide, the host's dispatch latency measured from the poll times, the figures and the verdict. No I/O but
host.json; bench/real_run.py's docstring says what is compared and why."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import doubling as doubling_schedule
from shared.graph.answers import Answer, Kind
from shared.graph.lro import PollState, Reschedule, decide
from shared.schedule.clock import NextPoll, timed_out
from shared.schedule.history import sample_quantile
from shared.schedule.plans import COLD, Plan, Schedule
from shared.schedule.timing import Timing

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = Timing(initial=1.0, maximum=240.0, timeout=3600.0, max_transient_failures=8)
TOLERANCE = 0.15
VERDICT_METRICS = ("polls_per_op", "lag_p50", "lag_p95")
REPLICATES = 20
REL_FLOOR = 10.0  # relative lag = lag / max(duration, 10 s x scale), as in bench.schedule
SEED = 20261201


def scaled_timing(scale: float) -> Timing:
    """Production timing scaled (the cap is at least 1 s: POLL_MAX_DELAY_SECONDS' lower bound)."""
    return Timing(
        initial=PRODUCTION.initial * scale,
        maximum=max(1.0, PRODUCTION.maximum * scale),
        timeout=PRODUCTION.timeout * scale,
        max_transient_failures=PRODUCTION.max_transient_failures,
    )


# --- policies: what the bridge plans for one operation --------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One operation's schedule: `next_poll` for decide and the first poll's delay."""

    next_poll: NextPoll
    first: float


def doubling(timing: Timing) -> Planned:
    """The schedule before issue 10 (bench/doubling.py): the first poll after POLL_INITIAL_DELAY_SECONDS."""
    return Planned(doubling_schedule.next_poll(timing), doubling_schedule.first_delay(timing))


def from_plan(plan: Plan, timing: Timing) -> Planned:
    schedule = Schedule(plan, timing)
    return Planned(schedule.next_poll, schedule.next_poll(0.0))


SCHEDULE_MARKS = (
    "from .schedule import",
    "import shared.schedule.plans",
    "from shared.schedule.plans import",
    "Schedule(",
    "next_poll=",
    "poll_plan",
)


def detect_policy(poller_source: str) -> str:
    """`plan` when the poller is driven by shared.schedule.plans (imports it, passes decide a `next_poll`, or reads
    the record's `poll_plan`), else `doubling` (bench/doubling.py)."""
    return "plan" if any(mark in poller_source for mark in SCHEDULE_MARKS) else "doubling"


def plan_of(entity: Mapping[str, Any]) -> Plan:
    """The plan stored on an operation's table entity (any spelling of poll_plan), else the cold plan."""
    for name, value in entity.items():
        if name.replace("_", "").lower() == "pollplan" and isinstance(value, str):
            return Plan.decode(value)
    return COLD


# --- the simulation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sim:
    polls: int
    lag: float | None  # None: timed out


Latency = Callable[[], float]


def no_latency() -> float:
    return 0.0


def constant(seconds: float) -> Latency:
    return lambda: seconds


def resampled(latencies: Sequence[float], rng: random.Random) -> Latency:
    """Each call: one of the measured latencies, drawn with replacement (a bootstrap of the host's latency)."""
    pool = list(latencies) or [0.0]
    return lambda: rng.choice(pool)


def simulate_op(duration: float, planned: Planned, timing: Timing, latency: Latency = no_latency) -> Sim:
    """bench.schedule.run_job with the timing and the dispatch latency as parameters: a poll at elapsed t sees
    the operation finished iff t >= duration; every poll happens `latency()` after it was due."""
    state = PollState("op", generation=0)
    elapsed = planned.first + latency()
    while True:
        if timed_out(elapsed, timing):  # poller.poll_once: ends timedOut without asking Graph
            return Sim(state.polls, None)
        if elapsed >= duration:
            return Sim(state.polls + 1, elapsed - duration)
        decision = decide(Answer(Kind.RUNNING, status_code=200), state, elapsed, timing, next_poll=planned.next_poll)
        assert isinstance(decision, Reschedule)
        state = decision.state
        elapsed += decision.delay + latency()


def dispatch_latencies(
    poll_times: Sequence[float],
    phases: Sequence[str | None],
    created: float,
    graph_created: float,
    planned: Planned,
    timing: Timing,
) -> list[float]:
    """Per poll: actual time - planned visibility. The first poll was due `planned.first` after Graph's start
    answer; each later one `delay` after the previous poll, `delay` being what decide chose for that poll's
    elapsed time (since the bridge's creation) on a running answer. Stops at the first terminal answer."""
    out: list[float] = []
    if not poll_times:
        return out
    out.append(poll_times[0] - (graph_created + planned.first))
    state = PollState("op", generation=0)
    for i in range(len(poll_times) - 1):
        if phases[i] not in ("running", "notStarted"):
            break
        decision = decide(
            Answer(Kind.RUNNING, status_code=200), state, poll_times[i] - created, timing, next_poll=planned.next_poll
        )
        assert isinstance(decision, Reschedule)
        state = decision.state
        out.append(poll_times[i + 1] - (poll_times[i] + decision.delay))
    return out


# --- figures -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """One operation as the emulator saw it (times: Unix seconds on one clock)."""

    duration: float  # the drawn running time (from Graph's creation)
    polls: int
    lag: float | None  # first terminal poll - completion; None: never seen terminal
    start_offset: float = 0.0  # Graph's creation - the bridge's record creation


def summarise(
    polls: Sequence[int], lags: Sequence[float | None], durations: Sequence[float], floor: float
) -> dict[str, float]:
    """polls/op, lag p50/p95 and p95 relative lag (lag / max(duration, floor)) over the operations seen done."""
    if not polls:
        raise ValueError("no operations")
    seen = [(lag, d) for lag, d in zip(lags, durations, strict=True) if lag is not None]
    if not seen:
        raise ValueError("no operation was seen finished")
    only = [lag for lag, _ in seen]
    return {
        "polls_per_op": round(sum(polls) / len(polls), 3),
        "lag_p50": round(sample_quantile(only, 0.50), 3),
        "lag_p95": round(sample_quantile(only, 0.95), 3),
        "rel_lag_p95": round(sample_quantile([lag / max(d, floor) for lag, d in seen], 0.95), 4),
        "unseen": float(len(polls) - len(seen)),
    }


def relative_difference(real: float, simulated: float) -> float:
    """|real - simulated| / |simulated| (0 when both are 0; inf when only the simulation is 0)."""
    if simulated == 0:
        return 0.0 if real == 0 else math.inf
    return abs(real - simulated) / abs(simulated)


def agreement(
    real: Mapping[str, float],
    simulated: Mapping[str, float],
    tolerance: float = TOLERANCE,
    metrics: Iterable[str] = VERDICT_METRICS,
) -> dict[str, Any]:
    """Per metric the two figures, their relative difference and whether it is within `tolerance`; `pass` if
    every metric is."""
    rows = {}
    for metric in metrics:
        diff = relative_difference(real[metric], simulated[metric])
        rows[metric] = {
            "real": real[metric],
            "simulated": simulated[metric],
            "relative_difference": round(diff, 4),
            "within": diff <= tolerance,
        }
    return {"metrics": rows, "tolerance": tolerance, "pass": all(r["within"] for r in rows.values())}


def host_latency_bound(host_json: Mapping[str, Any]) -> float:
    """The most a due poll can plausibly wait in the host: the queue listener's longest sleep between empty
    receives (host.json extensions.queues.maxPollingInterval, "hh:mm:ss") plus a second for the poll step."""
    text = str(host_json.get("extensions", {}).get("queues", {}).get("maxPollingInterval", "00:00:02"))
    hours, minutes, seconds = (float(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds + 1.0


def latency_plausible(summary: Mapping[str, float], bound: float) -> bool:
    """Dispatch latency as measured against the simulated policy's planned polls looks like the host's: not
    early (p50 >= -50 ms) and within the bound at p95. Otherwise the bridge ran another schedule than the one
    simulated, and the "latency" is the difference between the two: the verdict is then FAIL."""
    return summary["p50"] >= -0.05 and summary["p95"] <= bound


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    if not latencies:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "count": 0.0}
    return {
        "mean": round(statistics.fmean(latencies), 3),
        "p50": round(sample_quantile(latencies, 0.5), 3),
        "p95": round(sample_quantile(latencies, 0.95), 3),
        "count": float(len(latencies)),
    }


def compare(
    observed: Sequence[Observed],
    planned: Sequence[Planned],
    timing: Timing,
    latencies: Sequence[float],
    floor: float,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> dict[str, Any]:
    """Real figures, the raw simulation's and the latency-adjusted one's, over the same operations (each
    simulated from the bridge's creation: duration + start offset), and the agreement of both. The adjusted
    simulation draws every poll's latency from the measured ones (`replicates` runs of the whole workload,
    pooled, seeded): a constant would not do, since a poll 0.1 s late can skip a planned offset that an
    on-time one would not (the offsets are close to whole seconds)."""
    durations = [o.duration for o in observed]
    real = summarise([o.polls for o in observed], [o.lag for o in observed], durations, floor)
    sims: dict[str, dict[str, float]] = {}
    raw = [simulate_op(o.duration + o.start_offset, p, timing) for o, p in zip(observed, planned, strict=True)]
    sims["raw"] = summarise([r.polls for r in raw], [r.lag for r in raw], durations, floor)
    draw = resampled(latencies, random.Random(seed))
    runs = [
        simulate_op(o.duration + o.start_offset, p, timing, draw)
        for _ in range(replicates)
        for o, p in zip(observed, planned, strict=True)
    ]
    sims["with_latency"] = summarise([r.polls for r in runs], [r.lag for r in runs], durations * replicates, floor)
    return {
        "real": real,
        "simulated": sims,
        "agreement": {name: agreement(real, figures) for name, figures in sims.items()},
        "verdict_uses": "with_latency",
    }


def analyse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The figures from what a run collected (`run`, or a file saved with --save)."""
    policy, scale = str(raw["policy"]), float(raw["scale"])
    timing = scaled_timing(scale)
    observed: list[Observed] = []
    planned: list[Planned] = []
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    for op in raw["ops"]:
        statuses[op["status"]] = statuses.get(op["status"], 0) + 1
        plan = (
            doubling(timing)
            if policy == "doubling"
            else from_plan(COLD, timing)
            if policy == "cold"
            else from_plan(plan_of({"poll_plan": op["plan"]}), timing)
        )
        terminal = op["firstTerminalPollAt"]
        lag = terminal - op["completedAt"] if terminal is not None and op["completedAt"] is not None else None
        observed.append(Observed(op["durationSeconds"], len(op["polls"]), lag, op["graphCreatedAt"] - op["createdAt"]))
        planned.append(plan)
        latencies += dispatch_latencies(
            [t for t, _ in op["polls"]],
            [ph for _, ph in op["polls"]],
            op["createdAt"],
            op["graphCreatedAt"],
            plan,
            timing,
        )
    figures = compare(observed, planned, timing, latencies, REL_FLOOR * scale)
    latency = latency_summary(latencies)
    bound = host_latency_bound(json.loads((ROOT / "host.json").read_text()))
    plausible = latency_plausible(latency, bound)
    figures["agreement"]["with_latency"]["pass"] = figures["agreement"]["with_latency"]["pass"] and plausible
    return {
        "policy": policy,
        "operations": raw["operations"],
        "scale": scale,
        "workload": f"createSession on {raw['operations']} workbooks, durations log-uniform {scale:g}-"
        f"{600 * scale:g} s (seeded), started over {raw['spread']:g} s",
        "settings": {
            "POLL_INITIAL_DELAY_SECONDS": timing.initial,
            "POLL_MAX_DELAY_SECONDS": timing.maximum,
            "OPERATION_TIMEOUT_SECONDS": timing.timeout,
        },
        "statuses": statuses,
        "prior": raw.get("prior"),
        "wall_seconds": raw["wall_seconds"],
        "dispatch_latency": {**latency, "bound": bound, "plausible": plausible},
        "start_offset_mean": round(statistics.fmean(o.start_offset for o in observed), 3),
        **figures,
    }


def report(result: Mapping[str, Any]) -> str:
    real, sims = result["real"], result["simulated"]
    lines = [
        f"real run: {result['workload']}; policy {result['policy']}; settings {result['settings']}",
        f"operations finished: {result['statuses']} in {result['wall_seconds']} s",
        *(
            [f"before the run, the owner's history held unrelated runs: {result['prior']}"]
            if result.get("prior")
            else []
        ),
        f"dispatch latency (planned visibility -> Graph poll): mean {result['dispatch_latency']['mean']:.2f} s,"
        f" p50 {result['dispatch_latency']['p50']:.2f} s, p95 {result['dispatch_latency']['p95']:.2f} s "
        f"over {result['dispatch_latency']['count']:g} polls"
        + (
            ""
            if result["dispatch_latency"]["plausible"]
            else f" -- NOT the host's (p95 over {result['dispatch_latency']['bound']:g} s or polls early): the bridge "
            "does not run the simulated policy; verdict FAIL"
        ),
        "",
        "| figure | real | simulated (raw) | diff | simulated + latency | diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for metric in ("polls_per_op", "lag_p50", "lag_p95", "rel_lag_p95"):
        raw = relative_difference(real[metric], sims["raw"][metric])
        adj = relative_difference(real[metric], sims["with_latency"][metric])
        lines.append(
            f"| {metric} | {real[metric]:.3f} | {sims['raw'][metric]:.3f} | {raw:.1%} "
            f"| {sims['with_latency'][metric]:.3f} | {adj:.1%} |"
        )
    verdict = result["agreement"]["with_latency"]
    raw_verdict = result["agreement"]["raw"]
    lines += [
        "",
        f"verdict (simulation + measured dispatch latency, polls/op and lag p50/p95 within "
        f"{verdict['tolerance']:.0%}): {'PASS' if verdict['pass'] else 'FAIL'}"
        f"  (raw simulation: {'PASS' if raw_verdict['pass'] else 'FAIL'})",
    ]
    return "\n".join(lines)
