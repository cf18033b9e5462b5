"""Strict JSON in and out: shared.wire.strict_json, and the places that must use it (issue 9)."""

from __future__ import annotations

import asyncio
import base64
import json
import math

import pytest

from shared.api.problems import Problem
from shared.api.responses import json_response
from shared.crypto.page_tokens import TokenRefused, page_tokens, scope
from shared.graph.answers import graph_error, result_from
from shared.operations.reads import list_page, parse_top
from shared.operations.record import Operation, to_entity
from shared.wire.strict_json import JsonRefused, dumps, loads, nesting_depth
from tests.unit.fakes import fake_runtime


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity]",
        '{"a": -Infinity}',
        "1e400",
        "-1e400",
        "[" * 65 + "]" * 65,
        "9" * 65,
        '{"a": 1, "a": 1}',
        "[1,]",
        '{"a" 1}',
        "\ud800",
    ],
    ids=lambda t: ascii(t)[:30],
)
def test_loads_refuses(text):
    with pytest.raises(JsonRefused):
        loads(text)


def test_loads_never_raises_anything_else_for_deep_or_huge_input():
    for text in ["[" * 100_000, '{"a":' * 100_000, "9" * 100_000, "-" + "9" * 5000, "0." + "9" * 5000]:
        with pytest.raises(JsonRefused):
            loads(text)


def test_nesting_depth_ignores_brackets_in_strings_and_escapes():
    assert nesting_depth('[{"a": "[[{{\\"]]"}]') == 2
    assert nesting_depth('"[[["') == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [math.nan]}])
def test_dumps_never_writes_nan_or_infinity(value):
    assert "NaN" in json.dumps(value) or "Infinity" in json.dumps(value)  # what the json default would do
    with pytest.raises(ValueError):
        dumps(value)


def test_responses_and_table_json_refuse_nan():
    with pytest.raises(ValueError):
        json_response(200, {"a": math.nan})
    op = Operation(
        id="8285435199999a1b2c3d4e5",
        status="succeeded",
        action=None,
        workbook="/me/drive/items/A",
        operation_url=None,
        created_at="2024-05-01T12:00:00.000Z",
        updated_at="2024-05-01T12:00:00.000Z",
        base_url="https://b/api",
        result={"v": math.inf},
    )
    with pytest.raises(ValueError):
        to_entity(op)


def test_graph_bodies_with_nan_are_not_taken_in():
    """What Graph sends is read strictly too: a NaN never reaches a record (and from there a caller)."""
    assert result_from("createTableRow", b'{"index": 1, "values": [[NaN]]}') is None
    assert graph_error(b'{"error": {"code": "x", "message": NaN}}', 500)["code"] == "http500"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [b64(b"[" * 5000 + b"]" * 5000), b64(b'{"a":NaN}'), b64(b'{"a":' + b"9" * 5000 + b"}")],
    ids=["deep", "NaN", "5000 digits"],
)
def test_a_hostile_continuation_token_is_refused_unread(token):
    # Unsigned, so refused before its payload is parsed; the HTTP side (operations.reads.list_page) answers it with
    # a 400 naming continuationToken (tests/e2e/test_bad_input.py::test_a_hostile_continuation_token_is_a_problem).
    with pytest.raises(TokenRefused):
        page_tokens((("k1", b"k" * 32),)).open(token, scope(reads_all=False, owner="default", status=None))


def test_the_http_side_answers_a_bad_continuation_token_with_a_400_naming_it(clock):
    rt, f = fake_runtime()  # the real store over the fake table: it refuses a token it did not issue (above)
    with pytest.raises(Problem) as caught:
        asyncio.run(list_page(rt, None, None, b64(b'{"a":NaN}')))
    assert caught.value.status == 400 and caught.value.errors[0].field == "continuationToken"
    assert [m for m, _, _ in f.table.calls] == []  # refused before any read


@pytest.mark.parametrize(("top", "count"), [(None, 20), ("1", 1), ("20", 20), ("100", 100), ("007", 7)])
def test_parse_top_accepts_ascii_whole_numbers(top, count):
    assert parse_top(top) == count


@pytest.mark.parametrize(
    "top",
    ["", "0", "101", "-1", "+5", " 5", "5 ", "1.0", "\u00b2", "\u0663", "\uff11", "1e2", "9" * 5000, "00100"],
    ids=lambda t: ascii(t)[:20],
)
def test_parse_top_refuses_everything_else(top):
    assert parse_top(top) is None


def test_a_webhook_body_never_carries_nan():
    from shared.delivery.formats import build_event

    with pytest.raises(ValueError):
        build_event(
            event_id="e", status="succeeded", time="2024-05-01T12:00:00.000Z", subject="s", data={"result": math.nan}
        )


def test_a_record_stored_with_nan_before_output_was_strict_still_reads_and_answers():
    from shared.operations.record import from_entity, to_json

    entity = {
        "PartitionKey": "8285435199999a1b2c3d4e5",
        "RowKey": "operation",
        "Status": "succeeded",
        "CreatedAt": "2024-05-01T12:00:00.000Z",
        "UpdatedAt": "2024-05-01T12:00:00.000Z",
        "BaseUrl": "https://b/api",
        "ResultJson": '{"values": [[NaN, Infinity, 1e999, 1.5]]}',
    }
    op = from_entity(entity)
    assert op.result == {"values": [[None, None, None, 1.5]]}
    json_response(200, to_json(op))  # strict output: would raise on NaN


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "[" + 'a\\"' * 300_000,
        '["' + "\\\\" * 500_000,
        "[" * 1_000_000,
        '{"a":"' + "x" * 1_000_000 + '"}',
        '"' * 1_000_001,
    ],
    ids=["escaped quotes outside strings", "backslashes", "deep", "long string", "quotes"],
)
def test_the_depth_scan_is_linear_on_hostile_text(text):
    """A first version stripped strings with one regex over the whole text: 60 kB of `a\\"` took 9 s."""
    try:
        loads(text)
    except JsonRefused:
        pass
    assert nesting_depth(text, stop_above=64) <= 65
