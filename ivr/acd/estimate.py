"""Estimated wait of a caller in a queue: its position over the rate at which callers recently left the
line. Pure (the router's clock is passed in), bounded memory.

Rule
----
* A *departure* is a caller leaving the queue's line for any reason once it had joined: answered by an
  agent, abandoned, timed out, moved to another queue (overflow), left because no agent could serve it,
  or taken back by the flow. Each one moves every caller behind it one place up. Refusals at join
  (``full``, ``no_agents``) never joined: not counted.
* ``rate = departures in the last WINDOW seconds / span``, where ``span`` is ``WINDOW``, or the time since
  the queue was created when that is shorter, but never less than ``MIN_SPAN`` (one departure in the
  first seconds after a start is not a rate of one a second).
* ``estimate(position) = position / rate`` seconds: the caller in position *p* leaves the line after *p*
  departures (the *p - 1* ahead of it, then its own answer).
* **No departure in the window: no estimate** (``None``). A queue nobody has left for ``WINDOW`` seconds
  (no agent, all paused, a fresh start) gives no number at all rather than a wrong one.
"""

from __future__ import annotations

from collections import deque

#: Seconds of departures the rate is computed over.
WINDOW = 600.0
#: The rate is never computed over fewer seconds than this (right after the queue is created).
MIN_SPAN = 60.0
#: At most this many departures are remembered (older ones fall out of the window first anyway).
MAX_EVENTS = 100_000


class DepartureRate:
    """Departures from one queue's line over a sliding window on the router's clock."""

    __slots__ = ("_times", "started", "window")

    def __init__(self, started: float, window: float = WINDOW) -> None:
        if not window > 0:
            raise ValueError("window must be > 0 seconds")
        self.started = started
        self.window = window
        self._times: deque[float] = deque(maxlen=MAX_EVENTS)

    def record(self, now: float) -> None:
        """A caller left the line at ``now`` (times are non-decreasing: the router never goes back)."""
        self._times.append(now)

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        t = self._times
        while t and t[0] <= horizon:
            t.popleft()

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._times)

    def rate(self, now: float) -> float | None:
        """Departures per second over the window, or None when nobody left the line within it."""
        n = self.count(now)
        if n == 0:
            return None
        span = max(MIN_SPAN, min(self.window, now - self.started))
        return n / span

    def estimate(self, position: int | None, now: float) -> float | None:
        """Seconds until the caller in ``position`` (1 = next) is answered, or None (no data)."""
        if position is None or position < 1:
            return None
        r = self.rate(now)
        return None if r is None else position / r
