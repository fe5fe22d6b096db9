"""A flow node's required skill is relaxed by the queue's steps on a real call (real Asterisk, sipp caller,
pyVoIP agent phone): the node asks ``technical: 3``, the queue's only step is ``{after: 2,
min_proficiency: 1}``, the only registered agent has ``technical: 1``. The caller waits (the agent's phone
does not ring) until the step applies at 2 s, then is bridged to that agent. Before the rule, the flow's
skill was never relaxed and the caller waited for good."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ivr.acd import CallState
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

LINE = "610"
# the sample technical queue with one short step instead of 30 s / 90 s / 180 s
QUEUE = {"name": "technical", "required_skills": {"technical": 1}, "ring_timeout": 15, "wrap_up": 0,
         "max_wait": 60, "relaxation": [{"after": 2, "min_proficiency": 1}]}


async def test_the_flows_required_level_is_capped_by_the_queues_step_and_the_call_is_bridged(flow_cfg, phones):
    # agent2 is the only agent with a phone; its technical level is 1 (the node asks 3)
    agents = tuple({**a, "skills": {"technical": 1}} if a["id"] == "agent2" else a for a in flow_cfg.agents)
    cfg = dataclasses.replace(flow_cfg, agents=agents, queues=tuple(QUEUE if q["name"] == "technical" else q for q in flow_cfg.queues),
                              flows=dataclasses.replace(flow_cfg.flows,
                                                        routes={**flow_cfg.flows.routes, LINE: "relaxation"}))
    p = phones("agent2")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        router = app.acd.router
        await wait_for(lambda: router.agent_snapshot("agent2").registered, 10, what="agent2 registered")
        caller = SippProcess(SippCaller(LINE, steps=[("pause", 600), ("audio",), ("pause", 4000)], end="hangup"),
                             cfg.asterisk.sip_port, timeout=60)
        s = await wait_for(lambda: next(iter(app.sessions.values()), None), 15, what="the call in the flow")
        await wait_for(lambda: s.channel_id in app.acd.calls, 10, what="queued")
        assert dict(router._calls[s.channel_id].call.extra_skills) == {"technical": 3}  # the node's, as given
        # before the step: waiting, technical >= 3 required, agent2 idle and not rung
        snap = router.call_snapshot(s.channel_id)
        assert snap.state is CallState.WAITING and snap.step == 0 and snap.wait < 2
        while (snap := router.call_snapshot(s.channel_id)).wait < 1.8:
            assert snap.state is CallState.WAITING and p["agent2"].rings == 0, snap
            await asyncio.sleep(0.1)
        # the step applies at 2 s: capped to technical >= 1, agent2 rings, answers, caller bridged to it
        qc = await wait_for(lambda: (c := app.acd.calls.get(s.channel_id)) is not None and c.bridge_id and c,
                            10, what="bridged to agent2")
        assert qc.agent_id == "agent2" and p["agent2"].rings == 1
        r = await asyncio.to_thread(caller.wait)
        assert r.ok, r.stderr
        await wait_for(lambda: s.closed, 10, what="the call ended")
        [rec] = await wait_for(app.storage.call_records, 10, what="the call record")
        assert (rec["queue"], rec["outcome"], rec["agent_id"]) == ("technical", "answered", "agent2")
        assert 2.0 <= rec["wait_seconds"] < 6.0, rec
        await assert_no_leaks(ari)
