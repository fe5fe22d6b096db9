"""Business-hours schedules: weekly open ranges in a time zone, plus holidays.

A schedule answers one question, ``is_open(at)``, for an aware datetime given by the
engine's injected clock. The time is converted to the schedule's zone with zoneinfo,
so daylight-saving changes are handled by the time zone database, not by us.

Text forms parsed here (used by the loader, which adds file positions to the errors):

* days: ``mon``, ``mon-fri``, ``sat,sun``, ``fri-mon`` (wraps over the weekend);
* hours: ``"08:00-18:00"``, ``"08:00-12:00, 13:30-18:00"``, ``closed``;
  ranges are start-inclusive and end-exclusive, ``24:00`` is allowed as an end, and a
  range must not cross midnight (write ``22:00-24:00`` on one day and ``00:00-02:00`` on
  the next);
* holidays: ``2025-12-25`` (that day only) or ``12-25`` (every year).

A day with a holiday uses the holiday's hours (closed unless the holiday gives hours)
instead of its weekly hours.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})\Z")
_YEARLY_RE = re.compile(r"(\d{2})-(\d{2})\Z")


class ScheduleError(ValueError):
    """A schedule text that cannot be parsed; the message is meant for the admin."""


@dataclass(frozen=True)
class TimeRange:
    """Open from ``start`` (inclusive) to ``end`` (exclusive), in minutes after local midnight."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True)
class Holiday:
    month: int
    day: int
    year: int | None = None             # None: the same day every year
    hours: tuple[TimeRange, ...] = ()   # empty: closed all day
    name: str = ""

    def falls_on(self, day: date) -> bool:
        return (day.month, day.day) == (self.month, self.day) and self.year in (None, day.year)


@dataclass(frozen=True)
class Schedule:
    name: str
    timezone: str
    weekly: tuple[tuple[TimeRange, ...], ...]   # index 0 = Monday; empty tuple = closed
    holidays: tuple[Holiday, ...] = ()

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise ValueError("weekly must have 7 days")
        zone(self.timezone)  # fail early on a bad zone

    def local_time(self, at: datetime) -> datetime:
        # A naive datetime is taken as UTC, so a misconfigured clock cannot silently use server time.
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at.astimezone(zone(self.timezone))

    def hours_on(self, day: date) -> tuple[TimeRange, ...]:
        # Year-specific holidays win over yearly ones (e.g. special hours this Christmas Eve).
        for holiday in sorted(self.holidays, key=lambda h: h.year is None):
            if holiday.falls_on(day):
                return holiday.hours
        return self.weekly[day.weekday()]

    def is_open(self, at: datetime) -> bool:
        local = self.local_time(at)
        minute = local.hour * 60 + local.minute
        return any(r.contains(minute) for r in self.hours_on(local.date()))


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for ``name``; ScheduleError if the time zone database does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown time zone '{name}' (use an IANA name such as 'Europe/Paris')") from None


def parse_days(spec: str) -> tuple[int, ...]:
    """``"mon-fri"`` -> (0, 1, 2, 3, 4); ``"sat,sun"`` -> (5, 6)."""
    days: list[int] = []
    for part in (p.strip().lower() for p in spec.split(",")):
        first, dash, last = part.partition("-")
        if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
            raise ScheduleError(f"bad day '{part}' (expected mon..sun or a range like mon-fri)")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        span = (end - start) % 7
        days.extend((start + i) % 7 for i in range(span + 1))
    return tuple(days)


def parse_clock(text: str, *, is_end: bool) -> int:
    match = _CLOCK_RE.match(text.strip())
    if not match:
        raise ScheduleError(f"bad time '{text.strip()}' (expected HH:MM)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not is_end)):
        raise ScheduleError(f"bad time '{text.strip()}' (expected 00:00 to 24:00)")
    return hours * 60 + minutes


def parse_range(text: str) -> TimeRange:
    start_text, sep, end_text = text.partition("-")
    if not sep:
        raise ScheduleError(f"bad time range '{text.strip()}' (expected HH:MM-HH:MM)")
    start, end = parse_clock(start_text, is_end=False), parse_clock(end_text, is_end=True)
    if end <= start:
        raise ScheduleError(
            f"time range '{text.strip()}' ends before it starts (split ranges that cross midnight at 24:00)"
        )
    return TimeRange(start, end)


def parse_ranges(text: str) -> tuple[TimeRange, ...]:
    """``"08:00-12:00, 13:00-18:00"`` -> two ranges; ``"closed"`` -> ()."""
    if text.strip().lower() == "closed":
        return ()
    ranges = sorted((parse_range(part) for part in text.split(",")), key=lambda r: r.start)
    for before, after in itertools.pairwise(ranges):
        if after.start < before.end:
            raise ScheduleError(f"time ranges {before} and {after} overlap")
    return tuple(ranges)


def parse_holiday_date(text: str) -> tuple[int | None, int, int]:
    """``"2025-12-25"`` -> (2025, 12, 25); ``"12-25"`` -> (None, 12, 25)."""
    text = text.strip()
    yearly = _YEARLY_RE.match(text)
    try:
        if yearly:
            # Check month/day against a leap year so that 02-29 is accepted.
            day = date(2000, int(yearly.group(1)), int(yearly.group(2)))
            return None, day.month, day.day
        day = date.fromisoformat(text)
        if len(text) != 10:
            raise ValueError
        return day.year, day.month, day.day
    except ValueError:
        raise ScheduleError(f"bad date '{text}' (expected YYYY-MM-DD, or MM-DD for every year)") from None
