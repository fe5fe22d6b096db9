"""Why is this agent not chosen? The router's reasoning replayed for one agent (pure, real router)."""

from __future__ import annotations

import pytest

from ivr.acd import AgentConfig, Call, Offer, QueueConfig, RelaxationStep, Router
from ivr.acd.errors import UnknownAgent, UnknownCall
from ivr.acd.why_not import why_not
from ivr.tasks import TaskKind


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def router_with(*agents: AgentConfig, queues=None, login=True):
    clock = Clock()
    r = Router(queues or [QueueConfig("billing", required_skills={"billing": 1}, wrap_up=30),
                          QueueConfig("sales", required_skills={"sales": 1})], clock)
    for a in agents:
        r.add_agent(a)
        if login:
            r.login(a.id)
    return r, clock


def codes(w) -> list[str]:
    return [x.code for x in w.reasons]


def offers(ds):
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def test_unknown_call_or_agent_raise_the_routers_errors():
    r, _ = router_with(AgentConfig("a1", skills={"billing": 1}))
    r.enqueue(Call("c1", "billing"))
    with pytest.raises(UnknownCall):
        why_not(r, "nope", "a1")
    with pytest.raises(UnknownAgent):
        why_not(r, "c1", "nobody")


def test_the_chosen_agent_is_told_so_and_the_next_one_ranks_below_by_fit():
    r, _ = router_with(AgentConfig("strong", skills={"billing": 5}), AgentConfig("weak", skills={"billing": 2}))
    assert offers(r.enqueue(Call("c1", "billing"))) == [("c1", "strong")]
    w = why_not(r, "c1", "strong")
    assert w.chosen and codes(w) == ["chosen"]
    w = why_not(r, "c1", "weak")
    assert not w.chosen and codes(w) == ["offered_to_other", "ranked_below"]
    assert w.reasons[1].message == "agent strong ranks first: better skill fit (5 > 2)"
    assert [x.agent_id for x in w.ranking] == ["strong", "weak"] and w.score == 2


def test_equal_fit_is_decided_by_idle_time_and_a_miss_ranks_last():
    r, clock = router_with(AgentConfig("a1", skills={"billing": 1}))
    r.add_agent(AgentConfig("a2", skills={"billing": 1}))
    clock.t += 10
    r.login("a2")                                              # a1 idle 10 s longer
    assert offers(r.enqueue(Call("c1", "billing"))) == [("c1", "a1")]
    w = why_not(r, "c1", "a2")
    assert codes(w) == ["offered_to_other", "ranked_below"] and "equal fit (1)" in w.reasons[1].message
    assert offers(r.offer_failed("c1")) == [("c1", "a2")]     # a1 missed it: a2 now
    clock.t += 5                                               # a1's rest (retry 2 s) is over
    r.tick()
    w = why_not(r, "c1", "a1")
    assert codes(w) == ["offered_to_other", "missed_before", "ranked_below"]
    assert "already missed" in w.reasons[2].message


def test_the_agents_state_phone_and_membership_are_reasons():
    r, _ = router_with(AgentConfig("a1", skills={"billing": 1}), AgentConfig("a2", skills={"billing": 1}),
                       AgentConfig("a3", skills={"billing": 1}, queues=frozenset({"sales"})),
                       AgentConfig("a4", skills={"billing": 1}))
    r.pause("a1", "lunch")
    r.set_registered("a2", False)
    r.logout("a4")
    r.enqueue(Call("busy", "billing"))                         # a1 paused, a2 unregistered, a4 out
    snap = r.call_snapshot("busy")
    assert snap.agent_id is None                               # nobody left in billing: waits
    w = why_not(r, "busy", "a1")
    assert codes(w) == ["paused"] and w.reasons[0].details["pause_reason"] == "lunch"
    assert codes(why_not(r, "busy", "a2")) == ["not_registered"]
    w = why_not(r, "busy", "a3")
    assert codes(w) == ["not_member"] and w.reasons[0].details["queues"] == ["sales"]
    assert codes(why_not(r, "busy", "a4")) == ["logged_out"]
    r.unpause("a1")                                            # a1 takes it, answers, then wraps up
    r.offer_answered("busy")
    r.enqueue(Call("c2", "billing"))
    w = why_not(r, "c2", "a1")
    assert codes(w) == ["on_call"] and w.reasons[0].details["call_id"] == "busy"
    r.call_ended("busy")
    assert codes(why_not(r, "c2", "a1")) == ["wrap_up"]


def test_a_missing_skill_is_named_with_its_level_and_the_relaxation_step_in_force():
    q = QueueConfig("billing", required_skills={"billing": 3}, wrap_up=0,
                    relaxation=(RelaxationStep(30, min_proficiency=2),))
    r, clock = router_with(AgentConfig("a1", skills={"billing": 1}), queues=[q])
    r.enqueue(Call("c1", "billing", extra_skills={"lang:fr": 1}))
    w = why_not(r, "c1", "a1")
    assert codes(w) == ["missing_skill"] and w.score is None and w.step == 0
    assert w.reasons[0].message == ("agent a1 lacks billing at level 3 (has 1), lang:fr at level 1 (has 0), "
                                    "with no relaxation step in force")
    clock.t += 30
    r.tick()
    w = why_not(r, "c1", "a1")
    assert w.step == 1 and w.requirement == "billing>=2,lang:fr>=1"
    assert "billing at level 2 (has 1)" in w.reasons[0].message
    assert "relaxation step 1: step 1 (after 30s: min_proficiency=2)" in w.reasons[0].message
    assert w.reasons[0].details["missing"] == [[{"skill": "billing", "required": 2, "has": 1},
                                                {"skill": "lang:fr", "required": 1, "has": 0}]]


def test_the_queues_task_cap_holds_a_second_task_back():
    q = QueueConfig("billing", required_skills={"billing": 1}, task_agents_percent=50)
    r, _ = router_with(AgentConfig("a1", skills={"billing": 1}), AgentConfig("a2", skills={"billing": 1}),
                       queues=[q])
    assert offers(r.enqueue(Call("t1", "billing", kind=TaskKind.CALLBACK))) == [("t1", "a1")]
    assert offers(r.enqueue(Call("t2", "billing", kind=TaskKind.CALLBACK))) == []     # 1 of 2 agents on tasks
    w = why_not(r, "t2", "a2")
    assert codes(w) == ["task_cap"]
    assert w.reasons[0].details == {"engaged": 1, "cap": 1, "task_agents_percent": 50}
    r.enqueue(Call("caller", "billing"))                       # a caller is not capped: a2 takes it
    assert r.call_snapshot("caller").agent_id == "a2"


def test_a_preferred_or_assigned_agent_holds_the_call():
    r, clock = router_with(AgentConfig("a1", skills={"billing": 1}), AgentConfig("a2", skills={"billing": 1}))
    r.pause("a1", "meeting")
    r.enqueue(Call("c1", "billing", preferred_agent="a1", preferred_until=clock.t + 60))
    w = why_not(r, "c1", "a2")
    assert codes(w) == ["reserved_for"] and w.reasons[0].details == {"agent_id": "a1"}


def test_an_agent_who_fits_better_but_came_too_late_is_told_it_was_offered_before():
    r, _ = router_with(AgentConfig("weak", skills={"billing": 1}), AgentConfig("strong", skills={"billing": 5}))
    r.pause("strong", "coffee")
    assert offers(r.enqueue(Call("c1", "billing"))) == [("c1", "weak")]
    r.unpause("strong")
    w = why_not(r, "c1", "strong")
    assert codes(w) == ["offered_to_other", "offered_before"]
    assert [x.agent_id for x in w.ranking] == ["strong", "weak"]


def test_an_agent_added_but_not_logged_in_is_logged_out_and_the_answer_is_json_ready():
    r, _ = router_with(AgentConfig("a1", skills={"billing": 1}))
    r.enqueue(Call("c1", "billing"))
    r.offer_answered("c1")
    r.add_agent(AgentConfig("a2", skills={"billing": 1}))
    r.enqueue(Call("c2", "billing"))                           # nobody free: waits
    w = why_not(r, "c2", "a2")
    assert codes(w) == ["logged_out"]
    assert w.as_dict()["reasons"][0]["code"] == "logged_out" and w.as_dict()["chosen"] is False
