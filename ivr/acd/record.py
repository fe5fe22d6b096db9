"""Call records: what happened to one call in the ACD, for persistence (the lead writes them to SQLite).

The router fills the record as the call moves and emits it once, frozen, in a ``CallFinished`` decision
when the call leaves the ACD: after the conversation (``answered``, emitted at ``call_ended``), or when it
leaves unanswered (``abandoned``, ``timeout``, ``full``, ``no_agents``, ``overflow`` = pulled out by the
flow with ``Router.withdraw``).

Times are the router's injected monotonic clock (seconds). To store wall-clock times, the adapter adds
``time.time() - time.monotonic()`` captured once (or uses a wall clock as the router clock).
``short_abandon`` is set when the caller hung up, unanswered, within the queue's ``short_abandon``
seconds of joining (usually excluded from service-level figures).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any


class CallOutcome(str, enum.Enum):
    """How a stay in the ACD ended: the one vocabulary of queue outcomes (router, glue, flow, metrics,
    records). The flow's queue node branches on ``flow_result``; metrics count ``LEFT_OUTCOMES`` for calls
    that joined and ``REFUSAL_OUTCOMES`` for calls refused at join."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    OVERFLOW = "overflow"
    FULL = "full"
    NO_AGENTS = "no_agents"

    @property
    def flow_result(self) -> CallOutcome:
        """What the flow sees: the flow's own ``max_wait`` pulling the caller out (``overflow``) is its
        ``timeout``; every other outcome is itself."""
        return CallOutcome.TIMEOUT if self is CallOutcome.OVERFLOW else self


#: how a call that joined a queue left it
LEFT_OUTCOMES = (CallOutcome.ANSWERED, CallOutcome.ABANDONED, CallOutcome.TIMEOUT, CallOutcome.OVERFLOW,
                 CallOutcome.NO_AGENTS)
#: why a call was refused at join (not offered, not waiting)
REFUSAL_OUTCOMES = (CallOutcome.FULL, CallOutcome.NO_AGENTS)
#: the results a flow's queue node can get (``on_timeout``, ``on_full``, ...)
FLOW_RESULTS = tuple(o for o in CallOutcome if o.flow_result is o)


@dataclass(frozen=True)
class CallRecord:
    call_id: str
    queue: str
    priority: int  # effective priority (queue + call)
    entered_at: float
    offered_at: float | None  # first offer
    answered_at: float | None
    ended_at: float  # left the ACD (for answered calls: end of the conversation)
    agent_id: str | None  # agent that answered (or the last one offered if never answered)
    outcome: CallOutcome
    offers: int  # offers made (1 + requeues after failures, unless abandoned first)
    rona_count: int  # ring-no-answer misses on this call
    short_abandon: bool = False
    #: ``answered_at`` reached within the queue's service-level seconds (None when not answered).
    within_service_level: bool | None = None
    #: Queues the call was moved from by their ``overflow``, in order (``queue`` is the last one; the
    #: times and the service level count from ``entered_at``, the join time in the first queue).
    overflowed_from: tuple[str, ...] = ()
    #: Why it left unanswered, when the router knows more than the outcome (e.g. no agent could serve it).
    reason: str = ""
    #: what work it was (``ivr.tasks.TaskKind`` value): ``call`` for a live caller
    kind: str = "call"

    @property
    def wait_time(self) -> float:
        """Seconds in queue before being answered (or before leaving unanswered)."""
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return end - self.entered_at

    @property
    def talk_time(self) -> float | None:
        return None if self.answered_at is None else self.ended_at - self.answered_at

    def as_dict(self) -> dict[str, Any]:
        # every value is immutable: no deep copy (``dataclasses.asdict`` copies each, once per call)
        d = {name: getattr(self, name) for name in _FIELDS}
        d["outcome"] = self.outcome.value
        d["overflowed_from"] = list(self.overflowed_from)
        d["wait_time"] = self.wait_time
        d["talk_time"] = self.talk_time
        return d


_FIELDS = tuple(f.name for f in fields(CallRecord))
