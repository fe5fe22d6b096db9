"""The app survives Asterisk restarts and websocket drops: it reconnects, re-subscribes, takes the next call."""

from __future__ import annotations

import asyncio

import pytest

from ivr.calls.session import PromptAndHangup
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _prompt(app, ev):
    return PromptAndHangup(app.ari, ev.channel)


async def _call_ok(cfg) -> None:
    r = await asyncio.to_thread(SippProcess(SippCaller("100", end="wait_bye"), cfg.asterisk.sip_port).wait)
    assert r.ok, r.stderr


async def _subscribed(ari, source: str) -> bool:
    app = await ari.application()
    return source in app.get("endpoint_ids", []) or source in str(app)


async def test_websocket_drop_reconnects_resubscribes_and_serves_next_call(cfg):
    async with running_app(cfg, _prompt) as app, ari_client(cfg) as ari:
        app.add_subscription("endpoint:PJSIP/caller")
        await app.events.drop()
        await wait_for(lambda: app.events.reconnects >= 1 and app.ready.is_set(), 10, what="reconnect")
        assert await _subscribed(ari, "PJSIP/caller")
        await _call_ok(cfg)
        await assert_no_leaks(ari)


async def test_asterisk_restart_under_the_app(asterisk, cfg):
    async with running_app(cfg, _prompt) as app:
        app.add_subscription("endpoint:PJSIP/caller")
        await _call_ok(cfg)
        await asyncio.to_thread(asterisk.stop)
        await wait_for(lambda: not app.events.connected, 10, what="disconnect noticed")
        await asyncio.to_thread(asterisk.start)
        await wait_for(lambda: app.events.connected and app.ready.is_set(), 15, what="reconnect after restart")
        async with ari_client(cfg) as ari:
            # the subscription was lost with the old Asterisk and re-applied on reconnect
            await wait_for(lambda: _subscribed(ari, "PJSIP/caller"), 5, what="re-subscription")
            await _call_ok(cfg)
            await assert_no_leaks(ari)
        assert app.events.reconnects >= 1
