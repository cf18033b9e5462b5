"""One workbook, 50 rows: 50 createTableRow sent at once to one table through the bridge, with the emulator's
per-workbook contention on, once with WORKBOOK_CONCURRENCY=1 (the lane) and once with 0 (unbounded).

    .venv/bin/python -m bench.lane [--rows 50] [--row-seconds 0.5] [--contention throttle] [--json]

Each run gets a fresh Azurite, emulator and function app. The emulator runs every row operation for a fixed
`--row-seconds` and answers a write that arrives while another operation on the workbook is still running as
`--contention` says (devhost/emulator/README.md): `throttle` = 429 with Retry-After, `conflict` = 409
accessConflict, `merge` = accepted, then the operation fails with a merge conflict. Per run: the emulator's
counts of 429s and conflicts, duplicate and missing rows (the values sent against the rows in the emulator's
table: every row carries its own number), the bridge's answers to the 50 requests, how the accepted
operations ended, and the time until every accepted one had finished.

Settings are scaled like bench.real_run's (x0.1: POLL_INITIAL_DELAY_SECONDS 0.1, POLL_MAX_DELAY_SECONDS 24,
OPERATION_TIMEOUT_SECONDS 360). A bridge that does not know WORKBOOK_CONCURRENCY ignores it: both runs then
behave alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

TABLE = "Table1"
CONCURRENCIES = ("1", "0")


def row_values(n: int) -> list[Any]:
    """The values of the n-th row sent: unique per row, so the table tells which were written how often."""
    return [n, f"lane-row-{n}"]


def row_accounting(sent: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Compare the rows sent with the rows in the table: `duplicates` = extra copies of sent rows, `missing` =
    sent rows not in the table, `unexpected` = rows in the table nobody sent, `written_once` = sent rows
    present exactly once."""
    wanted = Counter(json.dumps(list(r)) for r in sent)
    have = Counter(json.dumps(list(r)) for r in rows)
    duplicates = sum(max(0, have[key] - count) for key, count in wanted.items())
    missing = sum(max(0, count - have[key]) for key, count in wanted.items())
    unexpected = sum(count for key, count in have.items() if key not in wanted)
    once = sum(1 for key, count in wanted.items() if have[key] == count)
    return {
        "sent": sum(wanted.values()),
        "in_table": sum(have.values()),
        "duplicates": duplicates,
        "missing": missing,
        "unexpected": unexpected,
        "written_once": once,
        "missing_rows": sorted(json.loads(k)[0] for k in wanted if have[k] < wanted[k])[:60],
    }


def outcome_summary(answers: Sequence[int], finished: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The bridge's answers to the start requests (HTTP status -> count) and how the accepted operations ended
    (status -> count, and the innermost error codes of the failed ones)."""
    statuses = Counter(str(op.get("status")) for op in finished.values())
    codes: Counter[str] = Counter()
    for op in finished.values():
        error = op.get("error")
        while isinstance(error, dict) and isinstance(error.get("innerError"), dict) and error["innerError"].get("code"):
            error = error["innerError"]
        if isinstance(error, dict) and error.get("code"):
            codes[str(error["code"])] += 1
    return {
        "answers": {str(k): v for k, v in sorted(Counter(answers).items())},
        "accepted": sum(1 for a in answers if a == 202),
        "operations": dict(statuses),
        "succeeded": statuses.get("succeeded", 0),
        "failed": sum(v for k, v in statuses.items() if k != "succeeded"),
        "error_codes": dict(codes),
    }


async def _send_all(api: str, workbook: str, rows: int) -> list[tuple[int, dict[str, Any]]]:
    import httpx

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=rows)) as client:

        async def one(n: int) -> tuple[int, dict[str, Any]]:
            reply = await client.post(
                f"{api}/operations",
                json={
                    "workbook": workbook,
                    "action": "createTableRow",
                    "sessionId": "lane-bench-session",
                    "parameters": {"table": TABLE, "values": [row_values(n)]},
                },
            )
            try:
                body = reply.json()
            except ValueError:
                body = {}
            return reply.status_code, body if isinstance(body, dict) else {}

        return list(await asyncio.gather(*(one(n) for n in range(rows))))


async def _wait_done(api: str, ids: Sequence[str], deadline: float) -> tuple[dict[str, dict[str, Any]], float]:
    import httpx

    done: dict[str, dict[str, Any]] = {}
    last = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        while len(done) < len(ids) and time.monotonic() < deadline:
            for op_id in [i for i in ids if i not in done]:
                reply = await client.get(f"{api}/operations/{op_id}")
                if reply.status_code == 200:
                    done[op_id] = dict(reply.json())
                    last = time.monotonic()
            if len(done) < len(ids):
                await asyncio.sleep(0.25)
    return done, last


def run_once(concurrency: str, contention: str, rows: int, row_seconds: float, deadline: float) -> dict[str, Any]:
    from bench.stack import bench_stack

    settings = {
        "WORKBOOK_CONCURRENCY": concurrency,
        "POLL_INITIAL_DELAY_SECONDS": "0.1",
        "POLL_MAX_DELAY_SECONDS": "24",
        "OPERATION_TIMEOUT_SECONDS": "360",
        "POLL_QUEUE": "lane-polls",
        "WEBHOOK_QUEUE": "lane-hooks",
        "OPERATIONS_TABLE": "laneops",
    }
    with bench_stack("bench-lane-", f"functions-lane-{concurrency}", **settings) as stack:
        item = "01LANE" + uuid.uuid4().hex[:16].upper()
        stack.admin.scenario(
            item,
            duration={"distribution": "fixed", "seconds": row_seconds},
            contention=contention,
            contentionRetryAfterSeconds=1,
        )
        began = time.monotonic()
        answers = asyncio.run(_send_all(stack.api, f"/me/drive/items/{item}", rows))
        ids = [body["id"] for status, body in answers if status == 202 and "id" in body]
        finished, last = asyncio.run(_wait_done(stack.api, ids, began + deadline))
        stats = stack.admin.stats()
        table = stack.admin.rows(item, TABLE)
    return {
        "WORKBOOK_CONCURRENCY": concurrency,
        "contention": contention,
        "graph": {
            "throttled_429": stats["contention"]["throttled"],
            "conflicts": stats["contention"]["conflicts"],
            "starts": stats["requests"].get("start", 0),
            "polls": stats["requests"].get("operation", 0),
        },
        "rows": row_accounting([row_values(n) for n in range(rows)], table),
        "bridge": outcome_summary([status for status, _ in answers], finished),
        "unfinished": len(ids) - len(finished),
        "total_seconds": round(last - began, 1),
    }


def report(results: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| WORKBOOK_CONCURRENCY | contention | Graph 429s | Graph conflicts | bridge answers | succeeded | "
        "failed | duplicate rows | missing rows | total time (s) |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        answers = ", ".join(f"{k}: {v}" for k, v in r["bridge"]["answers"].items())
        lines.append(
            f"| {r['WORKBOOK_CONCURRENCY']} | {r['contention']} | {r['graph']['throttled_429']} | "
            f"{r['graph']['conflicts']} | {answers} | {r['bridge']['succeeded']} | {r['bridge']['failed']} | "
            f"{r['rows']['duplicates']} | {r['rows']['missing']} | {r['total_seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--row-seconds", type=float, default=0.5, help="running time of each row operation")
    parser.add_argument(
        "--contention",
        default="throttle",
        help="emulator contention mode(s), comma-separated: throttle, conflict, merge",
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(CONCURRENCIES),
        help="WORKBOOK_CONCURRENCY values to run, comma-separated (0 = unbounded)",
    )
    parser.add_argument("--deadline", type=float, default=170.0, help="seconds to wait per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = [
        run_once(c, mode, args.rows, args.row_seconds, args.deadline)
        for mode in args.contention.split(",")
        for c in args.concurrency.split(",")
    ]
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
