"""The operations console's server side (issue 12): the record's timeline written in the writes that already
happen, the owner-scoped duration summaries, and the static files with their Content-Security-Policy.

The writes run over tests/unit/fakes.py (Table Storage's rules: a write with a stale If-Match answers 412), so "in
the same write" is counted on the fake table's calls."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import azure.functions as func
import pytest
from azure.data.tables.aio import TableClient

from shared.api.identity import Caller
from shared.console import api as console_api
from shared.console import assets as console_assets
from shared.console.durations import summaries
from shared.delivery import operation_webhooks as deliverer
from shared.graph.lro import Reschedule
from shared.operations import changes as operation_changes
from shared.operations import poll_step as poller
from shared.operations.lifecycle import terminal_state
from shared.operations.record import (
    HISTORY_LIMIT,
    HISTORY_MAX_CHARS,
    HISTORY_TEXT_CHARS,
    WEBHOOK_DELIVERED,
    from_entity,
    iso,
    to_entity,
    to_json,
    with_event,
)
from shared.schedule.history import DurationHistory, encode, history_keys, owner_partition
from shared.schedule.history_store import HistoryStore
from shared.storage.messages import DeliveryTask, PollState, encode_delivery
from tests.unit.fakes import FakeClock, Fakes, reply
from tests.unit.test_deliverer_claims import CALLBACK, OP_ID, finished, runtime, stored

ROOT = Path(__file__).resolve().parents[2]


# --- the timeline -------------------------------------------------------------------------------------------


def test_events_are_bounded_cut_and_survive_the_entity_round_trip() -> None:
    op = finished()
    for n in range(HISTORY_LIMIT + 5):
        op = with_event(op, iso(1_700_000_000 + n), "webhook", attempt=n + 1, error="x" * 500, statusCode=None)
    assert len(op.history or []) == HISTORY_LIMIT
    assert (op.history or [])[0]["attempt"] == 6 and (op.history or [])[-1]["attempt"] == HISTORY_LIMIT + 5
    assert all(len(e["error"]) == HISTORY_TEXT_CHARS and "statusCode" not in e for e in op.history or [])
    entity = to_entity(op)
    assert len(entity["HistoryJson"]) < 32 * 1024  # Table Storage: 32 K UTF-16 characters per string property
    assert from_entity(entity).history == op.history
    assert from_entity(to_entity(finished())).history is None  # records written before the timeline existed


def test_non_ascii_texts_cannot_push_the_property_past_table_storages_limit() -> None:
    op = finished()
    for n in range(HISTORY_LIMIT):  # stored \u-escaped: 6 characters per "é"
        op = with_event(op, iso(1_700_000_000 + n), "webhook", attempt=n + 1, error="é" * 500)
    stored = to_entity(op)["HistoryJson"]
    assert len(stored) <= HISTORY_MAX_CHARS < 32 * 1024
    assert (op.history or [])[-1]["attempt"] == HISTORY_LIMIT  # the newest kept, the oldest dropped
    assert len(op.history or []) < HISTORY_LIMIT


def test_the_record_shows_its_timeline_but_the_webhook_event_does_not() -> None:
    op = terminal_state(finished(status="running"), "failed", 1_700_000_000.0, error={"code": "boom"}, poll_count=4)
    assert op.history == [
        {"at": iso(1_700_000_000.0), "type": "status", "status": "failed", "polls": 4, "code": "boom"}
    ]
    assert to_json(op)["history"] == op.history
    assert "history" not in to_json(
        op, include_webhook=False
    )  # the event body (shared/delivery/events.py) is unchanged


def record_writes(f: Fakes) -> list[str]:
    """The writes to the operation's own record (its partition is the id), other rows (index, lane) apart."""
    return f.table.writes(OP_ID)


def test_a_status_change_is_recorded_in_the_same_write() -> None:
    rt, f = runtime(status="notStarted", completed_at=None, event_id=None)
    before = len(record_writes(f))
    state = PollState(OP_ID, 0, 3)
    asyncio.run(poller.reschedule(rt, stored(rt), Reschedule(5, state, "running"), 1_700_000_000.0))
    assert len(record_writes(f)) == before + 1  # one write: the status and its event together
    op = stored(rt)
    assert op.status == "running"
    assert op.history == [{"at": iso(1_700_000_000.0), "type": "status", "status": "running", "polls": 3}]


def test_each_webhook_attempt_is_recorded_with_its_status_and_time(clock: FakeClock) -> None:
    rt, f = runtime()
    f.webhooks.sticky.clear()
    f.webhooks.script("POST", CALLBACK, reply(503), reply(200))
    since = clock.now
    asyncio.run(deliverer.handle_message(rt, encode_delivery(DeliveryTask(OP_ID, "event-1", 1, since))))
    [(_, delay)] = f.deliveries.sent  # attempt 2, queued for when the retry is due
    clock.advance(delay)
    asyncio.run(deliverer.handle_message(rt, encode_delivery(DeliveryTask(OP_ID, "event-1", 2, since))))
    op = stored(rt)
    events = op.history or []
    assert [(e["type"], e["attempt"], e["statusCode"], e["outcome"]) for e in events] == [
        ("webhook", 1, 503, "retrying"),
        ("webhook", 2, 200, "delivered"),
    ]
    assert "nextAttemptAt" in events[0] and "nextAttemptAt" not in events[1]
    assert events[0]["at"] <= events[1]["at"]
    assert op.webhook_state == WEBHOOK_DELIVERED


def test_a_redelivery_is_recorded_in_its_claiming_write() -> None:
    rt, f = runtime(webhook_state=WEBHOOK_DELIVERED, webhook_attempts=1, owner="default")
    before = len(record_writes(f))
    asyncio.run(operation_changes.redeliver(rt, OP_ID, Caller("default")))
    assert len(record_writes(f)) == before + 1
    assert [(e["type"], e["attempt"]) for e in stored(rt).history or []] == [("redeliver", 2)]
    assert [json.loads(text)["attempt"] for text, _ in f.deliveries.sent] == [2]


# --- durations ----------------------------------------------------------------------------------------------


def _history(*seconds: float) -> DurationHistory:
    history = DurationHistory()
    for n, value in enumerate(seconds):
        history = history.add(value, f"op-{n}")
    return history


def test_summaries_name_the_action_and_the_workbook_key_and_skip_empty_ones() -> None:
    rows = [
        ("createSession.0123abcd", _history(10.0, 20.0, 30.0)),
        ("createSession.*", _history(10.0, 20.0, 30.0, 40.0, 50.0)),
        ("runScript.*", DurationHistory()),
        ("bad-key", _history(1.0)),
    ]
    found = summaries(rows)
    assert [(s["action"], s["workbookKey"]) for s in found] == [
        ("createSession", None),
        ("createSession", "0123abcd"),
    ]
    assert found[0]["p50"] == 30.0 and found[0]["p90"] == 46.0 and found[0]["max"] == 50.0
    assert found[0]["durations"] == [10.0, 20.0, 30.0, 40.0, 50.0] and found[0]["count"] == 5


class PartitionTable:
    """Query Entities over `PartitionKey eq @pk` (the one filter HistoryStore.owner_rows sends)."""

    def __init__(self, rows: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.rows = rows
        self.queries: list[dict[str, Any]] = []

    def query_entities(self, query: str, *, parameters: dict[str, Any], results_per_page: int) -> AsyncIterator[Any]:
        assert query == "PartitionKey eq @pk"
        self.queries.append(parameters)

        async def entities() -> AsyncIterator[Any]:
            for (pk, rk), props in sorted(self.rows.items()):
                if pk == parameters["pk"]:
                    yield {"PartitionKey": pk, "RowKey": rk, **props}

        return entities()


def test_durations_read_only_the_callers_own_partition() -> None:
    mine = history_keys("tenant/ada", "createSession", None)[0]
    theirs = history_keys("tenant/bob", "runScript", None)[0]
    table = PartitionTable({mine: encode(_history(3.0, 4.0)), theirs: encode(_history(99.0))})
    rt = SimpleNamespace(history=HistoryStore(cast(TableClient, table)))
    # the read-all role opens others' operations, not their history: the answer is the caller's own
    answer = asyncio.run(
        console_api.durations(cast(Any, rt), Caller("tenant/ada", roles=frozenset({"Operations.ReadAll"})))
    )
    assert [s["action"] for s in answer["value"]] == ["createSession"]
    assert table.queries == [{"pk": owner_partition("tenant/ada")}]
    assert asyncio.run(console_api.durations(cast(Any, SimpleNamespace(history=None)), Caller("x"))) == {"value": []}


# --- the static files ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handlers() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("function_app_console_check", ROOT / "function_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}


def _get(handler: Any, url: str, **route: str) -> func.HttpResponse:
    req = func.HttpRequest("GET", url, headers={}, body=b"", route_params=route)
    return cast(func.HttpResponse, asyncio.run(handler(req)))


def test_the_page_and_its_files_are_served_with_a_strict_policy(handlers: dict[str, Any]) -> None:
    page = _get(handlers["console_page"], "https://b.example/api/console")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = _get(handlers["console_asset"], f"https://b.example/api/console/{name}", asset=name)
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(kind)
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("../function_app.py", "index.htm", "app.js.map", "", "console"):
        missing = _get(handlers["console_asset"], f"https://b.example/api/console/{name}", asset=name)
        assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.attributes: list[tuple[str, str | None]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes.extend(attrs)
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        self.inline_script = self.inline_script or (self._in_script and bool(data.strip()))


def test_no_inline_script_no_other_origin_and_no_key_in_the_files() -> None:
    markup = Markup()
    markup.feed((console_assets.ASSET_DIR / "index.html").read_text())
    assert markup.scripts == [{"src": "console/app.js", "defer": None}] and not markup.inline_script
    assert not [name for name, _ in markup.attributes if name.startswith("on") or name == "style"]
    for name in console_assets.ASSETS:
        text = (console_assets.ASSET_DIR / name).read_text()
        origins = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not origins, (name, origins)  # everything comes from the app itself
        assert not re.search(r"code=|functions-key\"?\s*[:=]\s*\"[A-Za-z0-9]", text), name
    script = (console_assets.ASSET_DIR / "app.js").read_text()
    assert "innerHTML" not in script and "localStorage" not in script  # data as text; the key in this tab only
    assert json.loads(json.dumps(console_assets.ASSETS))  # the served names are plain data
