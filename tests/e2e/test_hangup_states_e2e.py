"""A caller hangs up at every state of a call (issue 7): prompt, menu, secure collect, queue, ringing
agent, bridged, and while the agent is in wrap-up. Each ends with nothing left: no channel or bridge on
Asterisk, no session, queued call, agent leg, timer, dispatcher queue or CRM task in the app, no agent
stuck reserved or on a call."""

from __future__ import annotations

import asyncio

import pytest

from ivr.acd import AgentState
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


async def _hangup_call(cfg, service: str, steps) -> None:
    r = await asyncio.to_thread(SippProcess(SippCaller(service, steps=steps), cfg.asterisk.sip_port, 40).wait)
    assert r.ok, r.stderr


async def assert_app_clean(app, ari) -> None:
    await assert_no_leaks(ari)
    await wait_for(lambda: not app.sessions and app.dispatcher.active_keys == 0, 5, what="app idle")
    assert not app.acd.calls and not app.acd.legs
    for s in app.recent_calls:
        assert s.closed and not getattr(s, "_timers", {}), f"{s.channel_id} left timers"
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("crm:") and not t.done()]
    for a in app.acd.router.agents_snapshot():
        assert a.state not in (AgentState.RESERVED, AgentState.ON_CALL), a


def _state(app, aid):
    return app.acd.router.agent_snapshot(aid)


@pytest.mark.parametrize("where,service,steps", [
    ("prompt", "100", [("pause", 800)]),                               # long welcome prompt
    ("menu", "300", [("pause", 1200)]),                                # menu waiting for a key
    ("collect", "300", [("pause", 500), ("dtmf", "2"), ("pause", 700), ("dtmf", "4"), ("dtmf", "2"),
                        ("pause", 500)]),                              # mid secure PIN entry
])
async def test_caller_hangs_up_in_the_ivr(flow_cfg, where, service, steps):
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        await _hangup_call(flow_cfg, service, steps)
        await wait_for(lambda: len(app.recent_calls) == 1, 10, what="call ended")
        s = app.recent_calls[0]
        assert s.runner.end_reason and "hangup" in s.runner.end_reason
        expected_node = {"prompt": None, "menu": "quick:menu", "collect": "quick:collect_pin"}[where]
        if expected_node:
            assert s.runner.visited_nodes[-1] == expected_node
        await assert_app_clean(app, ari)


async def test_caller_hangs_up_in_queue_while_ringing_while_bridged_and_during_wrap_up(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, ring_timeout=20, wrap_up=4)
    p = phones(agent1="ignore")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: _state(app, "agent1").registered, 10)
        # in queue: the only agent is paused
        await app.acd.agent_action("agent1", "pause", "lunch")
        await _hangup_call(cfg, "400", [("pause", 600), ("dtmf", "1"), ("pause", 1500)])
        await assert_app_clean(app, ari)
        # ringing the agent (who does not answer)
        await app.acd.agent_action("agent1", "unpause")
        await _hangup_call(cfg, "400", [("pause", 600), ("dtmf", "1"), ("pause", 2500)])
        await assert_app_clean(app, ari)
        assert _state(app, "agent1").state == AgentState.AVAILABLE and _state(app, "agent1").misses == 0
        # bridged: the agent answers now; the caller hangs up mid-conversation -> wrap-up
        p["agent1"].mode = "answer"
        talk = SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", 3500)]),
                           cfg.asterisk.sip_port, 40)
        await wait_for(lambda: any(c.bridge_id for c in app.acd.calls.values()), 10, what="bridged")
        assert (await asyncio.to_thread(talk.wait)).ok
        await wait_for(lambda: _state(app, "agent1").state == AgentState.WRAP_UP, 5, what="wrap-up")
        # during the agent's wrap-up: a new caller waits, then hangs up before the agent is free
        await _hangup_call(cfg, "400", [("pause", 600), ("dtmf", "1"), ("pause", 800)])
        assert _state(app, "agent1").state == AgentState.WRAP_UP
        await assert_app_clean(app, ari)
        await wait_for(lambda: _state(app, "agent1").state == AgentState.AVAILABLE, 6, what="wrap-up over")
        await wait_for(lambda: len(app.storage.call_records()) == 4, 5, what="four call records")
        outcomes = [r["outcome"] for r in app.storage.call_records()]
        assert outcomes == ["abandoned", "abandoned", "answered", "abandoned"]
