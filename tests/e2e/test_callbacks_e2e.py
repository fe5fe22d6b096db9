"""Callbacks on the real Asterisk: a caller who waited asks for a callback (the flow's callback node); the
task keeps the caller's place in the queue; when it reaches an agent, the agent's phone (pyVoIP) rings
first, then the customer is dialled out through the configured trunk, where a sipp UAS stands in for the
carrier (it must get the customer's number); audio flows both ways. A busy customer is retried after the
delay, then the task fails. Nothing leaks. (Voicemail as work: test_voicemail_e2e.py; web requests:
test_web_callbacks_e2e.py; the trunk Asterisk, cb_cfg and helpers: callbacks_support.py, conftest.py.)"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskState
from tests.e2e.callbacks_support import (
    CALLER_ID,
    CUSTOMER,
    OTHER,
    TYPED,
    agents_busy,
    api_tasks,
    assert_audio_both_ways,
    assert_not_routable,
    asterisk_with_trunks,
    bridge_of,
    callback_caller,
    callback_task,
    reasons_by_code,
    screen_of,
    task_decisions,
    task_in,
    why_not,
)
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

asterisk = asterisk_with_trunks()     # this module's own Asterisk, with the trunk 'carrier'


async def test_a_callback_keeps_the_callers_place_and_reaches_the_customer_through_the_trunk(cb_cfg, phones):
    phones("agent1")
    carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=4000, echo=True), timeout=60)
    try:
        async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari, aiohttp.ClientSession() as http:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            await app.acd.agent_action("agent1", "pause", "meeting")
            # the caller waits 2 s, asks for a callback, hears goodbye, is hung up
            r = await asyncio.to_thread(callback_caller(cb_cfg).wait)
            assert r.ok, r.stderr
            task = await callback_task(app, TaskState.WAITING)
            assert task.number == CUSTOMER and task.queue == "billing"
            snap = app.acd.router.call_snapshot(task.id)
            assert snap.kind == "callback" and snap.wait >= 2.0          # its place: the caller's join time
            # why not agent1 while the task waits: paused (for its meeting); nothing offered yet
            status, answer = await why_not(http, cb_cfg, task.id, "agent1")
            assert status == 200 and answer["task_state"] == "waiting" and answer["in_router"] is True, answer
            assert answer["chosen"] is False and answer["decisions"] == [], answer
            paused = reasons_by_code(answer).get("paused")
            assert paused is not None and paused["details"]["pause_reason"] == "meeting", answer
            # agent2 has no billing skill; agent3 has, but its phone is not registered in this test
            status, answer = await why_not(http, cb_cfg, task.id, "agent2")
            missing = reasons_by_code(answer).get("missing_skill")
            assert status == 200 and missing is not None, answer
            assert missing["details"]["missing"] == [[{"skill": "billing", "required": 1, "has": 0}]], answer
            status, answer = await why_not(http, cb_cfg, task.id, "agent3")
            assert status == 200 and "not_registered" in reasons_by_code(answer), answer
            status, body = await why_not(http, cb_cfg, task.id, "nobody")
            assert status == 404 and body["error_id"] == "agent-not-found", body
            status, body = await why_not(http, cb_cfg, "task-doesnotexist", "agent1")
            assert status == 404 and body["error_id"] == "task-not-found", body
            # a caller who joins now waits behind the callback: the customer themself calls in (their CRM
            # history already holds the callback's request: a task step, not a call, so no repeat caller)
            later = SippProcess(SippCaller("802", steps=[("pause", 20000)], caller_number=CUSTOMER),
                                cb_cfg.asterisk.sip_port, 60)
            await wait_for(lambda: len(app.acd.router.queue_snapshot("billing").calls) == 2, 15,
                           what="a live caller behind the callback")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["callback", "call"]
            await app.acd.agent_action("agent1", "unpause")
            # agent first (the phone answers), then the customer through the trunk; bridged, audio both ways
            bridged = await wait_for(lambda: bridge_of(ari, task.id), 30, what="agent and customer bridged")
            await asyncio.sleep(1.5)
            await assert_audio_both_ways(ari, bridged)
            done = await callback_task(app, TaskState.DONE)
            assert done.outcome == "answered" and done.attempts == 0
            assert [h.to_state for h in done.history][-3:] == [TaskState.OFFERED, TaskState.CONNECTING,
                                                              TaskState.DONE]
            assert done.history[-3].agent_id == "agent1"
            assert done.history[-3].reason.startswith("offered: ") and "candidates [agent1" in done.history[-3].reason
            # the offer is stored with the task as a routing decision, with the router's explanation
            decisions = await task_decisions(http, cb_cfg, task.id)
            assert [(d["agent_id"], d["attempt"]) for d in decisions] == [("agent1", 1)], decisions
            assert decisions[0]["explanation"]["call_id"] == task.id, decisions
            # the task has ended: why-not is 409 task-not-routable with those decisions
            await assert_not_routable(http, cb_cfg, task.id, "agent1", "done", "answered", decisions)
            await assert_not_routable(http, cb_cfg, task.id, "agent3", "done", "answered", decisions)
            # the customer hangs up after 4 s: the agent's leg goes too; then agent1 serves the live caller
            live_id = await wait_for(lambda: _other_call(app, "agent1", task.id), 30,
                                     what="agent1 takes the live caller next")
            # agent1's screen pop for the customer's own call: their CRM history has the callback's steps
            # (kind task, the task id as call_id), and they do not make the caller a repeat caller
            screen = await wait_for(lambda: screen_of(http, cb_cfg, "agent1", live_id), 10,
                                    what="agent1's screen pop with the caller's history")
            assert screen["caller"] == CUSTOMER, screen
            assert screen["repeat_caller"] is False and screen["last_agent"] is None, screen
            steps = [h for h in screen["history"] if h["call_id"] == task.id]
            assert steps and all(h["kind"] == "task" for h in steps), screen["history"]
            assert [h["state"] for h in steps] == ["done", "connecting", "offered", "waiting"], steps   # newest first
            assert steps[0]["outcome"].startswith("callback done (answered), attempt 1 of "), steps
            assert steps[2]["agent_id"] == "agent1" and steps[2]["queue"] == "billing", steps
            assert steps[3]["detail"].startswith("requested"), steps
            r = await asyncio.to_thread(later.wait)
            assert r.ok, r.stderr
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        [invite] = carrier.invites()
        assert invite.dialled == CUSTOMER.lstrip("+") or invite.dialled == CUSTOMER, invite
        assert CALLER_ID.lstrip("+") in invite.user_of("From") or CALLER_ID in invite.user_of("From")
    finally:
        carrier.stop()


async def test_a_busy_customer_is_retried_after_the_delay_then_the_task_fails(cb_cfg, phones):
    phones("agent1")
    async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await app.acd.agent_action("agent1", "pause", "meeting")
        r = await asyncio.to_thread(callback_caller(cb_cfg).wait)
        assert r.ok, r.stderr
        task = await callback_task(app, TaskState.WAITING)
        for attempt in (1, 2):
            carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=486), timeout=40)
            try:
                if attempt == 1:
                    await app.acd.agent_action("agent1", "unpause")
                code, err = await asyncio.to_thread(carrier.wait)
                assert code == 0, err
                assert carrier.invites()[0].dialled.lstrip("+") == CUSTOMER.lstrip("+")
            finally:
                carrier.stop()
            if attempt == 1:
                t = await wait_for(lambda: _attempts(app, task.id, 1), 15, what="first attempt recorded")
                assert t.state is TaskState.WAITING and t.not_before is not None
        failed = await callback_task(app, TaskState.FAILED)
        assert failed.attempts == 2 and failed.outcome == "busy"
        assert app.task_book.open_tasks() == []
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                       what="agent1 free again")
        await assert_no_leaks(ari)


def _other_call(app, agent_id: str, task_id: str) -> str | None:
    """The id of the call the agent is on or rung for, if it is not ``task_id``."""
    call_id = app.acd.router.agent_snapshot(agent_id).call_id
    return call_id if call_id not in (None, task_id) else None


def _attempts(app, task_id: str, n: int):
    t = app.task_book.get(task_id)
    return t if t is not None and t.attempts >= n else None


async def test_an_agent_who_does_not_answer_misses_and_the_task_goes_to_the_next_agent(cb_cfg, phones):
    cfg = with_queue_overrides(cb_cfg, ring_timeout=3)
    phones(agent1="ignore", agent3="answer")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2000), timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
            for a in ("agent1", "agent3"):
                await wait_for(lambda a=a: app.acd.router.agent_snapshot(a).registered, 10, what=f"{a} registered")
            await app.acd.agent_action("agent3", "pause", "meeting")
            await app.acd.agent_action("agent1", "pause", "meeting")
            r = await asyncio.to_thread(callback_caller(cfg).wait)
            assert r.ok, r.stderr
            task = await callback_task(app, TaskState.WAITING)
            await app.acd.agent_action("agent1", "unpause")
            missed = await wait_for(lambda: _missed(app, task.id), 20, what="agent1's ring-no-answer")
            assert missed.attempts == 0                                  # the customer was never dialled
            assert app.acd.router.agent_snapshot("agent1").misses >= 1   # a miss like any other offer
            # the task still waits for an agent: why not agent3? paused (its meeting); agent1's offer is stored
            status, answer = await why_not(http, cfg, task.id, "agent3")
            assert status == 200 and answer["routable"] is True and answer["chosen"] is False, answer
            paused = reasons_by_code(answer).get("paused")
            assert paused is not None and paused["details"]["pause_reason"] == "meeting", answer
            assert answer["decisions"] and answer["decisions"][0]["agent_id"] == "agent1", answer
            status, answer = await why_not(http, cfg, task.id, "agent1")
            assert status == 200, answer
            codes = reasons_by_code(answer)
            assert answer["chosen"] or "missed_before" in codes, answer   # rung again, or ranked after its miss
            await app.acd.agent_action("agent3", "unpause")
            done = await wait_for(lambda: task_in(app, task.id, TaskState.DONE), 40, what="agent3 calls the customer back")
            assert done.history[-3].agent_id == "agent3"
            # every offer is a stored decision: agent1's (missed, maybe more than once), then agent3's
            decisions = await task_decisions(http, cfg, task.id)
            agents = [d["agent_id"] for d in decisions]
            assert agents[0] == "agent1" and agents[-1] == "agent3" and set(agents) == {"agent1", "agent3"}, decisions
            assert all(d["attempt"] == 1 for d in decisions), decisions   # no customer attempt was used up
            assert len(decisions) == sum(h.to_state is TaskState.OFFERED for h in done.history), decisions
            await assert_not_routable(http, cfg, task.id, "agent1", "done", "answered", decisions)
            # each step of the task is in the customer's CRM history (kind task), in order
            await app.task_history.flush()
            steps = [i for i in await app.crm.recent_interactions(CUSTOMER, 50) if i.call_id == task.id]
            assert steps and all(str(i.kind) == "task" for i in steps), steps
            assert [i.state for i in reversed(steps)] == ["waiting", *(h.to_state.value for h in done.history)], steps
            offered_to = [i.agent_id for i in reversed(steps) if i.state == "offered"]
            assert offered_to == agents, steps      # each offer's step names its agent, as the decisions do
            await wait_for(lambda: not agents_busy(app), 15, what="agents free")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
    finally:
        carrier.stop()


async def test_callbacks_survive_a_sigkill_in_their_order_and_are_served(cb_cfg, phones, tmp_path):
    """Two callbacks wait (agent1 paused); the app is killed with SIGKILL; the restarted app has both, in
    their original order, and serves both."""
    import aiohttp

    from tests.support.app_process import AppProcess
    phones("agent1")
    base = f"http://127.0.0.1:{cb_cfg.http.port}"
    auth = {"Authorization": f"Bearer {cb_cfg.http.admin_token}"}
    proc = AppProcess(cb_cfg, tmp_path / "app1").start()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for(lambda: _registered(http, base, auth), 15, what="agent1 registered (app 1)")
            async with http.post(f"{base}/api/agents/agent1/state", json={"action": "pause", "reason": "lunch"},
                                 headers=auth) as r:
                assert r.status == 200, await r.text()
            for exten in ("801", "803"):
                r = await asyncio.to_thread(callback_caller(cb_cfg, exten).wait)
                assert r.ok, r.stderr
            tasks = await wait_for(lambda: _waiting(http, base, cb_cfg.http.admin_token, 2), 15, what="two callbacks stored")
            proc.kill()
    finally:
        proc.kill()
    assert [t["kind"] for t in tasks] == ["callback", "callback"]      # both stored before the kill
    carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=1500), timeout=90,
                         calls=2)
    try:
        async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
            order = [t.number for t in app.task_book.open_tasks()]
            assert order == [CUSTOMER, OTHER]                              # both kept, oldest first
            await wait_for(lambda: [c.kind for c in app.acd.router.queue_snapshot("billing").calls]
                           == ["callback", "callback"], 15, what="both back in the queue")
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            assert app.acd.router.agent_snapshot("agent1").state.value == "paused"   # still at lunch
            await app.acd.agent_action("agent1", "unpause")
            await wait_for(lambda: not app.task_book.open_tasks(), 60, what="both callbacks served")
            await wait_for(lambda: not agents_busy(app), 15, what="agent1 free")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+"), OTHER.lstrip("+")]
    finally:
        carrier.stop()


def _missed(app, task_id: str):
    t = app.task_book.get(task_id)
    back = [h for h in (t.history if t is not None else ()) if h.from_state is TaskState.OFFERED
            and h.to_state is TaskState.WAITING and h.reason.startswith("agent ")]
    return t if back else None


async def _registered(http, base, auth) -> bool:
    async with http.get(f"{base}/api/agents/agent1", headers=auth) as r:
        return r.status == 200 and (await r.json()).get("registered") is True


async def _waiting(http, base, token, n: int):
    tasks = await api_tasks(http, base, token, "state=waiting")
    return tasks if tasks is not None and len(tasks) >= n else None


async def test_the_caller_types_another_number_and_confirms_it(cb_cfg, phones):
    """confirm: true: the caller hears the number ending 0777, presses 2, types 07700 900456 #, hears it
    read back, presses 1: the callback is for the typed number (as E.164), never in the path."""
    phones("agent1")
    async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await app.acd.agent_action("agent1", "pause", "meeting")
        steps = [("pause", 3500), ("dtmf", "2"), ("pause", 1200)] + [("dtmf", d) for d in TYPED + "#"] \
            + [("pause", 1500), ("dtmf", "1")]
        r = await asyncio.to_thread(SippProcess(SippCaller("804", steps=steps, end="wait_bye"),
                                                cb_cfg.asterisk.sip_port, 60).wait)
        assert r.ok, r.stderr
        task = await callback_task(app, TaskState.WAITING)
        assert task.number == "+44" + TYPED[1:]
        s = (await wait_for(lambda: list(app.recent_calls), 10, what="the call ended"))[-1]
        path = [str(p) for p in s.runner.path]
        assert "key 2" in path and path[path.index("key 1") + 1] == "callback billing", path
        assert TYPED not in " ".join(path) and "0456" not in " ".join(path)
        await assert_no_leaks(ari)


async def test_at_most_the_queues_share_of_agents_work_callbacks_and_a_caller_is_served_meanwhile(cb_cfg, phones):
    """task_agents_percent 50 with two agents: of two old callbacks and a later live caller, one agent
    calls back the first, the other answers the caller (not the second callback); the second callback is
    served once the first is done."""
    cfg = with_queue_overrides(cb_cfg, task_agents_percent=50)
    phones("agent1", "agent3")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2000), timeout=90,
                         calls=2)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari:
            for a in ("agent1", "agent3"):
                await wait_for(lambda a=a: app.acd.router.agent_snapshot(a).registered, 10, what=f"{a} registered")
                await app.acd.agent_action(a, "pause", "meeting")
            for exten in ("801", "803"):
                r = await asyncio.to_thread(callback_caller(cfg, exten).wait)
                assert r.ok, r.stderr
            first, second = sorted(app.task_book.open_tasks(), key=lambda t: t.position_time)
            live = SippProcess(SippCaller("802", steps=[("pause", 15000)]), cfg.asterisk.sip_port, 60)
            await wait_for(lambda: len(app.acd.router.queue_snapshot("billing").calls) == 3, 15,
                           what="two callbacks and a caller waiting")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["callback", "callback", "call"]
            await app.acd.agent_action("agent1", "unpause")
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").call_id == first.id, 10,
                           what="agent1 offered the oldest callback")
            await app.acd.agent_action("agent3", "unpause")
            callers = set(app.sessions)
            await wait_for(lambda: app.acd.router.agent_snapshot("agent3").call_id in callers, 10,
                           what="agent3 takes the caller, not the second callback")
            assert app.task_book.get(second.id).state is TaskState.WAITING
            await wait_for(lambda: task_in(app, second.id, TaskState.DONE), 60, what="the second callback served afterwards")
            assert task_in(app, first.id, TaskState.DONE)
            r = await asyncio.to_thread(live.wait)
            assert r.ok, r.stderr
            await wait_for(lambda: not agents_busy(app), 20, what="agents free")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
    finally:
        carrier.stop()
