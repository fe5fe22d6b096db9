"""The glue's clock: monotonic time for durations, wall time for what outlives the process, and timers.

Passed in (never ``time.monotonic()`` inside the glue), so the component tier drives timers with a fake
clock (``tests/support/fake_clock.py``) and a race that takes minutes on a real call takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (the router's clock)."""
        ...

    def wall(self) -> float:
        """Epoch seconds (what is saved for a restart)."""
        ...

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Cancellable:
        """Run ``fn(*args)`` after ``delay`` seconds on the running loop."""
        ...


class LoopClock:
    """The real clock: ``time.monotonic`` / ``time.time`` and the running loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, fn, *args)


def to_monotonic(clock: Clock, wall: float) -> float:
    """An epoch time (saved on a channel by an earlier process) on this clock's monotonic scale."""
    return clock.now() - max(0.0, clock.wall() - wall)
