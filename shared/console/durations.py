"""GET /api/durations: the duration history the poll schedule learns from (shared/schedule/history.py), as the
console charts it. Pure: the store reads the caller's own partition; this shapes what was read.

Keys hash the owner and the workbook (duration_history.history_keys), so a summary names its action and either
"all workbooks" (`workbook` null) or the workbook's key hash (`workbookKey`), never a path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.schedule.history import DurationHistory, sample_quantile

ALL_WORKBOOKS = "*"


def summary(row_key: str, history: DurationHistory) -> dict[str, Any] | None:
    """One kind of work's summary, or None for an empty or unreadable entity."""
    action, dot, workbook = row_key.partition(".")
    if not dot or not action or not history.entries:
        return None
    values = history.durations()
    return {
        "action": action,
        "workbookKey": None if workbook == ALL_WORKBOOKS else workbook,
        "count": history.count,
        "durations": values,  # the sample the schedule uses, oldest first (seconds)
        "p50": round(sample_quantile(values, 0.5), 1),
        "p90": round(sample_quantile(values, 0.9), 1),
        "max": max(values),
    }


def summaries(rows: Iterable[tuple[str, DurationHistory]]) -> list[dict[str, Any]]:
    """Every readable summary: all-workbook kinds first, then by action and workbook key."""
    found = [s for row_key, history in rows if (s := summary(row_key, history)) is not None]
    return sorted(found, key=lambda s: (s["workbookKey"] is not None, s["action"], s["workbookKey"] or ""))
