from pathlib import Path

from ivr.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_validate_knows_the_configured_queues(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: x\nentry: q\nnodes:\n  q:\n    type: queue\n    queue: nosuch\n    on_timeout: q\n")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:6:12: unknown queue 'nosuch' (known queues: billing, legacy, sales, technical)" in out
    assert main(["validate", "flows"]) == 0


def test_run_refuses_a_bad_config_with_a_clear_message(tmp_path, capsys):
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text("asterisk: {sip_port: nope}\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "asterisk.sip_port: expected an integer" in capsys.readouterr().err
