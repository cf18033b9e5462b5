"""Which plan a new operation gets: from its own kind's runs, from the caller's hint, or the cold plan, which a
pool of the owner's other work may shape but never make later. Pure: no clock reads, no I/O.

Own kind = owner + action + workbook (shared/schedule/history.py `history_keys`, first key); the pool = owner +
action over every workbook (second key). The rules, in order:

1. **A kind that changed.** When the last `surprise_runs` runs of the kind each ended before the window that the
   runs before them give, the plan uses those recent runs alone, with the cold gaps from creation: what those
   runs recorded is only "before the window" (the middle of a long bracket), so the next run must not depend on
   it. One such run is what the window's low quantile allows for; two in a row are a new kind of run.
2. **Its own kind, enough runs** (`trusted_runs` or more): the window opens at the predicted `low_quantile` of
   the next run's duration. Fillers only lead to it, and the learned gap runs from there to the deadline.
3. **Its own kind, few runs** (1 or 2), or the caller's `expectedDurationSeconds` as one run when there are
   none: the window is centred on them with the pooled spread. A guard band of cold gaps starts at
   start / `guard`, because one or two runs say little about how early the next may end.
4. **No run of its own.** The owner + action pool is about other workbooks, so it may only add polls. If it
   looks like one kind (`pool_min_runs` runs, log-sd at most `pool_spread`), the cold gaps run from creation
   and its window (to its `high_quantile`) gets the learned gap: never later than the cold schedule at any
   duration. Otherwise the plan is cold.

The window's low end is the sample's quantile widened in log space by `widening` * z * s / sqrt(n), an allowance
of the order of the estimate's sampling error. s is the sample's log-sd pooled with `prior_spread` (worth
`prior_weight` runs), so that a few similar runs do not make the window collapse. With fewer than 3 runs the
window is at least mean(log) -/+ z * s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from shared.schedule.history import DurationHistory, sample_quantile
from shared.schedule.plans import COLD, Plan
from shared.schedule.timing import Timing


@dataclass(frozen=True)
class LearnedPolicy:
    relative_gap: float = 0.12  # gaps inside the window
    low_quantile: float = 0.145  # the window opens here (a predicted quantile of the next run)
    high_quantile: float = 0.999  # a pooled prior's window closes here (then the cold gaps)
    prior_spread: float = 0.5  # log-sd assumed for a kind before its runs say otherwise
    prior_weight: float = 2.0  # how many runs' worth that assumption weighs
    widening: float = 1.0  # multiplies z * s / sqrt(n), the allowance for the quantiles' sampling error
    trusted_runs: int = 2  # runs of its own before only fillers lead to the window
    guard: float = 2.0  # fewer runs: cold gaps from start / guard
    surprise_runs: int = 2  # this many runs in a row ending before their window: forget the runs before them
    pool_min_runs: int = 5  # a pool with fewer runs shapes nothing
    pool_spread: float = 0.5  # ... nor one whose log-sd is wider (it is many kinds, not one)


_STANDARD = NormalDist()


@dataclass(frozen=True)
class Window:
    start: int  # offset of the window's first poll
    end: int  # the predicted high quantile (a pooled prior's window closes there)


def window(durations: Sequence[float], timing: Timing, policy: LearnedPolicy) -> Window | None:
    """Where the next run of a kind with these durations is expected to end; None: no runs, or no room before
    the deadline."""
    values = [max(d, 0.5) for d in durations]
    n = len(values)
    if n == 0:
        return None
    logs = [math.log(d) for d in values]
    mean = sum(logs) / n
    squares = sum((x - mean) ** 2 for x in logs)
    spread = math.sqrt((policy.prior_weight * policy.prior_spread**2 + squares) / (policy.prior_weight + n - 1))
    z_low = -_STANDARD.inv_cdf(policy.low_quantile)
    z_high = _STANDARD.inv_cdf(policy.high_quantile)
    low = math.log(sample_quantile(values, policy.low_quantile)) - policy.widening * z_low * spread / math.sqrt(n)
    high = math.log(sample_quantile(values, policy.high_quantile)) + policy.widening * z_high * spread / math.sqrt(n)
    if n < 3:  # one or two runs say nothing about the tails: centre on them with the pooled spread
        low = min(low, mean - z_low * spread)
        high = max(high, mean + z_high * spread)
    start = max(1, math.floor(math.exp(min(low, 50.0))))
    end = min(math.ceil(math.exp(min(high, 50.0))), math.ceil(timing.timeout))
    return Window(start, end) if end > start else None


def surprises(durations: Sequence[float], timing: Timing, policy: LearnedPolicy) -> int:
    """How many of the last runs, in a row, each ended before the window of the runs before them."""
    trailing = 0
    for j in range(len(durations) - 1, 0, -1):
        before = window(durations[:j], timing, policy)
        if before is None or durations[j] >= before.start:
            break
        trailing += 1
    return trailing


def recent_runs(durations: Sequence[float], timing: Timing, policy: LearnedPolicy) -> list[float]:
    """The runs to plan from (rule 1): all of them, or only the trailing surprises when there are
    `surprise_runs` or more of them."""
    trailing = surprises(durations, timing, policy)
    return list(durations[-trailing:] if trailing >= policy.surprise_runs else durations)


def _spread(durations: Sequence[float]) -> float:
    logs = [math.log(max(d, 0.5)) for d in durations]
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / max(len(logs) - 1, 1))


def own_plan(durations: Sequence[float], timing: Timing, policy: LearnedPolicy, changed: bool = False) -> Plan:
    """Rules 1-3: the plan from the operation's own kind's runs (oldest first), or from its hint; `changed`: the
    runs are the recent ones of a kind that changed (rule 1)."""
    found = window(durations, timing, policy)
    if found is None:
        return COLD
    end = math.ceil(timing.timeout)
    if changed:
        return Plan(found.start, end, policy.relative_gap, 0)
    if len(durations) >= policy.trusted_runs:
        return Plan(found.start, end, policy.relative_gap)
    early = max(0, math.floor(found.start / policy.guard))
    return Plan(found.start, end, policy.relative_gap, None if early >= found.start else early)


def pool_plan(durations: Sequence[float], timing: Timing, policy: LearnedPolicy) -> Plan:
    """Rule 4: the cold gaps from creation, and where the pool looks like one kind, its window denser."""
    if len(durations) < policy.pool_min_runs or _spread(durations) > policy.pool_spread:
        return COLD
    found = window(durations, timing, policy)
    if found is None:
        return COLD
    return Plan(found.start, found.end, policy.relative_gap, 0)


def plan_for(
    own: DurationHistory | None,
    pool: DurationHistory | None,
    timing: Timing,
    hint: float | None = None,
    policy: LearnedPolicy | None = None,
) -> Plan:
    """The plan of a new operation whose own kind has history `own` and whose owner + action pool has `pool`
    (None or empty: none), with the caller's expectedDurationSeconds `hint` (used only without runs of its own)."""
    policy = policy or LearnedPolicy()
    runs = own.durations() if own is not None else []
    if runs:
        recent = recent_runs(runs, timing, policy)
        return own_plan(recent, timing, policy, changed=len(recent) < len(runs))
    if hint is not None and math.isfinite(hint) and hint > 0:
        return own_plan([hint], timing, policy)
    return pool_plan(pool.durations() if pool is not None else [], timing, policy)


def learned_plan(
    history: DurationHistory | None, timing: Timing, hint: float | None = None, policy: LearnedPolicy | None = None
) -> Plan:
    """The plan from a kind's own history alone (no pool): `plan_for(history, None, ...)`."""
    return plan_for(history, None, timing, hint, policy)
