"""Admission control: when the app is saturated it refuses a share of the new calls early and cheaply
(pure, fake-clock testable; the glue in ``calls/gate.py`` feeds it and carries its decisions to Asterisk).

Why: a call that is let in when the event loop is already late is not served well, and it makes every call
already in the system late too (ring timeouts expire before the agent leg's events are handled, bridges are
joined after a channel is gone). Refusing it with a SIP 503 before any IVR work costs almost nothing and
lets a SIP front or a carrier retry elsewhere, while the calls already in the system are served.

Signals:

* ``event_lag``: how late the event loop is (the overshoot of a probe that sleeps 100 ms at a time: CPU
  saturation and anything blocking the loop show up there, a handler awaiting a slow CRM does not),
  **confirmed** by ``lag_probes`` probes in a row (the smallest of the last ``lag_probes`` overshoots: a
  saturated loop is late at every probe, while one stall -- a GC pause, a flow reload, start-up work --
  and the backlog handled right after it are not saturation and must not refuse callers), as a decaying
  peak: a confirmed sample raises it at once, it decays with time constant ``decay`` seconds;
* ``ari_latency``: how long ARI REST requests of calls take: the 90th percentile of the requests of the
  last ``decay`` seconds (one slow request among hundreds is no sign of saturation; a timeout counts as
  its full duration);
* ``calls``: calls in progress (caller channels the app handles) against ``max_calls`` (optional: no
  capacity is assumed unless configured).

Rule: the app refuses a **share** of new calls, from 0 (admit all) to 1 (refuse all). While the lag or
the latency is at its limit (``max_event_lag``, ``max_ari_latency``) the share rises by 1 every
``rise_seconds``; once both are below ``resume_ratio`` x their limits it falls by 1 every
``recover_seconds``; in between it holds. So a storm is met within a fraction of a second, and the app
settles on the share it can serve instead of swinging between "all in" and "all out". Independently, a
call that arrives while the app holds ``max_calls`` calls is always refused (and the dialplan refuses all
new calls until one ends).
"""

from __future__ import annotations

import heapq
import math
import random as _random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .sections import section_from_dict

#: Why the gate is closed (metric label values; ``None`` = open).
REASONS = ("event_lag", "ari_latency", "capacity")


class AdmissionConfigError(ValueError):
    """The ``admission:`` config section is invalid; the message names the key."""


@dataclass(frozen=True)
class AdmissionPolicy:
    enabled: bool = True
    #: Calls in progress at which new calls are refused (None: no configured capacity).
    max_calls: int | None = None
    #: Event-loop lag (seconds) at which new calls are refused.
    max_event_lag: float = 0.3
    #: The lag counts only when this many probes in a row were late (one stall is not saturation).
    lag_probes: int = 3
    #: ARI request latency (seconds) at which new calls are refused.
    max_ari_latency: float = 1.0
    #: While a signal is at its limit, the refused share rises from 0 to 1 in this many seconds.
    rise_seconds: float = 0.5
    #: Once every signal is below resume_ratio x its limit, the refused share falls from 1 to 0 in this long.
    recover_seconds: float = 2.0
    resume_ratio: float = 0.5
    #: Time constant (seconds) of the decaying peaks.
    decay: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise AdmissionConfigError("admission.enabled: expected true or false")
        if self.max_calls is not None and (isinstance(self.max_calls, bool) or not isinstance(self.max_calls, int)
                                           or self.max_calls < 1):
            raise AdmissionConfigError("admission.max_calls: expected an integer >= 1 (or null for no limit)")
        for name in ("max_event_lag", "max_ari_latency", "decay", "rise_seconds", "recover_seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise AdmissionConfigError(f"admission.{name}: expected a number > 0, got {v!r}")
        n = self.lag_probes
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 50:
            raise AdmissionConfigError(f"admission.lag_probes: expected an integer from 1 to 50, got {n!r}")
        q = self.resume_ratio
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
            raise AdmissionConfigError(f"admission.resume_ratio: expected a number in (0, 1], got {q!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AdmissionPolicy:
        return section_from_dict(cls, d, section="admission", error=AdmissionConfigError)


class _Peak:
    """A decaying peak: max(new sample, old value x exp(-dt / tau))."""

    __slots__ = ("at", "tau", "value")

    def __init__(self, tau: float) -> None:
        self.tau, self.value, self.at = tau, 0.0, 0.0

    def read(self, now: float) -> float:
        if self.value == 0.0:
            return 0.0
        return self.value * math.exp(-max(0.0, now - self.at) / self.tau)

    def add(self, now: float, sample: float) -> None:
        if sample >= self.read(now):
            self.value, self.at = sample, now


class _RecentQuantile:
    """The ``q`` quantile of the samples of the last ``window`` seconds (0 with none). For the latency of
    hundreds of requests a second, where one slow request among them (a GC pause, a scheduling hiccup) is
    no sign of saturation but a slow tenth of them is. Memory is bounded by ``cap`` samples."""

    __slots__ = ("cap", "q", "times", "values", "window")

    def __init__(self, window: float, q: float = 0.9, cap: int = 4096) -> None:
        self.window, self.q, self.cap = window, q, cap
        # two deques in step, so that the quantile is taken over ``values`` in C (read once per new call)
        self.times: deque[float] = deque(maxlen=cap)
        self.values: deque[float] = deque(maxlen=cap)

    def add(self, now: float, sample: float) -> None:
        self.times.append(now)
        self.values.append(sample)

    def read(self, now: float) -> float:
        t, v = self.times, self.values
        oldest = now - self.window
        while t and t[0] < oldest:
            t.popleft()
            v.popleft()
        if not v:
            return 0.0
        k = max(1, math.ceil(len(v) * (1.0 - self.q)))     # the k-th largest is the q quantile
        return heapq.nlargest(k, v)[-1]


@dataclass(frozen=True)
class AdmissionState:
    shed: float                 # share of new calls refused now, 0..1 (1 while at max_calls)
    reason: str | None          # why calls are refused (one of REASONS), None when all are admitted
    event_lag: float
    ari_latency: float
    calls: int
    max_calls: int | None

    @property
    def open(self) -> bool:
        return self.shed == 0.0


class Admission:
    """Feed it samples (``lag``, ``ari_latency``); ask ``admit()`` for each new call and ``evaluate()`` on a
    timer (both update the share). Time comes from the injected clock, chance from the injected random."""

    def __init__(self, policy: AdmissionPolicy, clock: Callable[[], float],
                 calls_in_progress: Callable[[], int], random: Callable[[], float] = _random.random) -> None:
        self.policy = policy
        self._clock = clock
        self._calls = calls_in_progress
        self._random = random
        self._lag = _Peak(policy.decay)
        self._probes: deque[float] = deque(maxlen=policy.lag_probes)
        self._ari = _RecentQuantile(max(policy.decay, 0.5))
        self._share = 0.0
        self._reason: str | None = None
        self._at = clock()

    # ------------------------------------------------------------------------------------ samples
    def lag(self, seconds: float) -> None:
        """One probe's overshoot; the lag signal is the smallest of the last ``lag_probes`` of them."""
        if seconds == seconds:                             # NaN: no sample
            self._probes.append(max(0.0, seconds))
            if len(self._probes) == self._probes.maxlen:
                self._lag.add(self._clock(), min(self._probes))

    def ari_latency(self, seconds: float) -> None:
        if seconds == seconds and seconds > 0:
            self._ari.add(self._clock(), seconds)

    # ---------------------------------------------------------------------------------- decisions
    def evaluate(self) -> AdmissionState:
        """Move the refused share by the time since the last evaluation (see the module docstring)."""
        p = self.policy
        now = self._clock()
        dt, self._at = max(0.0, now - self._at), max(self._at, now)
        lag, ari, calls = self._lag.read(now), self._ari.read(now), self._calls()
        if not p.enabled:
            self._share, self._reason = 0.0, None
            return AdmissionState(0.0, None, lag, ari, calls, p.max_calls)
        over = "event_lag" if lag >= p.max_event_lag else "ari_latency" if ari >= p.max_ari_latency else None
        if over is not None:
            self._share, self._reason = min(1.0, self._share + dt / p.rise_seconds), over
        elif lag < p.resume_ratio * p.max_event_lag and ari < p.resume_ratio * p.max_ari_latency:
            self._share = max(0.0, self._share - dt / p.recover_seconds)
        if self._share == 0.0:
            self._reason = None
        if p.max_calls is not None and calls >= p.max_calls:
            return AdmissionState(1.0, "capacity", lag, ari, calls, p.max_calls)
        return AdmissionState(self._share, self._reason, lag, ari, calls, p.max_calls)

    def admit(self, st: AdmissionState | None = None) -> str | None:
        """For one new call: None to admit it, else the reason it is refused (``st``: this instant's
        ``evaluate()`` when the caller has it already)."""
        if not self.policy.enabled:
            return None
        if st is None:
            st = self.evaluate()
        if st.shed >= 1.0 or st.shed > 0.0 and self._random() < st.shed:
            return st.reason
        return None
