"""Router behaviour with a fake clock: matching, ordering, relaxation, failures, presence, limits."""

from __future__ import annotations

import pytest

from ivr.acd import (
    AgentAutoPaused,
    AgentConfig,
    AgentState,
    Call,
    CallFinished,
    CallOutcome,
    CallRequeued,
    CallState,
    CancelOffer,
    ConfigError,
    DuplicateId,
    ExitOutcome,
    IllegalTransition,
    InvalidCallState,
    Offer,
    QueueConfig,
    QueueExit,
    RelaxationStep,
    Router,
    ServiceLevel,
    StartWrapUp,
    UnknownAgent,
    UnknownCall,
    UnknownQueue,
    queue_from_dict,
)


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def offers(ds) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def of(ds, cls) -> list:
    return [d for d in ds if isinstance(d, cls)]


def setup(queues, agents, *, t: float = 100.0, login=True, **kw):
    clock = Clock(t)
    r = Router(queues, clock, **kw)
    for a in agents:
        r.add_agent(a)
        if login:
            r.login(a.id)
    return r, clock


def busy(r: Router, clock: Clock, agent_id: str, queue: str, cid: str | None = None) -> str:
    """Put an available agent on a call of ``queue`` (pinned to it with a short preference)."""
    cid = cid or f"busy-{agent_id}"
    assert offers(r.enqueue(Call(cid, queue, preferred_agent=agent_id, preferred_until=clock.t + 1))) \
        == [(cid, agent_id)]
    r.offer_answered(cid)
    return cid


Q = QueueConfig("q", required_skills={"x": 2})


# ---------------------------------------------------------------- matching
def test_skill_matching_and_extra_skills():
    r, _ = setup([Q], [AgentConfig("weak", skills={"x": 1}), AgentConfig("nox", skills={"y": 5}),
                       AgentConfig("fr", skills={"x": 2}, languages=frozenset({"fr"}))])
    assert offers(r.enqueue(Call("c1", "q", extra_skills={"lang:de": 1}))) == []
    assert offers(r.enqueue(Call("c2", "q"))) == [("c2", "fr")]
    assert r.call_snapshot("c1").state is CallState.WAITING


def test_best_fit_then_longest_idle_then_id():
    q = QueueConfig("q", required_skills={"x": 1}, optional_skills={"vip": 1})
    r, clock = setup([q], [], t=0.0)
    r.add_agent(AgentConfig("b", skills={"x": 3}))
    r.add_agent(AgentConfig("a", skills={"x": 3}))
    r.add_agent(AgentConfig("c", skills={"x": 3}))
    r.add_agent(AgentConfig("best", skills={"x": 2, "vip": 2}))  # 2 + 1*2 = 4 > 3
    for aid, t in (("c", 90), ("b", 100), ("a", 100), ("best", 110)):
        clock.t = t
        r.login(aid)
    clock.t = 120
    d = r.enqueue(Call("c1", "q"))
    [o] = of(d, Offer)
    assert o.agent_id == "best" and o.explanation.reason.startswith("best skill fit")
    assert [c.agent_id for c in o.explanation.candidates] == ["best", "c", "a", "b"]
    assert o.explanation.n_candidates == 4
    [o] = of(r.enqueue(Call("c2", "q")), Offer)  # equal score 3: c idle since 90 (longest)
    assert o.agent_id == "c" and o.explanation.reason == "longest idle among equal fit"
    [o] = of(r.enqueue(Call("c3", "q")), Offer)  # a and b idle since 100: id tiebreak
    assert o.agent_id == "a" and "tiebreak" in o.explanation.reason
    line = o.explanation.log_line()
    assert "call=c3" in line and "agent=a" in line and "\n" not in line
    assert o.explanation.as_dict()["candidates"][0]["agent_id"] == "a"


def test_priority_then_fifo_within_priority():
    r, clock = setup([Q], [AgentConfig("a", skills={"x": 3})])
    busy(r, clock, "a", "q")
    for i, prio in enumerate([0, 0, 5, 0, 5]):
        clock.t += 1
        r.enqueue(Call(f"c{i}", "q", priority=prio))
    assert [c.call_id for c in r.queue_snapshot("q").calls if c.state is CallState.WAITING] == \
        ["c2", "c4", "c0", "c1", "c3"]
    served = []
    cur = "busy-a"
    for _ in range(5):
        clock.t += 1
        [o] = of(r.call_ended(cur), Offer)
        served.append(o.call_id)
        r.offer_answered(o.call_id)
        cur = o.call_id
    assert served == ["c2", "c4", "c0", "c1", "c3"]


def test_cross_queue_fairness_longest_waiting_across_queues():
    qa = QueueConfig("a", required_skills={"x": 1})
    qb = QueueConfig("b", required_skills={"y": 1})
    r, clock = setup([qa, qb], [AgentConfig("both", skills={"x": 1, "y": 1})])
    r.pause("both", "meeting")
    r.enqueue(Call("b1", "b"))
    clock.t += 1
    r.enqueue(Call("a1", "a"))
    clock.t += 1
    r.enqueue(Call("b2", "b"))
    assert offers(r.unpause("both")) == [("b1", "both")]
    r.offer_answered("b1")
    assert offers(r.call_ended("b1")) == [("a1", "both")]
    r.offer_answered("a1")
    assert offers(r.call_ended("a1")) == [("b2", "both")]


def test_queue_priority_orders_calls_across_queues():
    low = QueueConfig("low", required_skills={"x": 1})
    high = QueueConfig("high", required_skills={"x": 1}, priority=2)
    r, clock = setup([low, high], [AgentConfig("a", skills={"x": 1})])
    r.pause("a", "x")
    r.enqueue(Call("l1", "low", priority=1))
    clock.t += 1
    r.enqueue(Call("h1", "high"))
    assert offers(r.unpause("a")) == [("h1", "a")]


# ---------------------------------------------------------------- relaxation
RELAX = QueueConfig(
    "r", required_skills={"support": 4}, optional_skills={"vip": 1},
    relaxation=(RelaxationStep(30, drop_skills=frozenset({"vip"})), RelaxationStep(90, min_proficiency=2),
                RelaxationStep(180, add_alternative={"generalist": 1})))


def test_relaxation_steps_apply_to_waiting_calls():
    r, clock = setup([RELAX], [AgentConfig("mid", skills={"support": 2}),
                               AgentConfig("gen", skills={"generalist": 3})], t=0.0)
    assert r.enqueue(Call("c1", "r")) == [] and r.next_deadline() == 30
    clock.t = 30
    assert offers(r.tick()) == [] and r.call_snapshot("c1").step == 1
    assert r.next_deadline() == 90
    clock.t = 89.9
    assert offers(r.tick()) == []
    clock.t = 90
    [o] = of(r.tick(), Offer)
    assert (o.call_id, o.agent_id) == ("c1", "mid")
    assert o.explanation.step == 2 and "min_proficiency=2" in o.explanation.step_description
    assert o.explanation.trigger == "relaxation" and o.explanation.requirement == "support>=2"
    r.offer_answered("c1")
    # A second call waits for the alternative group at 180 s ("mid" is busy).
    clock.t = 100
    r.enqueue(Call("c2", "r", extra_skills={}))
    clock.t = 279.99
    assert offers(r.tick()) == []
    clock.t = 280
    assert offers(r.tick()) == [("c2", "gen")]


def test_relaxation_is_evaluated_at_decision_time_when_agent_frees():
    r, clock = setup([RELAX], [AgentConfig("mid", skills={"support": 2})], t=0.0)
    r.pause("mid", "break")
    r.enqueue(Call("old", "r"))
    clock.t = 50
    r.enqueue(Call("new", "r"))
    clock.t = 95  # old waited 95 s (step 2), new 45 s (step 1): only old is eligible for "mid"
    assert offers(r.unpause("mid")) == [("old", "mid")]


def test_tick_late_still_matches_everything():
    r, clock = setup([RELAX], [AgentConfig("mid", skills={"support": 2})], t=0.0)
    r.enqueue(Call("c1", "r"))
    clock.t = 500  # the adapter ticked late: every step is processed, the call still gets the agent
    assert offers(r.tick()) == [("c1", "mid")]


# ---------------------------------------------------------------- offer failures
def test_ring_no_answer_requeues_to_original_place_and_tries_next_agent():
    r, clock = setup([Q], [AgentConfig("a", skills={"x": 5}), AgentConfig("b", skills={"x": 2})])
    r.pause("b", "coffee")
    assert offers(r.enqueue(Call("c1", "q"))) == [("c1", "a")]
    clock.t += 1
    r.enqueue(Call("c2", "q"))
    clock.t += 1
    r.enqueue(Call("c3", "q", priority=1))  # more senior than c2, less than... c1 has priority 0 too
    clock.t += 5
    d = r.offer_failed("c1")
    # a missed; c1 is back at its place (before c2); a rests for the queue's retry (2 s), then (the only
    # available agent) gets c3 (priority 1)
    assert of(d, CallRequeued)[0].call_id == "c1"
    assert offers(d) == []
    assert r.agent_snapshot("a").resting and r.agent_snapshot("a").state is AgentState.AVAILABLE
    assert r.next_deadline() == clock.t + 2
    clock.t += 2
    assert offers(r.tick()) == [("c3", "a")]
    order = [c.call_id for c in r.queue_snapshot("q").calls]
    assert order == ["c3", "c1", "c2"]
    assert r.agent_snapshot("a").misses == 1
    # b comes back: gets c1 (original place), not c2
    assert offers(r.unpause("b")) == [("c1", "b")]


def test_missed_agent_is_ranked_last_for_that_call():
    q = QueueConfig("q", required_skills={"x": 2}, retry=0)   # no rest: the missed agent is a candidate
    r, _ = setup([q], [AgentConfig("star", skills={"x": 5}), AgentConfig("ok", skills={"x": 2})])
    assert offers(r.enqueue(Call("c1", "q"))) == [("c1", "star")]
    d = r.offer_failed("c1")
    [o] = of(d, Offer)
    assert o.agent_id == "ok" and o.explanation.reason == "the others already missed this call"
    assert o.explanation.trigger == "requeued"


def test_single_agent_gets_the_call_again_until_auto_paused():
    q = QueueConfig("q", required_skills={"x": 1}, max_misses=2)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1}), AgentConfig("b", skills={"x": 1})])
    r.pause("b", "lunch")
    r.enqueue(Call("c1", "q"))
    assert offers(r.offer_failed("c1")) == []             # a rests for the queue's retry...
    clock.t += 2
    assert offers(r.tick()) == [("c1", "a")]              # ...then, the only agent left, is rung again
    d = r.offer_failed("c1")
    assert of(d, AgentAutoPaused)[0].agent_id == "a" and of(d, AgentAutoPaused)[0].reason == "no-answer"
    snap = r.agent_snapshot("a")
    assert snap.state is AgentState.PAUSED and snap.pause_reason == "no-answer" and snap.misses == 0
    assert offers(d) == []
    assert r.queue_snapshot("q").paused_by_reason == {"no-answer": 1, "lunch": 1}
    assert offers(r.unpause("b")) == [("c1", "b")]
    r.offer_answered("c1")
    [fin] = of(r.call_ended("c1"), CallFinished)
    assert fin.record.rona_count == 2 and fin.record.offers == 3 and fin.record.agent_id == "b"


def test_answer_resets_misses_and_agent_override_of_max_misses():
    q = QueueConfig("q", required_skills={"x": 1}, max_misses=5)
    r, _ = setup([q], [AgentConfig("a", skills={"x": 1}, max_misses=1)])
    r.enqueue(Call("c1", "q"))
    d = r.offer_failed("c1")
    assert of(d, AgentAutoPaused)  # agent override (1) wins over the queue's 5
    r2, clock = setup([q], [AgentConfig("a", skills={"x": 1})])
    r2.enqueue(Call("c1", "q"))
    r2.offer_failed("c1")
    assert r2.agent_snapshot("a").misses == 1
    clock.t += 2
    assert offers(r2.tick()) == [("c1", "a")]
    r2.offer_answered("c1")
    assert r2.agent_snapshot("a").misses == 0


def test_not_agent_fault_failure_counts_no_miss():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2})])
    r.enqueue(Call("c1", "q"))
    r.offer_failed("c1", "congestion", agent_fault=False)
    assert r.agent_snapshot("a").misses == 0


def test_router_fails_a_forgotten_offer_after_ring_timeout_plus_grace():
    q = QueueConfig("q", required_skills={"x": 1}, ring_timeout=10)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1})], offer_grace=2)
    r.enqueue(Call("c1", "q"))
    assert r.next_deadline() == clock.t + 12
    clock.t += 12
    d = r.tick()
    assert of(d, CancelOffer)[0].reason == "ring-timeout"
    assert offers(d) == []  # only agent: rung again after the queue's retry, with one miss
    assert r.agent_snapshot("a").misses == 1
    clock.t += 2
    assert offers(r.tick()) == [("c1", "a")]
    r.offer_answered("c1")
    with pytest.raises(InvalidCallState):  # a late duplicate answer is refused, nothing changes
        r.offer_answered("c1")


def test_retry_paces_offers_to_an_agent_whose_offer_just_failed():
    """A phone that fails at once (503, unreachable, ARI trouble) is not rung in a tight loop: after any
    failed offer the agent rests for the queue's ``retry`` seconds (state unchanged), others are tried."""
    q = QueueConfig("q", required_skills={"x": 1}, retry=3, max_misses=99)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 5}), AgentConfig("b", skills={"x": 1})])
    r.pause("b", "coffee")
    r.enqueue(Call("c1", "q"))
    assert offers(r.offer_failed("c1", "congestion", agent_fault=False)) == []
    snap = r.agent_snapshot("a")
    assert snap.resting and snap.state is AgentState.AVAILABLE and snap.misses == 0
    assert not r.is_eligible("a", "c1")
    assert offers(r.unpause("b")) == [("c1", "b")]       # another agent takes it meanwhile
    clock.t += 1
    r.offer_failed("c1", "busy")                           # b fails too: both rest now
    clock.t += 1.9
    assert offers(r.tick()) == []
    clock.t += 0.1
    assert offers(r.tick()) == [("c1", "a")]               # a's rest is over (b's is not)
    assert not r.agent_snapshot("a").resting and r.agent_snapshot("b").resting


def test_a_rest_survives_a_pause_and_ends_on_time():
    q = QueueConfig("q", required_skills={"x": 1}, retry=5)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1})])
    r.enqueue(Call("c1", "q"))
    r.offer_failed("c1")
    r.pause("a", "coffee")
    clock.t += 1
    assert offers(r.unpause("a")) == []                    # unpaused, still resting
    clock.t += 4
    assert offers(r.tick()) == [("c1", "a")]
    r2, clock2 = setup([q], [AgentConfig("a", skills={"x": 1})])
    r2.enqueue(Call("c1", "q"))
    r2.offer_failed("c1")
    r2.pause("a", "coffee")
    clock2.t += 6                                          # the rest ended during the pause
    assert offers(r2.tick()) == [] and not r2.agent_snapshot("a").resting
    assert offers(r2.unpause("a")) == [("c1", "a")]


def test_retry_zero_offers_again_at_once_and_a_withdrawn_offer_never_rests():
    q = QueueConfig("q", required_skills={"x": 1}, retry=0)
    r, _ = setup([q], [AgentConfig("a", skills={"x": 1})])
    r.enqueue(Call("c1", "q"))
    assert offers(r.offer_failed("c1")) == [("c1", "a")]
    q2 = QueueConfig("q", required_skills={"x": 1}, retry=5)
    r2, _ = setup([q2], [AgentConfig("a", skills={"x": 1})])
    r2.enqueue(Call("c1", "q"))
    r2.set_registered("a", False)                          # withdrawn: not a failure, no rest
    assert offers(r2.set_registered("a", True)) == [("c1", "a")]


def test_retry_is_validated():
    with pytest.raises(ConfigError, match="retry"):
        QueueConfig("q", retry=-1)
    assert queue_from_dict({"name": "q", "retry": 0.5}).retry == 0.5


# ---------------------------------------------------------------- abandon, wrap-up
def test_abandon_while_waiting_and_short_abandon_flag():
    q = QueueConfig("q", required_skills={"x": 1}, short_abandon=5)
    r, clock = setup([q], [])
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "q"))
    clock.t += 4
    [fin] = of(r.abandon("c1"), CallFinished)
    assert fin.record.outcome is CallOutcome.ABANDONED and fin.record.short_abandon
    clock.t += 10
    [fin] = of(r.abandon("c2"), CallFinished)
    assert not fin.record.short_abandon and fin.record.wait_time == 14
    stats = r.queue_snapshot("q").stats
    assert (stats.abandoned, stats.short_abandoned) == (2, 1)
    with pytest.raises(UnknownCall):
        r.abandon("c1")


def test_abandon_while_ringing_cancels_the_leg_and_frees_the_agent():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2})])
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "q"))
    d = r.abandon("c1")
    assert of(d, CancelOffer) == [CancelOffer("c1", "a", "abandoned")]
    assert offers(d) == [("c2", "a")]
    assert d.index(of(d, CancelOffer)[0]) < d.index(of(d, Offer)[0])
    assert r.agent_snapshot("a").misses == 0


def test_wrap_up_queue_time_agent_override_and_early_ready():
    q = QueueConfig("q", required_skills={"x": 1}, wrap_up=30)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1}), AgentConfig("b", skills={"x": 1}, wrap_up=5)])
    busy(r, clock, "a", "q", "c1")
    busy(r, clock, "b", "q", "c2")
    r.enqueue(Call("c3", "q"))
    clock.t += 60
    d = r.call_ended("c1")
    assert of(d, StartWrapUp) == [StartWrapUp("a", 30, clock.t + 30)] and offers(d) == []
    assert of(d, CallFinished)[0].record.outcome is CallOutcome.ANSWERED
    d = r.call_ended("c2")
    assert of(d, StartWrapUp)[0].seconds == 5
    assert r.next_deadline() == clock.t + 5
    clock.t += 5
    assert offers(r.tick()) == [("c3", "b")]
    assert offers(r.wrap_up_done("a")) == []
    assert r.agent_snapshot("a").state is AgentState.AVAILABLE
    with pytest.raises(IllegalTransition):
        r.wrap_up_done("a")


def test_zero_wrap_up_goes_straight_to_available():
    r, clock = setup([Q], [AgentConfig("a", skills={"x": 2})])
    busy(r, clock, "a", "q", "c1")
    r.enqueue(Call("c2", "q"))
    d = r.call_ended("c1")
    assert of(d, StartWrapUp) == [] and offers(d) == [("c2", "a")]


# ---------------------------------------------------------------- preferred agent
def test_preferred_agent_until_deadline_then_anyone():
    r, clock = setup([Q], [AgentConfig("pref", skills={"x": 2}), AgentConfig("other", skills={"x": 2})])
    busy(r, clock, "pref", "q")
    d = r.enqueue(Call("c1", "q", preferred_agent="pref", preferred_until=clock.t + 20))
    assert offers(d) == []  # "other" is available but may not take it yet
    assert r.call_snapshot("c1").preferred_agent == "pref"
    assert r.next_deadline() == clock.t + 20
    clock.t += 20
    [o] = of(r.tick(), Offer)
    assert o.agent_id == "other" and "expired" in o.explanation.preference


def test_preferred_agent_takes_it_when_free_before_deadline():
    r, clock = setup([Q], [AgentConfig("pref", skills={"x": 2}), AgentConfig("other", skills={"x": 2})])
    busy(r, clock, "pref", "q", "c0")
    busy(r, clock, "other", "q", "c9")
    r.enqueue(Call("c1", "q", preferred_agent="pref", preferred_until=clock.t + 60))
    r.enqueue(Call("c2", "q"))
    assert offers(r.call_ended("c9")) == [("c2", "other")]  # other skips the pinned call
    [o] = of(r.call_ended("c0"), Offer)
    assert (o.call_id, o.agent_id, o.explanation.reason) == ("c1", "pref", "preferred agent")


def test_preference_skipped_at_once_when_agent_logged_out_or_unregistered():
    r, clock = setup([Q], [AgentConfig("pref", skills={"x": 2}), AgentConfig("other", skills={"x": 2})])
    r.logout("pref")
    [o] = of(r.enqueue(Call("c1", "q", preferred_agent="pref", preferred_until=clock.t + 60)), Offer)
    assert o.agent_id == "other" and "skipped: logged out" in o.explanation.preference
    # while waiting: the preferred agent's phone drops -> preference dropped now, not at the deadline
    r.login("pref")
    busy(r, clock, "pref", "q", "p1")
    r.enqueue(Call("c2", "q", preferred_agent="pref", preferred_until=clock.t + 60))
    r.offer_answered("c1")
    assert offers(r.call_ended("c1")) == []  # other is free but c2 is pinned to pref
    [o] = of(r.set_registered("pref", False), Offer)
    assert (o.call_id, o.agent_id) == ("c2", "other") and "unregistered" in o.explanation.preference


# ---------------------------------------------------------------- presence and agent ops
def test_unregistered_agent_is_never_offered_and_keeps_state():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2})])
    r.set_registered("a", False)
    assert offers(r.enqueue(Call("c1", "q"))) == []
    assert r.agent_snapshot("a").state is AgentState.AVAILABLE
    assert r.queue_snapshot("q").unregistered == 1
    assert offers(r.set_registered("a", True)) == [("c1", "a")]
    d = r.set_registered("a", False)  # phone drops while ringing: offer failed, no miss, state kept
    assert of(d, CancelOffer) == [CancelOffer("c1", "a", "unregistered")] and of(d, CallRequeued)
    snap = r.agent_snapshot("a")
    assert snap.state is AgentState.AVAILABLE and snap.misses == 0 and not snap.registered
    r.pause("a", "lunch")
    r.set_registered("a", True)
    assert r.agent_snapshot("a").state is AgentState.PAUSED  # registering restores nothing else


def test_pause_or_logout_while_ringing_requeues_to_another_agent():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2}), AgentConfig("b", skills={"x": 2})])
    r.pause("b", "x")
    r.enqueue(Call("c1", "q"))
    r.unpause("b")
    d = r.pause("a", "toilet")
    assert of(d, CancelOffer) == [CancelOffer("c1", "a", "agent-paused")] and offers(d) == [("c1", "b")]
    d = r.logout("b")
    assert of(d, CancelOffer)[0].reason == "agent-logged-out" and offers(d) == []
    assert r.call_snapshot("c1").position == 1


def test_logout_while_on_call_is_illegal_and_changes_nothing():
    r, clock = setup([Q], [AgentConfig("a", skills={"x": 2})])
    busy(r, clock, "a", "q", "c1")
    with pytest.raises(IllegalTransition):
        r.logout("a")
    with pytest.raises(IllegalTransition):
        r.remove_agent("a")
    with pytest.raises(IllegalTransition):
        r.pause("a", "x")
    assert r.agent_snapshot("a").state is AgentState.ON_CALL
    with pytest.raises(IllegalTransition):
        r.login("a")


def test_update_and_remove_agent():
    r, _ = setup([Q], [AgentConfig("a", skills={"y": 2})])
    r.enqueue(Call("c1", "q"))
    assert offers(r.update_agent(AgentConfig("a", skills={"x": 3}))) == [("c1", "a")]
    d = r.remove_agent("a")  # while ringing: withdrawn and requeued
    assert of(d, CancelOffer) and r.call_snapshot("c1").state is CallState.WAITING
    with pytest.raises(UnknownAgent):
        r.agent_snapshot("a")


def test_agent_queue_membership():
    qa, qb = QueueConfig("a"), QueueConfig("b")
    r, _ = setup([qa, qb], [AgentConfig("only_b", queues=frozenset({"b"}))])
    assert offers(r.enqueue(Call("c1", "a"))) == []
    assert offers(r.enqueue(Call("c2", "b"))) == [("c2", "only_b")]
    with pytest.raises(UnknownQueue):
        r.add_agent(AgentConfig("z", queues=frozenset({"nope"})))


# ---------------------------------------------------------------- limits
def test_max_wait_timeout_with_target():
    q = QueueConfig("q", required_skills={"x": 1}, max_wait=60, on_timeout="voicemail")
    r, clock = setup([q], [], t=0.0)
    r.enqueue(Call("c1", "q"))
    assert r.next_deadline() == 60
    clock.t = 60
    d = r.tick()
    assert of(d, QueueExit) == [QueueExit("c1", "q", ExitOutcome.TIMEOUT, "voicemail")]
    assert of(d, CallFinished)[0].record.outcome is CallOutcome.TIMEOUT
    assert r.queue_snapshot("q").stats.timeouts == 1


def test_timeout_while_ringing_ends_after_failed_offer_but_not_if_answered():
    q = QueueConfig("q", required_skills={"x": 1}, max_wait=60, ring_timeout=30)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1})], t=0.0)
    r.pause("a", "x")
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "q"))
    clock.t = 50
    r.unpause("a")  # rings c1
    clock.t = 61
    assert of(r.tick(), QueueExit) == [QueueExit("c2", "q", ExitOutcome.TIMEOUT, None)]
    d = r.offer_failed("c1")
    assert of(d, QueueExit)[0].outcome is ExitOutcome.TIMEOUT and of(d, CallRequeued) == []


def test_max_length_full():
    q = QueueConfig("q", required_skills={"x": 1}, max_length=2, on_full="busy")
    r, _ = setup([q], [])
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "q"))
    d = r.enqueue(Call("c3", "q"))
    assert of(d, QueueExit) == [QueueExit("c3", "q", ExitOutcome.FULL, "busy")]
    assert of(d, CallFinished)[0].record.outcome is CallOutcome.FULL
    with pytest.raises(UnknownCall):
        r.call_snapshot("c3")
    r.abandon("c1")
    assert of(r.enqueue(Call("c3", "q")), QueueExit) == []


def test_join_empty_false_refuses_when_nobody_could_ever_serve():
    q = queue_from_dict({"name": "q", "required_skills": {"x": 3}, "join_empty": False,
                         "relaxation": [{"after": 60, "min_proficiency": 1}], "on_no_agents": "closed"})
    r, _ = setup([q], [AgentConfig("weak", skills={"x": 1})], login=False)
    d = r.enqueue(Call("c1", "q"))  # weak is logged out
    assert of(d, QueueExit) == [QueueExit("c1", "q", ExitOutcome.NO_AGENTS, "closed")]
    r.login("weak")
    r.pause("weak", "lunch")  # paused still counts: it could serve after relaxation
    assert of(r.enqueue(Call("c2", "q")), QueueExit) == []
    assert of(r.enqueue(Call("c3", "q", extra_skills={"lang:it": 1})), QueueExit)[0].outcome \
        is ExitOutcome.NO_AGENTS
    default = QueueConfig("d", required_skills={"x": 1})
    r2, _ = setup([default], [])
    assert of(r2.enqueue(Call("c1", "d")), QueueExit) == []  # join_empty defaults to true


def test_leave_when_empty_on_last_capable_agent_logout():
    q = QueueConfig("q", required_skills={"x": 1}, leave_when_empty=True)
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1}), AgentConfig("b", skills={"x": 1})])
    busy(r, clock, "a", "q", "ca")
    busy(r, clock, "b", "q", "cb")
    r.enqueue(Call("w1", "q"))
    r.enqueue(Call("w2", "q"))
    r.call_ended("ca")
    r.offer_answered("w1")
    r.call_ended("w1")
    assert of(r.logout("a"), QueueExit) == []  # b (on a call) could still serve
    r.call_ended("cb")  # b takes w2
    r.offer_answered("w2")
    r.enqueue(Call("w3", "q"))
    assert of(r.set_registered("b", False), QueueExit) == []  # on call: w3 leaves once b is gone
    r.call_ended("w2")
    d = r.logout("b")
    assert of(d, QueueExit) == [QueueExit("w3", "q", ExitOutcome.NO_AGENTS, None)]


# ---------------------------------------------------------------- records, snapshots, errors
def test_call_record_of_an_answered_call():
    q = QueueConfig("q", required_skills={"x": 1}, service_level=ServiceLevel(80, 20))
    r, clock = setup([q], [AgentConfig("a", skills={"x": 1})], t=0.0)
    r.pause("a", "x")
    r.enqueue(Call("c1", "q", priority=3))
    clock.t = 10
    r.unpause("a")
    clock.t = 15
    r.offer_answered("c1")
    clock.t = 75
    [fin] = of(r.call_ended("c1"), CallFinished)
    rec = fin.record
    assert (rec.entered_at, rec.offered_at, rec.answered_at, rec.ended_at) == (0, 10, 15, 75)
    assert rec.agent_id == "a" and rec.priority == 3 and rec.within_service_level and rec.rona_count == 0
    assert rec.wait_time == 15 and rec.talk_time == 60 and rec.as_dict()["outcome"] == "answered"
    st = r.queue_snapshot("q").stats
    assert st.answered == 1 and st.service_level_pct == 100.0 and st.avg_hold_time == 15


def _center_with_a_call_on_and_one_waiting():
    """Ann on call c0, b paused for training, c1 waiting since t=10 (now t=10)."""
    r, clock = setup([Q], [AgentConfig("a", name="Ann", skills={"x": 2}), AgentConfig("b", skills={"x": 2})],
                     t=0.0)
    r.pause("b", "training")
    busy(r, clock, "a", "q", "c0")
    clock.t = 10
    r.enqueue(Call("c1", "q"))
    return r, clock


def test_snapshots():
    r, clock = _center_with_a_call_on_and_one_waiting()
    clock.t = 12
    r.enqueue(Call("c2", "q", priority=1))
    clock.t = 20
    snap = r.queue_snapshot("q")
    assert [(c.call_id, c.position, c.wait) for c in snap.calls] == [("c2", 1, 8), ("c1", 2, 10)]
    assert snap.waiting == 2 and snap.longest_wait == 10
    assert snap.agents_by_state["on_call"] == 1 and snap.agents_by_state["paused"] == 1
    assert snap.paused_by_reason == {"training": 1}
    assert r.call_snapshot("c1").position == 2 and r.call_snapshot("c0").position is None
    a = r.agent_snapshot("a")
    assert a.state is AgentState.ON_CALL and a.call_id == "c0" and a.name == "Ann"
    assert snap.as_dict()["calls"][0]["state"] == "waiting"
    assert [s.agent_id for s in r.agents_snapshot()] == ["a", "b"]
    assert r.is_eligible("b", "c1") is False  # paused
    r.unpause("b")  # takes c2


def test_snapshot_as_dict_equals_dataclasses_asdict_made_plain():
    """``as_dict`` skips ``asdict``'s deep copies (hot: every agent state change is pushed to its page); the
    result must be the same plain data, nested queue snapshots and stats included."""
    from dataclasses import asdict

    from ivr.acd.views import _plain

    def old_way(x):
        def plain(v):
            if isinstance(v, (AgentState, CallState)):
                return v.value
            if isinstance(v, dict):
                return {k: plain(y) for k, y in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(y) for y in v]
            return v
        return plain(asdict(x))

    r, clock = _center_with_a_call_on_and_one_waiting()
    clock.t = 20
    snaps = [r.queue_snapshot("q"), r.call_snapshot("c1"), r.call_snapshot("c0"), *r.agents_snapshot()]
    for snap in snaps:
        assert snap.as_dict() == old_way(snap) and _plain(snap) == snap.as_dict()
    q = r.queue_snapshot("q").as_dict()
    assert q["calls"][0]["state"] == "waiting" and isinstance(q["stats"], dict)


def test_errors_leave_router_unchanged():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2})])
    with pytest.raises(UnknownQueue):
        r.enqueue(Call("c1", "nope"))
    r.pause("a", "x")
    r.enqueue(Call("c1", "q"))
    with pytest.raises(DuplicateId):
        r.enqueue(Call("c1", "q"))
    with pytest.raises(DuplicateId):
        r.add_agent(AgentConfig("a"))
    with pytest.raises(InvalidCallState):
        r.offer_answered("c1")
    with pytest.raises(InvalidCallState):
        r.offer_failed("c1")
    with pytest.raises(UnknownAgent):
        r.login("zz")
    with pytest.raises(ValueError):
        r.pause("a", "")
    assert r.call_snapshot("c1").state is CallState.WAITING
    assert offers(r.unpause("a")) == [("c1", "a")]


def test_call_ended_before_answer_is_an_abandon_and_vice_versa():
    r, clock = setup([Q], [AgentConfig("a", skills={"x": 2})])
    r.enqueue(Call("c1", "q"))
    d = r.call_ended("c1")  # ringing: treated as abandon
    assert of(d, CancelOffer) and of(d, CallFinished)[0].record.outcome is CallOutcome.ABANDONED
    busy(r, clock, "a", "q", "c2")
    d = r.abandon("c2")  # answered: treated as call_ended
    assert of(d, CallFinished)[0].record.outcome is CallOutcome.ANSWERED


def test_withdraw_is_overflow():
    r, _ = setup([Q], [AgentConfig("a", skills={"x": 2})])
    r.enqueue(Call("c1", "q"))
    d = r.withdraw("c1")
    assert of(d, CancelOffer) and of(d, CallFinished)[0].record.outcome is CallOutcome.OVERFLOW
    assert r.agent_snapshot("a").state is AgentState.AVAILABLE


def test_never_two_offers_to_one_agent_nor_one_call_to_two_agents():
    r, _ = setup([Q], [AgentConfig(f"a{i}", skills={"x": 2}) for i in range(3)])
    ds = []
    for i in range(6):
        ds += r.enqueue(Call(f"c{i}", "q"))
    pairs = offers(ds)
    assert len(pairs) == 3 and len({a for _, a in pairs}) == 3 and len({c for c, _ in pairs}) == 3


def test_next_deadline_none_when_idle_and_update_agent_drops_preference():
    qa, qb = QueueConfig("a"), QueueConfig("b")
    r, clock = setup([qa, qb], [AgentConfig("p"), AgentConfig("o")])
    assert r.next_deadline() is None
    busy(r, clock, "p", "a", "pc")
    busy(r, clock, "o", "a", "oc")
    r.enqueue(Call("c1", "b", preferred_agent="p", preferred_until=clock.t + 60))
    assert r.call_snapshot("c1").preferred_agent == "p"
    r.update_agent(AgentConfig("p", queues=frozenset({"a"})))  # p no longer serves b
    assert r.call_snapshot("c1").preferred_agent is None
    [o] = of(r.call_ended("oc"), Offer)
    assert o.call_id == "c1" and "no longer serves" in o.explanation.preference


def test_explanation_line_mentions_relaxation_and_preference():
    r, clock = setup([RELAX], [AgentConfig("mid", skills={"support": 2})], t=0.0)
    r.enqueue(Call("c1", "r", preferred_agent="ghost", preferred_until=50))
    clock.t = 90
    [o] = of(r.tick(), Offer)
    line = o.explanation.log_line()
    assert "relax='step 2 (after 90s: min_proficiency=2)'" in line
    assert "pref='preferred agent ghost skipped: unknown agent'" in line
    assert o.explanation.as_dict()["step"] == 2
