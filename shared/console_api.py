"""What the operations console asks beyond the operations routes: the caller's own duration history."""

from __future__ import annotations

from typing import Any

from .duration_history import owner_partition
from .durations import summaries
from .identity import Caller
from .runtime import Runtime


async def durations(rt: Runtime, caller: Caller) -> dict[str, Any]:
    """The caller's own kinds of work (their partition only, read-all role or not: the history is per owner)."""
    if rt.history is None:
        return {"value": []}
    rows = await rt.history.owner_rows(owner_partition(caller.owner))
    return {"value": summaries(rows)}
