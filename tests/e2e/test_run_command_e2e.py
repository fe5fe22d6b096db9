"""Re-running the run command after the app died must not start a second Asterisk over the live one
(it would delete the first one's control socket and share its astdb): it finds the running Asterisk of
the same instance and reuses it, or refuses with a clear message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ivr.asterisk import AsteriskError, AsteriskInstance
from ivr.cli import start_or_reuse_asterisk

pytestmark = pytest.mark.e2e


def _asterisks_of(inst: AsteriskInstance) -> list[int]:
    conf = f"{inst.astdir}/etc/asterisk.conf".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"asterisk") and conf in cmd and b"-rx" not in cmd:
                pids.append(int(p.name))
    return pids


def test_the_running_asterisk_of_the_instance_is_found_and_reused_never_started_twice(asterisk, cfg):
    inst = AsteriskInstance(cfg)
    assert inst.running_pid() == asterisk.process.pid
    ctl = inst.host_dir / "run" / "asterisk.ctl"
    assert ctl.exists()
    assert start_or_reuse_asterisk(cfg) is None            # reused: nothing for this command to stop
    assert _asterisks_of(inst) == [asterisk.process.pid]   # no second Asterisk
    assert ctl.exists()                                    # its control socket untouched
    assert "System uptime" in asterisk.cli("core show uptime")   # its CLI (control socket) still answers
    with pytest.raises(AsteriskError, match="already running"):
        inst.start()
    assert _asterisks_of(inst) == [asterisk.process.pid]


def test_a_running_asterisk_that_does_not_answer_our_credentials_is_refused_clearly(asterisk, cfg):
    wrong = dataclasses.replace(cfg, ari=dataclasses.replace(cfg.ari, password="not-the-password"))
    with pytest.raises(AsteriskError, match=r"already running \(pid \d+\).*does not answer"):
        start_or_reuse_asterisk(wrong)
    assert _asterisks_of(AsteriskInstance(cfg)) == [asterisk.process.pid]


def test_no_running_asterisk_means_none_found(cfg, tmp_path):
    other = dataclasses.replace(cfg, asterisk=dataclasses.replace(cfg.asterisk, instance="never-started-xyz"))
    assert AsteriskInstance(other).running_pid() is None
