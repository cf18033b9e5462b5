"""The poll schedule's settings as one value: made by the runtime from the settings, read by the decisions."""

from __future__ import annotations

from dataclasses import dataclass

MAX_OPERATION_TIMEOUT_SECONDS = 7 * 24 * 3600.0  # OPERATION_TIMEOUT_SECONDS at most: an operation lives a week


@dataclass(frozen=True)
class Timing:
    initial: float  # POLL_INITIAL_DELAY_SECONDS: no poll earlier than this
    maximum: float  # POLL_MAX_DELAY_SECONDS: never longer between polls (Graph's guidance: 240 s)
    timeout: float  # OPERATION_TIMEOUT_SECONDS: the operation's deadline
    max_transient_failures: int  # MAX_TRANSIENT_FAILURES in a row before it is given up
