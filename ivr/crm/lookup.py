"""The CRM lookup protocol the call session talks to, its counters, and the call-time guard.

What it is for:

* ``CrmLookup``: the four async methods every backend (embedded SQLite store,
  HTTP adapter, ``NullCrm``) provides.
* ``CrmStats``: plain counters (the lead exports them to Prometheus).
* ``GuardedLookup``: wraps any backend for use on a live call. It normalises
  the raw caller ID, time-boxes the lookup to a hard budget and turns every
  exception into a ``LookupResult`` with status ``error``/``timeout``: a CRM
  problem must route the call by the default route, never drop it.
* ``CrmRecorder``: what ``GuardedLookup`` reports each lookup to (the app's
  ``ivr.metrics.Metrics`` fits it): the configured backend, the status, the
  time the caller waited for it, and for a failure its kind.

Must not import aiohttp or sqlite3 (backends live in ``http.py``/``store.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ivr.crm.model import Interaction, LookupResult, LookupStatus
from ivr.crm.phone import is_e164, mask, normalize

__all__ = ["MAX_RECENT", "CrmLookup", "CrmRecorder", "CrmStats", "GuardedLookup", "NullCrm", "failure_kind"]

log = logging.getLogger("ivr.crm")

# Upper bound for recent_interactions(limit): an agent screen shows a handful.
MAX_RECENT = 100


@runtime_checkable
class CrmLookup(Protocol):
    """What the call session needs from a CRM. Implementations never raise from ``lookup``."""

    async def lookup(self, e164: str | None) -> LookupResult:
        """Who is calling from ``e164`` (None = withheld number)."""
        ...

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        """Append one finished call to the caller's history (and the CRM's, if configured)."""
        ...

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        """The caller's latest interactions, newest first."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class CrmRecorder(Protocol):
    """Where ``GuardedLookup`` reports every lookup (``ivr.metrics.Metrics`` has both methods).

    ``backend`` is the configured backend (``sqlite``, ``http``, ``null``), ``status`` a ``LookupStatus``
    value, ``seconds`` the time the lookup took as the call saw it (budget included). ``crm_error`` follows
    ``crm_lookup`` for every failed lookup, with ``kind`` from ``failure_kind``. Must not block or raise
    (an exception is logged and ignored: metrics never break a call)."""

    def crm_lookup(self, backend: str, status: str, seconds: float) -> None: ...

    def crm_error(self, backend: str, kind: str) -> None: ...


def failure_kind(result: LookupResult) -> str:
    """The kind of a failed lookup, for ``CrmRecorder.crm_error``: ``timeout`` (the backend's request timeout
    or the guard's budget), ``circuit_open``, ``exception`` (a backend raised), else the backend's raw reason
    (``connect``, ``http_503``, ``bad_json`` ...; ``ivr.metrics.crm_error_kind`` maps those)."""
    if result.status is LookupStatus.TIMEOUT:
        return "timeout"
    if result.status is LookupStatus.CIRCUIT_OPEN:
        return "circuit_open"
    if result.source == "guard" or result.detail.startswith("unexpected_"):
        return "exception"
    return result.detail or "other"


@dataclass
class CrmStats:
    """Counters, monotonically increasing. Plain attributes; ``snapshot()`` for export."""

    lookups: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in LookupStatus})
    latency_seconds_sum: float = 0.0
    latency_seconds_max: float = 0.0
    requests: int = 0  # HTTP lookups actually sent
    cache_hits: int = 0
    cache_misses: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count (timeout, connect, http_503 ...)
    breaker_opens: int = 0
    short_circuited: int = 0  # lookups skipped because the breaker was open
    mapping_fallbacks: int = 0  # fields that fell back to defaults (wrong type in the CRM answer)
    history_records: int = 0
    history_errors: int = 0
    history_posts: int = 0
    history_post_failures: int = 0
    history_post_skipped: int = 0
    guard_timeouts: int = 0
    guard_exceptions: int = 0

    def observe(self, result: LookupResult) -> None:
        self.lookups += 1
        self.by_status[result.status.value] = self.by_status.get(result.status.value, 0) + 1
        self.latency_seconds_sum += result.latency
        self.latency_seconds_max = max(self.latency_seconds_max, result.latency)

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = dict(value) if isinstance(value, dict) else value
        return out


class NullCrm:
    """CRM disabled: every caller is unknown, instantly."""

    source = "none"

    def __init__(self, stats: CrmStats | None = None) -> None:
        self.stats = stats or CrmStats()

    async def lookup(self, e164: str | None) -> LookupResult:
        status = LookupStatus.NOT_FOUND if e164 else LookupStatus.ANONYMOUS
        result = LookupResult(status, None, self.source, 0.0, caller=e164)
        self.stats.observe(result)
        return result

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        return None

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        return []

    async def close(self) -> None:
        return None


class GuardedLookup:
    """Call-safe façade over a backend: normalise, time-box, never raise.

    ``budget_seconds`` is the hard cap for one lookup, whatever the backend does
    (the HTTP adapter has its own, shorter, request timeout; this catches the
    rest: a stuck disk, a bug). ``history_budget_seconds`` bounds
    ``record_interaction``, which runs after the call and can afford longer.
    """

    def __init__(
        self,
        backend: CrmLookup,
        *,
        budget_seconds: float = 0.5,
        history_budget_seconds: float = 5.0,
        default_region: str = "GB",
        stats: CrmStats | None = None,
        recorder: CrmRecorder | None = None,
        backend_name: str | None = None,
    ) -> None:
        if budget_seconds <= 0:
            raise ValueError("budget_seconds must be > 0")
        self.backend = backend
        self.budget_seconds = budget_seconds
        self.history_budget_seconds = history_budget_seconds
        self.default_region = default_region
        self.stats = stats if stats is not None else getattr(backend, "stats", None) or CrmStats()
        self._degraded = False  # log a guard-level failure once, until the next success
        self.recorder = recorder
        #: the ``backend`` label of what is recorded: the configured backend, whatever answered (cache, guard)
        self.backend_name = backend_name or {"none": "null"}.get(self.source, self.source)

    @property
    def source(self) -> str:
        return str(getattr(self.backend, "source", type(self.backend).__name__))

    def _e164(self, number: str | None) -> str | None:
        if number is None or is_e164(number):
            return number
        return normalize(number, self.default_region)

    async def lookup_caller(self, raw_caller_id: str | None) -> LookupResult:
        """Look up a raw CALLERID(num) as Asterisk gives it (any format, or withheld)."""
        return await self.lookup(normalize(raw_caller_id, self.default_region))

    async def lookup(self, e164: str | None) -> LookupResult:
        started = time.perf_counter()
        result = await self._lookup(e164, started)
        self._record(result, time.perf_counter() - started)
        return result

    def _record(self, result: LookupResult, seconds: float) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.crm_lookup(self.backend_name, result.status.value, seconds)
            if result.failed:
                self.recorder.crm_error(self.backend_name, failure_kind(result))
        except Exception:  # a metrics problem must never reach the call
            log.debug("CRM recorder failed", exc_info=True)

    async def _lookup(self, e164: str | None, started: float) -> LookupResult:
        number = self._e164(e164)
        if number is None:
            result = LookupResult(LookupStatus.ANONYMOUS, None, self.source, time.perf_counter() - started)
            self.stats.observe(result)
            return result
        try:
            async with asyncio.timeout(self.budget_seconds):
                result = await self.backend.lookup(number)
        except TimeoutError:
            self.stats.guard_timeouts += 1
            result = LookupResult(
                LookupStatus.TIMEOUT,
                None,
                "guard",
                time.perf_counter() - started,
                caller=number,
                detail="budget",
            )
            self._trouble("lookup exceeded its %.0f ms budget", self.budget_seconds * 1000, number=number)
            self.stats.observe(result)
            return result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the call must go on whatever the backend did
            self.stats.guard_exceptions += 1
            result = LookupResult(
                LookupStatus.ERROR,
                None,
                "guard",
                time.perf_counter() - started,
                caller=number,
                detail=type(exc).__name__,
            )
            self._trouble("backend raised %s", type(exc).__name__, number=number, exc=exc)
            self.stats.observe(result)
            return result
        if not result.failed and self._degraded:
            self._degraded = False
            log.info("CRM lookups through %s are working again", self.source)
        return result

    def _trouble(self, fmt: str, *args: Any, number: str, exc: BaseException | None = None) -> None:
        # Once per episode at WARNING; the rest at DEBUG, so an outage is one line, not one per call.
        level = logging.DEBUG if self._degraded else logging.WARNING
        self._degraded = True
        log.log(
            level,
            "CRM %s: " + fmt + " (caller %s); routing by default",
            self.source,
            *args,
            mask(number),
            exc_info=exc is not None and level == logging.WARNING,
        )

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        number = self._e164(e164)
        try:
            async with asyncio.timeout(self.history_budget_seconds):
                await self.backend.record_interaction(number, interaction)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - history is best effort
            self.stats.history_errors += 1
            log.debug(
                "CRM %s: record_interaction failed: %s (caller %s)",
                self.source,
                type(exc).__name__,
                mask(number),
            )

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        number = self._e164(e164)
        if number is None:
            return []
        try:
            async with asyncio.timeout(self.history_budget_seconds):
                return await self.backend.recent_interactions(number, max(0, min(limit, MAX_RECENT)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.debug("CRM %s: recent_interactions failed: %s", self.source, type(exc).__name__)
            return []

    async def interactions_between(self, start: float, end: float) -> list[Interaction]:
        """The interaction history with ``start <= at < end`` (the embedded store's, or the HTTP adapter's
        local history); empty without a history. For reports (``ivr.crm.quality``), not for calls."""
        store = self.backend if hasattr(self.backend, "interactions_between") else getattr(
            self.backend, "history", None)
        if store is None or not hasattr(store, "interactions_between"):
            return []
        return list(await store.interactions_between(start, end))

    async def close(self) -> None:
        try:
            await self.backend.close()
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.debug("CRM %s: close failed: %s", self.source, type(exc).__name__)
