"""Decisions: what the router asks the adapter to do (frozen dataclasses, in the order to execute them).

* ``Offer``: ring ``endpoint`` for ``call_id`` (``ring_timeout`` s); report ``offer_answered`` or
  ``offer_failed``. The router also fails the offer itself ``offer_grace`` s after the ring timeout
  (safety net: a lost event never leaves an agent reserved forever) and then emits ``CancelOffer``.
* ``CancelOffer``: hang up the ringing agent leg (caller gone, agent paused/logged out/unregistered, ...).
* ``CallRequeued``: the call is back in the queue at its original place (resume music on hold).
* ``QueueExit``: the call leaves the queue unanswered with ``outcome`` timeout / full / no_agents; the
  flow continues at ``target`` (the queue's ``on_<outcome>``, opaque to the router); ``reason`` says why.
* ``CallMoved``: the waiting call moved from ``from_queue`` to ``to_queue`` (the queue's ``overflow``),
  keeping its join time; it is still in the ACD (no ``CallFinished``): keep the music, switch the
  announcements to the new queue's, count the move.
* ``AgentAutoPaused``: ring-no-answer limit reached; ``AgentStateChanged``: every agent transition.
* ``AutoPauseSuspended``: informational; the auto-pause protection acted for an agent (a miss not counted
  or refunded, a pause held back or lifted: see ``autopause``). Any state change it implies is also in an
  ``AgentStateChanged``.
* ``StartWrapUp``: informational; the router itself ends wrap-up ``seconds`` later on ``tick()``
  (``wrap_up_done`` ends it early), so the adapter needs no timer of its own.
* ``CallFinished``: the call left the ACD; persist ``record``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .agent import AgentState
from .record import CallRecord


class ExitOutcome(str, enum.Enum):
    TIMEOUT = "timeout"
    FULL = "full"
    NO_AGENTS = "no_agents"


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    score: float
    idle_for: float
    missed_before: bool  # this agent already missed this call (ranked after the others)


@dataclass(frozen=True)
class Explanation:
    """Why an offer went to this agent. ``log_line()`` for logs, ``as_dict()`` for the API."""

    call_id: str
    queue: str
    agent_id: str
    trigger: str  # what caused the decision: call_joined, agent_available, requeue, relaxation, ...
    wait: float
    priority: int
    step: int  # relaxation step in force (0 = none)
    step_description: str
    requirement: str  # rendered groups incl. the call's extra skills
    candidates: tuple[Candidate, ...]  # best first, at most ``MAX_CANDIDATES``
    n_candidates: int  # eligible available agents considered (can exceed len(candidates))
    reason: str  # why the winner won
    preference: str = ""  # preferred-agent note, if any

    MAX_CANDIDATES = 5

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "queue": self.queue, "agent_id": self.agent_id, "trigger": self.trigger,
            "wait": round(self.wait, 3), "priority": self.priority, "step": self.step,
            "step_description": self.step_description, "requirement": self.requirement,
            "candidates": [{"agent_id": c.agent_id, "score": c.score, "idle_for": round(c.idle_for, 3),
                            "missed_before": c.missed_before} for c in self.candidates],
            "n_candidates": self.n_candidates, "reason": self.reason, "preference": self.preference,
        }

    def log_line(self) -> str:
        cands = ",".join(f"{c.agent_id}:{c.score:g}/idle{c.idle_for:.1f}s{'/missed' if c.missed_before else ''}"
                         for c in self.candidates)
        more = f"+{self.n_candidates - len(self.candidates)}" if self.n_candidates > len(self.candidates) else ""
        parts = [f"offer call={self.call_id} queue={self.queue} agent={self.agent_id} trigger={self.trigger}",
                 f"wait={self.wait:.1f}s prio={self.priority} step={self.step}",
                 f"req=[{self.requirement}]", f"candidates=[{cands}{more}]", f"reason={self.reason!r}"]
        if self.step_description:
            parts.insert(2, f"relax={self.step_description!r}")
        if self.preference:
            parts.append(f"pref={self.preference!r}")
        return " ".join(parts)


class Decision:
    """Marker base class of every decision."""

    __slots__ = ()


@dataclass(frozen=True)
class Offer(Decision):
    call_id: str
    agent_id: str
    endpoint: str
    queue: str
    ring_timeout: float
    explanation: Explanation


@dataclass(frozen=True)
class CancelOffer(Decision):
    call_id: str
    agent_id: str
    reason: str  # abandoned, agent-paused, agent-logged-out, unregistered, ring-timeout, withdrawn, ...


@dataclass(frozen=True)
class CallRequeued(Decision):
    call_id: str
    queue: str
    reason: str  # why the offer failed


@dataclass(frozen=True)
class QueueExit(Decision):
    call_id: str
    queue: str
    outcome: ExitOutcome
    target: str | None
    reason: str = ""


@dataclass(frozen=True)
class CallMoved(Decision):
    call_id: str
    from_queue: str
    to_queue: str
    reason: str  # e.g. "overflow after 60s" / "no agent can serve it (tier2>=1) for 30s"
    wait: float  # seconds in from_queue (since it joined or was moved in)


@dataclass(frozen=True)
class AgentAutoPaused(Decision):
    agent_id: str
    reason: str


@dataclass(frozen=True)
class AutoPauseSuspended(Decision):
    agent_id: str
    action: str  # one of AUTO_PAUSE_ACTIONS
    reason: str  # why, e.g. "systemic: 12/20 offers to other agents failed in the last 60s"


#: ``AutoPauseSuspended.action`` values: the miss did not count / misses counted just before a storm were
#: given back / the agent reached its limit but the per-minute budget is spent / an auto-pause made just
#: before a storm was undone (the agent is available again).
AUTO_PAUSE_ACTIONS = ("miss-not-counted", "miss-refunded", "pause-held", "pause-lifted")


@dataclass(frozen=True)
class AgentStateChanged(Decision):
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str | None  # pause reason when new is paused


@dataclass(frozen=True)
class StartWrapUp(Decision):
    agent_id: str
    seconds: float
    until: float  # router clock


@dataclass(frozen=True)
class CallFinished(Decision):
    record: CallRecord
