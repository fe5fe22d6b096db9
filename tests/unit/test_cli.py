from datetime import UTC
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


def test_at_runs_a_wall_clock_from_the_given_instant(capsys):
    import time
    from datetime import datetime, timedelta

    from ivr.cli import clock_from
    clock = clock_from("2026-12-05T22:00:00+01:00")
    first = clock()
    assert first - datetime(2026, 12, 5, 21, 0, tzinfo=UTC) < timedelta(seconds=1)
    time.sleep(0.05)
    assert clock() > first
    for bad in ("tomorrow", "2026-12-05T22:00:00"):
        assert main(["run", "--config", str(REPO / "config" / "ivr.yaml"), "--at", bad]) == 2
    err = capsys.readouterr().err
    assert "'tomorrow' is not an ISO 8601" in err and "has no UTC offset" in err


def test_run_refuses_a_bad_config_with_a_clear_message(tmp_path, capsys):
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text("asterisk: {sip_port: nope}\n")
    assert main(["run", "--config", str(cfg)]) == 2
    assert "asterisk.sip_port: expected an integer" in capsys.readouterr().err
