"""Tables with a shape (scenario ``strictTables``), the documented InsertDeleteConflict, and row addressing as real
Graph answers it (scenario ``rowAddressing: "graph"``), driven over HTTP as a client would."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import add_rows, answer, chain_codes, get, table_url

COLUMNS = ["id", "name", "qty"]


def strict(h: Harness, **extra: object) -> None:
    h.admin.declare_table(ITEM, "Orders", COLUMNS, table_id="7")
    h.admin.scenario(ITEM, {"strictTables": True, "mode": "sync", **extra})


def test_unknown_table_answers_404_item_not_found_and_creates_nothing(run_emu):
    """workbook-error-codes.md: 404 and the second-level ``itemNotFound`` ("The requested resource doesn't exist.").
    With strict tables only a declared table exists; without them (the default) a write makes the table."""

    async def body(h: Harness) -> None:
        strict(h)
        status, error = await add_rows(h, "Nope", [[1, "a", 2]])
        assert status == 404
        assert chain_codes(error["error"])[:2] == ["ItemNotFound", "itemNotFound"]
        assert set(error["error"]["innerError"]) >= {"code", "message", "date", "request-id", "client-request-id"}
        for path in ("/rows", "/rows/count()", "/range", "/dataBodyRange", "/rows/itemAt(index=0)"):
            status, error = await get(h, table_url("Nope", path))
            assert status == 404 and error["error"]["innerError"]["code"] == "itemNotFound", path
        assert [t["name"] for t in h.admin.tables(ITEM)] == ["Orders"]

        h.admin.scenario(ITEM, {"mode": "sync"})  # strictTables off: today's on-demand table
        assert (await add_rows(h, "Nope", [[1]]))[0] == 201
        assert h.admin.rows(ITEM, "Nope") == [[1]]

    run_emu(body)


def test_a_row_of_the_wrong_width_answers_400_invalid_argument_and_applies_nothing(run_emu):
    """microsoft-graph-docs-contrib #7248: a row one column short (and one too long) answered ``InvalidArgument``
    ("The number of rows or columns in the input array doesn't match the size or dimensions of the range.");
    workbook-error-codes.md's second-level ``invalidArgument``. Cells must be scalars (resources/workbookrange.md:
    "string, number, or a Boolean")."""

    async def body(h: Harness) -> None:
        strict(h)
        for values in ([[1, "a"]], [[1, "a", 2, 3]], [[1, "a", 2], [2, "b", 3], [3, "c"]], [[1, ["x"], 2]]):
            status, error = await add_rows(h, "Orders", values)
            assert status == 400, values
            assert chain_codes(error["error"])[:2] == ["InvalidArgument", "invalidArgument"], values
        assert h.admin.rows(ITEM, "Orders") == []
        status, row = await add_rows(h, "Orders", [[1, "a", 2], [2, None, 3.5]])
        assert status == 201 and row == {"index": 0, "values": [[1, "a", 2]]}
        assert h.admin.rows(ITEM, "Orders") == [[1, "a", 2], [2, None, 3.5]]

        h.admin.scenario(ITEM, {"mode": "sync"})  # the default accepts any width, as it always did
        assert (await add_rows(h, "Orders", [[9]]))[0] == 201

    run_emu(body)


def test_a_declared_table_is_addressed_by_name_id_or_name_in_another_case(run_emu):
    """table-post-rows.md: ``POST /workbook/tables/{id|name}/rows``; Excel's table names are case-insensitive."""

    async def body(h: Harness) -> None:
        strict(h)
        for key in ("Orders", "7", "orders"):
            assert (await add_rows(h, key, [[key, "x", 1]]))[0] == 201
        assert [r[0] for r in h.admin.rows(ITEM, "Orders")] == ["Orders", "7", "orders"]
        assert h.admin.table(ITEM, "7")["count"] == 3

    run_emu(body)


def test_an_injected_insert_delete_conflict_answers_409_and_applies_nothing(run_emu):
    """microsoft-graph-docs-contrib #7248 / microsoft-graph-docs #4392: a row add answered ``InsertDeleteConflict``;
    workbook-error-codes.md's second-level ``insertDeleteConflict``. The status is not in the reports (409 is the
    emulator's reading). It fires for the injected count of row writes, then writes go through."""

    async def body(h: Harness) -> None:
        strict(h)
        h.admin.inject_write_fault(ITEM, "insertDeleteConflict", count=2)
        session = await h.client.post(
            "/v1.0/me/drive/items/" + ITEM + "/workbook/createSession", json={}, headers=await h.auth()
        )
        assert session.status == 201  # not a row write: the conflict waits for one
        for _ in range(2):
            status, error = await add_rows(h, "Orders", [[1, "a", 2]])
            assert status == 409
            assert chain_codes(error["error"])[:2] == ["InsertDeleteConflict", "insertDeleteConflict"]
        assert h.admin.rows(ITEM, "Orders") == []
        assert (await add_rows(h, "Orders", [[1, "a", 2]]))[0] == 201
        assert h.admin.counters(ITEM)["faults"] == {"insertDeleteConflict": 2}

    run_emu(body)


def test_graph_row_addressing_deletes_only_by_item_at(run_emu):
    """Users report: ``DELETE rows/{index}`` answers ``ApiNotFound``/``apiNotFound`` (microsoft-graph-docs-contrib
    #3425, #460), ``GET rows/{index}`` too (#8599, #3940), ``POST rows/{index}/delete`` answers 400 "Resource not
    found for the segment 'delete'." (#4500; v1.0's schema binds no delete action to workbookTableRow), and
    ``DELETE rows/itemAt(index=n)`` deletes (#460, #8828). None of the refused forms deletes anything."""

    async def body(h: Harness) -> None:
        strict(h, rowAddressing="graph")
        await add_rows(h, "Orders", [[0, "a", 0], [1, "b", 1], [2, "c", 2]])
        headers = await h.auth()
        status, error = await answer(await h.client.delete(table_url("Orders", "/rows/1"), headers=headers))
        assert status == 404 and chain_codes(error["error"])[:2] == ["ApiNotFound", "apiNotFound"]
        status, error = await get(h, table_url("Orders", "/rows/1"))
        assert status == 404 and error["error"]["code"] == "ApiNotFound"
        for tail in ("/rows/1/delete", "/rows/itemAt(index=1)/delete"):
            status, error = await answer(await h.client.post(table_url("Orders", tail), headers=headers))
            assert status == 400, tail
            assert error["error"]["code"] == "BadRequest"
            assert error["error"]["message"] == "Resource not found for the segment 'delete'."
        assert len(h.admin.rows(ITEM, "Orders")) == 3
        status, _ = await answer(await h.client.delete(table_url("Orders", "/rows/itemAt(index=1)"), headers=headers))
        assert status == 200
        assert h.admin.rows(ITEM, "Orders") == [[0, "a", 0], [2, "c", 2]]
        status, error = await answer(
            await h.client.delete(table_url("Orders", "/rows/itemAt(index=5)"), headers=headers)
        )
        assert status == 404 and chain_codes(error["error"])[:2] == ["ItemNotFound", "itemNotFound"]
        starts = h.admin.requests(item=ITEM, kind="start")
        assert (
            sum(1 for r in starts if r["action"] == "deleteTableRow") == 5
        )  # every delete attempt is a write (the GET is not)

    run_emu(body)


def test_lenient_row_addressing_stays_the_default(run_emu):
    """Without ``rowAddressing`` the emulator deletes by every form it always accepted (the other tests of
    test_emulator_workbook.py keep it honest), so existing callers see no change."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync"})
        await add_rows(h, "T", [[0], [1], [2], [3]])
        headers = await h.auth()
        assert (await h.client.delete(table_url("T", "/rows/0"), headers=headers)).status == 200
        assert (await h.client.post(table_url("T", "/rows/0/delete"), headers=headers)).status == 200
        assert (await h.client.post(table_url("T", "/rows/itemAt(index=0)/delete"), headers=headers)).status == 200
        assert h.admin.rows(ITEM, "T") == [[3]]
        assert (await get(h, table_url("T", "/rows/0")))[0] == 400  # never routed, as before

    run_emu(body)


@pytest.mark.parametrize(
    "table, body, reason",
    [
        ("T", {"columns": []}, "columns"),
        ("T", {"columns": ["a", "A"]}, "repeat"),
        ("T", {"columns": ["a", 3]}, "columns"),
        ("T", {"columns": ["a"], "rows": [[1, 2]]}, "rows[0]"),
        ("T", {"columns": ["a"], "rows": [[{"x": 1}]]}, "rows[0]"),
        ("T", {"columns": ["a"], "origin": "ZZZZ1"}, "origin"),
        ("T", {"columns": ["a", "b"], "origin": "XFD1"}, "origin"),
        ("T", {"columns": ["a"], "id": ""}, "id"),
        ("T", {"columns": ["a"], "colour": "red"}, "colour"),
        ("T", [1], "JSON object"),
    ],
)
def test_declaring_a_table_checks_its_input(run_emu, table, body, reason):
    """The admin API refuses bad input with 400 invalidArgument and a reason, as the rest of it does."""

    async def run(h: Harness) -> None:
        response = await h.client.put(f"/_emulator/tables/{ITEM}/{table}", json=body)
        status, error = await answer(response)
        assert status == 400 and reason in error["error"]["message"], error
        assert h.admin.tables(ITEM) == []

    run_emu(run)


def test_a_table_id_is_unique_in_its_workbook(run_emu):
    async def run(h: Harness) -> None:
        h.admin.declare_table(ITEM, "A", ["x"], table_id="1")
        status, error = await answer(
            await h.client.put(f"/_emulator/tables/{ITEM}/B", json={"columns": ["y"], "id": "1"})
        )
        assert status == 400 and "'id'" in error["error"]["message"]
        redeclared = h.admin.declare_table(ITEM, "A", ["x", "y"], rows=[[1, 2]])
        assert redeclared["id"] == "1" and redeclared["rowCount"] == 1  # a redeclared table keeps its id
        h.admin.drop_table(ITEM, "A")
        assert h.admin.tables(ITEM) == []

    run_emu(run)
