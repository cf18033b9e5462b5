"""The table reads a writer can reconcile with, as Graph documents them (and only those), and the response payload
limit on them."""

from __future__ import annotations

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import chain_codes, get, table_url

COLUMNS = ["id", "name", "ok"]
ROWS = [[n, f"row {n}", n % 2 == 0] for n in range(12)]


def declare(h: Harness, rows: list[list[object]] | None = None, **scenario: object) -> None:
    h.admin.declare_table(ITEM, "Orders", COLUMNS, rows=ROWS if rows is None else rows, origin="B3")
    h.admin.scenario(ITEM, {"strictTables": True, **scenario})


def test_list_rows_pages_with_top_and_skip(run_emu):
    """table-list-rows.md: ``GET /workbook/tables/{id|name}/rows``, "use the $top and $skip query parameters to page
    through the results"; a collection of workbookTableRow ``{"value": [{"index": 99, "values": …}]}`` whose
    ``values`` is a two-dimensional array (table-post-rows.md's answer ``"values": [[1, 2, 3]]``)."""

    async def body(h: Harness) -> None:
        declare(h)
        status, page = await get(h, table_url("Orders", "/rows?$top=5&$skip=5"))
        assert status == 200
        assert page == {"value": [{"index": n, "values": [ROWS[n]]} for n in range(5, 10)]}
        status, whole = await get(h, table_url("Orders", "/rows"))
        assert [row["values"][0] for row in whole["value"]] == ROWS
        status, tail = await get(h, table_url("Orders", "/rows?%24skip=10&%24top=5"))  # encoded, as SDKs send
        assert [row["index"] for row in tail["value"]] == [10, 11]
        assert (await get(h, table_url("Orders", "/rows?$skip=40")))[1] == {"value": []}
        for bad in ("$top=-1", "$top=x", "$skip=1.5"):
            status, error = await get(h, table_url("Orders", f"/rows?{bad}"))
            assert status == 400 and error["error"]["code"] == "badRequest", bad

    run_emu(body)


def test_item_at_reads_one_row_by_position(run_emu):
    """The schema's ``itemAt(index)`` function on the row collection (msgraph-metadata clean_v10_metadata, returns
    workbookTableRow), reported working where ``rows/{index}`` does not (microsoft-graph-docs-contrib #3940, #8599)."""

    async def body(h: Harness) -> None:
        declare(h)
        status, row = await get(h, table_url("Orders", "/rows/itemAt(index=3)"))
        assert status == 200 and row == {"index": 3, "values": [ROWS[3]]}
        status, row = await get(h, table_url("Orders", "/rows/ItemAt(index=0)"))  # as #460 spells it
        assert status == 200 and row["values"] == [ROWS[0]]
        status, error = await get(h, table_url("Orders", "/rows/itemAt(index=12)"))
        assert status == 404 and chain_codes(error["error"])[:2] == ["ItemNotFound", "itemNotFound"]

    run_emu(body)


def test_count_is_the_schema_function_and_dollar_count_is_not_built(run_emu):
    """msgraph-metadata clean_v10_metadata: ``Function count`` bound to ``Collection(graph.workbookTableRow)``
    returning ``Edm.Int32`` (``rows/count()``). No docs page documents it, nor ``rows/$count``: the latter is not
    built and answers the router's 400."""

    async def body(h: Harness) -> None:
        declare(h)
        assert await get(h, table_url("Orders", "/rows/count()")) == (200, {"value": 12})
        assert await get(h, table_url("Orders", "/rows/count")) == (200, {"value": 12})
        status, error = await get(h, table_url("Orders", "/rows/$count"))
        assert status == 400 and error["error"]["code"] == "BadRequest"

    run_emu(body)


def test_range_has_the_header_row_and_data_body_range_has_not(run_emu):
    """table-range.md ("the range object associated with the entire table") and table-databodyrange.md ("the data
    body of the table") answer a workbookRange (resources/workbookrange.md: ``address`` "contains the Sheet
    reference (for example, Sheet1!A1:B4)", ``rowCount``, ``columnCount``, ``values``, ``text``, ``valueTypes``…)."""

    async def body(h: Harness) -> None:
        declare(h, rows=ROWS[:2])
        status, whole = await get(h, table_url("Orders", "/range"))
        assert status == 200
        assert whole["address"] == "Sheet1!B3:D5" and whole["rowIndex"] == 2 and whole["columnIndex"] == 1
        assert (whole["rowCount"], whole["columnCount"], whole["cellCount"]) == (3, 3, 9)
        assert whole["values"] == [COLUMNS, *ROWS[:2]]
        assert whole["text"][2] == ["1", "row 1", "FALSE"]
        assert whole["valueTypes"][1] == ["Double", "String", "Boolean"]
        status, data = await get(h, table_url("Orders", "/dataBodyRange()"))
        assert status == 200
        assert data["address"] == "Sheet1!B4:D5" and data["rowCount"] == 2 and data["values"] == ROWS[:2]
        assert set(data) >= {"addressLocal", "formulas", "numberFormat", "hidden", "rowHidden", "columnHidden"}

    run_emu(body)


def test_an_empty_tables_data_body_is_one_blank_row(run_emu):
    """Undocumented: Excel keeps one data row in a table, so an empty table's ``dataBodyRange`` is a blank row
    (rowCount 1) while ``rows`` lists none and ``count()`` is 0. The emulator takes this reading, the harshest for
    a writer that would count rows by ``dataBodyRange.rowCount``."""

    async def body(h: Harness) -> None:
        declare(h, rows=[])
        assert (await get(h, table_url("Orders", "/rows")))[1] == {"value": []}
        assert (await get(h, table_url("Orders", "/rows/count()")))[1] == {"value": 0}
        _, data = await get(h, table_url("Orders", "/dataBodyRange"))
        assert data["rowCount"] == 1 and data["values"] == [["", "", ""]] and data["address"] == "Sheet1!B4:D4"
        _, whole = await get(h, table_url("Orders", "/range"))
        assert whole["rowCount"] == 2 and whole["values"][0] == COLUMNS

    run_emu(body)


def test_reads_over_the_response_payload_limit_answer_response_payload_size_limit_exceeded(run_emu):
    """microsoft-graph-docs #15709: ``GET …/tables/{t}/range`` of a large table answered
    ``ResponsePayloadSizeLimitExceeded`` / ``responsePayloadSizeLimitExceeded`` (the status is not in the report;
    413 per workbook-error-codes.md). A page small enough still reads; the limit is off by default."""

    async def body(h: Harness) -> None:
        declare(h)
        status, _ = await get(h, table_url("Orders", "/range"))
        assert status == 200  # no limit by default
        h.admin.patch_scenario(ITEM, responsePayloadLimitBytes=300)
        for path in ("/range", "/dataBodyRange", "/rows"):
            status, error = await get(h, table_url("Orders", path))
            assert status == 413, path
            assert chain_codes(error["error"])[:2] == [
                "ResponsePayloadSizeLimitExceeded",
                "responsePayloadSizeLimitExceeded",
            ]
        status, page = await get(h, table_url("Orders", "/rows?$top=2"))
        assert status == 200 and len(page["value"]) == 2
        assert h.admin.counters(ITEM)["faults"] == {"responsePayloadTooLarge": 3}

    run_emu(body)


def test_reads_of_tables_made_on_demand_work_without_strict_tables(run_emu):
    """The default (no ``strictTables``): a table a write made has ``Column1``… headers (as Excel names new
    columns) and the reads above answer for it too."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"mode": "sync"})
        response = await h.client.post(table_url("T", "/rows"), json={"values": [[1, 2]]}, headers=await h.auth())
        assert response.status == 201
        _, whole = await get(h, table_url("T", "/range"))
        assert whole["address"] == "Sheet1!A1:B2" and whole["values"] == [["Column1", "Column2"], [1, 2]]
        assert (await get(h, table_url("T", "/rows/count()")))[1] == {"value": 1}

    run_emu(body)
