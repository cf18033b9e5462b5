"""The lane bench's pure parts: duplicate/missing row accounting and the outcome summary."""

from __future__ import annotations

from bench import lane


def test_rows_written_once_none_missing():
    sent = [lane.row_values(n) for n in range(3)]
    got = lane.row_accounting(sent, [sent[2], sent[0], sent[1]])
    assert got["duplicates"] == 0 and got["missing"] == 0 and got["unexpected"] == 0 and got["written_once"] == 3


def test_duplicates_missing_and_unexpected_rows_are_counted_apart():
    sent = [lane.row_values(n) for n in range(4)]
    table = [sent[0], sent[0], sent[0], sent[1], ["stranger", 1]]
    got = lane.row_accounting(sent, table)
    assert got["duplicates"] == 2  # two extra copies of row 0
    assert got["missing"] == 2 and got["missing_rows"] == [2, 3]
    assert got["unexpected"] == 1 and got["written_once"] == 1
    assert got["sent"] == 4 and got["in_table"] == 5


def test_row_values_are_unique_per_row():
    assert len({tuple(lane.row_values(n)) for n in range(50)}) == 50


def test_outcome_summary_counts_answers_statuses_and_innermost_error_codes():
    finished = {
        "a": {"status": "succeeded"},
        "b": {"status": "failed", "error": {"code": "conflict", "innerError": {"code": "accessConflict"}}},
        "c": {"status": "timedOut", "error": {"code": "operationTimedOut"}},
    }
    got = lane.outcome_summary([202, 202, 202, 503, 503, 409], finished)
    assert got["answers"] == {"202": 3, "409": 1, "503": 2}
    assert got["accepted"] == 3 and got["succeeded"] == 1 and got["failed"] == 2
    assert got["error_codes"] == {"accessConflict": 1, "operationTimedOut": 1}
