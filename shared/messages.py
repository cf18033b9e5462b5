"""The poll message's content: what rides in the queue from poll to poll. Pure: no I/O, no imports.

The decisions (shared/polling.py) read and return it; the queue adapter (shared/queue.py) encodes and decodes
it, so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # a Storage queue message becomes visible at most 7 days after it is sent
MAX_REASON_LENGTH = 200  # the last transient reason rides in every poll message: keep it small


@dataclass(frozen=True)
class PollState:
    """What the queue message carries from poll to poll (so uneventful polls write no table entity)."""

    operation_id: str
    generation: int
    polls: int = 0
    transient_failures: int = 0
    last_transient: str = ""  # why the latest transient answer failed (while transient_failures > 0)
