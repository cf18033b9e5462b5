"""One trace per operation: the POST continues the caller's W3C trace, every queue hop (poll after poll, then the
webhook delivery) is a parent link from the step that sent the message to the step that processed it, Graph's
request ids are on the Graph spans, and no secret or Excel value is in any span.

devhost records spans as JSON lines (OTEL_TRACES_EXPORTER=memory, DEVHOST_SPANS_FILE: devhost/telemetry.py);
the app's code is the same as in Azure. The W3C `traceparent` format followed: version-traceid-parentid-flags,
https://www.w3.org/TR/trace-context/#traceparent-header.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from devhost.keys import write_keys_file
from devhost.telemetry import read_spans

from .conftest import BridgeFactory
from .harness import Bridge, Emulator, WebhookReceiver, new_item, wait_for

FUNCTION_KEY = "trace-test-function-key-0123456789abcdef"
MASTER_KEY = "trace-test-master-key-fedcba9876543210"
EXCEL_VALUES = ["quarterly-secret-cell-7f3a", 987654.321]


@pytest.fixture(scope="module")
def traced(make_bridge: BridgeFactory, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bridge, Path]:
    folder = tmp_path_factory.mktemp("tracing")
    keys = folder / "host-keys.json"
    write_keys_file(keys, master=MASTER_KEY, host_keys={"default": FUNCTION_KEY})
    spans = folder / "spans.jsonl"
    bridge = make_bridge(
        "traced", OTEL_TRACES_EXPORTER="memory", DEVHOST_SPANS_FILE=str(spans), DEVHOST_KEYS_FILE=str(keys)
    )
    return bridge, spans


def by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["span_id"]: span for span in spans}


def ancestors(span: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The span's parents up to the root of what was recorded (the POST's parent is the caller's, not ours)."""
    chain = []
    while span.get("parent_span_id") in index:
        span = index[span["parent_span_id"]]
        chain.append(span)
    return chain


def test_one_trace_from_the_post_to_the_webhook(
    traced: tuple[Bridge, Path], emulator: Emulator, receiver: WebhookReceiver
) -> None:
    bridge, spans_file = traced
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    item = new_item()
    emulator.scenario(item, notStartedPolls=1, runningPolls=1)
    hook = receiver.new_url()
    response = bridge.start(
        {
            "workbook": f"/me/drive/items/{item}",
            "action": "createTableRow",
            "sessionId": "session-trace",  # Graph answers a row write 202 only inside a session (the emulator too)
            "parameters": {"table": "Table1", "values": [EXCEL_VALUES]},
            "callbackUrl": hook,
        },
        **{"x-functions-key": FUNCTION_KEY, "traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "a=b"},
    )
    assert response.status_code == 201, response.text
    operation_id = response.json()["id"]
    status_url = response.headers["location"]
    [delivery] = receiver.wait(hook)

    def recorded() -> list[dict[str, Any]] | None:
        """All spans once the webhook attempt's and all its parents are (a parent ends, and so is written,
        after its children)."""
        spans = read_spans(spans_file)
        index = by_id(spans)
        hooks = [s for s in spans if s["name"] == "webhook POST"]
        done = any(s["attributes"].get("bridge.operation.id") == operation_id for s in hooks)
        whole = all(s["parent_span_id"] in index for s in spans if s["name"] != "POST /api/operations")
        return spans if done and whole else None

    spans = wait_for(recorded, 30, "the webhook attempt's span and its parents")
    [hook_span] = [s for s in spans if s["name"] == "webhook POST"]
    mine = [s for s in spans if s["attributes"].get("bridge.operation.id") == operation_id]
    assert {s["trace_id"] for s in mine} == {trace_id}  # every span naming the operation is in the caller's trace
    trace = [s for s in spans if s["trace_id"] == trace_id]
    index = by_id(trace)

    # The POST continues the caller's trace: its parent is the caller's span.
    [post] = [s for s in trace if s["name"] == "POST /api/operations"]
    assert post["kind"] == "SERVER" and post["parent_span_id"] == caller_span
    assert post["attributes"]["http.response.status_code"] == 201
    assert all(s is post or s["parent_span_id"] in index for s in trace)  # one tree, rooted at the POST

    # Queue hops: each message's processing is the child of the PRODUCER span that sent it.
    consumers = [s for s in trace if s["kind"] == "CONSUMER"]
    for consumer in consumers:
        assert index[consumer["parent_span_id"]]["kind"] == "PRODUCER", consumer
    polls = [s for s in consumers if s["name"] == f"process {bridge.env['POLL_QUEUE']}"]
    assert len(polls) == 3  # notStarted, running, succeeded
    # The webhook attempt descends from the POST through every poll, in order, then the delivery message.
    chain = ancestors(hook_span, index)
    hops = [s for s in chain if s["kind"] == "CONSUMER"]
    assert [s["name"] for s in hops] == [f"process {bridge.env['WEBHOOK_QUEUE']}"] + [polls[0]["name"]] * 3
    assert [s["span_id"] for s in hops[1:]] == [s["span_id"] for s in sorted(polls, key=lambda s: -s["start"])]
    assert chain[-1] is post
    # The result fetch and the terminal write are spans of the last poll.
    last_poll = max(polls, key=lambda s: s["start"])
    names_under_last = {s["name"] for s in trace if last_poll in ancestors(s, index)}
    assert {"fetch result", "finish operation", "Graph GET"} <= names_under_last

    # Graph spans carry Graph's request ids; the client-request-id is the one the emulator received.
    graph = [s for s in trace if s["attributes"].get("peer.service") == "graph"]
    assert len(graph) == 5  # the start, three status polls, the result
    sent = {r["clientRequestId"] for r in emulator.requests(item=item)}
    for span in graph:
        attributes = span["attributes"]
        assert span["kind"] == "CLIENT" and attributes["http.response.status_code"] in (200, 202)
        assert attributes["http.response.header.request-id"][0]
        assert attributes["http.response.header.client-request-id"][0] in sent
    # The receiver got the attempt's own trace context, so it can continue the trace.
    assert delivery.headers["traceparent"].split("-")[1:3] == [trace_id, hook_span["span_id"]]
    assert hook_span["attributes"]["bridge.webhook.outcome"] == "delivered"
    assert hook_span["attributes"]["http.response.status_code"] == 200

    # No secret and no Excel value anywhere: every attribute (and event) value of every recorded span.
    text = json.dumps([{"a": s["attributes"], "e": s["events"], "l": s["links"], "n": s["name"]} for s in spans])
    sig = status_url.split("sig=", 1)[1].split("&", 1)[0]
    forbidden = [
        FUNCTION_KEY,
        MASTER_KEY,
        hook,
        hook.split("/hook/", 1)[1],
        sig,
        status_url,
        delivery.headers["webhook-signature"],
        *bridge.env["WEBHOOK_SECRET"].split(),
        bridge.env["STATUS_LINK_KEYS"].split(":", 1)[1].split()[0],
        str(EXCEL_VALUES[0]),
        str(EXCEL_VALUES[1]),
        "Bearer",
        "eyJ",  # the start of any JWT (the managed-identity token)
    ]
    for secret in forbidden:
        assert secret not in text, secret


def test_a_message_without_trace_context_starts_a_new_trace(traced: tuple[Bridge, Path], emulator: Emulator) -> None:
    """An operation started without a traceparent still gets one trace of its own (a new one)."""
    bridge, spans_file = traced
    item = new_item()
    emulator.scenario(item, runningPolls=1)
    response = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "parameters": {"persistChanges": True}},
        **{"x-functions-key": FUNCTION_KEY},
    )
    assert response.status_code == 202, response.text
    operation_id, location = response.json()["id"], response.headers["location"]  # the signed status URL
    wait_for(lambda: bridge.client.get(location).status_code == 200, 30, "the operation to finish", interval=0.2)

    def finished() -> list[dict[str, Any]]:
        return [
            s
            for s in read_spans(spans_file)
            if s["name"] == "finish operation" and s["attributes"].get("bridge.operation.id") == operation_id
        ]

    [finish] = wait_for(finished, 30, "the terminal write's span")

    def poll_steps() -> list[dict[str, Any]]:
        # a step's span ends (and is written) after its children, so the last one may follow "finish operation"
        return [
            s
            for s in read_spans(spans_file)
            if s["trace_id"] == finish["trace_id"]
            and s["kind"] == "CONSUMER"
            and s["name"] == f"process {bridge.env['POLL_QUEUE']}"
        ]

    wait_for(lambda: len(poll_steps()) >= 2, 30, "both poll steps' spans")
    spans = [s for s in read_spans(spans_file) if s["trace_id"] == finish["trace_id"]]
    [post] = [s for s in spans if s["name"] == "POST /api/operations"]
    assert post["parent_span_id"] is None  # a new trace, rooted at the POST
    assert len(poll_steps()) == 2  # running, succeeded (a fan-out message may follow on the webhook queue)


def test_a_start_that_waited_in_its_lane_keeps_its_own_trace(traced: tuple[Bridge, Path], emulator: Emulator) -> None:
    """The second request for a busy workbook waits (WORKBOOK_CONCURRENCY=1) and is sent later from the lane's
    advance step, a per-workbook message queued by the first operation's end: its spans still join its own
    POST's trace (the record keeps that traceparent), with the advance step as a link."""
    bridge, spans_file = traced
    item = new_item()
    emulator.scenario(item, runningPolls=2)
    traces = {}
    ids = []
    for _ in range(2):
        trace_id = secrets.token_hex(16)
        response = bridge.start(
            {"workbook": f"/me/drive/items/{item}", "action": "createSession", "parameters": {"persistChanges": True}},
            **{"x-functions-key": FUNCTION_KEY, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        traces[response.json()["id"]] = (trace_id, response.headers["location"])
    second = ids[1]
    assert bridge.client.get(traces[second][1]).json()["status"] == "waiting"
    links = [location for _, location in traces.values()]
    wait_for(
        lambda: all(bridge.client.get(link).status_code == 200 for link in links), 60, "both to finish", interval=0.2
    )

    def finished() -> list[dict[str, Any]] | None:
        spans = read_spans(spans_file)
        done = [s for s in spans if s["name"] == "finish operation" and s["attributes"]["bridge.operation.id"] in ids]
        return spans if len(done) == 2 else None

    spans = wait_for(finished, 30, "both terminal writes' spans")
    for operation_id in ids:
        mine = [s for s in spans if s["attributes"].get("bridge.operation.id") == operation_id]
        assert {s["trace_id"] for s in mine} == {traces[operation_id][0]}, operation_id
    [deferred] = [s for s in spans if s["name"] == "start deferred"]
    assert deferred["attributes"]["bridge.operation.id"] == second
    assert deferred["links"] and deferred["links"][0]["trace_id"] != traces[second][0]  # the advance step's span
    index = by_id(spans)
    assert index[deferred["parent_span_id"]]["name"] == "POST /api/operations"
