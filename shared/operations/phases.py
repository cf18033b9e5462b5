"""How long a start may hold each write-ahead phase, and what a phase held longer than that means. Pure: no clock
reads, no I/O (shared/operations/write_ahead.py and start.py act on the verdicts).

A start stores its intent `prepared` (nothing sent yet), fetches its Graph token, marks it `starting` with an
ETag-guarded write just before the Excel request goes out, and stores Graph's answer as `answered`. So a phase
says what happened when its request died (a host killed in a burst of starts):

- `prepared` past PREPARED_WINDOW_SECONDS: the request was never sent, nothing was done. A retry with the same
  Idempotency-Key sends it (its own `starting` mark is the claim: of two requests only the one whose mark is
  written sends); otherwise it ends `failed` / `startNotSent` (a waiting request of a workbook lane goes back
  in line instead).
- `starting` past `sending_window`: it may have reached Graph, and nobody can tell (issue 19 will ask the
  workbook): it ends `failed` / `graphOutcomeUnknown` and is never sent again.
- a claim with no record past PREPARED_WINDOW_SECONDS: it died before its intent; a retry takes it over.

Within a window the first request may still be running: a keyed retry answers `429 requestInProgress` with the
seconds left as Retry-After.
"""

from __future__ import annotations

import math
from enum import Enum

from shared.operations.record import PREPARED, STARTING

# From the intent's write to its `starting` mark: one Graph token (cached, or one call to the identity endpoint
# or Entra). A live start slower than this loses its turn to a retry, which is safe: only one mark is written.
PREPARED_WINDOW_SECONDS = 10.0
# The Excel request itself: GRAPH_TIMEOUT for the request, once more after a 401 with a fresh token, and this
# for the fresh token; the whole exchange is cut at `send_deadline` (then its outcome is unknown).
TOKEN_REFRESH_SECONDS = 10.0
# After Graph's answer: storing it (shared/operations/write_ahead.py OUTCOME_WRITE_BACKOFF, each write with the
# SDK's own retries). A start slower than the window loses its answer to graphOutcomeUnknown.
OUTCOME_WRITE_SECONDS = 20.0


class Phase(Enum):
    NONE = "none"  # no start in progress (or `answered`: the follow-up, shared/operations/write_ahead.py)
    IN_FLIGHT = "inFlight"  # its request may still be running: wait
    NOT_SENT = "notSent"  # its request died before sending: nothing was done
    UNKNOWN = "unknown"  # its request died after (maybe) sending: the outcome is unknown


def send_deadline(graph_timeout: float) -> float:
    """The longest a start's Graph exchange may take before its outcome counts as unknown."""
    return 2 * graph_timeout + TOKEN_REFRESH_SECONDS


def sending_window(graph_timeout: float) -> float:
    """How long a live start holds `starting`: its Graph exchange, then storing the answer."""
    return send_deadline(graph_timeout) + OUTCOME_WRITE_SECONDS


def judge(phase: str | None, age: float, graph_timeout: float) -> tuple[Phase, float]:
    """A start phase held for `age` seconds (since the record's `updatedAt`): what it means, and for IN_FLIGHT
    how many seconds are left of its window."""
    if phase == PREPARED:
        left = PREPARED_WINDOW_SECONDS - age
        return (Phase.IN_FLIGHT, left) if left > 0 else (Phase.NOT_SENT, 0.0)
    if phase == STARTING:
        left = sending_window(graph_timeout) - age
        return (Phase.IN_FLIGHT, left) if left > 0 else (Phase.UNKNOWN, 0.0)
    return Phase.NONE, 0.0


def claim_left(age: float) -> float:
    """Seconds left before an Idempotency-Key claim with no record can be taken over (0: now)."""
    return max(0.0, PREPARED_WINDOW_SECONDS - age)


def retry_after(left: float) -> int:
    """Whole seconds for a 429's Retry-After: at least 1."""
    return max(1, math.ceil(left - 1e-9))
