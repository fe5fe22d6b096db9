"""The staffing tracker: sliding-window arrival rate and handle time per queue, bounded memory."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .vocab import DEFAULT_MIN_WINDOW, DEFAULT_WINDOW


# ------------------------------------------------------------------------------------- staffing
class _Window:
    """Samples of one queue within the window, merged per second: memory is bounded by the window's
    length (900 entries for 15 min) whatever the call rate; sums and counts kept incrementally. A second
    is dropped once its *newest* sample is older than the horizon (so at most 1 s late, never early)."""

    __slots__ = ("count", "samples", "total")

    BUCKET = 1.0

    def __init__(self) -> None:
        self.samples: deque[list[float]] = deque()    # [second, newest time, sum, count]
        self.total = 0.0
        self.count = 0

    def add(self, t: float, v: float) -> None:
        second = t // self.BUCKET
        s = self.samples
        if s and s[-1][0] == second:
            last = s[-1]
            last[1] = max(last[1], t)
            last[2] += v
            last[3] += 1
        else:
            s.append([second, t, v, 1])
        self.total += v
        self.count += 1

    def prune(self, horizon: float) -> None:
        s = self.samples
        while s and s[0][1] < horizon:
            _, _, v, n = s.popleft()
            self.total -= v
            self.count -= int(n)
        if not s:
            self.total, self.count = 0.0, 0   # no float drift accumulates across empty periods

    def __len__(self) -> int:
        return self.count


class Staffing:
    """Sliding-window arrival rate and handle time per queue (injected monotonic clock, thread-safe).

    * arrival rate = calls that entered the queue in the window / window length (calls/s). Until the
      tracker has run a full window, the length is the time since start, but at least ``min_window``.
    * handle time = (talk seconds + wrap-up seconds finished in the window) / calls whose talk finished in
      the window: the work one handled call brings (AHT). With no handled call in the window, the last
      value computed is kept (``None`` if there never was one).

    Memory is one entry per second of the window per queue (900 for 15 min), whatever the call rate.
    """

    def __init__(self, window_seconds: float = DEFAULT_WINDOW, clock: Callable[[], float] = time.monotonic,
                 min_window_seconds: float = DEFAULT_MIN_WINDOW) -> None:
        if not window_seconds > 0:
            raise ValueError("window_seconds must be > 0")
        self.window = float(window_seconds)
        self.min_window = min(float(min_window_seconds), self.window)
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._arrivals: dict[str, _Window] = {}
        self._talk: dict[str, _Window] = {}
        self._wrap: dict[str, _Window] = {}
        self._last_aht: dict[str, float] = {}

    def _add(self, table: dict[str, _Window], queue: str, v: float) -> None:
        now = self.clock()
        with self._lock:
            w = table.get(queue)
            if w is None:
                w = table[queue] = _Window()
            w.add(now, v)
            w.prune(now - self.window)

    def arrival(self, queue: str) -> None:
        self._add(self._arrivals, queue, 1.0)

    def talk(self, queue: str, seconds: float) -> None:
        self._add(self._talk, queue, seconds)

    def wrap_up(self, queue: str, seconds: float) -> None:
        self._add(self._wrap, queue, seconds)

    def _span(self, now: float) -> float:
        return min(self.window, max(now - self.started, self.min_window))

    def arrival_rate(self, queue: str) -> float:
        now = self.clock()
        with self._lock:
            w = self._arrivals.get(queue)
            if w is None:
                return 0.0
            w.prune(now - self.window)
            return len(w) / self._span(now)

    def handle_time(self, queue: str) -> float | None:
        now = self.clock()
        with self._lock:
            talk, wrap = self._talk.get(queue), self._wrap.get(queue)
            horizon = now - self.window
            for w in (talk, wrap):
                if w is not None:
                    w.prune(horizon)
            if talk is not None and len(talk):
                aht = (talk.total + (wrap.total if wrap is not None else 0.0)) / len(talk)
                self._last_aht[queue] = max(0.0, aht)
            return self._last_aht.get(queue)

