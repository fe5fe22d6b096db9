"""The app is killed with SIGKILL while calls wait in queue and while a call is bridged (issue 7).

Asterisk keeps the app's channels and bridges: the bridged call goes on talking, waiting callers keep
their music. The restarted app adopts the conversation (the agent is on that call, not available) and
the waiting callers with their original wait and order; nothing is left behind at the end."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from ivr.acd import AgentState
from ivr.ari import NotFound
from ivr.calls.saved_state import QUEUE_VAR, QueueState
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.app_process import AppProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _caller(cfg, number: str, hold_ms: int) -> SippProcess:
    steps = [("pause", 600), ("dtmf", "1"), ("pause", hold_ms)]
    return SippProcess(SippCaller("400", steps=steps, caller_number=number), cfg.asterisk.sip_port, timeout=90)


async def _queued_states(ari) -> dict[str, QueueState]:
    """caller number -> the queue state its channel carries (callers in queue or talking)."""
    from ivr.calls.ids import AGENT_LEG
    out = {}
    for ch in await ari.channels():
        if AGENT_LEG.match(ch.id):       # an agent leg carries its caller's state too (from its originate)
            continue
        try:
            st = QueueState.decode(await ari.get_var(ch.id, QUEUE_VAR))
        except Exception:
            continue
        if st is not None:
            out[ch.caller.number] = (ch.id, st)
    return out


async def test_sigkill_with_a_bridged_call_and_two_waiting_callers(flow_cfg, phones, tmp_path):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, announce_frequency=None)
    phones("agent1")                                   # one agent: the others must wait
    proc = AppProcess(cfg, tmp_path / "app1").start()
    callers = {}
    try:
        async with ari_client(cfg) as ari:
            callers["a"] = _caller(cfg, "441000000001", 9000)
            await wait_for(lambda: _bridges(ari), 15, what="first caller bridged to agent1")
            callers["b"] = _caller(cfg, "441000000002", 16000)
            await wait_for(lambda: _in_queue(ari, 2), 10, what="second caller in queue")
            callers["c"] = _caller(cfg, "441000000003", 24000)
            await wait_for(lambda: _in_queue(ari, 3), 10, what="third caller in queue")
            before = await _queued_states(ari)
            proc.kill()                                  # SIGKILL: no cleanup runs
            await asyncio.sleep(1.0)
            # Asterisk still has everything: the conversation and both waiting callers
            bridges = await ari.bridges()
            assert len(bridges) == 1 and len(bridges[0].channels) == 2
            assert len(await ari.channels()) == 4       # 3 callers + the agent leg
    finally:
        proc.kill()
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: len(app.acd.calls) == 3, 10, what="three calls adopted")
        a_id, a_state = before["441000000001"]
        b_id, b_state = before["441000000002"]
        c_id, c_state = before["441000000003"]
        assert app.acd.calls[a_id].answered and app.acd.calls[a_id].agent_id == "agent1"
        assert app.acd.router.agent_snapshot("agent1").state == AgentState.ON_CALL
        b, c = app.acd.router.call_snapshot(b_id), app.acd.router.call_snapshot(c_id)
        assert (b.position, c.position) == (1, 2)       # original order kept
        assert b.wait >= c.wait + 0.3 and b.wait >= 2.0  # original wait kept
        # the first caller hangs up (its script ends): the agent takes the waiting callers in order
        assert (await asyncio.to_thread(callers["a"].wait)).ok
        qb = await wait_for(lambda: app.acd.calls.get(b_id) if app.acd.calls.get(b_id)
                            and app.acd.calls[b_id].bridge_id else None, 15, what="second caller bridged")
        assert qb.agent_id == "agent1" and not app.acd.calls[c_id].answered
        assert (await asyncio.to_thread(callers["b"].wait)).ok
        await wait_for(lambda: app.acd.calls.get(c_id) and app.acd.calls[c_id].bridge_id, 15,
                       what="third caller bridged")
        assert (await asyncio.to_thread(callers["c"].wait)).ok
        await assert_no_leaks(ari)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state == AgentState.AVAILABLE, 5)
        assert not app.acd.calls and not app.acd.legs and not app.sessions


async def _bridges(ari) -> bool:
    return any(len(b.channels) == 2 for b in await ari.bridges())


async def _in_queue(ari, n: int) -> bool:
    return len(await _queued_states(ari)) >= n


async def test_sigkill_while_an_agent_rings_frees_the_agent_and_requeues_the_caller(flow_cfg, phones, tmp_path):
    """Killed at once when the agent's phone starts ringing, well within MUSIC_DELAY (0.5 s) of the offer:
    the caller's channel carries no queue state yet (a call answered in that moment never costs the
    variable); the ringing agent leg carries it from its originate. The new process hangs that leg up and
    re-queues the caller from its place, and from then on the caller's channel carries the state."""
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, ring_timeout=30, announce_frequency=None)
    phones(agent1="ignore")                           # rings, never answers
    proc = AppProcess(cfg, tmp_path / "app1").start()
    try:
        async with ari_client(cfg) as ari:
            caller = _caller(cfg, "441000000009", 9000)
            legs = await wait_for(lambda: _agent_legs(ari), 15, interval=0.02, what="agent leg ringing")
            proc.kill()                               # SIGKILL: no cleanup runs
            assert len(legs) == 1
            call_id = legs[0].rsplit("-a", 1)[0]
            assert await _var(ari, call_id) == ""                     # not on the caller yet ...
            state = QueueState.decode(await _var(ari, legs[0]))
            assert state is not None and state.queue == "billing"    # ... on the leg
    finally:
        proc.kill()
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: len(app.acd.calls) == 1, 10, what="caller adopted")
        # the leg the dead process left ringing was hung up; the caller rings the agent again from its place
        await wait_for(lambda: _gone(ari, legs[0]), 10, what="old leg hung up")
        qc = next(iter(app.acd.calls.values()))
        assert qc.call_id == call_id and not qc.answered and qc.leg_id != legs[0]
        snap = app.acd.router.call_snapshot(qc.call_id)
        assert snap.wait == pytest.approx(time.time() - state.joined_at, abs=0.5)   # wait counts from joining
        assert snap.rona_count == 0 and snap.offers == 1
        saved = await wait_for(lambda: _var(ari, call_id), 5, what="the state saved on the caller's channel")
        assert QueueState.decode(saved).joined_at == pytest.approx(state.joined_at, abs=0.1)
        assert (await asyncio.to_thread(caller.wait)).ok  # hangs up while ringing
        await assert_no_leaks(ari)
        await wait_for(lambda: not app.acd.calls and not app.sessions, 5, what="caller gone")
        a = app.acd.router.agent_snapshot("agent1")
        assert a.state == AgentState.AVAILABLE and a.misses == 0
        assert [r["outcome"] for r in app.storage.call_records()] == ["abandoned"]


async def _var(ari, cid: str) -> str:
    try:
        return await ari.get_var(cid, QUEUE_VAR)
    except NotFound:          # Asterisk 22: a variable never set is a 404
        return ""


async def test_asterisk_restart_with_calls_in_progress_leaves_no_stuck_state(asterisk, flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, announce_frequency=None)
    phones("agent1")
    async with running_app(cfg) as app:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
        talking = _caller(cfg, "441000000011", 20000)
        await wait_for(lambda: any(c.bridge_id for c in app.acd.calls.values()), 15, what="bridged")
        waiting = _caller(cfg, "441000000012", 20000)
        await wait_for(lambda: len(app.acd.calls) == 2, 10, what="second caller in queue")
        await asyncio.to_thread(asterisk.stop)           # every channel and bridge dies with it
        talking.kill()
        waiting.kill()
        await wait_for(lambda: not app.events.connected, 10, what="disconnect noticed")
        await asyncio.to_thread(asterisk.start)
        await wait_for(lambda: app.events.connected and app.ready.is_set(), 20, what="reconnected")
        await wait_for(lambda: not app.sessions and not app.acd.calls and not app.acd.legs
                       and len(app.storage.call_records()) == 2, 10, what="calls of the old Asterisk ended")
        a = app.acd.router.agent_snapshot("agent1")
        assert a.state not in (AgentState.RESERVED, AgentState.ON_CALL)
        outcomes = sorted(r["outcome"] for r in app.storage.call_records())
        assert outcomes == ["abandoned", "answered"]
        async with ari_client(cfg) as ari:
            await assert_no_leaks(ari)


async def _agent_legs(ari) -> list[str]:
    from ivr.calls.ids import AGENT_LEG
    # unique ids: GET /channels can list a channel that is being originated twice for a moment
    return sorted({c.id for c in await ari.channels() if AGENT_LEG.match(c.id)})


async def _gone(ari, cid: str) -> bool:
    return cid not in {c.id for c in await ari.channels()}


async def test_ari_outage_of_seconds_while_a_caller_hangs_up_in_conversation(flow_cfg, phones):
    """The network to ARI is cut for 4 s (REST and websocket); meanwhile the bridged caller hangs up and
    the app misses that event. On reconnect it finds out, ends the conversation (agent leg, bridge) and
    the waiting caller gets the agent."""
    from tests.support.tcp_proxy import TcpProxy
    async with TcpProxy(flow_cfg.asterisk.http_port) as proxy:
        cfg = with_queue_overrides(flow_cfg, wrap_up=0, announce_frequency=None)
        cfg = dataclasses.replace(cfg, ari=dataclasses.replace(cfg.ari, url=f"http://127.0.0.1:{proxy.port}"))
        phones("agent1")
        async with running_app(cfg) as app, ari_client(flow_cfg) as ari:   # the test's own ARI: direct
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
            first = _caller(cfg, "441000000021", 3500)
            await wait_for(lambda: any(c.bridge_id for c in app.acd.calls.values()), 15, what="bridged")
            second = _caller(cfg, "441000000022", 14000)
            await wait_for(lambda: len(app.acd.calls) == 2, 10, what="second caller in queue")
            proxy.cut(4.0)
            assert (await asyncio.to_thread(first.wait)).ok        # hangs up during the outage
            assert proxy.down and not app.events.connected
            await wait_for(lambda: app.events.connected and app.ready.is_set(), 15, what="reconnected")
            assert proxy.refused >= 1                                 # the app did retry during the cut
            qc = await wait_for(lambda: next((c for c in app.acd.calls.values() if c.bridge_id), None), 10,
                                what="second caller bridged after the outage")
            assert qc.session.caller_raw == "441000000022" and qc.agent_id == "agent1"
            assert (await asyncio.to_thread(second.wait)).ok
            await assert_no_leaks(ari)
            await wait_for(lambda: not app.acd.calls and not app.sessions
                           and len(app.storage.call_records()) == 2, 5, what="both calls recorded")
            assert sorted(r["outcome"] for r in app.storage.call_records()) == ["answered", "answered"]
            assert app.acd.router.agent_snapshot("agent1").state == AgentState.AVAILABLE


async def test_agent_states_survive_a_sigkill_and_a_paused_agent_is_not_rung_by_an_adopted_caller(
        flow_cfg, phones, tmp_path):
    """agent1 (the only billing agent with a phone) is paused for lunch and agent2 logged out, a caller
    waits; the app is killed with SIGKILL. The restarted app restores both (paused with its reason,
    logged out): the adopted caller keeps waiting instead of ringing agent1, and is served once agent1
    comes back from lunch."""
    import aiohttp
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, announce_frequency=None)
    phones("agent1")
    proc = AppProcess(cfg, tmp_path / "app1").start()
    base = f"http://127.0.0.1:{cfg.http.port}"
    auth = {"Authorization": f"Bearer {cfg.http.admin_token}"}
    caller = None
    try:
        async with aiohttp.ClientSession() as http, ari_client(cfg) as ari:
            for aid, body in (("agent1", {"action": "pause", "reason": "lunch"}), ("agent2", {"action": "logout"})):
                async with http.post(f"{base}/api/agents/{aid}/state", json=body, headers=auth) as r:
                    assert r.status == 200, await r.text()
            caller = _caller(cfg, "441000000009", 14000)
            await wait_for(lambda: _in_queue(ari, 1), 10, what="the caller waits (agent1 is at lunch)")
            proc.kill()
    finally:
        proc.kill()
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: len(app.acd.calls) == 1, 10, what="the waiting caller adopted")
        a1, a2 = app.acd.router.agent_snapshot("agent1"), app.acd.router.agent_snapshot("agent2")
        assert (a1.state, a1.pause_reason) == (AgentState.PAUSED, "lunch")
        assert a2.state == AgentState.LOGGED_OUT
        assert app.acd.router.agent_snapshot("agent4").state == AgentState.AVAILABLE   # untouched: as configured
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
        await asyncio.sleep(1.5)
        [qc] = app.acd.calls.values()
        assert qc.leg_id is None and not qc.legs_tried     # agent1 was never rung
        await app.acd.agent_action("agent1", "unpause")
        await wait_for(lambda: qc.bridge_id, 15, what="served once agent1 is back")
        assert qc.agent_id == "agent1"
        assert (await asyncio.to_thread(caller.wait)).ok
        await assert_no_leaks(ari)
        assert app.storage.agent_states()["agent1"] == ("logged_in", None)   # the unpause is saved too
