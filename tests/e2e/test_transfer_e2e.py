"""Transfers on the real Asterisk: a sipp caller's flow transfers it to an internal extension (a real pyVoIP
phone) or to an outside number through the configured trunk, where a sipp UAS stands in for the carrier
(it must get the dialled number and the trunk's caller ID). Only an answered target is a done transfer;
busy, 503, no answer go to the flow's failure node; a caller hanging up while it rings leaves nothing."""

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
from tests.e2e.callbacks_support import CALLER_ID, asterisk_with_trunks
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NUMBER = "+441632960123"          # an outside number (Ofcom drama range)
TRUNK_USER, TRUNK_PASSWORD = "acme-ivr", "s3cr3t-Pw"   # the 'secure' trunk's digest credentials

INTERNAL = """
flow: xfer_internal
entry: transfer
nodes:
  transfer:
    type: transfer
    destination: operator
    timeout: 4
    on_failure: sorry
  sorry:
    type: hangup
    prompt: sound:vm-goodbye
"""

EXTERNAL = f"""
flow: xfer_external
entry: transfer
nodes:
  transfer:
    type: transfer
    number: "{NUMBER}"
    trunk: carrier
    timeout: 8
    on_failure: sorry
  sorry:
    type: hangup
    prompt: sound:vm-goodbye
"""


SECURE = f"""
flow: xfer_secure
entry: transfer
nodes:
  transfer:
    type: transfer
    number: "{NUMBER}"
    trunk: secure
    on_failure: sorry
  sorry:
    type: hangup
"""


def _secure() -> TrunkConfig:
    """The trunk 'secure': a carrier that challenges with digest auth."""
    return TrunkConfig(name="secure", host="127.0.0.1", port=free_udp_block(2), caller_id=CALLER_ID,
                       username=TRUNK_USER, password=TRUNK_PASSWORD, from_domain="acme.example")


# this module's own Asterisk: its trunk 'carrier' (and 'secure') point at loopback ports where the tests'
# sipp UAS (the carrier) listens
asterisk = asterisk_with_trunks(_secure, caller_name="Acme Support")


@pytest.fixture
def xfer_cfg(cfg, tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    for f in (REPO / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    (d / "xfer_internal.yaml").write_text(INTERNAL)
    (d / "xfer_external.yaml").write_text(EXTERNAL)
    (d / "xfer_secure.yaml").write_text(SECURE)
    routes = {**cfg.flows.routes, "701": "xfer_internal", "702": "xfer_external", "703": "xfer_secure"}
    crm = {**cfg.crm, "sqlite": {**cfg.crm.get("sqlite", {}), "path": str(tmp_path / "crm.sqlite")}}
    return dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, dir=str(d), routes=routes),
                               storage=dataclasses.replace(cfg.storage, path=str(tmp_path / "ivr.sqlite")),
                               crm=crm)


def _carrier(cfg, answer: int) -> CarrierUas:
    return CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=answer), timeout=40)


async def _finished_session(app):
    await wait_for(lambda: app.recent_calls and not app.sessions, 15, what="call finished")
    return app.recent_calls[-1]


def _path(s) -> list[str]:
    return [str(p) for p in s.runner.path]


def _transfers(app, kind: str, outcome: str) -> float:
    v = app.metrics.registry.get_sample_value("ivr_flow_transfers_total", {"kind": kind, "outcome": outcome})
    return v or 0.0


async def _bridged(ari) -> list:
    return [b for b in await ari.bridges() if b.id.startswith("call-") and len(b.channels) == 2]


async def test_internal_extension_answered_is_bridged_and_the_call_lasts(xfer_cfg, phones):
    operator = phones("agent3")["agent3"]          # extension 'operator' -> PJSIP/agent3
    async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
        caller = SippProcess(SippCaller("701", steps=[("audio",), ("pause", 7000)]), xfer_cfg.asterisk.sip_port,
                             40)
        try:
            bridges = await wait_for(lambda: _bridged(ari), 15, what="caller and operator bridged")
            leg = next(c for c in bridges[0].channels if c not in app.sessions)
            assert leg in app.transfer_legs.legs() and bridges[0].id in app.transfer_legs.bridges()
            await asyncio.sleep(2.0)                # the conversation lasts, media flows
            assert len(await _bridged(ari)) == 1
            stats = await ari.rtp_statistics(leg)
            assert stats.get("txcount", 0) > 0 and stats.get("rxcount", 0) > 0, stats
        finally:
            r = await asyncio.to_thread(caller.wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        assert _path(s)[-2:] == ["transfer operator answered", "end transferred"], _path(s)
        assert s.transferred and s.outcome == "transferred"
        assert operator.calls and operator.calls[0].answered_at > 0
        assert _transfers(app, "internal", "answered") == 1
        await assert_no_leaks(ari)             # the caller's hangup took the operator's leg and the bridge


async def test_external_number_through_the_trunk_presents_the_caller_id(xfer_cfg):
    carrier = _carrier(xfer_cfg, 200)
    try:
        async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
            caller = SippProcess(SippCaller("702", steps=[("pause", 6000)]), xfer_cfg.asterisk.sip_port, 40)
            try:
                await wait_for(lambda: _bridged(ari), 15, what="caller and carrier bridged")
            finally:
                r = await asyncio.to_thread(caller.wait)
            assert r.ok, r.stderr
            s = await _finished_session(app)
            assert _path(s)[-2:] == ["transfer external answered", "end transferred"], _path(s)
            assert _transfers(app, "external", "answered") == 1
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)     # the carrier got its BYE
        assert code == 0, err
        invites = carrier.invites()
        assert len(invites) == 1, invites
        inv = invites[0]
        assert inv.dialled == NUMBER, inv
        assert inv.user_of("To") == NUMBER, inv.headers
        assert inv.user_of("From") == CALLER_ID, inv.headers
        assert inv.user_of("P-Asserted-Identity") == CALLER_ID, inv.headers
        assert '"Acme Support"' in inv.headers.get("from", ""), inv.headers
    finally:
        carrier.stop()


@pytest.mark.parametrize("code,outcome", [(486, "busy"), (603, "busy"), (503, "failed")])
async def test_a_refused_trunk_call_goes_to_the_failure_node(xfer_cfg, code, outcome):
    carrier = _carrier(xfer_cfg, code)
    try:
        async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
            r = await asyncio.to_thread(SippProcess(SippCaller("702", end="wait_bye"),
                                                    xfer_cfg.asterisk.sip_port, 40).wait)
            assert r.ok, r.stderr               # the caller heard the goodbye and was hung up: never silence
            s = await _finished_session(app)
            path = _path(s)
            assert path[path.index("xfer_external:transfer") + 1:] == [
                f"transfer external {outcome}", "xfer_external:sorry", "end hangup"], path
            assert not s.transferred and s.outcome == "transfer_failed"
            assert _transfers(app, "external", outcome) == 1 and _transfers(app, "external", "answered") == 0
            await assert_no_leaks(ari)
        assert len(carrier.invites()) == 1
    finally:
        carrier.stop()


async def test_a_trunk_that_does_not_answer_at_all_is_a_failed_transfer(xfer_cfg):
    async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:    # no carrier listening
        r = await asyncio.to_thread(SippProcess(SippCaller("702", end="wait_bye"),
                                                xfer_cfg.asterisk.sip_port, 40).wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        path = _path(s)
        assert path[-3:] == ["transfer external failed", "xfer_external:sorry", "end hangup"], path
        await assert_no_leaks(ari)


async def test_an_unregistered_phone_is_a_failed_transfer(xfer_cfg):
    async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:    # agent3's phone is not running
        r = await asyncio.to_thread(SippProcess(SippCaller("701", end="wait_bye"),
                                                xfer_cfg.asterisk.sip_port, 40).wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        assert _path(s)[-3:] == ["transfer operator failed", "xfer_internal:sorry", "end hangup"], _path(s)
        assert _transfers(app, "internal", "failed") == 1
        await assert_no_leaks(ari)


async def test_no_answer_within_the_timeout_goes_to_the_failure_node(xfer_cfg, phones):
    operator = phones(agent3="ignore")["agent3"]
    async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
        r = await asyncio.to_thread(SippProcess(SippCaller("701", end="wait_bye"), xfer_cfg.asterisk.sip_port,
                                                40).wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        path = _path(s)
        assert path[-3:] == ["transfer operator no_answer", "xfer_internal:sorry", "end hangup"], path
        assert operator.rings >= 1             # it really rang
        assert _transfers(app, "internal", "no_answer") == 1
        await assert_no_leaks(ari)


async def test_caller_hanging_up_while_the_target_rings_leaves_nothing(xfer_cfg, phones):
    operator = phones(agent3="ignore")["agent3"]
    async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
        caller = SippProcess(SippCaller("701", steps=[("pause", 3000)]), xfer_cfg.asterisk.sip_port, 40)
        await wait_for(lambda: app.transfer_legs.legs(), 10, what="the operator's leg ringing")
        session = next(iter(app.sessions.values()))
        await asyncio.sleep(0.5)
        ringback = await ari.playback(session._transfer._ringback)     # the caller hears ringback meanwhile
        assert ringback.media_uri == "tone:ring" and ringback.state == "playing", ringback
        assert ringback.target_uri == f"channel:{session.channel_id}"
        r = await asyncio.to_thread(caller.wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        assert _path(s)[-1] == "end caller_hangup", _path(s)
        assert not app.transfer_legs.legs() and not app.transfer_legs.bridges()
        assert operator.rings >= 1
        assert _transfers(app, "internal", "abandoned") == 1
        await assert_no_leaks(ari)


async def test_an_app_restart_ends_a_transferred_conversation_cleanly(xfer_cfg, phones, tmp_path):
    from tests.support.app_process import AppProcess
    phones("agent3")
    # the app's config file never holds a trunk password (the app refuses one): this test needs none
    no_secret = dataclasses.replace(xfer_cfg, trunks=tuple(dataclasses.replace(t, password="")
                                                           for t in xfer_cfg.trunks))
    proc = AppProcess(no_secret, tmp_path / "app1").start()
    caller = SippProcess(SippCaller("701", steps=[("pause", 30000)]), xfer_cfg.asterisk.sip_port, 45)
    try:
        async with ari_client(xfer_cfg) as ari:
            await wait_for(lambda: _bridged(ari), 20, what="caller and operator bridged")
            proc.kill()                                  # SIGKILL: no cleanup runs
            await asyncio.sleep(0.5)
            assert len(await _bridged(ari)) == 1         # Asterisk still holds the conversation
    finally:
        proc.kill()
    try:
        async with running_app(xfer_cfg), ari_client(xfer_cfg) as ari:
            await assert_no_leaks(ari, 15)               # both legs hung up, the bridge destroyed
    finally:
        caller.kill()


async def test_a_trunk_with_credentials_answers_the_carriers_digest_challenge(xfer_cfg):
    port = xfer_cfg.trunks[1].port
    carrier = CarrierUas(port, CarrierScenario(auth=(TRUNK_USER, TRUNK_PASSWORD)), timeout=40)
    try:
        async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
            caller = SippProcess(SippCaller("703", steps=[("pause", 5000)]), xfer_cfg.asterisk.sip_port, 40)
            try:
                await wait_for(lambda: _bridged(ari), 15, what="caller and carrier bridged after the challenge")
            finally:
                r = await asyncio.to_thread(caller.wait)
            assert r.ok, r.stderr
            s = await _finished_session(app)
            assert _path(s)[-2:] == ["transfer external answered", "end transferred"], _path(s)
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        invites = carrier.invites()
        assert len(invites) == 2, invites               # challenged, then with credentials
        assert "authorization" not in invites[0].headers
        auth = invites[1].headers.get("authorization", "")
        assert f'username="{TRUNK_USER}"' in auth and TRUNK_PASSWORD not in auth
        assert "@acme.example>" in invites[1].headers.get("from", ""), invites[1].headers   # from_domain
    finally:
        carrier.stop()


async def test_the_target_hanging_up_ends_the_call(xfer_cfg):
    carrier = CarrierUas(xfer_cfg.trunks[0].port, CarrierScenario(hangup_after_ms=2500), timeout=40)
    try:
        async with running_app(xfer_cfg) as app, ari_client(xfer_cfg) as ari:
            r = await asyncio.to_thread(SippProcess(SippCaller("702", end="wait_bye"),
                                                    xfer_cfg.asterisk.sip_port, 40).wait)
            assert r.ok, r.stderr               # the app hung the caller up when the carrier's side did
            s = await _finished_session(app)
            assert _path(s)[-2:] == ["transfer external answered", "end transferred"], _path(s)
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
    finally:
        carrier.stop()


async def test_the_sample_support_flow_reaches_the_operator(xfer_cfg, phones):
    from datetime import UTC, datetime
    operator = phones("agent3")["agent3"]
    wednesday_10_paris = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    async with running_app(xfer_cfg, wall_clock=lambda: wednesday_10_paris) as app, ari_client(xfer_cfg) as ari:
        caller = SippProcess(SippCaller("100", steps=[("pause", 2500), ("dtmf", "0"), ("pause", 9000)]),
                             xfer_cfg.asterisk.sip_port, 40)
        try:
            await wait_for(lambda: _bridged(ari), 20, what="caller and operator bridged")
        finally:
            r = await asyncio.to_thread(caller.wait)
        assert r.ok, r.stderr
        s = await _finished_session(app)
        path = _path(s)
        assert path[-4:] == ["support:operator", "support:operator_transfer", "transfer operator answered",
                             "end transferred"], path
        assert operator.calls and operator.calls[0].answered_at > 0
        await assert_no_leaks(ari)
