"""Faults on the real Asterisk (issue 7): an agent's softphone unregisters while on a call or while
ringing; an agent leg fails with busy or congestion (503). Nothing leaks, no agent is left stuck.
(Unregistering while ringing is done from outside the phone, REGISTER Contact: * Expires: 0, because
pyVoIP's own deregister can hang while its call thread rings.)"""

from __future__ import annotations

import asyncio
import logging

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
    from tests.support.sip_unregister import unregister_all
    cfg = with_queue_overrides(flow_cfg, wrap_up=0)
    phones("agent1")
    pw = {a.id: a.sip_password for a in cfg.agent_sip()}
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: _agent(app, "agent1").registered, 10)
        caller = _caller(cfg, 4000)
        await wait_for(lambda: _agent(app, "agent1").state == AgentState.ON_CALL, 10, what="on call")
        # REGISTER expires=0 for the phone's account, the call still up (sipp: pyVoIP's own deregister races
        # its receiving thread for the answer and sometimes never sends the authenticated REGISTER)
        await asyncio.to_thread(unregister_all, "agent1", pw["agent1"], cfg.asterisk.sip_port)
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


async def test_softphone_unregistering_while_ringing_sends_the_call_to_the_next_agent(flow_cfg, phones):
    from tests.support.sip_unregister import unregister_all
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, ring_timeout=20)
    phones("agent3", agent1="ignore")            # agent1 is the best billing fit: it rings first
    pw = {a.id: a.sip_password for a in cfg.agent_sip()}
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: _agent(app, "agent1").registered and _agent(app, "agent3").registered, 10)
        await app.acd.agent_action("agent3", "pause", "meeting")   # so the call rings agent1 first
        caller = _caller(cfg, 6000)
        qc = await wait_for(lambda: next((c for c in app.acd.calls.values() if c.leg_id), None), 10,
                            what="agent1 rings")
        assert qc.agent_id == "agent1"
        first_leg = qc.leg_id
        await app.acd.agent_action("agent3", "unpause")
        await asyncio.to_thread(unregister_all, "agent1", pw["agent1"], cfg.asterisk.sip_port)
        await wait_for(lambda: not _agent(app, "agent1").registered, 10, what="unregistered seen")
        qc = await wait_for(lambda: qc if qc.bridge_id else None, 15, what="bridged to the next agent")
        assert qc.agent_id == "agent3" and qc.legs_tried[0] == first_leg and len(qc.legs_tried) == 2
        a1 = _agent(app, "agent1")
        assert a1.state == AgentState.AVAILABLE and a1.misses == 0     # withdrawn: not the agent's fault
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        assert not app.acd.calls and not app.acd.legs


async def test_congested_agent_leg_goes_to_the_next_agent(flow_cfg, phones, caplog):
    """agent2's 'phone' answers every INVITE with 503 (congestion, cause 34): the offer fails, agent2 gets
    a miss, the call goes to agent3 who answers."""
    from tests.support.sip_unregister import register_rejecting_phone, unregister_all
    caplog.set_level(logging.INFO, logger="ivr")
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, max_misses=5)
    pw = {a.id: a.sip_password for a in cfg.agent_sip()}
    phones("agent3")
    uas = register_rejecting_phone("agent2", pw["agent2"], cfg.asterisk.sip_port)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari:
            await wait_for(lambda: _agent(app, "agent2").registered and _agent(app, "agent3").registered, 10)
            caller = SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "2"), ("pause", 4000)]),
                                 cfg.asterisk.sip_port, timeout=60)
            qc = await wait_for(lambda: next((c for c in app.acd.calls.values() if c.bridge_id), None), 15,
                                what="bridged")
            assert qc.agent_id == "agent3" and len(qc.legs_tried) == 2
            a2 = _agent(app, "agent2")
            assert a2.misses == 1 and a2.state == AgentState.AVAILABLE
            assert "agent agent2 did not take the call (congestion)" in caplog.text
            assert (await asyncio.to_thread(caller.wait)).ok
            await assert_no_leaks(ari)
            assert not app.acd.calls and not app.acd.legs
    finally:
        uas.kill()
        uas.wait(5)
        # the registration would outlive the test (and send later tests' calls to a dead phone)
        await asyncio.to_thread(unregister_all, "agent2", pw["agent2"], cfg.asterisk.sip_port)
