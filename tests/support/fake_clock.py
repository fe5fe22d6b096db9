"""A fake ``ivr.calls.clock.Clock`` for the component tier: time stands still until the test calls
``advance``; the timers that fall due then run in time order (each as the real loop would run a
``call_later`` callback: here they submit events to the app's dispatcher). A wait of minutes on a real call
(a ring timeout, a queue's max wait, an announcement period) takes a millisecond."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class _Handle:
    def __init__(self, at: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.at, self.fn, self.args = at, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, start: float = 10_000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._timers: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> _Handle:
        h = _Handle(self._now + max(0.0, delay), fn, args)
        heapq.heappush(self._timers, (h.at, next(self._seq), h))
        return h

    def pending(self) -> list[float]:
        """Due times of the timers not cancelled, soonest first."""
        return sorted(h.at for _, _, h in self._timers if not h.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time forward, running every timer due by then in order; returns how many ran."""
        target = self._now + seconds
        ran = 0
        while self._timers and self._timers[0][0] <= target:
            at, _, h = heapq.heappop(self._timers)
            if h.cancelled:
                continue
            self._now = max(self._now, at)
            h.fn(*h.args)
            ran += 1
        self._now = target
        return ran
