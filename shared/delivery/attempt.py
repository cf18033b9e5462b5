"""One webhook attempt, as operation webhooks and subscription deliveries both make it: the retry policy they share."""

from __future__ import annotations

from shared.delivery.policy import RetryPolicy
from shared.runtime.worker import Runtime


def retry_policy(rt: Runtime) -> RetryPolicy:
    """The deployment's webhook retry policy (operation webhooks and subscription deliveries alike)."""
    return RetryPolicy(rt.settings.webhook_retry_initial_delay, rt.settings.webhook_retry_window)
