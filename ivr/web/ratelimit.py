"""Sliding-window rate limits (pure, injected clock): at most ``limit`` events per ``window`` seconds per
key (a phone number, a client address, a user name). Memory is bounded: keys whose events all aged out
are dropped, and at most ``max_keys`` keys are tracked (the oldest are forgotten first, which can only
let a forgotten key through early, never block an innocent one)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimit:
    def __init__(self, limit: int, window: float, clock: Callable[[], float], max_keys: int = 10_000) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit, self.window = limit, window
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """0 if one more event for ``key`` is allowed now, else the seconds until it is."""
        q = self._fresh(key)
        if q is None or len(q) < self.limit:
            return 0.0
        return max(0.0, q[0] + self.window - self._clock())

    def hit(self, key: str) -> float:
        """Count one event for ``key`` if allowed: returns 0, else the seconds to wait (nothing counted)."""
        wait = self.retry_after(key)
        if wait > 0:
            return wait
        q = self._events.get(key)
        if q is None:
            q = self._events[key] = deque()
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        q.append(self._clock())
        return 0.0

    def _fresh(self, key: str) -> deque[float] | None:
        q = self._events.get(key)
        if q is None:
            return None
        horizon = self._clock() - self.window
        while q and q[0] <= horizon:
            q.popleft()
        if not q:
            del self._events[key]
            return None
        return q
