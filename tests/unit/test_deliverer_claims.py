"""One POST per webhook attempt when copies of its queue message race: shared.delivery.operation_webhooks (issue 9).

Over the in-process fakes (tests/unit/fakes.py): the real store over a table that enforces Table Storage's
optimistic concurrency ("Update Entity": with `If-Match: <etag>` the service answers 412 Precondition Failed
when the entity changed since it was read; shared.operations.store turns that into Conflict), and the real signer and
sender over a scripted receiver whose answers can be held in flight. Storage queues deliver at least once, so
copies are normal.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from shared.crypto.sealing import seal
from shared.delivery import operation_webhooks as deliverer
from shared.delivery.claims import claim_lease
from shared.operations.record import WEBHOOK_DELIVERED, WEBHOOK_PENDING, Operation, iso
from shared.storage.messages import DeliveryTask, encode_delivery
from tests.unit.fakes import FakeClock, Fakes, fake_runtime, reply

OP_ID = "8285435199999a1b2c3d4e5"
CALLBACK = "https://hooks.example.com/cb"


def finished(**changes: Any) -> Operation:
    """A finished operation whose webhook is due (a record value only; nothing stored)."""
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


def runtime(**changes: Any) -> tuple[Any, Fakes]:
    """A runtime over the fakes holding one finished operation whose webhook is due; the receiver answers 200."""
    rt, f = fake_runtime()
    op = finished(callback_sealed=seal(CALLBACK, rt.settings.webhook_secrets, OP_ID)).with_(**changes)
    asyncio.run(rt.store.create(op))
    f.webhooks.always("POST", CALLBACK, reply(200))
    return rt, f


def stored(rt: Any) -> Operation:
    op = asyncio.run(rt.store.get(OP_ID))
    assert op is not None
    return op


def parked(f: Fakes) -> list[tuple[int, int]]:
    """(attempt, delay) of every webhook message queued."""
    return [(json.loads(text)["attempt"], delay) for text, delay in f.deliveries.sent]


MESSAGE = encode_delivery(DeliveryTask(OP_ID, "event-1", 1, time.time()))


def test_five_racing_copies_of_one_attempt_send_one_post(clock: FakeClock) -> None:
    rt, f = runtime()

    async def race() -> None:
        f.webhooks.gate = asyncio.Event()  # the one POST stays in flight until every copy has finished
        tasks = [asyncio.create_task(deliverer.handle_message(rt, MESSAGE)) for _ in range(5)]
        done: set[asyncio.Task[None]] = set()
        while len(done) < 4:  # every copy but the one holding the attempt has finished
            finished_now, _ = await asyncio.wait(set(tasks) - done, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert finished_now, "copies did not finish while the attempt was in flight"
            done |= finished_now
        f.webhooks.gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(race())
    assert len(f.webhooks.calls) == 1
    op = stored(rt)
    assert op.webhook_state == WEBHOOK_DELIVERED and op.webhook_attempts == 1
    assert op.webhook_claimed_attempt is None
    # the four copies were parked until the claim's lease ends (not dropped: the holder might have died)
    assert len(parked(f)) == 4
    assert all(attempt == 1 and delay >= claim_lease(15.0) for attempt, delay in parked(f))

    async def parked_copies_come_back() -> None:
        for text, _ in list(f.deliveries.sent):
            await deliverer.handle_message(rt, text)

    asyncio.run(parked_copies_come_back())
    assert len(f.webhooks.calls) == 1  # the attempt was recorded: every copy is stale now


def test_a_copy_takes_over_an_attempt_whose_holder_died(clock: FakeClock) -> None:
    lease = claim_lease(15.0)
    rt, f = runtime(webhook_claimed_attempt=1, webhook_last_attempt_at=iso(time.time() - lease - 1))
    asyncio.run(deliverer.handle_message(rt, MESSAGE))
    assert len(f.webhooks.calls) == 1 and stored(rt).webhook_state == WEBHOOK_DELIVERED


def test_a_copy_does_not_take_over_a_live_claim(clock: FakeClock) -> None:
    rt, f = runtime(webhook_claimed_attempt=1, webhook_last_attempt_at=iso(time.time() - 1))
    asyncio.run(deliverer.handle_message(rt, MESSAGE))
    assert f.webhooks.calls == [] and stored(rt).webhook_state == WEBHOOK_PENDING
    [(attempt, delay)] = parked(f)
    assert attempt == 1 and 1 < delay <= claim_lease(15.0) + 1
