"""What the metrics read at scrape time: the live state provider (the router/app), the queue snapshot it gives,
and the collector turning them (and the staffing window) into gauges."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .. import staffing as erlang
from .vocab import AGENT_STATES, DEFAULT_SL_THRESHOLD, _value
from .window import Staffing

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------- live state
@dataclass(frozen=True)
class QueueSnapshot:
    """One queue as the router sees it right now (built by the provider at scrape time)."""

    queue: str
    waiting: int
    oldest_wait_seconds: float
    #: counts for AGENT_STATES (missing states are 0; unknown keys are ignored)
    agents_by_state: Mapping[str, int] = field(default_factory=dict)
    paused_by_reason: Mapping[str, int] = field(default_factory=dict)
    sl_threshold_seconds: float = DEFAULT_SL_THRESHOLD
    #: fraction, e.g. 0.8 for "80 % within sl_threshold_seconds"
    sl_target: float = 0.8


@runtime_checkable
class LiveStateProvider(Protocol):
    """What the collector reads at every scrape. Must be cheap and must not block (no I/O)."""

    def queue_snapshots(self) -> list[QueueSnapshot]: ...

    def active_calls(self) -> int: ...

    def active_bridges(self) -> int: ...

    def ari_connected(self) -> bool: ...


class CollectorSource(Protocol):
    """What the collector reads from ``Metrics`` at every scrape."""

    provider: LiveStateProvider | None
    staffing: Staffing
    max_agents: int

    def pause_reason_labels(self, reasons: Mapping[str, int]) -> dict[str, int]:
        """Paused agents by reason, with reasons outside the allowed/seen set folded into ``other``."""
        ...


# ------------------------------------------------------------------------------------- collector
class LiveCollector:
    """Custom collector: reads the provider and the staffing tracker at scrape time."""

    def __init__(self, metrics: CollectorSource) -> None:
        self.m = metrics

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        g = GaugeMetricFamily
        return {
            "waiting": g("ivr_queue_calls_waiting", "Calls waiting in the queue now (not yet answered).",
                         labels=["queue"]),
            "oldest": g("ivr_queue_oldest_wait_seconds", "Wait so far of the longest-waiting call (0 if "
                        "none).", labels=["queue"]),
            "agents": g("ivr_queue_agents", "Agents of the queue by state (logged_in = every state but "
                        "logged_out).", labels=["queue", "state"]),
            "paused": g("ivr_queue_agents_paused", "Paused agents of the queue by pause reason.",
                        labels=["queue", "reason"]),
            "sl_target": g("ivr_queue_service_level_target", "Service-level target of the queue (fraction "
                           "answered within the threshold).", labels=["queue"]),
            "sl_threshold": g("ivr_queue_service_level_threshold_seconds", "Service-level answer threshold "
                              "of the queue.", labels=["queue"]),
            "rate": g("ivr_queue_arrival_rate", "Calls entering the queue per second over the staffing "
                      "window.", labels=["queue"]),
            "aht": g("ivr_queue_handle_time_seconds", "Mean handle time (talk + wrap-up) per handled call "
                     "over the staffing window.", labels=["queue"]),
            "needed": g("ivr_queue_agents_needed", "Erlang C agents needed to meet the queue's service-level "
                        "target at the current arrival rate and handle time (+Inf: unreachable).",
                        labels=["queue"]),
            "calls": g("ivr_active_calls", "Calls (caller channels) the app is handling now."),
            "bridges": g("ivr_active_bridges", "Bridges (caller-agent conversations) the app holds now."),
            "ari": g("ivr_ari_connected", "1 when the ARI events websocket is connected, else 0."),
            "up": g("ivr_metrics_provider_up", "1 when the live state could be read at this scrape, else 0."),
        }

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not call the provider.
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        p = self.m.provider
        up = 0
        if p is not None:
            try:
                snaps = list(p.queue_snapshots())
                calls, bridges, ari = p.active_calls(), p.active_bridges(), p.ari_connected()
            except Exception:
                log.exception("metrics: live state provider failed; live gauges omitted from this scrape")
            else:
                up = 1
                for s in snaps:
                    self._queue(f, s)
                f["calls"].add_metric([], float(calls))
                f["bridges"].add_metric([], float(bridges))
                f["ari"].add_metric([], 1.0 if ari else 0.0)
        f["up"].add_metric([], float(up))
        return list(f.values())

    def _queue(self, f: dict[str, GaugeMetricFamily], s: QueueSnapshot) -> None:
        q = s.queue
        f["waiting"].add_metric([q], float(s.waiting))
        f["oldest"].add_metric([q], max(0.0, float(s.oldest_wait_seconds)) if s.waiting else 0.0)
        by_state = s.agents_by_state or {}
        for state in AGENT_STATES:
            f["agents"].add_metric([q, state], float(by_state.get(state, 0)))
        for reason, n in self.m.pause_reason_labels(s.paused_by_reason or {}).items():
            f["paused"].add_metric([q, reason], float(n))
        f["sl_target"].add_metric([q], float(s.sl_target))
        f["sl_threshold"].add_metric([q], float(s.sl_threshold_seconds))
        st = self.m.staffing
        rate = st.arrival_rate(q)
        aht = st.handle_time(q)
        f["rate"].add_metric([q], rate)
        if aht is not None:
            f["aht"].add_metric([q], aht)
        if rate == 0.0:
            f["needed"].add_metric([q], 0.0)
        elif aht is not None:
            try:
                n = float(erlang.agents_needed(rate, aht, s.sl_target, s.sl_threshold_seconds,
                                               max_agents=self.m.max_agents))
            except erlang.Unreachable:
                n = math.inf
            except ValueError:
                log.warning("metrics: queue %r: bad service level %r/%rs; agents_needed omitted", q,
                            s.sl_target, s.sl_threshold_seconds)
                return
            f["needed"].add_metric([q], n)


class _WithoutCreated:
    """A read-only view of a registry that drops the ``_created`` samples of counters/histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for fam in self.registry.collect():
            if fam.type in ("counter", "histogram", "summary"):
                created = fam.name + "_created"
                fam.samples = [s for s in fam.samples if s.name != created]
            yield fam


def queue_snapshot_from_view(view: Any) -> QueueSnapshot:
    """Adapter from the router's read-only queue view (``ivr.acd.views.QueueSnapshot``, duck-typed: ``name``,
    ``waiting``, ``ringing``, ``longest_wait``, ``agents_by_state``, ``paused_by_reason``,
    ``service_level_target`` = (percent, seconds)) to the collector's ``QueueSnapshot``.
    ``waiting`` here = every caller not answered yet (waiting + ringing an agent). Tasks the router holds
    in the queue (``calls`` entries of another ``kind`` than ``call``: callbacks...) are not callers: they
    are neither offered nor answered calls, so counting them would break the queue invariant; their own
    figures are ``ivr_tasks_*`` (``ivr.task_metrics``)."""
    by_state = {_value(k): int(v) for k, v in dict(view.agents_by_state).items()}
    by_state["logged_in"] = sum(n for s, n in by_state.items() if s not in ("logged_out", "logged_in"))
    percent, seconds = view.service_level_target
    calls = getattr(view, "calls", None)
    if calls is not None:
        callers = [c for c in calls if _value(getattr(c, "kind", "call")) == "call"]
        waiting, oldest = len(callers), max((float(c.wait) for c in callers), default=0.0)
    else:
        waiting, oldest = int(view.waiting) + int(getattr(view, "ringing", 0)), float(view.longest_wait)
    return QueueSnapshot(queue=view.name, waiting=waiting,
                         oldest_wait_seconds=oldest if waiting else 0.0,
                         agents_by_state=by_state, paused_by_reason=dict(view.paused_by_reason),
                         sl_threshold_seconds=float(seconds), sl_target=float(percent) / 100.0)


def iter_metric_names(text: str) -> Iterator[str]:
    """Sample names in an exposition text (for tests and tools)."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            yield s.name

