"""What polling costs: storage transactions (counted on the wire) per uneventful poll and per whole operation.

Runs the real start (shared.operations.start) and poll step (shared.operations.poll_step) against Azurite and the Graph
emulator, doing the host's part (receive, then delete) itself so every storage request is seen: the operations table,
the duration history table, the poll queue and the deliveries queue (the fan-out message of the terminal event).
Two operations of one kind on one workbook: the first cold (the history is empty: its reads find nothing, its
finish inserts both entities by upsert), the second with history (its reads find them, its upserts merge a slot).

Per whole operation = the start + (polls - 1) uneventful polls + the finishing poll step, where the number of
polls for a given duration comes from the real schedule (shared.schedule.plans) at production settings: cold, and
learned from 10 earlier runs of that kind.

    .venv/bin/python -m bench.poll_cost [--polls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables.aio import TableClient
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from devhost.emulator_client import Emulator
from devhost.services import AzuritePorts, bridge_environment, free_port, start_azurite, start_emulator
from shared.lanes.store import LaneStore
from shared.operations import poll_step as poller
from shared.operations import start as operations
from shared.operations.store import OperationStore
from shared.runtime.settings import load_settings
from shared.runtime.worker import Runtime, build_runtime
from shared.schedule.history import DurationHistory
from shared.schedule.history_store import HistoryStore
from shared.schedule.learned import learned_plan
from shared.schedule.plans import COLD, Plan, Schedule
from shared.schedule.timing import Timing
from shared.storage.queues import DeliveryQueue, PollQueue


class CountingTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core ships this class untyped (Any)
    """Counts every request that reaches the wire, by service and method."""

    def __init__(self, counter: Counter[str], service: str) -> None:
        super().__init__()
        self.counter, self.service = counter, service

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.counter[f"{self.service} {request.method}"] += 1
        return await super().send(request, **kwargs)


LABELS = {
    "history GET": "history read",
    "history POST": "history insert",
    "history PUT": "history replace",
    "history PATCH": "history upsert (merge)",
    "history MERGE": "history upsert (merge)",
    "deliveries POST": "fan-out message send",
    "table POST": "table insert",
    "table GET": "table read (entity)",
    "table PATCH": "table write (merge)",
    "table PUT": "table write",
    "table MERGE": "table write (merge)",
    "queue GET": "queue receive",
    "queue POST": "queue send",
    "queue DELETE": "queue delete",
    "queue PUT": "queue update",
}


def _storage(counter: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in counter.items() if not k.startswith("graph")})


async def _one_operation(rt: Runtime, counter: Counter[str], item: str, polls: int) -> dict[str, Any]:
    """Start one operation and run its chain to the end; the storage requests of each part."""
    counter.clear()
    reply = await operations.start(
        rt, f'{{"workbook": "/me/drive/items/{item}", "action": "createSession"}}'.encode(), None, "http://bench/api"
    )
    start = Counter(counter)
    op_id = reply.operation.id
    durations: list[float] = []
    uneventful: list[Counter[str]] = []
    final: Counter[str] = Counter()
    while True:
        counter.clear()
        batch = [m async for m in rt.polls.client.receive_messages(max_messages=1, visibility_timeout=30)]
        if not batch:
            await asyncio.sleep(0.05)
            continue
        message = batch[0]
        started = time.perf_counter()
        await poller.handle_message(rt, message.content, message.dequeue_count or 1)
        durations.append(time.perf_counter() - started)
        await rt.polls.client.delete_message(message)
        snapshot = Counter(counter)
        op = await rt.store.get(op_id)  # the bench's own check, after the snapshot
        if op is None or op.terminal:
            final = snapshot
            break
        if op.status == "running" and len(durations) > 1:
            uneventful.append(snapshot)
    assert len(uneventful) >= polls // 2, "the emulator's scenario ended too early"
    return {"start": start, "uneventful": uneventful, "final": final, "durations": durations}


def _per(counters: list[Counter[str]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for c in counters:
        totals.update(c)
    return Counter({k: v / len(counters) for k, v in totals.items()}) if counters else totals


def polls_for(duration: float, plan: Plan, timing: Timing) -> int:
    """How many polls the schedule makes for an operation of this duration (the last one sees it done)."""
    return sum(1 for _ in _until_done(Schedule(plan, timing), duration))


def _until_done(schedule: Schedule, duration: float) -> Any:
    for offset in schedule.offsets():
        yield offset
        if offset >= duration:
            return


PRODUCTION = Timing(1.0, 240.0, 3600.0, 8)


def _history(duration: float, runs: int = 10) -> DurationHistory:
    history = DurationHistory()
    for i in range(runs):  # a kind whose runs vary by +-10 %
        history = history.add(duration * (0.9 + 0.2 * i / (runs - 1)), f"past-{i}")
    return history


async def measure(polls: int, storage: AzuritePorts, emulator_url: str, item: str, concurrency: int = 1) -> None:
    env = bridge_environment(
        storage,
        int(emulator_url.rsplit(":", 1)[1]),
        POLL_QUEUE="bench-polls",
        WEBHOOK_QUEUE="bench-deliveries",
        OPERATIONS_TABLE="benchops",
        DURATION_HISTORY_TABLE="benchdurations",
        POLL_INITIAL_DELAY_SECONDS="0",
        POLL_MAX_DELAY_SECONDS="1",
        WORKBOOK_CONCURRENCY=str(concurrency),
    )
    os.environ.update(env)
    settings = load_settings()
    counter: Counter[str] = Counter()
    rt = await build_runtime(settings)
    conn = storage.connection_string
    await rt.store.close()
    await rt.polls.close()
    await rt.deliveries.close()
    if rt.history is not None:
        await rt.history.close()
    rt.store = OperationStore(
        TableClient.from_connection_string(
            conn, settings.operations_table, transport=CountingTransport(counter, "table")
        )
    )
    rt.history = HistoryStore(
        TableClient.from_connection_string(
            conn, settings.duration_history_table, transport=CountingTransport(counter, "history")
        )
    )
    rt.polls = PollQueue(
        QueueClient.from_connection_string(
            conn,
            settings.poll_queue,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
            transport=CountingTransport(counter, "queue"),
        )
    )
    rt.deliveries = DeliveryQueue(
        QueueClient.from_connection_string(
            conn,
            settings.webhook_queue,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
            transport=CountingTransport(counter, "deliveries"),
        )
    )
    if rt.lanes is not None:  # the workbook's lane entity (shared throttle, lease): read on every poll
        rt.lanes = LaneStore(rt.store.table)
    cold = await _one_operation(rt, counter, item, polls)
    warm = await _one_operation(rt, counter, item, polls)
    await rt.close()

    poll = _per(cold["uneventful"] + warm["uneventful"])
    print(
        f"WORKBOOK_CONCURRENCY={concurrency}: uneventful polls measured: "
        f"{len(cold['uneventful']) + len(warm['uneventful'])}"
    )
    for key, value in sorted(poll.items()):
        print(f"  {LABELS.get(key, key):<24} {value:.2f} per poll")
    per_poll = sum(poll.values())
    writes = sum(v for k, v in poll.items() if k.startswith("table") and k != "table GET")
    print(f"storage transactions per uneventful poll: {per_poll:.2f} (table writes: {writes:.2f})")
    durations = cold["durations"] + warm["durations"]
    print(
        f"poll handler time: median {statistics.median(durations) * 1000:.1f} ms, "
        f"max {max(durations) * 1000:.1f} ms (Azurite + emulator on loopback)"
    )
    print()
    for name, run in (("cold (empty history)", cold), ("with history", warm)):
        start, final = run["start"], run["final"]
        print(
            f"{name}: the start {sum(start.values())} transactions "
            f"({', '.join(f'{LABELS.get(k, k)} {v}' for k, v in sorted(start.items()))})"
        )
        print(
            f"{name}: the finishing poll step {sum(final.values())} transactions "
            f"({', '.join(f'{LABELS.get(k, k)} {v}' for k, v in sorted(final.items()))})"
        )
        history = sum(v for k, v in start.items() if k.startswith("history")) + sum(
            v for k, v in final.items() if k.startswith("history")
        )
        print(f"{name}: of which the duration history {history} (reads at the start, one upsert per key at the end)")
    fixed = sum(warm["start"].values()) + sum(warm["final"].values())
    print()
    print("per whole operation at production settings (start + (polls - 1) uneventful polls + the finishing step):")
    print(f"  {'duration':>9} {'cold polls':>10} {'cold tx':>8} {'learned polls':>13} {'learned tx':>10}")
    for duration in (5.0, 30.0, 120.0, 600.0):
        cold_polls = polls_for(duration, COLD, PRODUCTION)
        plan = learned_plan(_history(duration), PRODUCTION)
        learned_polls = polls_for(duration, plan, PRODUCTION)
        cold_tx = sum(cold["start"].values()) + sum(cold["final"].values()) + (cold_polls - 1) * per_poll
        learned_tx = fixed + (learned_polls - 1) * per_poll
        print(f"  {duration:>8.0f}s {cold_polls:>10} {cold_tx:>8.1f} {learned_polls:>13} {learned_tx:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument("--workbook-concurrency", type=int, default=1, help="0: no lane (no lane entity read)")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    storage = AzuritePorts(free_port(), free_port(), free_port())
    azurite = start_azurite(storage, logs)
    emulator = start_emulator(free_port(), logs)
    try:
        item = "01BENCH" + uuid.uuid4().hex[:12].upper()
        with httpx.Client(timeout=30) as client:
            Emulator(emulator.url, client).scenario(item, runningPolls=args.polls + 2)
        asyncio.run(measure(args.polls, storage, emulator.url, item, args.workbook_concurrency))
    finally:
        emulator.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
