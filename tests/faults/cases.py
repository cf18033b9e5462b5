"""One operation run through a (proxied) bridge, and the figures the fault tests check for it."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from azure.data.tables._policies import TablesRetryPolicy
from azure.storage.queue._shared.policies import ExponentialRetry

from tests.e2e.harness import Bridge, Emulator, WebhookReceiver, new_item
from tests.support import wait_for

from .proxy import Entry, FaultProxy

TERMINAL = ("succeeded", "failed", "timedOut", "canceled")
# What one failure of an app-level storage call takes: the SDK's first try and all its retries. azure-data-tables
# (azure-core RetryPolicy): `retry_status` (3) bounds retries on 5xx, `retry_connect`/`retry_read` (3) on resets;
# azure-storage-queue/-blob: ExponentialRetry(retry_total=3). Read from the SDKs, so an upgrade moves with them.
_TABLE = TablesRetryPolicy()
SDK_ATTEMPTS = {
    "table": 1 + min(_TABLE.total_retries, _TABLE.status_retries, _TABLE.connect_retries),
    "queue": 1 + ExponentialRetry().total_retries,
    "blob": 1 + ExponentialRetry().total_retries,
}
RETRYABLE = {408, 429, 500, 502, 503, 504}  # what a client (Logic Apps' default policy) retries


@dataclass
class Outcome:
    """What happened to one operation."""

    name: str
    item: str
    operation_id: str | None = None
    status: str | None = None
    result: Any = None
    excel_starts: int = 0
    terminal_writes: int = 0
    webhook_events: int = 0
    webhook_deliveries: int = 0
    client_answers: list[int] = field(default_factory=list)
    started_at: int = 0  # the proxy log's length when the POST had been answered
    settled_at: int = 0  # the proxy log's length when the operation had gone quiet (before the final GET)
    problem: str = ""

    @property
    def lost(self) -> bool:
        return self.status not in TERMINAL or self.webhook_events == 0

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and self.status == "succeeded"
            and self.excel_starts == 1
            and self.terminal_writes == 1
            and self.webhook_events == 1
            and not self.problem
        )


def idempotency_partition(key: str, owner: str = "default") -> str:
    """The partition of an Idempotency-Key's claim entity (shared/operations/start.py `_check_idempotency_key`), so a
    fault can be scoped to one case's claim before the operation id exists."""
    return "idem-" + hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()


def terminal_writes(entries: list[Entry]) -> int:
    """Table writes storage carried out that put a terminal status on the record (a merge carrying Status).
    The owner index entry (PartitionKey owner-...) mirrors the status as a list hint: it is not the record."""
    return sum(
        1
        for e in entries
        if e.service == "table"
        and e.method in ("PUT", "PATCH", "MERGE", "POST")
        and e.done
        and "PartitionKey='owner-" not in e.path
        and '"PartitionKey": "owner-' not in e.text
        and any(f'"Status": "{s}"' in e.text or f'"Status":"{s}"' in e.text for s in TERMINAL)
    )


def start_with_retries(
    client: httpx.Client, bridge: Bridge, body: dict[str, Any], key: str, outcome: Outcome, deadline: float
) -> str | None:
    """POST as a retrying client would: same Idempotency-Key, again on 408/429/5xx or a broken connection."""
    while time.monotonic() < deadline:
        try:
            response = client.post(f"{bridge.api}/operations", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            outcome.client_answers.append(0)
            outcome.problem = f"POST: {exc!r}"
            time.sleep(1)  # a client's retry interval, not a wait for a condition
            continue
        outcome.client_answers.append(response.status_code)
        if response.status_code in RETRYABLE:
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 5))
            continue
        if response.status_code not in (200, 201, 202):
            outcome.problem = f"POST answered {response.status_code}: {response.text[:200]}"
            return None
        outcome.problem = ""
        return str(response.json()["id"])
    outcome.problem = "POST never succeeded"
    return None


def values_near_limit() -> list[list[str]]:
    """One row whose values' JSON is 32,760 characters: under the request limit (shared/operations/requests.py, 32 KiB
    of JSON), while the stored result is over Table Storage's 32 K-character string property (so it goes to Blob)."""
    cells = ["x" * 8000] * 3
    overhead = len(json.dumps([[*cells, ""]]))
    return [[*cells, "y" * (32_760 - overhead)]]


WORKLOADS = ("session", "bigrow")


def request_body(workload: str, item: str, hook: str) -> dict[str, Any]:
    """session: a createSession Graph runs asynchronously (one `running` poll); bigrow: a createTableRow without
    a session, which Graph answers synchronously with a result too big for a Table property."""
    if workload == "session":
        return {"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook}
    return {
        "workbook": f"/me/drive/items/{item}",
        "action": "createTableRow",
        "callbackUrl": hook,
        "parameters": {"table": "Table 1", "values": values_near_limit()},
    }


def run_operation(
    bridge: Bridge,
    proxy: FaultProxy | None,
    emulator: Emulator,
    receiver: WebhookReceiver,
    name: str,
    *,
    item: str | None = None,
    key: str | None = None,
    timeout: float = 240.0,
    quiet: float = 6.0,
    running_polls: int = 1,
    workload: str = "session",
) -> Outcome:
    """Start one operation with a callbackUrl, follow it to the end, then count what it caused."""
    item = item or new_item()
    key = key or uuid.uuid4().hex
    outcome = Outcome(name, item)
    emulator.scenario(item, runningPolls=running_polls)
    hook = receiver.new_url()
    if proxy is not None:
        proxy.track(item, idempotency_partition(key))
    deadline = time.monotonic() + timeout
    body = request_body(workload, item, hook)
    with httpx.Client(timeout=max(timeout, 60)) as client:
        operation_id = start_with_retries(client, bridge, body, key, outcome, deadline)
        outcome.operation_id = operation_id
        outcome.started_at = len(proxy.entries) if proxy is not None else 0
        if operation_id is not None:
            # Follow the webhook, not the status endpoint: a GET reads the record too, and its reads would
            # interleave with the steps' own (the matrix counts requests per call).
            try:
                receiver.wait(hook, timeout=max(1.0, deadline - time.monotonic()))
            except AssertionError as exc:
                outcome.problem = str(exc)
            if proxy is not None:
                _quiesce(proxy, item, quiet, deadline)
            outcome.settled_at = len(proxy.entries) if proxy is not None else 0
            _status(client, bridge, operation_id, outcome)
    deliveries = receiver.for_path(hook)
    outcome.webhook_deliveries = len(deliveries)
    outcome.webhook_events = len(Counter(d.headers.get("webhook-id") for d in deliveries))
    outcome.excel_starts = len(emulator.requests(item=item, kind="start"))
    if workload == "bigrow":
        rows = len(emulator.rows(item, "Table 1"))
        outcome.excel_starts = max(outcome.excel_starts, rows)  # a row written twice is a repeated Excel write
        if outcome.status == "succeeded" and outcome.result != {"index": 0, "values": body["parameters"]["values"]}:
            outcome.problem += f" wrong result: {json.dumps(outcome.result)[:100]}"
    if proxy is not None:
        outcome.terminal_writes = terminal_writes(proxy.log(mentioning=item))
    return outcome


def _status(client: httpx.Client, bridge: Bridge, operation_id: str, outcome: Outcome) -> None:
    """The final GET, retried on 408/429/5xx as a client would (a read may hit a storage fault too)."""
    answers: list[int] = []

    def read() -> bool:
        try:
            response = client.get(f"{bridge.api}/operations/{operation_id}")
        except httpx.TransportError:
            answers.append(0)
            return False
        answers.append(response.status_code)
        if response.status_code in (200, 202):
            record = response.json()
            outcome.status, outcome.result = record.get("status"), record.get("result")
            return True
        return response.status_code not in RETRYABLE

    try:
        wait_for(read, 120, f"a GET of {operation_id} not answered 5xx", interval=1.0)
    except AssertionError:
        pass
    if answers[-1] not in (200, 202):
        outcome.problem += f" GET answered {answers}"


def _quiesce(proxy: FaultProxy, item: str, quiet: float, deadline: float) -> None:
    """Wait until no storage request about this operation was seen for `quiet` seconds (its chain and deliveries
    are over), so a late duplicate would still be counted."""

    def settled() -> bool:
        entries = proxy.log(mentioning=item)
        return bool(entries) and time.time() - entries[-1].at >= quiet

    try:
        wait_for(settled, max(quiet * 2, deadline - time.monotonic()), f"storage quiet for {item}", interval=0.5)
    except AssertionError:
        pass  # still busy at the deadline: the counts below say what it did
