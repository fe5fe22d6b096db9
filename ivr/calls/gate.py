"""Admission control at the edge: measures the event loop, carries the pure ``Admission`` decision to
Asterisk, and counts the calls shed.

Two places refuse a new call, both before any IVR work, with cause 34 (congestion), which Asterisk's
PJSIP channel answers as **SIP 503 Service Unavailable**:

* **the dialplan** (cheapest: the app never hears of the call): ``[from-caller]`` refuses a call when
  ``RAND(0,99)`` is below the global variable ``IVR_SHED``, the percentage of new calls to refuse, which
  this gate keeps equal to the admission share (when it moves by 5 points or reaches 0 or 100, at most
  every ``push_interval``, and again on every ARI connect: a restarted Asterisk or app starts right). The dialplan counts what it refuses in the global
  ``IVR_SHED_TOTAL``; the gate reads it every ``count_interval`` and adds the difference to
  ``ivr_calls_shed_total{stage="dialplan"}``.
* **the app** at StasisStart (exact: calls that raced past the dialplan, and ``max_calls``, which the
  dialplan's share cannot hold to the call): ``admit_call`` -> ``ivr_calls_shed_total{stage="app"}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..admission import Admission, AdmissionState
from ..ari import AriError

log = logging.getLogger(__name__)

SHED_FLAG = "IVR_SHED"
SHED_TOTAL = "IVR_SHED_TOTAL"


class GlobalVars(Protocol):
    async def global_var(self, variable: str) -> str: ...

    async def set_global_var(self, variable: str, value: str) -> None: ...


class ShedMetrics(Protocol):
    def calls_shed(self, stage: str, n: int = 1) -> None: ...

    def admission_state(self, reason: str | None, share: float) -> None: ...


class AdmissionGate:
    def __init__(self, admission: Admission, ari: GlobalVars, metrics: ShedMetrics, *,
                 clock: Callable[[], float] = time.monotonic, probe_interval: float = 0.1,
                 push_interval: float = 0.5, count_interval: float = 5.0) -> None:
        self.admission = admission
        self._ari = ari
        self._metrics = metrics
        self._clock = clock
        self._probe = probe_interval
        self._push_interval = push_interval
        self._count_interval = count_interval
        self._pushed: int | None = None          # the percentage Asterisk has (None: unknown, push it)
        self._pushed_at = -1e9
        self._counted: int | None = None          # last IVR_SHED_TOTAL read (None: take it as the base)
        self._counted_at = -1e9
        self._shown: tuple[str | None, float] | None = None     # (reason, share) the gauges say; None: unset
        self._io: asyncio.Task[None] | None = None

    @property
    def state(self) -> AdmissionState:
        return self.admission.evaluate()

    def admit_call(self) -> str | None:
        """A new inbound call at StasisStart: None to take it, else the reason to refuse it (counted)."""
        st = self.admission.evaluate()
        reason = self.admission.admit(st)
        if reason is not None:
            self._metrics.calls_shed("app")
        self._track(st)
        return reason

    async def on_connect(self) -> None:
        """After every (re)connect: Asterisk may be new (flag and counter reset) or have kept old values."""
        self._pushed = None
        await self._sync(force=True)

    async def run(self) -> None:
        """The probe: sleeps ``probe_interval`` at a time; the overshoot is the event loop's lag."""
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self._probe)
            self.admission.lag(loop.time() - t0 - self._probe)
            self._track(self.admission.evaluate())
            if self._io is None or self._io.done():
                self._io = asyncio.create_task(self._sync(), name="admission-sync")

    def close(self) -> None:
        if self._io is not None:
            self._io.cancel()

    # ------------------------------------------------------------------------------------- edge
    def _track(self, st: AdmissionState) -> None:
        shown = (st.reason, st.shed)
        if shown == self._shown:        # the gauges move only when the state does (not on every call)
            return
        if st.reason != (self._shown[0] if self._shown else None):     # an edge: logged
            if st.open:
                log.warning("admission: accepting every new call again (event lag %.2fs, ARI latency %.2fs, "
                            "%d calls)", st.event_lag, st.ari_latency, st.calls)
            else:
                log.warning("admission: shedding new calls (%s: event lag %.2fs, ARI latency %.2fs, %d calls"
                            "%s)", st.reason, st.event_lag, st.ari_latency, st.calls,
                            f" of {st.max_calls}" if st.max_calls else "")
        self._shown = shown
        self._metrics.admission_state(st.reason, st.shed)

    async def _sync(self, force: bool = False) -> None:
        now = self._clock()
        pct = round(100 * self.admission.evaluate().shed)
        last = self._pushed
        moved = last is None or pct != last and (pct in (0, 100) or abs(pct - last) >= 5)
        try:
            if moved and (force or now - self._pushed_at >= self._push_interval):
                await self._ari.set_global_var(SHED_FLAG, str(pct))
                self._pushed, self._pushed_at = pct, now
            if force or now - self._counted_at >= self._count_interval:
                self._counted_at = now
                await self._count()
        except AriError as e:
            log.debug("admission: cannot sync with Asterisk: %s", e)

    async def _count(self) -> None:
        raw = await self._ari.global_var(SHED_TOTAL)
        try:
            total = int(raw or 0)
        except ValueError:
            total = 0
        if self._counted is not None:
            # lower than last time: Asterisk restarted and its count started again from 0
            delta = total - self._counted if total >= self._counted else total
            if delta:
                self._metrics.calls_shed("dialplan", delta)
        self._counted = total
