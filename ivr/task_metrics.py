"""Prometheus metrics of tasks (callbacks, web callback requests, voicemails to return), by queue and kind.

Part of ``ivr.metrics.Metrics`` (its ``tasks``, in the same registry): ``Metrics.declare_queue`` declares a
queue here too, so every series exists at 0 from the start. The interface the app uses is three calls:

* ``on_change(before, after)``: a ``TaskBook`` listener (``book.listeners.append(metrics.tasks.on_change)``);
  it feeds the counters and the histogram from the transitions the book reports, never from the phones;
* ``set_source(book.open_tasks)``: the gauges are computed at scrape time from the book's open tasks
  (nothing hand-maintained, so a gauge cannot drift from the book);
* ``waiting_by_queue()``: the same figures for the wallboard.

What each transition counts (``before`` -> ``after``):

* ``-> offered``: ``ivr_task_offers_total`` (an agent's phone rang for it);
* ``attempts`` went up (the customer was dialled and did not answer: retried or failed):
  ``ivr_task_attempts_total{result}`` with the customer's result (``busy``, ``no_answer``, ``failed``);
  ``connecting -> done`` with outcome ``answered``: ``ivr_task_attempts_total{result="answered"}`` and
  ``ivr_callback_time_to_callback_seconds`` (position time -> the customer answered);
* open -> ended: ``ivr_tasks_total{outcome}`` = the end state (``done``, ``failed``, ``expired``,
  ``cancelled``).

A new task, a task reloaded after a restart (``before`` None) and an update by a second request (same
state) count nothing. An agent hanging up while the customer's phone rings sends the task back without
using an attempt (``TaskBook.agent_dropped``): that dial-out is not counted either.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .tasks.model import Task, TaskState

log = logging.getLogger(__name__)

#: ``kind`` label values (``ivr.tasks.TaskKind`` minus live calls, which are the queue metrics).
TASK_KINDS = ("callback", "web_callback", "voicemail")
#: ``ivr_tasks_total{outcome}``: the end state of a task.
TASK_OUTCOMES = ("done", "failed", "expired", "cancelled")
#: ``ivr_task_attempts_total{result}``: what a customer dial-out came to (``TransferAttempt``'s outcomes).
ATTEMPT_RESULTS = ("answered", "busy", "no_answer", "failed")
OTHER = "other"
#: From seconds (a caller who asked for a callback while agents were about to be free) to a day.
TIME_TO_CALLBACK_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800,
                            14400, 21600, 28800, 43200, 86400, math.inf)

#: ``Task.customer_failed`` writes "customer <result>, attempt <n> of <max>" in the transition's reason; a
#: retried task keeps no other trace of the result (its ``outcome`` is only set when it fails for good).
_RETRY_REASON = re.compile(r"customer (\w+), attempt \d+")


def _kind(task: Task) -> str:
    k = str(getattr(task.kind, "value", task.kind))
    return k if k in TASK_KINDS else OTHER


class TaskMetrics:
    """Task counters, histogram and scrape-time gauges in ``registry``. ``label`` turns a queue name into
    its label value (``Metrics`` passes its cardinality guard); ``clock`` is wall-clock seconds (tasks
    carry wall-clock times)."""

    def __init__(self, registry: CollectorRegistry, *, label: Callable[[str], str] = str,
                 clock: Callable[[], float] = time.time) -> None:
        self._label = label
        self._clock = clock
        self._queues: dict[str, None] = {}            # declared label values, in declaration order
        self._source: Callable[[], Iterable[Task]] | None = None
        labels = ("queue", "kind")
        self.ended = Counter("ivr_tasks", "Tasks that ended, by queue, kind and outcome (done, failed, expired, "
                             "cancelled).", (*labels, "outcome"), registry=registry)
        self.offers = Counter("ivr_task_offers", "Tasks offered to an agent (the agent's phone rang).", labels,
                              registry=registry)
        self.attempts = Counter("ivr_task_attempts", "Customer dial-outs of tasks by result: answered, busy, "
                                "no_answer, failed.", (*labels, "result"), registry=registry)
        self.time_to_callback = Histogram(
            "ivr_callback_time_to_callback_seconds", "From the task's position time (when the customer took "
            "their place) to the customer answering the callback.", labels, registry=registry,
            buckets=TIME_TO_CALLBACK_BUCKETS)
        registry.register(_TaskCollector(self))

    # ------------------------------------------------------------------------------- wiring
    def declare_queue(self, queue: str) -> None:
        """Every series of the queue exists (at 0) from now on; the gauges read 0 while nothing waits."""
        q = self._label(queue)
        if q in self._queues:
            return
        self._queues[q] = None
        for k in TASK_KINDS:
            self.offers.labels(q, k)
            self.time_to_callback.labels(q, k)
            for o in TASK_OUTCOMES:
                self.ended.labels(q, k, o)
            for r in ATTEMPT_RESULTS:
                self.attempts.labels(q, k, r)

    def set_source(self, open_tasks: Callable[[], Iterable[Task]] | None, *,
                   clock: Callable[[], float] | None = None) -> None:
        """Where the gauges read the open tasks at scrape time (``TaskBook.open_tasks``; must not block),
        and the wall clock their times are on (the book's; default: the one given at construction)."""
        self._source = open_tasks
        if clock is not None:
            self._clock = clock

    # ------------------------------------------------------------------------------ listener
    def on_change(self, before: Task | None, after: Task) -> None:
        if before is None or before.state is after.state:
            return                      # new, reloaded after a restart, or updated by a second request
        q, k = self._queue(after.queue), _kind(after)
        if after.state is TaskState.OFFERED:
            self.offers.labels(q, k).inc()
        if after.attempts > before.attempts:
            self.attempts.labels(q, k, self._failed_result(after)).inc()
        elif (before.state is TaskState.CONNECTING and after.state is TaskState.DONE
              and after.outcome == "answered"):
            self.attempts.labels(q, k, "answered").inc()
            at = after.history[-1].at if after.history else self._clock()
            self.time_to_callback.labels(q, k).observe(max(0.0, at - after.position_time))
        if before.open and not after.open:
            o = after.state.value
            self.ended.labels(q, k, o if o in TASK_OUTCOMES else OTHER).inc()

    @staticmethod
    def _failed_result(after: Task) -> str:
        if not after.open:
            result = after.outcome
        else:
            m = _RETRY_REASON.match(after.history[-1].reason) if after.history else None
            result = m.group(1) if m else ""
        return result if result in ATTEMPT_RESULTS else "failed"

    def _queue(self, queue: str) -> str:
        q = self._label(queue)
        if q not in self._queues:
            self.declare_queue(queue)
        return q

    # -------------------------------------------------------------------------------- gauges
    def waiting_by_queue(self) -> dict[str, dict[str, dict[str, float]]] | None:
        """{queue: {kind: {"waiting", "scheduled", "oldest_wait"}}} for every declared queue and kind (0
        when nothing waits), or None when the open tasks cannot be read (logged).

        ``waiting``: tasks in state waiting (not offered, not connecting), held-back ones included;
        ``scheduled``: those of them held back until a time (``not_before`` in the future: a callback asked
        for later, a retry after a busy customer); ``oldest_wait``: now - position time of the oldest
        waiting task that is due (a task held back until later is not late)."""
        out = {q: {k: {"waiting": 0.0, "scheduled": 0.0, "oldest_wait": 0.0} for k in TASK_KINDS}
               for q in self._queues}
        if self._source is None:
            return out
        now = self._clock()
        try:
            tasks = list(self._source())
        except Exception:                   # a scrape must never fail for this
            log.exception("task metrics: open tasks unreadable; task gauges omitted from this scrape")
            return None
        for t in tasks:
            if t.state is not TaskState.WAITING:
                continue
            q = self._queue(t.queue)
            row = out.setdefault(q, {k: {"waiting": 0.0, "scheduled": 0.0, "oldest_wait": 0.0}
                                     for k in TASK_KINDS})
            fig = row.setdefault(_kind(t), {"waiting": 0.0, "scheduled": 0.0, "oldest_wait": 0.0})
            fig["waiting"] += 1
            if t.not_before is not None and t.not_before > now:
                fig["scheduled"] += 1
            else:
                fig["oldest_wait"] = max(fig["oldest_wait"], t.waited(now))
        return out


class _TaskCollector:
    """The task gauges, computed at scrape time from ``TaskMetrics.waiting_by_queue``."""

    def __init__(self, tm: TaskMetrics) -> None:
        self.tm = tm

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        labels = ["queue", "kind"]
        return {
            "waiting": GaugeMetricFamily("ivr_tasks_waiting", "Tasks waiting for an agent (not offered, not "
                                         "connecting), those held back until a time included.", labels=labels),
            "scheduled": GaugeMetricFamily("ivr_tasks_scheduled", "Waiting tasks held back until a time (a "
                                           "callback asked for later, a retry after a busy customer): a "
                                           "subset of ivr_tasks_waiting.", labels=labels),
            "oldest_wait": GaugeMetricFamily("ivr_tasks_oldest_wait_seconds", "Now minus the position time of "
                                             "the oldest waiting task that is due (0 if none).", labels=labels),
        }

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        figures = self.tm.waiting_by_queue()
        if figures is not None:
            for q, kinds in figures.items():
                for k, fig in kinds.items():
                    for name, fam in f.items():
                        fam.add_metric([q, k], fig[name])
        yield from f.values()


def queue_figures(figures: dict[str, dict[str, dict[str, float]]] | None, queue: str) -> dict[str, Any]:
    """One queue's ``waiting_by_queue`` figures for the wallboard's data: ``tasks_waiting``,
    ``tasks_scheduled``, ``tasks_oldest_wait`` over the kinds, and ``tasks_by_kind`` (waiting). A queue
    with no figure reads 0; unreadable figures (``None``) read ``None`` (not a reassuring 0)."""
    if figures is None:
        return {"tasks_waiting": None, "tasks_scheduled": None, "tasks_oldest_wait": None, "tasks_by_kind": None}
    zero = {"waiting": 0.0, "scheduled": 0.0, "oldest_wait": 0.0}
    kinds = {k: zero for k in TASK_KINDS} | figures.get(queue, {})
    return {"tasks_waiting": int(sum(f["waiting"] for f in kinds.values())),
            "tasks_scheduled": int(sum(f["scheduled"] for f in kinds.values())),
            "tasks_oldest_wait": round(max(f["oldest_wait"] for f in kinds.values()), 1),
            "tasks_by_kind": {k: int(f["waiting"]) for k, f in kinds.items()}}
