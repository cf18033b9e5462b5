"""What the operations console asks beyond the operations routes: the caller's own duration history."""

from __future__ import annotations

from typing import Any

from shared.api.identity import Caller
from shared.console.durations import summaries
from shared.runtime.worker import Runtime
from shared.schedule.history import owner_partition


async def durations(rt: Runtime, caller: Caller) -> dict[str, Any]:
    """The caller's own kinds of work (their partition only, read-all role or not: the history is per owner)."""
    if rt.history is None:
        return {"value": []}
    rows = await rt.history.owner_rows(owner_partition(caller.owner))
    return {"value": summaries(rows)}
