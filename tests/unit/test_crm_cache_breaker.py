"""TTL cache and circuit breaker with a fake clock (ivr.crm.cache, ivr.crm.breaker)."""

from __future__ import annotations

import pytest

from ivr.crm.breaker import BreakerState, CircuitBreaker
from ivr.crm.cache import MISS, TTLCache


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def test_cache_positive_and_negative_entries_expire_separately() -> None:
    clock = FakeClock()
    cache: TTLCache[str | None] = TTLCache(10, clock)
    cache.put("+442079460001", "C1", ttl=300)
    cache.put("+442079460002", None, ttl=60)  # negative entry
    assert cache.get("+442079460001") == "C1"
    assert cache.get("+442079460002") is None  # cached "not found", not a miss
    assert cache.get("+442079460003") is MISS
    clock.advance(60)
    assert cache.get("+442079460002") is MISS
    assert cache.get("+442079460001") == "C1"
    clock.advance(240)
    assert cache.get("+442079460001") is MISS
    assert len(cache) == 0


def test_cache_is_bounded_lru() -> None:
    clock = FakeClock()
    cache: TTLCache[int] = TTLCache(3, clock)
    for i in range(3):
        cache.put(str(i), i, 100)
    assert cache.get("0") == 0  # 0 is now most recently used
    cache.put("3", 3, 100)
    assert cache.get("1") is MISS  # least recently used went
    assert [cache.get(k) for k in ("0", "2", "3")] == [0, 2, 3]
    assert len(cache) == 3


def test_cache_zero_ttl_stores_nothing_and_invalidate() -> None:
    cache: TTLCache[int] = TTLCache(3, FakeClock())
    cache.put("a", 1, 0)
    assert cache.get("a") is MISS
    cache.put("a", 1, 10)
    cache.invalidate("a")
    assert cache.get("a") is MISS
    with pytest.raises(ValueError):
        TTLCache(0)


def test_breaker_full_cycle() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=3, cooldown_seconds=30, clock=clock)
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    assert b.record_failure() is None
    assert b.record_failure() is None
    t = b.record_failure()
    assert t is not None and (t.old, t.new, t.consecutive_failures) == (
        BreakerState.CLOSED,
        BreakerState.OPEN,
        3,
    )
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.advance(29.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    t = b.record_success()
    assert t is not None and (t.old, t.new) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert b.allow() and b.consecutive_failures == 0
    assert b.opens == 1


def test_breaker_success_resets_the_count() -> None:
    b = CircuitBreaker(failure_threshold=3, cooldown_seconds=1, clock=FakeClock())
    b.record_failure()
    b.record_failure()
    assert b.record_success() is None  # closed -> closed is no transition
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_breaker_failed_probe_reopens_and_restarts_cooldown() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    assert b.allow()
    t = b.record_failure()
    assert t is not None and (t.old, t.new) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    clock.advance(9)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()
    assert b.opens == 1  # one outage, however many probes failed


def test_breaker_released_or_lost_probe_does_not_wedge() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, cooldown_seconds=10, clock=clock)
    b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.release()  # probe cancelled: no verdict
    assert b.allow()  # another probe may go at once
    # This probe is never reported at all; after one more cooldown another may go.
    assert not b.allow()
    clock.advance(10)
    assert b.allow()


def test_breaker_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_seconds=0)
