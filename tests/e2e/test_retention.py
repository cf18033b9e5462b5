"""The data lifecycle through devhost + Azurite: the timer-triggered purge (fired through the host's admin
API, functions-manually-run-non-http.md), expiresAt on records, reusable idempotency keys, stranded records
failed with their sealed credentials erased, and poison counts in /api/health."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.data.tables.aio import TableClient as AsyncTableClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.services import AzuritePorts, bridge_environment
from shared.operations import purge
from shared.operations.record import NOT_STARTED, SUCCEEDED, Operation, iso, new_operation_id, parse_iso
from shared.operations.store import OperationStore
from shared.runtime.settings import load_settings
from shared.runtime.worker import Runtime, build_runtime

from .harness import Bridge, BridgeFactory, Emulator, new_item, wait_for

DAY = 86_400.0


@pytest.fixture(scope="module")
def life(make_bridge: BridgeFactory) -> Bridge:
    return make_bridge("life", RETENTION_DAYS="30")


def backdate(table: TableClient, partition: str, row: str, **properties: Any) -> None:
    table.update_entity({"PartitionKey": partition, "RowKey": row, **properties}, mode=UpdateMode.MERGE)


def exists(table: TableClient, partition: str, row: str) -> bool:
    try:
        table.get_entity(partition, row)
    except ResourceNotFoundError:
        return False
    return True


def run_purge(bridge: Bridge) -> None:
    response = httpx.post(f"http://127.0.0.1:{bridge.port}/admin/functions/purge_expired", json={"input": ""})
    assert response.status_code == 202, response.text


def stranded_record(bridge: Bridge) -> str:
    """An active record whose chain is gone (no message), three days old, with a sealed credential."""
    created = time.time() - 3 * DAY
    op = Operation(
        id=new_operation_id(created),
        status=NOT_STARTED,
        action="createSession",
        workbook="/me/drive/items/01STRANDED",
        operation_url=None,
        created_at=iso(created),
        updated_at=iso(created),
        base_url=f"{bridge.api}/operations",
        owner="default",
        credential_sealed="v1.sealed-token-stand-in",
    )

    async def create() -> None:
        async with AsyncTableClient.from_connection_string(
            bridge.storage.connection_string, bridge.env["OPERATIONS_TABLE"]
        ) as table:
            await OperationStore(table).create(op)

    asyncio.run(create())
    return op.id


def test_purge_deletes_what_expired_and_nothing_else(life: Bridge, emulator: Emulator) -> None:
    sync = [new_item() for _ in range(3)]
    for item in sync:
        emulator.scenario(item, mode="sync")
    body = {"workbook": f"/me/drive/items/{sync[0]}", "action": "createSession"}
    keyed = life.start(body, **{"Idempotency-Key": "retention-key-1"})
    assert keyed.status_code == 200, keyed.text
    old_keyed = keyed.json()
    assert old_keyed["status"] == "succeeded"
    # expiresAt: RETENTION_DAYS after completion
    assert parse_iso(old_keyed["expiresAt"]) - parse_iso(old_keyed["completedAt"]) == pytest.approx(30 * DAY)
    old_plain = life.start({"workbook": f"/me/drive/items/{sync[1]}", "action": "createSession"}).json()
    young = life.start({"workbook": f"/me/drive/items/{sync[2]}", "action": "createSession"}).json()
    active_item = new_item()
    emulator.scenario(active_item, runningSeconds=600)
    active = life.start({"workbook": f"/me/drive/items/{active_item}", "action": "createSession"}).json()
    stranded = stranded_record(life)

    with life.table as table:
        # two records finished 31 days ago: expired; their partitions hold a fan-out marker and a delivery row
        for record in (old_keyed, old_plain):
            backdate(
                table,
                record["id"],
                "operation",
                CompletedAt=iso(time.time() - 31 * DAY),
                ExpiresAt=iso(time.time() - DAY),
            )
            table.upsert_entity({"PartitionKey": record["id"], "RowKey": "fanout", "EventId": "e"})
            table.upsert_entity({"PartitionKey": record["id"], "RowKey": "subdelivery-x", "State": "delivered"})
        [claim] = [e for e in table.query_entities("RowKey eq 'idempotency'") if e["OperationId"] == old_keyed["id"]]
        backdate(table, claim["PartitionKey"], "idempotency", ClaimedAt=time.time() - 31 * DAY)
        # the same key still answers the old operation before the purge
        assert life.start(body, **{"Idempotency-Key": "retention-key-1"}).json()["id"] == old_keyed["id"]

        run_purge(life)
        wait_for(
            lambda: not exists(table, old_keyed["id"], "operation") and not exists(table, old_plain["id"], "operation"),
            30,
            "expired records purged",
        )
        wait_for(lambda: not exists(table, claim["PartitionKey"], "idempotency"), 30, "the expired key purged")
        for record in (old_keyed, old_plain):
            assert [e["RowKey"] for e in table.query_entities(f"PartitionKey eq '{record['id']}'")] == []
            assert life.status(record["id"]).status_code == 404
        # what has not expired is kept; the active one runs on; the stranded one is failed, credential erased
        assert life.status(young["id"]).json()["status"] == "succeeded"
        assert life.status(active["id"]).json()["status"] in ("notStarted", "running")
        failed = wait_for(
            lambda: (r := life.status(stranded).json())["status"] == "failed" and r, 30, "the stranded record failed"
        )
        assert failed["error"]["code"] == "operationStranded" and failed["expiresAt"]
        assert table.get_entity(stranded, "operation")["CredentialSealed"] == ""

    listed = {op["id"] for op in life.client.get(f"{life.api}/operations?top=100").json()["value"]}
    assert young["id"] in listed and active["id"] in listed
    assert old_keyed["id"] not in listed and old_plain["id"] not in listed

    # a purged Idempotency-Key starts a new operation
    again = life.start(body, **{"Idempotency-Key": "retention-key-1"})
    assert again.status_code == 200 and again.json()["id"] != old_keyed["id"]

    # safe to run again (twice at once, even): nothing else goes
    def runs() -> int:
        return life.service.log_path.read_text().count("Executed 'Functions.purge_expired' (Succeeded")

    done = runs()
    run_purge(life)
    run_purge(life)
    wait_for(lambda: runs() >= done + 2, 30, "two more purge runs")
    assert life.status(young["id"]).status_code == 200
    assert life.status(again.json()["id"]).status_code == 200


def test_health_counts_poison_messages(life: Bridge) -> None:
    url = f"http://127.0.0.1:{life.port}/api/health"
    before = httpx.get(url, timeout=10).json()
    assert before["status"] == "healthy"
    poison = f"{life.env['POLL_QUEUE']}-poison"
    assert set(before["poison"]) == {poison, f"{life.env['WEBHOOK_QUEUE']}-poison"}
    with QueueClient.from_connection_string(
        life.storage.connection_string, poison, message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        try:
            queue.create_queue()
        except Exception:  # noqa: S110 - it may exist from an earlier run
            pass
        queue.send_message('{"v":1,"id":"x","gen":0}')
        queue.send_message('{"v":1,"id":"y","gen":0}')
    started = datetime.now(UTC)
    after = httpx.get(url, timeout=10)
    assert (datetime.now(UTC) - started).total_seconds() < 5
    assert after.json()["poison"][poison] == before["poison"][poison] + 2


def test_two_purges_at_once_delete_each_expired_record_and_nothing_else(
    azurite: AzuritePorts, emulator: Emulator
) -> None:
    """The real host runs a timer on one instance at a time (a blob lease), but two devhosts, or a manual run
    during a scheduled one, may overlap: the purge must be safe either way."""
    env = bridge_environment(
        azurite,
        int(emulator.url.rsplit(":", 1)[1]),
        OPERATIONS_TABLE="purgetwice",
        POLL_QUEUE="purgetwice-polls",
        WEBHOOK_QUEUE="purgetwice-hooks",
    )

    async def scenario() -> None:
        rt = await build_runtime(load_settings(env))
        try:
            now = time.time()
            expired = [record_at(rt, now - 40 * DAY, completed=now - 31 * DAY) for _ in range(30)]
            young = [record_at(rt, now - 2 * DAY, completed=now - DAY) for _ in range(5)]
            for op in [*expired, *young]:
                await rt.store.create(op)
            # the same record purged by two runs that both read it before either deleted it
            first = await rt.store.get(expired[0].id)
            assert first is not None
            assert await purge.purge_operation(rt, first) and await purge.purge_operation(rt, first)
            reports = await asyncio.gather(purge.run(rt, batch=7), purge.run(rt, batch=7))
            assert sum(r.records for r in reports) >= len(expired) - 1
            for op in expired:
                assert await rt.store.get(op.id) is None
            for op in young:
                assert await rt.store.get(op.id) is not None
            again = await purge.run(rt)
            assert again.records == 0 and again.keys == 0
        finally:
            await rt.close()

    asyncio.run(scenario())


def record_at(rt: Runtime, created: float, completed: float) -> Operation:
    return Operation(
        id=new_operation_id(created),
        status=SUCCEEDED,
        action="createSession",
        workbook="/me/drive/items/01TWICE",
        operation_url=None,
        created_at=iso(created),
        updated_at=iso(completed),
        base_url="http://127.0.0.1/api/operations",
        completed_at=iso(completed),
        owner="default",
    )
