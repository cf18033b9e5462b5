"""The duration history under a finishing burst (issue 21): many operations of one owner + action finishing at
once, each adding its duration the way the poll step does (shared.schedule.learning.learn), against Azurite.

    .venv/bin/python -m bench.history_burst [--rate 50] [--seconds 60] [--json]
    .venv/bin/python -m bench.history_burst --tree <a checkout of an older commit>   # the same, on that code

Each completion is a succeeded operation of owner `burst`, action createSession, on its own workbook, so its own
kind's key is touched once and the owner + action pool by every completion: the hot entity. Completions are
started on a fixed timetable (`rate` per second, each in its own task, never waiting for the ones before), as
finishing poll steps on many workers would run them.

Measured, on the wire (a counting transport under the Table client): every storage request per completion; the
completions whose duration was dropped or failed (the log lines learn() writes: "dropped from the history" for
the ETag merge, "could not add" for any storage error); how long learn() took (p50/p95); and what the pool
entity holds at the end. `--tree` puts another checkout's shared/ first on the import path, so the same bench
measures the code from before this change (its learn() has the same signature).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Caught(logging.Handler):
    """Counts learn()'s warnings: a duration dropped after conflicts, or a write that failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.dropped = 0
        self.failed = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.dropped += "dropped from the history" in message
        self.failed += "could not add" in message


async def burst(connection: str, rate: float, seconds: float) -> dict[str, Any]:
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.data.tables.aio import TableClient

    from shared.operations.record import Operation, iso
    from shared.schedule.history import decode, history_keys
    from shared.schedule.history_store import HistoryStore
    from shared.schedule.learning import learn
    from shared.schedule.timing import Timing

    counter: Counter[str] = Counter()

    class Counting(AioHttpTransport):  # type: ignore[misc]  # azure-core ships this class untyped
        async def send(self, request: Any, **kwargs: Any) -> Any:
            counter[request.method] += 1
            return await super().send(request, **kwargs)

    caught = Caught()
    logging.getLogger().addHandler(caught)
    table = TableClient.from_connection_string(connection, "burstdurations", transport=Counting())
    store = HistoryStore(table)
    await store.ensure_table()
    counter.clear()
    timing = Timing(1.0, 240.0, 3600.0, 8)
    began = time.time()
    count = int(rate * seconds)
    took: list[float] = []

    async def one(n: int) -> None:
        await asyncio.sleep(max(0.0, began + n / rate - time.time()))
        done = time.time()
        op = Operation(
            id=f"burst{n:018d}",
            status="succeeded",
            action="createSession",
            workbook=f"/me/drive/items/BURST{n:06d}",
            operation_url="https://graph.microsoft.com/v1.0/op",
            created_at=iso(done - 30.0 - (n % 60)),
            updated_at=iso(done),
            completed_at=iso(done),
            base_url="http://bench/api",
            owner="burst",
        )
        started = time.perf_counter()
        await learn(store, timing, op, "burst")
        took.append(time.perf_counter() - started)

    await asyncio.gather(*(one(n) for n in range(count)))
    wall = time.time() - began
    counted = dict(counter)  # the bench's own reads below are not the completions'
    pool_key = history_keys("burst", "createSession", None)[0]
    pool = (await store.read([pool_key]))[0]
    raw = dict(await table.get_entity(*pool_key))
    await store.close()
    logging.getLogger().removeHandler(caught)
    transactions = sum(counted.values())
    return {
        "completions": count,
        "rate_per_second": rate,
        "wall_seconds": round(wall, 1),
        "storage_transactions": counted,
        "transactions_per_completion": round(transactions / count, 2),
        "dropped": caught.dropped,
        "failed": caught.failed,
        "learn_ms_p50": round(statistics.median(took) * 1000, 1),
        "learn_ms_p95": round(sorted(took)[int(0.95 * (len(took) - 1))] * 1000, 1),
        "pool_sample": pool.size if pool is not None else 0,
        "pool_count_property": raw.get("Count"),
        "pool_format": raw.get("Version"),
        "decoded_again": decode(raw).size,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="completions per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tree", type=Path, help="measure this checkout's shared/ instead of this one's")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from devhost.services import AzuritePorts, free_port, start_azurite  # this checkout's Azurite, either way

    if args.tree:
        sys.path.insert(0, str(args.tree.resolve()))

    logs = Path(tempfile.mkdtemp(prefix="bench-history-"))
    storage = AzuritePorts(free_port(), free_port(), free_port())
    azurite = start_azurite(storage, logs)
    try:
        result = asyncio.run(burst(storage.connection_string, args.rate, args.seconds))
    finally:
        azurite.stop()
    result["code"] = "--tree" if args.tree else "this checkout"
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['completions']} completions of one owner + action at {args.rate:g}/s "
        f"(took {result['wall_seconds']} s), code: {result['code']}"
    )
    print(
        f"storage transactions per completion: {result['transactions_per_completion']} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result['storage_transactions'].items()))})"
    )
    print(f"durations dropped after conflicts: {result['dropped']}; writes failed: {result['failed']}")
    print(f"learn() p50 {result['learn_ms_p50']} ms, p95 {result['learn_ms_p95']} ms")
    print(
        f"the owner + action pool holds {result['pool_sample']} runs (format version {result['pool_format']}, "
        f"Count property {result['pool_count_property']})"
    )


if __name__ == "__main__":
    main()
