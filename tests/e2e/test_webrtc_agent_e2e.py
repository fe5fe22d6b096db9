"""The agent page's browser phone on the real Asterisk: a headless Chromium with a fake microphone logs in as
a WebRTC agent, its page registers over the app's SIP websocket relay, rings with the screen pop when a sipp
caller who went through the IVR and the technical queue is offered, answers, and audio flows both ways
(Asterisk's RTP counters on the agent leg and getStats() in the page); hold, mute, hang up from the page.

Asterisk never offers a loopback ICE candidate, so the browser runs in a network namespace this module
creates (tests/support/netns.py): the app's HTTP and Asterisk's WebRTC media bind the host end of the veth
pair, SIP callers and ARI stay on loopback.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import struct
import time
import wave
from pathlib import Path

import aiohttp
import pytest

from ivr.asterisk import AsteriskInstance
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.netns import veth_netns
from tests.support.ns_browser import NsBrowser
from tests.support.stack import ari_client, assert_no_leaks, make_test_config, running_app, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
VIP = "+442079460001"          # Victoria Sterling in the sample CRM
AGENT, ENDPOINT = "agent5", "PJSIP/agent5"   # the sample browser agent (config/ivr.yaml: phone: webrtc)
SENDERS = "ivrPhone.session.connection.getSenders()"
MIN_PACKETS = 50               # 20 ms packets: one second of audio each way


@pytest.fixture(scope="module")
def ns():
    with veth_netns() as n:
        yield n


@pytest.fixture(scope="module")
def asterisk(ns):
    """This module's own Asterisk: WebRTC media on the veth's host end, the app's HTTP there too."""
    cfg = make_test_config(asterisk={"webrtc_media_address": ns.host_address},
                           http={"bind_address": ns.host_address})
    inst = AsteriskInstance(cfg)
    inst.start()
    yield inst
    inst.remove()


@pytest.fixture
def tone(tmp_path) -> str:
    """The fake microphone: 3 s of a 440 Hz tone (Chromium loops it)."""
    path = tmp_path / "mic.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 48000)))
                               for i in range(3 * 48000)))
    return str(path)


async def _agent_user(base: str, admin_token: str) -> tuple[str, str]:
    """An agent login for agent5, created through the API with the bootstrap admin token."""
    user, password = "eve", secrets.token_urlsafe(16)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/users", headers={"Authorization": f"Bearer {admin_token}"},
                             json={"username": user, "password": password, "role": "agent",
                                   "agent_id": AGENT}) as r:
            assert r.status in (200, 201), await r.text()
    return user, password


async def _agent_leg(ari) -> str:
    for c in await ari.channels():
        if c.name.startswith(ENDPOINT + "-"):
            return c.id
    return ""


async def test_browser_phone_answers_a_queued_call_with_audio_both_ways(flow_cfg, ns, tone):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, ring_timeout=30, announce_frequency=None)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        base = f"http://{ns.host_address}:{app.web.port}"
        user, password = await _agent_user(base, cfg.http.admin_token)
        async with NsBrowser(ns, secure_origin=base, fake_audio=tone) as b:
            await b.goto(f"{base}/login")
            await _loaded(b, "/login")
            login = await b.eval(
                f"fetch('/api/login', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, "
                f"body: JSON.stringify({{username: {json.dumps(user)}, password: {json.dumps(password)}}})}})"
                f".then(r => r.status)", await_promise=True)
            assert login == 200
            await b.goto(f"{base}/agent")
            await _loaded(b, "/agent")
            # the page registers the browser phone: Asterisk sees agent5's contact, the ACD its presence
            await b.wait_text("phone-state", lambda t: t.startswith("ready"), timeout=20)
            await wait_for(lambda: app.acd.router.agent_snapshot(AGENT).registered, 10,
                           what="agent5 registered")
            # the agent starts logged in (acd.auto_login); pause and come back from the page
            await b.wait_text("agent-state", lambda t: "available" in t)
            await b.eval("document.querySelector('button[data-action=pause]').click()")
            await b.wait_text("agent-state", lambda t: "paused" in t)
            await b.eval("document.querySelector('button[data-action=available]').click()")
            await b.wait_text("agent-state", lambda t: "available" in t)
            await wait_for(lambda: app.acd.router.agent_snapshot(AGENT).state.value == "available", 5,
                           what="agent5 available")

            # the caller speaks (a 7 s recording) and waits for Asterisk to end the call
            caller = SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "2"), ("audio",)],
                                            end="wait_bye", caller_number=VIP),
                                 cfg.asterisk.sip_port, timeout=90)
            # rings in the page, and the screen pop is there at the same moment
            await b.wait_text("phone-state", lambda t: t.startswith("ringing"), timeout=20)
            rang = time.monotonic()
            name = await b.wait_text("customer-name", lambda t: "Victoria" in t, timeout=5)
            assert time.monotonic() - rang < 2 and name.strip() == "Victoria Sterling"
            await b.eval("document.getElementById('phone-answer').click()")
            await b.wait_text("phone-state", lambda t: t.startswith("in call"), timeout=15)
            await wait_for(lambda: app.acd.router.agent_snapshot(AGENT).state.value == "on_call", 10,
                           what="agent5 on call")

            leg = await _agent_leg(ari)
            assert leg, "no agent leg on Asterisk"
            stats: dict = {}

            async def asterisk_counts() -> bool:
                nonlocal stats
                stats = await ari.rtp_statistics(leg)
                return stats.get("txcount", 0) > MIN_PACKETS and stats.get("rxcount", 0) > MIN_PACKETS
            await wait_for(asterisk_counts, 10, 0.2, "RTP both ways on the agent leg (Asterisk)")
            page: dict = {}

            async def page_counts() -> bool:
                nonlocal page
                page = await b.eval("ivrPhone.stats()", await_promise=True) or {}
                return page.get("sent", 0) > MIN_PACKETS and page.get("received", 0) > MIN_PACKETS
            await wait_for(page_counts, 10, 0.2, "RTP both ways in the page (getStats)")
            assert page["energy"] > 0, page          # the caller's speech is heard, not only silence
            await b.screenshot(ARTIFACTS / "agent-page-webrtc.png")

            # mute: the button says so and the browser's sender track is off; unmute restores it
            await b.eval("document.getElementById('phone-mute').click()")
            await b.wait_text("phone-state", lambda t: "muted" in t)
            assert await b.eval(f"{SENDERS}.every(s => !s.track || !s.track.enabled)")
            await b.eval("document.getElementById('phone-mute').click()")
            await b.wait_text("phone-state", lambda t: t == "in call")
            assert await b.eval(f"{SENDERS}.some(s => s.track && s.track.enabled)")

            # hold: a re-INVITE (sendonly) that Asterisk accepts; resume (sendrecv), and media flows again
            await b.eval("document.getElementById('phone-hold').click()")
            await b.wait_text("phone-state", lambda t: t == "on hold", timeout=10)
            await wait_for(lambda: _direction(b, "sendonly"), 10, 0.1, "the hold re-INVITE answered")
            await b.eval("document.getElementById('phone-hold').click()")
            await b.wait_text("phone-state", lambda t: t == "in call", timeout=10)
            await wait_for(lambda: _direction(b, "sendrecv"), 10, 0.1, "the resume re-INVITE answered")
            before = (await b.eval("ivrPhone.stats()", await_promise=True))["received"]
            await wait_for(lambda: _more(b, before), 10, 0.2, "audio from Asterisk again after resume")

            # hang up from the page: the agent leg goes, the caller goes on to the flow's next node (bye)
            await b.eval("document.getElementById('phone-hangup').click()")
            await b.wait_text("phone-state", lambda t: t.startswith("ready"), timeout=10)
            assert (await asyncio.to_thread(caller.wait)).ok
            await assert_no_leaks(ari)
            await wait_for(lambda: app.acd.router.agent_snapshot(AGENT).state.value == "available", 10,
                           what="agent5 available after the call")
        # the browser is gone: its registration goes with the websocket
        await wait_for(lambda: not app.acd.router.agent_snapshot(AGENT).registered, 15,
                       what="agent5 unregistered once the page is closed")


async def _loaded(b: NsBrowser, path: str) -> None:
    async def done() -> bool:
        return bool(await b.eval(f"location.pathname === {json.dumps(path)} && "
                                 f"document.readyState === 'complete'"))
    await wait_for(done, 15, 0.1, f"{path} loaded")


async def _direction(b: NsBrowser, want: str) -> bool:
    """The negotiated direction of the page's audio transceiver (after the last offer/answer)."""
    return await b.eval("ivrPhone.session.connection.getTransceivers()[0].currentDirection") == want


async def _more(b: NsBrowser, before: int) -> bool:
    s = await b.eval("ivrPhone.stats()", await_promise=True) or {}
    return s.get("received", 0) > before + MIN_PACKETS


async def test_phone_credentials_only_for_the_agent_itself(flow_cfg, ns):
    """GET /api/me/phone: 401 without a login, 404 no-phone for an admin (a phone's password is its agent's
    only), and the agent's relay refuses a plain GET with a clear error."""
    async with running_app(flow_cfg) as app:
        base = f"http://{ns.host_address}:{app.web.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/me/phone") as r:
                assert r.status == 401
            admin = {"Authorization": f"Bearer {flow_cfg.http.admin_token}"}
            async with http.get(f"{base}/api/me/phone", headers=admin) as r:
                assert r.status == 404 and (await r.json())["error_id"] == "no-phone"
            async with http.get(f"{base}/api/me/phone/ws", headers=admin) as r:
                assert r.status == 404 and (await r.json())["error_id"] == "no-phone"
