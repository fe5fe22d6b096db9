"""The metrics' fixed vocabulary: label enums, histogram buckets, defaults, and how free values map onto them."""

from __future__ import annotations

import math
import re
from typing import Any

from ..acd.record import LEFT_OUTCOMES, REFUSAL_OUTCOMES
from ..admission import REASONS as ADMISSION_REASONS

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

