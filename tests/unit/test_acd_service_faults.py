"""AcdService against an ARI that times out (an overloaded Asterisk): our trouble is not the agent's miss,
and a conversation's cleanup steps do not depend on each other."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest.mock import MagicMock

from ivr.acd import AgentState
from ivr.ari import NotFound, Unavailable
from ivr.calls.acd_service import AcdDeps, AcdService
from ivr.calls.events import OfferCheckDue
from ivr.config import load_config
from ivr.flow import Enqueue

CONFIG = "config/ivr.yaml"


class FakeAri:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.keywords: list[tuple[str, dict]] = []
        self.fail: dict[str, Exception] = {}

    def __getattr__(self, name):
        async def op(*args, **kw):
            self.calls.append((name, args))
            self.keywords.append((name, kw))
            if name in self.fail:
                raise self.fail[name]
        return op


def make_service():
    cfg = load_config(CONFIG, env={})
    app = SimpleNamespace(cfg=cfg, ari=FakeAri(), metrics=MagicMock(), dispatcher=MagicMock())
    acd = AcdService(AcdDeps(ari=app.ari, submit=app.dispatcher.submit, metrics=app.metrics,
                             queues=tuple(cfg.queues), agents=tuple(cfg.agents), options=dict(cfg.acd)))
    for aid in acd.router.agent_ids():
        acd.router.set_registered(aid, True)
    return app, acd


def session(cid: str):
    return SimpleNamespace(channel_id=cid, caller_raw="+447700900123", customer_name=lambda: "",
                           channel=SimpleNamespace(caller=SimpleNamespace(name="")), hints=None,
                           flow_name="support", did="100", screen_pop=dict, queue_outcome=lambda o: None,
                           e164=None, outcome="ivr", agent_id=None, queue_wait=0.0, closed=False)


def test_an_originate_timeout_is_not_the_agents_miss_and_retries_are_paced():
    async def go():
        app, acd = make_service()
        app.ari.fail["originate"] = Unavailable("POST", "/channels/x", 0, "TimeoutError")
        await acd.enqueue(session("c1"), Enqueue("billing"))
        qc = acd.calls["c1"]
        assert len(qc.legs_tried) == 1                # no immediate retry storm
        agent = acd.router.agent_snapshot(qc.agent_id)
        assert agent.state == AgentState.RESERVED and agent.misses == 0
        leg = qc.leg_id                               # the scheduled check, run by hand:
        # the leg does exist after all: nothing changes, its own events will tell
        await acd.on_event(OfferCheckDue(key="c1", leg=leg))
        assert qc.leg_id == leg
        # it does not: the offer fails without a miss and the call is offered again
        app.ari.fail["channel"] = NotFound("GET", "/channels/x", 404)
        await acd.on_event(OfferCheckDue(key="c1", leg=leg))
        assert len(qc.legs_tried) == 2 and qc.leg_id != leg
        for aid in acd.router.agent_ids():
            snap = acd.router.agent_snapshot(aid)
            assert snap.misses == 0 and snap.state != AgentState.PAUSED, snap
    asyncio.run(go())


def test_an_endpoint_refusing_the_leg_is_still_the_agents_miss():
    async def go():
        app, acd = make_service()
        app.ari.fail["originate"] = NotFound("POST", "/channels/x", 404, "Allocation failed")
        await acd.enqueue(session("c1"), Enqueue("billing"))
        snaps = [acd.router.agent_snapshot(a) for a in acd.router.agent_ids()]
        assert any(a.misses or a.pause_reason == "no-answer" for a in snaps)
    asyncio.run(go())


def test_conversation_cleanup_steps_are_independent():
    async def go():
        app, acd = make_service()
        await acd.enqueue(session("c1"), Enqueue("billing"))
        qc = acd.calls["c1"]
        leg = qc.leg_id
        from ivr.ari import Channel, StasisStart
        await acd.on_stasis_start(StasisStart(type="StasisStart", channel=Channel(leg), args=("agent", "c1")))
        assert qc.bridge_id == "call-c1"
        app.ari.fail["hangup_quietly"] = Unavailable("DELETE", "/channels/x", 0, "TimeoutError")
        await acd.caller_gone(qc.session)             # the caller hung up; hanging up the leg times out
        assert ("destroy_bridge", ("call-c1",)) in app.ari.calls      # the bridge is still destroyed
        agent = acd.router.agent_snapshot(qc.agent_id)
        assert agent.state in (AgentState.WRAP_UP, AgentState.AVAILABLE)   # the router moved on
        assert not acd.calls and not acd.legs
    asyncio.run(go())
