"""The fault matrix's "damaged record" cases (issue 18, item 5): one write of an operation's record is stored with a
property the app cannot decode (the proxy's `damage` action), as a bug, a manual edit or another app version
would leave it, and what follows is checked the way the storage-fault cases are.

What must hold for each case: the damage was stored (the rule fired); nothing crash-loops (no message of the
operation reached a poison queue); nothing is done twice (at most one Excel request, one terminal write, one
distinct webhook event); and the operation ends one of two ways: a later write of the same record replaced the
damaged property and it finished `succeeded` as usual, or it is isolated: its GET answers `500 recordDamaged`
naming it (never `internalError`), its chain has stopped and its webhook is not sent. The storage-fault cases
run on the same bridge at the same time: they are the "rest" that must keep working.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.e2e.harness import Bridge, Emulator, WebhookReceiver
from tests.support import wait_for

from .cases import Outcome, idempotency_partition, request_body, start_with_retries, terminal_writes
from .proxy import FaultProxy


@dataclass
class Damaged(Outcome):
    """One damaged-record case: an Outcome, plus how it ended and what reached a poison queue."""

    ending: str = ""  # "succeeded" (the damage was written over) or "isolated" (recordDamaged)
    poisoned: int = 0
    answers: list[tuple[int, str]] = field(default_factory=list)  # the final GETs: (status, problem code)

    @property
    def ok(self) -> bool:
        once = self.excel_starts <= 1 and self.terminal_writes <= 1 and self.webhook_events <= 1
        if self.ending == "succeeded":
            return once and self.excel_starts == 1 and self.webhook_events == 1 and self.poisoned == 0
        return once and self.ending == "isolated" and self.webhook_events == 0 and self.poisoned == 0


def _ending(client: httpx.Client, bridge: Bridge, operation_id: str, outcome: Damaged) -> str | None:
    response = client.get(f"{bridge.api}/operations/{operation_id}")
    code = (
        response.json().get("code", "")
        if response.headers.get("content-type", "").startswith("application/problem")
        else ""
    )
    outcome.answers.append((response.status_code, code))
    if response.status_code == 500 and code == "recordDamaged":
        return "isolated"
    if response.status_code == 200 and response.json().get("status") == "succeeded":
        return "succeeded"
    return None  # still running (202), or something that is neither (kept in answers)


def run_damaged(
    bridge: Bridge,
    proxy: FaultProxy,
    emulator: Emulator,
    receiver: WebhookReceiver,
    name: str,
    item: str,
    *,
    timeout: float = 240.0,
    quiet: float = 15.0,
    workload: str = "session",
) -> Damaged:
    """Start one operation (its damage rule already set), follow it until it ends either way, then count."""
    key = uuid.uuid4().hex
    outcome = Damaged(name, item)
    emulator.scenario(item, runningPolls=1)
    hook = receiver.new_url()
    proxy.track(item, idempotency_partition(key))
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=60) as client:
        operation_id = start_with_retries(client, bridge, request_body(workload, item, hook), key, outcome, deadline)
        outcome.operation_id = operation_id
        if operation_id is not None:
            try:
                outcome.ending = wait_for(
                    lambda: _ending(client, bridge, operation_id, outcome),
                    max(1.0, deadline - time.monotonic()),
                    f"{operation_id} to end or be isolated",
                    interval=0.5,
                )
            except AssertionError as exc:
                outcome.problem = str(exc)
            _quiet(proxy, item, quiet, deadline)
    events = Counter(d.headers.get("webhook-id") for d in receiver.for_path(hook))
    outcome.webhook_deliveries, outcome.webhook_events = sum(events.values()), len(events)
    outcome.excel_starts = len(emulator.requests(item=item, kind="start"))
    entries = proxy.log(mentioning=item)
    outcome.terminal_writes = terminal_writes(entries)
    outcome.poisoned = sum(1 for e in entries if e.service == "queue" and e.method == "POST" and "-poison/" in e.path)
    return outcome


def _quiet(proxy: FaultProxy, item: str, quiet: float, deadline: float) -> None:
    """Until no storage request about the operation for `quiet` seconds: a chain still retrying, or a message on
    its way to a poison queue (5 deliveries, 5 s apart), would show here."""

    def settled() -> bool:
        entries = proxy.log(mentioning=item)
        return bool(entries) and time.time() - entries[-1].at >= quiet

    try:
        wait_for(settled, max(quiet * 2, deadline - time.monotonic()), f"storage quiet for {item}", interval=0.5)
    except AssertionError:
        pass  # still busy at the deadline: the counts say what it did
