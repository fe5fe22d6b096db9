"""Circuit breaker for calls to an external CRM.

What it is for: when the CRM is down, stop spending every caller's time budget
on a request that will fail; try again after a cooldown. States::

    CLOSED --N consecutive failures--> OPEN --cooldown elapsed--> HALF_OPEN
    HALF_OPEN --probe succeeds--> CLOSED
    HALF_OPEN --probe fails-----> OPEN (cooldown restarts)

In HALF_OPEN a single probe request is let through; other calls are refused
until it reports. State changes are returned to the caller as ``Transition``
objects so the adapter can log once per outage instead of once per call.

Pure module: no asyncio, aiohttp or sqlite3; time comes from an injected clock
(monotonic seconds), so tests drive it with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker", "Transition"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    old: BreakerState
    new: BreakerState
    consecutive_failures: int


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a cooldown and a single half-open probe."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_seconds <= 0:
            raise ValueError("cooldown_seconds must be > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self.opens = 0  # how many times the breaker opened from CLOSED (outages)

    @property
    def state(self) -> BreakerState:
        """Current state; OPEN reads as HALF_OPEN once the cooldown has elapsed."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_seconds:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a request go out now? In HALF_OPEN, True for exactly one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        # HALF_OPEN. A probe whose outcome was never reported (its task was
        # cancelled and release() missed) must not wedge the breaker: after one
        # more cooldown another probe may go.
        now = self._clock()
        if self._probe_started is not None and now - self._probe_started < self.cooldown_seconds:
            return False
        self._state = BreakerState.HALF_OPEN
        self._probe_started = now
        return True

    def release(self) -> None:
        """The request allowed by ``allow()`` ended with no verdict (e.g. cancelled)."""
        self._probe_started = None

    def record_success(self) -> Transition | None:
        old = self._state
        self._failures = 0
        self._probe_started = None
        self._state = BreakerState.CLOSED
        if old is not BreakerState.CLOSED:
            return Transition(old, BreakerState.CLOSED, 0)
        return None

    def record_failure(self) -> Transition | None:
        self._failures += 1
        self._probe_started = None
        old = self._state
        if old is BreakerState.CLOSED and self._failures < self.failure_threshold:
            return None
        # Threshold reached, or a half-open probe failed, or a straggler request
        # that left before the breaker opened failed: (re)start the cooldown.
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        if old is BreakerState.CLOSED:
            self.opens += 1
            return Transition(old, BreakerState.OPEN, self._failures)
        if old is BreakerState.HALF_OPEN:
            return Transition(old, BreakerState.OPEN, self._failures)
        return None
