"""The Http action against scripted endpoints: async pattern, follow-up headers, retries, limit.timeout."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.logicapps import LogicAppsEngine
from tests.logicapps.endpoint import Seen
from tests.support import wait_for

FAST: dict[str, Any] = {"default_poll_interval": 0.01, "retry_scale": 0.001, "poll_scale": 1.0}


def one_http(inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "triggers": {"manual": {"type": "Request", "kind": "Http"}},
        "actions": {"Call": {"type": "Http", "runAfter": {}, "inputs": inputs, **extra}},
    }


def test_follows_location_until_a_non_202_and_ends_with_that_answer(serve) -> None:
    polls = itertools.count()

    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/status/1"), "Retry-After": "0"}, {"status": "running"}
        n = next(polls)
        if n < 2:
            return 202, {"Location": endpoint.url("/status/1"), "Retry-After": "0"}, {"status": "running"}
        return 200, {}, {"status": "succeeded", "result": {"id": "s-1"}}

    endpoint = serve(handler)
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/ops"), "body": {"a": 1}}))
    call = result.actions["Call"]
    assert result.status == "Succeeded" and call.status == "Succeeded"
    assert call.outputs["statusCode"] == 200
    assert call.outputs["body"] == {"status": "succeeded", "result": {"id": "s-1"}}
    assert [(r.purpose, r.method, r.status) for r in call.requests] == [
        ("request", "POST", 202),
        ("poll", "GET", 202),
        ("poll", "GET", 202),
        ("poll", "GET", 200),
    ]
    assert endpoint.seen("POST")[0].json() == {"a": 1}


def test_follow_ups_drop_custom_headers_and_keep_the_authentication(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/status/1"), "Retry-After": "0"}, None
        return 200, {}, {"done": True}

    endpoint = serve(handler)
    inputs = {
        "method": "POST",
        "uri": endpoint.url("/ops"),
        "body": {},
        "headers": {"x-functions-key": "key-1", "Idempotency-Key": "run-1", "X-Custom": "c"},
        "authentication": {"type": "Raw", "value": "Bearer raw-token"},
    }
    result = LogicAppsEngine(**FAST).run(one_http(inputs))
    assert result.status == "Succeeded"
    [first] = endpoint.seen("POST")
    [poll] = endpoint.seen("GET")
    assert first.header("x-functions-key") == "key-1" and first.header("Idempotency-Key") == "run-1"
    assert first.header("Authorization") == "Bearer raw-token"
    # Azure/logicapps#611: only the action's authentication goes to the location URL.
    assert poll.header("x-functions-key") is None
    assert poll.header("Idempotency-Key") is None
    assert poll.header("X-Custom") is None
    assert poll.header("Authorization") == "Bearer raw-token"


def test_a_hand_set_authorization_header_is_not_re_sent(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/status/1"), "Retry-After": "0"}, None
        return 200, {}, {}

    endpoint = serve(handler)
    inputs = {"method": "POST", "uri": endpoint.url("/ops"), "headers": {"Authorization": "Bearer by-hand"}}
    LogicAppsEngine(**FAST).run(one_http(inputs))
    assert endpoint.seen("POST")[0].header("Authorization") == "Bearer by-hand"
    assert endpoint.seen("GET")[0].header("Authorization") is None


def test_managed_identity_is_sent_on_every_poll(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/status/1"), "Retry-After": "0"}, None
        return 200, {}, {}

    endpoint = serve(handler)
    inputs = {
        "method": "POST",
        "uri": endpoint.url("/ops"),
        "authentication": {"type": "ManagedServiceIdentity", "audience": "api://bridge"},
    }
    LogicAppsEngine(**FAST, token_provider=lambda audience: f"tok({audience})").run(one_http(inputs))
    assert {r.header("Authorization") for r in endpoint.requests} == {"Bearer tok(api://bridge)"}


def test_retry_after_on_202_is_waited(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/s"), "Retry-After": "0.4"}, None
        return 200, {}, {}

    endpoint = serve(handler)
    engine = LogicAppsEngine(default_poll_interval=30, retry_scale=0.001)
    engine.run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    post, get = endpoint.requests
    assert get.at - post.at >= 0.4
    assert get.at - post.at < 5  # the 30 s default interval was not used


def test_without_retry_after_the_default_interval_is_waited(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/s")}, None
        return 200, {}, {}

    endpoint = serve(handler)
    LogicAppsEngine(default_poll_interval=0.3).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    post, get = endpoint.requests
    assert get.at - post.at >= 0.3


def test_retry_after_on_a_retried_answer_is_waited_scaled(serve) -> None:
    answers = iter([(429, {"Retry-After": "30"}, None), (200, {}, {"ok": 1})])
    endpoint = serve(lambda seen: next(answers))
    started = time.monotonic()
    result = LogicAppsEngine(retry_scale=0.02).run(one_http({"method": "GET", "uri": endpoint.url("/o")}))
    first, second = endpoint.requests
    assert result.status == "Succeeded"
    assert second.at - first.at >= 30 * 0.02
    assert time.monotonic() - started < 10


def test_409_is_not_retried(serve) -> None:
    endpoint = serve(lambda seen: (409, {}, {"code": "conflict"}))
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o"), "body": {}}))
    call = result.actions["Call"]
    assert len(endpoint.requests) == 1
    assert call.status == "Failed" and result.status == "Failed"
    assert call.outputs["statusCode"] == 409 and call.outputs["body"] == {"code": "conflict"}


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_408_429_and_5xx_are_retried_4_times_by_default(serve, status: int) -> None:
    endpoint = serve(lambda seen: (status, {}, None))
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    assert len(endpoint.requests) == 5  # the request and 4 retries
    assert result.actions["Call"].status == "Failed"
    assert result.actions["Call"].outputs["statusCode"] == status


def test_default_retry_intervals_are_exponential_within_5_to_45_seconds(serve) -> None:
    endpoint = serve(lambda seen: (503, {}, None))
    LogicAppsEngine(retry_scale=0.01).run(one_http({"method": "GET", "uri": endpoint.url("/o")}))
    gaps = [b.at - a.at for a, b in itertools.pairwise(endpoint.requests)]
    assert len(gaps) == 4
    assert all(g >= 5 * 0.01 for g in gaps)  # error-exception-handling.md: "capped between 5 and 45 seconds"
    assert all(g < 45 * 0.01 + 1.0 for g in gaps)  # slack for a loaded machine


def test_retry_policy_none_and_fixed(serve) -> None:
    endpoint = serve(lambda seen: (500, {}, None))
    LogicAppsEngine(**FAST).run(one_http({"method": "GET", "uri": endpoint.url("/o"), "retryPolicy": {"type": "none"}}))
    assert len(endpoint.requests) == 1
    other = serve(lambda seen: (500, {}, None))
    LogicAppsEngine(retry_scale=0.01).run(
        one_http(
            {"method": "GET", "uri": other.url("/o"), "retryPolicy": {"type": "fixed", "count": 2, "interval": "PT10S"}}
        )
    )
    assert len(other.requests) == 3
    assert all(b.at - a.at >= 0.1 for a, b in itertools.pairwise(other.requests))


def test_polls_are_retried_too(serve) -> None:
    answers = iter(
        [(202, {"Location": "", "Retry-After": "0"}, None), (503, {}, None), (503, {}, None), (200, {}, {"done": 1})]
    )

    def handler(seen: Seen):
        status, headers, body = next(answers)
        if "Location" in headers:
            headers = {**headers, "Location": endpoint.url("/s")}
        return status, headers, body

    endpoint = serve(handler)
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    assert result.status == "Succeeded"
    assert [r.status for r in result.actions["Call"].requests] == [202, 503, 503, 200]


def test_a_final_4xx_after_polling_fails_the_action(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/s"), "Retry-After": "0"}, None
        return 422, {"Content-Type": "application/problem+json"}, b'{"code": "failed"}'

    endpoint = serve(handler)
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    call = result.actions["Call"]
    assert call.status == "Failed" and call.outputs["statusCode"] == 422
    # logic-apps-content-type.md: only application/json is parsed natively
    assert call.outputs["body"]["$content-type"] == "application/problem+json"
    both = LogicAppsEngine(**FAST, json_suffix_is_json=True).run(
        one_http({"method": "POST", "uri": endpoint.url("/o")})
    )
    assert both.actions["Call"].outputs["body"] == {"code": "failed"}


def test_limit_timeout_ends_the_wait_as_timed_out(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": endpoint.url("/s"), "Retry-After": "0.05"}, None))
    started = time.monotonic()
    result = LogicAppsEngine(**FAST).run(
        one_http({"method": "POST", "uri": endpoint.url("/o")}, limit={"timeout": "PT0.5S"})
    )
    call = result.actions["Call"]
    assert call.status == "TimedOut" and call.code == "ActionTimedOut"
    assert result.status == "Failed"
    assert 0.5 <= time.monotonic() - started < 5
    assert len(endpoint.requests) > 2
    cancelled = LogicAppsEngine(**FAST, timeout_status="Cancelled").run(
        one_http({"method": "POST", "uri": endpoint.url("/o")}, limit={"timeout": "PT0.2S"})
    )
    assert cancelled.actions["Call"].status == "Cancelled" and cancelled.status == "Failed"


def test_disable_async_pattern_ends_with_the_202(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": endpoint.url("/s")}, {"status": "running"}))
    result = LogicAppsEngine(**FAST).run(
        one_http({"method": "POST", "uri": endpoint.url("/o")}, operationOptions="DisableAsyncPattern")
    )
    assert result.actions["Call"].status == "Succeeded"
    assert result.actions["Call"].outputs["statusCode"] == 202
    assert len(endpoint.requests) == 1


def test_a_stateless_standard_workflow_does_not_poll(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": endpoint.url("/s")}, None))
    workflow = {"definition": one_http({"method": "POST", "uri": endpoint.url("/o")}), "kind": "Stateless"}
    result = LogicAppsEngine(**FAST).run(workflow)
    assert result.actions["Call"].outputs["statusCode"] == 202 and len(endpoint.requests) == 1


def test_a_202_without_location_is_the_final_answer(serve) -> None:
    endpoint = serve(lambda seen: (202, {}, {"queued": True}))
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    assert result.actions["Call"].status == "Succeeded" and len(endpoint.requests) == 1


def test_a_relative_location_fails_the_action(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": "/api/operations/1"}, None))
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    assert result.actions["Call"].status == "Failed"
    assert result.actions["Call"].code == "InvalidLocationHeader"


def test_no_answer_is_retried_then_fails() -> None:
    result = LogicAppsEngine(**FAST).run(one_http({"method": "GET", "uri": "http://127.0.0.1:9/nothing"}))
    call = result.actions["Call"]
    assert call.status == "Failed" and call.outputs is None
    assert len(call.requests) == 5 and all(r.status is None and r.error for r in call.requests)


def test_bodies_headers_and_queries_go_out_as_logic_apps_sends_them(serve) -> None:
    endpoint = serve(lambda seen: (200, {"Content-Type": "text/plain"}, "plain answer"))
    result = LogicAppsEngine(**FAST).run(
        one_http({"method": "POST", "uri": endpoint.url("/o"), "queries": {"code": "k 1"}, "body": "text body"})
    )
    [seen] = endpoint.requests
    assert seen.query == "code=k+1"
    assert seen.body == b"text body" and seen.header("Content-Type").startswith("text/plain")
    assert seen.header("x-ms-workflow-run-id") == result.run_name
    assert seen.header("x-ms-workflow-operation-name") == "Call"
    assert result.actions["Call"].outputs["body"] == "plain answer"


def test_location_urls_are_requested_exactly_as_given(serve) -> None:
    def handler(seen: Seen):
        if seen.method == "POST":
            return 202, {"Location": endpoint.url("/s/1?code=ab%2Fc%3D%3D&sp=%2Fruns"), "Retry-After": "0"}, None
        return 200, {}, {"query": seen.query}

    endpoint = serve(handler)
    result = LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    assert result.actions["Call"].outputs["body"] == {"query": "code=ab%2Fc%3D%3D&sp=%2Fruns"}


def test_cancel_while_polling(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": endpoint.url("/s"), "Retry-After": "0.05"}, None))
    handle = LogicAppsEngine(**FAST).start(one_http({"method": "POST", "uri": endpoint.url("/o")}))
    wait_for(lambda: len(endpoint.seen("GET")) >= 2, 10, "two polls")
    handle.cancel()
    result = handle.wait(10)
    assert result.status == "Cancelled" and result.actions["Call"].status == "Cancelled"
    assert len(result.actions["Call"].requests) == len(endpoint.requests)  # every request is in the history


def test_a_run_past_its_timeout_is_canceled_and_reported(serve) -> None:
    endpoint = serve(lambda seen: (202, {"Location": endpoint.url("/s"), "Retry-After": "0.05"}, None))
    with pytest.raises(AssertionError, match=r"did not finish within 0.3s.*'Call': 'Running'"):
        LogicAppsEngine(**FAST).run(one_http({"method": "POST", "uri": endpoint.url("/o")}), timeout=0.3)
