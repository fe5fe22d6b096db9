"""A real SIP caller dials the real Asterisk: the app answers, plays a prompt, media flows, nothing leaks."""

from __future__ import annotations

import asyncio

import pytest

from ivr.app import App
from ivr.ari import ChannelDtmfReceived, NotFound, StasisStart
from ivr.calls.session import PromptAndHangup
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


async def _in_thread(fn, *a):
    return await asyncio.to_thread(fn, *a)


async def test_call_answered_prompt_played_media_flows_and_nothing_leaks(cfg):
    factory = lambda app, ev: PromptAndHangup(app.ari, ev.channel)
    async with running_app(cfg, factory) as app, ari_client(cfg) as ari:
        caller = SippProcess(SippCaller("100", steps=[("audio",)], end="wait_bye"), cfg.asterisk.sip_port)
        # while the prompt plays, Asterisk's own RTP counters prove that media flows both ways
        chans = await wait_for(lambda: ari.channels(), 10, what="the inbound channel")
        stats = {}

        async def media_counted():
            nonlocal stats
            try:
                stats = await ari.rtp_statistics(chans[0].id)
            except NotFound:    # listed before its media is set up: "404 Statistics not found" for a moment
                return False
            return stats.get("txcount", 0) > 10 and stats.get("rxcount", 0) > 10
        await wait_for(media_counted, 5, 0.1, "RTP packets both ways")
        result = await _in_thread(caller.wait)
        assert result.ok, result.stderr
        assert chans[0].exten == "100"
        assert app.calls_started == 1
        await assert_no_leaks(ari)
        await wait_for(lambda: not app.sessions, 5, what="session cleanup")
        assert app.dispatcher.active_keys == 0 or await wait_for(lambda: app.dispatcher.active_keys == 0, 5)


async def test_caller_hangs_up_mid_prompt_leaves_nothing(cfg):
    factory = lambda app, ev: PromptAndHangup(app.ari, ev.channel, prompt="sound:demo-congrats")  # ~9 s prompt
    async with running_app(cfg, factory) as app, ari_client(cfg) as ari:
        caller = SippProcess(SippCaller("100", steps=[("pause", 1500)], end="hangup"), cfg.asterisk.sip_port)
        result = await _in_thread(caller.wait)
        assert result.ok, result.stderr
        await assert_no_leaks(ari)
        await wait_for(lambda: not app.sessions, 5, what="session cleanup")


class _Exploding(PromptAndHangup):
    """A session whose DTMF handler raises: must not affect any other call."""

    async def on_event(self, ev):
        if isinstance(ev, ChannelDtmfReceived):
            raise RuntimeError("boom (test)")
        await super().on_event(ev)


async def test_handler_raising_on_one_call_does_not_affect_a_concurrent_call(cfg):
    def factory(app: App, ev: StasisStart):
        if ev.channel.exten == "666":
            return _Exploding(app.ari, ev.channel, prompt="sound:demo-congrats")
        return PromptAndHangup(app.ari, ev.channel, prompt="sound:hello-world")

    async with running_app(cfg, factory) as app, ari_client(cfg) as ari:
        bad = SippProcess(SippCaller("666", steps=[("pause", 800), ("dtmf", "5"), ("info", "6"),
                                                   ("pause", 1000)], end="hangup"), cfg.asterisk.sip_port)
        await asyncio.sleep(0.3)
        good = SippProcess(SippCaller("100", end="wait_bye"), cfg.asterisk.sip_port)
        good_r, bad_r = await asyncio.gather(_in_thread(good.wait), _in_thread(bad.wait))
        assert good_r.ok, good_r.stderr       # the good call heard its prompt and was hung up by the app
        assert bad_r.ok, bad_r.stderr
        assert app.dispatcher.handler_errors >= 2   # both DTMF (RFC 2833 and INFO) reached the bad handler
        await assert_no_leaks(ari)
