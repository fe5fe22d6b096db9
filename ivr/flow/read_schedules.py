"""The flow reader's schedule kinds: time ranges, weekly hours, dates, holidays, schedules."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, SequenceNode
from yaml.nodes import Node as YamlNode

from . import schema
from .read_structs import StructKinds
from .reader_base import _NAME_RE, INVALID
from .schedule import (
    WEEKDAYS,
    Holiday,
    Schedule,
    ScheduleError,
    TimeRange,
    parse_days,
    parse_holiday_date,
    parse_ranges,
)


class ScheduleKinds(StructKinds):
    """Schedule kinds (``kind_*``)."""

    def kind_time_ranges(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, SequenceNode):
            parts = [self.kind_text(item, key) for item in node.value]
            if INVALID in parts:
                return INVALID
            text = ", ".join(parts)
        else:
            text = self.kind_text(node, key)
            if text is INVALID:
                return text
        try:
            return parse_ranges(text)
        except ScheduleError as e:
            return self.error(node, str(e))

    def kind_weekly_hours(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        week: list[tuple[TimeRange, ...]] = [()] * 7
        set_by: dict[int, str] = {}
        ok = True
        for days_text, days_node, ranges_node in items:
            try:
                days = parse_days(days_text)
            except ScheduleError as e:
                self.error(days_node, str(e))
                ok = False
                continue
            ranges = self.kind_time_ranges(ranges_node, days_text)
            if ranges is INVALID:
                ok = False
                continue
            for day in days:
                if day in set_by:
                    self.error(days_node, f"{WEEKDAYS[day]} already has hours from '{set_by[day]}'")
                    ok = False
                    break
                set_by[day] = days_text
                week[day] = ranges
        return tuple(week) if ok else INVALID

    def kind_date(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        try:
            return parse_holiday_date(text)
        except ScheduleError as e:
            return self.error(node, str(e))

    def kind_holidays(self, node: YamlNode, key: str) -> Any:
        if not isinstance(node, SequenceNode):
            return self.error(node, f"'{key}' must be a list of dates, got {self.describe(node)}")
        holidays = []
        seen: dict[tuple[int | None, int, int], int] = {}
        ok = True
        for item in node.value:
            if isinstance(item, MappingNode):
                items = self.items(item, "a holiday")
                values, complete = self.fields(items or [], schema.HOLIDAY_FIELDS, "holiday", item)
                if items is None or not complete:
                    ok = False
                    continue
                when, hours, name = values["date"], values.get("hours", ()), values.get("name", "")
            else:
                when = self.kind_date(item, "holidays")
                if when is INVALID:
                    ok = False
                    continue
                hours, name = (), ""
            line = item.start_mark.line + 1
            if when in seen:
                self.error(item, f"holiday date is listed twice (first at line {seen[when]})")
                ok = False
                continue
            seen[when] = line
            year, month, day = when
            holidays.append(Holiday(month=month, day=day, year=year, hours=hours, name=name))
        return tuple(holidays) if ok else INVALID

    def kind_schedules(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        schedules = {}
        ok = True
        for name, name_node, schedule_node in items:
            if not _NAME_RE.match(name):
                self.error(name_node, f"'{name}' is not a schedule name (letters, digits, '_' and '-')")
                ok = False
                continue
            self.parsed.schedule_names.add(name)
            fields_ = self.items(schedule_node, f"schedule '{name}'")
            if fields_ is None:
                ok = False
                continue
            values, complete = self.fields(fields_, schema.SCHEDULE_FIELDS, f"schedule '{name}'", name_node)
            if not complete:
                ok = False
                continue
            schedules[name] = Schedule(name=name, timezone=values["timezone"], weekly=values["hours"],
                                       holidays=values.get("holidays", ()))
        self.parsed.schedules = schedules
        return schedules if ok else INVALID

    # -- nodes -----------------------------------------------------------------------

