"""Callbacks on the real Asterisk: a caller who waited asks for a callback (the flow's callback node); the
task keeps the caller's place in the queue; when it reaches an agent, the agent's phone (pyVoIP) rings
first, then the customer is dialled out through the configured trunk, where a sipp UAS stands in for the
carrier (it must get the customer's number); audio flows both ways. A busy customer is retried after the
delay, then the task fails. Nothing leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

from ivr.config import TrunkConfig
from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.sim.ports import free_udp_block
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskKind, TaskState
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, make_test_config, running_app, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CUSTOMER = "+441632960777"        # the number the caller asks to be called back on
CALLER_ID = "+442079460000"       # what the trunk presents

FLOW = f"""
flow: cb_queue
entry: number
nodes:
  number:
    type: set
    variables: {{cbnum: "{CUSTOMER}"}}
    next: queue
  queue:
    type: queue
    queue: billing
    max_wait: 2
    on_timeout: callback
  callback:
    type: callback
    queue: billing
    variable: cbnum
    next: bye
  bye:
    type: hangup
    prompt: sound:vm-goodbye
"""

LIVE = """
flow: cb_live
entry: queue
nodes:
  queue:
    type: queue
    queue: billing
"""

OTHER = "+441632960888"
FLOW2 = FLOW.replace("cb_queue", "cb_queue2").replace(CUSTOMER, OTHER)
FLOW_CONFIRM = FLOW.replace("cb_queue", "cb_confirm").replace("    variable: cbnum\n", "    variable: cbnum\n"
                                                               "    confirm: true\n")
TYPED = "07700900456"
VOICEMAIL = """
flow: cb_voicemail
entry: queue
nodes:
  queue:
    type: queue
    queue: billing
    max_wait: 2
    on_timeout: message
  message:
    type: voicemail
    mailbox: support
    max_seconds: 15
"""
WEB_KEY = "website-key-for-tests"


@pytest.fixture(scope="module")
def asterisk():
    """This module's own Asterisk, with a trunk 'carrier' to a loopback port where a sipp UAS listens."""
    from ivr.asterisk import AsteriskError, AsteriskInstance

    base = make_test_config()
    trunk = TrunkConfig(name="carrier", host="127.0.0.1", port=free_udp_block(2), caller_id=CALLER_ID)
    inst = AsteriskInstance(dataclasses.replace(base, trunks=(trunk,)))
    try:
        inst.start()
    except AsteriskError as e:
        pytest.fail(f"cannot start the real Asterisk for e2e tests: {e}")
    yield inst
    inst.remove()


@pytest.fixture
def cb_cfg(cfg, tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    for f in (REPO / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    (d / "cb_queue.yaml").write_text(FLOW)
    (d / "cb_live.yaml").write_text(LIVE)
    (d / "cb_queue2.yaml").write_text(FLOW2)
    (d / "cb_confirm.yaml").write_text(FLOW_CONFIRM)
    (d / "cb_voicemail.yaml").write_text(VOICEMAIL)
    routes = {**cfg.flows.routes, "801": "cb_queue", "802": "cb_live", "803": "cb_queue2", "804": "cb_confirm",
              "805": "cb_voicemail"}
    crm = {**cfg.crm, "sqlite": {**cfg.crm.get("sqlite", {}), "path": str(tmp_path / "crm.sqlite")}}
    cfg = dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, dir=str(d), routes=routes),
                              storage=dataclasses.replace(cfg.storage, path=str(tmp_path / "ivr.sqlite")),
                              crm=crm, callbacks={"retry_delay": 2, "max_attempts": 2, "ring_seconds": 8},
                              web_callbacks={"topics": {"billing": "billing"}, "default_region": "GB"})
    return with_queue_overrides(cfg, wrap_up=0, announce_frequency=None, retry=0)


def _caller(cfg, ms: int = 0, exten: str = "801") -> SippProcess:
    return SippProcess(SippCaller(exten, steps=[], end="wait_bye"), cfg.asterisk.sip_port, 40)


async def _task(app, state: TaskState | None = None):
    def find():
        tasks = app.task_book.recent(kind=TaskKind.CALLBACK)
        return tasks[0] if tasks and (state is None or tasks[0].state is state) else None
    return await wait_for(find, 30, what=f"a callback task {state.value if state else ''}")


async def test_a_callback_keeps_the_callers_place_and_reaches_the_customer_through_the_trunk(cb_cfg, phones):
    phones("agent1")
    carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=4000, echo=True), timeout=60)
    try:
        async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            await app.acd.agent_action("agent1", "pause", "meeting")
            # the caller waits 2 s, asks for a callback, hears goodbye, is hung up
            r = await asyncio.to_thread(_caller(cb_cfg, 15000).wait)
            assert r.ok, r.stderr
            task = await _task(app, TaskState.WAITING)
            assert task.number == CUSTOMER and task.queue == "billing"
            snap = app.acd.router.call_snapshot(task.id)
            assert snap.kind == "callback" and snap.wait >= 2.0          # its place: the caller's join time
            # a caller who joins now waits behind the callback
            later = SippProcess(SippCaller("802", steps=[("pause", 20000)]), cb_cfg.asterisk.sip_port, 60)
            await wait_for(lambda: len(app.acd.router.queue_snapshot("billing").calls) == 2, 15,
                           what="a live caller behind the callback")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["callback", "call"]
            await app.acd.agent_action("agent1", "unpause")
            # agent first (the phone answers), then the customer through the trunk; bridged, audio both ways
            bridged = await wait_for(lambda: _bridge_of(ari, task.id), 30, what="agent and customer bridged")
            await asyncio.sleep(1.5)
            for leg in bridged.channels:
                stats = await ari.rtp_statistics(leg)
                assert stats.get("txcount", 0) > 0 and stats.get("rxcount", 0) > 0, (leg, stats)
            done = await _task(app, TaskState.DONE)
            assert done.outcome == "answered" and done.attempts == 0
            assert [h.to_state for h in done.history][-3:] == [TaskState.OFFERED, TaskState.CONNECTING,
                                                              TaskState.DONE]
            assert done.history[-3].agent_id == "agent1"
            assert done.history[-3].reason.startswith("offered: ") and "candidates [agent1" in done.history[-3].reason
            # the customer hangs up after 4 s: the agent's leg goes too; then agent1 serves the live caller
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").call_id not in (None, task.id), 30,
                           what="agent1 takes the live caller next")
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
        r = await asyncio.to_thread(_caller(cb_cfg, 15000).wait)
        assert r.ok, r.stderr
        task = await _task(app, TaskState.WAITING)
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
        failed = await _task(app, TaskState.FAILED)
        assert failed.attempts == 2 and failed.outcome == "busy"
        assert app.task_book.open_tasks() == []
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                       what="agent1 free again")
        await assert_no_leaks(ari)


def _attempts(app, task_id: str, n: int):
    t = app.task_book.get(task_id)
    return t if t is not None and t.attempts >= n else None


async def _bridge_of(ari, task_id: str):
    for b in await ari.bridges():
        if b.id.startswith(f"call-{task_id}") and len(b.channels) == 2:
            return b
    return None


async def test_a_web_request_reaches_an_agent_and_the_customer_and_a_second_one_updates_it(cb_cfg, phones):
    import aiohttp
    cfg = dataclasses.replace(cb_cfg, web_callbacks={**cb_cfg.web_callbacks, "api_key": WEB_KEY})
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2500, echo=True),
                         timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            await app.acd.agent_action("agent1", "pause", "meeting")
            url = f"http://127.0.0.1:{app.web.port}/api/callbacks"
            auth = {"Authorization": f"Bearer {WEB_KEY}"}
            async with http.post(url, json={"topic": "billing", "number": "01632 960777"}) as r:
                assert r.status == 401                                   # the website's key is required
            async with http.post(url, json={"topic": "billing", "number": "01632 960777"}, headers=auth) as r:
                assert r.status == 202, await r.text()
                first = await r.json()
            async with http.post(url, json={"topic": "billing", "number": "+44 1632 960777", "name": "Ada"},
                                 headers=auth) as r:
                assert r.status == 202
                again = await r.json()
            assert again["id"] == first["id"] and again["updated"] is True
            [task] = app.task_book.open_tasks()
            assert (task.kind, task.number, task.name) == (TaskKind.WEB_CALLBACK, CUSTOMER, "Ada")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["web_callback"]
            await app.acd.agent_action("agent1", "unpause")
            await wait_for(lambda: _bridge_of(ari, task.id), 30, what="agent and customer bridged")
            done = await wait_for(lambda: _done(app, task.id), 30, what="the web request done")
            assert done.outcome == "answered"
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                           what="agent1 free again")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+")]   # one call only
    finally:
        carrier.stop()


async def test_an_agent_who_does_not_answer_misses_and_the_task_goes_to_the_next_agent(cb_cfg, phones):
    cfg = with_queue_overrides(cb_cfg, ring_timeout=3)
    phones(agent1="ignore", agent3="answer")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2000), timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari:
            for a in ("agent1", "agent3"):
                await wait_for(lambda a=a: app.acd.router.agent_snapshot(a).registered, 10, what=f"{a} registered")
            await app.acd.agent_action("agent3", "pause", "meeting")
            await app.acd.agent_action("agent1", "pause", "meeting")
            r = await asyncio.to_thread(_caller(cfg).wait)
            assert r.ok, r.stderr
            task = await _task(app, TaskState.WAITING)
            await app.acd.agent_action("agent1", "unpause")
            missed = await wait_for(lambda: _missed(app, task.id), 20, what="agent1's ring-no-answer")
            assert missed.attempts == 0                                  # the customer was never dialled
            assert app.acd.router.agent_snapshot("agent1").misses >= 1   # a miss like any other offer
            await app.acd.agent_action("agent3", "unpause")
            done = await wait_for(lambda: _done(app, task.id), 40, what="agent3 calls the customer back")
            assert done.history[-3].agent_id == "agent3"
            await wait_for(lambda: not _busy(app), 15, what="agents free")
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
                r = await asyncio.to_thread(_caller(cb_cfg, exten=exten).wait)
                assert r.ok, r.stderr
            tasks = await wait_for(lambda: _api_tasks(http, base, auth, 2), 15, what="two callbacks stored")
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
            await wait_for(lambda: not _busy(app), 15, what="agent1 free")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+"), OTHER.lstrip("+")]
    finally:
        carrier.stop()


def _done(app, task_id: str):
    t = app.task_book.get(task_id)
    return t if t is not None and t.state is TaskState.DONE else None


def _missed(app, task_id: str):
    t = app.task_book.get(task_id)
    back = [h for h in (t.history if t is not None else ()) if h.from_state is TaskState.OFFERED
            and h.to_state is TaskState.WAITING and h.reason.startswith("agent ")]
    return t if back else None


def _busy(app) -> bool:
    return any(s.state.value != "available" for s in app.acd.router.agents_snapshot()
               if s.agent_id in ("agent1", "agent3") and s.registered)


async def _registered(http, base, auth) -> bool:
    async with http.get(f"{base}/api/agents/agent1", headers=auth) as r:
        return r.status == 200 and (await r.json()).get("registered") is True


async def _api_tasks(http, base, auth, n: int):
    async with http.get(f"{base}/api/tasks?state=waiting", headers=auth) as r:
        if r.status != 200:
            return None
        tasks = (await r.json())["tasks"]
        return tasks if len(tasks) >= n else None


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
        task = await _task(app, TaskState.WAITING)
        assert task.number == "+44" + TYPED[1:]
        s = (await wait_for(lambda: list(app.recent_calls), 10, what="the call ended"))[-1]
        path = [str(p) for p in s.runner.path]
        assert "key 2" in path and path[path.index("key 1") + 1] == "callback billing", path
        assert TYPED not in " ".join(path) and "0456" not in " ".join(path)
        await assert_no_leaks(ari)


async def test_a_voicemail_is_work_the_agent_hears_it_then_calls_back_or_closes_it(cb_cfg, phones, asterisk):
    """voicemail.queues maps mailbox support to billing: a message left there is a task; the agent it
    reaches hears the message on their phone (Asterisk's log: the recording streamed to the agent's
    channel), then calls the customer back from the same line through the API (the carrier gets the
    INVITE) or, for a second message, closes it from the agent page (Chromium: the message's length and
    audio shown, a disposition chosen): no call."""
    import re

    import aiohttp

    from tests.support.browser import Browser
    cfg = dataclasses.replace(cb_cfg, voicemail={"queues": {"support": "billing"}})
    log = asterisk.host_dir / "log" / "messages.log"
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2500, echo=True),
                         timeout=150)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http, \
                Browser() as b:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            api = f"http://127.0.0.1:{app.web.port}/api/tasks"
            auth = {"Authorization": f"Bearer {cfg.http.admin_token}"}
            await b.goto(f"http://127.0.0.1:{app.web.port}/agent/agent1#token={cfg.http.admin_token}")
            for n, action in enumerate(("call_back", "close")):
                await app.acd.agent_action("agent1", "pause", "meeting")
                before = log.stat().st_size
                caller = SippCaller("805", steps=[("pause", 2500), ("audio",), ("pause", 6000)],
                                    caller_number=CUSTOMER if n == 0 else OTHER)
                r = await asyncio.to_thread(SippProcess(caller, cfg.asterisk.sip_port, 40).wait)
                assert r.ok, r.stderr
                task = await wait_for(lambda: next((t for t in app.task_book.open_tasks()
                                                    if t.kind is TaskKind.VOICEMAIL), None), 15,
                                      what="the voicemail task")
                assert task.number == (CUSTOMER if n == 0 else OTHER) and task.queue == "billing"
                async with http.post(f"{api}/{task.id}/actions", json={"action": action}, headers=auth) as resp:
                    assert resp.status == 409          # nobody is listening to it yet
                await app.acd.agent_action("agent1", "unpause")
                await wait_for(lambda: app.task_legs.action_refused(task.id, action) is None, 20,
                               what="agent1 listening to the message")
                leg = next(c for c in await ari.channels() if c.id.startswith(f"{task.id}-a"))

                def heard() -> bool:
                    text = log.read_bytes()[before:].decode(errors="replace")
                    return bool(re.search(rf"<{re.escape(leg.name)}> Playing '[^']*vm-", text))
                await wait_for(heard, 10, what="the message played to the agent's phone")
                if action == "call_back":
                    async with http.post(f"{api}/{task.id}/actions", json={"action": "call_back"},
                                         headers=auth) as resp:
                        assert resp.status == 202, await resp.text()
                else:                                   # from the agent page
                    length = await b.wait_text("vm-length", lambda t: t.strip() not in ("", "-"))
                    assert int(length) >= 2
                    await wait_for(lambda: b.eval("document.getElementById('vm-audio').src.startsWith('blob:')"),
                                   10, what="the message's audio loaded in the page")
                    await b.eval("document.getElementById('vm-disposition').value = 'spam';"
                                 "document.getElementById('vm-close').click()")
                done = await wait_for(lambda: _done(app, task.id), 30, what="the voicemail handled")
                assert done.outcome == ("answered" if action == "call_back" else "spam")
                await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                               what="agent1 free again")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+")]   # the close: no call
    finally:
        carrier.stop()


async def test_a_scheduled_web_request_waits_for_its_window_and_one_left_unserved_expires(cb_cfg, phones):
    """A request for "from in 4 s": agent1 is free but not offered it before then, and is after (the customer
    is called); a second request whose window closes while nobody is free expires (no call)."""
    import time as _time
    from datetime import datetime, timezone

    import aiohttp
    cfg = dataclasses.replace(cb_cfg, web_callbacks={**cb_cfg.web_callbacks, "api_key": WEB_KEY,
                                                     "min_window_minutes": 0.05})
    iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()     # noqa: E731
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=1500), timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            url = f"http://127.0.0.1:{app.web.port}/api/callbacks"
            auth = {"Authorization": f"Bearer {WEB_KEY}"}
            now = _time.time()
            body = {"topic": "billing", "number": CUSTOMER, "window": {"from": iso(now + 4), "to": iso(now + 600)}}
            async with http.post(url, json=body, headers=auth) as r:
                assert r.status == 202, await r.text()
                first = await r.json()
            await asyncio.sleep(2.5)
            assert app.task_book.get(first["id"]).state is TaskState.WAITING          # held back: not offered
            assert app.acd.router.agent_snapshot("agent1").state.value == "available"
            done = await wait_for(lambda: _done(app, first["id"]), 30, what="served once its window opened")
            offered_at = next(h.at for h in done.history if h.to_state is TaskState.OFFERED)
            assert offered_at >= now + 4
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                           what="agent1 free again")
            await app.acd.agent_action("agent1", "pause", "meeting")
            now = _time.time()
            body = {"topic": "billing", "number": OTHER, "window": {"from": iso(now), "to": iso(now + 4)}}
            async with http.post(url, json=body, headers=auth) as r:
                assert r.status == 202, await r.text()
                second = await r.json()
            expired = await wait_for(lambda: _state(app, second["id"], TaskState.EXPIRED), 15,
                                     what="the unserved request expired")
            assert expired.outcome == "window_closed" and app.acd.router.queue_snapshot("billing").calls == ()
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+")]
    finally:
        carrier.stop()


def _state(app, task_id: str, state: TaskState):
    t = app.task_book.get(task_id)
    return t if t is not None and t.state is state else None


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
                r = await asyncio.to_thread(_caller(cfg, exten=exten).wait)
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
            await wait_for(lambda: _done(app, second.id), 60, what="the second callback served afterwards")
            assert _done(app, first.id)
            r = await asyncio.to_thread(live.wait)
            assert r.ok, r.stderr
            await wait_for(lambda: not _busy(app), 20, what="agents free")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
    finally:
        carrier.stop()
