"""Contact quality for ops: first-contact resolution and repeat-caller rate per queue, kept fresh.

What it is for: ``ContactQualityReporter`` reads the interaction history (the embedded store, or the local
history of the HTTP adapter) every ``interval_seconds``, computes ``ivr.crm.rules.contact_quality`` over the
report window and hands the figures to a sink (the app's ``Metrics.contact_quality``), so a scrape reads
them without any I/O. The history is persistent, so the figures survive a restart of the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from ivr.crm.model import Interaction
from ivr.crm.rules import QueueContactQuality, contact_quality

__all__ = ["ContactQualityReporter", "HistorySource", "QualitySource"]

log = logging.getLogger("ivr.crm")


@runtime_checkable
class HistorySource(Protocol):
    async def interactions_between(self, start: float, end: float) -> list[Interaction]:
        """Every interaction with ``start <= at < end``."""
        ...


@runtime_checkable
class QualitySource(Protocol):
    """A history that computes the report itself (the embedded store, in SQL)."""

    async def contact_quality(self, now: float, window_seconds: float,
                              repeat_window_seconds: float) -> Mapping[str, QueueContactQuality]: ...


class ContactQualityReporter:
    def __init__(
        self,
        source: HistorySource,
        sink: Callable[[Mapping[str, QueueContactQuality]], None],
        *,
        window_seconds: float,
        repeat_window_seconds: float,
        interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_seconds <= 0 or repeat_window_seconds <= 0 or interval_seconds <= 0:
            raise ValueError("window_seconds, repeat_window_seconds and interval_seconds must be > 0")
        self.source = source
        self.sink = sink
        self.window = float(window_seconds)
        self.repeat_window = float(repeat_window_seconds)
        self.interval = float(interval_seconds)
        self.clock = clock

    async def refresh(self) -> dict[str, QueueContactQuality]:
        now = self.clock()
        if isinstance(self.source, QualitySource):
            report = dict(await self.source.contact_quality(now, self.window, self.repeat_window))
            self.sink(report)
            return report
        calls = await self.source.interactions_between(now - self.window - self.repeat_window, now + 1e-6)
        # off the event loop: over a day of history this is tens of milliseconds of pure Python, which would
        # stall every call (and read as saturation to admission control) once a minute
        report = await asyncio.to_thread(contact_quality, calls, now, self.window, self.repeat_window)
        self.sink(report)
        return report

    async def run(self) -> None:
        """Refresh now, then every ``interval_seconds``, until cancelled; a failure is logged, not fatal."""
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception:  # a report must never stop the app
                log.log(logging.DEBUG if failing else logging.WARNING, "contact quality report failed",
                        exc_info=not failing)
                failing = True
            await asyncio.sleep(self.interval)
