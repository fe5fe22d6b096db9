"""Queues and agents changed at run time in the pure router (ivr/acd/reconfig.py), on a fake clock: an update
applies to the callers already waiting (skills, priority, relaxation, max_wait, service level) keeping their
place; a bad update or a refused removal changes nothing; removing an agent on a call is refused."""

from __future__ import annotations

import dataclasses

import pytest

from ivr.acd import (
    AgentConfig,
    AgentState,
    Call,
    CallFinished,
    CancelOffer,
    ConfigError,
    IllegalTransition,
    Offer,
    QueueConfig,
    QueueExit,
    RelaxationStep,
    Router,
    ServiceLevel,
    UnknownQueue,
)
from ivr.acd.queue import Overflow
from ivr.acd.reconfig import QueueInUse


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def offers(ds) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def router(*queues: QueueConfig, agents: dict[str, dict[str, int]] | None = None, queues_of=None):
    clock = Clock()
    r = Router(list(queues), clock)
    for aid, skills in (agents or {}).items():
        r.add_agent(AgentConfig(aid, skills=skills, queues=(queues_of or {}).get(aid)))
        r.login(aid)
    return r, clock


def test_new_skills_apply_to_waiting_callers_at_once():
    r, clock = router(QueueConfig("billing", required_skills={"billing": 3}), agents={"bob": {"billing": 2}})
    assert offers(r.enqueue(Call("c1", "billing"))) == []
    clock.t += 10
    ds = r.update_queue(QueueConfig("billing", required_skills={"billing": 2}))
    assert offers(ds) == [("c1", "bob")]
    assert r.queue_config("billing").required_skills == {"billing": 2}
    # the caller kept its join time: its wait counts from then
    assert r.call_snapshot("c1").wait == pytest.approx(10)


def test_a_relaxation_step_already_due_applies_now():
    r, clock = router(QueueConfig("q", required_skills={"x": 4}), agents={"a": {"x": 2}})
    r.enqueue(Call("c1", "q"))
    clock.t += 30
    ds = r.update_queue(QueueConfig("q", required_skills={"x": 4},
                                    relaxation=(RelaxationStep(after=20, min_proficiency=2),)))
    assert offers(ds) == [("c1", "a")]


def test_priority_reorders_callers_across_queues():
    r, clock = router(QueueConfig("a"), QueueConfig("b"), agents={"ann": {}})
    r.pause("ann", "break")
    r.enqueue(Call("ca", "a"))
    clock.t += 1
    r.enqueue(Call("cb", "b"))
    r.update_queue(QueueConfig("b", priority=5))
    assert offers(r.unpause("ann")) == [("cb", "ann")]      # b's caller joined later but ranks first now


def test_a_shorter_max_wait_ends_a_caller_past_it():
    r, clock = router(QueueConfig("q", required_skills={"x": 5}, no_agents_grace=None), agents={"a": {"x": 1}})
    r.enqueue(Call("c1", "q"))
    clock.t += 40
    ds = r.update_queue(QueueConfig("q", required_skills={"x": 5}, max_wait=30, no_agents_grace=None))
    exits = [d for d in ds if isinstance(d, QueueExit)]
    assert [(e.call_id, e.outcome.value) for e in exits] == [("c1", "timeout")]
    assert r.queue_snapshot("q").calls == ()


def test_service_level_of_the_new_definition_counts():
    r, clock = router(QueueConfig("q", service_level=ServiceLevel(80, 20)), agents={"a": {}})
    r.pause("a", "break")
    r.enqueue(Call("c1", "q"))
    clock.t += 25
    r.update_queue(QueueConfig("q", service_level=ServiceLevel(90, 30)))
    assert r.queue_snapshot("q").service_level_target == (90, 30)
    r.unpause("a")
    r.offer_answered("c1")
    assert r.queue_snapshot("q").stats.answered_within_sl == 1      # 25 s <= the new 30 s


def test_a_ringing_offer_is_kept():
    r, clock = router(QueueConfig("q"), agents={"a": {}})
    assert offers(r.enqueue(Call("c1", "q"))) == [("c1", "a")]
    ds = r.update_queue(QueueConfig("q", ring_timeout=30))
    assert not [d for d in ds if isinstance(d, CancelOffer)]
    assert r.agent_snapshot("a").state is AgentState.RESERVED
    r.offer_answered("c1")
    assert r.agent_snapshot("a").state is AgentState.ON_CALL


def test_a_failed_offer_after_an_update_requeues_in_the_new_group():
    r, clock = router(QueueConfig("q"), agents={"a": {}, "b": {"y": 1}})
    r.pause("b", "break")
    r.enqueue(Call("c1", "q"))
    r.update_queue(QueueConfig("q", required_skills={"y": 1}))
    r.unpause("b")
    ds = r.offer_failed("c1", agent_fault=False)
    assert offers(ds) == [("c1", "b")]                      # a no longer fits the queue


def test_bad_update_changes_nothing():
    q = QueueConfig("q", required_skills={"x": 1})
    r, _ = router(q, QueueConfig("other"), agents={"a": {"x": 1}})
    with pytest.raises(ConfigError):
        r.update_queue(QueueConfig("q", overflow=Overflow("nowhere", 10)))
    with pytest.raises(ConfigError):       # a loop: other -> q -> other
        r.update_queue(QueueConfig("other", overflow=Overflow("q", 10)))
        r.update_queue(QueueConfig("q", overflow=Overflow("other", 10)))
    assert r.queue_config("q") == q
    with pytest.raises(UnknownQueue):
        r.update_queue(QueueConfig("ghost"))


def test_remove_queue_refused_while_in_use_then_done():
    r, clock = router(QueueConfig("q"), QueueConfig("spill", overflow=Overflow("q", 30)), QueueConfig("z"),
                      agents={"a": {}, "b": {}}, queues_of={"b": ["q", "z"]})
    r.pause("a", "break")
    r.pause("b", "break")
    r.enqueue(Call("c1", "q"))
    with pytest.raises(QueueInUse) as e:
        r.remove_queue("q")
    assert e.value.reasons == {"calls": ["c1"], "agents": ["b"], "overflow_from": ["spill"]}
    assert "q" in r.queue_names() and r.agent_snapshot("a").queues == ("q", "spill", "z")
    # callers gone, agent b redefined, the overflow removed: now it goes
    r.abandon("c1")
    r.update_agent(AgentConfig("b", queues=["z"]))
    r.update_queue(QueueConfig("spill"))
    assert r.queue_in_use("q") == {}
    r.remove_queue("q")
    assert "q" not in r.queue_names()
    assert r.agent_snapshot("a").queues == ("spill", "z")     # an agent of every queue
    with pytest.raises(UnknownQueue):
        r.remove_queue("q")
    r.unpause("a")
    assert offers(r.enqueue(Call("c2", "z"))) == [("c2", "a")]


def test_a_conversation_of_a_removed_queue_ends_normally():
    r, clock = router(QueueConfig("q", wrap_up=5), QueueConfig("z"), agents={"a": {}})
    r.enqueue(Call("c1", "q"))
    r.offer_answered("c1")
    r.remove_queue("q")             # nobody waits: the answered call is no longer in the line
    clock.t += 60
    ds = r.call_ended("c1")
    rec = [d.record for d in ds if isinstance(d, CallFinished)][0]
    assert rec.queue == "q" and rec.outcome.value == "answered"
    assert r.agent_snapshot("a").state is AgentState.WRAP_UP
    clock.t += 5
    r.tick()
    assert r.agent_snapshot("a").state is AgentState.AVAILABLE


def test_add_queue_then_agents_of_every_queue_serve_it():
    r, clock = router(QueueConfig("q"), agents={"a": {}})
    r.add_queue(QueueConfig("new"))
    assert offers(r.enqueue(Call("c1", "new"))) == [("c1", "a")]


def test_remove_agent_on_a_call_is_refused_and_changes_nothing():
    r, _ = router(QueueConfig("q"), agents={"a": {}})
    r.enqueue(Call("c1", "q"))
    r.offer_answered("c1")
    with pytest.raises(IllegalTransition):
        r.remove_agent("a")
    assert r.agent_snapshot("a").state is AgentState.ON_CALL and "a" in r.agent_ids()


def test_remove_agent_ringing_gives_the_caller_to_another_agent():
    r, clock = router(QueueConfig("q"), agents={"a": {}})
    r.enqueue(Call("c1", "q"))
    r.add_agent(AgentConfig("b"))
    r.login("b")
    ds = r.remove_agent("a")
    assert [(d.call_id, d.agent_id) for d in ds if isinstance(d, CancelOffer)] == [("c1", "a")]
    assert offers(ds) == [("c1", "b")]
    assert "a" not in r.agent_ids()


def test_update_keeps_each_callers_place():
    r, clock = router(QueueConfig("q"), agents={"a": {}})
    r.pause("a", "break")
    for i in range(3):
        r.enqueue(Call(f"c{i}", "q"))
        clock.t += 1
    r.update_queue(dataclasses.replace(r.queue_config("q"), wrap_up=3))
    assert [c.call_id for c in r.queue_snapshot("q").calls] == ["c0", "c1", "c2"]
    assert offers(r.unpause("a")) == [("c0", "a")]
