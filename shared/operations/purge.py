"""The retention purge (a timer function): delete what has expired, fail what is stranded.

Bounded (PURGE_BATCH entities per kind per round, PURGE_ROUNDS rounds per run) and idempotent: every step
reads before it deletes, deletes children before the record (a crash leaves an expired record that the next
run finishes), deletes the record only if unchanged since read (ETag), and treats "already gone" as done,
so two runs at once, or one run twice, delete each thing once and nothing else. Active records are never
deleted: the queries ask for terminal ones, and retention.is_expired checks again before each delete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from shared.lanes import slots as lane_slots
from shared.operations.damaged import retire
from shared.operations.finish import Ending, finish, guarded
from shared.operations.record import FAILED, ROW_KEY, DamagedRecord, Operation
from shared.operations.retention import DELETE, RETIRE, STRANDED_AFTER_SECONDS, damaged_fate, is_expired, is_stranded
from shared.operations.store import IDEMPOTENCY_ROW_KEY
from shared.operations.sweeps import Swept, sweep
from shared.runtime.worker import Runtime

log = logging.getLogger(__name__)

PURGE_BATCH = 100
PURGE_ROUNDS = 20
PURGE_SCHEDULE = "0 17 * * * *"  # NCRONTAB: hourly, at minute 17 (off the hour, when other jobs run)


@dataclass
class PurgeReport:
    records: int = 0
    rows: int = 0
    keys: int = 0
    stranded: int = 0
    skipped: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # records met that could not be read (deleted, retired or kept)
    retired: int = 0  # damaged active records ended `failed` (recordDamaged)
    swept: list[Swept] = field(default_factory=list)  # per round: durations, lanes, orphaned index entries

    @property
    def total(self) -> int:
        return self.records + self.keys + self.stranded + self.retired + sum(s.total for s in self.swept)


async def run(
    rt: Runtime, now: float | None = None, batch: int = PURGE_BATCH, rounds: int = PURGE_ROUNDS
) -> PurgeReport:
    now = time.time() if now is None else now
    report = PurgeReport()
    for _ in range(rounds):
        before = report.total
        await _fail_stranded(rt, now, batch, report)
        await _purge_records(rt, now, batch, report)
        await _purge_keys(rt, now, batch, report)
        report.swept.append(await sweep(rt, now, batch))  # what carries no expiry of its own (sweeps.py)
        if report.total - before < batch:
            break  # nothing more (or less than a batch) this run
    log.info(
        "purge: %s records (%s rows), %s idempotency keys deleted; %s stranded operations failed; "
        "%s damaged records met (%s retired)",
        report.records,
        report.rows,
        report.keys,
        report.stranded,
        len(report.damaged),
        report.retired,
    )
    return report


async def _fail_stranded(rt: Runtime, now: float, batch: int, report: PurgeReport) -> None:
    """An active record long past its deadline lost its chain: fail it visibly through the finish use case (its
    webhook, fan-out, metric and lane slot, its sealed credential erased), as the poller's finish would. One that
    moved meanwhile was not stranded after all: skipped."""
    created_before = now - rt.timing.timeout - STRANDED_AFTER_SECONDS
    damaged: list[DamagedRecord] = []
    for op in await rt.store.stale_active_records(created_before, batch, damaged):
        if not is_stranded(op, rt.timing.timeout, now):
            continue
        error = {
            "code": "operationStranded",
            "message": "The operation was still active long after its deadline with nothing polling it.",
        }
        if await finish(rt, op, Ending(FAILED, error=error), now, guarded(rt), generation=op.generation + 1):
            report.stranded += 1
            log.warning("operation %s was stranded; failed by the purge", op.id)
    await _damaged(rt, damaged, now, report)


async def _purge_records(rt: Runtime, now: float, batch: int, report: PurgeReport) -> None:
    damaged: list[DamagedRecord] = []
    for op in await rt.store.expired_records(now, batch, damaged):
        if not is_expired(op, rt.store.retention_seconds, now):
            report.skipped.append(op.id)
            continue
        await purge_operation(rt, op, report)
    await _damaged(rt, damaged, now, report)


async def _damaged(rt: Runtime, found: list[DamagedRecord], now: float, report: PurgeReport) -> None:
    """Records a query met that cannot be read (already reported by the store): one never stops the run. By the
    rules for readable ones (retention.damaged_fate), an expired one is deleted with everything kept for it, a
    stranded one is ended `failed` / recordDamaged (so it expires in turn) and its lane slot freed; others stay."""
    for damaged in found:
        if damaged.operation_id not in report.damaged:
            report.damaged.append(damaged.operation_id)
        fate = damaged_fate(damaged.raw, rt.store.retention_seconds, rt.timing.timeout, now)
        if fate == DELETE:
            await _delete_operation(rt, damaged.operation_id, damaged.owner or "", damaged.etag, report)
        elif fate == RETIRE:
            error = {
                "code": "recordDamaged",
                "message": f"The stored record could not be read (its {damaged.prop} property) and nothing was "
                "polling it; the retention purge ended it. Check the workbook.",
            }
            if await retire(rt.store.table, damaged, now, rt.store.retention_seconds, error):
                report.retired += 1
                log.warning("operation %s: damaged and stranded; ended as failed by the purge", damaged.operation_id)
                await lane_slots.free_damaged(rt, damaged.lane, damaged.operation_id)


async def purge_operation(rt: Runtime, op: Operation, report: PurgeReport | None = None) -> bool:
    """Delete one expired operation: its index entry, its partition's other rows (fan-out marker,
    subscription deliveries), its result blobs, then the record itself if unchanged. True once the record is
    gone; a crash part way leaves the record, so the next run repeats the (idempotent) deletes."""
    return await _delete_operation(rt, op.id, op.owner or "", op.etag, report)


async def _delete_operation(
    rt: Runtime, operation_id: str, owner: str, etag: str | None, report: PurgeReport | None
) -> bool:
    await rt.store.delete_index(owner, operation_id)
    rows = [row for row in await rt.store.partition_rows(operation_id) if row != ROW_KEY]
    for row in rows:
        await rt.store.delete_row(operation_id, row)
    if rt.store.results is not None:  # big results' blobs go before the record that points to them
        await rt.store.results.delete_operation(operation_id)
    if not await rt.store.delete_row(operation_id, ROW_KEY, etag):
        return False  # changed since read (a redelivery?): the next run looks again
    if report is not None:
        report.records += 1
        report.rows += len(rows) + 1
    return True


async def _purge_keys(rt: Runtime, now: float, batch: int, report: PurgeReport) -> None:
    """Idempotency keys claimed before the retention window whose operation is gone (purged, or never
    stored): deleted, so the key can start a new operation."""
    claimed_before = now - rt.store.retention_seconds
    async for partition, operation_id in rt.store.old_idempotency_claims(claimed_before, batch):
        if operation_id and await _kept(rt, operation_id):
            continue  # its record is still kept (a long operation, or not expired yet)
        if await rt.store.delete_row(partition, IDEMPOTENCY_ROW_KEY):
            report.keys += 1


async def _kept(rt: Runtime, operation_id: str) -> bool:
    """Whether an operation's record is still there; a damaged one is (the key goes when the record does)."""
    try:
        return await rt.store.get(operation_id, read="purge") is not None
    except DamagedRecord:
        return True
