"""The start path's write-ahead decisions, with small fakes for the store, the queues and Graph.

The fake store keeps ETags as the Table service does (a merge with a stale ETag fails with 412, which
shared/store.py turns into Conflict); the fake Graph answers or fails as scripted and counts what it was sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest

from shared import operations
from shared.graph import GraphResponse, TransportFailure
from shared.polling import Timing
from shared.problems import Problem
from shared.records import ANSWERED, STARTING, Operation, iso
from shared.runtime import Runtime
from shared.settings import load_settings
from shared.store import Conflict, IdempotencyClaim

BODY = json.dumps(
    {"workbook": "/me/drive/items/01ITEM", "action": "createTableRow", "parameters": {"table": "T", "values": [[1]]}}
).encode()


@dataclass
class FakeStore:
    records: dict[str, Operation] = field(default_factory=dict)
    claims: dict[str, IdempotencyClaim] = field(default_factory=dict)
    fail_updates_with: set[str] = field(default_factory=set)  # fail a merge that writes one of these fields
    fail_results: bool = False  # fail a merge that writes a result (its blob upload failed)
    version: int = 0

    def _tag(self, op: Operation) -> Operation:
        self.version += 1
        stored = op.with_(etag=str(self.version))
        self.records[op.id] = stored
        return stored

    async def create(self, op: Operation) -> Operation:
        if op.id in self.records:
            raise Conflict(op.id)
        return self._tag(op)

    async def get(self, operation_id: str) -> Operation | None:
        return self.records.get(operation_id)

    async def update(self, op: Operation, changed: set[str]) -> Operation:
        current = self.records.get(op.id)
        if current is None or current.etag != op.etag:
            raise Conflict(op.id)
        if changed & self.fail_updates_with or (self.fail_results and "result" in changed and op.result is not None):
            raise RuntimeError("storage failed")
        return self._tag(current.with_(**{name: getattr(op, name) for name in changed}))

    async def delete(self, operation_id: str) -> None:
        self.records.pop(operation_id, None)

    async def claim_idempotency(self, key_hash: str, operation_id: str, fingerprint: str) -> IdempotencyClaim:
        if key_hash in self.claims:
            found = self.claims[key_hash]
            return IdempotencyClaim(found.operation_id, found.fingerprint, found.created_at, existing=True)
        self.claims[key_hash] = IdempotencyClaim(operation_id, fingerprint, 0.0, existing=False)
        return self.claims[key_hash]

    async def release_idempotency(self, key_hash: str) -> None:
        self.claims.pop(key_hash, None)


@dataclass
class FakeGraph:
    answers: list[GraphResponse | Exception]
    starts: int = 0

    async def start(self, base_url: str, request: Any, tokens: Any = None) -> GraphResponse:
        self.starts += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def trusted(self, url: str) -> bool:
        return url.startswith("http://127.0.0.1:1/")


@dataclass
class FakeQueue:
    sent: list[Any] = field(default_factory=list)
    fail: bool = False

    async def send(self, item: Any, delay: int = 0) -> None:
        if self.fail:
            raise RuntimeError("queue down")
        self.sent.append(item)

    async def send_fanout(self, item: Any, delay: int = 0) -> None:
        self.sent.append(item)


@dataclass
class World:
    store: FakeStore
    graph: FakeGraph
    polls: FakeQueue
    deliveries: FakeQueue

    @property
    def rt(self) -> Runtime:
        settings = load_settings(
            {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "GRAPH_BASE_URL": "http://127.0.0.1:1/v1.0"}
        )
        ns = {
            "settings": settings,
            "store": self.store,
            "graph": self.graph,
            "polls": self.polls,
            "deliveries": self.deliveries,
            "timing": Timing(1, 30, 3600, 8),
            "history": None,
        }
        return cast(Runtime, type("FakeRuntime", (), ns)())


def world(*answers: GraphResponse | Exception) -> World:
    return World(FakeStore(), FakeGraph(list(answers)), FakeQueue(), FakeQueue())


def sync_row() -> GraphResponse:
    return GraphResponse(201, {}, json.dumps({"index": 0, "values": [[1]]}).encode())


def accepted() -> GraphResponse:
    return GraphResponse(202, {"location": "http://127.0.0.1:1/v1.0/me/drive/items/01ITEM/workbook/operations/o1"}, b"")


def timeout_after_sending() -> TransportFailure:
    exc = TransportFailure("Graph did not answer in time")
    exc.__cause__ = TimeoutError()
    return exc


def start(w: World, key: str | None = "k-1") -> operations.Reply:
    return asyncio.run(operations.start(w.rt, BODY, key, "http://h/api", content_type="application/json"))


def test_a_timeout_after_sending_is_stored_as_unknown_and_never_sent_again() -> None:
    w = world(timeout_after_sending())
    reply = start(w)
    assert reply.operation.status == "failed" and reply.operation.error is not None
    assert reply.operation.error["code"] == "graphOutcomeUnknown"
    again = start(w)  # the same key: the same record; Graph is not called again
    assert again.operation.id == reply.operation.id and w.graph.starts == 1


def test_a_connection_never_made_stores_nothing_and_frees_the_key() -> None:
    refused = TransportFailure("connection to Graph failed: ClientConnectorError")
    refused.__cause__ = aiohttp.ClientConnectorError(cast(Any, None), OSError(111, "refused"))
    w = world(refused, sync_row())
    with pytest.raises(Problem) as exc:
        start(w)
    assert exc.value.status == 503 and "never reached Graph" in exc.value.detail
    assert w.store.records == {} and w.store.claims == {}
    assert start(w).operation.status == "succeeded" and w.graph.starts == 2


def test_a_failed_follow_up_is_finished_by_the_keyed_retry_without_calling_graph() -> None:
    w = world(accepted())
    w.polls.fail = True
    with pytest.raises(Problem) as exc:
        start(w)
    assert exc.value.status == 503 and exc.value.extra["reachedGraph"] is True
    [stored] = w.store.records.values()
    assert stored.start_phase == ANSWERED and stored.operation_url  # Graph's answer was stored first
    w.polls.fail = False
    again = start(w)
    assert again.operation.id == stored.id and w.graph.starts == 1
    [poll] = w.polls.sent
    assert poll.generation == stored.generation + 1  # re-armed: a message the first try sent would be stale
    assert w.store.records[stored.id].start_phase is None


def test_without_a_key_a_stored_answer_is_never_reported_as_nothing_stored() -> None:
    w = world(sync_row())
    w.store.fail_updates_with = {"status"}  # the outcome write fails
    with pytest.raises(Problem) as exc:
        start(w, key=None)
    assert exc.value.status == 503 and exc.value.extra["reachedGraph"] is True
    assert "Nothing was stored" not in exc.value.detail and "Do not send it again" in exc.value.detail


def test_an_intent_left_starting_ends_unknown_on_a_keyed_retry_after_the_in_flight_window() -> None:
    w = world(sync_row())
    w.store.fail_updates_with = {"status"}
    with pytest.raises(Problem):
        start(w)
    [intent] = w.store.records.values()
    assert intent.start_phase == STARTING
    with pytest.raises(Problem) as busy:
        start(w)  # within the window: the first request may still be running
    assert busy.value.status == 429
    w.store.fail_updates_with = set()
    w.store.records[intent.id] = intent.with_(updated_at=iso(0))  # the window has passed
    late = start(w)
    assert late.operation.status == "failed" and late.operation.error is not None
    assert late.operation.error["code"] == "graphOutcomeUnknown" and w.graph.starts == 1


def test_when_only_the_result_cannot_be_stored_the_outcome_still_is() -> None:
    w = world(sync_row())
    w.store.fail_results = True
    reply = start(w)
    assert reply.operation.status == "succeeded" and reply.operation.result is None
    assert reply.operation.error == {"code": "resultNotStored", "message": reply.operation.error["message"]}
    assert start(w).operation.id == reply.operation.id and w.graph.starts == 1


def test_a_token_failure_before_sending_stores_nothing_and_frees_the_key() -> None:
    from azure.core.exceptions import ClientAuthenticationError

    w = world(ClientAuthenticationError("no managed identity"), sync_row())
    with pytest.raises(ClientAuthenticationError):
        start(w)
    assert w.store.records == {} and w.store.claims == {}
    assert start(w).operation.status == "succeeded"
