"""Voicemail on a real call: a message is stored (a row and Asterisk's recording); a caller who hangs up at
once leaves no message: nothing is stored and the empty recording is deleted from Asterisk."""

from __future__ import annotations

import asyncio

import pytest

from ivr.flow.engine import _UNSAFE_ID_CHARS
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


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
    import dataclasses

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
