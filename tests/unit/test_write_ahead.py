"""The start path's write-ahead decisions, over the in-process fakes (tests/unit/fakes.py).

The real store runs over a table that keeps ETags as the Table service does (a merge with a stale ETag fails
with 412, which shared/operations/store.py turns into Conflict; storage failures are injected per call); the real Graph
client runs over a scripted transport that answers or fails as told and records what it was sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from shared.api.problems import Problem
from shared.operations import outcome as start_outcome
from shared.operations import phases
from shared.operations import start as operations
from shared.operations.record import ANSWERED, STARTING
from tests.unit.fakes import (
    FakeClock,
    Fakes,
    accepted,
    fake_runtime,
    never_connected,
    reply,
    transport_error,
    workbook_url,
)

BODY = json.dumps(
    {"workbook": "/me/drive/items/01ITEM", "action": "createTableRow", "parameters": {"table": "T", "values": [[1]]}}
).encode()
ROWS = workbook_url() + "/tables/T/rows"
LOCATION = workbook_url() + "/operations/o1"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome write's retry pauses cost wall time, not behaviour."""
    monkeypatch.setattr(start_outcome, "OUTCOME_WRITE_BACKOFF", (0.0, 0.0, 0.0))


def sync_row() -> Any:
    return reply(201, {"index": 0, "values": [[1]]})


def start(rt: Any, key: str | None = "k-1") -> operations.Reply:
    return asyncio.run(operations.start(rt, BODY, key, "http://h/api", content_type="application/json"))


def records(f: Fakes) -> list[dict[str, Any]]:
    return [dict(e) for (_, row), e in f.table.entities.items() if row == "operation"]  # copies: a snapshot


def claims(f: Fakes) -> list[dict[str, Any]]:
    return [e for (partition, _), e in f.table.entities.items() if partition.startswith("idem-")]


def status_writes_fail(f: Fakes, times: int = 4) -> None:
    """The outcome write (a merge carrying Status) fails, the SDK's retries included, `times` times."""
    f.table.fail("update_entity", times=times, match=lambda entity: "Status" in entity)


def test_a_timeout_after_sending_is_stored_as_unknown_and_never_sent_again(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, transport_error(TimeoutError()))
    answer = start(rt)
    assert answer.operation.status == "failed" and answer.operation.error is not None
    assert answer.operation.error["code"] == "graphOutcomeUnknown"
    again = start(rt)  # the same key: the same record; Graph is not called again
    assert again.operation.id == answer.operation.id and len(f.graph.calls) == 1


def test_a_connection_never_made_stores_nothing_and_frees_the_key(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, never_connected(), sync_row())
    with pytest.raises(Problem) as exc:
        start(rt)
    assert exc.value.status == 503 and "never reached Graph" in exc.value.detail
    assert records(f) == [] and claims(f) == []
    assert start(rt).operation.status == "succeeded" and len(f.graph.calls) == 2


def test_a_failed_follow_up_is_finished_by_the_keyed_retry_without_calling_graph(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, accepted(LOCATION))
    f.polls.fail("send_message")
    with pytest.raises(Problem) as exc:
        start(rt)
    assert exc.value.status == 503 and exc.value.extra["reachedGraph"] is True
    [entity] = records(f)
    assert entity["StartPhase"] == ANSWERED and entity["OperationUrl"] == LOCATION  # Graph's answer stored first
    again = start(rt)
    assert again.operation.id == entity["PartitionKey"] and len(f.graph.calls) == 1
    [poll] = f.polls.decoded()
    assert poll["gen"] == entity["Generation"] + 1  # re-armed: a message the first try sent would be stale
    assert records(f)[0]["StartPhase"] == ""


def test_without_a_key_a_stored_answer_is_never_reported_as_nothing_stored(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, sync_row())
    status_writes_fail(f, times=5)  # the outcome write and the bare one after it
    with pytest.raises(Problem) as exc:
        start(rt, key=None)
    assert exc.value.status == 503 and exc.value.extra["reachedGraph"] is True
    assert "Nothing was stored" not in exc.value.detail and "Do not send it again" in exc.value.detail


def test_an_intent_left_starting_ends_unknown_on_a_keyed_retry_after_the_in_flight_window(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, sync_row())
    status_writes_fail(f, times=5)
    with pytest.raises(Problem):
        start(rt)
    [intent] = records(f)
    assert intent["StartPhase"] == STARTING
    with pytest.raises(Problem) as busy:
        start(rt)  # within the window: the first request may still be running
    assert busy.value.status == 429
    clock.advance(phases.sending_window(rt.settings.graph_timeout))  # the window has passed
    late = start(rt)
    assert late.operation.status == "failed" and late.operation.error is not None
    assert late.operation.error["code"] == "graphOutcomeUnknown" and len(f.graph.calls) == 1


def test_when_only_the_result_cannot_be_stored_the_outcome_still_is(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    f.graph.script("POST", ROWS, sync_row())
    f.table.fail("update_entity", times=4, match=lambda entity: '"values"' in str(entity.get("ResultJson")))
    answer = start(rt)
    assert answer.operation.status == "succeeded" and answer.operation.result is None
    assert answer.operation.error == {"code": "resultNotStored", "message": answer.operation.error["message"]}
    assert start(rt).operation.id == answer.operation.id and len(f.graph.calls) == 1


def test_a_token_failure_before_sending_stores_nothing_and_frees_the_key(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    real_token = f.tokens.token
    failures = [ClientAuthenticationError("no managed identity")]

    async def token(*, refresh: bool = False) -> str:
        if failures:
            raise failures.pop()
        return await real_token(refresh=refresh)

    f.tokens.token = token  # type: ignore[method-assign]
    f.graph.script("POST", ROWS, sync_row())
    with pytest.raises(ClientAuthenticationError):
        start(rt)
    assert records(f) == [] and claims(f) == [] and f.graph.calls == []
    assert start(rt).operation.status == "succeeded"
