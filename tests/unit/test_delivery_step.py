"""Every branch of the delivery step (shared/delivery/operation_webhooks.py) over the in-process fakes
(tests/unit/fakes.py): the real store over an ETag-enforcing table, the real webhook signer and sender over a scripted
receiver. Each test reads the record, the webhook queue and the POSTs the receiver got."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any

from shared.crypto.sealing import seal
from shared.delivery import operation_webhooks as deliverer
from shared.operations.record import (
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    Operation,
    iso,
    new_operation_id,
)
from shared.storage.messages import DeliveryTask, FanoutTask, encode_delivery, encode_fanout
from tests.unit.fakes import (
    FakeClock,
    Fakes,
    drain,
    fake_runtime,
    reply,
    server_error,
    transport_error,
)

CALLBACK = "https://hooks.example.com/cb"
EVENT = "event-1"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def finished(rt: Any, callback: str | None = CALLBACK, **changes: Any) -> Operation:
    now = time.time()
    operation_id = new_operation_id(now)
    op = Operation(
        id=operation_id,
        status="succeeded",
        action="createSession",
        workbook="/me/drive/items/01ITEM",
        operation_url=None,
        created_at=iso(now),
        updated_at=iso(now),
        base_url="https://bridge.example.test/api",
        completed_at=iso(now),
        event_id=EVENT,
        result={"id": "session-1"},
        callback_sealed=seal(callback, rt.settings.webhook_secrets, operation_id) if callback else None,
        webhook_state=WEBHOOK_PENDING if callback else "none",
    ).with_(**changes)
    return await rt.store.create(op)


def attempt(op: Operation, number: int = 1, since: float | None = None, event: str = EVENT) -> str:
    return encode_delivery(DeliveryTask(op.id, event, number, time.time() if since is None else since))


def queued(f: Fakes) -> list[tuple[int, int]]:
    """(attempt, delay) of the webhook attempts queued."""
    return [(json.loads(text)["attempt"], delay) for text, delay in f.deliveries.sent if '"webhook"' in text]


def test_a_2xx_marks_the_webhook_delivered_and_signs_the_post(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, reply(204))
    run(deliverer.handle_message(rt, attempt(op)))
    stored = run(rt.store.get(op.id))
    assert (stored.webhook_state, stored.webhook_attempts, stored.webhook_last_status) == (WEBHOOK_DELIVERED, 1, 204)
    [post] = f.webhooks.to(CALLBACK)
    assert post.headers["webhook-id"] == EVENT and post.headers["webhook-signature"].startswith("v1,")
    assert stored.webhook_claimed_attempt is None and queued(f) == []


def test_a_5xx_queues_the_next_attempt_with_a_backoff(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, server_error(503))
    run(deliverer.handle_message(rt, attempt(op)))
    stored = run(rt.store.get(op.id))
    assert (stored.webhook_state, stored.webhook_attempts) == (WEBHOOK_PENDING, 1)
    [(number, delay)] = queued(f)
    assert number == 2 and delay >= 1 and stored.webhook_next_attempt_at is not None


def test_retries_run_until_delivered(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, server_error(500), transport_error(), reply(200))
    run(rt.deliveries.send(DeliveryTask(op.id, EVENT, 1, clock.now)))
    run(drain(rt, clock, f))
    stored = run(rt.store.get(op.id))
    assert (stored.webhook_state, stored.webhook_attempts) == (WEBHOOK_DELIVERED, 3)
    assert len(f.webhooks.to(CALLBACK)) == 3 and f.deliveries.messages == []


def test_a_retry_past_the_window_dead_letters_the_event(clock: FakeClock) -> None:
    rt, f = fake_runtime(WEBHOOK_RETRY_WINDOW_SECONDS="10")
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, server_error(503))
    run(deliverer.handle_message(rt, attempt(op, since=clock.now - 9)))
    stored = run(rt.store.get(op.id))
    assert stored.webhook_state == WEBHOOK_FAILED and stored.webhook_dead_lettered_at == iso(clock.now)
    assert "retry window" in stored.webhook_last_error and queued(f) == []


def test_a_410_stops_deliveries_at_once(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, reply(410))
    run(deliverer.handle_message(rt, attempt(op)))
    assert run(rt.store.get(op.id)).webhook_state == WEBHOOK_FAILED and queued(f) == []


def test_a_callback_to_a_private_address_is_refused_without_a_post(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, callback="http://10.0.0.5/cb"))
    run(deliverer.handle_message(rt, attempt(op)))
    stored = run(rt.store.get(op.id))
    assert stored.webhook_state == WEBHOOK_FAILED and "refused" in stored.webhook_last_error
    assert f.webhooks.calls == []


def test_a_callback_sealed_for_another_operation_is_refused_without_a_post(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, callback_sealed=seal(CALLBACK, rt.settings.webhook_secrets, "another-operation")))
    run(deliverer.handle_message(rt, attempt(op)))
    assert run(rt.store.get(op.id)).webhook_state == WEBHOOK_FAILED and f.webhooks.calls == []


def test_messages_that_should_not_run_send_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    active = run(finished(rt, status="running", completed_at=None))
    delivered = run(finished(rt, webhook_state=WEBHOOK_DELIVERED))
    done = run(finished(rt, webhook_attempts=2))
    texts = [
        "garbage",  # unreadable
        encode_delivery(DeliveryTask(new_operation_id(clock.now), EVENT, 1, clock.now)),  # unknown operation
        encode_delivery(DeliveryTask("not-an-id", EVENT, 1, clock.now)),  # malformed id
        attempt(active),  # not finished
        attempt(done, event="another-event", number=3),  # not its current event
        attempt(delivered),  # already delivered
        attempt(done, number=2),  # stale: attempt 2 was already made
    ]
    for text in texts:
        run(deliverer.handle_message(rt, text))
    assert f.webhooks.calls == [] and f.deliveries.sent == []
    assert run(rt.store.get(done.id)).webhook_attempts == 2


def test_a_copy_of_a_claimed_attempt_is_queued_for_after_the_lease_and_posts_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, webhook_claimed_attempt=1, webhook_last_attempt_at=iso(clock.now)))
    run(deliverer.handle_message(rt, attempt(op)))
    assert f.webhooks.calls == []
    [(number, delay)] = queued(f)
    assert number == 1 and delay > rt.settings.webhook_timeout


def test_a_copy_that_loses_the_claim_race_is_queued_again(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", WebhookClaimedAttempt=1))
    run(deliverer.handle_message(rt, attempt(op)))
    assert f.webhooks.calls == [] and [n for n, _ in queued(f)] == [1]


def test_a_claim_whose_holder_died_is_taken_over_after_the_lease(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, webhook_claimed_attempt=1, webhook_last_attempt_at=iso(clock.now)))
    f.webhooks.script("POST", CALLBACK, reply(200))
    run(rt.deliveries.send(DeliveryTask(op.id, EVENT, 1, clock.now)))
    run(drain(rt, clock, f))
    assert run(rt.store.get(op.id)).webhook_state == WEBHOOK_DELIVERED and len(f.webhooks.calls) == 1


def test_an_outcome_recorded_by_another_delivery_is_kept(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt))
    f.webhooks.script("POST", CALLBACK, reply(200))
    # after this delivery's claim, another writer records the attempt first
    f.table.before(
        "update_entity",
        lambda: f.table.touch(op.id, "operation", WebhookState="failed", WebhookLastError="canceled"),
        skip=1,
    )
    run(deliverer.handle_message(rt, attempt(op)))
    stored = run(rt.store.get(op.id))
    assert (stored.webhook_state, stored.webhook_last_error) == (WEBHOOK_FAILED, "canceled")
    assert len(f.webhooks.calls) == 1


def test_queue_next_attempt_needs_an_event(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, event_id=None))
    run(deliverer.queue_next_attempt(rt, op))
    assert f.deliveries.sent == []


def test_a_fanout_message_goes_to_the_subscriptions_step(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, callback=None, fanout_state="pending"))
    run(deliverer.handle_message(rt, encode_fanout(FanoutTask(op.id, EVENT))))
    assert f.webhooks.calls == [] and f.deliveries.sent == []  # the owner has no subscriptions
    assert f.table.row(op.id, "fanout") is not None  # marked fanned out: a copy of the message does nothing


def test_queue_next_attempt_queues_the_attempt_the_record_expects(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(finished(rt, webhook_attempts=3))
    run(deliverer.queue_next_attempt(rt, op, since=clock.now - 100, delay=7))
    assert queued(f) == [(4, 7)]
