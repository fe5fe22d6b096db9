"""Voicemail on the real Asterisk: a message left through the IVR is stored (a row and Asterisk's
recording; a caller who hangs up at once leaves none, and the empty recording is deleted from Asterisk);
in a mailbox that is work (``voicemail.queues``) it becomes a task in that mailbox's queue, reaches an
agent whose phone plays it, and the agent calls the customer back through the trunk (a sipp UAS stands in
for the carrier) or closes it; the API lists, streams and deletes messages; retention deletes the row and
the recording."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from ivr.flow.engine import _UNSAFE_ID_CHARS
from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskKind, TaskState
from tests.e2e.callbacks_support import (
    CALLER_ID,
    CUSTOMER,
    OTHER,
    agent_free,
    assert_audio_both_ways,
    asterisk_with_trunks,
    bridge_of,
    task_in,
)
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

asterisk = asterisk_with_trunks()     # this module's own Asterisk, with the trunk 'carrier' (call backs)


async def _call(app, cfg, steps):
    before = len(app.recent_calls)
    r = await asyncio.to_thread(SippProcess(SippCaller("600", steps=steps), cfg.asterisk.sip_port, timeout=30).wait)
    assert r.ok, r.stderr
    await wait_for(lambda: len(app.recent_calls) > before, 10, what="the call ended")
    return app.recent_calls[-1]


async def test_a_message_is_stored_and_an_empty_one_is_not(flow_cfg):
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        # a real message: 3 s of speech, then the caller hangs up (the normal way to end one)
        await _call(app, flow_cfg, [("audio",), ("pause", 3000)])
        stored = await wait_for(lambda: app.storage.voicemails(), 10, what="the message stored")
        [vm] = stored
        assert vm["mailbox"] == "support" and vm["duration"] >= 1
        assert vm["recording"] in await ari.stored_recordings()
        # hung up at once: no message, and the empty recording does not linger on Asterisk
        s = await _call(app, flow_cfg, [("pause", 200)])
        await wait_for(lambda: ("voicemail", "support (empty)") in [(p.kind, p.detail) for p in s.runner.path],
                       10, what="the empty recording judged")
        assert len(app.storage.voicemails()) == 1
        empty = f"vm-{_UNSAFE_ID_CHARS.sub('_', s.channel_id)}-1"
        await wait_for(lambda: _gone(ari, empty), 5, what="the empty recording deleted")
        assert vm["recording"] in await ari.stored_recordings()     # the real message is kept
        await assert_no_leaks(ari)


async def _gone(ari, name: str) -> bool:
    return name not in await ari.stored_recordings()


async def test_a_message_can_be_listed_heard_and_deleted_for_real_through_the_api(flow_cfg):
    """What was "stored and nobody can ever hear it": the API lists it, streams its audio (Asterisk's
    recording: a WAV as long as the message) and deletes it (the file is gone from Asterisk's spool)."""
    import aiohttp

    from ivr.asterisk.runner import AsteriskInstance
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.web.port}/api/voicemails"
        auth = {"Authorization": f"Bearer {flow_cfg.http.admin_token}"}
        await _call(app, flow_cfg, [("audio",), ("pause", 3000)])
        [vm] = await wait_for(lambda: app.storage.voicemails(), 10, what="the message stored")
        async with http.get(base, headers=auth) as r:
            assert r.status == 200
            [listed] = (await r.json())["voicemails"]
        assert listed["id"] == vm["id"] and listed["mailbox"] == "support" and listed["duration"] >= 1
        assert listed["caller"] != vm["caller"] or not vm["caller"]        # masked like call records
        async with http.get(base + f"/{vm['id']}/audio") as r:
            assert r.status == 401                                             # the admin token, like all /api/
        async with http.get(base + f"/{vm['id']}/audio", headers=auth) as r:
            assert r.status == 200 and r.content_type.startswith("audio/")
            audio = await r.read()
        assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
        assert len(audio) >= 8000 * 2 * (vm["duration"] - 0.5)               # 8 kHz 16-bit: as long as the message
        spool = AsteriskInstance(flow_cfg).host_dir / "spool" / "recording" / f"{vm['recording']}.wav"
        assert spool.is_file()
        async with http.delete(base + f"/{vm['id']}", headers=auth) as r:
            assert r.status == 204
        assert not spool.exists() and vm["recording"] not in await ari.stored_recordings()
        assert app.storage.voicemails() == []
        for method, url, status, error_id in (("GET", f"{base}/{vm['id']}/audio", 404, "voicemail-not-found"),
                                              ("DELETE", f"{base}/{vm['id']}", 404, "voicemail-not-found"),
                                              ("GET", f"{base}/x1/audio", 400, "invalid-request")):
            async with http.request(method, url, headers=auth) as r:
                assert r.status == status and (await r.json())["error_id"] == error_id
        await assert_no_leaks(ari)


async def test_messages_past_retention_are_deleted_with_their_recording(flow_cfg):
    """`voicemail.retention_days`: the sweeper deletes the recording on Asterisk (the file is gone) and then
    the row, and leaves a message within retention alone."""
    from ivr.asterisk.runner import AsteriskInstance
    cfg = dataclasses.replace(flow_cfg, voicemail={"retention_days": 3 / 86400, "sweep_seconds": 1})
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _call(app, cfg, [("audio",), ("pause", 2500)])
        [vm] = await wait_for(lambda: app.storage.voicemails(), 10, what="the message stored")
        spool = AsteriskInstance(cfg).host_dir / "spool" / "recording" / f"{vm['recording']}.wav"
        assert spool.is_file()
        await wait_for(lambda: not app.storage.voicemails(), 15, what="the message deleted after 3 s")
        assert not spool.exists() and vm["recording"] not in await ari.stored_recordings()
        assert app.voicemail_retention.deleted == 1
        await assert_no_leaks(ari)


async def test_a_voicemail_is_work_the_agent_hears_it_then_calls_back_or_closes_it(cb_cfg, phones, asterisk):
    """voicemail.queues maps mailbox support to billing: a message a caller leaves through the IVR (after
    waiting in billing) is stored and is a voicemail task in billing, at the caller's place; agent1's phone
    takes it and plays that very recording (Asterisk's log: the message's file streamed to agent1's
    channel); then agent1 calls the customer back from the same line through the API (the carrier gets the
    INVITE for the caller's number, agent and customer are bridged with audio both ways) or, for a second
    message, closes it from the agent page (Chromium: the message's length and audio shown, a disposition
    chosen): no call."""
    import aiohttp

    from tests.support.browser import Browser
    cfg = dataclasses.replace(cb_cfg, voicemail={"queues": {"support": "billing"}})
    log = asterisk.host_dir / "log" / "messages.log"
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=4000, echo=True),
                         timeout=150)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http, \
                Browser() as b:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            api = f"http://127.0.0.1:{app.web.port}/api/tasks"
            auth = {"Authorization": f"Bearer {cfg.http.admin_token}"}
            await b.goto(f"http://127.0.0.1:{app.web.port}/agent/agent1#token={cfg.http.admin_token}")
            for n, (action, number) in enumerate((("call_back", CUSTOMER), ("close", OTHER))):
                await app.acd.agent_action("agent1", "pause", "meeting")
                before = log.stat().st_size
                # the caller waits 2 s in billing, then speaks for a while after the beep and hangs up
                caller = SippCaller("805", steps=[("pause", 2500), ("audio",), ("pause", 6000)],
                                    caller_number=number)
                r = await asyncio.to_thread(SippProcess(caller, cfg.asterisk.sip_port, 40).wait)
                assert r.ok, r.stderr
                # left: stored (the row and Asterisk's recording) ...
                task = await wait_for(lambda: next((t for t in app.task_book.open_tasks()
                                                    if t.kind is TaskKind.VOICEMAIL), None), 15,
                                      what="the voicemail task")
                vm = app.storage.voicemail(int(task.source.removeprefix("voicemail:")))
                assert vm is not None and vm["mailbox"] == "support" and vm["duration"] >= 2, vm
                assert len(app.storage.voicemails()) == n + 1
                assert vm["recording"] in await ari.stored_recordings()
                # ... and routed: work for its mailbox's queue, waiting there like a caller
                assert task.number == number and task.queue == "billing" and task.state is TaskState.WAITING
                assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["voicemail"]
                async with http.post(f"{api}/{task.id}/actions", json={"action": action}, headers=auth) as resp:
                    assert resp.status == 409          # nobody is listening to it yet
                    assert (await resp.json())["error_id"] == "task-not-actionable"
                await app.acd.agent_action("agent1", "unpause")
                await wait_for(lambda t=task.id, a=action: app.task_legs.action_refused(t, a) is None, 20,
                               what="agent1 listening to the message")
                offered = next(h for h in app.task_book.get(task.id).history if h.to_state is TaskState.OFFERED)
                assert offered.agent_id == "agent1"
                # played to the agent: this message's recording streamed to agent1's phone
                leg = next(c for c in await ari.channels() if c.id.startswith(f"{task.id}-a"))
                assert leg.name.startswith("PJSIP/agent1-"), leg.name
                played = re.compile(rf"<{re.escape(leg.name)}> Playing '(?:[^']*/)?"
                                    rf"{re.escape(vm['recording'])}(?:\.[a-z0-9]+)?' ")

                def heard(played=played, before=before) -> bool:
                    return bool(played.search(log.read_bytes()[before:].decode(errors="replace")))
                await wait_for(heard, 10, what="the message played to the agent's phone")
                if action == "call_back":
                    async with http.post(f"{api}/{task.id}/actions", json={"action": "call_back"},
                                         headers=auth) as resp:
                        assert resp.status == 202, await resp.text()
                    # called back: the customer reached through the trunk, bridged with the agent's line
                    bridged = await wait_for(lambda t=task.id: bridge_of(ari, t), 30,
                                             what="agent and customer bridged")
                    assert leg.id in bridged.channels
                    await asyncio.sleep(1.5)
                    await assert_audio_both_ways(ari, bridged)
                else:                                   # from the agent page
                    length = await b.wait_text("vm-length", lambda t: t.strip() not in ("", "-"))
                    assert int(length) >= 2
                    await wait_for(lambda: b.eval("document.getElementById('vm-audio').src.startsWith('blob:')"),
                                   10, what="the message's audio loaded in the page")
                    await b.eval("document.getElementById('vm-disposition').value = 'spam';"
                                 "document.getElementById('vm-close').click()")
                done = await wait_for(lambda t=task.id: task_in(app, t, TaskState.DONE), 30,
                                  what="the voicemail handled")
                assert done.outcome == ("answered" if action == "call_back" else "spam")
                await wait_for(lambda: agent_free(app), 15, what="agent1 free again")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        [invite] = carrier.invites()                    # the close: no call
        assert invite.dialled.lstrip("+") == CUSTOMER.lstrip("+"), invite
        assert CALLER_ID.lstrip("+") in invite.user_of("From"), invite
    finally:
        carrier.stop()
