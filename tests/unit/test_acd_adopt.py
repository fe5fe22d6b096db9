"""Re-admitting calls after a restart: waiting callers keep their place and wait, conversations found on
Asterisk put their agent on the call whatever the fresh state says."""

from __future__ import annotations

import pytest
from test_acd_router import of, offers, setup

from ivr.acd import (
    AgentConfig,
    AgentState,
    Call,
    CallFinished,
    CallOutcome,
    CancelOffer,
    DuplicateId,
    IllegalTransition,
    Offer,
    QueueConfig,
    StartWrapUp,
)


def q(**kw) -> QueueConfig:
    return QueueConfig(name="q", **{"wrap_up": 5, **kw})


def a(aid: str) -> AgentConfig:
    return AgentConfig(aid, endpoint=f"PJSIP/{aid}")


def test_adopted_waiting_calls_rank_ahead_of_new_calls_in_their_original_order():
    r, clock = setup([q()], [a("a1")])
    r.pause("a1", "break")
    r.enqueue(Call("new1", "q"))                       # joined after the restart
    r.enqueue(Call("old1", "q"), waiting_since=clock.t - 50)
    r.enqueue(Call("old2", "q"), waiting_since=clock.t - 20)
    assert r.call_snapshot("old1").position == 1
    assert r.call_snapshot("old2").position == 2
    assert r.call_snapshot("new1").position == 3
    assert r.call_snapshot("old1").wait == pytest.approx(50)
    ds = r.unpause("a1")
    assert offers(ds) == [("old1", "a1")]


def test_adopted_waiting_call_keeps_its_max_wait_and_relaxation_clock():
    r, clock = setup([q(max_wait=60)], [a("a1")])
    r.pause("a1", "break")
    r.enqueue(Call("old", "q"), waiting_since=clock.t - 55)
    assert r.next_deadline() == pytest.approx(clock.t + 5)
    clock.t += 5
    ds = r.tick()
    fin = of(ds, CallFinished)
    assert [f.record.outcome for f in fin] == [CallOutcome.TIMEOUT]
    assert fin[0].record.entered_at == pytest.approx(clock.t - 60)


def test_waiting_since_in_the_future_counts_as_now():
    r, clock = setup([q()], [a("a1")])
    r.pause("a1", "break")
    r.enqueue(Call("c", "q"), waiting_since=clock.t + 100)
    assert r.call_snapshot("c").wait == 0


def test_adopt_conversation_puts_an_available_agent_on_the_call_and_ends_normally():
    r, clock = setup([q()], [a("a1"), a("a2")])
    ds = r.adopt_conversation(Call("c", "q"), "a1", waiting_since=clock.t - 30, answered_at=clock.t - 10)
    assert r.agent_snapshot("a1").state == AgentState.ON_CALL
    assert not offers(ds)
    # a new caller goes to the other agent, not the one talking
    assert offers(r.enqueue(Call("n", "q"))) == [("n", "a2")]
    clock.t += 20
    ds = r.call_ended("c")
    rec = of(ds, CallFinished)[0].record
    assert rec.outcome == CallOutcome.ANSWERED and rec.agent_id == "a1"
    assert rec.answered_at - rec.entered_at == pytest.approx(20)
    assert of(ds, StartWrapUp) and r.agent_snapshot("a1").state == AgentState.WRAP_UP
    clock.t += 5
    r.tick()
    assert r.agent_snapshot("a1").state == AgentState.AVAILABLE


@pytest.mark.parametrize("prepare", ["logged_out", "paused", "wrap_up"])
def test_adopt_conversation_from_any_idle_state(prepare):
    r, clock = setup([q()], [a("a1")], login=prepare != "logged_out")
    if prepare == "paused":
        r.pause("a1", "lunch")
    elif prepare == "wrap_up":
        r.enqueue(Call("x", "q"))
        r.offer_answered("x")
        r.call_ended("x")
        assert r.agent_snapshot("a1").state == AgentState.WRAP_UP
    r.adopt_conversation(Call("c", "q"), "a1", waiting_since=clock.t, answered_at=clock.t)
    assert r.agent_snapshot("a1").state == AgentState.ON_CALL
    clock.t += 100          # a stale wrap-up timer must not end the adopted call's state
    r.tick()
    assert r.agent_snapshot("a1").state == AgentState.ON_CALL


def test_adopt_conversation_withdraws_an_offer_ringing_that_agent():
    r, clock = setup([q()], [a("a1")])
    assert offers(r.enqueue(Call("new", "q"))) == [("new", "a1")]
    ds = r.adopt_conversation(Call("c", "q"), "a1", waiting_since=clock.t, answered_at=clock.t)
    assert [(d.call_id, d.agent_id) for d in of(ds, CancelOffer)] == [("new", "a1")]
    assert r.agent_snapshot("a1").state == AgentState.ON_CALL
    assert r.call_snapshot("new").agent_id is None      # back to waiting, no miss counted
    assert r.agent_snapshot("a1").misses == 0


def test_adopt_conversation_refuses_a_second_call_for_a_talking_agent_and_duplicates():
    r, clock = setup([q()], [a("a1")])
    r.adopt_conversation(Call("c", "q"), "a1", waiting_since=clock.t, answered_at=clock.t)
    with pytest.raises(IllegalTransition):
        r.adopt_conversation(Call("d", "q"), "a1", waiting_since=clock.t, answered_at=clock.t)
    with pytest.raises(DuplicateId):
        r.enqueue(Call("c", "q"))
    assert r.agent_snapshot("a1").state == AgentState.ON_CALL
    assert not any(isinstance(d, Offer) for d in r.call_ended("c"))
