"""Transfers without Asterisk: the trunks: / extensions: config, the rendered trunk endpoints, target
resolution, and every way a TransferAttempt ends (with a fake ARI that records the calls)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ivr.ari import AriError, Channel, ChannelDestroyed, StasisEnd, StasisStart
from ivr.asterisk.runner import render_configs
from ivr.calls.events import Internal, TransferLegEvent, TransferTimeout
from ivr.calls.transfer import Target, TransferAttempt, TransferDeps, TransferLegs, resolve_target
from ivr.config import Config, ConfigError, TrunkConfig, load_config
from ivr.logsafe import CallLog

TRUNKS = """
ari: {password: pw}
agents:
  - {id: agent1, sip_password: s1}
extensions:
  operator: PJSIP/agent1
trunks:
  - {name: carrier, host: 127.0.0.1, port: 5080, caller_id: "+442079460000", caller_name: Acme}
"""


def _load(tmp_path: Path, text: str, env: dict | None = None) -> Config:
    p = tmp_path / "ivr.yaml"
    p.write_text(text)
    return load_config(p, env=env or {})


def test_trunks_and_extensions_are_read_and_credentials_come_from_the_environment(tmp_path):
    cfg = _load(tmp_path, TRUNKS, {"IVR_TRUNK_CARRIER_USERNAME": "acme", "IVR_TRUNK_CARRIER_PASSWORD": "s3cr3t"})
    t = cfg.trunks[0]
    assert (t.name, t.host, t.port, t.caller_id, t.username, t.password) == (
        "carrier", "127.0.0.1", 5080, "+442079460000", "acme", "s3cr3t")
    assert cfg.extensions == {"operator": "PJSIP/agent1"}
    assert cfg.transfer_destinations() == (frozenset({"operator", "PJSIP/agent1"}), frozenset({"carrier"}))
    assert "s3cr3t" not in str(cfg.redacted())


@pytest.mark.parametrize("text,message", [
    ("trunks:\n  - {name: c, host: h, password: x}\n", "IVR_TRUNK_C_PASSWORD"),
    ("trunks:\n  - {name: c, host: h, colour: red}\n", "unknown key(s) colour"),
    ("trunks:\n  - {name: c, host: 'a b'}\n", "trunks.c.host"),
    ("trunks:\n  - {name: c, host: h, port: 70000}\n", "trunks.c.port"),
    ("trunks:\n  - {name: c, host: h, caller_id: 'call me'}\n", "trunks.c.caller_id"),
    ("trunks:\n  - {name: c, host: h}\n  - {name: c, host: h}\n", "defined twice"),
    ("trunks:\n  - {name: 'c d', host: h}\n", "a trunk name is"),
    ("extensions:\n  operator: PJSIP/nobody\n", "not a configured phone"),
    ("extensions:\n  operator: SIP/x\n", "expected PJSIP/<endpoint>"),
])
def test_bad_trunks_and_extensions_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=None) as e:
        _load(tmp_path, text)
    assert message in str(e.value)


def test_a_password_without_a_username_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="needs a username"):
        _load(tmp_path, TRUNKS, {"IVR_TRUNK_CARRIER_PASSWORD": "x"})


def test_trunk_endpoints_are_rendered_with_auth_only_when_configured(tmp_path):
    cfg = _load(tmp_path, TRUNKS)
    pjsip = render_configs(cfg, "/srv/x")["pjsip.conf"]
    assert "[trunk-carrier](endpoint-common)" in pjsip
    assert "contact = sip:127.0.0.1:5080\n" in pjsip and "send_pai = yes\n" in pjsip
    assert "send_connected_line = no\n" in pjsip        # the caller's identity never reaches the carrier
    assert "outbound_auth" not in pjsip and "@@" not in pjsip
    cfg = _load(tmp_path, TRUNKS, {"IVR_TRUNK_CARRIER_USERNAME": "acme", "IVR_TRUNK_CARRIER_PASSWORD": "pw9"})
    pjsip = render_configs(cfg, "/srv/x")["pjsip.conf"]
    assert "outbound_auth = trunk-carrier-auth\n" in pjsip
    assert "[trunk-carrier-auth]\ntype = auth\nauth_type = userpass\nusername = acme\npassword = pw9\n" in pjsip


def test_targets_resolve_against_the_config():
    trunks = (TrunkConfig("carrier", "h", caller_id="+442079460000", caller_name="Acme"),)
    kw = {"extensions": {"operator": "PJSIP/agent3"}, "phones": ["PJSIP/agent1", "PJSIP/agent3"], "trunks": trunks}
    assert resolve_target("operator", external=False, trunk=None, caller_number="555", **kw) == Target(
        "PJSIP/agent3", "operator", "internal", "555")
    assert resolve_target("PJSIP/agent1", external=False, trunk=None, **kw).dial == "PJSIP/agent1"
    assert resolve_target("PJSIP/ghost", external=False, trunk=None, **kw) is None
    ext = resolve_target("+441632960123", external=True, trunk=None, **kw)
    assert ext == Target("PJSIP/+441632960123@trunk-carrier", "external via carrier", "external",
                         '"Acme" <+442079460000>')
    assert resolve_target("+441632960123", external=True, trunk="other", **kw) is None
    assert resolve_target("12;evil", external=True, trunk="carrier", **kw) is None


class FakeAri:
    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def __getattr__(self, name):
        async def op(*args, **kwargs):
            self.calls.append((name, *args))
            if name in self.fail:
                raise AriError("POST", f"/{name}", 500, "refused")
            return True
        return op

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def _attempt(ari: FakeAri, timeout: float = 30.0):
    legs = TransferLegs()
    submitted: list[Internal] = []
    reports: list[str] = []
    a = TransferAttempt(TransferDeps(ari, legs, submitted.append), "caller", 1,
                        Target("PJSIP/agent3", "operator", "internal"), timeout, reports.append,
                        CallLog(logging.getLogger("t"), {"call": "caller"}))
    return a, legs, submitted, reports


def _stasis_start(leg: str) -> StasisStart:
    return StasisStart(type="StasisStart", channel=Channel(leg), args=("transfer", "caller"))


def _destroyed(leg: str, cause: int) -> ChannelDestroyed:
    return ChannelDestroyed(type="ChannelDestroyed", channel=Channel(leg), cause=cause)


async def test_answered_target_is_bridged_and_its_hangup_ends_the_call():
    ari = FakeAri()
    a, legs, _, reports = _attempt(ari)
    await a.start()
    assert ari.calls[0] == ("play", "caller", "caller-ringback-1", "tone:ring")
    assert ari.calls[1][:3] == ("originate", "caller-t1", "PJSIP/agent3")
    assert legs.legs() == {"caller-t1"} and legs.bridges() == {"call-caller-t1"}
    routed = legs.route(_stasis_start("caller-t1"))
    assert isinstance(routed, TransferLegEvent) and routed.key == "caller"
    await a.on_event(routed)
    assert ari.names()[2:] == ["stop_playback", "create_bridge", "add_channel"]
    assert ari.calls[4] == ("add_channel", "call-caller-t1", ["caller", "caller-t1"])
    assert reports == ["answered"] and a.state == "bridged"
    await a.on_event(TransferLegEvent(key="caller", event=_destroyed("caller-t1", 16)))      # the operator hangs up
    assert ("destroy_bridge", "call-caller-t1") in ari.calls and ("hangup_quietly", "caller") in ari.calls
    assert not legs.legs() and not legs.bridges() and reports == ["answered"]
    a._cancel_timer()


@pytest.mark.parametrize("cause,outcome", [(17, "busy"), (21, "busy"), (19, "no_answer"), (34, "failed"),
                                           (18, "failed"), (20, "failed")])
async def test_a_leg_ending_before_answer_reports_its_outcome(cause, outcome):
    ari = FakeAri()
    a, legs, _, reports = _attempt(ari)
    await a.start()
    await a.on_event(TransferLegEvent(key="caller", event=_destroyed("caller-t1", cause)))
    assert reports == [outcome] and a.state == "done" and not legs.legs()
    assert ("stop_playback", "caller-ringback-1") in ari.calls and "destroy_bridge" not in ari.names()


async def test_originate_refused_is_a_failed_transfer_at_once():
    ari = FakeAri(fail={"originate"})
    a, legs, submitted, reports = _attempt(ari)
    await a.start()
    assert reports == ["failed"] and not legs.legs() and not submitted


async def test_ring_timeout_hangs_up_the_leg_and_reports_no_answer():
    ari = FakeAri()
    a, _, submitted, reports = _attempt(ari, timeout=0.01)
    await a.start()
    await asyncio.sleep(0.05)
    assert submitted and submitted[0] == TransferTimeout(key="caller", leg="caller-t1")
    await a.on_event(submitted[0])
    assert reports == ["no_answer"] and ("hangup_quietly", "caller-t1") in ari.calls
    await a.on_event(TransferLegEvent(key="caller", event=_stasis_start("caller-t1")))      # answering too late: hung up
    assert ari.calls[-1] == ("hangup_quietly", "caller-t1") and reports == ["no_answer"]


async def test_bridging_failure_cleans_up_and_reports_failed():
    ari = FakeAri(fail={"add_channel"})
    a, _, _, reports = _attempt(ari)
    await a.start()
    await a.on_event(TransferLegEvent(key="caller", event=_stasis_start("caller-t1")))
    assert reports == ["failed"]
    assert ("destroy_bridge", "call-caller-t1") in ari.calls and ("hangup_quietly", "caller-t1") in ari.calls


async def test_caller_gone_while_ringing_or_bridged_leaves_nothing():
    for answered in (False, True):
        ari = FakeAri()
        a, legs, _, reports = _attempt(ari)
        await a.start()
        if answered:
            await a.on_event(TransferLegEvent(key="caller", event=_stasis_start("caller-t1")))
        await a.cancel()
        await a.cancel()                        # idempotent
        assert ari.names().count("hangup_quietly") == 1 and not legs.legs() and not legs.bridges()
        assert ("destroy_bridge" in ari.names()) is answered
        await a.on_event(TransferLegEvent(key="caller", event=StasisEnd(type="StasisEnd", channel=Channel("caller-t1"))))
        assert reports == (["answered"] if answered else [])


def test_an_empty_password_key_is_no_secret_and_is_accepted(tmp_path):
    # e.g. the config in effect dumped back to a file: the password comes from the environment again
    text = TRUNKS.replace('caller_name: Acme}', 'caller_name: Acme, password: ""}')
    cfg = _load(tmp_path, text, {"IVR_TRUNK_CARRIER_USERNAME": "u", "IVR_TRUNK_CARRIER_PASSWORD": "p"})
    assert cfg.trunks[0].password == "p"
