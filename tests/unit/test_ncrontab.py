"""NCRONTAB as the Functions timer trigger reads it (functions-bindings-timer.md, "NCRONTAB expressions":
`{second} {minute} {hour} {day} {month} {day-of-week}`, and its examples table)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devhost.ncrontab import ScheduleError, parse


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # the docs' examples
        ("0 */5 * * * *", at(2026, 12, 1, 18, 55, 0), at(2026, 12, 1, 19, 0, 0)),  # "once every five minutes"
        ("0 0 * * * *", at(2026, 12, 1, 9, 0, 0), at(2026, 12, 1, 10, 0, 0)),  # "at the top of every hour"
        ("0 0 */2 * * *", at(2026, 12, 1, 1, 0, 0), at(2026, 12, 1, 2, 0, 0)),  # "once every two hours"
        ("0 0 9-17 * * *", at(2026, 12, 1, 17, 0, 0), at(2026, 12, 2, 9, 0, 0)),  # "every hour from 9 AM to 5 PM"
        ("0 30 9 * * *", at(2026, 12, 1, 9, 30, 0), at(2026, 12, 2, 9, 30, 0)),  # "at 9:30 AM every day"
        ("0 30 9 * * 1-5", at(2026, 12, 4, 10, 0, 0), at(2026, 12, 7, 9, 30, 0)),  # weekdays: Fri -> Mon
        ("0 30 9 * Jan Mon", at(2026, 12, 1, 0, 0, 0), at(2027, 1, 4, 9, 30, 0)),  # "every Monday in January"
        ("5,8,10 * * * * *", at(2026, 12, 1, 0, 0, 8), at(2026, 12, 1, 0, 0, 10)),  # a set
        ("0/20 * * * * *", at(2026, 12, 1, 0, 0, 41), at(2026, 12, 1, 0, 1, 0)),  # an increment from 0
        ("0 0 0 29 2 *", at(2026, 12, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0)),  # the next leap day
        ("0 0 0 * * sun", at(2026, 12, 1, 0, 0, 0), at(2026, 12, 6, 0, 0, 0)),  # Sunday is 0 / sun
        ("0 17 * * * *", at(2026, 12, 31, 23, 17, 0), at(2027, 1, 1, 0, 17, 0)),  # the app's purge, over a year end
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert parse(expression).next_after(after) == expected


def test_next_is_strictly_after_and_ignores_fractions() -> None:
    schedule = parse("* * * * * *")
    assert schedule.next_after(at(2026, 12, 1, 0, 0, 0)) == at(2026, 12, 1, 0, 0, 1)
    assert schedule.next_after(datetime(2026, 12, 1, 0, 0, 0, 500_000, tzinfo=UTC)) == at(2026, 12, 1, 0, 0, 1)


def test_day_and_day_of_week_must_both_match() -> None:
    # NCrontab (the library the host uses) requires both: the 13th that is a Friday
    assert parse("0 0 0 13 * 5").next_after(at(2026, 12, 1)) == at(2027, 8, 13)


@pytest.mark.parametrize(
    "expression",
    [
        "0 */5 * * *",  # five fields: the seconds are required
        "0 0 0 * * * *",  # seven
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 7",
        "*/0 * * * * *",
        "5-1 * * * * *",
        "x * * * * *",
        "1,,2 * * * * *",
        "* * * * Foo *",
        "0 0 0 31 2 *",  # never fires
        "00:05:00",  # the TimeSpan form (App Service plans only) is not modelled
    ],
)
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse(expression)
