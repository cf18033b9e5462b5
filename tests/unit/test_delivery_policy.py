"""When a webhook is retried, given up or done."""

from __future__ import annotations

import random

import pytest

from shared.delivery.policy import Delivered, GiveUp, Retry, RetryPolicy, backoff, decide

POLICY = RetryPolicy(initial=5, window=86_400)


def verdict(
    status: int | None,
    attempt: int = 1,
    elapsed: float = 0,
    retry_after: float | None = None,
    error: str | None = None,
    refused: bool = False,
    policy: RetryPolicy = POLICY,
):
    return decide(
        status=status,
        retry_after=retry_after,
        error=error,
        refused=refused,
        attempt=attempt,
        elapsed=elapsed,
        policy=policy,
        rng=random.Random(7),
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert verdict(status) == Delivered()


def test_410_stops_at_once() -> None:
    result = verdict(410)
    assert isinstance(result, GiveUp) and "410" in result.reason


@pytest.mark.parametrize("status", [301, 302, 307, 308, 400, 401, 403, 404, 422])
def test_redirects_and_client_errors_are_retried_a_few_times(status: int) -> None:
    assert isinstance(verdict(status, attempt=1), Retry)
    assert isinstance(verdict(status, attempt=2), Retry)
    given_up = verdict(status, attempt=3)
    assert isinstance(given_up, GiveUp) and str(status) in given_up.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, None])
def test_server_errors_and_timeouts_retry_until_the_window(status: int | None) -> None:
    assert isinstance(verdict(status, attempt=6), Retry)
    late = verdict(status, attempt=6, elapsed=86_000)
    assert isinstance(late, GiveUp) and "window" in late.reason


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_is_honoured(status: int) -> None:
    result = verdict(status, retry_after=120.5)
    assert isinstance(result, Retry) and result.delay >= 121


def test_retry_after_is_ignored_for_500() -> None:
    result = verdict(500, retry_after=3600)
    assert isinstance(result, Retry) and result.delay < 60


def test_retry_after_beyond_the_window_gives_up() -> None:
    assert isinstance(verdict(503, retry_after=90_000), GiveUp)


def test_refused_targets_are_not_retried() -> None:
    result = verdict(None, error="x.example resolves to 10.0.0.1, a private address", refused=True)
    assert isinstance(result, GiveUp) and "private" in result.reason


def test_backoff_grows_by_four_with_jitter_and_caps() -> None:
    rng = random.Random(1)
    for attempt, base in [(1, 5), (2, 20), (3, 80), (4, 320), (5, 1280)]:
        assert 0.8 * base <= backoff(attempt, POLICY, rng) <= 1.2 * base
    assert backoff(20, POLICY, rng) <= 1.2 * 86_400 / 4


def test_a_whole_schedule_fits_the_window() -> None:
    elapsed, attempts = 0.0, 0
    while True:
        attempts += 1
        result = verdict(503, attempt=attempts, elapsed=elapsed)
        if isinstance(result, GiveUp):
            break
        assert isinstance(result, Retry)
        elapsed += result.delay
    assert elapsed <= 86_400 and 8 <= attempts <= 14


def test_retry_delays_round_like_the_poll_step() -> None:
    """One rounding rule (shared.schedule.clock.whole_seconds): up to whole seconds, at most the queue's 7-day
    visibility limit (azure-functions-facts: `send_message(visibility_timeout=0..604800)`)."""
    from shared.schedule.clock import whole_seconds
    from shared.storage.messages import MAX_VISIBILITY_SECONDS

    policy = RetryPolicy(window=30 * 86_400.0)
    for attempt, seed in [(1, 1), (2, 2), (4, 3)]:
        result = decide(
            status=503,
            retry_after=None,
            error=None,
            refused=False,
            attempt=attempt,
            elapsed=0.0,
            policy=policy,
            rng=random.Random(seed),
        )
        assert result == Retry(max(1, whole_seconds(backoff(attempt, policy, random.Random(seed)))))
    late = decide(
        status=429, retry_after=10 * 86_400.0, error=None, refused=False, attempt=1, elapsed=0.0, policy=policy
    )
    assert late == Retry(MAX_VISIBILITY_SECONDS)
