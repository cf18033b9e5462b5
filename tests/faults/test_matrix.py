"""The fault matrix: every storage call of the start, poll and delivery steps, failed 1, 2 and 3 times in a row.

The calls are discovered from the proxy's log of a normal run (one operation, no faults), so a new storage call
in any step becomes a case by itself. "A failure" of a call is one failure *as the app sees it*: the SDK's first
try and all its retries answered with Azure's 503 ServerBusy (SDK_ATTEMPTS faulted requests in a row), since
fewer would be absorbed by the SDK's retry policy and test nothing of ours.

Each case is one operation (its own workbook item, Idempotency-Key and callbackUrl); its faults are scoped to
that operation (the item, the claim's partition, and the operation id the proxy learns from the record's
create), so all cases run at once on one bridge. `make test` runs a representative subset (one failure of each
call); `make faults` (FAULTS_FULL=1) runs every (step, call, failures) case and, with FAULTS_ACTIONS, other
actions (`reset`, `lose`).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.e2e.harness import Bridge, Emulator, WebhookReceiver, new_item

from .cases import SDK_ATTEMPTS, WORKLOADS, Outcome, run_operation, terminal_writes
from .conftest import ProxiedBridgeFactory
from .damage import Damaged, run_damaged
from .proxy import Entry, FaultProxy, record_write

FULL = os.environ.get("FAULTS_FULL") == "1"
ACTIONS = os.environ.get("FAULTS_ACTIONS", "fail").split(",")
FAILURES = (1, 2, 3) if FULL else (1,)
SKIPPED_CALLS = ("queue GET polls messages", "queue GET hooks messages")  # the host's batched receives: not
# scoped to one operation (a fault there hits every case); the probes (test_probes.py) cover them


@dataclass(frozen=True)
class Case:
    step: str
    call: str  # the proxy's call label
    occurrence: int  # which request with this label (0-based, over the whole run) is failed
    failures: int
    action: str

    @property
    def name(self) -> str:
        return f"{self.step}: {self.call} #{self.occurrence + 1} x{self.failures} {self.action}"

    @property
    def service(self) -> str:
        return self.call.split(" ", 1)[0]


def discover(proxy: FaultProxy, entries: list[Entry], start_end: int) -> list[tuple[str, str, int]]:
    """(step, call label, occurrence) of each storage request a normal run made for its operation.

    start: the requests made while the POST was being answered; poll: the chain's requests up to the terminal
    write and the webhook message queued after it (shared/operations/poll_step.py `finish`); delivery: the requests on
    the webhook queue, the table and blobs after that (shared/delivery/operation_webhooks.py,
    shared/delivery/fanout.py); the poll queue's stay poll."""
    calls: list[tuple[str, str, int]] = []
    seen: Counter[str] = Counter()
    terminal_written = delivering = False
    for entry in entries:
        label = proxy.label(entry)
        occurrence = seen[label]
        seen[label] += 1
        if entry.seq < start_end:
            step = "start"
        elif delivering and (entry.service in ("table", "blob") or " hooks " in label):
            step = "delivery"
        else:
            step = "poll"
        if terminal_writes([entry]):
            terminal_written = True
        elif terminal_written and label == "queue POST hooks messages":
            delivering = True
        if label not in SKIPPED_CALLS:
            calls.append((step, label, occurrence))
    return calls


def test_fault_matrix(make_proxied_bridge: ProxiedBridgeFactory, emulator: Emulator, receiver: WebhookReceiver) -> None:
    """Both workloads, each on its own proxied bridge; all their cases at once."""
    runs: list[tuple[str, Bridge, FaultProxy, Case]] = []
    for workload in WORKLOADS:
        bridge, proxy = make_proxied_bridge(f"matrix-{workload}", POLL_MAX_DELAY_SECONDS="1")
        # Two fault-free runs; only the calls both made are cases. Some calls depend on timing (a fan-out message
        # that meets a record not yet terminal waits and is queued again; under load such a call appears in one run
        # and not the next), and a case whose call was never made tests nothing.
        seen: list[list[tuple[str, str, int]]] = []
        for attempt in range(2):
            normal = run_operation(bridge, proxy, emulator, receiver, f"normal {attempt}", quiet=8, workload=workload)
            assert normal.ok, normal
            entries = [e for e in proxy.log(mentioning=normal.item) if e.seq < normal.settled_at]
            seen.append(discover(proxy, entries, normal.started_at))
        calls = [call for call in seen[0] if call in seen[1]]
        print(f"\n{workload}: left out, made in one fault-free run only:", sorted(set(seen[0]) ^ set(seen[1])))
        steps = Counter(step for step, _, _ in calls)
        assert steps["start"] >= 3 and steps["delivery"] >= 2, calls  # claim, create, send; read, record, delete
        assert workload == "bigrow" or steps["poll"] >= 3, calls  # read, update, send (a synchronous answer: none)
        print(f"\n{workload}: discovered", *calls, sep="\n  ")
        runs += [
            (workload, bridge, proxy, Case(step, call, occurrence, failures, action))
            for step, call, occurrence in calls
            for failures in FAILURES
            for action in ACTIONS
        ]

    def run(job: tuple[str, Bridge, FaultProxy, Case]) -> Outcome:
        workload, bridge, proxy, case = job
        item = new_item()
        times = case.failures * SDK_ATTEMPTS[case.service] if case.action != "lose" else case.failures
        proxy.track(item)
        proxy.add_rule(
            match=item,
            call=case.call,
            skip=case.occurrence,
            times=times,
            action=case.action,
            code="ServerBusy",
            name=case.name,
        )
        return run_operation(
            bridge,
            proxy,
            emulator,
            receiver,
            f"{workload} {case.name}",
            item=item,
            timeout=420,
            quiet=30,
            workload=workload,
        )

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        outcomes = list(pool.map(run, runs))

    fired = [next(r.fired for r in proxy.rules if r.name == case.name) for _, _, proxy, case in runs]
    rows = [
        f"{o.name:<68} fired={n:>2} status={o.status} excel={o.excel_starts} terminal={o.terminal_writes} "
        f"events={o.webhook_events} answers={_answers(o.client_answers)} {o.problem}"
        for o, n in zip(outcomes, fired, strict=True)
    ]
    figures = (
        f"cases={len(outcomes)} lost={sum(o.lost for o in outcomes)} "
        f"wrong_result={sum(not o.lost and (o.status != 'succeeded' or bool(o.problem)) for o in outcomes)} "
        f"duplicate_excel={sum(o.excel_starts > 1 for o in outcomes)} "
        f"duplicate_terminal={sum(o.terminal_writes > 1 for o in outcomes)} "
        f"duplicate_events={sum(o.webhook_events > 1 for o in outcomes)}"
    )
    print("\n".join(["", figures, *rows]))
    # Every case really failed its call (else the case tested nothing).
    assert all(fired), [o.name for o, n in zip(outcomes, fired, strict=True) if not n]
    bad = [row for row, o in zip(rows, outcomes, strict=True) if not o.ok]
    assert not bad, figures + "\n" + "\n".join(bad)


def test_a_damaged_record(
    make_proxied_bridge: ProxiedBridgeFactory, emulator: Emulator, receiver: WebhookReceiver
) -> None:
    """Next to the storage faults: each write of the operation's record, in turn, stored damaged (tests/faults/
    damage.py says what must hold). All cases at once on one bridge, with a normal operation beside them."""
    bridge, proxy = make_proxied_bridge("matrix-damage", POLL_MAX_DELAY_SECONDS="1")
    normal = run_operation(bridge, proxy, emulator, receiver, "normal", quiet=8)
    assert normal.ok, normal
    entries = [e for e in proxy.log(mentioning=normal.item) if e.seq < normal.settled_at]
    calls = discover(proxy, entries, normal.started_at)
    made = [e for e in entries if proxy.label(e) not in SKIPPED_CALLS]  # the entries discover() named, in order
    writes = [call for call, entry in zip(calls, made, strict=True) if record_write(entry)]
    assert len({step for step, _, _ in writes}) >= 2, writes  # the start's and the poll step's writes at least
    print("\ndamage: record writes", *writes, sep="\n  ")

    def run(case: tuple[str, str, int]) -> Damaged:
        step, call, occurrence = case
        item = new_item()
        rule = f"{step}: {call} #{occurrence + 1} damage"
        proxy.track(item)
        proxy.add_rule(match=item, call=call, skip=occurrence, times=1, action="damage", name=rule)
        return run_damaged(bridge, proxy, emulator, receiver, rule, item)

    with ThreadPoolExecutor(max_workers=len(writes) + 1) as pool:
        beside = pool.submit(run_operation, bridge, proxy, emulator, receiver, "beside", quiet=8)
        outcomes = list(pool.map(run, writes))
    fired = [next(r.fired for r in proxy.rules if r.name == o.name) for o in outcomes]
    rows = [
        f"{o.name:<60} fired={n} ending={o.ending or '-'} excel={o.excel_starts} terminal={o.terminal_writes} "
        f"events={o.webhook_events} poisoned={o.poisoned} gets={o.answers[-3:]} {o.problem}"
        for o, n in zip(outcomes, fired, strict=True)
    ]
    print(
        "\n".join(
            ["", f"damaged cases={len(outcomes)} isolated={sum(o.ending == 'isolated' for o in outcomes)}", *rows]
        )
    )
    assert all(fired), rows  # every case really stored a damaged record
    assert all(o.ok for o in outcomes), "\n".join(r for r, o in zip(rows, outcomes, strict=True) if not o.ok)
    assert beside.result().ok, beside.result()  # the rest keep working


def _answers(codes: list[int]) -> str:
    """The client's answers, runs collapsed: [503, 429x48, 201]."""
    out: list[str] = []
    for code in codes:
        if out and out[-1].split("x")[0] == str(code):
            head, _, count = out[-1].partition("x")
            out[-1] = f"{head}x{int(count or 1) + 1}"
        else:
            out.append(str(code))
    return "[" + ", ".join(out) + "]"


pytestmark = pytest.mark.timeout(1800)
