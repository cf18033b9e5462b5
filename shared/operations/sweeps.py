"""The retention purge's sweeps of what carries no expiry of its own: a duration-history summary no finish has
merged into for RETENTION_DAYS, a lane entity untouched as long (its leases ran out long ago, its members ended
or were retired), and an owner index entry as old whose record is gone (a crash between the entry's write and
the record's). Each is deleted only if still untouched (shared/storage/aged.py); see docs/design.md, "Data
lifecycle", for every kind the bridge writes and how long it lives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.lanes.store import LANE_PREFIX
from shared.operations.listing import INDEX_PREFIX
from shared.operations.record import DamagedRecord
from shared.runtime.worker import Runtime
from shared.storage.aged import delete_unchanged, untouched

log = logging.getLogger(__name__)


@dataclass
class Swept:
    durations: int = 0
    lanes: int = 0
    index_entries: int = 0

    @property
    def total(self) -> int:
        return self.durations + self.lanes + self.index_entries


async def sweep(rt: Runtime, now: float, batch: int) -> Swept:
    """One round: at most `batch` of each kind. Storage failures raise (the next hourly run goes on)."""
    before = now - rt.store.retention_seconds
    swept = Swept()
    if rt.history is not None:
        for aged in await untouched(rt.history.table, before, batch):
            swept.durations += await delete_unchanged(rt.history.table, aged)
    table = rt.store.table
    for aged in await untouched(table, before, batch, LANE_PREFIX):
        swept.lanes += await delete_unchanged(table, aged)
    for aged in await untouched(table, before, batch, INDEX_PREFIX):
        if not await _recorded(rt, aged.row):
            swept.index_entries += await delete_unchanged(table, aged)
    if swept.total:
        log.info(
            "purge: %s duration summaries, %s lanes and %s orphaned index entries untouched for %s days deleted",
            swept.durations,
            swept.lanes,
            swept.index_entries,
            rt.settings.retention_days,
        )
    return swept


async def _recorded(rt: Runtime, operation_id: str) -> bool:
    """Whether the entry's record is still there (a damaged one is: the entry goes when the record does)."""
    try:
        return await rt.store.get(operation_id, read="purge") is not None
    except DamagedRecord:
        return True
