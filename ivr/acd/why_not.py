"""Why is this agent not chosen for this call (or task)? The router's reasoning, replayed for one agent.

Pure: it reads the router through its public queries only (``call_snapshot``, ``agent_snapshot``,
``agent_skills``, ``queue_config``, ``queue_members``, ``agents_snapshot``, ``call_requirement``,
``task_slots``) and changes nothing. For the API ``GET /api/tasks/{id}/why-not/{agent_id}`` and the
supervisor's tools.

Every reason that applies is listed (an agent may be paused *and* lack a skill), the blocking ones first,
each with a stable ``code``:

* ``chosen``: the call is offered to / worked by this agent (the only reason then);
* ``taken`` / ``offered_to_other``: the call is with / ringing another agent now;
* ``reserved_for``: a preferred or assigned agent holds it (only that agent may take it);
* ``not_member``: the agent does not serve the call's queue;
* ``logged_out``, ``paused``, ``on_call``, ``wrap_up``, ``ringing``: the agent's state;
  ``not_registered``: its phone is not registered; ``resting``: it just failed an offer (the queue's
  ``retry`` seconds);
* ``missing_skill``: it satisfies none of the call's requirement groups at the relaxation step in force
  (per group: which skill, the level required, the agent's);
* ``task_cap``: a task, and the queue's ``task_agents_percent`` cap of agents on tasks is reached;
* ``missed_before``: it already missed this call (ranked after the agents who have not);
* ``ranked_below``: eligible, but another agent ranks first (fit score, then idle time, then id);
  ``offered_before``: it ranks first now, but the call was offered to another agent before it could take it;
* ``eligible``: nothing stops it: the router offers it at its next decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .agent import AgentState
from .call import CallState
from .policy import fit_score

if TYPE_CHECKING:
    from .router import Router

#: reasons that keep the agent from the call whatever the ranking (the rest only rank it lower)
BLOCKING = frozenset({"taken", "offered_to_other", "reserved_for", "not_member", "logged_out", "paused",
                      "on_call", "wrap_up", "ringing", "not_registered", "resting", "missing_skill", "task_cap"})

_STATE_REASONS = {
    AgentState.LOGGED_OUT: ("logged_out", "is logged out"),
    AgentState.PAUSED: ("paused", "is paused"),
    AgentState.ON_CALL: ("on_call", "is on a call"),
    AgentState.WRAP_UP: ("wrap_up", "is in wrap-up"),
    AgentState.RESERVED: ("ringing", "is being offered another call"),
}


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **({"details": dict(self.details)}
                                                                  if self.details else {})}


@dataclass(frozen=True)
class Ranked:
    """One agent as the router ranks them for the call: not having missed it first, then fit, then idle."""

    agent_id: str
    score: float
    idle_for: float | None      # None: not available now (the offered agent, or the asked agent)
    missed_before: bool

    def key(self) -> tuple[bool, float, float, str]:
        return (self.missed_before, -self.score, -(self.idle_for if self.idle_for is not None else -1.0),
                self.agent_id)

    def as_dict(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "score": self.score,
                "idle_for": None if self.idle_for is None else round(self.idle_for, 3),
                "missed_before": self.missed_before}


@dataclass(frozen=True)
class WhyNot:
    call_id: str
    agent_id: str
    queue: str
    call_state: str
    chosen: bool
    reasons: tuple[Reason, ...]
    step: int
    step_description: str
    requirement: str
    score: float | None             # the agent's fit for the call now (None: it satisfies no group)
    ranking: tuple[Ranked, ...]     # the eligible available agents, the offered one and this one, best first

    @property
    def blocked(self) -> bool:
        return any(r.code in BLOCKING for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "agent_id": self.agent_id, "queue": self.queue,
                "call_state": self.call_state, "chosen": self.chosen, "reasons": [r.as_dict() for r in self.reasons],
                "step": self.step, "step_description": self.step_description, "requirement": self.requirement,
                "score": self.score, "ranking": [r.as_dict() for r in self.ranking]}


def why_not(router: Router, call_id: str, agent_id: str) -> WhyNot:
    """Why ``agent_id`` is not (or is) chosen for ``call_id`` now. Raises the router's ``UnknownCall`` /
    ``UnknownAgent``."""
    call = router.call_snapshot(call_id)
    agent = router.agent_snapshot(agent_id)
    skills = router.agent_skills(agent_id)
    groups, optional, missed = router.call_requirement(call_id)
    queue = call.queue
    score = fit_score(groups, optional, skills)
    requirement = " | ".join(",".join(f"{s}>={lv}" for s, lv in g) or "any" for g in groups)
    step_text = (f"relaxation step {call.step}: {call.step_description}" if call.step
                 else "no relaxation step in force")
    reasons: list[Reason] = []

    def result(chosen: bool, ranking: tuple[Ranked, ...] = ()) -> WhyNot:
        order = sorted(reasons, key=lambda r: r.code not in BLOCKING)
        return WhyNot(call_id, agent_id, queue, call.state.value, chosen, tuple(order), call.step,
                      call.step_description, requirement, score, ranking)

    if call.agent_id == agent_id and call.state is not CallState.WAITING:
        what = "is ringing this agent" if call.state is CallState.RINGING else "is with this agent"
        reasons.append(Reason("chosen", f"{call_id} {what}"))
        return result(True)
    if call.state is CallState.ON_CALL:
        reasons.append(Reason("taken", f"{call_id} is already with agent {call.agent_id}",
                              {"agent_id": call.agent_id}))
    elif call.state is CallState.RINGING:
        reasons.append(Reason("offered_to_other", f"{call_id} is being offered to agent {call.agent_id}",
                              {"agent_id": call.agent_id}))
    if call.preferred_agent is not None and call.preferred_agent != agent_id:
        reasons.append(Reason("reserved_for", f"only agent {call.preferred_agent} may take it (preferred or "
                                              f"assigned agent)", {"agent_id": call.preferred_agent}))

    if agent_id not in router.queue_members(queue):
        reasons.append(Reason("not_member", f"agent {agent_id} does not serve queue {queue}",
                              {"queues": list(agent.queues)}))
    state = _STATE_REASONS.get(agent.state)
    if state is not None:
        code, text = state
        details: dict[str, Any] = {"state": agent.state.value, "for": round(agent.state_for, 1)}
        if agent.state is AgentState.PAUSED:
            details["pause_reason"] = agent.pause_reason
            text += f" ({agent.pause_reason})"
        if agent.call_id:
            details["call_id"] = agent.call_id
        reasons.append(Reason(code, f"agent {agent_id} {text}", details))
    if not agent.registered:
        reasons.append(Reason("not_registered", f"agent {agent_id}'s phone is not registered"))
    if agent.resting:
        reasons.append(Reason("resting", f"agent {agent_id} just failed an offer and rests for the queue's "
                                         f"retry time"))

    if score is None:
        missing = [[{"skill": s, "required": lv, "has": skills.get(s, 0)} for s, lv in g if skills.get(s, 0) < lv]
                   for g in groups]
        first = ", ".join(f"{m['skill']} at level {m['required']} (has {m['has']})" for m in missing[0])
        more = f"; nor any of the {len(groups) - 1} alternative group(s)" if len(groups) > 1 else ""
        reasons.append(Reason("missing_skill", f"agent {agent_id} lacks {first}{more}, with {step_text}",
                              {"step": call.step, "step_description": call.step_description,
                               "requirement": requirement, "missing": missing}))

    if call.kind != "call" and call.state is CallState.WAITING:
        engaged, cap = router.task_slots(queue)
        if engaged >= cap:
            pct = router.queue_config(queue).task_agents_percent
            reasons.append(Reason("task_cap", f"{engaged} of queue {queue}'s agents are on tasks already: the "
                                              f"cap is {cap} (task_agents_percent {pct:g} %)",
                                  {"engaged": engaged, "cap": cap, "task_agents_percent": pct}))
    if agent_id in missed:
        reasons.append(Reason("missed_before", f"agent {agent_id} already missed {call_id}: ranked after the "
                                               f"agents who have not"))

    ranking: tuple[Ranked, ...] = ()
    if score is not None:
        ranking = _ranking(router, call.agent_id, agent_id, queue, groups, optional, missed)
        mine = next(r for r in ranking if r.agent_id == agent_id)
        rival = next((r for r in ranking if r.agent_id == call.agent_id), None) \
            if call.state is CallState.RINGING else (ranking[0] if not reasons else None)
        if rival is not None and rival is not mine:
            if rival.key()[:2] <= mine.key()[:2] or call.state is not CallState.RINGING:
                reasons.append(Reason("ranked_below", f"agent {rival.agent_id} ranks first: "
                                                      f"{_compare(rival, mine)}",
                                      {"agent_id": rival.agent_id, "score": rival.score, "your_score": mine.score}))
            else:
                reasons.append(Reason("offered_before", f"agent {agent_id} fits better ({mine.score:g} > "
                                                        f"{rival.score:g}) but could not take {call_id} when it "
                                                        f"was offered to agent {rival.agent_id}",
                                      {"agent_id": rival.agent_id, "score": rival.score, "your_score": mine.score}))
    if not reasons:
        reasons.append(Reason("eligible", f"nothing keeps agent {agent_id} from {call_id}: the router offers it "
                                          f"at its next decision"))
    return result(False, ranking)


def _ranking(router: Router, offered: str | None, asked: str, queue: str, groups: Any, optional: Any,
             missed: frozenset[str]) -> tuple[Ranked, ...]:
    members = set(router.queue_members(queue))
    out = []
    for a in router.agents_snapshot():
        aid = a.agent_id
        available = a.state is AgentState.AVAILABLE and a.registered and not a.resting and aid in members
        if not (available or aid == offered or aid == asked):
            continue
        sc = fit_score(groups, optional, router.agent_skills(aid))
        if sc is None:
            continue
        out.append(Ranked(aid, sc, a.idle_for if available else None, aid in missed))
    return tuple(sorted(out, key=Ranked.key))


def _compare(top: Ranked, mine: Ranked) -> str:
    if top.missed_before != mine.missed_before:
        return "this agent already missed the call, the other did not"
    if top.score != mine.score:
        return f"better skill fit ({top.score:g} > {mine.score:g})"
    if top.idle_for is None or mine.idle_for is None:
        return f"equal fit ({top.score:g}); the tie goes to the longest idle agent, then the agent id"
    if top.idle_for != mine.idle_for:
        return f"equal fit ({top.score:g}), idle longer ({top.idle_for:.0f} s > {mine.idle_for:.0f} s)"
    return f"equal fit ({top.score:g}) and idle time: agent id tie-break"
