"""Bad input from callers on the real Asterisk (issue 7): digit floods (SIP INFO and RFC 2833) into a
secure PIN and a menu, very long caller IDs with injection attempts. The call is handled, the app keeps
serving, secure digits and full phone numbers never reach the logs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

PIN = "86420975"


async def _call(cfg, steps, **kw):
    r = await asyncio.to_thread(SippProcess(SippCaller("500", steps=steps, **kw), cfg.asterisk.sip_port, 60).wait)
    assert r.ok, r.stderr
    return r


async def test_digit_flood_into_a_secure_pin_and_a_menu(flow_cfg, caplog):
    caplog.set_level(logging.DEBUG)
    # 72 keys as fast as SIP allows (sipp cannot parse a scenario file above ~64 KB: ~100 INFO steps)
    flood = [("info", d) for d in "1234567890*#" * 6]
    steps = [("pause", 500)] + [("info", d) for d in PIN + "#"] + flood + \
            [("dtmf", d) for d in "1212121212"] + [("pause", 300)]
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, steps)
        await wait_for(lambda: len(app.recent_calls) == 1 and not app.sessions, 10, what="call ended")
        s = app.recent_calls[0]
        assert s.runner.variables.get("pin") is not None                # the PIN was collected...
        for rec in caplog.records:                                     # ...and never logged
            assert PIN not in rec.getMessage(), rec.getMessage()
        assert PIN not in s.runner.keys_pressed
        assert len(s.runner.path) < 2000                                # the path history stays bounded
        await assert_no_leaks(ari)
        await _call(flow_cfg, [("pause", 300)])                         # and the next caller is served
        await wait_for(lambda: len(app.recent_calls) == 2 and not app.sessions, 10, what="second call")


async def test_very_long_caller_id_with_injection_attempts(flow_cfg, caplog):
    caplog.set_level(logging.DEBUG)
    number = "44" + "7" * 998                                          # 1,000 digits
    name = "Robert'); DROP TABLE customers;-- " + "x" * 300
    async with running_app(flow_cfg) as app, ari_client(flow_cfg) as ari:
        await _call(flow_cfg, [("pause", 1500)], caller_number=number, caller_name=name)
        await wait_for(lambda: len(app.recent_calls) == 1 and not app.sessions, 10, what="call ended")
        s = app.recent_calls[0]
        assert s.crm_result is not None and s.crm_result.customer is None     # looked up, unknown
        for rec in caplog.records:
            assert number[:12] not in rec.getMessage(), rec.getMessage()  # masked, never in full
        await assert_no_leaks(ari)
        # the CRM store is intact and the app still serves a normal caller
        assert await app.crm.lookup_caller("+447700900123") is not None
        await _call(flow_cfg, [("pause", 300)])
        await wait_for(lambda: len(app.recent_calls) == 2 and not app.sessions, 10, what="second call")
