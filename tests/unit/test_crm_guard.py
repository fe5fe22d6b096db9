"""GuardedLookup: normalises, time-boxes and never raises (ivr.crm.lookup).

The backends here are small stand-ins implementing the CrmLookup protocol (a
slow one and a broken one), to exercise the guard's own behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ivr.crm.lookup import CrmLookup, CrmRecorder, CrmStats, GuardedLookup, NullCrm
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


class Recorder:
    """A CrmRecorder that keeps what it heard."""

    def __init__(self) -> None:
        self.lookups: list[tuple[str, str, float]] = []
        self.errors: list[tuple[str, str]] = []

    def crm_lookup(self, backend: str, status: str, seconds: float) -> None:
        self.lookups.append((backend, status, seconds))

    def crm_error(self, backend: str, kind: str) -> None:
        self.errors.append((backend, kind))


class FixedBackend(SlowBackend):
    source = "http"

    def __init__(self, *results: LookupResult) -> None:
        super().__init__(0)
        self.results = list(results)

    async def lookup(self, e164: str | None) -> LookupResult:
        return self.results.pop(0)


async def test_every_lookup_is_recorded_with_the_configured_backend_and_failures_by_kind() -> None:
    from ivr.metrics import Metrics, crm_error_kind

    rec = Recorder()
    assert isinstance(rec, CrmRecorder) and isinstance(Metrics(), CrmRecorder)
    S = LookupStatus
    backend = FixedBackend(
        LookupResult(S.FOUND, None, "http-cache"), LookupResult(S.NOT_FOUND, None, "http"),
        LookupResult(S.ERROR, None, "http", detail="connect"),
        LookupResult(S.ERROR, None, "http", detail="http_503"),
        LookupResult(S.TIMEOUT, None, "http", detail="timeout"), LookupResult(S.CIRCUIT_OPEN, None, "http"),
        LookupResult(S.ERROR, None, "http", detail="unexpected_ValueError"))
    guard = GuardedLookup(backend, budget_seconds=0.5, recorder=rec, backend_name="http")
    for _ in range(7):
        await guard.lookup("+442079460001")
    await guard.lookup_caller("anonymous")
    assert [(b, s) for b, s, _ in rec.lookups] == [
        ("http", "found"), ("http", "not_found"), ("http", "error"), ("http", "error"), ("http", "timeout"),
        ("http", "circuit_open"), ("http", "error"), ("http", "anonymous")]
    assert all(0 <= t < 0.5 for _, _, t in rec.lookups)
    assert rec.errors == [("http", "connect"), ("http", "http_503"), ("http", "timeout"),
                          ("http", "circuit_open"), ("http", "exception")]
    kinds = [crm_error_kind(k) for _, k in rec.errors]
    assert kinds == ["connect", "http", "timeout", "circuit_open", "exception"]


async def test_guard_failures_are_recorded_under_the_configured_backend() -> None:
    rec = Recorder()
    slow = GuardedLookup(SlowBackend(5.0), budget_seconds=0.05, recorder=rec, backend_name="sqlite")
    broken = GuardedLookup(BrokenBackend(0), budget_seconds=0.5, recorder=rec)
    await slow.lookup("+442079460001")
    await broken.lookup("+442079460001")
    assert [(b, s) for b, s, _ in rec.lookups] == [("sqlite", "timeout"), ("broken", "error")]
    assert rec.lookups[0][2] >= 0.05                 # the time the call waited: the whole budget
    assert rec.errors == [("sqlite", "timeout"), ("broken", "exception")]


async def test_a_failing_recorder_never_reaches_the_call() -> None:
    class Boom(Recorder):
        def crm_lookup(self, backend: str, status: str, seconds: float) -> None:
            raise RuntimeError("metrics bug")

    guard = GuardedLookup(NullCrm(), budget_seconds=0.1, recorder=Boom())
    assert (await guard.lookup("+442079460001")).status is LookupStatus.NOT_FOUND


async def test_factory_labels_lookups_with_the_configured_backend() -> None:
    from ivr.crm.factory import crm_from_config

    rec = Recorder()
    crm = crm_from_config({"backend": "sqlite"}, recorder=rec)
    await crm.lookup("+442079460001")
    await crm.close()
    assert [(b, s) for b, s, _ in rec.lookups] == [("sqlite", "not_found")]
