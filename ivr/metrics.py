"""Prometheus metrics for the contact center: what the ops team runs on, correct by construction.

Two kinds of figures:

* **Pushed** by the edges through ``Metrics`` recording methods (counters and histograms): calls entering
  flows and leaving nodes, calls entering/leaving queues with their wait, talk and wrap-up times, routing
  latency, CRM lookups, ARI reconnects and event lag.
* **Pulled** at scrape time by ``LiveCollector`` from a ``LiveStateProvider`` (the router/app): calls
  waiting, oldest wait, agents by state, active calls/bridges, ARI connection. Nothing hand-maintained, so a
  gauge can never drift from the router's state. The staffing figures (arrival rate, handle time, Erlang C
  agents needed) are also computed at scrape time, from the sliding-window ``Staffing`` tracker that the
  recording methods feed and the service-level target in each queue's snapshot.

Everything lives in the ``CollectorRegistry`` given to ``Metrics`` (a fresh one by default); the process-wide
default registry is never touched, so several ``Metrics`` (tests, several apps) coexist.

Cardinality: label values are queue/flow/node names (from config, see ``declare_queue``/``declare_flow``)
and the fixed enums below. Values outside an enum are recorded as ``other`` (or rejected where they would
break an invariant, e.g. an unknown queue outcome); names are capped (``max_names``) and a name that is
not a plain printable string of at most 100 characters is recorded as ``_invalid``. Nothing a caller
types or dials ever becomes a label.

Invariants (per queue, over any time range with no restart):
``offered = answered + abandoned + timed_out + overflowed + left(no_agents) + still waiting``;
``short_abandoned <= abandoned``; ``answered_within_sl <= answered``;
``sum by (outcome) ivr_queue_wait_seconds_count`` = calls that left the queue.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from . import staffing as erlang
from .acd.decisions import AUTO_PAUSE_ACTIONS
from .acd.record import LEFT_OUTCOMES, REFUSAL_OUTCOMES
from .admission import REASONS as ADMISSION_REASONS
from .task_metrics import TaskMetrics

__all__ = [
    "AGENT_STATES", "CONTENT_TYPE", "CRM_BACKENDS", "CRM_ERROR_KINDS", "CRM_STATUSES", "NODE_EXITS",
    "QUEUE_OUTCOMES", "REFUSAL_REASONS", "WAIT_BUCKETS", "LiveCollector", "LiveStateProvider", "Metrics",
    "QueueSnapshot", "Staffing", "crm_error_kind", "queue_snapshot_from_view",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# ------------------------------------------------------------------------------------------ enums
#: ``ivr_queue_agents{state}``: ``logged_in`` is every state but logged_out (an agent serving several queues
#: counts in each of them).
AGENT_STATES = ("logged_in", "available", "reserved", "on_call", "wrap_up", "paused")
#: How a call left a queue it had joined (``ivr.acd.record.CallOutcome`` minus the refusals at join).
QUEUE_OUTCOMES = tuple(o.value for o in LEFT_OUTCOMES)
#: A call refused at join never entered the queue: ``queue_refused`` counts it, not ``queue_entered``.
REFUSAL_REASONS = tuple(o.value for o in REFUSAL_OUTCOMES)
#: Where a call went when it left a flow node. ``hangup`` = the caller hung up while in that node.
NODE_EXITS = ("next", "hangup", "queue", "transfer", "voicemail", "callback", "goto", "invalid", "timeout",
              "failure", "error", "answered", "no_agents", "full", "overflow", "default", "end", "other")
CRM_BACKENDS = ("sqlite", "http", "http-cache", "guard", "null", "other")
CRM_STATUSES = ("found", "not_found", "anonymous", "error", "timeout", "circuit_open", "other")
#: ``ivr_flow_escalations_total{to}``
ESCALATIONS = ("queue", "transfer")
TRANSFER_KINDS = ("internal", "external")
TRANSFER_OUTCOMES = ("answered", "busy", "no_answer", "failed", "abandoned")
#: ``ivr_calls_shed_total{stage}`` and ``ivr_admission_shedding{reason}`` (see ``ivr.admission``).
SHED_STAGES = ("dialplan", "app")
SHED_REASONS = ADMISSION_REASONS
#: ``ivr_janitor_cleaned_total{what}``
CLEANED_KINDS = ("bridge", "channel", "call")
CRM_ERROR_KINDS = ("timeout", "connect", "http", "bad_response", "circuit_open", "exception", "other")
#: ``ivr_queue_first_contact_calls{verdict}`` and ``ivr_queue_repeat_window_calls{caller}``
FCR_VERDICTS = ("resolved", "called_back")
REPEAT_CALLERS = ("first", "repeat")

# ---------------------------------------------------------------------------------------- buckets
#: Every common service-level threshold (10/15/20/30/45/60/90/120/180/300 s) is a bucket bound, so
#: "answered within T" is an exact bucket read, never an interpolation.
WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 25, 30, 40, 45, 60, 90, 120, 180, 240, 300, 600, 900, 1800, math.inf)
TALK_BUCKETS = (10, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600, math.inf)
WRAPUP_BUCKETS = (1, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, math.inf)
ROUTING_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, math.inf)
EVENT_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.inf)
CRM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, math.inf)

DEFAULT_SL_THRESHOLD = 20.0
DEFAULT_WINDOW = 900.0          # staffing sliding window: 15 min
DEFAULT_MIN_WINDOW = 60.0       # right after start, rates are over at least this (no 1 call/1 s spikes)
MAX_PAUSE_REASONS = 50         # distinct free pause reasons exported before the rest become "other"
OTHER = "other"
INVALID = "_invalid"
OVERFLOW_NAME = "_other"
#: ``ivr_queue_calls_overflowed_total{to}`` of a call the flow took back (the queue node's max_wait)
OVERFLOW_TO_FLOW = "flow"

_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,100}\Z")
_REASON = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}\Z")


def _value(v: Any) -> str:
    """Enum member or plain string -> its string value (``str(StrEnum)`` differs across Python versions)."""
    return str(getattr(v, "value", v))


def crm_error_kind(reason: str) -> str:
    """Map a CRM failure reason (``http_503``, ``bad_json``, ``client_OSError``...) to ``CRM_ERROR_KINDS``."""
    r = _value(reason)
    if r in CRM_ERROR_KINDS:
        return r
    if r.startswith(("http_", "history_http_")):
        return "http"
    if r in ("disconnected", "connect_error", "refused") or r.startswith("client_"):
        return "connect"
    if r in ("bad_json", "bad_document", "truncated", "too_large"):
        return "bad_response"
    return OTHER


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


# ------------------------------------------------------------------------------------- collector
class LiveCollector:
    """Custom collector: reads the provider and the staffing tracker at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
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
        for reason, n in self.m._pause_reasons(s.paused_by_reason or {}).items():
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


# --------------------------------------------------------------------------------------- metrics
class Metrics:
    """All the app's metrics in one injected registry, with the recording methods the edges call.

    ``provider`` may be given later with ``set_provider`` (the router usually exists after the metrics).
    Recording methods never raise for bad numbers (negative durations are clamped to 0, NaN is dropped):
    a metrics problem must never end a call. They raise ``ValueError`` only for a programming error that
    would break an invariant (an unknown queue outcome).
    """

    CONTENT_TYPE = CONTENT_TYPE

    def __init__(self, provider: LiveStateProvider | None = None, *,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.monotonic, staffing_window_seconds: float = DEFAULT_WINDOW,
                 max_agents: int = erlang.DEFAULT_MAX_AGENTS, pause_reasons: Iterable[str] | None = None,
                 max_names: int = 1000) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.provider = provider
        self.staffing = Staffing(staffing_window_seconds, clock)
        self.max_agents = max_agents
        self.max_names = max_names
        self._allowed_pause_reasons = frozenset(pause_reasons) if pause_reasons is not None else None
        self._seen_pause_reasons: set[str] = set()
        self._names: dict[str, set[Any]] = {"queue": set(), "flow": set(), "node": set()}
        self._sl_threshold: dict[str, float] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, registry=r, buckets=buckets)

        # queues
        self.queue_wait = histogram("ivr_queue_wait_seconds", "Time in queue of calls that left it, by how "
                                    "they left (answered: until an agent answered).", ("queue", "outcome"),
                                    WAIT_BUCKETS)
        self.offered = counter("ivr_queue_calls_offered", "Calls that entered the queue.", ("queue",))
        self.answered = counter("ivr_queue_calls_answered", "Calls answered by an agent.", ("queue",))
        self.answered_within_sl = counter("ivr_queue_calls_answered_within_sl", "Calls answered within the "
                                          "queue's service-level threshold.", ("queue",))
        self.abandoned = counter("ivr_queue_calls_abandoned", "Callers who hung up while waiting (short "
                                 "abandons included).", ("queue",))
        self.short_abandoned = counter("ivr_queue_calls_short_abandoned", "Abandons within the queue's "
                                       "short-abandon seconds (a subset of abandoned).", ("queue",))
        self.timed_out = counter("ivr_queue_calls_timed_out", "Calls that reached the queue's max wait.",
                                 ("queue",))
        self.overflowed = counter("ivr_queue_calls_overflowed", "Calls that left the queue by overflow, by "
                                  "where to: the queue they were moved to (the queue's overflow), or flow "
                                  "(the queue node's own max_wait took them back to the flow).", ("queue", "to"))
        self.left_no_agents = counter("ivr_queue_calls_left_no_agents", "Waiting calls that left because no "
                                      "agent could serve the queue any more (leave_when_empty).", ("queue",))
        self.refused = counter("ivr_queue_calls_refused", "Calls refused at join (full, no_agents); not "
                               "offered.", ("queue", "reason"))
        self.talk = histogram("ivr_talk_seconds", "Talk time of answered calls.", ("queue",), TALK_BUCKETS)
        self.wrapup = histogram("ivr_wrapup_seconds", "Wrap-up time after a call.", ("queue",),
                                WRAPUP_BUCKETS)
        # contact quality over a report window, from the interaction history (``contact_quality``)
        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.fcr_calls = gauge("ivr_queue_first_contact_calls", "Answered calls whose call-back window "
                               "closed within the report window, by verdict (resolved: the caller did not "
                               "call again within the repeat window; called_back).", ("queue", "verdict"))
        self.fcr_ratio = gauge("ivr_queue_first_contact_resolution_ratio", "First-contact resolution: "
                               "resolved / (resolved + called_back) over the report window.", ("queue",))
        self.repeat_window_calls = gauge("ivr_queue_repeat_window_calls", "Calls that reached the queue "
                                         "within the report window, by caller: repeat (had called within the "
                                         "repeat window before) or first.", ("queue", "caller"))
        self.repeat_ratio = gauge("ivr_queue_repeat_caller_ratio", "Repeat callers: repeat / (first + "
                                  "repeat) calls over the report window.", ("queue",))
        # flows
        self.flow_calls = counter("ivr_flow_calls", "Calls entering the flow.", ("flow",))
        self.escalations = counter("ivr_flow_escalations", "Calls the flow handed on to people: to a queue or "
                                   "a transfer (once per call, at the first; containment's complement).",
                                   ("flow", "to"))
        self.transfers = counter("ivr_flow_transfers", "Transfers from a flow's transfer node, by kind (internal "
                                 "extension or external number through a trunk) and outcome: answered (the "
                                 "target answered), busy, no_answer, failed, abandoned (the caller hung up "
                                 "while it rang).", ("kind", "outcome"))
        self.node_exits = counter("ivr_flow_node_exits", "Calls leaving a flow node, by exit (hangup = the "
                                  "caller hung up there).", ("flow", "node", "exit"))
        # system
        self.ari_reconnects = counter("ivr_ari_reconnects", "ARI events websocket reconnections.")
        self.event_lag_seconds = histogram("ivr_ari_event_lag_seconds", "Delay between an ARI event's "
                                           "timestamp and its handling.", (), EVENT_LAG_BUCKETS)
        self.routing = histogram("ivr_routing_decision_seconds", "Time the ACD router takes for one "
                                 "decision.", (), ROUTING_BUCKETS)
        self.crm_latency = histogram("ivr_crm_lookup_seconds", "CRM caller lookups, by backend and result.",
                                     ("backend", "status"), CRM_BUCKETS)
        self.crm_errors = counter("ivr_crm_errors", "CRM failures by backend and kind.", ("backend", "kind"))
        # admission control (docs/overload.md)
        self.shed = counter("ivr_calls_shed", "New calls refused with SIP 503 by admission control before any "
                            "IVR work, by where (dialplan: the gate Asterisk reads; app: at StasisStart).",
                            ("stage",))
        self.shedding = Gauge("ivr_admission_shedding", "Share (0-1) of new calls admission control refuses "
                              "now, under the reason why (event_lag, ari_latency, capacity); 0 for the "
                              "others.", ("reason",), registry=r)
        self.autopause_suspended = counter(
            "ivr_autopause_suspended", "Auto-pause protection at work (docs/acd.md): a miss not counted, "
            "misses refunded or a pause lifted because the failures were systemic, or a pause held back by "
            "the per-minute bound.", ("action",))
        for action in AUTO_PAUSE_ACTIONS:
            self.autopause_suspended.labels(action)
        self.cleaned = counter("ivr_janitor_cleaned", "Leftovers the periodic reconcile cleaned: bridges and "
                               "channels on Asterisk that belonged to no live call, calls of the app whose "
                               "channel was gone.", ("what",))
        for what in CLEANED_KINDS:
            self.cleaned.labels(what)
        for stage in SHED_STAGES:
            self.shed.labels(stage)
        for reason in SHED_REASONS:
            self.shedding.labels(reason).set(0)

        self.collector = LiveCollector(self)
        r.register(self.collector)
        #: callbacks, web callback requests, voicemails (``ivr.task_metrics``): a TaskBook listener
        self.tasks = TaskMetrics(r, label=lambda queue: self._name("queue", queue))

    # ------------------------------------------------------------------------------- wiring
    def set_provider(self, provider: LiveStateProvider | None) -> None:
        self.provider = provider

    def declare_queue(self, queue: str, sl_threshold_seconds: float = DEFAULT_SL_THRESHOLD,
                      overflow_to: str | None = None) -> None:
        """A queue from the config: its series exist (at 0) from the start, and ``sl_threshold_seconds``
        decides ``answered_within_sl`` (same rule as the router: wait <= threshold). Call again on reload.
        A queue first seen in a recording call is declared then, with a warning and the default 20 s.
        ``overflow_to``: the queue's overflow queue (its ``overflowed{to}`` series exists from the start)."""
        q = self._name("queue", queue)
        self._sl_threshold[q] = float(sl_threshold_seconds)
        self._init_queue_series(q)
        self.tasks.declare_queue(q)
        if overflow_to is not None:
            self.overflowed.labels(q, self._name("queue", overflow_to))

    def _queue(self, queue: str) -> str:
        q = self._name("queue", queue)
        if q not in self._sl_threshold:
            self._warn_once("sl", q, "queue %r not declared (declare_queue): service-level threshold %.0fs "
                            "assumed", q, DEFAULT_SL_THRESHOLD)
            self._sl_threshold[q] = DEFAULT_SL_THRESHOLD
            self._init_queue_series(q)
        return q

    def _init_queue_series(self, q: str) -> None:
        for c in (self.offered, self.answered, self.answered_within_sl, self.abandoned, self.short_abandoned,
                  self.timed_out, self.left_no_agents):
            c.labels(q)
        self.overflowed.labels(q, OVERFLOW_TO_FLOW)
        for reason in REFUSAL_REASONS:
            self.refused.labels(q, reason)
        for outcome in QUEUE_OUTCOMES:
            self.queue_wait.labels(q, outcome)
        self.talk.labels(q)
        self.wrapup.labels(q)
        for verdict in FCR_VERDICTS:
            self.fcr_calls.labels(q, verdict)
        for caller in REPEAT_CALLERS:
            self.repeat_window_calls.labels(q, caller)

    def declare_flow(self, flow: str, nodes: Iterable[str] = ()) -> None:
        """A flow from the flow files (and its node names); call again after a reload."""
        f = self._flow(flow)
        for n in nodes:
            self._name("node", (f, n))

    def _flow(self, flow: str) -> str:
        f = self._name("flow", flow)
        self.flow_calls.labels(f)
        for to in ESCALATIONS:    # from 0, so containment has data before the first escalation
            self.escalations.labels(f, to)
        return f

    # ------------------------------------------------------------------------------- flows
    def call_entered_flow(self, flow: str) -> None:
        self.flow_calls.labels(self._flow(flow)).inc()

    def flow_escalated(self, flow: str, to: str) -> None:
        """The call needed people: the flow handed it to a queue or a transfer (call once per call)."""
        self.escalations.labels(self._flow(flow), self._enum("escalation", to, ESCALATIONS)).inc()

    def transfer_ended(self, kind: str, outcome: str) -> None:
        """A transfer attempt ended: answered (the only success), busy, no_answer, failed or abandoned."""
        self.transfers.labels(self._enum("transfer kind", kind, TRANSFER_KINDS),
                              self._enum("transfer outcome", outcome, TRANSFER_OUTCOMES)).inc()

    def node_exit(self, flow: str, node: str, exit: str) -> None:
        f = self._flow(flow)
        n = self._name("node", (f, node))[1]
        self.node_exits.labels(f, n, self._enum("exit", exit, NODE_EXITS)).inc()

    # ------------------------------------------------------------------------------- queues
    def queue_entered(self, queue: str) -> None:
        """The call joined the queue (it is offered). Feeds the staffing arrival rate."""
        q = self._queue(queue)
        self.offered.labels(q).inc()
        self.staffing.arrival(q)

    def queue_refused(self, queue: str, reason: str) -> None:
        """The queue refused the call at join (``full`` / ``no_agents``): not offered, not waiting."""
        self.refused.labels(self._queue(queue), self._enum("refusal", reason, REFUSAL_REASONS)).inc()

    def queue_left(self, queue: str, outcome: str, wait_seconds: float, short_abandon: bool = False) -> None:
        """The call left the queue: ``answered`` (an agent answered; wait = until the answer), ``abandoned``,
        ``timeout``, ``overflow`` or ``no_agents`` (accepts ``ivr.acd.record.CallOutcome`` members).
        ``short_abandon`` only counts with ``abandoned``."""
        o = _value(outcome)
        if o not in QUEUE_OUTCOMES:
            raise ValueError(f"queue_left: outcome must be one of {', '.join(QUEUE_OUTCOMES)}, got {o!r}"
                             + (" (a refusal at join: use queue_refused)" if o in REFUSAL_REASONS else ""))
        q = self._queue(queue)
        wait = self._seconds(wait_seconds)
        if wait is not None:
            self.queue_wait.labels(q, o).observe(wait)
        if o == "answered":
            self.answered.labels(q).inc()
            if wait is not None and wait <= self._sl_threshold[q]:
                self.answered_within_sl.labels(q).inc()
        elif o == "abandoned":
            self.abandoned.labels(q).inc()
            if short_abandon:
                self.short_abandoned.labels(q).inc()
        elif o == "timeout":
            self.timed_out.labels(q).inc()
        elif o == "overflow":
            self.overflowed.labels(q, OVERFLOW_TO_FLOW).inc()
        else:
            self.left_no_agents.labels(q).inc()

    def queue_moved(self, queue: str, to: str, wait_seconds: float) -> None:
        """The queue's overflow moved a waiting call to queue ``to`` after ``wait_seconds`` in ``queue``: it
        left ``queue`` (``overflowed{to}``, wait ``overflow``); call ``queue_entered(to)`` for its arrival."""
        q = self._queue(queue)
        wait = self._seconds(wait_seconds)
        if wait is not None:
            self.queue_wait.labels(q, "overflow").observe(wait)
        self.overflowed.labels(q, self._name("queue", to)).inc()

    def talk_finished(self, queue: str, seconds: float) -> None:
        """An answered call's conversation ended (one handled call for the staffing handle time)."""
        q = self._queue(queue)
        s = self._seconds(seconds)
        if s is not None:
            self.talk.labels(q).observe(s)
            self.staffing.talk(q, s)

    def wrap_up_finished(self, queue: str, seconds: float) -> None:
        q = self._queue(queue)
        s = self._seconds(seconds)
        if s is not None:
            self.wrapup.labels(q).observe(s)
            self.staffing.wrap_up(q, s)

    def contact_quality(self, report: Mapping[str, Any]) -> None:
        """The latest first-contact resolution / repeat-caller figures per queue (``ivr.crm.rules.
        QueueContactQuality`` values, duck-typed: ``resolved``, ``called_back``, ``first_calls``,
        ``repeat_calls``). Replaces the previous report: a queue missing from it reads 0 calls, and its
        ratios are absent (no call, no ratio)."""
        figures = {self._queue(name): v for name, v in report.items()}
        for q in list(self._sl_threshold):
            v = figures.get(q)
            counts = {"resolved": 0, "called_back": 0, "first": 0, "repeat": 0}
            if v is not None:
                counts = {"resolved": int(v.resolved), "called_back": int(v.called_back),
                          "first": int(v.first_calls), "repeat": int(v.repeat_calls)}
            for verdict in FCR_VERDICTS:
                self.fcr_calls.labels(q, verdict).set(counts[verdict])
            for caller in REPEAT_CALLERS:
                self.repeat_window_calls.labels(q, caller).set(counts[caller])
            ratios = ((self.fcr_ratio, counts["resolved"], counts["resolved"] + counts["called_back"]),
                      (self.repeat_ratio, counts["repeat"], counts["first"] + counts["repeat"]))
            for ratio, num, den in ratios:
                if den:
                    ratio.labels(q).set(num / den)
                else:
                    try:
                        ratio.remove(q)
                    except KeyError:
                        pass

    # ------------------------------------------------------------------------------- system
    def routing_decision(self, seconds: float) -> None:
        s = self._seconds(seconds)
        if s is not None:
            self.routing.observe(s)

    def declare_crm_backend(self, backend: str) -> None:
        """The configured CRM backend: its lookup and error series exist (at 0) from the start, so an error
        ratio reads 0, not "no data", and ``rate()`` sees the first failure."""
        b = self._enum("crm backend", backend, CRM_BACKENDS)
        for status in CRM_STATUSES:
            self.crm_latency.labels(b, status)
        for kind in CRM_ERROR_KINDS:
            self.crm_errors.labels(b, kind)

    def crm_lookup(self, backend: str, status: str, seconds: float) -> None:
        s = self._seconds(seconds)
        if s is not None:
            self.crm_latency.labels(self._enum("crm backend", backend, CRM_BACKENDS),
                                    self._enum("crm status", status, CRM_STATUSES)).observe(s)

    def crm_error(self, backend: str, kind: str) -> None:
        """``kind``: one of ``CRM_ERROR_KINDS`` or a raw reason (``http_503``...), see ``crm_error_kind``."""
        self.crm_errors.labels(self._enum("crm backend", backend, CRM_BACKENDS), crm_error_kind(kind)).inc()

    def calls_shed(self, stage: str, n: int = 1) -> None:
        if n > 0:
            self.shed.labels(self._enum("shed stage", stage, SHED_STAGES)).inc(n)

    def auto_pause_suspended(self, action: str) -> None:
        self.autopause_suspended.labels(self._enum("auto-pause action", action, AUTO_PAUSE_ACTIONS)).inc()

    def janitor_cleaned(self, what: str, n: int) -> None:
        if n > 0:
            self.cleaned.labels(self._enum("cleaned kind", what, CLEANED_KINDS)).inc(n)

    def admission_state(self, reason: str | None, share: float = 1.0) -> None:
        """The share of new calls admission control refuses now, under the reason why (None: admits all)."""
        for r in SHED_REASONS:
            self.shedding.labels(r).set(share if r == reason else 0)

    def ari_reconnected(self) -> None:
        self.ari_reconnects.inc()

    def event_lag(self, seconds: float) -> None:
        s = self._seconds(seconds)
        if s is not None:
            self.event_lag_seconds.observe(s)

    # ------------------------------------------------------------------------------- exposition
    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (serve with ``CONTENT_TYPE``).

        Without the ``*_created`` samples prometheus_client adds to counters and histograms (one extra
        series per label set that no dashboard uses; the text format has no other way to carry them)."""
        return generate_latest(_WithoutCreated(self.registry))

    def aiohttp_handler(self) -> Callable[[Any], Any]:
        """An aiohttp handler for ``GET /metrics`` (aiohttp imported lazily)."""
        from aiohttp import web

        async def handle(_request: Any) -> web.Response:
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE})

        return handle

    # ------------------------------------------------------------------------------- guards
    def _warn_once(self, what: str, key: str, msg: str, *args: Any) -> None:
        if (what, key) not in self._warned and len(self._warned) < 1000:
            self._warned.add((what, key))
            log.warning("metrics: " + msg, *args)

    def _name(self, dim: str, value: Any) -> Any:
        """A config name as a label value: printable, <= 100 chars, at most ``max_names`` per dimension."""
        parts = value if isinstance(value, tuple) else (value,)
        checked = []
        for p in parts:
            s = _value(p) if p is not None else ""
            if not _PRINTABLE.match(s):
                self._warn_once(dim, repr(s)[:40], "%s name %r is not a plain name: recorded as %s", dim,
                                s[:40], INVALID)
                s = INVALID
            checked.append(s)
        key = tuple(checked) if isinstance(value, tuple) else checked[0]
        seen = self._names[dim]
        if key not in seen:
            with self._lock:
                if key not in seen:
                    cap = self.max_names * (10 if dim == "node" else 1)
                    if len(seen) >= cap:
                        self._warn_once(dim, "cap", "more than %d %s names: the rest are recorded as %s",
                                        cap, dim, OVERFLOW_NAME)
                        return (checked[0], OVERFLOW_NAME) if isinstance(value, tuple) else OVERFLOW_NAME
                    seen.add(key)
        return key

    def _enum(self, what: str, value: Any, allowed: tuple[str, ...]) -> str:
        v = _value(value)
        if v in allowed:
            return v
        self._warn_once(what, v[:40], "%s %r is not one of %s: recorded as %s", what, v[:40], allowed, OTHER)
        return OTHER

    def _seconds(self, v: Any) -> float | None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if math.isnan(x):
            return None
        return max(0.0, x)

    def _pause_reasons(self, reasons: Mapping[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for reason, n in reasons.items():
            r = _value(reason)
            if self._allowed_pause_reasons is not None:
                ok = r in self._allowed_pause_reasons
            else:
                seen = self._seen_pause_reasons
                ok = bool(_REASON.match(r)) and (r in seen or len(seen) < MAX_PAUSE_REASONS)
                if ok:
                    self._seen_pause_reasons.add(r)
            key = r if ok else OTHER
            out[key] = out.get(key, 0) + int(n)
        return out


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
