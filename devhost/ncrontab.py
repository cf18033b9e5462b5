"""NCRONTAB schedules, the subset the Functions timer trigger uses.

Functions docs, functions-bindings-timer.md ("NCRONTAB expressions"): "Azure Functions uses the NCronTab
library to interpret NCRONTAB expressions. An NCRONTAB expression is similar to a CRON expression except that
it includes an additional sixth field at the beginning to use for time precision in seconds:
`{second} {minute} {hour} {day} {month} {day-of-week}`". Each field takes a value (`5`), all values (`*`), a
range (`1-3`), a set (`5,8,10`) or an increment (`0/5`, `*/5`); months and days may be named (`Jan`, `Mon`;
"0 30 9 * Jan Mon": at 9:30 AM every Monday in January). Day-of-week is 0-6, Sunday 0.

As NCrontab does (CrontabSchedule: a day must be in the day field *and* the day-of-week field), a day matches
when both fields allow it. Times are UTC (WEBSITE_TIME_ZONE is not modelled). The TimeSpan form
(`hh:mm:ss`, App Service plans only) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 6, DAYS),
)
SEARCH_LIMIT = timedelta(days=366 * 5)


class ScheduleError(ValueError):
    """The expression is not an NCRONTAB schedule of six fields."""


def _value(text: str, name: str, low: int, names: tuple[str, ...]) -> int:
    lower = text.lower()
    if names and lower in names:
        return names.index(lower) + low
    if not text.isdigit():
        raise ScheduleError(f"{name}: {text!r} is not a number" + (" or a name" if names else ""))
    return int(text)


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{name}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"{name}: increment {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, name, low, names), _value(last, name, low, names)
        else:
            start = _value(base, name, low, names)
            end = high if step_text else start  # "0/5": from 0 to the end in steps of 5
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def _day_matches(self, moment: datetime) -> bool:
        return moment.day in self.days and (moment.isoweekday() % 7) in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (an aware datetime; the answer is UTC)."""
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + SEARCH_LIMIT
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"{self.expression!r} has no occurrence in the next five years")


def parse(expression: str) -> Schedule:
    fields = expression.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expression!r}: an NCRONTAB schedule has six fields "
            f"({{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}), got {len(fields)}"
        )
    sets = [
        _field(text, name, low, high, names) for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True)
    ]
    schedule = Schedule(expression, *sets)
    schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # refuse schedules that never fire (31 Feb)
    return schedule
