"""A start whose request died before the Excel request went out says so, and a keyed retry does not wait 60 s for
it (issue 18, item 7).

Before: the intent was stored `starting` before the token was fetched and the request sent, so a host killed in
between left a record nobody could tell from one killed after sending. A keyed retry answered `429` for 60 s and
then ended it `failed` / `graphOutcomeUnknown`, although (in the burst the issue measured) 4 of 5 never reached
Graph. Now the intent is `prepared` until an ETag-guarded `starting` mark just before the request goes out
(shared/operations/phases.py): a `prepared` record is known unsent, and after a short window a keyed retry sends
it itself (its mark is the claim: of two requests only one sends); a `starting` one keeps the honest answer,
graphOutcomeUnknown, after a window derived from the Graph request timeout.

The host kill is an asyncio.CancelledError raised where the first request was waiting: nothing after it runs,
as when the worker process dies there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest

from shared.api.problems import Problem
from shared.operations import outcome as start_outcome
from shared.operations import phases
from shared.operations import reads as operation_reads
from shared.operations import start as operations
from shared.operations.record import PREPARED, STARTING
from tests.unit.fakes import GRAPH, FakeClock, accepted, fake_runtime, workbook_url

BASE = "https://bridge.example.test/api"
SESSION = workbook_url() + "/createSession"
LOC = f"{GRAPH}/me/drive/items/01ITEM/workbook/operations/op1"
BODY = json.dumps({"workbook": "/me/drive/items/01ITEM", "action": "createSession"}).encode()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def start(rt: Any, key: str | None = "key-1") -> Any:
    return run(operations.start(rt, BODY, key, BASE))


def killed_while_getting_its_token(f: Any) -> None:
    """The first request's host dies while it waits for its Graph token (after its intent was stored)."""
    original = f.tokens.token

    async def dies(*, refresh: bool = False) -> str:
        f.tokens.token = original
        raise asyncio.CancelledError

    f.tokens.token = dies


def slow_token(f: Any, gate: asyncio.Event) -> asyncio.Event:
    """The next token takes until `gate` opens (a slow identity endpoint); the event returned is set once the
    request is waiting for it (its intent is stored by then)."""
    original, waiting = f.tokens.token, asyncio.Event()

    async def slow(*, refresh: bool = False) -> str:
        f.tokens.token = original
        waiting.set()
        await gate.wait()
        return str(await original(refresh=refresh))

    f.tokens.token = slow
    return waiting


def the_record(f: Any) -> dict[str, Any]:
    [entity] = [e for (_, row), e in f.table.entities.items() if row == "operation"]
    return entity


def test_a_keyed_retry_sends_a_start_that_was_never_sent_after_a_short_window(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    killed_while_getting_its_token(f)
    with pytest.raises(asyncio.CancelledError):
        start(rt)
    assert the_record(f)["StartPhase"] == PREPARED and f.graph.calls == []
    with pytest.raises(Problem) as busy:  # the first request may still be alive for a moment
        start(rt)
    assert busy.value.status == 429 and int(busy.value.headers["Retry-After"]) <= phases.PREPARED_WINDOW_SECONDS
    clock.advance(phases.PREPARED_WINDOW_SECONDS)  # 10 s, not 60
    f.graph.script("POST", SESSION, accepted(LOC))
    retried = start(rt)
    assert retried.operation.status == "notStarted" and retried.operation.operation_url == LOC
    assert len(f.graph.to(SESSION)) == 1 and retried.operation.error is None


def test_a_start_never_sent_ends_start_not_sent_for_a_get_not_outcome_unknown(clock: FakeClock) -> None:
    rt, f = fake_runtime()
    killed_while_getting_its_token(f)
    with pytest.raises(asyncio.CancelledError):
        start(rt, key=None)
    clock.advance(phases.PREPARED_WINDOW_SECONDS)
    operation_id = the_record(f)["PartitionKey"]
    seen = run(operation_reads.get(rt, operation_id)).operation
    assert seen.status == "failed" and seen.error["code"] == start_outcome.NOT_SENT and f.graph.calls == []
    assert "nothing was done" in seen.error["message"]


def test_a_slow_first_request_and_a_retry_that_took_over_send_it_once(clock: FakeClock) -> None:
    """The first request is alive but slower than the window: the retry marks it first and sends it; the first
    one's mark then loses on the ETag and it sends nothing."""
    rt, f = fake_runtime()
    f.graph.script("POST", SESSION, accepted(LOC))
    gate = asyncio.Event()

    async def both() -> tuple[Any, Any]:
        waiting = slow_token(f, gate)
        first = asyncio.create_task(operations.start(rt, BODY, "key-1", BASE))
        await waiting.wait()  # its intent is stored; it waits for its token
        clock.advance(phases.PREPARED_WINDOW_SECONDS)
        second = await operations.start(rt, BODY, "key-1", BASE)
        gate.set()
        return await first, second

    first, second = run(both())
    assert len(f.graph.to(SESSION)) == 1
    assert first.operation.id == second.operation.id and second.operation.operation_url == LOC
    assert the_record(f)["StartPhase"] == "" and the_record(f)["OperationUrl"] == LOC


def test_a_start_that_may_have_been_sent_keeps_outcome_unknown_after_a_window_from_the_graph_timeout(
    clock: FakeClock,
) -> None:
    rt, f = fake_runtime()
    f.graph.gate = asyncio.Event()  # the Excel request is on its way when the host dies

    async def killed_in_flight() -> None:
        sent = asyncio.Event()
        request = f.graph.request

        def sending(*args: Any, **kwargs: Any) -> Any:
            sent.set()
            return request(*args, **kwargs)

        f.graph.request = sending
        task = asyncio.create_task(operations.start(rt, BODY, "key-1", BASE))
        await sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    f.graph.script("POST", SESSION, accepted(LOC))
    run(killed_in_flight())
    assert the_record(f)["StartPhase"] == STARTING
    window = phases.sending_window(rt.settings.graph_timeout)
    assert window == 2 * rt.settings.graph_timeout + phases.TOKEN_REFRESH_SECONDS + phases.OUTCOME_WRITE_SECONDS
    with pytest.raises(Problem) as busy:
        start(rt)
    assert busy.value.status == 429 and int(busy.value.headers["Retry-After"]) == window
    clock.advance(window)
    late = start(rt)
    assert late.operation.error["code"] == start_outcome.OUTCOME_UNKNOWN and len(f.graph.calls) == 1


def test_a_cancel_before_the_mark_means_the_request_is_never_sent(clock: FakeClock) -> None:
    from shared.api.identity import Caller
    from shared.operations import changes

    rt, f = fake_runtime()
    gate = asyncio.Event()

    async def scenario() -> Any:
        waiting = slow_token(f, gate)
        task = asyncio.create_task(operations.start(rt, BODY, None, BASE))
        await waiting.wait()
        [operation_id] = [k[0] for k in f.table.entities if k[1] == "operation"]
        await changes.cancel(rt, operation_id, Caller("default"))
        gate.set()
        return await task

    answer = run(scenario())
    assert answer.operation.status == "canceled" and f.graph.calls == []


def test_a_lane_request_never_sent_goes_back_in_line_and_its_lane_sends_it(clock: FakeClock) -> None:
    from shared.lanes import admission
    from shared.storage.messages import encode_lane

    rt, f = fake_runtime(WORKBOOK_CONCURRENCY="1")
    killed_while_getting_its_token(f)
    with pytest.raises(asyncio.CancelledError):
        start(rt, key=None)
    record = the_record(f)
    assert record["StartPhase"] == PREPARED and record["Lane"]
    clock.advance(phases.PREPARED_WINDOW_SECONDS)
    f.graph.script("POST", SESSION, accepted(LOC))
    run(admission.handle_message(rt, encode_lane(record["Lane"])))  # the lane's advance step (its recheck)
    after = the_record(f)
    assert after["OperationUrl"] == LOC and after["Status"] == "notStarted" and len(f.graph.to(SESSION)) == 1
