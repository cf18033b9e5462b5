"""What one uneventful poll costs: storage transactions (counted on the wire) and handler time.

Runs the real poll step (shared.poller) against Azurite and the Graph emulator, doing the host's part
(receive, then delete) itself so every storage request is seen:

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

from devhost.services import AzuritePorts, bridge_environment, free_port, start_azurite, start_emulator
from shared import operations, poller
from shared.lane_store import LaneStore
from shared.queue import PollQueue
from shared.runtime import build_runtime
from shared.settings import load_settings
from shared.store import OperationStore


class CountingTransport(AioHttpTransport):
    """Counts every request that reaches the wire, by service and method."""

    def __init__(self, counter: Counter[str], service: str) -> None:
        super().__init__()
        self.counter, self.service = counter, service

    async def send(self, request: Any, **kwargs: Any) -> Any:
        self.counter[f"{self.service} {request.method}"] += 1
        return await super().send(request, **kwargs)


LABELS = {"table GET": "table read (entity)", "table PATCH": "table write (merge)", "table PUT": "table write",
          "table MERGE": "table write (merge)", "queue GET": "queue receive", "queue POST": "queue send",
          "queue DELETE": "queue delete", "queue PUT": "queue update"}


async def measure(polls: int, storage: AzuritePorts, emulator_url: str, item: str, concurrency: int = 1) -> None:
    env = bridge_environment(storage, int(emulator_url.rsplit(":", 1)[1]), POLL_QUEUE="bench-polls",
                             OPERATIONS_TABLE="benchops", POLL_INITIAL_DELAY_SECONDS="0",
                             POLL_MAX_DELAY_SECONDS="1", WORKBOOK_CONCURRENCY=str(concurrency))
    os.environ.update(env)
    settings = load_settings()
    counter: Counter[str] = Counter()
    rt = await build_runtime(settings)
    conn = storage.connection_string
    await rt.store.close()
    await rt.polls.close()
    rt.store = OperationStore(TableClient.from_connection_string(
        conn, settings.operations_table, transport=CountingTransport(counter, "table")))
    rt.polls = PollQueue(QueueClient.from_connection_string(
        conn, settings.poll_queue, message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(), transport=CountingTransport(counter, "queue")))
    if rt.lanes is not None:  # the workbook's lane entity (shared throttle, lease): read on every poll
        rt.lanes = LaneStore(rt.store.table)
    reply = await operations.start(rt, f'{{"workbook": "/me/drive/items/{item}", "action": "createSession"}}'
                                   .encode(), None, "http://bench/api")
    op_id = reply.operation.id
    durations: list[float] = []
    per_poll: list[Counter[str]] = []
    while len(per_poll) < polls:
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
        if op and op.status == "running" and len(durations) > 1:
            per_poll.append(snapshot)
    await rt.close()
    totals: Counter[str] = Counter()
    for c in per_poll:
        totals.update(c)
    print(f"WORKBOOK_CONCURRENCY={concurrency}: uneventful polls measured: {len(per_poll)}")
    for key, value in sorted(totals.items()):
        print(f"  {LABELS.get(key, key):<24} {value / len(per_poll):.2f} per poll")
    total = sum(totals.values()) / len(per_poll)
    writes = sum(v for k, v in totals.items() if k.startswith("table") and k != "table GET")
    print(f"storage transactions per uneventful poll: {total:.2f} (table writes: {writes / len(per_poll):.2f})")
    print(f"poll handler time: median {statistics.median(durations) * 1000:.1f} ms, "
          f"max {max(durations) * 1000:.1f} ms (Azurite + emulator on loopback)")


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
        httpx.put(f"{emulator.url}/_emulator/scenarios/{item}",
                  json={"runningPolls": args.polls + 2}).raise_for_status()
        asyncio.run(measure(args.polls, storage, emulator.url, item, args.workbook_concurrency))
    finally:
        emulator.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
