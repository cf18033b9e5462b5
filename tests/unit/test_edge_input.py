"""Issue 18, items 1-3: strict input at the edge. Identifiers and URL patterns anchored for real (Python's `$`
matches before a trailing line feed: `re.match(r"^a$", "a\\n")` succeeds), control characters refused wherever a
value reaches a header, a URL path or storage, and strings that are not Unicode scalar values (a lone surrogate
such as JSON's "\\ud800") refused in every body, each answered 400 naming the field. And, in depth, a Graph
request that cannot be sent (a header value HTTP forbids, RFC 9110 section 5.5) ends at once with its own code,
never retried as transient and never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shared.api.identity import Caller
from shared.api.problems import Problem
from shared.operations import start as operations
from shared.operations import write_ahead as start_flow
from shared.operations.record import is_operation_id, new_operation_id
from shared.operations.requests import StartRequest, parse_json_body, parse_operation_request
from shared.subscriptions.rules import is_subscription_id, parse_subscription_request
from tests.unit.fakes import GRAPH, FakeClock, accepted, drain, fake_runtime, workbook_url

ORIGIN = "https://graph.example.test"
WORKBOOK = "/me/drive/items/01ITEM"
OP_URL = f"{GRAPH}{WORKBOOK}/workbook/operations/op1"


def refused_field(payload: Any) -> str:
    with pytest.raises(Problem) as caught:
        parse_operation_request(payload, graph_origin=ORIGIN, allow_private_callbacks=False, webhooks_configured=True)
    assert caught.value.status == 400
    return caught.value.errors[0].field


def body_refused_field(raw: bytes) -> str:
    """The whole edge for a raw body: strict JSON, then the request's own rules."""
    with pytest.raises(Problem) as caught:
        parse_operation_request(
            parse_json_body(raw), graph_origin=ORIGIN, allow_private_callbacks=False, webhooks_configured=True
        )
    assert caught.value.status == 400
    json.dumps(caught.value.body(None), ensure_ascii=False).encode()  # the answer itself is sendable UTF-8
    return caught.value.errors[0].field


# --- item 1: a sessionId ending in a line feed --------------------------------------------------------------


@pytest.mark.parametrize("session", ["abc\n", "abc\r\n", "a\nb", "ab\x00", "\tabc"])
def test_a_session_id_with_a_control_character_is_refused(session: str) -> None:
    payload = {"workbook": WORKBOOK, "action": "createSession", "sessionId": session}
    assert refused_field(payload) == "sessionId"


# --- item 2: a workbook ending in a line feed, an operationUrl with LF or TAB inside -------------------------


@pytest.mark.parametrize("workbook", [WORKBOOK + "\n", "/me/drive/items/01\n/x"])
def test_a_workbook_with_a_line_feed_is_refused(workbook: str) -> None:
    assert refused_field({"workbook": workbook, "action": "createSession"}) == "workbook"


@pytest.mark.parametrize(
    "url",
    [
        f"{ORIGIN}/v1.0{WORKBOOK}/workbook/operations/op\n1",
        f"{ORIGIN}/v1.0{WORKBOOK}/workbook/operations/op\t1",
        f"{ORIGIN}/v1.0/me/drive/items/01\tITEM/workbook/operations/op1",
        f"{ORIGIN}/v1.0{WORKBOOK}/workbook/operations/op1\n",
        f"{ORIGIN}/v1.0{WORKBOOK}/workbook/operations/op1?sessionId=a\nb",
    ],
)
def test_an_operation_url_with_a_control_character_is_refused(url: str) -> None:
    assert refused_field({"operationUrl": url}) == "operationUrl"


@pytest.mark.parametrize("table", ["Table1\n", "Ta\tble", "T\x00", "T\x7f", "T\x85"])
def test_a_table_name_with_a_control_character_is_refused(table: str) -> None:
    payload = {"workbook": WORKBOOK, "action": "deleteTableRow", "parameters": {"table": table, "index": 0}}
    assert refused_field(payload) == "parameters.table"


@pytest.mark.parametrize("reference", ["order-42\n", "a\x00b", "x\x1b[31m"])
def test_a_client_reference_with_a_control_character_is_refused(reference: str) -> None:
    payload = {"workbook": WORKBOOK, "action": "createSession", "clientReference": reference}
    assert refused_field(payload) == "clientReference"


def test_identifiers_are_anchored_at_the_very_end() -> None:
    operation_id = new_operation_id(1_780_000_000.0)
    assert is_operation_id(operation_id)
    assert not is_operation_id(operation_id + "\n")
    assert is_subscription_id("a" * 48)
    assert not is_subscription_id("a" * 48 + "\n")


# --- item 3 (bodies): strings that are not Unicode scalar values ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            b'{"workbook": "/me/drive/items/01ITEM", "action": "createSession", "clientReference": "\\ud800"}',
            "clientReference",
        ),
        (
            b'{"workbook": "/me/drive/items/01ITEM", "action": "createSession", "clientReference": "a\\udfffb"}',
            "clientReference",
        ),
        (
            b'{"workbook": "/me/drive/items/01ITEM", "action": "createTableRow", "parameters": {"table": "T", '
            b'"values": [[1], [2], [3], [4, "\\udc00"]]}}',
            "parameters.values[3][1]",
        ),
        (b'{"workbook": "/me/drive/items/01ITEM", "action": "createSession", "\\ud83d": 1}', "body"),
    ],
)
def test_a_lone_surrogate_in_a_body_is_refused_naming_its_field(raw: bytes, field: str) -> None:
    assert body_refused_field(raw) == field


def test_a_proper_surrogate_pair_is_a_character_and_is_accepted() -> None:
    raw = b'{"workbook": "/me/drive/items/01ITEM", "action": "createSession", "clientReference": "\\ud83d\\ude00"}'
    parsed = parse_operation_request(
        parse_json_body(raw), graph_origin=ORIGIN, allow_private_callbacks=False, webhooks_configured=True
    )
    assert parsed.client_reference == "\N{GRINNING FACE}"


def test_a_lone_surrogate_in_a_subscription_body_is_refused() -> None:
    raw = b'{"callbackUrl": "https://hooks.example.com/cb", "actions": ["\\ud800"]}'
    with pytest.raises(Problem) as caught:
        parse_subscription_request(parse_json_body(raw), allow_private_callbacks=False, webhooks_configured=True)
    assert caught.value.status == 400 and caught.value.errors[0].field == "actions[0]"


# --- in depth: a Graph request that cannot be sent -----------------------------------------------------------


def test_a_start_whose_header_cannot_be_sent_ends_at_once_with_its_own_code(clock: FakeClock) -> None:
    """A stored request that never met today's validation (a record written by an older version, say): the
    start must not reach the transport, must not be a NotSent (retried, or a 500), and ends failed at once."""
    rt, f = fake_runtime()
    request = StartRequest(WORKBOOK, "createSession", {"persistChanges": True}, "abc\n", None, None)
    acting = start_flow.Acting(Caller(rt.settings.default_owner), None, None)
    operation_id = new_operation_id(clock.now)

    async def go() -> Any:
        intent = await start_flow.record_for(rt, request, operation_id, clock.now, "https://b/api", acting)
        intent = await rt.store.create(intent.with_(start_phase="starting"))
        return await start_flow.send_start(rt, request, intent, None, None)

    op = asyncio.run(go())
    assert op.status == "failed"
    assert op.error["code"] == "requestNotSendable"
    assert f.graph.calls == []


def test_a_poll_of_a_url_that_cannot_be_sent_ends_at_once(clock: FakeClock) -> None:
    """An operation URL stored by an older version with a line feed inside: the first poll ends it with its own
    code; it is not retried as a transient failure until graphUnavailable."""
    rt, f = fake_runtime()
    f.graph.script("POST", workbook_url() + "/createSession", accepted(OP_URL + "\n"))
    answer = asyncio.run(
        operations.start(rt, json.dumps({"workbook": WORKBOOK, "action": "createSession"}).encode(), None, "https://b")
    )
    runs = asyncio.run(drain(rt, clock, f))
    op = asyncio.run(rt.store.get(answer.operation.id))
    assert op.status == "failed" and op.error["code"] == "requestNotSendable"
    polls = [r for r in runs if r.queue == rt.settings.poll_queue]
    assert len(polls) == 1 and polls[0].error is None  # one poll, not retried
    assert [c for c in f.graph.calls if c.method == "GET"] == []


# --- found by the fuzz run: a bracket that opens an IPv6 host and never closes (urlsplit raises ValueError) ----


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"operationUrl": f"https://[::1/v1.0{WORKBOOK}/workbook/operations/op1"}, "operationUrl"),
        ({"workbook": WORKBOOK, "action": "createSession", "callbackUrl": "https://[::1/x"}, "callbackUrl"),
        ({"workbook": WORKBOOK, "action": "createSession", "callbackUrl": "https://a]b/x"}, "callbackUrl"),
    ],
)
def test_an_unparseable_url_is_a_400_naming_its_field(payload: dict[str, Any], field: str) -> None:
    assert refused_field(payload) == field


def test_an_unparseable_subscription_callback_is_a_400() -> None:
    with pytest.raises(Problem) as caught:
        parse_subscription_request(
            {"callbackUrl": "https://[::1/x"}, allow_private_callbacks=False, webhooks_configured=True
        )
    assert caught.value.errors[0].field == "callbackUrl"


# --- the list's `status` query parameter: exactly one of the statuses, or a 400 naming it ---------------------


@pytest.mark.parametrize("status", ["running\n", "Running", "\ud800", "run\x00ning", "", "running "])
def test_a_status_query_that_is_not_exactly_a_status_is_refused(status: str) -> None:
    from shared.operations import reads

    rt, _ = fake_runtime()
    with pytest.raises(Problem) as caught:
        asyncio.run(reads.list_page(rt, status, None, None))
    assert caught.value.status == 400 and caught.value.errors[0].field == "status"
    json.dumps(caught.value.body("https://b/api/operations"), ensure_ascii=False).encode()  # sendable as UTF-8
