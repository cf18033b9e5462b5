"""One POST per webhook attempt when copies of its queue message race: shared.deliverer (issue 9).

The store double models Table Storage's optimistic concurrency as the docs describe it ("Update Entity":
with `If-Match: <etag>` the service answers 412 Precondition Failed when the entity changed since it was
read; shared.store turns that into Conflict). Storage queues deliver at least once, so copies are normal.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from shared import deliverer
from shared.queue import DeliveryTask, encode_delivery
from shared.records import WEBHOOK_DELIVERED, WEBHOOK_PENDING, Operation, iso
from shared.redelivery import claim_lease
from shared.store import Conflict
from shared.webhooks import DeliveryOutcome

OP_ID = "8285435199999a1b2c3d4e5"


@dataclass
class EtagStore:
    op: Operation
    version: int = 1

    def __post_init__(self) -> None:
        self.op = self.op.with_(etag="1")

    async def get(self, operation_id: str) -> Operation | None:
        await asyncio.sleep(0)  # a real read yields to other deliveries
        return self.op if operation_id == self.op.id else None

    async def update(self, op: Operation, changed: set[str]) -> Operation:
        await asyncio.sleep(0)
        if op.etag != self.op.etag:
            raise Conflict(op.id)  # 412 Precondition Failed
        self.version += 1
        merged = self.op.with_(**{name: getattr(op, name) for name in changed}, etag=str(self.version))
        self.op = merged
        return merged


@dataclass
class Queue:
    sent: list[tuple[DeliveryTask, int]] = field(default_factory=list)

    async def send(self, task: DeliveryTask, delay: int = 0) -> None:
        self.sent.append((task, delay))


def runtime(op: Operation) -> Any:
    settings = SimpleNamespace(webhook_timeout=15.0, webhook_retry_initial_delay=1.0, webhook_retry_window=30.0)
    return SimpleNamespace(store=EtagStore(op), deliveries=Queue(), settings=settings)


def finished(**changes: Any) -> Operation:
    now = iso(time.time())
    return Operation(
        id=OP_ID,
        status="succeeded",
        action="createSession",
        workbook="/me/drive/items/A",
        operation_url=None,
        created_at=now,
        updated_at=now,
        base_url="https://b/api",
        completed_at=now,
        event_id="event-1",
        callback_sealed="sealed",
        webhook_state=WEBHOOK_PENDING,
    ).with_(**changes)


@pytest.fixture
def posts(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replaces the POST itself (shared.webhooks.deliver, after the SSRF checks): counts, and can be held."""
    state: dict[str, Any] = {"count": 0}

    async def attempt(rt: Any, op: Operation) -> DeliveryOutcome:
        state["count"] += 1
        await state["gate"].wait()
        return DeliveryOutcome(200, None)

    monkeypatch.setattr(deliverer, "_attempt", attempt)
    return state


MESSAGE = encode_delivery(DeliveryTask(OP_ID, "event-1", 1, time.time()))


def test_five_racing_copies_of_one_attempt_send_one_post(posts: dict[str, Any]) -> None:
    rt = runtime(finished())

    async def race() -> None:
        posts["gate"] = asyncio.Event()
        tasks = [asyncio.create_task(deliverer.handle_message(rt, MESSAGE)) for _ in range(5)]
        done: set[asyncio.Task[None]] = set()
        while len(done) < 4:  # every copy but the one holding the attempt has finished
            finished_now, _ = await asyncio.wait(set(tasks) - done, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert finished_now, "copies did not finish while the attempt was in flight"
            done |= finished_now
        posts["gate"].set()
        await asyncio.gather(*tasks)

    asyncio.run(race())
    assert posts["count"] == 1
    assert rt.store.op.webhook_state == WEBHOOK_DELIVERED and rt.store.op.webhook_attempts == 1
    assert rt.store.op.webhook_claimed_attempt is None
    # the four copies were parked until the claim's lease ends (not dropped: the holder might have died)
    assert len(rt.deliveries.sent) == 4
    assert all(task.attempt == 1 and delay >= claim_lease(15.0) for task, delay in rt.deliveries.sent)

    async def parked_copies_come_back() -> None:
        for task, _ in rt.deliveries.sent:
            await deliverer.handle_message(rt, encode_delivery(task))

    asyncio.run(parked_copies_come_back())
    assert posts["count"] == 1  # the attempt was recorded: every copy is stale now


def test_a_copy_takes_over_an_attempt_whose_holder_died(posts: dict[str, Any]) -> None:
    lease = claim_lease(15.0)
    rt = runtime(finished(webhook_claimed_attempt=1, webhook_last_attempt_at=iso(time.time() - lease - 1)))

    async def copy() -> None:
        posts["gate"] = asyncio.Event()
        posts["gate"].set()
        await deliverer.handle_message(rt, MESSAGE)

    asyncio.run(copy())
    assert posts["count"] == 1 and rt.store.op.webhook_state == WEBHOOK_DELIVERED


def test_a_copy_does_not_take_over_a_live_claim(posts: dict[str, Any]) -> None:
    rt = runtime(finished(webhook_claimed_attempt=1, webhook_last_attempt_at=iso(time.time() - 1)))

    async def copy() -> None:
        posts["gate"] = asyncio.Event()
        posts["gate"].set()
        await deliverer.handle_message(rt, MESSAGE)

    asyncio.run(copy())
    assert posts["count"] == 0 and rt.store.op.webhook_state == WEBHOOK_PENDING
    [(task, delay)] = rt.deliveries.sent
    assert task.attempt == 1 and 1 < delay <= claim_lease(15.0) + 1
