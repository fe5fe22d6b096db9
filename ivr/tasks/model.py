"""Every contact is a task: a live call, a keep-your-place callback, a voicemail to return, a callback
requested from the web. Pure data and the rules of its life cycle (no I/O, times passed in).

States::

    waiting --offer--> offered --answer--> connecting --customer answered--> done
       ^                  |                    |
       +--- ring no answer / agent refused ----+--- customer busy, no answer (attempts left, retry later)
    waiting|offered|connecting --> cancelled (the customer or an admin withdrew it)
    waiting --> expired (its window closed unserved)
    connecting --> failed (no attempts left) ; waiting --> failed (an admin closed it)

Times are wall-clock seconds (epoch), since tasks outlive the process: ``position_time`` is the time that
orders the task in its queue (a callback keeps the join time of the call it came from: that is what "keep
your place" means), ``not_before`` holds a scheduled or retried task back, ``not_after`` expires it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class TaskKind(StrEnum):
    CALL = "call"
    CALLBACK = "callback"
    VOICEMAIL = "voicemail"
    WEB_CALLBACK = "web_callback"


class TaskState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTING = "connecting"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def open(self) -> bool:
        return self not in TERMINAL


TERMINAL = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.EXPIRED, TaskState.CANCELLED})

#: Kinds that dial a customer back: one open task of these per number and queue.
CALLBACK_KINDS = frozenset({TaskKind.CALLBACK, TaskKind.WEB_CALLBACK})

_W, _O, _C = TaskState.WAITING, TaskState.OFFERED, TaskState.CONNECTING
ALLOWED: Mapping[TaskState, frozenset[TaskState]] = MappingProxyType({
    _W: frozenset({_O, TaskState.EXPIRED, TaskState.CANCELLED, TaskState.FAILED}),
    _O: frozenset({_W, _C, TaskState.CANCELLED}),
    _C: frozenset({_W, TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED}),
})


class InvalidTransition(ValueError):
    """A task was asked to move where its life cycle does not go (a bug in the caller, never user input)."""


@dataclass(frozen=True)
class Transition:
    at: float
    from_state: TaskState
    to_state: TaskState
    reason: str = ""
    agent_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "from": self.from_state.value, "to": self.to_state.value, "reason": self.reason,
                "agent_id": self.agent_id}


@dataclass(frozen=True)
class RoutingDecision:
    """One routing decision about a task: the router offered it to ``agent_id`` at ``at`` (wall clock), for
    customer attempt ``attempt`` (1-based), and why: ``summary`` (one line, as in the history) and, when the
    glue passes it, the router's whole explanation (``ivr.acd.Explanation.as_dict()``: trigger, wait,
    relaxation step, requirement, the ranked candidates with fit and idle time, the reason the winner won,
    the preferred-agent note). Kept with the task, so a supervisor can read it after the fact."""

    at: float
    agent_id: str
    attempt: int = 1
    summary: str = ""
    explanation: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "agent_id": self.agent_id, "attempt": self.attempt, "summary": self.summary,
                "explanation": None if self.explanation is None else dict(self.explanation)}


@dataclass(frozen=True)
class NewTask:
    """What a request for work says (the IVR's callback node, a voicemail, the web)."""

    kind: TaskKind
    queue: str
    number: str | None = None
    name: str = ""
    customer: Mapping[str, Any] = field(default_factory=dict)
    required_skills: Mapping[str, int] = field(default_factory=dict)
    optional_skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    position_time: float | None = None       # wall clock; None: now
    not_before: float | None = None
    not_after: float | None = None
    assigned_agent: str | None = None
    source: str = ""


@dataclass(frozen=True)
class Task:
    id: str
    kind: TaskKind
    queue: str
    position_time: float
    created_at: float
    required_skills: Mapping[str, int] = field(default_factory=dict)
    optional_skills: Mapping[str, int] = field(default_factory=dict)
    priority: int = 0
    number: str | None = None          # the customer's number (E.164-ish, as the CRM normalises it)
    name: str = ""
    customer: Mapping[str, Any] = field(default_factory=dict)   # the CRM record's fields the agent sees
    not_before: float | None = None
    not_after: float | None = None
    attempts: int = 0                  # customer dial-outs tried
    max_attempts: int = 3
    state: TaskState = TaskState.WAITING
    agent_id: str | None = None        # the agent it is offered to / connecting with
    assigned_agent: str | None = None  # only this agent may take it (a voicemail's "call back" action)
    source: str = ""                   # where it came from: the call id, the voicemail id, the web client
    outcome: str = ""                  # why it ended (``answered``, ``busy``, ``no_answer``, ``window_closed``...)
    history: tuple[Transition, ...] = ()
    decisions: tuple[RoutingDecision, ...] = ()   # the router's offers of it, oldest first

    # ------------------------------------------------------------------------------ queries
    @property
    def open(self) -> bool:
        return self.state.open

    def due(self, now: float) -> bool:
        """Waiting and not held back: the router may offer it now."""
        return (self.state is TaskState.WAITING and (self.not_before is None or self.not_before <= now)
                and not self.overdue(now))

    def overdue(self, now: float) -> bool:
        return self.not_after is not None and now >= self.not_after

    def waited(self, now: float) -> float:
        return max(0.0, now - self.position_time)

    # ---------------------------------------------------------------------------- changes
    def moved(self, to: TaskState, at: float, reason: str = "", **changes: Any) -> Task:
        """This task in state ``to`` with one more transition in its history (and ``changes`` applied)."""
        if to not in ALLOWED.get(self.state, frozenset()):
            raise InvalidTransition(f"task {self.id}: {self.state.value} -> {to.value} is not a transition")
        agent = changes.get("agent_id", self.agent_id)
        step = Transition(at, self.state, to, reason, agent)
        return dataclasses.replace(self, state=to, history=(*self.history, step), **changes)

    def offer(self, agent_id: str, at: float, why: str = "", explanation: Mapping[str, Any] | None = None
              ) -> Task:
        """Offered to ``agent_id``; ``why`` is the router's explanation in one line (kept in the history),
        ``explanation`` the whole of it (``Explanation.as_dict()``); both are kept as a ``RoutingDecision``,
        so a supervisor can read after the fact why this agent was chosen."""
        if self.assigned_agent is not None and agent_id != self.assigned_agent:
            raise InvalidTransition(f"task {self.id} is for {self.assigned_agent}, not {agent_id}")
        decision = RoutingDecision(at, agent_id, self.attempts + 1, why,
                                   None if explanation is None else MappingProxyType(dict(explanation)))
        return self.moved(TaskState.OFFERED, at, f"offered: {why}" if why else "offered", agent_id=agent_id,
                          decisions=(*self.decisions, decision))

    def agent_missed(self, at: float, reason: str = "no_answer") -> Task:
        """The agent did not take it: back at its place (same position time), for another agent."""
        return self.moved(TaskState.WAITING, at, f"agent {reason}", agent_id=None)

    def agent_answered(self, at: float) -> Task:
        return self.moved(TaskState.CONNECTING, at, "agent answered")

    def customer_answered(self, at: float) -> Task:
        return self.moved(TaskState.DONE, at, "customer answered", outcome="answered")

    def customer_failed(self, at: float, reason: str, retry_after: float) -> Task:
        """The customer was busy / did not answer / rejected: retried after ``retry_after`` seconds at its
        place while attempts remain, else failed."""
        attempts = self.attempts + 1
        if attempts >= self.max_attempts:
            return self.moved(TaskState.FAILED, at, f"customer {reason}, attempt {attempts} of "
                              f"{self.max_attempts}", attempts=attempts, outcome=reason, agent_id=None)
        return self.moved(TaskState.WAITING, at, f"customer {reason}, attempt {attempts} of {self.max_attempts}",
                          attempts=attempts, not_before=at + retry_after, agent_id=None)

    def closed(self, at: float, outcome: str, reason: str = "") -> Task:
        """Ended by an agent with a disposition (a voicemail handled without a call: DONE)."""
        return self.moved(TaskState.DONE, at, reason or f"closed: {outcome}", outcome=outcome, agent_id=None)

    def cancelled(self, at: float, reason: str) -> Task:
        return self.moved(TaskState.CANCELLED, at, reason, outcome="cancelled", agent_id=None)

    def expired(self, at: float) -> Task:
        return self.moved(TaskState.EXPIRED, at, "window closed unserved", outcome="window_closed")

    def back_to_place(self, at: float, reason: str) -> Task:
        """An offer or a connection ended by our side (the agent hung up before the customer answered):
        back at its place, no attempt used."""
        return self.moved(TaskState.WAITING, at, reason, agent_id=None)

    def interrupted(self, at: float) -> Task:
        """After a restart: an offer or a connection in flight is gone with the old process; the task goes
        back to its place (an interrupted connection does not use up an attempt)."""
        if self.state in (TaskState.OFFERED, TaskState.CONNECTING):
            return self.moved(TaskState.WAITING, at, "interrupted by a restart", agent_id=None)
        return self

    def merged(self, newer: Task, at: float) -> Task:
        """A second request for the same number and queue updates the first, never a second call: the
        earlier place is kept; the newer name, window and context win."""
        return dataclasses.replace(
            self, name=newer.name or self.name, customer={**self.customer, **newer.customer},
            not_before=newer.not_before, not_after=newer.not_after,
            position_time=min(self.position_time, newer.position_time),
            history=(*self.history, Transition(at, self.state, self.state, f"updated by a new {newer.kind.value} "
                                                                          f"request")))


def order_key(task: Task) -> tuple[int, float, str]:
    """How tasks of one queue are served: higher priority first, then the oldest position time."""
    return (-task.priority, task.position_time, task.id)
