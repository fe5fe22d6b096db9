"""Bounded TTL cache for CRM lookups (positive and negative entries).

What it is for: a caller who rings back two minutes later (or whose call is
transferred) should not cost another CRM round trip, and a number the CRM does
not know should not be asked about on every retry. Each entry carries its own
TTL, so "found" and "not found" can be kept for different times. The cache is
bounded: the least recently used entry goes first.

Errors are never cached (the caller of this module decides that).

Pure module: no asyncio, aiohttp or sqlite3; time comes from an injected
monotonic clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["MISS", "TTLCache"]

V = TypeVar("V")


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


# Sentinel for "not in cache", distinct from a cached None (negative entry).
MISS = _Miss()


class TTLCache(Generic[V]):
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> V | _Miss:
        """The cached value (may be None for a negative entry) or ``MISS``."""
        item = self._data.get(key)
        if item is None:
            return MISS
        expires, value = item
        if self._clock() >= expires:
            del self._data[key]
            return MISS
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: V, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds; ``ttl <= 0`` stores nothing."""
        if ttl <= 0:
            self._data.pop(key, None)
            return
        self._data[key] = (self._clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def invalidate(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
