"""Every branch of the HTTP use cases (shared/operations/start.py and the start's write-ahead in
shared/operations/write_ahead.py) over the in-process fakes (tests/unit/fakes.py): the real store over an ETag-enforcing
table, the real queues and Graph client over scripted answers. Each test reads the answer, the record, the queues and
the Graph calls."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.api.identity import READ_ALL_ROLE, Caller
from shared.api.problems import Problem
from shared.graph import tokens as auth
from shared.graph.tokens import DelegatedCredentialError
from shared.operations import changes as operation_changes
from shared.operations import outcome as start_outcome
from shared.operations import phases
from shared.operations import reads as operation_reads
from shared.operations import start as operations
from shared.operations import write_ahead as start_flow
from shared.operations.record import (
    ANSWERED,
    STARTING,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_PENDING,
    Operation,
    iso,
    new_operation_id,
    to_entity,
)
from shared.operations.store import Conflict
from tests.unit.fakes import (
    GRAPH,
    FakeClock,
    Fakes,
    FakeTokens,
    accepted,
    drain,
    fake_runtime,
    never_connected,
    reply,
    running,
    server_error,
    succeeded,
    throttled,
    transport_error,
    workbook_url,
)

BASE = "https://bridge.example.test/api"
CALLBACK = "https://hooks.example.com/cb"
LOC = f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1"
SESSION = workbook_url() + "/createSession"
ROWS = workbook_url() + "/tables/T/rows"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def outcome_write(entity: dict[str, Any]) -> bool:
    """The write of Graph's answer (it carries `answered`), not the `starting` mark before the request."""
    return entity.get("StartPhase") == ANSWERED


def body(**changes: Any) -> bytes:
    payload: dict[str, Any] = {
        "workbook": "/me/drive/items/01ITEM",
        "action": "createSession",
        "parameters": {"persistChanges": True},
    }
    payload.update(changes)
    return json.dumps({k: v for k, v in payload.items() if v is not None}).encode()


def start(rt: Any, data: bytes | None = None, key: str | None = None, **kwargs: Any) -> Any:
    return run(operations.start(rt, data or body(), key, BASE, **kwargs))


def problem(call: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        call()
    return caught.value


def poll_messages(f: Fakes) -> list[dict[str, Any]]:
    return f.polls.decoded()


def kinds(f: Fakes) -> list[str]:
    return [m["kind"] for m in f.deliveries.decoded()]


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome write's retry pauses (0.5, 1, 2 s) cost wall time, not behaviour: no pauses here."""
    monkeypatch.setattr(start_outcome, "OUTCOME_WRITE_BACKOFF", (0.0, 0.0, 0.0))


# ------------------------------------------------------------------------------------------ start
def test_an_accepted_start_stores_graphs_location_and_queues_the_first_poll(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    answer = start(rt)
    op = run(rt.store.get(answer.operation.id))
    assert (op.status, op.operation_url, op.start_phase) == ("notStarted", LOC, None)
    assert answer.status_code == 202 and answer.retry_after is not None
    [poll] = poll_messages(f)
    assert poll["id"] == op.id and f.polls.sent[0][1] >= 1
    [call] = f.graph.calls
    assert call.headers["Prefer"] == "respond-async" and call.json == {"persistChanges": True}


def test_a_synchronous_answer_ends_the_operation_and_queues_its_webhook(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(201, {"id": "session-1", "persistChanges": True}))
    answer = start(rt, body(callbackUrl=CALLBACK))
    op = run(rt.store.get(answer.operation.id))
    assert (op.status, op.result["id"], op.start_phase) == ("succeeded", "session-1", None)
    assert answer.status_code == 201 and f.polls.sent == []  # created: a webhook subscription
    assert sorted(kinds(f)) == ["fanout", "webhook"]


def test_a_whole_operation_from_post_to_webhook_runs_in_process(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    result = f"{GRAPH}/me/drive/items/01ITEM/workbook/sessionInfoResource(key='k')"
    f.graph.script("POST", SESSION, accepted(LOC))
    f.graph.script("GET", LOC, running(), succeeded(result))
    f.graph.script("GET", result, reply(200, {"id": "session-1", "persistChanges": True}))
    f.webhooks.script("POST", CALLBACK, reply(200))
    answer = start(rt, body(callbackUrl=CALLBACK), "key-1")
    runs = run(drain(rt, clock, f))
    op = run(rt.store.get(answer.operation.id))
    assert (op.status, op.webhook_state) == ("succeeded", WEBHOOK_DELIVERED)
    assert [r.error for r in runs] == [None] * len(runs) and len(f.webhooks.calls) == 1


def test_a_replay_with_the_same_key_returns_the_same_operation_without_calling_graph(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    first = start(rt, key="key-1")
    clock.advance(1)
    again = start(rt, key="key-1")
    assert again.operation.id == first.operation.id and len(f.graph.calls) == 1


def test_a_replay_with_another_body_is_refused_409(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    start(rt, key="key-1")
    refused = problem(lambda: start(rt, body(parameters={"persistChanges": False}), "key-1"))
    assert (refused.status, refused.code) == (409, "idempotencyKeyReused") and len(f.graph.calls) == 1


def test_a_malformed_idempotency_key_is_a_400_naming_it(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    refused = problem(lambda: start(rt, key="bad key"))
    assert refused.status == 400 and refused.errors[0].field == "Idempotency-Key" and f.graph.calls == []


def test_a_callback_whose_name_resolves_to_a_private_address_is_a_400(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.dns.names["hooks.example.com"] = "10.1.2.3"
    refused = problem(lambda: start(rt, body(callbackUrl=CALLBACK)))
    assert refused.status == 400 and refused.errors[0].field == "callbackUrl" and f.graph.calls == []


def test_a_replay_while_the_first_request_is_in_flight_is_a_429_and_later_ends_unknown(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    f.table.fail("update_entity", times=4, match=outcome_write)  # Graph's answer cannot be written: it stays `starting`
    first = problem(lambda: start(rt, key="key-1"))
    assert first.status == 503 and first.extra["reachedGraph"] is True
    busy = problem(lambda: start(rt, key="key-1"))
    window = str(math.ceil(phases.sending_window(rt.settings.graph_timeout)))  # all of it left: the clock stood still
    assert (busy.status, busy.code, busy.headers["Retry-After"]) == (429, "requestInProgress", window)
    clock.advance(phases.sending_window(rt.settings.graph_timeout) + 1)
    later = start(rt, key="key-1")
    assert later.operation.status == "failed" and later.operation.error["code"] == start_outcome.OUTCOME_UNKNOWN
    assert len(f.graph.calls) == 1  # never sent twice


def test_a_key_whose_first_request_died_before_its_intent_is_taken_over(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.table.fail("create_entity", asyncio.CancelledError(), match=lambda e: e["RowKey"] == "operation")
    with pytest.raises(asyncio.CancelledError):
        start(rt, key="key-1")
    busy = problem(lambda: start(rt, key="key-1"))
    assert busy.status == 429
    clock.advance(phases.PREPARED_WINDOW_SECONDS + 1)
    f.graph.script("POST", SESSION, accepted(LOC))
    taken = start(rt, key="key-1")
    claim = [e for (p, _), e in f.table.entities.items() if p.startswith("idem-")]
    assert [c["OperationId"] for c in claim] == [taken.operation.id] and len(f.graph.calls) == 1


def test_an_intent_that_cannot_be_stored_is_a_503_and_frees_the_key(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.table.fail("create_entity", match=lambda e: e["RowKey"] == "operation")
    refused = problem(lambda: start(rt, key="key-1"))
    assert (refused.status, refused.code) == (503, "storageUnavailable") and f.graph.calls == []
    f.graph.script("POST", SESSION, accepted(LOC))
    assert start(rt, key="key-1").operation.status == "notStarted"  # the key was free again


def test_an_intent_whose_id_is_already_stored_resumes_that_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.table.fail("create_entity", asyncio.CancelledError(), match=lambda e: e["RowKey"] == "operation")
    with pytest.raises(asyncio.CancelledError):
        start(rt, key="key-1")
    clock.advance(phases.PREPARED_WINDOW_SECONDS + 1)
    [claim] = [e for (p, _), e in f.table.entities.items() if p.startswith("idem-")]

    def first_attempt_wrote_it_meanwhile() -> None:
        now = time.time()
        record = Operation(
            id=claim["OperationId"],
            status="notStarted",
            action="createSession",
            workbook="/me/drive/items/01ITEM",
            operation_url=LOC,
            created_at=iso(now),
            updated_at=iso(now),
            base_url=BASE,
            start_phase=ANSWERED,
        )
        f.table.entities[(record.id, "operation")] = to_entity(record)
        f.table.etags[(record.id, "operation")] = "other"

    f.table.before("create_entity", first_attempt_wrote_it_meanwhile, match=lambda e: e["RowKey"] == "operation")
    resumed = start(rt, key="key-1")
    assert resumed.operation.id == claim["OperationId"] and resumed.operation.start_phase is None
    assert f.graph.calls == [] and [m["id"] for m in poll_messages(f)] == [claim["OperationId"]]


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (reply(400, {"error": {"code": "invalidRequest", "message": "no"}}), 400, "invalidRequest"),
        (throttled("9"), 503, "tooManyRequests"),
        (server_error(503), 503, "serviceUnavailable"),
        (never_connected(), 503, "graphUnavailable"),
    ],
)
def test_a_start_graph_did_not_do_removes_the_intent_and_frees_the_key(
    clock: FakeClock, answer: Any, status: int, code: str
) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, answer)
    refused = problem(lambda: start(rt, key="key-1"))
    assert (refused.status, refused.code) == (status, code)
    assert [k for k in f.table.entities if k[1] == "operation"] == []  # no record left
    assert [k for k in f.table.entities if k[0].startswith("idem-")] == []  # key free


def test_a_throttled_start_says_when_to_retry(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, throttled("9"))
    assert problem(lambda: start(rt)).headers["Retry-After"] == "9"


def test_graph_refusing_the_bridges_token_twice_is_a_502(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(401, {"error": {"code": "InvalidAuthenticationToken"}}), reply(401))
    refused = problem(lambda: start(rt))
    assert refused.status == 502 and len(f.graph.calls) == 2


def test_a_redirect_from_graph_is_a_502(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(301, b""))
    refused = problem(lambda: start(rt))
    assert refused.status == 502


def test_a_start_whose_answer_was_lost_ends_failed_as_unknown(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, transport_error(TimeoutError()))
    answer = start(rt, body(callbackUrl=CALLBACK))
    assert answer.operation.status == "failed" and answer.operation.error["code"] == start_outcome.OUTCOME_UNKNOWN
    assert "webhook" in kinds(f)


def test_a_token_failure_before_sending_removes_the_intent_and_raises(clock: FakeClock) -> None:
    rt, f = fake_runtime()

    async def broken(*, refresh: bool = False) -> str:
        raise RuntimeError("no token")

    f.tokens.token = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no token"):
        start(rt)
    assert [k for k in f.table.entities if k[1] == "operation"] == [] and f.graph.calls == []


def test_an_outcome_write_that_fails_once_is_retried(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    f.table.fail("update_entity", times=1, match=outcome_write)
    answer = start(rt)
    assert answer.operation.operation_url == LOC and len(poll_messages(f)) == 1


def test_a_result_that_cannot_be_stored_keeps_the_outcome_and_says_so(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(201, {"id": "session-1", "persistChanges": True}))
    f.table.fail("update_entity", times=4, match=lambda e: "session-1" in str(e.get("ResultJson")))
    answer = start(rt)
    op = run(rt.store.get(answer.operation.id))
    assert (op.status, op.result, op.error["code"]) == ("succeeded", None, "resultNotStored")


def test_an_outcome_that_cannot_be_stored_even_without_its_result_is_a_503(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(201, {"id": "session-1", "persistChanges": True}))
    f.table.fail("update_entity", times=5, match=outcome_write)
    refused = problem(lambda: start(rt, key="k"))
    assert refused.status == 503 and "same Idempotency-Key" in refused.detail


def test_an_outcome_write_that_meets_a_cancel_answers_the_canceled_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    holder: dict[str, str] = {}

    def canceled() -> None:
        [key] = [k for k in f.table.entities if k[1] == "operation"]
        holder["id"] = key[0]
        f.table.touch(*key, Status="canceled", StartPhase="", CompletedAt=iso(clock.now))

    f.table.before("update_entity", canceled)
    answer = start(rt)
    assert answer.operation.status == "canceled" and poll_messages(f) == []


def test_an_outcome_write_whose_reply_was_lost_finishes_the_stored_answer(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))

    def our_write_landed() -> None:
        [key] = [k for k in f.table.entities if k[1] == "operation"]
        f.table.touch(*key, StartPhase=ANSWERED, OperationUrl=LOC)

    f.table.before("update_entity", our_write_landed, match=outcome_write)
    answer = start(rt)
    assert answer.operation.start_phase is None and len(poll_messages(f)) == 1


def test_a_fanout_that_cannot_be_queued_does_not_stop_a_synchronous_outcome(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(201, {"id": "session-1"}))
    f.deliveries.fail("send_message", match=lambda text: '"fanout"' in text)
    assert start(rt).operation.status == "succeeded"


def test_a_first_poll_that_cannot_be_queued_is_a_503_that_reached_graph(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    f.polls.fail("send_message")
    refused = problem(lambda: start(rt))
    assert refused.status == 503 and refused.extra["reachedGraph"] and "Do not send it again" in refused.detail


def test_a_follow_up_whose_marker_write_conflicts_answers_the_fresh_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))

    def someone_else() -> None:
        [key] = [k for k in f.table.entities if k[1] == "operation"]
        f.table.touch(*key, ClientReference="other")

    f.table.before("update_entity", someone_else, match=lambda e: e.get("StartPhase") == "")  # the follow-up marker
    answer = start(rt)
    assert answer.operation.client_reference == "other" and answer.operation.start_phase == ANSWERED


# ------------------------------------------------------------------------------------------ delegated
DELEGATED = {
    "GRAPH_AUTH": "delegated",
    "TOKEN_SEALING_KEYS": "k1:" + "A" * 43 + "=",
    "DELEGATED_TENANT_ID": "tenant",
    "DELEGATED_CLIENT_ID": "client",
    "DELEGATED_CLIENT_SECRET": "secret",
}
USER = Caller("user-1", tenant_id="t", object_id="oid-1")


def test_a_delegated_start_without_a_bearer_token_is_a_401(clock: FakeClock) -> None:
    rt, f = fake_runtime(**DELEGATED)
    refused = problem(lambda: start(rt, caller=USER, authorization=None))
    assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer" and f.graph.calls == []


def test_a_delegated_start_calls_graph_as_the_caller(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    rt, f = fake_runtime(**DELEGATED)
    user = FakeTokens()
    monkeypatch.setattr(auth, "on_behalf_of", lambda scope, delegated, assertion: user)
    f.graph.script("POST", SESSION, accepted(LOC))
    answer = start(rt, caller=USER, authorization="Bearer user-token")
    assert f.graph.calls[0].headers["Authorization"] == "Bearer token-1" and user.closed == 1
    stored = run(rt.store.get(answer.operation.id))
    assert stored.credential_sealed and "user-token" not in stored.credential_sealed


@pytest.mark.parametrize(("code", "status"), [("delegatedCredentialExpired", 401), ("delegatedConsentMissing", 403)])
def test_a_delegated_credential_graph_cannot_use_is_refused(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    rt, f = fake_runtime(**DELEGATED)

    class Refusing(FakeTokens):
        async def token(self, *, refresh: bool = False) -> str:
            raise DelegatedCredentialError(code, "no")

    monkeypatch.setattr(auth, "on_behalf_of", lambda scope, delegated, assertion: Refusing())
    refused = problem(lambda: start(rt, caller=USER, authorization="Bearer user-token"))
    assert (refused.status, refused.code) == (status, code) and f.graph.calls == []


# ------------------------------------------------------------------------------------------ track
TRACK = json.dumps({"operationUrl": LOC, "action": "createSession"}).encode()


def test_tracking_an_operation_stores_it_and_queues_its_first_poll(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    answer = start(rt, TRACK, "key-1")
    assert answer.operation.operation_url == LOC and [m["id"] for m in poll_messages(f)] == [answer.operation.id]
    assert f.graph.calls == []


def test_a_track_that_cannot_be_queued_removes_its_record_and_frees_its_key(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.polls.fail("send_message")
    refused = problem(lambda: start(rt, TRACK, "key-1"))
    assert refused.status == 503
    assert [k for k in f.table.entities if k[1] == "operation" or k[0].startswith("idem-")] == []


def test_a_track_whose_record_is_already_stored_answers_it_without_a_second_chain(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    operation_id = new_operation_id(clock.now)
    first = run(start_flow.store_and_enqueue(rt, _record(operation_id), 0))
    again = run(start_flow.store_and_enqueue(rt, _record(operation_id, client_reference="retry"), 0))
    assert again.id == first.id and again.client_reference is None and len(poll_messages(f)) == 1


def test_a_track_whose_key_was_released_on_a_crash_can_be_retried(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.table.fail("create_entity", asyncio.CancelledError(), match=lambda e: e["RowKey"] == "operation")
    with pytest.raises(asyncio.CancelledError):
        start(rt, TRACK, "key-1")
    assert [k for k in f.table.entities if k[0].startswith("idem-")] == []
    assert start(rt, TRACK, "key-1").operation.operation_url == LOC


def _record(operation_id: str, **changes: Any) -> Operation:
    now = time.time()
    return Operation(
        id=operation_id,
        status="running",
        action="createSession",
        workbook="/me/drive/items/01ITEM",
        operation_url=LOC,
        created_at=iso(now),
        updated_at=iso(now),
        base_url=BASE,
        owner="default",
    ).with_(**changes)


# ------------------------------------------------------------------------------------------ get
def stored(rt: Any, **changes: Any) -> Operation:
    return run(rt.store.create(_record(new_operation_id(time.time()), **changes)))


def test_get_answers_only_the_owner_and_read_all_callers(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    op = stored(rt, owner="alice")
    assert run(operation_reads.get(rt, op.id, Caller("alice"))).operation.id == op.id
    assert run(operation_reads.get(rt, op.id, Caller("bob", roles=frozenset({READ_ALL_ROLE})))).operation.id == op.id
    assert problem(lambda: run(operation_reads.get(rt, op.id, Caller("bob")))).status == 404
    assert problem(lambda: run(operation_reads.get(rt, "not-an-id", Caller("alice")))).status == 404


def test_get_of_a_stalled_operation_rearms_its_chain(clock: FakeClock) -> None:
    rt, f = fake_runtime(OPERATION_TIMEOUT_SECONDS="60")
    op = stored(rt, generation=3)
    clock.advance(60 + 2 * 240 + 1)
    answer = run(operation_reads.get(rt, op.id))
    assert answer.operation.generation == 4
    assert [m["gen"] for m in poll_messages(f)] == [4] and [d for _, d in f.polls.sent] == [0]


def test_a_rearm_that_meets_a_concurrent_write_leaves_the_chain_to_it(clock: FakeClock) -> None:
    rt, f = fake_runtime(OPERATION_TIMEOUT_SECONDS="60")
    op = stored(rt, generation=3)
    clock.advance(60 + 2 * 240 + 1)
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", Generation=9))
    run(operation_reads.get(rt, op.id))
    assert poll_messages(f) == [] and run(rt.store.get(op.id)).generation == 9


def test_get_finishes_an_answered_start_its_request_left(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt, status="notStarted", start_phase=ANSWERED)
    assert run(operation_reads.get(rt, op.id)).operation.start_phase == ANSWERED  # within the grace period
    clock.advance(start_outcome.FOLLOW_UP_GRACE_SECONDS + 1)
    assert run(operation_reads.get(rt, op.id)).operation.start_phase is None
    assert len(poll_messages(f)) == 1


def test_get_ends_a_start_left_starting_as_unknown(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    op = stored(rt, status="notStarted", start_phase=STARTING, operation_url=None)
    clock.advance(phases.sending_window(rt.settings.graph_timeout) + 1)
    answer = run(operation_reads.get(rt, op.id))
    assert answer.operation.status == "failed" and answer.operation.error["code"] == start_outcome.OUTCOME_UNKNOWN


def test_an_unknown_outcome_write_that_conflicts_answers_the_fresh_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt, status="notStarted", start_phase=STARTING, operation_url=None)
    clock.advance(phases.sending_window(rt.settings.graph_timeout) + 1)
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", Status="canceled", StartPhase=""))
    assert run(operation_reads.get(rt, op.id)).operation.status == "canceled"


def test_a_signed_status_link_opens_its_own_operation_only(clock: FakeClock) -> None:
    rt, _ = fake_runtime(STATUS_LINK_KEYS="k1:" + "B" * 43 + "=")
    op = stored(rt, owner="alice")
    link = run(operation_reads.get(rt, op.id, Caller("alice"))).location
    assert "/status/" in link and "sig=" in link
    query = parse_qs(urlsplit(link).query)
    good = operation_reads.StatusLink(query["se"][0], query["sig"][0])
    assert run(operation_reads.get(rt, op.id, good)).operation.id == op.id
    assert problem(lambda: run(operation_reads.get(rt, op.id, operation_reads.StatusLink(None, None)))).status == 401
    assert (
        problem(lambda: run(operation_reads.get(rt, op.id, operation_reads.StatusLink(query["se"][0], "x")))).status
        == 403
    )
    assert problem(lambda: run(operation_reads.get(rt, "bad", good))).status == 404
    other = stored(rt, owner="alice")
    run(rt.store.delete(other.id))
    link2 = operation_reads.status_link(rt, other)
    q2 = parse_qs(urlsplit(link2).query)
    assert (
        problem(
            lambda: run(operation_reads.get(rt, other.id, operation_reads.StatusLink(q2["se"][0], q2["sig"][0])))
        ).status
        == 404
    )


# ------------------------------------------------------------------------------------------ list
def test_list_refuses_a_bad_status_and_top_naming_both(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    refused = problem(lambda: run(operation_reads.list_page(rt, "nope", "0", None)))
    assert [e.field for e in refused.errors] == ["status", "top"]


def test_list_refuses_a_continuation_it_did_not_issue(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    refused = problem(lambda: run(operation_reads.list_page(rt, None, "5", "garbage!")))
    assert refused.errors[0].field == "continuationToken"


def test_list_pages_through_an_owners_operations_newest_first(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    made = []
    for _ in range(3):
        op = _record(new_operation_id(clock.now), owner="alice")
        made.append(run(rt.store.create(op)).id)
        clock.advance(1)
    first = run(operation_reads.list_page(rt, None, "2", None, Caller("alice")))
    second = run(operation_reads.list_page(rt, None, "2", first.continuation, Caller("alice")))
    assert [o.id for o in first.operations + second.operations] == made[::-1]
    assert second.continuation is None
    everyone = run(operation_reads.list_page(rt, "running", "10", None, Caller("x", roles=frozenset({READ_ALL_ROLE}))))
    assert sorted(o.id for o in everyone.operations) == sorted(made)


# ------------------------------------------------------------------------------------------ cancel
def test_cancel_ends_an_active_operation_and_makes_its_chain_stale(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt, generation=2, callback_sealed="x", webhook_state=WEBHOOK_PENDING)
    answer = run(operation_changes.cancel(rt, op.id))
    assert (answer.operation.status, answer.operation.generation, answer.operation.webhook_state) == (
        "canceled",
        3,
        "none",
    )
    assert "webhook" not in kinds(f)


def test_cancel_of_a_finished_operation_stops_pending_webhook_retries(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    op = stored(rt, status="succeeded", completed_at=iso(clock.now), event_id="e", webhook_state=WEBHOOK_PENDING)
    answer = run(operation_changes.cancel(rt, op.id))
    assert (answer.operation.status, answer.operation.webhook_state) == ("succeeded", WEBHOOK_FAILED)


def test_cancel_of_a_finished_operation_without_webhook_changes_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt, status="failed", completed_at=iso(clock.now))
    before = f.table.writes(op.id)
    assert run(operation_changes.cancel(rt, op.id)).operation.status == "failed" and f.table.writes(op.id) == before


def test_cancel_retries_after_a_concurrent_write(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt)
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", PollCount=5))
    answer = run(operation_changes.cancel(rt, op.id))
    assert (answer.operation.status, answer.operation.poll_count) == ("canceled", 5)


def test_cancel_of_a_record_that_keeps_changing_is_a_409(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt)
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", PollCount=5), times=5)
    assert problem(lambda: run(operation_changes.cancel(rt, op.id))).code == "concurrentUpdate"
    assert run(rt.store.get(op.id)).status == "running"


def test_cancel_by_key_finds_the_operation_the_key_started(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    started = start(rt, key="key-1")
    assert run(operation_changes.cancel_by_key(rt, "key-1")).operation.id == started.operation.id
    assert run(rt.store.get(started.operation.id)).status == "canceled"
    assert problem(lambda: run(operation_changes.cancel_by_key(rt, "other-key"))).status == 404


def test_a_cancel_frees_the_workbook_lane_for_the_next_start(clock: FakeClock) -> None:
    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    f.graph.script("POST", SESSION, accepted(LOC), accepted(LOC.replace("op1", "op2")))
    first = start(rt)
    second = start(rt)
    assert second.operation.status == "waiting"
    run(operation_changes.cancel(rt, first.operation.id))
    run(drain(rt, clock, f, until=clock.now + 1))
    assert len(f.graph.to(SESSION)) == 2  # the waiting one was started once the lane was free


# ------------------------------------------------------------------------------------------ redeliver
def test_redeliver_queues_the_event_again_with_the_same_webhook_id(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(
        rt,
        status="succeeded",
        completed_at=iso(clock.now),
        event_id="e-1",
        callback_sealed="x",
        webhook_state=WEBHOOK_FAILED,
        webhook_attempts=4,
    )
    answer = run(operation_changes.redeliver(rt, op.id))
    assert answer.operation.webhook_state == WEBHOOK_PENDING
    [msg] = [m for m in f.deliveries.decoded() if m["kind"] == "webhook"]
    assert (msg["event"], msg["attempt"]) == ("e-1", 5)


def test_redeliver_refuses_what_cannot_be_redelivered(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    plain = stored(rt, status="succeeded", completed_at=iso(clock.now), event_id="e")
    active = stored(rt, callback_sealed="x")
    pending = stored(
        rt,
        status="succeeded",
        completed_at=iso(clock.now),
        event_id="e",
        callback_sealed="x",
        webhook_state=WEBHOOK_PENDING,
        webhook_next_attempt_at=iso(clock.now + 60),
    )
    assert problem(lambda: run(operation_changes.redeliver(rt, plain.id))).code == "noWebhook"
    assert problem(lambda: run(operation_changes.redeliver(rt, active.id))).code == "operationNotFinished"
    busy = problem(lambda: run(operation_changes.redeliver(rt, pending.id)))
    assert busy.code == "redeliveryInProgress" and int(busy.headers["Retry-After"]) >= 1
    assert f.deliveries.sent == []


def test_redeliver_retries_after_a_concurrent_write_and_gives_up_if_it_keeps_changing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    changes = dict(
        status="succeeded", completed_at=iso(clock.now), event_id="e", callback_sealed="x", webhook_state="failed"
    )
    op = stored(rt, **changes)
    f.table.before("update_entity", lambda: f.table.touch(op.id, "operation", PollCount=1))
    assert run(operation_changes.redeliver(rt, op.id)).operation.webhook_state == WEBHOOK_PENDING
    other = stored(rt, **changes)
    f.table.before("update_entity", lambda: f.table.touch(other.id, "operation", PollCount=1), times=5)
    assert problem(lambda: run(operation_changes.redeliver(rt, other.id))).code == "concurrentUpdate"


# ------------------------------------------------------------------------------------------ failOnError
def test_fail_on_error_answers_failures_as_problems(clock: FakeClock) -> None:
    error = {"code": "internalServerError", "innerError": {"code": "GenericFileOpenError"}, "message": "m"}
    failed = _record("1", status="failed", error=error, fail_on_error=True)
    canceled = _record("1", status="canceled", fail_on_error=True)
    assert (operation_reads.failure_problem(failed).status, operation_reads.failure_problem(failed).code) == (
        422,
        "GenericFileOpenError",
    )
    assert operation_reads.failure_problem(canceled).status == 409
    assert operation_reads.failure_problem(failed.with_(fail_on_error=False)) is None
    assert operation_reads.failure_problem(_record("1", status="succeeded", fail_on_error=True)) is None


# ------------------------------------------------------------------------------------------ rarer paths
def test_a_202_without_location_ends_the_operation_failed(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(202))
    answer = start(rt)
    assert answer.operation.status == "failed" and answer.operation.error["code"] == "missingOperationLocation"
    assert f.polls.sent == []


def test_a_refused_start_whose_intent_cannot_be_removed_keeps_the_key_for_the_safe_side(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(400, {"error": {"code": "invalidRequest", "message": "no"}}))
    f.table.fail("delete_entity", match=lambda pk, rk: rk == "operation")
    assert problem(lambda: start(rt, key="key-1")).status == 400
    [record] = [e for k, e in f.table.entities.items() if k[1] == "operation"]
    assert record["StartPhase"] == STARTING and [k for k in f.table.entities if k[0].startswith("idem-")] != []


def test_an_intent_that_cannot_be_stored_without_a_key_is_a_503(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.table.fail("create_entity", match=lambda e: e["RowKey"] == "operation")
    assert problem(lambda: start(rt)).code == "storageUnavailable" and f.graph.calls == []


def test_an_intent_that_conflicts_with_a_record_deleted_meanwhile_raises(clock: FakeClock) -> None:
    rt, f = fake_runtime()

    def appears(e: dict[str, Any]) -> bool:  # the create's match hook: another writer's record got there first
        f.table.entities[(e["PartitionKey"], "operation")] = dict(e)
        f.table.etags[(e["PartitionKey"], "operation")] = "x"
        f.table.before("get_entity", lambda: f.table.entities.pop((e["PartitionKey"], "operation"), None))
        return False

    f.table.fail("create_entity", match=lambda e: e["RowKey"] == "operation" and appears(e))
    with pytest.raises(Conflict):  # nothing to resume: the request fails (a 500) rather than guess
        start(rt)
    assert f.graph.calls == []


def test_a_track_that_cannot_be_queued_without_a_key_is_a_503(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.polls.fail("send_message")
    assert problem(lambda: start(rt, TRACK)).status == 503
    assert [k for k in f.table.entities if k[1] == "operation"] == []


def test_a_tracked_record_that_vanishes_during_its_create_conflict_raises(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    operation_id = new_operation_id(clock.now)
    run(rt.store.create(_record(operation_id)))
    f.table.before("get_entity", lambda: f.table.entities.pop((operation_id, "operation"), None))
    with pytest.raises(Conflict):
        run(start_flow.store_and_enqueue(rt, _record(operation_id), 0))
    assert poll_messages(f) == []


def test_an_outcome_conflict_whose_reread_fails_is_a_503_that_reached_graph(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))

    def conflict_then_unreadable() -> None:
        [key] = [k for k in f.table.entities if k[1] == "operation"]
        f.table.touch(*key, ClientReference="x")
        f.table.fail("get_entity")

    f.table.before("update_entity", conflict_then_unreadable, match=outcome_write)
    refused = problem(lambda: start(rt, key="k"))
    assert refused.status == 503 and refused.extra["reachedGraph"] and "could not be confirmed" in refused.detail


def test_a_bare_outcome_write_that_conflicts_answers_the_stored_record(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, reply(201, {"id": "session-1"}))
    f.table.fail("update_entity", times=4, match=lambda e: "session-1" in str(e.get("ResultJson")))

    def canceled() -> None:
        [key] = [k for k in f.table.entities if k[1] == "operation"]
        f.table.touch(*key, Status="canceled", StartPhase="")

    f.table.before("update_entity", canceled, match=lambda e: "resultNotStored" in str(e.get("ErrorJson")))
    assert start(rt).operation.status == "canceled"


def test_complete_start_of_a_record_without_a_pending_follow_up_does_nothing(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    op = stored(rt)
    assert run(start_outcome.complete_start(rt, op, retry=True)) == op and f.polls.sent == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(None, True), (408, True), (429, True), (503, True), (400, False), (401, False)]
)
def test_not_sent_is_retryable_only_when_trying_later_may_work(status: int | None, retryable: bool) -> None:
    assert start_flow.NotSent(None, status).retryable is retryable


def test_get_of_a_waiting_operation_gives_its_place_in_the_lane(clock: FakeClock) -> None:
    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    f.graph.script("POST", SESSION, accepted(LOC))
    start(rt)
    second = start(rt)
    answer = run(operation_reads.get(rt, second.operation.id))
    assert answer.operation.status == "waiting" and answer.operation.lane_position == 1


def test_list_without_top_answers_up_to_twenty(clock: FakeClock) -> None:
    rt, _ = fake_runtime()
    for _ in range(21):
        run(rt.store.create(_record(new_operation_id(clock.now))))
        clock.advance(0.01)
    page = run(operation_reads.list_page(rt, None, None, None))
    assert len(page.operations) == 20 and page.continuation is not None
