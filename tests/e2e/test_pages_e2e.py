"""The agent page and the wallboard in a real headless Chromium, fed by real calls on the real Asterisk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.browser import Browser
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
VIP = "+442079460001"


async def test_agent_page_shows_the_caller_when_the_call_is_offered(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=30)
    phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari, Browser() as b:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        base = f"http://127.0.0.1:{app.web.port}"
        await b.goto(f"{base}/agent/agent1#token={cfg.http.admin_token}")
        await b.wait_text("agent-state", lambda t: "available" in t)
        caller = SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", 4000)],
                                        caller_number=VIP), cfg.asterisk.sip_port, timeout=60)
        name = await b.wait_text("customer-name", lambda t: "Victoria" in t, timeout=15)
        assert name.strip() == "Victoria Sterling"
        assert "token" not in (await b.eval("location.href"))          # the token left the address bar
        await b.screenshot(ARTIFACTS / "agent-page.png")
        assert (await asyncio.to_thread(caller.wait)).ok
        await b.wait_text("agent-state", lambda t: "wrap" in t)
        # the agent ends wrap-up from the page
        await b.eval("document.querySelector('button[data-action=end_wrap_up]').click()")
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 5,
                       what="agent available after clicking end wrap-up")
        await assert_no_leaks(ari)


async def test_wallboard_shows_live_numbers(flow_cfg, phones):
    phones("agent1")
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari, Browser() as b:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await app.acd.agent_action("agent1", "pause", "meeting")
        await b.goto(f"http://127.0.0.1:{app.web.port}/wallboard")
        await b.wait_text("wb-billing-waiting", lambda t: t.strip() == "0")
        callers = [SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", 5000)]),
                               flow_cfg.asterisk.sip_port, timeout=60) for _ in range(2)]
        await b.wait_text("wb-billing-waiting", lambda t: t.strip() == "2", timeout=10)
        await b.screenshot(ARTIFACTS / "wallboard.png")
        for c in callers:
            assert (await asyncio.to_thread(c.wait)).ok
        await b.wait_text("wb-billing-waiting", lambda t: t.strip() == "0", timeout=10)
        await assert_no_leaks(ari)
