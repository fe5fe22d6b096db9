"""Business-hours schedules: time zones, DST changes, holidays, parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.flow.schedule import (
    Holiday,
    Schedule,
    ScheduleError,
    TimeRange,
    parse_days,
    parse_holiday_date,
    parse_ranges,
)


def weekly(**days: str) -> tuple[tuple[TimeRange, ...], ...]:
    week = [()] * 7
    for spec, hours in days.items():
        for day in parse_days(spec.replace("_", "-")):
            week[day] = parse_ranges(hours)
    return tuple(week)


PARIS_OFFICE = Schedule("office", "Europe/Paris", weekly(mon_fri="08:00-12:00, 13:00-18:00"))


@pytest.mark.parametrize("local, is_open", [
    ("2025-03-04 07:59", False),   # Tuesday
    ("2025-03-04 08:00", True),    # start is inclusive
    ("2025-03-04 12:00", False),   # lunch: end is exclusive
    ("2025-03-04 12:59", False),
    ("2025-03-04 13:00", True),
    ("2025-03-04 17:59", True),
    ("2025-03-04 18:00", False),
    ("2025-03-08 10:00", False),   # Saturday
    ("2025-03-09 10:00", False),   # Sunday
])
def test_weekly_hours_in_local_time(local, is_open):
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo("Europe/Paris"))
    assert PARIS_OFFICE.is_open(at) is is_open


def test_the_instant_matters_not_the_zone_it_is_given_in():
    # 10:30 in Paris is 04:30 in New York and 09:30 UTC: open however it is written.
    paris = datetime(2025, 3, 4, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert PARIS_OFFICE.is_open(paris.astimezone(ZoneInfo("America/New_York")))
    assert PARIS_OFFICE.is_open(paris.astimezone(UTC))
    # 19:00 in New York on Monday is already Tuesday 01:00 in Paris: closed.
    assert not PARIS_OFFICE.is_open(datetime(2025, 3, 3, 19, 0, tzinfo=ZoneInfo("America/New_York")))


def test_naive_times_are_taken_as_utc():
    assert PARIS_OFFICE.is_open(datetime(2025, 3, 4, 9, 30))          # 10:30 in Paris
    assert not PARIS_OFFICE.is_open(datetime(2025, 3, 4, 17, 30))     # 18:30 in Paris


def test_spring_forward_moves_opening_time_in_utc():
    every_day = Schedule("daily", "Europe/Paris", weekly(mon_sun="08:00-18:00"))
    # Paris switched to summer time on 2025-03-30 at 01:00 UTC.
    assert not every_day.is_open(datetime(2025, 3, 29, 6, 30, tzinfo=UTC))   # 07:30 CET
    assert every_day.is_open(datetime(2025, 3, 30, 6, 30, tzinfo=UTC))       # 08:30 CEST
    assert every_day.is_open(datetime(2025, 3, 30, 15, 59, tzinfo=UTC))      # 17:59 CEST
    assert not every_day.is_open(datetime(2025, 3, 30, 16, 0, tzinfo=UTC))   # 18:00 CEST


def test_fall_back_repeated_hour_is_open_both_times():
    night = Schedule("night", "America/New_York", weekly(sun="01:00-02:00"))
    # New York fell back on 2025-11-02: 01:30 happened at 05:30 UTC (EDT) and at 06:30 UTC (EST).
    assert night.is_open(datetime(2025, 11, 2, 5, 30, tzinfo=UTC))
    assert night.is_open(datetime(2025, 11, 2, 6, 30, tzinfo=UTC))
    assert not night.is_open(datetime(2025, 11, 2, 7, 30, tzinfo=UTC))      # 02:30 EST


def test_holidays_close_the_day_or_give_special_hours():
    office = Schedule("office", "Europe/Paris", weekly(mon_fri="08:00-18:00"), holidays=(
        Holiday(month=12, day=25),                                     # every year
        Holiday(month=12, day=24),                                     # every year: closed...
        Holiday(month=12, day=24, year=2025, hours=parse_ranges("08:00-12:00")),  # ...but short day in 2025
    ))
    paris = ZoneInfo("Europe/Paris")
    assert not office.is_open(datetime(2025, 12, 25, 10, 0, tzinfo=paris))   # Thursday, Christmas
    assert not office.is_open(datetime(2026, 12, 25, 10, 0, tzinfo=paris))   # Friday, Christmas
    assert office.is_open(datetime(2025, 12, 24, 11, 0, tzinfo=paris))       # Wednesday, short day
    assert not office.is_open(datetime(2025, 12, 24, 13, 0, tzinfo=paris))
    assert not office.is_open(datetime(2026, 12, 24, 11, 0, tzinfo=paris))   # Thursday: yearly holiday
    assert office.is_open(datetime(2025, 12, 23, 17, 0, tzinfo=paris))


def test_a_holiday_is_a_local_date():
    auckland = Schedule("nz", "Pacific/Auckland", weekly(mon_sun="00:00-24:00"), holidays=(Holiday(12, 25),))
    # 2025-12-24 20:00 UTC is already Christmas morning in Auckland.
    assert not auckland.is_open(datetime(2025, 12, 24, 20, 0, tzinfo=UTC))
    assert auckland.is_open(datetime(2025, 12, 24, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize("spec, days", [
    ("mon", (0,)),
    ("mon-fri", (0, 1, 2, 3, 4)),
    ("sat,sun", (5, 6)),
    ("fri-mon", (4, 5, 6, 0)),
    ("MON - WED", None),
    ("weekend", None),
    ("mon-", None),
])
def test_parse_days(spec, days):
    if days is None:
        with pytest.raises(ScheduleError):
            parse_days(spec)
    else:
        assert parse_days(spec) == days


@pytest.mark.parametrize("text, ranges", [
    ("08:00-18:00", "08:00-18:00"),
    ("13:00-18:00, 8:00-12:00", "08:00-12:00 13:00-18:00"),
    ("22:00-24:00", "22:00-24:00"),
    ("closed", ""),
])
def test_parse_ranges(text, ranges):
    assert " ".join(map(str, parse_ranges(text))) == ranges


@pytest.mark.parametrize("text, message", [
    ("18:00-08:00", "time range '18:00-08:00' ends before it starts (split ranges that cross midnight at 24:00)"),
    ("10:00-10:00", "time range '10:00-10:00' ends before it starts (split ranges that cross midnight at 24:00)"),
    ("24:00-24:00", "bad time '24:00' (expected 00:00 to 24:00)"),
    ("08:60-09:00", "bad time '08:60' (expected 00:00 to 24:00)"),
    ("8h-9h", "bad time '8h' (expected HH:MM)"),
    ("08:00", "bad time range '08:00' (expected HH:MM-HH:MM)"),
    ("08:00-12:00, 11:00-13:00", "time ranges 08:00-12:00 and 11:00-13:00 overlap"),
])
def test_parse_ranges_errors(text, message):
    with pytest.raises(ScheduleError) as error:
        parse_ranges(text)
    assert str(error.value) == message


@pytest.mark.parametrize("text, parsed", [
    ("2025-12-25", (2025, 12, 25)),
    ("12-25", (None, 12, 25)),
    ("02-29", (None, 2, 29)),
    ("2025-02-29", None),
    ("2025-1-1", None),
    ("13-01", None),
    ("20251225", None),
])
def test_parse_holiday_date(text, parsed):
    if parsed is None:
        with pytest.raises(ScheduleError, match="bad date"):
            parse_holiday_date(text)
    else:
        assert parse_holiday_date(text) == parsed


def test_bad_time_zone_is_refused():
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        Schedule("x", "Mars/Olympus", weekly())
