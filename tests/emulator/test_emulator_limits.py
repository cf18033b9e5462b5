"""Payload and size limits on writes: ``requestPayloadLimitBytes`` (413 RequestPayloadSizeLimitExceeded) and
``maxRequestCells`` (504 MaxRequestDurationExceeded), both applying nothing and both off by default."""

from __future__ import annotations

import json

from tests.emulator.emulator_harness import ITEM, Harness
from tests.emulator.workbook_calls import ASYNC, answer, chain_codes, table_url

ROW = ["x" * 1000] * 20  # about 20 KiB as JSON


async def post_body(h: Harness, body: bytes, **headers: str) -> tuple[int, object]:
    response = await h.client.post(
        table_url("T", "/rows"), data=body, headers=await h.auth(**{"Content-Type": "application/json", **headers})
    )
    return await answer(response)


def test_a_write_over_the_request_payload_limit_answers_413_and_applies_nothing(run_emu):
    """office-js-docs-pr #2278 (Excel's error list): ``RequestPayloadSizeLimitExceeded`` "The request payload size
    has exceeded the limit … This error occurs in Excel on the web" (about 5 MB: graph-realities.md, "Payload
    limits"); 413 per workbook-error-codes.md; the chain's shape as microsoft-graph-docs #15709 shows for its
    response twin. A 20 KiB row against an 8 KiB limit is refused, sync or async, and lands nowhere."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"requestPayloadLimitBytes": 8 * 1024})
        big = json.dumps({"values": [ROW]}).encode()
        assert len(big) > 20_000
        for headers in ({}, {"Workbook-Session-Id": "s1", **ASYNC}):
            status, error = await post_body(h, big, **headers)
            assert status == 413
            assert chain_codes(error["error"])[:2] == [  # type: ignore[index]
                "RequestPayloadSizeLimitExceeded",
                "requestPayloadSizeLimitExceeded",
            ]
        assert h.admin.rows(ITEM, "T") == [] and h.admin.operations(ITEM) == []
        small = json.dumps({"values": [["y" * 100]]}).encode()
        assert (await post_body(h, small))[0] == 201
        limit_exact = json.dumps({"values": [["z" * (8 * 1024 - 18)]]}).encode()
        assert len(limit_exact) == 8 * 1024 and (await post_body(h, limit_exact))[0] == 201  # at the limit: fine
        counters = h.admin.counters(ITEM)
        assert counters["faults"] == {"requestPayloadTooLarge": 2} and counters["bytesIn"] >= 2 * len(big)

    run_emu(body)


def test_without_a_limit_a_large_write_is_accepted(run_emu):
    """The default: no request payload limit (the emulator reads bodies up to 64 MiB; aiohttp's own 1 MiB cap no
    longer answers for Graph)."""

    async def body(h: Harness) -> None:
        big = json.dumps({"values": [ROW] * 100}).encode()  # about 2 MiB
        assert len(big) > 2_000_000
        assert (await post_body(h, big))[0] == 201
        assert h.admin.row_count(ITEM, "T") == 100

    run_emu(body)


def test_a_write_over_max_request_cells_answers_504_max_request_duration_and_applies_nothing(run_emu):
    """microsoft-graph-explorer-v4 #3907: a large request on a large workbook answered 504 with
    ``MaxRequestDurationExceeded`` / ``gatewayTimeoutUncategorized`` / ``MaxRequestDurationExceeded``. Unlike an
    apply-then-fail 504, this one applies nothing."""

    async def body(h: Harness) -> None:
        h.admin.scenario(ITEM, {"maxRequestCells": 100, "mode": "sync"})
        status, error = await post_body(h, json.dumps({"values": [[1] * 10] * 11}).encode())
        assert status == 504
        assert chain_codes(error["error"]) == [  # type: ignore[index]
            "MaxRequestDurationExceeded",
            "gatewayTimeoutUncategorized",
            "MaxRequestDurationExceeded",
        ]
        assert h.admin.rows(ITEM, "T") == []
        assert (await post_body(h, json.dumps({"values": [[1] * 10] * 10}).encode()))[0] == 201

    run_emu(body)
