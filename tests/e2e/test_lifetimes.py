"""The purge's sweeps against Azurite (issue 18, item 6): the filter on the Table service's own `Timestamp` (a
datetime parameter, `Timestamp lt datetime'...'`) is answered by Azurite as by Azure, so a duration summary, a
lane and an orphaned owner index entry that no write touched for RETENTION_DAYS are deleted, and nothing younger
is. The clock cannot be moved for Azurite, so the purge is run as of a later `now`."""

from __future__ import annotations

import asyncio
import time

from devhost.services import AzuritePorts, bridge_environment
from shared.lanes.store import LANE_ROW_KEY, lane_key
from shared.operations import purge
from shared.operations.listing import index_partition
from shared.operations.record import NOT_STARTED, Operation, iso, new_operation_id
from shared.runtime.settings import load_settings
from shared.runtime.worker import build_runtime
from shared.schedule.history import history_keys

from .harness import Emulator

DAY = 86_400.0


def test_what_no_write_touched_for_retention_days_is_swept_and_nothing_younger(
    azurite: AzuritePorts, emulator: Emulator
) -> None:
    env = bridge_environment(
        azurite,
        int(emulator.url.rsplit(":", 1)[1]),
        OPERATIONS_TABLE="sweepops",
        DURATION_HISTORY_TABLE="sweepdurations",
        POLL_QUEUE="sweep-polls",
        WEBHOOK_QUEUE="sweep-hooks",
        RETENTION_DAYS="30",
    )

    async def scenario() -> None:
        rt = await build_runtime(load_settings(env))
        assert rt.history is not None
        try:
            now = time.time()
            keys = history_keys("default", "createSession", "/me/drive/items/SWEEP")
            await rt.history.record(keys, 3.5, new_operation_id(now), now)
            lane = lane_key("/me/drive/items/SWEEP", "default")
            await rt.store.table.upsert_entity(
                {"PartitionKey": lane, "RowKey": LANE_ROW_KEY, "Holders": '[["x", 1, 0.0]]', "Waiting": "[]"}
            )
            orphan = Operation(
                id=new_operation_id(now),
                status=NOT_STARTED,
                action="createSession",
                workbook="/me/drive/items/SWEEP",
                operation_url=None,
                created_at=iso(now),
                updated_at=iso(now),
                base_url="http://b/api",
                owner="default",
            )
            await rt.store.write_index(orphan)

            today = await purge.run(rt, now)  # nothing is old yet
            assert sum(s.total for s in today.swept) == 0
            later = await purge.run(rt, now + 31 * DAY)  # as of a month on, untouched since
            assert [sum(s.durations for s in later.swept), sum(s.lanes for s in later.swept)] == [len(keys), 1]
            assert sum(s.index_entries for s in later.swept) == 1
            assert await rt.history.read(keys) == [None, None]
            left = [e async for e in rt.store.table.query_entities("PartitionKey eq @pk", parameters={"pk": lane})]
            assert left == []
            entries = rt.store.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": index_partition("default")}
            )
            assert [e async for e in entries] == []
        finally:
            await rt.close()

    asyncio.run(scenario())
