"""The real run: polls per operation and detection lag through devhost + Azurite + the emulator, side by side
with the simulation of the same operations (same durations, same timing settings, same policy).

    .venv/bin/python -m bench.real_run [--ops 200] [--scale 0.1] [--spread 20] [--policy auto] [--json]
    .venv/bin/python -m bench.real_run --prior 64          # after a history of unrelated runs (issue 21)

Workload: the cold mix scaled. Each operation is a createSession on its own workbook (so per-workbook
contention never applies), whose running time the emulator draws log-uniformly from [1, 600] s x scale, seeded
per workbook. The bridge runs with POLL_INITIAL_DELAY_SECONDS, POLL_MAX_DELAY_SECONDS and
OPERATION_TIMEOUT_SECONDS scaled by the same factor (1, 240 and 3600 s in production). Queue visibility is
whole seconds and so is every poll gap (the schedules round up), so scaling shrinks the durations and the cap
but not the 1 s granularity: at x0.1 the shortest gaps are as coarse, relative to the durations, as 10 s gaps
would be in production. The simulation keeps the same rounding (it runs the real `shared.graph.lro.decide`), so
the comparison stays like for like; only the absolute figures differ from bench.schedule's production ones.

From the emulator's recorder, per operation: polls to Graph (GET operation), completion time (created +
drawn duration) and the first poll that saw it terminal; detection lag = that poll's time - completion time.

The host adds latency the virtual clock does not have: a due message waits for the queue listener's next
receive (host.json maxPollingInterval, 2 s) and the poll step runs before the GET. It is measured per poll as
the time from the planned visibility (the previous poll + the delay the policy chose then, or the start + the
first delay) to the Graph poll, and the simulation is run twice: raw, and with the measured mean dispatch
latency added to every gap. The 15 % verdict uses the latter: the latency is a property of the host, measured
from the poll times alone (not fitted to the lag), and without it the comparison would measure the host's
queue polling rather than whether the schedule the bridge runs is the one simulated.

Policy (`--policy`): `doubling` is the schedule before issue 10 (bench/doubling.py); `cold` is `shared.schedule.plans`'s
cold schedule; `plan` reads each operation's stored plan from its record (a `poll_plan`/`PollPlan` property,
`shared.schedule.plans.Plan.decode`; missing = cold), which is what a poller driven by `shared.schedule.plans` runs
(with a learned history, too). `auto` (default): `plan` if shared/operations/poll_step.py uses shared.schedule.plans,
else `doubling`.

`--prior N` first writes N runs of another workbook of the same owner and action into the history (median
`--prior-median` x scale, lognormal sigma 0.2), through the bridge's own history store, as if the owner had run
that work before: every operation of the run then starts with that pool and no run of its own. The analysis
(bench/real_run_sim.py) is unchanged: it simulates each operation's stored plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.real_run_sim import ROOT, SEED, analyse, detect_policy, report, scaled_timing

UNRELATED = "01REALRUNUNRELATED"  # the workbook the prior history's runs were on (never polled in the run)


# --- the run -------------------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    ops: int = 200
    scale: float = 0.1
    spread: float = 20.0
    policy: str = "auto"
    seed: int = SEED
    deadline: float = 240.0
    concurrency: int = 8
    prior: int = 0  # unrelated runs of the same owner + action in the history before the run
    prior_median: float = 200.0  # their median duration at production scale (x scale in the run)
    prior_sigma: float = 0.2


async def _seed_history(connection: str, table_name: str, config: RunConfig) -> dict[str, Any]:
    """Unrelated runs of the same owner (devhost's DEFAULT_OWNER, "default") and action, on another workbook, written
    with the bridge's own history store as its finishes would have written them."""
    from azure.data.tables.aio import TableClient

    from shared.schedule.history import history_keys
    from shared.schedule.history_store import HistoryStore

    store = HistoryStore(TableClient.from_connection_string(connection, table_name))
    await store.ensure_table()
    rng = random.Random(config.seed - 1)
    median = config.prior_median * config.scale
    now = time.time()
    keys = history_keys("default", "createSession", f"/me/drive/items/{UNRELATED}")
    for n in range(config.prior):
        seconds = median * math.exp(rng.gauss(0.0, config.prior_sigma))
        await store.record(keys, seconds, f"unrelated-{n}", now - 60.0 * (config.prior - n))
    await store.close()
    return {"runs": config.prior, "median_seconds": round(median, 2), "sigma": config.prior_sigma}


def _entities(connection: str, table_name: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection, table_name) as table:
        return {op_id: dict(table.get_entity(op_id, "operation")) for op_id in ids}


async def _start_all(api: str, items: Sequence[str], spread: float, concurrency: int) -> list[dict[str, Any]]:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    began = time.monotonic()

    async def one(client: httpx.AsyncClient, n: int, item: str) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, began + n * spread / max(len(items), 1) - time.monotonic()))
        async with gate:
            reply = await client.post(
                f"{api}/operations", json={"workbook": f"/me/drive/items/{item}", "action": "createSession"}
            )
        if reply.status_code != 202:
            raise RuntimeError(f"start {n} answered {reply.status_code}: {reply.text[:300]}")
        return dict(reply.json())

    async with httpx.AsyncClient(timeout=30) as client:
        return list(await asyncio.gather(*(one(client, n, item) for n, item in enumerate(items))))


async def _wait_done(api: str, ids: Sequence[str], deadline: float) -> dict[str, dict[str, Any]]:
    import httpx

    done: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(done)} operations still running at the deadline")
            for op_id in [i for i in ids if i not in done]:
                reply = await client.get(f"{api}/operations/{op_id}")
                if reply.status_code == 200:
                    done[op_id] = dict(reply.json())
            if len(done) < len(ids):
                await asyncio.sleep(1.0)
    return done


def run(config: RunConfig) -> dict[str, Any]:
    from bench.stack import bench_stack
    from shared.operations.record import parse_iso

    policy = config.policy
    if policy == "auto":
        policy = detect_policy((ROOT / "shared" / "operations" / "poll_step.py").read_text())
    timing = scaled_timing(config.scale)
    low, high = 1.0 * config.scale, 600.0 * config.scale
    settings = {
        "POLL_INITIAL_DELAY_SECONDS": f"{timing.initial:g}",
        "POLL_MAX_DELAY_SECONDS": f"{timing.maximum:g}",
        "OPERATION_TIMEOUT_SECONDS": f"{timing.timeout:g}",
        "POLL_QUEUE": "realrun-polls",
        "WEBHOOK_QUEUE": "realrun-hooks",
        "OPERATIONS_TABLE": "realrunops",
        "DURATION_HISTORY_TABLE": "realrundurations",
    }
    with bench_stack("bench-real-run-", "functions-real-run", **settings) as stack:
        prior = (
            asyncio.run(_seed_history(stack.storage.connection_string, "realrundurations", config))
            if config.prior
            else None
        )
        items = [f"01REALRUN{n:04d}{uuid.uuid4().hex[:8].upper()}" for n in range(config.ops)]
        for n, item in enumerate(items):
            stack.admin.scenario(
                item, duration={"distribution": "logUniform", "min": low, "max": high, "seed": config.seed + n}
            )
        began = time.monotonic()
        started = asyncio.run(_start_all(stack.api, items, config.spread, config.concurrency))
        finished = asyncio.run(_wait_done(stack.api, [s["id"] for s in started], began + config.deadline))
        wall = time.monotonic() - began
        emu_ops = {op["item"]: op for op in stack.admin.operations()}
        polls_by_op: dict[str, list[dict[str, Any]]] = {}
        for record in stack.admin.requests(kind="operation"):
            polls_by_op.setdefault(record["operationId"], []).append(record)
        entities = _entities(stack.storage.connection_string, "realrunops", [s["id"] for s in started])

    ops = []
    for item, start in zip(items, started, strict=True):
        status = finished[start["id"]]
        op = emu_ops[item]
        entity = entities[start["id"]]
        records = polls_by_op.get(op["id"], [])
        ops.append(
            {
                "status": status["status"],
                "createdAt": parse_iso(status["createdAt"]),
                "graphCreatedAt": op["createdAt"],
                "durationSeconds": op["durationSeconds"],
                "completedAt": op["completedAt"],
                "firstTerminalPollAt": op["firstTerminalPollAt"],
                "plan": next((str(v) for k, v in entity.items() if k.replace("_", "").lower() == "pollplan"), None),
                "polls": [[r["time"], r["phase"]] for r in records],
            }
        )
    return {
        "policy": policy,
        "operations": config.ops,
        "scale": config.scale,
        "spread": config.spread,
        "wall_seconds": round(wall, 1),
        "prior": prior,
        "ops": ops,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--scale", type=float, default=0.1, help="durations and timing settings x this")
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which the starts are spread")
    parser.add_argument("--policy", choices=("auto", "doubling", "cold", "plan"), default="auto")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--prior", type=int, default=0, help="first write this many unrelated runs of the owner into the history"
    )
    parser.add_argument("--prior-median", type=float, default=200.0, help="their median at production scale (s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the verdict is FAIL")
    parser.add_argument("--save", type=Path, help="also write what the run collected here (JSON)")
    parser.add_argument("--load", type=Path, help="no run: recompute the figures from a file written by --save")
    args = parser.parse_args(argv)
    if args.load:
        raw = json.loads(args.load.read_text())
    else:
        config = RunConfig(ops=args.ops, scale=args.scale, spread=args.spread, policy=args.policy, seed=args.seed)
        config.prior, config.prior_median = args.prior, args.prior_median
        raw = run(config)
    if args.save:
        args.save.write_text(json.dumps(raw))
    result = analyse(raw)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 1 if args.strict and not result["agreement"]["with_latency"]["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
