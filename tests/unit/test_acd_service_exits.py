"""Every way out of the ACD hands a caller who is still there back to its flow, through one place (the
router's CallFinished): flow max_wait (waiting or ringing), the agent hanging up (the caller stays: the
flow's on_answered, or the flow hangs up), refusals; the caller hanging up or a failed bridge hand nothing
back. And a flow's optional skills reach the router and the saved queue state."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from ivr.acd import AgentState
from ivr.ari import AriError, Channel, StasisEnd, StasisStart
from ivr.calls.saved_state import QUEUE_VAR, QueueState
from ivr.calls import adoption
from ivr.calls.events import MaxWaitDue, MusicDue
from ivr.flow import Enqueue
from tests.unit.test_acd_service_faults import make_service


def session(cid: str):
    s = SimpleNamespace(channel_id=cid, caller_raw="+447700900123", customer_name=lambda: "",
                        channel=SimpleNamespace(caller=SimpleNamespace(name="")), hints=None,
                        flow_name="support", did="100", screen_pop=dict, e164=None, outcome="ivr",
                        agent_id=None, queue_wait=0.0, closed=False, results=[])
    s.queue_outcome = s.results.append
    return s


async def _adopt_waiting(acd, channel, state):
    deps = adoption.AdoptionDeps(acd.ari, acd.clock, lambda ch, st: session(ch.id))
    await adoption.adopt_waiting(acd, deps, channel, state)


def pause_all(acd):
    for aid in acd.router.agent_ids():
        acd.router.pause(aid, "lunch")


def run(coro):
    asyncio.run(coro)


def test_flow_max_wait_while_waiting_goes_back_to_the_flow_as_timeout():
    async def go():
        app, acd = make_service()
        pause_all(acd)
        s = session("c1")
        await acd.enqueue(s, Enqueue("technical", max_wait=60))
        assert acd.calls["c1"].moh
        await acd.on_event(MaxWaitDue(key="c1"))
        assert s.results == ["timeout"] and s.outcome == "timeout"
        assert not acd.calls and acd.router.queue_snapshot("technical").waiting == 0
        assert ("moh_stop", ("c1",)) in app.ari.calls
        assert ("set_var", ("c1", QUEUE_VAR, "")) in app.ari.calls     # a restart must not re-queue it
        assert acd.router.queue_snapshot("technical").stats.overflow == 1
    run(go())


def test_flow_max_wait_while_an_agent_rings_cancels_the_leg_and_goes_back_to_the_flow():
    async def go():
        app, acd = make_service()
        s = session("c1")
        await acd.enqueue(s, Enqueue("technical", max_wait=60))
        qc = acd.calls["c1"]
        leg = qc.leg_id
        assert leg and acd.router.agent_snapshot(qc.agent_id).state == AgentState.RESERVED
        await acd.on_event(MaxWaitDue(key="c1"))
        assert s.results == ["timeout"]
        assert ("hangup_quietly", (leg,)) in app.ari.calls and leg not in acd.legs
        assert acd.router.agent_snapshot(qc.agent_id).state == AgentState.AVAILABLE
    run(go())


async def _answered(app, acd, s):
    await acd.enqueue(s, Enqueue("billing"))
    qc = acd.calls[s.channel_id]
    await acd.on_stasis_start(StasisStart(type="StasisStart", channel=Channel(qc.leg_id),
                                          args=("agent", s.channel_id)))
    assert qc.bridge_id
    return qc


def _saved_on_caller(app, cid):
    return [a[2] for n, a in app.ari.calls if n == "set_var" and a[:2] == (cid, QUEUE_VAR)]


def test_a_call_answered_at_once_carries_its_queue_state_on_the_agent_leg_only():
    async def go():
        app, acd = make_service()
        s = session("c1")
        qc = await _answered(app, acd, s)
        (kw,) = [kw for n, kw in app.ari.keywords if n == "originate"]
        state = QueueState.decode(kw["variables"][QUEUE_VAR])
        assert state.queue == "billing" and state.flow == "support"
        await acd.on_event(MusicDue(key="c1"))        # answered before it fired (cancelled on Asterisk's clock)
        await acd.on_channel_gone(StasisEnd(type="StasisEnd", channel=Channel(qc.leg_id)))
        assert s.results == ["answered"]
        assert _saved_on_caller(app, "c1") == []       # nothing saved on the caller, so nothing to clear
    run(go())


def test_a_caller_whose_agent_does_not_answer_at_once_carries_its_queue_state():
    async def go():
        app, acd = make_service()
        s = session("c1")
        await acd.enqueue(s, Enqueue("billing"))
        qc = acd.calls["c1"]
        assert qc.leg_id and _saved_on_caller(app, "c1") == []
        await acd.on_event(MusicDue(key="c1"))          # MUSIC_DELAY later, the phone still rings
        (saved,) = _saved_on_caller(app, "c1")
        assert QueueState.decode(saved).encode() == qc.saved.encode() and qc.persisted
        app.ari.keywords.clear()
        await acd.on_channel_gone(StasisEnd(type="StasisEnd", channel=Channel(qc.leg_id)))   # no answer
        for _, kw in app.ari.keywords:                  # the next leg need not carry it any more
            assert not (kw.get("variables") or {}).get(QUEUE_VAR)
    run(go())


def test_a_caller_whose_agent_leg_fails_at_once_carries_its_queue_state():
    async def go():
        app, acd = make_service()
        app.ari.fail["originate"] = AriError("POST", "/channels", 400, "Bad Request")
        s = session("c1")
        await acd.enqueue(s, Enqueue("billing"))
        qc = acd.calls["c1"]
        (saved,) = _saved_on_caller(app, "c1")[:1]
        assert QueueState.decode(saved).queue == "billing" and qc.persisted and qc.moh
    run(go())


def test_the_agent_hanging_up_leaves_the_caller_to_the_flow_as_answered():
    async def go():
        app, acd = make_service()
        s = session("c1")
        await acd.enqueue(s, Enqueue("billing"))
        await acd.on_event(MusicDue(key="c1"))          # the agent took a moment: the caller's state is saved
        qc = acd.calls["c1"]
        await acd.on_stasis_start(StasisStart(type="StasisStart", channel=Channel(qc.leg_id),
                                              args=("agent", "c1")))
        assert qc.bridge_id
        app.ari.calls.clear()
        await acd.on_channel_gone(StasisEnd(type="StasisEnd", channel=Channel(qc.leg_id)))
        assert s.results == ["answered"] and s.outcome == "answered"
        assert ("hangup_quietly", ("c1",)) not in app.ari.calls      # the flow decides
        assert ("destroy_bridge", ("call-c1",)) in app.ari.calls
        assert ("set_var", ("c1", QUEUE_VAR, "")) in app.ari.calls
        assert not acd.calls and not acd.legs
        assert acd.router.agent_snapshot(qc.agent_id).state == AgentState.WRAP_UP
    run(go())


def test_the_caller_hanging_up_or_a_failed_bridge_hands_nothing_back():
    async def go():
        app, acd = make_service()
        s = session("c1")
        qc = await _answered(app, acd, s)
        s.closed = True
        await acd.caller_gone(s)
        assert s.results == [] and ("hangup_quietly", (qc.leg_id,)) in app.ari.calls
        s2 = session("c2")
        await acd.enqueue(s2, Enqueue("billing"))
        qc2 = acd.calls["c2"]
        await acd.end_conversation(qc2, by="error")
        assert s2.results == [] and ("hangup_quietly", ("c2",)) in app.ari.calls
    run(go())


def test_a_refused_caller_goes_back_to_the_flow_once():
    async def go():
        app, acd = make_service()
        for q in acd.router._queues.values():
            object.__setattr__(q.config, "max_length", 0)
        s = session("c1")
        await acd.enqueue(s, Enqueue("billing"))
        assert s.results == ["full"] and not acd.calls
        assert not any(c[0] in ("moh_start", "set_var") for c in app.ari.calls)
    run(go())


def test_the_flow_s_optional_skills_reach_the_router_and_the_saved_state():
    async def go():
        app, acd = make_service()
        pause_all(acd)
        s = session("c1")
        await acd.enqueue(s, Enqueue("technical", optional_skills=(("vip", 5), ("networking", 3))))
        entry = acd.router._calls["c1"]
        assert dict(entry.call.optional_skills) == {"vip": 5.0, "networking": 3.0}
        saved = [c[1][2] for c in app.ari.calls if c[0] == "set_var" and c[1][2]]
        state = QueueState.decode(saved[-1])
        assert state.optional_skills == {"vip": 5.0, "networking": 3.0}
        assert QueueState.decode(QueueState("q", 1.0).encode()).optional_skills == {}
    run(go())


def test_a_caller_adopted_after_a_restart_keeps_its_optional_skills():
    async def go():
        _app, acd = make_service()
        pause_all(acd)
        state = QueueState("technical", time.time() - 5, 0, {}, "", "support", "100", {"vip": 5.0})
        await _adopt_waiting(acd, Channel("c7"), state)
        assert dict(acd.router._calls["c7"].call.optional_skills) == {"vip": 5.0}
    run(go())


def test_flow_and_crm_levels_reach_the_router_unclamped():
    async def go():
        _app, acd = make_service()
        pause_all(acd)
        s = session("c1")
        s.hints = SimpleNamespace(queue_override=None, priority_boost=0, preferred_agent=None,
                                  extra_skills={"lang:fr": 1, "technical": 3})
        await acd.enqueue(s, Enqueue("technical", required_skills=(("technical", 2), ("support", 4))))
        # the stricter of flow and CRM wins; levels pass as given (both inputs are validated to 1-5)
        assert dict(acd.router._calls["c1"].call.extra_skills) == {"lang:fr": 1, "technical": 3, "support": 4}
    run(go())


def test_a_saved_state_with_levels_off_the_scale_drops_them_with_a_warning(caplog):
    async def go():
        _app, acd = make_service()
        pause_all(acd)
        state = QueueState("technical", time.time() - 5, 0, {"technical": 80, "support": 0, "lang:fr": 1},
                           "", "support", "100")
        await _adopt_waiting(acd, Channel("c8"), state)
        assert dict(acd.router._calls["c8"].call.extra_skills) == {"lang:fr": 1}
    with caplog.at_level("WARNING"):
        run(go())
    dropped = [r.getMessage() for r in caplog.records if "dropping required skill" in r.getMessage()]
    assert len(dropped) == 2 and any("'technical' level 80" in m for m in dropped)


def test_one_vocabulary_of_queue_outcomes():
    """The flow's queue results, the metrics' outcomes and the router's are the same words."""
    from ivr.acd.record import FLOW_RESULTS, LEFT_OUTCOMES, REFUSAL_OUTCOMES, CallOutcome
    from ivr.flow.schema import QUEUE_OUTCOMES as FLOW_OUTCOMES
    from ivr.metrics import QUEUE_OUTCOMES, REFUSAL_REASONS
    assert set(FLOW_OUTCOMES) == {o.value for o in FLOW_RESULTS}
    assert {o.flow_result.value for o in CallOutcome} <= set(FLOW_OUTCOMES)
    assert CallOutcome.OVERFLOW.flow_result is CallOutcome.TIMEOUT
    assert QUEUE_OUTCOMES == tuple(o.value for o in LEFT_OUTCOMES)
    assert REFUSAL_REASONS == tuple(o.value for o in REFUSAL_OUTCOMES)


def test_a_restart_while_the_agent_rings_requeues_a_caller_whose_state_only_the_leg_carries():
    """Killed within ``MUSIC_DELAY`` of an offer: the caller's channel has no saved state yet, the ringing
    agent leg has it (from its originate). The new process hangs the leg up and re-queues the caller with
    its original wait, and the caller's channel gets the state from then on."""
    async def go():
        app, acd = make_service()
        pause_all(acd)
        state = QueueState("technical", time.time() - 0.3, 2, {"technical": 3}, "Ada", "support", "100")
        saved = {"c9-a7": state.encode()}

        async def get_var(cid, name):
            app.ari.calls.append(("get_var", (cid, name)))
            return saved.get(cid, "") if name == QUEUE_VAR else ""

        async def nothing():
            return []
        app.ari.get_var, app.ari.bridges, app.ari.channels = get_var, nothing, nothing
        deps = adoption.AdoptionDeps(acd.ari, acd.clock, lambda ch, st: session(ch.id))
        adopted = await adoption.adopt(acd, deps, [Channel("c9"), Channel("c9-a7", name="PJSIP/agent1-0001")],
                                       {"c9", "c9-a7"})
        assert adopted == {"c9", "c9-a7"}
        assert ("hangup_quietly", ("c9-a7",)) in app.ari.calls
        snap = acd.router.call_snapshot("c9")
        assert snap.priority == 2 and snap.wait >= 0.3
        assert dict(acd.router._calls["c9"].call.extra_skills) == {"technical": 3}
        assert [QueueState.decode(v).encode() for v in _saved_on_caller(app, "c9")] == [state.encode()]
        assert acd.calls["c9"].persisted and acd.calls["c9"].moh
    run(go())
