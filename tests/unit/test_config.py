import pytest

from ivr.config import ConfigError, load_config


def _write(tmp_path, text):
    p = tmp_path / "ivr.yaml"
    p.write_text(text)
    return p


def test_sample_config_loads_and_secrets_come_from_env():
    cfg = load_config("config/ivr.yaml", env={"IVR_ARI_PASSWORD": "pw-Zq81", "IVR_ADMIN_TOKEN": "tk-Xv22"})
    assert cfg.ari.password == "pw-Zq81" and cfg.http.admin_token == "tk-Xv22"
    red = cfg.redacted()
    assert red["ari"]["password"] == "***" and red["http"]["admin_token"] == "***"
    assert "pw-Zq81" not in str(red) and "tk-Xv22" not in str(red)
    assert cfg.ari_url == "http://127.0.0.1:8088"


def test_generic_env_override_is_typed(tmp_path):
    cfg = load_config(_write(tmp_path, "asterisk: {sip_port: 5060}\n"), env={"IVR__ASTERISK__SIP_PORT": "5070"})
    assert cfg.asterisk.sip_port == 5070


@pytest.mark.parametrize("text,msg", [
    ("asterisk: {sip_prot: 1}\n", "asterisk: unknown key(s) sip_prot"),
    ("asterisk: {sip_port: abc}\n", "asterisk.sip_port: expected an integer"),
    ("asterisk: {sip_port: 70000}\n", "not a valid port"),
    ("ari: {rest_websockets: -1}\n", "ari.rest_websockets: -1 is not between 0 and 16"),
    ("nonsense: 1\n", "unknown section(s) nonsense"),
    ("asterisk: [1, 2]\n", "asterisk: expected a mapping"),
    ("a: [\n", "invalid YAML"),
    ("agents: [{name_missing: 1}]\n", "agents: expected a list of mappings"),
])
def test_bad_config_gives_a_clear_message(tmp_path, text, msg):
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_config(_write(tmp_path, text), env={})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", env={})


def test_agent_sip_password_from_env(tmp_path):
    cfg = load_config(_write(tmp_path, "agents: [{id: agent1, sip_password: filepw}, {id: agent-2}]\n"),
                      env={})
    import os
    os.environ["IVR_AGENT_AGENT_2_PASSWORD"] = "envpw"
    try:
        pw = {a.id: a.sip_password for a in cfg.agent_sip()}
    finally:
        del os.environ["IVR_AGENT_AGENT_2_PASSWORD"]
    assert pw == {"agent1": "filepw", "agent-2": "envpw"}
    assert "filepw" not in str(cfg.redacted())
