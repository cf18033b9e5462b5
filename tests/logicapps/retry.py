"""Logic Apps retry policies (pure decisions: whether to retry, how long to wait).

Source: MicrosoftDocs/azure-docs `articles/logic-apps/error-exception-handling.md`:
- "If the trigger or action's original request times out or fails, resulting in a 408, 429, or 5xx response,
  the retry policy specifies that the trigger or action resend the request per policy settings."
- "Default: ... an exponential interval policy that sends up to 4 retries at exponentially increasing
  intervals. These intervals scale by 7.5 seconds but are capped between 5 and 45 seconds."
- "None: Don't resend the request."; "Fixed Interval: This policy waits the specified interval before sending
  the next request."; exponential: "waits a random interval, which is selected from an exponentially growing
  range": retry n is uniform in [max((2^(n-2)) * interval, minimum), min(2^(n-1) * interval, maximum)]
  (retry 1: [max(0, minimum), min(interval, maximum)]); defaults minimum PT5S, maximum P1D.
- logic-apps-workflow-actions-triggers.md: retry "for intermittent failures, which have the 408, 429, and 5XX
  status code, and any connectivity exceptions".
- connectors-native-http.md: "To specify the number of seconds between retry attempts, you can add the
  `Retry-After` header to the HTTP action response."
A 409 or any other 4xx is not retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tests.logicapps.content import iso_duration_seconds


def is_retryable(status: int | None) -> bool:
    """None means no answer (a connection error or a timed-out request)."""
    return status is None or status in (408, 429) or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    kind: str  # "default" | "none" | "fixed" | "exponential"
    count: int
    interval: float
    minimum: float
    maximum: float

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any]) -> RetryPolicy:
        spec = inputs.get("retryPolicy")
        if not spec:
            return DEFAULT
        kind = str(spec.get("type", "default")).lower()
        if kind == "default":
            return DEFAULT
        if kind == "none":
            return cls("none", 0, 0.0, 0.0, 0.0)
        if kind not in ("fixed", "exponential"):
            raise ValueError(f"unknown retryPolicy type {spec.get('type')!r}")
        count = int(spec.get("count", 4))
        interval = iso_duration_seconds(str(spec.get("interval", "PT7.5S")))
        minimum = iso_duration_seconds(str(spec.get("minimumInterval", "PT5S")))
        maximum = iso_duration_seconds(str(spec.get("maximumInterval", "P1D")))
        return cls(kind, count, interval, minimum, maximum)

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Seconds to wait before retry `retry_number` (1-based), before any Retry-After override."""
        if self.kind == "fixed":
            return self.interval
        low = self.minimum if retry_number == 1 else max(self.interval * 2 ** (retry_number - 2), self.minimum)
        high = min(self.interval * 2 ** (retry_number - 1), self.maximum)
        return rng.uniform(min(low, high), max(low, high))


DEFAULT = RetryPolicy("default", 4, 7.5, 5.0, 45.0)
