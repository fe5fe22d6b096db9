"""Business hours and holidays on a real call (the shipped support line, flows/support.yaml: Mon-Fri
08:00-18:00 and Sat 09:00-12:00 Europe/Paris, closed on 01-01, 05-01 and 12-25, a short day on
2025-12-24): the server's wall clock is injected, the caller is a real sipp call, and what the caller
heard is read from Asterisk's own PlaybackFinished events (media played to the caller's channel)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from ivr.ari import PlaybackFinished
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _clock_from(start_utc: datetime):
    t0 = time.monotonic()
    return lambda: start_utc + timedelta(seconds=time.monotonic() - t0)


async def _call_support(app, cfg, heard: list[str]) -> list[str]:
    """One call to the support line (100), hung up after 6 s; returns the nodes its flow visited."""
    before = len(app.recent_calls)
    r = await asyncio.to_thread(SippProcess(SippCaller("100", steps=[("pause", 6000)]), cfg.asterisk.sip_port,
                                            timeout=30).wait)
    assert r.ok, r.stderr
    await wait_for(lambda: len(app.recent_calls) > before, 10, what="the call's session ended")
    return [n.split(":", 1)[1] for n in app.recent_calls[-1].runner.visited_nodes]   # "support:node"


@pytest.mark.parametrize(("when", "closed"), [
    (datetime(2026, 12, 2, 9, 30, tzinfo=UTC), False),       # Wednesday 10:30 in Paris
    (datetime(2026, 12, 5, 21, 0, tzinfo=UTC), True),        # Saturday 22:00 in Paris
    (datetime(2026, 12, 25, 9, 30, tzinfo=UTC), True),       # Christmas Day, a Friday: holiday
    (datetime(2025, 12, 24, 10, 0, tzinfo=UTC), False),      # Christmas Eve 2025 11:00: short day, open
    (datetime(2025, 12, 24, 12, 30, tzinfo=UTC), True),      # Christmas Eve 2025 13:30: closed
])
async def test_the_support_line_follows_paris_business_hours_and_holidays(flow_cfg, when, closed):
    heard: list[str] = []
    async with running_app(flow_cfg, wall_clock=_clock_from(when)) as app, ari_client(flow_cfg) as ari:
        real_handle = app.handle

        async def spy(ev):
            if isinstance(ev, PlaybackFinished):
                heard.append(ev.playback.media_uri)
            await real_handle(ev)
        app.dispatcher._handler = spy
        nodes = await _call_support(app, flow_cfg, heard)
        assert "check_hours" in nodes
        if closed:
            assert "after_hours" in nodes and "leave_message" in nodes, nodes
            assert "main_menu" not in nodes and "vip_queue" not in nodes
            # a list's PlaybackFinished names the last media played: "im-sorry", then this one
            assert "sound:please-try-call-later" in heard and "sound:vm-intro" in heard, heard
        else:
            assert "after_hours" not in nodes, nodes
            assert "main_menu" in nodes or "vip_queue" in nodes, nodes
            assert "sound:please-try-call-later" not in heard and "sound:vm-intro" not in heard, heard
        await assert_no_leaks(ari)
