"""The schedule bench's workloads (bench/schedule.py): who runs what, for how long, in which order. Seeded.

- `cold`: 4000 operations, durations log-uniform 1-600 s, every one its own kind.
- `repeated`: 300 kinds (median log-uniform 1-600 s, sigma uniform 0.1-0.6, lognormal), 30 runs each, a kind's
  runs one after another.
- `short`: 2000 operations, log-uniform 1-10 s, every one its own kind.
- `mixed` (issue 21): one owner and action, 60 workbooks (kinds) whose medians spread log-uniformly over 1-600 s
  (sigma 0.1-0.6), 20 runs each. Each workbook appears at a uniform time in the first `horizon` seconds; its
  runs follow one another (as its lane would have them), each `think` seconds (exponential) after the previous
  one was seen finished, so the workbooks' runs interleave and new workbooks appear throughout.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    kind: int
    duration: float
    hint: float | None = None
    run: int = 0  # the how-many-th run of its kind (0: the first)


def cold_jobs(rng: random.Random, count: int = 4000, low: float = 1.0, high: float = 600.0) -> list[Job]:
    """Durations log-uniform in [low, high]; every job its own kind (no history of its own)."""
    return [Job(i, math.exp(rng.uniform(math.log(low), math.log(high)))) for i in range(count)]


def repeated_jobs(rng: random.Random, kinds: int = 300, runs: int = 30, hinted: bool = False) -> list[Job]:
    """Per kind a lognormal (median log-uniform 1-600 s, sigma uniform 0.1-0.6), its runs in order. `hinted`:
    the caller passes the kind's median as expectedDurationSeconds (a caller who knows its typical run)."""
    jobs = []
    for kind in range(kinds):
        median = math.exp(rng.uniform(0.0, math.log(600.0)))
        sigma = rng.uniform(0.1, 0.6)
        jobs += [
            Job(kind, median * math.exp(rng.gauss(0.0, sigma)), median if hinted else None, run) for run in range(runs)
        ]
    return jobs


@dataclass(frozen=True)
class Stream:
    """One workbook of the mixed workload: when it first appears, then its runs and the pause after each."""

    appears: float
    jobs: tuple[Job, ...]
    thinks: tuple[float, ...]


def mixed_streams(
    rng: random.Random, workbooks: int = 60, runs: int = 20, horizon: float = 7200.0, think: float = 60.0
) -> list[Stream]:
    streams = []
    for kind in range(workbooks):
        median = math.exp(rng.uniform(0.0, math.log(600.0)))
        sigma = rng.uniform(0.1, 0.6)
        appears = rng.uniform(0.0, horizon)
        jobs = tuple(Job(kind, median * math.exp(rng.gauss(0.0, sigma)), None, run) for run in range(runs))
        streams.append(Stream(appears, jobs, tuple(rng.expovariate(1.0 / think) for _ in range(runs))))
    return streams
