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

The package: ``vocab`` (label enums, buckets), ``live`` (the scrape-time collector and its provider),
``window`` (the staffing tracker), ``recorder`` (``Metrics``, the recording methods).
"""

from .live import LiveCollector, LiveStateProvider, QueueSnapshot, iter_metric_names, queue_snapshot_from_view
from .recorder import CONTENT_TYPE, Metrics
from .vocab import (
    AGENT_STATES,
    CRM_BACKENDS,
    CRM_ERROR_KINDS,
    CRM_STATUSES,
    NODE_EXITS,
    QUEUE_OUTCOMES,
    REFUSAL_REASONS,
    WAIT_BUCKETS,
    crm_error_kind,
)
from .window import Staffing

__all__ = [
    "AGENT_STATES", "CONTENT_TYPE", "CRM_BACKENDS", "CRM_ERROR_KINDS", "CRM_STATUSES", "NODE_EXITS",
    "QUEUE_OUTCOMES", "REFUSAL_REASONS", "WAIT_BUCKETS", "LiveCollector", "LiveStateProvider", "Metrics",
    "QueueSnapshot", "Staffing", "crm_error_kind", "iter_metric_names", "queue_snapshot_from_view",
]
