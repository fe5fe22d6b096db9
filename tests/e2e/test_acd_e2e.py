"""The ACD on the real Asterisk: real SIP callers (sipp) and registered agent softphones (pyVoIP) with
different skills. Skill routing, audio both ways, MOH queueing with wrap-up, ring-no-answer with
auto-pause, and callers hanging up while waiting or while an agent rings leave nothing behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr.acd import AgentState
from ivr.ari import NotFound
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _caller(cfg, key: str | None, talk_ms: int, audio=True) -> SippProcess:
    steps = [("pause", 600)]
    if key:
        steps.append(("dtmf", key))
    steps += [("pause", 500)] + ([("audio",)] if audio else []) + [("pause", talk_ms)]
    return SippProcess(SippCaller("400", steps=steps), cfg.asterisk.sip_port, timeout=60)


async def _wait_registered(app, *agent_ids):
    await wait_for(lambda: all(app.acd.router.agent_snapshot(a).registered for a in agent_ids), 10,
                   what=f"{agent_ids} registered")


async def _bridged_call(app):
    return await wait_for(lambda: next((c for c in app.acd.calls.values() if c.bridge_id), None), 20,
                          what="a bridged call")


def _state(app, aid):
    return app.acd.router.agent_snapshot(aid)


async def test_option_1_reaches_billing_agent_option_2_technical_with_audio_both_ways(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=1)
    p = phones("agent1", "agent2")        # agent1: billing 4; agent2: technical 4
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1", "agent2")
        for key, agent, queue in (("1", "agent1", "billing"), ("2", "agent2", "technical")):
            caller = _caller(cfg, key, talk_ms=3000)
            qc = await _bridged_call(app)
            assert (qc.agent_id, qc.queue) == (agent, queue)
            # bridge_id is set before the bridge is made, and Asterisk joins added channels asynchronously
            # (POST addChannel returns before the join): wait for both legs, then check exactly them
            async def both_joined(bridge_id=qc.bridge_id):
                try:
                    b = await ari.bridge(bridge_id)
                except NotFound:      # not created yet
                    return None
                return b if len(b.channels) >= 2 else None
            bridge = await wait_for(both_joined, 5, what="caller and agent leg in the bridge")
            assert set(bridge.channels) == {qc.call_id, qc.leg_id}
            assert "dtmf_events" in bridge.technology or "mixing" in bridge.bridge_type
            await asyncio.sleep(1.5)
            caller_rtp = await ari.rtp_statistics(qc.call_id)
            agent_rtp = await ari.rtp_statistics(qc.leg_id)
            # Asterisk receives the caller's and the agent's audio and sends each to the other
            assert caller_rtp["rxcount"] > 20 and caller_rtp["txcount"] > 20, caller_rtp
            assert agent_rtp["rxcount"] > 20 and agent_rtp["txcount"] > 20, agent_rtp
            r = await asyncio.to_thread(caller.wait)
            assert r.ok, r.stderr
            await assert_no_leaks(ari)
            stats = p[agent].calls[-1]
            assert stats.rx_nonsilent > 100 and stats.tx_bytes > 1000   # the agent heard audio and spoke
            await wait_for(lambda: _state(app, agent).state == AgentState.AVAILABLE, 10, what="wrap-up over")
        records = app.storage.call_records()
        assert [(r["queue"], r["agent_id"], r["outcome"]) for r in records] == [
            ("billing", "agent1", "answered"), ("technical", "agent2", "answered")]


async def test_second_caller_waits_with_moh_and_gets_the_agent_after_wrap_up(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=2)
    phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        first = _caller(cfg, "1", talk_ms=3000)
        qc1 = await _bridged_call(app)
        second = _caller(cfg, "1", talk_ms=8000, audio=False)
        qc2 = await wait_for(lambda: next((c for c in app.acd.calls.values() if c is not qc1), None), 10,
                             what="second call queued")
        await asyncio.sleep(1.0)
        assert qc2.moh and not qc2.bridge_id
        snap = app.acd.router.queue_snapshot("billing")
        assert snap.waiting == 1 and snap.calls[-1].call_id == qc2.call_id
        tx0 = (await ari.rtp_statistics(qc2.call_id))["txcount"]
        await asyncio.sleep(0.5)
        assert (await ari.rtp_statistics(qc2.call_id))["txcount"] > tx0 + 10   # music is playing to it
        assert (await asyncio.to_thread(first.wait)).ok
        ended = time.monotonic()
        await wait_for(lambda: qc2.bridge_id is not None, 15, what="second caller bridged")
        assert time.monotonic() - ended >= 1.9            # not before the 2 s wrap-up was over
        assert qc2.agent_id == "agent1"
        r = await asyncio.to_thread(second.wait)
        assert r.ok, r.stderr
        await assert_no_leaks(ari)


async def test_agent_that_does_not_answer_is_skipped_and_auto_paused(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, ring_timeout=3, max_misses=2, wrap_up=0)
    phones("agent3", agent1="ignore")     # agent1 is the best billing fit but never answers
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1", "agent3")
        for n in (1, 2):
            caller = _caller(cfg, "1", talk_ms=7000, audio=False)   # agent1 rings 3 s, agent3 answers in ~1 s
            qc = await _bridged_call(app)
            assert qc.agent_id == "agent3" and len(qc.legs_tried) == 2   # agent1 rang first, then agent3
            assert (await asyncio.to_thread(caller.wait)).ok
            await assert_no_leaks(ari)
            await wait_for(lambda: _state(app, "agent3").state == AgentState.AVAILABLE, 10, what="agent3 free")
        s = _state(app, "agent1")
        assert s.state == AgentState.PAUSED and s.pause_reason == "no-answer"
        recs = app.storage.call_records()
        assert [r["rona_count"] for r in recs] == [1, 1]


async def test_caller_hanging_up_while_waiting_or_while_the_agent_rings_leaves_nothing(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, ring_timeout=20)
    phones(agent1="ignore")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        # 1) hangs up while agent1's phone rings
        caller = _caller(cfg, "1", talk_ms=2500, audio=False)
        await wait_for(lambda: _state(app, "agent1").state == AgentState.RESERVED, 10, what="agent ringing")
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        await wait_for(lambda: _state(app, "agent1").state == AgentState.AVAILABLE, 5, what="agent freed")
        assert _state(app, "agent1").misses == 0         # the caller left: not the agent's fault
        # 2) hangs up while waiting (only agent is paused)
        await app.acd.agent_action("agent1", "pause", "lunch")
        caller = _caller(cfg, "2", talk_ms=2000, audio=False)
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        assert not app.acd.calls and not app.acd.legs and not app.sessions
        assert [r["outcome"] for r in app.storage.call_records()] == ["abandoned", "abandoned"]
        assert _state(app, "agent1").state == AgentState.PAUSED



async def test_music_waits_half_a_second_while_an_agent_rings(flow_cfg, phones):
    """docs/acd.md: with an agent's phone already ringing as the caller joins, the music starts MUSIC_DELAY
    later (pyVoIP answers after ~1 s, so here it does start); with no agent free it starts at once. A call
    answered within the delay starting no music at all is shown by the component test
    test_an_agent_who_answers_at_once_leaves_the_caller_no_burst_of_music."""
    from ivr.calls.waiting_media import MUSIC_DELAY
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, ring_timeout=20)
    phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        started: dict[str, float] = {}
        real_start = app.ari.moh_start

        async def spy(channel_id: str, moh_class: str | None = None) -> None:
            started.setdefault(channel_id, time.monotonic())
            await real_start(channel_id, moh_class)
        app.ari.moh_start = spy   # type: ignore[method-assign]
        await _wait_registered(app, "agent1")
        # 1) agent1's phone rings as the caller joins: music only after the delay, then the agent answers
        caller = _caller(cfg, "1", talk_ms=1500, audio=False)
        await wait_for(lambda: _state(app, "agent1").state != AgentState.AVAILABLE, 10, what="agent rung")
        rung_at = time.monotonic()
        [cid] = list(app.acd.calls)
        qc = await _bridged_call(app)
        if cid in started:
            assert started[cid] - rung_at >= MUSIC_DELAY - 0.15, started[cid] - rung_at
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        assert qc.agent_id == "agent1"
        # 2) nobody free (agent1 paused): the caller joins with no phone ringing and hears music at once
        await app.acd.agent_action("agent1", "pause", "lunch")
        caller = _caller(cfg, "1", talk_ms=2000, audio=False)
        await wait_for(lambda: app.acd.calls, 10, what="the caller waiting")
        joined_at = time.monotonic()
        [cid] = list(app.acd.calls)
        await wait_for(lambda: cid in started, 5, what="music for the waiting caller")
        assert started[cid] - joined_at < MUSIC_DELAY, started[cid] - joined_at
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
