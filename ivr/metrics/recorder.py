"""``Metrics``: every metric of the app in one injected registry, with the recording methods the edges call."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .. import staffing as erlang
from ..acd.decisions import AUTO_PAUSE_ACTIONS
from ..task_metrics import TaskMetrics
from .live import LiveCollector, LiveStateProvider, _WithoutCreated
from .vocab import (
    _PRINTABLE,
    _REASON,
    CLEANED_KINDS,
    CRM_BACKENDS,
    CRM_BUCKETS,
    CRM_ERROR_KINDS,
    CRM_STATUSES,
    DEFAULT_SL_THRESHOLD,
    DEFAULT_WINDOW,
    ESCALATIONS,
    EVENT_LAG_BUCKETS,
    FCR_VERDICTS,
    INVALID,
    MAX_PAUSE_REASONS,
    NODE_EXITS,
    OTHER,
    OVERFLOW_NAME,
    OVERFLOW_TO_FLOW,
    QUEUE_OUTCOMES,
    REFUSAL_REASONS,
    REPEAT_CALLERS,
    ROUTING_BUCKETS,
    SHED_REASONS,
    SHED_STAGES,
    TALK_BUCKETS,
    TRANSFER_KINDS,
    TRANSFER_OUTCOMES,
    WAIT_BUCKETS,
    WRAPUP_BUCKETS,
    _value,
    crm_error_kind,
)
from .window import Staffing

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

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
        self._flows_seen: set[str] = set()      # flows whose series exist (created at 0 once)
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
        if f not in self._flows_seen:
            self._flows_seen.add(f)
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
        # once per ARI event: the dispatcher's float, so no general ``_seconds`` conversion
        if seconds >= 0.0:
            self.event_lag_seconds.observe(seconds)
        elif seconds < 0.0:             # NaN is neither: not recorded
            self.event_lag_seconds.observe(0.0)

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

    def pause_reason_labels(self, reasons: Mapping[str, int]) -> dict[str, int]:
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

