"""GuardedLookup: normalises, time-boxes and never raises (ivr.crm.lookup).

The backends here are small stand-ins implementing the CrmLookup protocol (a
slow one and a broken one), to exercise the guard's own behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ivr.crm.lookup import CrmLookup, CrmStats, GuardedLookup, NullCrm
from ivr.crm.model import Interaction, LookupResult, LookupStatus


class SlowBackend:
    source = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen: list[str | None] = []

    async def lookup(self, e164: str | None) -> LookupResult:
        self.seen.append(e164)
        await asyncio.sleep(self.delay)
        return LookupResult(LookupStatus.NOT_FOUND, None, self.source)

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        await asyncio.sleep(self.delay)

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        return [Interaction(at=1.0)] * limit

    async def close(self) -> None:
        return None


class BrokenBackend(SlowBackend):
    source = "broken"

    async def lookup(self, e164: str | None) -> LookupResult:
        raise KeyError("bug")

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        raise OSError("disk full")

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        raise RuntimeError("bug")

    async def close(self) -> None:
        raise RuntimeError("bug")


def test_backends_satisfy_the_protocol() -> None:
    assert isinstance(SlowBackend(0), CrmLookup)
    assert isinstance(NullCrm(), CrmLookup)


async def test_budget_holds_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ivr.crm")
    guard = GuardedLookup(SlowBackend(5.0), budget_seconds=0.05, stats=CrmStats())
    started = time.perf_counter()
    results = [await guard.lookup("+442079460001") for _ in range(3)]
    assert time.perf_counter() - started < 3 * 0.05 + 0.3
    assert {r.status for r in results} == {LookupStatus.TIMEOUT}
    assert all(r.detail == "budget" and r.customer is None for r in results)
    assert guard.stats.guard_timeouts == 3 and guard.stats.by_status["timeout"] == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one per episode
    assert "2079460001" not in caplog.text


async def test_exceptions_become_error_results_and_history_is_best_effort() -> None:
    guard = GuardedLookup(BrokenBackend(0), budget_seconds=0.5)
    r = await guard.lookup("+442079460001")
    assert r.status is LookupStatus.ERROR and r.detail == "KeyError"
    await guard.record_interaction("+442079460001", Interaction(at=1.0))
    assert guard.stats.history_errors == 1
    assert await guard.recent_interactions("+442079460001") == []
    await guard.close()


async def test_raw_caller_ids_are_normalised_before_the_backend() -> None:
    backend = SlowBackend(0)
    guard = GuardedLookup(backend, budget_seconds=0.5, default_region="US")
    assert (await guard.lookup_caller("(212) 555-0123")).status is LookupStatus.NOT_FOUND
    assert (await guard.lookup("212 555 0124")).status is LookupStatus.NOT_FOUND
    for withheld in ("anonymous", "", None, "1" * 200):
        assert (await guard.lookup_caller(withheld)).status is LookupStatus.ANONYMOUS
    assert backend.seen == ["+12125550123", "+12125550124"]
    assert len(await guard.recent_interactions("+12125550123", limit=10_000)) == 100  # bounded


async def test_history_budget_bounds_record_interaction() -> None:
    guard = GuardedLookup(SlowBackend(5.0), budget_seconds=0.5, history_budget_seconds=0.05)
    started = time.perf_counter()
    await guard.record_interaction("+442079460001", Interaction(at=1.0))
    assert time.perf_counter() - started < 0.5
    assert guard.stats.history_errors == 1


async def test_null_crm_knows_nobody() -> None:
    guard = GuardedLookup(NullCrm(), budget_seconds=0.1)
    assert (await guard.lookup("+442079460001")).status is LookupStatus.NOT_FOUND
    assert (await guard.lookup(None)).status is LookupStatus.ANONYMOUS
    assert guard.stats.lookups == 2
