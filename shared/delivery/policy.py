"""What to do after a webhook attempt, and when to try again. Pure: no clock reads, no I/O.

Retries back off exponentially (x4 per attempt, +-20 % jitter: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min,
then gaps capped at a quarter of the window), until the next attempt would fall outside the retry
window (WEBHOOK_RETRY_WINDOW_SECONDS from the first attempt, 24 h by default). Then the event is
dead-lettered: kept on the record, visible, and replayable with the redeliver endpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shared.schedule.clock import whole_seconds

HONOURS_RETRY_AFTER = frozenset({429, 502, 503, 504})
CLIENT_ERROR_ATTEMPTS = 3


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 5.0
    window: float = 86_400.0
    client_error_attempts: int = CLIENT_ERROR_ATTEMPTS


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    delay: int


@dataclass(frozen=True)
class GiveUp:
    reason: str


Verdict = Delivered | Retry | GiveUp


def jitter(webhook_id: str, attempt: int) -> random.Random:
    """The jitter of one attempt's backoff: seeded by the webhook and the attempt, so every delivery of the same
    attempt (a copy, a take-over after a crash) plans the same retry, and different webhooks spread out."""
    # bandit B311 (random): retry jitter, not a secret
    return random.Random(f"{webhook_id}/{attempt}")  # nosec B311


def backoff(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Delay after the attempt-th failed attempt (1-based)."""
    base = policy.initial * float(4 ** max(attempt - 1, 0))
    capped = min(base, max(policy.window / 4, policy.initial))
    jitter: float = (rng or random).uniform(0.8, 1.2)
    return max(1.0, capped * jitter)


def decide(
    *,
    status: int | None,
    retry_after: float | None,
    error: str | None,
    refused: bool,
    attempt: int,
    elapsed: float,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> Verdict:
    """`attempt` is the attempt just made (1-based); `elapsed` is seconds since the first attempt."""
    if status is not None and 200 <= status < 300:
        return Delivered()
    if refused:
        return GiveUp(f"callback refused: {error}")
    if status == 410:
        return GiveUp("the receiver answered 410 Gone: deliveries for this operation stopped")
    described = f"the receiver answered {status}" if status is not None else (error or "no answer")
    if status is not None and 300 <= status < 500 and status not in (408, 429):
        if attempt >= policy.client_error_attempts:
            return GiveUp(f"{described} {attempt} times; giving up")
    delay = backoff(attempt, policy, rng)
    if status in HONOURS_RETRY_AFTER and retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay > policy.window:
        return GiveUp(f"{described}; the retry window of {policy.window:g} s is used up")
    return Retry(max(1, whole_seconds(delay)))  # the queue's whole seconds, rounded as the poll step does
