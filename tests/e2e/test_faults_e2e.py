"""Faults on the real Asterisk (issue 7, first pieces): an agent's softphone unregisters while on a call; an
agent leg fails with busy. Nothing leaks, no agent is left stuck.
(Unregistering while ringing is handled by the router (offer withdrawn, no miss) but its e2e test hung
now and then inside pyVoIP's deregister during a ringing call: left out until a better test phone.)"""

from __future__ import annotations

import asyncio

import pytest

from ivr.acd import AgentState
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _caller(cfg, talk_ms):
    return SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", talk_ms)]),
                       cfg.asterisk.sip_port, timeout=60)


def _agent(app, aid):
    return app.acd.router.agent_snapshot(aid)


async def test_softphone_unregistering_on_a_call_leaves_no_stuck_state(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0)
    p = phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: _agent(app, "agent1").registered, 10)
        caller = _caller(cfg, 4000)
        await wait_for(lambda: _agent(app, "agent1").state == AgentState.ON_CALL, 10, what="on call")
        await asyncio.to_thread(p["agent1"].phone.sip.deregister)   # REGISTER expires=0, call still up
        await wait_for(lambda: not _agent(app, "agent1").registered, 10, what="unregistered seen")
        assert _agent(app, "agent1").state == AgentState.ON_CALL       # the conversation goes on
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        await wait_for(lambda: _agent(app, "agent1").state == AgentState.AVAILABLE, 5, what="agent freed")
        assert not app.acd.calls and not app.acd.legs


async def test_busy_agent_leg_goes_to_the_next_agent(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, max_misses=5)
    phones("agent3", agent1="busy")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: _agent(app, "agent1").registered and _agent(app, "agent3").registered, 10)
        caller = _caller(cfg, 4000)
        qc = await wait_for(lambda: next((c for c in app.acd.calls.values() if c.bridge_id), None), 15,
                            what="bridged")
        assert qc.agent_id == "agent3" and len(qc.legs_tried) == 2
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        assert _agent(app, "agent1").misses == 1 and _agent(app, "agent1").state == AgentState.AVAILABLE
