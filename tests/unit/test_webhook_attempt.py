"""The one webhook attempt (shared/delivery/attempt.py) for both kinds: an operation's own callback (its ledger is the
operation record) and a subscription's (its ledger is the delivery entity), under the at-least-once cases.

Over the in-process fakes (tests/unit/fakes.py): Table Storage's optimistic concurrency ("Update Entity" with
`If-Match` answers 412 when the entity changed since it was read; the stores turn that into Conflict), the Functions
host's queue rules (a message whose function raises comes back after visibilityTimeout; one that returns is
deleted), and a scripted receiver whose answers can be held in flight (`gate`). Storage queues deliver at least
once, so copies of a message are normal; a process can die between any two calls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from shared.crypto.sealing import seal
from shared.delivery import operation_webhooks as deliverer
from shared.delivery.claims import claim_lease
from shared.operations.record import WEBHOOK_DELIVERED, WEBHOOK_NONE, WEBHOOK_PENDING, Operation, iso
from shared.runtime.worker import Runtime
from shared.storage.messages import (
    DeliveryTask,
    SubscriptionAttempt,
    encode_delivery,
    encode_subscription_attempt,
)
from shared.subscriptions.record import DELIVERED, Subscription, SubscriptionDelivery
from shared.subscriptions.rules import new_subscription_id
from shared.subscriptions.store import SubscriptionStore
from tests.unit.fakes import FakeClock, Fakes, drain, fake_runtime, reply, server_error

OP_ID = "8285435199999a1b2c3d4e5"
EVENT = "event-1"
CALLBACK = "https://hooks.example.com/cb"
KINDS = ("operation", "subscription")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@dataclass
class Hook:
    """One webhook of `kind` owed for a finished operation, over the fakes; the receiver answers 200 unless told."""

    kind: str
    rt: Runtime
    f: Fakes
    subscription_id: str = ""

    @classmethod
    def make(cls, kind: str, **ledger: Any) -> Hook:
        rt, f = fake_runtime()
        now = iso(time.time())
        op = Operation(
            id=OP_ID,
            status="succeeded",
            action="createSession",
            workbook="/me/drive/items/A",
            operation_url=None,
            created_at=now,
            updated_at=now,
            base_url="https://b/api",
            completed_at=now,
            event_id=EVENT,
            webhook_state=WEBHOOK_NONE,
        )
        hook = cls(kind, rt, f)
        if kind == "operation":
            op = op.with_(callback_sealed=seal(CALLBACK, rt.settings.webhook_secrets, OP_ID), webhook_state="pending")
            run(rt.store.create(op.with_(**ledger)))
        else:
            run(rt.store.create(op))
            hook.subscription_id = new_subscription_id("default")
            store = SubscriptionStore(rt.store.table)
            sealed = seal(CALLBACK, rt.settings.webhook_secrets, hook.subscription_id)
            run(
                store.create(
                    Subscription(hook.subscription_id, "default", sealed, (), ("succeeded",), "binary", now, "")
                )
            )
            run(store.create_delivery(SubscriptionDelivery(OP_ID, hook.subscription_id, EVENT, time.time(), **ledger)))
        return hook

    def message(self, attempt: int = 1) -> str:
        if self.kind == "operation":
            return encode_delivery(DeliveryTask(OP_ID, EVENT, attempt, time.time()))
        return encode_subscription_attempt(SubscriptionAttempt(OP_ID, self.subscription_id, EVENT, attempt))

    @staticmethod
    def claimed(kind: str, attempt: int, at: float) -> dict[str, Any]:
        """A claim as a delivery leaves it on the ledger (its holder died before recording)."""
        if kind == "operation":
            return {"webhook_claimed_attempt": attempt, "webhook_last_attempt_at": iso(at)}
        return {"claimed_attempt": attempt, "last_attempt_at": iso(at)}

    def send(self, attempt: int = 1) -> None:
        """The attempt's message on the webhook queue, sent as the app sends it."""
        if self.kind == "operation":
            run(self.rt.deliveries.send(DeliveryTask(OP_ID, EVENT, attempt, time.time()), 0))
        else:
            attempt_task = SubscriptionAttempt(OP_ID, self.subscription_id, EVENT, attempt)
            run(self.rt.deliveries.send_subscription_attempt(attempt_task, 0))

    def ledger(self) -> tuple[str, int]:
        """(state, attempts recorded)."""
        if self.kind == "operation":
            op = run(self.rt.store.get(OP_ID))
            return op.webhook_state, op.webhook_attempts
        d = run(SubscriptionStore(self.rt.store.table).get_delivery(OP_ID, self.subscription_id))
        return d.state, d.attempts

    @property
    def row(self) -> str:
        return "operation" if self.kind == "operation" else "subdelivery-" + self.subscription_id

    def is_record_write(self, entity: dict[str, Any]) -> bool:
        """The write that records an attempt (not its claim) on this kind's ledger."""
        if entity.get("RowKey") != self.row:
            return False
        return "WebhookAttempts" in entity if self.kind == "operation" else entity.get("ClaimedAttempt") == ""

    def posts(self) -> list[str]:
        """The webhook-id of every POST the receiver got."""
        return [call.headers["webhook-id"] for call in self.f.webhooks.to(CALLBACK)]

    def parked(self) -> list[tuple[int, int]]:
        """(attempt, delay) of every attempt message queued."""
        return [(json.loads(text)["attempt"], delay) for text, delay in self.f.deliveries.sent]


class Gate(asyncio.Event):
    """The receiver's gate (FakeHTTP holds every answer until it is set) that also tells when a POST reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.reached.set()
        return await super().wait()


DONE = {"operation": WEBHOOK_DELIVERED, "subscription": DELIVERED}
PENDING = {"operation": WEBHOOK_PENDING, "subscription": "pending"}


@pytest.mark.parametrize("kind", KINDS)
def test_racing_copies_of_one_attempt_send_one_post(kind: str, clock: FakeClock) -> None:
    hook = Hook.make(kind)
    hook.f.webhooks.always("POST", CALLBACK, reply(200))

    async def race() -> None:
        hook.f.webhooks.gate = asyncio.Event()  # the one POST stays in flight until every copy has finished
        tasks = [asyncio.create_task(deliverer.handle_message(hook.rt, hook.message())) for _ in range(5)]
        done: set[asyncio.Task[None]] = set()
        while len(done) < 4:  # every copy but the one holding the attempt has finished
            finished, _ = await asyncio.wait(set(tasks) - done, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert finished, "copies did not finish while the attempt was in flight"
            done |= finished
        hook.f.webhooks.gate.set()
        await asyncio.gather(*tasks)

    run(race())
    assert len(hook.posts()) == 1 and hook.ledger() == (DONE[kind], 1)
    # the copies were parked until the claim's lease ends, not dropped (the holder might have died)
    assert [attempt for attempt, _ in hook.parked()] == [1, 1, 1, 1]
    assert all(delay >= claim_lease(hook.rt.settings.webhook_timeout) for _, delay in hook.parked())
    run(drain(hook.rt, clock, hook.f))  # they come back: the attempt is recorded, so they are stale
    assert len(hook.posts()) == 1 and hook.f.deliveries.messages == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_receiver_never_gets_the_next_attempt_while_one_is_in_flight(kind: str, clock: FakeClock) -> None:
    """The next attempt exists only once this one failed: while a POST waits for its answer (up to the 15 s
    timeout), nothing else is sent, however long past the first retry's backoff (5 s) it takes."""
    hook = Hook.make(kind)
    hook.f.webhooks.always("POST", CALLBACK, server_error(503))

    async def slow() -> None:
        hook.f.webhooks.gate = gate = Gate()
        first = asyncio.create_task(deliverer.handle_message(hook.rt, hook.message()))
        await gate.reached.wait()  # attempt 1's POST is in flight
        clock.advance(hook.rt.settings.webhook_timeout - 1)  # and still is, past the first retry's backoff
        others = []
        while (message := hook.f.deliveries.receive(visibility_timeout=600)) is not None:
            gate.reached.clear()
            other = asyncio.create_task(deliverer.handle_message(hook.rt, message.content))
            reached = asyncio.create_task(gate.reached.wait())
            await asyncio.wait({other, reached}, return_when=asyncio.FIRST_COMPLETED)  # done, or held POSTing
            reached.cancel()
            others.append(other)
        assert len(hook.posts()) == 1
        gate.set()
        await asyncio.gather(first, *others)

    run(slow())
    assert len(hook.posts()) == 1 and hook.ledger() == (PENDING[kind], 1)
    assert [attempt for attempt, _ in hook.parked()] == [2]  # the retry, queued once the 503 came back


@pytest.mark.parametrize("kind", KINDS)
def test_a_crash_between_the_post_and_its_record_repeats_the_attempt_with_the_same_id(
    kind: str, clock: FakeClock
) -> None:
    """The first record write fails (the bridge dies there): the host delivers the message again; the copy finds
    the claim held, comes back after its lease and sends the attempt again, same webhook-id. The retry its first
    run queued comes before attempt 1 is recorded and is dropped; the one the second run queues sends attempt 2
    once. The chain goes on to the end."""
    hook = Hook.make(kind)
    hook.f.webhooks.script("POST", CALLBACK, server_error(503), server_error(503))
    hook.f.webhooks.always("POST", CALLBACK, reply(200))
    hook.f.table.fail("update_entity", match=hook.is_record_write)
    hook.send()
    runs = run(drain(hook.rt, clock, hook.f))
    assert [r.error is not None for r in runs][:1] == [True]  # the crash: the message came back
    ids = hook.posts()
    assert len(ids) == 3 and len(set(ids)) == 1  # attempt 1 twice (the crash), attempt 2 once
    assert hook.ledger() == (DONE[kind], 2)
    assert hook.f.deliveries.messages == [] and hook.f.poison == {}


@pytest.mark.parametrize("kind", KINDS)
def test_an_attempt_whose_holder_died_is_taken_over_after_the_lease(kind: str, clock: FakeClock) -> None:
    claimed_at = clock.now
    hook = Hook.make(kind, **Hook.claimed(kind, 1, claimed_at))
    hook.f.webhooks.always("POST", CALLBACK, reply(200))
    hook.send()
    run(drain(hook.rt, clock, hook.f))
    assert len(hook.posts()) == 1 and hook.ledger() == (DONE[kind], 1)
    assert clock.now >= claimed_at + claim_lease(hook.rt.settings.webhook_timeout)  # not before the lease ended


@pytest.mark.parametrize("kind", KINDS)
def test_an_unrelated_write_between_claim_and_record_does_not_lose_the_attempt(kind: str, clock: FakeClock) -> None:
    """Another writer changes the ledger's entity while the POST is in flight (the start clearing its follow-up
    marker on the record; any merge on a delivery): the record is made again on the fresh entity, still claimed."""
    hook = Hook.make(kind)
    hook.f.webhooks.script("POST", CALLBACK, server_error(503))
    hook.f.table.before(
        "update_entity",
        lambda: hook.f.table.touch(OP_ID, hook.row, Unrelated="x"),
        match=hook.is_record_write,
    )
    run(deliverer.handle_message(hook.rt, hook.message()))
    assert hook.ledger() == (PENDING[kind], 1)
    assert [attempt for attempt, _ in hook.parked()] == [2]


def test_a_subscription_delivery_claimed_before_claims_had_a_field_goes_on(clock: FakeClock) -> None:
    """Written by the version before (its counter counted claimed attempts; it queued the next attempt before
    claiming): attempt 1 was claimed and its run died. The message it queued for attempt 2 sends attempt 2."""
    hook = Hook.make("subscription", attempts=1, last_attempt_at=iso(time.time()))
    entity = hook.f.table.row(OP_ID, hook.row)
    assert entity is not None
    del hook.f.table.entities[(OP_ID, hook.row)]["ClaimedAttempt"]  # exactly the old entity's properties
    hook.f.webhooks.always("POST", CALLBACK, reply(200))
    run(deliverer.handle_message(hook.rt, hook.message(2)))
    assert len(hook.posts()) == 1 and hook.ledger() == (DELIVERED, 2)
