"""IVR flows on the real Asterisk with a real SIP caller: menus with RFC 2833 and SIP INFO DTMF, invalid keys,
timeouts, secure digits kept out of logs, hot reload of a broken file, hang-up mid-prompt."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WEDNESDAY_10_PARIS = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)   # inside business hours


async def _call(cfg, service: str, steps, end="hangup", timeout=40):
    r = await asyncio.to_thread(SippProcess(SippCaller(service, steps=steps, end=end), cfg.asterisk.sip_port,
                                            timeout).wait)
    assert r.ok, r.stderr
    return r


async def _finished_session(app, n: int = 1):
    await wait_for(lambda: len(app.recent_calls) >= n and not app.sessions, 10, what="call finished")
    return app.recent_calls[n - 1]


def _fixed_clock():
    return WEDNESDAY_10_PARIS


async def test_two_level_menu_with_rfc2833_and_sip_info_dtmf(flow_cfg):
    async with running_app(flow_cfg, wall_clock=_fixed_clock) as app, ari_client(flow_cfg) as ari:
        # main menu prompt is playing (barge-in): 1 by RFC 2833 -> billing menu; 2 by SIP INFO -> billing queue
        await _call(flow_cfg, "100", [("pause", 2500), ("dtmf", "1"), ("pause", 1500), ("info", "2"),
                                      ("pause", 1500)])
        s = await _finished_session(app)
        nodes = list(s.runner.visited_nodes)
        assert nodes[:3] == ["support:welcome", "support:check_hours", "support:check_tier"], nodes
        i = nodes.index("support:main_menu")
        assert nodes[i:i + 3] == ["support:main_menu", "support:billing_menu", "support:billing_queue"], nodes
        assert s.runner.keys_pressed == "12"
        await assert_no_leaks(ari)


async def test_invalid_key_replays_the_menu(flow_cfg):
    async with running_app(flow_cfg, wall_clock=_fixed_clock) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, "100", [("pause", 2500), ("dtmf", "9"), ("pause", 5500), ("dtmf", "4"),
                                      ("pause", 1000)])
        s = await _finished_session(app)
        path = [str(p) for p in s.runner.path]
        i = path.index("key 9")
        # the menu is replayed in place (not re-entered) and the next key works
        assert path[i:i + 4] == ["key 9", "invalid", "key 4", "support:incident"], path
        await assert_no_leaks(ari)


async def test_silence_follows_the_timeout_path(flow_cfg):
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, "300", [], end="wait_bye")     # the app hangs up after the timeout path
        s = await _finished_session(app)
        path = [str(p) for p in s.runner.path]
        assert [p for p in path if p.startswith("timeout")], path
        assert "quick:timed_out" in path and path.index("quick:timed_out") > path.index("quick:menu")
        assert s.runner.end_reason and "hangup" in s.runner.end_reason
        await assert_no_leaks(ari)


async def test_secure_digits_never_reach_the_logs(flow_cfg, caplog):
    caplog.set_level(logging.DEBUG)
    pin = "97979797"
    steps = [("pause", 700), ("dtmf", "2"), ("pause", 900)] + [("dtmf", d) for d in pin] + [("dtmf", "#")]
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, "300", steps, end="wait_bye")
        s = await _finished_session(app)
        assert "pin=***" in [str(p).replace("input ", "") for p in s.runner.path], s.runner.path
        assert s.runner.variables.get("pin") is not None     # collected (as a Secret) ...
        assert pin not in str(s.runner.variables) and pin not in str(s.runner.path)
        assert pin not in s.runner.keys_pressed
        for rec in caplog.records:                          # ... and never logged
            assert pin not in rec.getMessage(), rec.getMessage()
        await assert_no_leaks(ari)


async def test_hot_reload_of_a_broken_file_keeps_calls_working(flow_cfg, caplog):
    flow_dir = Path(flow_cfg.flows.dir)
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        good_version = app.flows.current.version
        text = (flow_dir / "quick.yaml").read_text()
        broken = text.replace("prompt: sound:vm-goodbye\n    next: bye", "prompt: sound:vm-goodbye\n    next: nowhere")
        assert broken != text
        (flow_dir / "quick.yaml").write_text(broken)
        result = app.flows.reload()
        assert not result.ok
        assert any("quick.yaml:" in e and "nowhere" in e for e in result.errors), result.errors
        assert app.flows.current.version == good_version
        assert any("flow reload refused" in r.getMessage() for r in caplog.records)
        await _call(flow_cfg, "300", [("pause", 600), ("dtmf", "1"), ("pause", 300)], end="wait_bye")
        s = await _finished_session(app)
        assert "quick:one" in [str(p) for p in s.runner.path]
        # fixing the file brings the new version in for new calls
        shutil.copy(Path(__file__).parent / "flows" / "quick.yaml", flow_dir / "quick.yaml")
        (flow_dir / "quick.yaml").write_text((flow_dir / "quick.yaml").read_text().replace("sound:digits/1",
                                                                                          "sound:digits/2"))
        assert app.flows.reload().ok and app.flows.current.version != good_version
        await assert_no_leaks(ari)


async def test_caller_hanging_up_mid_prompt_leaves_nothing(flow_cfg):
    async with running_app(flow_cfg, wall_clock=_fixed_clock) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, "100", [("pause", 3000)])      # during the 25 s main menu prompt
        s = await _finished_session(app)
        assert s.runner.finished and s.closed and not s._timers
        assert "support:main_menu" in [str(p) for p in s.runner.path]
        await assert_no_leaks(ari)
        text = app.metrics.render().decode()
        assert 'ivr_flow_node_exits_total{exit="hangup",flow="support",node="main_menu"} 1.0' in text
