"""A record the code cannot decode is isolated (issue 18, item 5): it is reported (a problem naming it for its own
GET, flagged in a list page while the rest of the page answers, a log line and a metric naming it), its poll chain
ends (its message is dropped, not poisoned), its lane slot is freed, and the purge retires or deletes it and
carries on with the rest.

Before: one damaged JSON property made its GET and its owner's whole list answer 500, sent its poll message to
poison while the record kept its lane, and (once it was past its deadline) made every hourly purge die on it
(JSONDecodeError in `_fail_stranded`), so retention stopped for everyone. The damage is made as a manual edit or
another app version makes it: `FakeTable.touch`, a merge of raw properties with a new ETag.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.api.identity import Caller
from shared.api.problems import Problem
from shared.observability import telemetry
from shared.operations import purge
from shared.operations import reads as operation_reads
from shared.operations import start as operations
from shared.operations.listing import index_partition
from shared.operations.record import (
    FAILED,
    NOT_STARTED,
    SUCCEEDED,
    DamagedRecord,
    Operation,
    from_entity,
    iso,
    new_operation_id,
    to_entity,
)
from shared.operations.retention import DAY
from shared.storage.messages import DeliveryTask, PollState, encode, encode_delivery
from tests.unit.fakes import GRAPH, FakeClock, accepted, drain, fake_runtime, running, workbook_url

BASE = "https://bridge.example.test/api"
SESSION = workbook_url() + "/createSession"

DAMAGES = [
    ("ErrorJson", "{not json", "ErrorJson is not JSON"),
    ("HistoryJson", '{"at": 1}', "HistoryJson is not a JSON list"),
    ("HistoryJson", "[1, 2]", "HistoryJson holds an event that is not a JSON object"),
    ("ResultJson", "[1,", "ResultJson is not JSON"),
    ("LaneRequestJson", "[]", "LaneRequestJson is not a JSON object"),
    ("Status", "paused", "Status has a value this version does not know"),  # another app version's status
    ("StartPhase", "launching", "StartPhase has a value this version does not know"),
    ("WebhookState", "lost", "WebhookState has a value this version does not know"),
    ("CreatedAt", "", "CreatedAt is missing"),
    ("UpdatedAt", "yesterday", "UpdatedAt is not a time"),
    ("PollCount", "three", "PollCount is not a whole number"),
    ("Generation", -1, "Generation is not a whole number"),
    ("FailOnError", "yes", "FailOnError is not a boolean"),
    ("Workbook", 42, "Workbook is not text"),
]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def record(created: float, status: str = NOT_STARTED, **changes: Any) -> Operation:
    return Operation(
        id=new_operation_id(created),
        status=status,
        action="createSession",
        workbook="/me/drive/items/01ITEM",
        operation_url=f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/x",
        created_at=iso(created),
        updated_at=iso(created),
        base_url=BASE,
        owner="default",
        **changes,
    )


@pytest.mark.parametrize(("prop", "value", "said"), DAMAGES, ids=[f"{p}={v!r}" for p, v, _ in DAMAGES])
def test_a_record_that_cannot_be_decoded_is_a_damaged_record_naming_the_property(
    prop: str, value: Any, said: str
) -> None:
    entity = {
        **to_entity(record(1.7e9, error={"code": "x"}, history=[{"at": iso(1.7e9), "type": "status"}])),
        prop: value,
    }
    with pytest.raises(DamagedRecord) as caught:
        from_entity(entity)
    assert caught.value.prop == prop and said in str(caught.value)


def test_a_readable_record_still_reads_and_unknown_extra_properties_are_ignored() -> None:
    op = record(1.7e9, error={"code": "x"}, history=[{"at": iso(1.7e9), "type": "status"}])
    assert from_entity({**to_entity(op), "AddedByANewerVersion": "x"}) == op


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.bind(meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    telemetry.bind()


def damaged_counts(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = reader.get_metrics_data()
    found: dict[tuple[str, str], int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "bridge.records.damaged":
                    for point in metric.data.data_points:
                        key = (
                            str(point.attributes["bridge.record.read"]),
                            str(point.attributes["bridge.record.property"]),
                        )
                        found[key] = int(point.value)
    return found


def started(rt: Any, f: Any, n: int) -> list[str]:
    """n operations of the default owner, each accepted by Graph and running."""
    ids = []
    for i in range(n):
        location = f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op{i}"
        f.graph.script("POST", SESSION, accepted(location))
        body = json.dumps({"workbook": "/me/drive/items/01ITEM", "action": "createSession"}).encode()
        ids.append(run(operations.start(rt, body, None, BASE)).operation.id)
    return ids


def test_its_own_get_is_a_problem_naming_it_and_the_owners_list_answers_the_rest(
    clock: FakeClock, metrics: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    rt, f = fake_runtime()
    first, bad, last = started(rt, f, 3)
    f.table.touch(bad, "operation", ErrorJson="{not json")
    with pytest.raises(Problem) as caught:
        run(operation_reads.get(rt, bad, Caller("default")))
    problem = caught.value.body()
    assert (problem["status"], problem["code"]) == (500, "recordDamaged")
    assert problem["operationId"] == bad and problem["property"] == "ErrorJson" and bad in problem["detail"]
    with pytest.raises(Problem) as other:  # another owner learns nothing of it
        run(operation_reads.get(rt, bad, Caller("someone-else")))
    assert other.value.status == 404
    with caplog.at_level(logging.ERROR):
        page = run(operation_reads.list_page(rt, None, "10", None, Caller("default")))
    assert {op.id for op in page.operations} == {first, last}
    assert [(d.operation_id, d.prop) for d in page.damaged] == [(bad, "ErrorJson")]
    assert any(bad in r.getMessage() and "ErrorJson" in r.getMessage() for r in caplog.records)
    assert damaged_counts(metrics) == {("get", "ErrorJson"): 2, ("list", "ErrorJson"): 1}
    read_all = run(operation_reads.list_page(rt, None, "10", None, Caller("admin", roles=("Operations.ReadAll",))))
    assert {op.id for op in read_all.operations} == {first, last} and [d.operation_id for d in read_all.damaged] == [
        bad
    ]


def test_the_list_answer_flags_it(clock: FakeClock) -> None:
    from shared.api.responses import page_response

    rt, f = fake_runtime()
    good, bad = started(rt, f, 2)
    f.table.touch(bad, "operation", Status="paused")
    page = run(operation_reads.list_page(rt, None, None, None, Caller("default")))
    answer = page_response(page.operations, page.continuation, BASE + "/operations", None, None, page.damaged)
    body = json.loads(answer.get_body())
    assert [op["id"] for op in body["value"]] == [good]
    assert body["damaged"] == [{"id": bad, "code": "recordDamaged", "property": "Status"}]


def test_its_poll_message_is_dropped_not_poisoned_and_the_others_go_on(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    good, bad = started(rt, f, 2)
    f.graph.always("GET", f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op0", running())
    f.table.touch(bad, "operation", HistoryJson="[")
    runs = asyncio.run(drain(rt, clock, f, until=clock.now + 30))
    assert all(r.error is None for r in runs)  # nothing raised: no retry, no poison
    assert f.poison == {} and not [t for t in f.polls.texts() if bad in t]
    assert f.graph.to(f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1") == []
    assert len(f.graph.to(f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op0")) >= 2  # the other one polls on
    assert any(good in t for t in f.polls.texts())


def test_its_lane_slot_goes_to_the_next_request_at_once(clock: FakeClock) -> None:
    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    holder, waiter = started(rt, f, 2)
    assert run(rt.store.get(waiter)).status == "waiting"
    f.table.touch(holder, "operation", ErrorJson="{")
    f.graph.script("GET", f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1", running())
    asyncio.run(drain(rt, clock, f, until=clock.now + 30))  # the lease (600 s) is far away
    assert len(f.graph.to(SESSION)) == 2  # the waiter was sent
    assert run(rt.store.get(waiter)).operation_url is not None and f.poison == {}


def test_its_webhook_message_is_dropped() -> None:
    from shared.delivery import operation_webhooks as deliverer

    rt, f = fake_runtime()
    op = run(rt.store.create(record(1.7e9, status=SUCCEEDED, completed_at=iso(1.7e9), event_id="e1")))
    f.table.touch(op.id, "operation", WebhookAttempts="x")
    run(deliverer.handle_message(rt, encode_delivery(DeliveryTask(op.id, "e1", 1, 1.7e9))))  # no raise
    assert f.webhooks.calls == [] and f.deliveries.texts() == []


def test_a_keyed_retry_onto_a_damaged_record_is_named() -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op0"))
    body = json.dumps({"workbook": "/me/drive/items/01ITEM", "action": "createSession"}).encode()
    first = run(operations.start(rt, body, "key-1", BASE)).operation.id
    f.table.touch(first, "operation", Status="paused")
    with pytest.raises(DamagedRecord) as caught:  # function_app answers it as recordDamaged, not internalError
        run(operations.start(rt, body, "key-1", BASE))
    assert caught.value.operation_id == first


def test_the_purge_retires_or_deletes_damaged_records_and_carries_on_with_the_rest(clock: FakeClock) -> None:
    rt, f = fake_runtime(RETENTION_DAYS="30")
    now = clock.now
    old = now - 40 * DAY
    stranded = run(rt.store.create(record(old, credential_sealed="sealed-token")))
    stranded_bad = run(rt.store.create(record(old + 1, credential_sealed="sealed-token", lane="lane-x")))
    expired = run(rt.store.create(record(old + 2, status=SUCCEEDED, completed_at=iso(old + 2))))
    expired_bad = run(rt.store.create(record(old + 3, status=SUCCEEDED, completed_at=iso(old + 3))))
    fresh_bad = run(rt.store.create(record(now - 60)))
    for op in (stranded, stranded_bad, expired, expired_bad):
        f.table.touch(
            op.id, "operation", UpdatedAt=iso(old), **({"ExpiresAt": iso(old + 3)} if op.completed_at else {})
        )
    for op in (stranded_bad, expired_bad, fresh_bad):
        f.table.touch(op.id, "operation", HistoryJson="{damaged")
    report = run(purge.run(rt, now))
    assert report.stranded == 1 and report.retired == 1 and report.records == 2
    assert sorted(report.damaged) == sorted([stranded_bad.id, expired_bad.id])
    assert run(rt.store.get(stranded.id)).status == FAILED  # the rest went on as before
    assert f.table.row(expired.id, "operation") is None
    assert f.table.row(expired_bad.id, "operation") is None  # expired: deleted with its index entry
    assert f.table.row(index_partition("default"), expired_bad.id) is None
    retired = f.table.row(stranded_bad.id, "operation")
    assert retired is not None and retired["Status"] == FAILED and retired["CredentialSealed"] == ""
    assert json.loads(retired["ErrorJson"])["code"] == "recordDamaged" and retired["ExpiresAt"] > iso(now)
    assert f.table.row(fresh_bad.id, "operation")["Status"] == NOT_STARTED  # neither expired nor stranded: kept
    again = run(purge.run(rt, now + 60))  # nothing left to do: the next run completes too
    assert again.retired == 0 and again.stranded == 0


def test_an_old_idempotency_key_of_a_damaged_record_is_kept_and_the_purge_goes_on(clock: FakeClock) -> None:
    rt, f = fake_runtime(RETENTION_DAYS="1")
    f.graph.script("POST", SESSION, accepted(f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op0"))
    body = json.dumps({"workbook": "/me/drive/items/01ITEM", "action": "createSession"}).encode()
    first = run(operations.start(rt, body, "key-1", BASE)).operation.id
    f.table.touch(first, "operation", Generation="x")
    report = run(purge.run(rt, clock.now + 2 * DAY))
    assert report.keys == 0 and [e for e in f.table.entities if e[0].startswith("idem-")]


def test_a_poll_message_of_a_damaged_record_is_safe_twice(clock: FakeClock) -> None:
    """Delivered twice (or on its last delivery before poison): each time it ends quietly, sends nothing."""
    from shared.operations import poll_step

    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    op = run(rt.store.create(record(clock.now, lane="lane-x")))
    f.table.touch(op.id, "operation", ErrorJson="{")
    message = encode(PollState(op.id, 0))
    for dequeue in (1, 2, rt.settings.poll_max_dequeue_count):
        run(poll_step.handle_message(rt, message, dequeue, "m1"))
    assert f.graph.calls == [] and f.polls.texts() == [] and f.deliveries.texts() == []
