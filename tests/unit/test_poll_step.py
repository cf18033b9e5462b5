"""Every branch of the poll step (shared/operations/poll_step.py) over the in-process fakes (tests/unit/fakes.py): the
real store, queues and Graph client run over a Table that enforces ETags, list-backed queues and a scripted Graph.
Each test reads what an outsider could see: the record, the queued messages and the Graph calls made."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from shared.crypto.sealing import seal
from shared.graph import tokens as auth
from shared.graph.tokens import DelegatedCredentialError
from shared.lanes.store import lane_key
from shared.operations import poll_step as poller
from shared.operations.record import FANOUT_PENDING, WEBHOOK_PENDING, Operation, iso, new_operation_id
from shared.runtime.settings import load_settings
from shared.storage.messages import PollState, encode
from tests.unit.fakes import (
    BASE_ENV,
    GRAPH,
    FakeClock,
    Fakes,
    FakeTokens,
    drain,
    failed,
    fake_runtime,
    reply,
    running,
    server_error,
    succeeded,
    throttled,
    transport_error,
)

LOC = f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1"
RESULT = f"{GRAPH}/me/drive/items/01ITEM/workbook/sessionInfoResource(key='k')"
CALLBACK = "https://hooks.example.com/cb"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def seed(rt: Any, **changes: Any) -> Operation:
    now = time.time()
    op = Operation(
        id=new_operation_id(now),
        status="running",
        action="createSession",
        workbook="/me/drive/items/01ITEM",
        operation_url=LOC,
        created_at=iso(now),
        updated_at=iso(now),
        base_url="https://bridge.example.test/api",
        generation=1,
    ).with_(**changes)
    return await rt.store.create(op)


def message(op: Operation, generation: int | None = None, polls: int = 0) -> str:
    return encode(PollState(op.id, op.generation if generation is None else generation, polls))


def arm(rt: Any, op: Operation) -> None:
    """The chain's first message, as the start queues it."""
    run(rt.polls.send(PollState(op.id, op.generation), 0))


def polls_sent(f: Fakes) -> list[dict[str, Any]]:
    return f.polls.decoded()


def deliveries(f: Fakes, kind: str) -> list[dict[str, Any]]:
    return [m for m in f.deliveries.decoded() if m["kind"] == kind]


# ------------------------------------------------------------------------------------------ messages dropped
def test_an_unreadable_message_is_dropped_without_reading_storage(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    run(poller.handle_message(rt, "not json", 1, "m1"))
    run(poller.handle_message(rt, json.dumps({"v": 1, "id": "../etc", "gen": 0}), 1, "m2"))
    assert f.table.calls == [] and f.graph.calls == [] and f.polls.sent == []


def test_a_message_for_an_unknown_operation_is_dropped(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    run(poller.handle_message(rt, encode(PollState(new_operation_id(clock.now), 0)), 1, "m1"))
    assert f.graph.calls == [] and f.polls.sent == []


def test_a_stale_generation_polls_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=3))
    run(poller.handle_message(rt, message(op, generation=2), 1, "m1"))
    assert f.graph.calls == [] and f.polls.sent == []


def test_a_terminal_record_with_a_leftover_message_queues_its_missing_webhook_and_fanout(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    sealed = seal(CALLBACK, rt.settings.webhook_secrets, "x")
    op = run(
        seed(
            rt,
            status="succeeded",
            completed_at=iso(clock.now),
            event_id="event-1",
            callback_sealed=sealed,
            webhook_state=WEBHOOK_PENDING,
            fanout_state=FANOUT_PENDING,
        )
    )
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert f.graph.calls == [] and f.polls.sent == []
    assert [(m["id"], m["event"], m["attempt"]) for m in deliveries(f, "webhook")] == [(op.id, "event-1", 1)]
    assert [m["id"] for m in deliveries(f, "fanout")] == [op.id]


def test_a_terminal_record_whose_webhook_already_ran_queues_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, status="succeeded", completed_at=iso(clock.now), event_id="e", webhook_state="delivered"))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert f.deliveries.sent == [] and f.graph.calls == []


# ------------------------------------------------------------------------------------------ redelivery claims
def test_a_redelivered_message_claims_the_chain_with_a_new_generation(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=4))
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 2, "m-redelivered"))
    stored = run(rt.store.get(op.id))
    assert (stored.generation, stored.chain_message) == (5, "m-redelivered")
    assert [m["gen"] for m in polls_sent(f)] == [5]  # the successor carries the claimed generation


def test_a_claim_that_meets_a_concurrent_write_judges_again_and_claims(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=4))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", PollCount=0))
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 2, "m-redelivered"))
    assert run(rt.store.get(op.id)).generation == 5
    assert len(f.graph.to(LOC)) == 1


def test_a_claim_that_loses_to_another_claim_is_stale(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=4))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", Generation=5, ChainMessage="other"))
    run(poller.handle_message(rt, message(op), 2, "m-redelivered"))
    assert f.graph.calls == [] and f.polls.sent == []
    assert run(rt.store.get(op.id)).chain_message == "other"


def test_a_record_that_keeps_changing_while_claimed_raises_for_the_host_to_retry(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=4))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", PollCount=0), times=5)
    with pytest.raises(RuntimeError, match="kept changing"):
        run(poller.handle_message(rt, message(op), 2, "m-redelivered"))
    assert f.graph.calls == []


# ------------------------------------------------------------------------------------------ the last delivery
def test_a_storage_failure_raises_so_the_host_retries_the_message(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, running())
    f.polls.fail("send_message")
    with pytest.raises(Exception, match="ServerBusy"):
        run(poller.handle_message(rt, message(op), 1, "m1"))
    assert run(rt.store.get(op.id)).status == "running"


def test_a_failure_on_the_last_delivery_ends_the_operation_failed(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, running())
    f.polls.fail("send_message")
    run(poller.handle_message(rt, message(op), rt.settings.poll_max_dequeue_count, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "pollStepFailed"


def test_a_last_delivery_failure_leaves_a_chain_another_message_carries(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, generation=1))

    def moved_on() -> None:  # after this delivery claimed the chain, another message took it over
        f.table.touch(op.id, "operation", Generation=9, ChainMessage="m-other")

    f.graph.script("GET", LOC, running())
    f.polls.fail("send_message", match=lambda text: moved_on() is None)
    run(poller.handle_message(rt, message(op), rt.settings.poll_max_dequeue_count, "m1"))
    assert run(rt.store.get(op.id)).status == "running"


def test_a_last_delivery_failure_after_the_operation_ended_writes_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))

    def ended() -> None:
        f.table.touch(op.id, "operation", Status="canceled", CompletedAt=iso(clock.now))

    f.graph.script("GET", LOC, running())
    f.polls.fail("send_message", match=lambda text: ended() is None)
    run(poller.handle_message(rt, message(op), rt.settings.poll_max_dequeue_count, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "canceled" and stored.error is None


# ------------------------------------------------------------------------------------------ deadline, throttle
def test_an_operation_past_its_deadline_times_out_without_asking_graph(clock: FakeClock) -> None:
    rt, f = fake_runtime(OPERATION_TIMEOUT_SECONDS="60")
    sealed = seal(CALLBACK, rt.settings.webhook_secrets, "x")
    op = run(seed(rt, callback_sealed=sealed, webhook_state=WEBHOOK_PENDING))
    clock.advance(61)
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "timedOut" and f.graph.calls == []
    assert [m["attempt"] for m in deliveries(f, "webhook")] == [1]


def test_a_429_reschedules_after_retry_after_and_holds_back_the_workbook_siblings(clock: FakeClock) -> None:
    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    first = run(seed(rt, owner="default"))
    sibling_loc = LOC.replace("op1", "op2")
    sibling = run(seed(rt, owner="default", operation_url=sibling_loc))
    f.graph.script("GET", LOC, throttled("7"))
    run(poller.handle_message(rt, message(first), 1, "m1"))
    assert f.polls.sent[-1][1] >= 7  # the next poll waits out Retry-After
    lane = f.table.row(lane_key(first.workbook, "default"), "lane")
    assert lane is not None
    run(poller.handle_message(rt, message(sibling), 1, "m2"))
    assert f.graph.to(sibling_loc) == []  # the sibling did not call Graph during the throttle
    assert 1 <= f.polls.sent[-1][1] <= 7


def test_a_429_without_lanes_still_reschedules(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, throttled("3"))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    [msg] = polls_sent(f)
    assert msg["transient"] == 1 and f.polls.sent[-1][1] >= 3


# ------------------------------------------------------------------------------------------ Graph answers
def test_running_moves_a_not_started_record_to_running_and_polls_again(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, status="notStarted"))
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "running" and stored.poll_count == 1
    assert [m["polls"] for m in polls_sent(f)] == [1]


def test_an_unchanged_status_writes_nothing_to_the_table(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, running())
    before = f.table.writes(op.id)
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert f.table.writes(op.id) == before and len(polls_sent(f)) == 1


def test_a_status_write_that_meets_a_concurrent_change_rereads_and_writes_again(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, status="notStarted"))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", ClientReference="x"))
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert (stored.status, stored.client_reference) == ("running", "x") and len(polls_sent(f)) == 1


def test_a_cancel_during_a_poll_ends_the_chain(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, status="notStarted"))
    f.table.before(
        "update_entity",
        lambda: f.table.touch(op.id, "operation", Status="canceled", Generation=2, CompletedAt=iso(clock.now)),
    )
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert run(rt.store.get(op.id)).status == "canceled" and polls_sent(f) == []


def test_a_status_write_that_keeps_conflicting_raises(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, status="notStarted"))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", ClientReference="x"), times=5)
    f.graph.script("GET", LOC, running())
    with pytest.raises(RuntimeError, match="status was written"):
        run(poller.handle_message(rt, message(op), 1, "m1"))
    assert polls_sent(f) == []


def test_succeeded_fetches_the_result_and_stores_it(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    sealed = seal(CALLBACK, rt.settings.webhook_secrets, "x")
    op = run(seed(rt, callback_sealed=sealed, webhook_state=WEBHOOK_PENDING))
    f.graph.script("GET", LOC, succeeded(RESULT))
    f.graph.script("GET", RESULT, reply(200, {"id": "session-1", "persistChanges": True}))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "succeeded" and stored.result == {"id": "session-1", "persistChanges": True}
    assert polls_sent(f) == [] and [m["attempt"] for m in deliveries(f, "webhook")] == [1]
    assert [m["id"] for m in deliveries(f, "fanout")] == [op.id]


def test_a_result_fetch_failure_polls_again_and_then_stores_the_result(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, succeeded(RESULT), succeeded(RESULT))
    f.graph.script("GET", RESULT, server_error(503), reply(200, {"id": "session-1"}))
    arm(rt, op)
    run(drain(rt, clock, f))
    stored = run(rt.store.get(op.id))
    assert stored.status == "succeeded" and stored.result["id"] == "session-1"
    assert len(f.graph.to(RESULT)) == 2


def test_a_big_result_goes_to_a_blob_and_reads_back_inline(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, action="createTableRow"))
    rows = f"{GRAPH}/me/drive/items/01ITEM/workbook/tableRowOperationResult(key='k')"
    big = {"index": 1, "values": [["x" * 40_000]]}
    f.graph.script("GET", LOC, succeeded(rows))
    f.graph.script("GET", rows, reply(200, big))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    entity = f.table.row(op.id, "operation")
    assert entity is not None and entity["ResultJson"] == "" and entity["ResultBlob"] in f.blobs.blobs
    assert run(rt.store.get(op.id)).result == big


def test_failed_ends_the_operation_with_graphs_error(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, failed())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "internalServerError"


def test_a_transport_error_counts_as_transient_and_polls_again(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, transport_error())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    [msg] = polls_sent(f)
    assert msg["transient"] == 1 and "connection to Graph failed" in msg["why"]


def test_too_many_transient_failures_end_the_operation(clock: FakeClock) -> None:
    rt, f = fake_runtime(POLL_MAX_TRANSIENT_FAILURES="2")
    op = run(seed(rt))
    f.graph.script("GET", LOC, server_error(503), server_error(502), server_error(500))
    arm(rt, op)
    run(drain(rt, clock, f))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and len(f.graph.to(LOC)) == 3


def test_an_operation_url_on_another_origin_is_never_sent_a_token(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt, operation_url="https://evil.example.test/op"))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "untrustedOrigin" and f.graph.calls == []


def test_a_401_is_retried_once_with_a_fresh_token(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.script("GET", LOC, reply(401, {"error": {"code": "InvalidAuthenticationToken"}}), running())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert [c.headers["Authorization"] for c in f.graph.to(LOC)] == ["Bearer token-1", "Bearer token-2"]
    assert len(polls_sent(f)) == 1


# ------------------------------------------------------------------------------------------ delegated
DELEGATED = {
    "GRAPH_AUTH": "delegated",
    "TOKEN_SEALING_KEYS": "k1:" + "A" * 43 + "=",
    "DELEGATED_TENANT_ID": "tenant",
    "DELEGATED_CLIENT_ID": "client",
    "DELEGATED_CLIENT_SECRET": "secret",
}


def delegated_env() -> dict[str, str]:
    try:
        load_settings({**BASE_ENV, **DELEGATED})
    except Exception as exc:  # the key format is the keyring's: fail loudly here if it changes
        raise AssertionError(f"delegated test settings refused: {exc}") from None
    return DELEGATED


def test_a_delegated_poll_uses_the_callers_token_and_closes_it(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, f = fake_runtime(**delegated_env())
    user = FakeTokens()
    monkeypatch.setattr(auth, "on_behalf_of", lambda scope, delegated, assertion: user)
    op = run(seed(rt, credential_sealed=rt.settings.keyring.seal("user-assertion", "placeholder")))
    op = run(
        rt.store.update(
            op.with_(credential_sealed=rt.settings.keyring.seal("user-assertion", op.id)), {"credential_sealed"}
        )
    )
    f.graph.script("GET", LOC, running())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert [c.headers["Authorization"] for c in f.graph.to(LOC)] == ["Bearer token-1"]
    assert user.closed == 1 and f.tokens.issued == 0


def test_a_sealed_credential_that_cannot_be_opened_fails_the_operation(clock: FakeClock) -> None:
    rt, f = fake_runtime(**delegated_env())
    op = run(seed(rt, credential_sealed="not-a-sealed-token"))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "credentialUnavailable" and f.graph.calls == []


def test_an_expired_delegated_credential_fails_the_operation_with_its_code(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, f = fake_runtime(**delegated_env())

    class Expired(FakeTokens):
        async def token(self, *, refresh: bool = False) -> str:
            raise DelegatedCredentialError("delegatedCredentialExpired", "the caller's sign-in expired")

    monkeypatch.setattr(auth, "on_behalf_of", lambda scope, delegated, assertion: Expired())
    op = run(seed(rt))
    op = run(rt.store.update(op.with_(credential_sealed=rt.settings.keyring.seal("a", op.id)), {"credential_sealed"}))
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "delegatedCredentialExpired"
    assert f.graph.calls == [] and f.tokens.issued == 0  # never fell back to the app's own token


# ------------------------------------------------------------------------------------------ the terminal write
def test_a_terminal_write_that_meets_a_concurrent_marker_write_lands_on_the_fresh_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", ClientReference="marker"))
    f.graph.script("GET", LOC, failed())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    stored = run(rt.store.get(op.id))
    assert (stored.status, stored.client_reference) == ("failed", "marker")


def test_a_cancel_that_lands_before_the_terminal_write_wins(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    sealed = seal(CALLBACK, rt.settings.webhook_secrets, "x")
    op = run(seed(rt, callback_sealed=sealed, webhook_state=WEBHOOK_PENDING))
    f.table.before(
        "update_entity",
        lambda: f.table.touch(
            op.id, "operation", Status="canceled", Generation=2, CompletedAt=iso(clock.now), WebhookState="none"
        ),
    )
    f.graph.script("GET", LOC, failed())
    run(poller.handle_message(rt, message(op), 1, "m1"))
    assert run(rt.store.get(op.id)).status == "canceled"
    assert deliveries(f, "webhook") == []  # no webhook for a canceled operation


def test_a_terminal_write_that_keeps_conflicting_raises(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", ClientReference="x"), times=5)
    f.graph.script("GET", LOC, failed())
    with pytest.raises(RuntimeError, match="finished"):
        run(poller.handle_message(rt, message(op), 1, "m1"))


def test_a_whole_operation_runs_to_its_webhook_in_process(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    sealed = seal(CALLBACK, rt.settings.webhook_secrets, "x")
    op = run(seed(rt, status="notStarted", callback_sealed=sealed, webhook_state=WEBHOOK_PENDING))
    op = run(
        rt.store.update(
            op.with_(callback_sealed=seal(CALLBACK, rt.settings.webhook_secrets, op.id)), {"callback_sealed"}
        )
    )
    run(rt.polls.send(PollState(op.id, op.generation), 1))
    f.graph.script("GET", LOC, running(), running(), succeeded(RESULT))
    f.graph.script("GET", RESULT, reply(200, {"id": "s"}))
    f.webhooks.script("POST", CALLBACK, server_error(503), reply(204))
    runs = run(drain(rt, clock, f))
    stored = run(rt.store.get(op.id))
    assert (stored.status, stored.webhook_state, stored.webhook_attempts) == ("succeeded", "delivered", 2)
    assert all(r.error is None for r in runs) and f.polls.messages == [] and f.deliveries.messages == []


def test_a_step_that_fails_every_delivery_ends_the_operation_on_the_fifth_instead_of_poisoning(
    clock: FakeClock,
) -> None:
    rt, f = fake_runtime()
    op = run(seed(rt))
    f.graph.always("GET", LOC, running())
    arm(rt, op)
    f.polls.fail("send_message", times=5)  # the successor can never be queued
    runs = [r for r in run(drain(rt, clock, f)) if r.queue == rt.settings.poll_queue]
    assert [r.dequeue_count for r in runs] == [1, 2, 3, 4, 5]
    assert [r.error is not None for r in runs] == [True, True, True, True, False]
    stored = run(rt.store.get(op.id))
    assert stored.status == "failed" and stored.error["code"] == "pollStepFailed"
    assert f.poison == {} and f.polls.messages == []
