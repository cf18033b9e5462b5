"""List latency per owner: the table scan (`Owner eq`, the list before the index) against the owner index.

Writes N records of M owners (interleaved in time, as real traffic is) into Azurite through the store, then
times L list calls of one owner's first page each way and prints p50/p95:

    .venv/bin/python -m bench.list_latency [--records 10000] [--owners 50] [--calls 200] [--top 20]

"before" calls OperationStore.scan(owner=...), the query the list used before the index (kept for read-all
callers and for this bench); "after" calls OperationStore.list_indexed. Azurite keeps entities in memory, so
its scan is much cheaper than Table Storage's (up to 5 s per response, which may hold no match at all);
the ratio, and the number of entities each call touches, is what carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from azure.data.tables.aio import TableClient

from devhost.services import AzuritePorts, free_port, start_azurite
from shared.operations.listing import Page
from shared.operations.record import FAILED, SUCCEEDED, Operation, iso, new_operation_id
from shared.operations.store import OperationStore

WRITERS = 32


def make_record(owner: str, at: float, rng: random.Random) -> Operation:
    status = FAILED if rng.random() < 0.1 else SUCCEEDED
    return Operation(
        id=new_operation_id(at),
        status=status,
        action="createTableRow",
        workbook=f"/me/drive/items/01BENCH{rng.randrange(10**6):06d}",
        operation_url=None,
        created_at=iso(at),
        updated_at=iso(at),
        base_url="http://127.0.0.1/api/operations",
        completed_at=iso(at),
        owner=owner,
        result={"index": rng.randrange(1000), "values": [["x" * 40] * 4]},
    )


RARE = "rare-owner@contoso.example"  # 20 operations, the oldest in the table: a scan reads everything first


async def fill(
    store: OperationStore, records: int, owners: list[str], rng: random.Random, top: int
) -> tuple[float, list[Operation]]:
    start = time.time() - records  # one a second, newest last
    queue = [
        make_record(RARE if i < top else rng.choice(owners), start + i + rng.random() / 2, rng) for i in range(records)
    ]
    written = sorted(queue, key=lambda op: op.id)  # the table's order: newest first
    began = time.perf_counter()

    async def writer() -> None:
        while queue:
            await store.create(queue.pop())

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return time.perf_counter() - began, written


def scanned(written: list[Operation], owner: str, status: str | None, top: int) -> int:
    """Entities a scan examines before it has `top` matches (all of them if it never does)."""
    found = 0
    for n, op in enumerate(written, 1):
        if op.owner == owner and (status is None or op.status == status):
            found += 1
            if found == top:
                return n
    return len(written)


async def timed(calls: int, call: Callable[[], Awaitable[Page]]) -> tuple[list[float], int]:
    samples: list[float] = []
    returned = 0
    for _ in range(calls):
        began = time.perf_counter()
        page = await call()
        samples.append((time.perf_counter() - began) * 1000)
        returned = len(page.operations)
    return samples, returned


def p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def measure(storage: AzuritePorts, records: int, owners_count: int, calls: int, top: int) -> None:
    rng = random.Random(9)  # a repeatable data set
    owners = [f"owner-{n:02d}@contoso.example" for n in range(owners_count)]
    async with TableClient.from_connection_string(storage.connection_string, "benchlist") as table:
        await table.create_table()
        store = OperationStore(table)
        seconds, written = await fill(store, records, owners, rng, top)
        print(
            f"wrote {records} records of {owners_count} owners + 1 rare owner (+ their index entries) "
            f"in {seconds:.1f} s"
        )
        owner = owners[7]
        rows: list[tuple[str, Callable[[], Awaitable[Page]], str]] = [
            (
                "before (scan: Owner eq)",
                lambda: store.scan(None, top, None, owner),
                f"{scanned(written, owner, None, top)} scanned",
            ),
            ("after (owner index)", lambda: store.list_indexed(owner, None, top, None), f"{top} + {top} by id"),
            (
                "before, status=failed",
                lambda: store.scan(FAILED, top, None, owner),
                f"{scanned(written, owner, FAILED, top)} scanned",
            ),
            ("after, status=failed", lambda: store.list_indexed(owner, FAILED, top, None), f"{top} + {top} by id"),
            (
                "before, rare owner",
                lambda: store.scan(None, top, None, RARE),
                f"{scanned(written, RARE, None, top)} scanned",
            ),
            ("after, rare owner", lambda: store.list_indexed(RARE, None, top, None), f"{top} + {top} by id"),
        ]
        print(f"{calls} calls of one owner's first page (top={top}), milliseconds:")
        print(f"{'':26} {'p50':>8} {'p95':>8} {'rows':>5}  entities read")
        for label, call, cost in rows:
            await call()  # warm up the connection
            samples, returned = await timed(calls, call)
            print(f"{label:26} {p(samples, 50):8.1f} {p(samples, 95):8.1f} {returned:5d}  {cost}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-list-"))
    storage = AzuritePorts(free_port(), free_port(), free_port())
    azurite = start_azurite(storage, logs)
    try:
        asyncio.run(measure(storage, args.records, args.owners, args.calls, args.top))
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
