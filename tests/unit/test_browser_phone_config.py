"""An agent's ``phone: webrtc`` (docs/webrtc.md): the config option, the PJSIP objects Asterisk gets (in
pjsip.conf and through ARI dynamic config alike), and the credentials the agent page is given."""

from __future__ import annotations

import dataclasses

import pytest

from ivr.asterisk.endpoints import agent_objects
from ivr.asterisk.runner import render_configs
from ivr.config import ConfigError, load_config
from ivr.web.phone import BrowserPhone, asterisk_ws_url, browser_phones, live_phones

SAMPLE = "config/ivr.yaml"


def _cfg(**asterisk):
    cfg = load_config(SAMPLE, env={"IVR_ARI_PASSWORD": "ari-pw"})
    agents = tuple({**a, "sip_password": f"{a['id']}-pw"} for a in cfg.agents)
    return dataclasses.replace(cfg, agents=agents, asterisk=dataclasses.replace(cfg.asterisk, **asterisk))


def test_a_browser_phone_is_a_webrtc_endpoint_on_the_ws_transport():
    ep, auth, aor = agent_objects("agent5", "pw", media_address="10.250.0.1", webrtc=True)
    fields = dict(ep.fields)
    assert fields["transport"] == "transport-ws" and fields["webrtc"] == "yes" and fields["bundle"] == "yes"
    assert fields["media_address"] == "10.250.0.1" and fields["bind_rtp_to_media_address"] == "yes"
    assert dict(auth.fields)["password"] == "pw" and dict(aor.fields)["max_contacts"] == "1"
    # no media address: RTP on every address, Asterisk offers every non-loopback one as ICE candidate
    fields = dict(agent_objects("agent5", "pw", media_address="", webrtc=True)[0].fields)
    assert "media_address" not in fields and "bind_rtp_to_media_address" not in fields
    sip = dict(agent_objects("agent1", "pw", media_address="127.0.0.1")[0].fields)
    assert sip["transport"] == "transport-udp" and "webrtc" not in sip


def test_pjsip_conf_has_the_ws_transport_and_the_sample_browser_agent():
    conf = render_configs(_cfg(webrtc_media_address="10.250.0.1"), "/srv/x")
    pjsip, modules = conf["pjsip.conf"], conf["modules.conf"]
    assert "[transport-ws]\ntype = transport\nprotocol = ws\n" in pjsip
    agent5 = pjsip[pjsip.index("[agent5]\ntype = endpoint"):].split("\n\n")[0]
    assert "transport = transport-ws" in agent5 and "webrtc = yes" in agent5 and "bundle = yes" in agent5
    assert "media_address = 10.250.0.1" in agent5
    agent1 = pjsip[pjsip.index("[agent1]\ntype = endpoint"):].split("\n\n")[0]
    assert "transport = transport-udp" in agent1 and "webrtc" not in agent1
    for mod in ("res_pjsip_transport_websocket.so", "res_http_websocket.so", "res_srtp.so"):
        assert f"load => {mod}" in modules


def test_phone_must_be_sip_or_webrtc(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("agents:\n  - {id: a1, endpoint: PJSIP/a1, phone: skype}\n")
    with pytest.raises(ConfigError, match=r"agent a1: phone: expected one of sip, webrtc, got 'skype'"):
        load_config(str(bad), env={})
    bad.write_text("agents:\n  - {id: a1, endpoint: PJSIP/a1, phone: [webrtc]}\n")
    with pytest.raises(ConfigError, match="agent a1: phone"):
        load_config(str(bad), env={})


def test_the_page_gets_only_browser_agents_credentials():
    cfg = _cfg()
    phones = browser_phones(cfg)
    assert set(phones) == {"agent5"}
    assert phones["agent5"] == BrowserPhone("agent5", "agent5-pw", "127.0.0.1", "Eve Laurent")
    assert phones["agent5"].as_dict()["sip_uri"] == "sip:agent5@127.0.0.1"
    assert asterisk_ws_url(cfg) == f"ws://127.0.0.1:{cfg.asterisk.http_port}/ws"
    assert asterisk_ws_url(_cfg(bind_address="0.0.0.0")).startswith("ws://127.0.0.1:")
    assert asterisk_ws_url(_cfg(bind_address="::1")).startswith("ws://[::1]:")


def test_live_phones_follow_the_agents_changed_at_run_time():
    defs = {"agent5": {"id": "agent5", "name": "Eve", "endpoint": "PJSIP/agent5", "phone": "webrtc"},
            "agent1": {"id": "agent1", "endpoint": "PJSIP/agent1"}}
    phone_of = live_phones(lambda: defs, {"agent5": "from-env"}, "127.0.0.1")
    assert phone_of("agent5") == BrowserPhone("agent5", "from-env", "127.0.0.1", "Eve")
    assert phone_of("agent1") is None and phone_of("nobody") is None
    defs["agent9"] = {"id": "agent9", "endpoint": "PJSIP/bob-9", "phone": "webrtc", "sip_password": "pw9"}
    assert phone_of("agent9") == BrowserPhone("bob-9", "pw9", "127.0.0.1", "")     # added: served at once
    defs["agent5"] = {**defs["agent5"], "phone": "sip"}
    assert phone_of("agent5") is None                                            # changed to a SIP phone
    del defs["agent9"]
    assert phone_of("agent9") is None                                            # removed
    defs["agent7"] = {"id": "agent7", "phone": "webrtc"}                         # no password anywhere
    assert phone_of("agent7") is None
