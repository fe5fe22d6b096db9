"""Shared fixtures. The e2e tier starts one real Asterisk per test session on free loopback ports."""

from __future__ import annotations

import os

import pytest

from ivr.acd.engine import Engine
from tests.support.stack import make_test_config

# every router choice read from a kept ranking (ivr/acd/ranking.py) is checked against scoring every
# available agent, in every test of every tier
Engine.verify_rankings = True


@pytest.fixture(scope="session")
def asterisk():
    from ivr.asterisk import AsteriskError, AsteriskInstance

    cfg = make_test_config()
    inst = AsteriskInstance(cfg)
    try:
        inst.start()
    except AsteriskError as e:
        if os.environ.get("IVR_SKIP_E2E") == "1":
            pytest.skip(f"no Asterisk: {e}")
        pytest.fail(f"cannot start the real Asterisk for e2e tests: {e}\n(run scripts/install.sh first)")
    yield inst
    inst.remove()


@pytest.fixture
def cfg(asterisk):
    return asterisk.cfg


_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """pyVoIP (the agent softphones) can leave a non-daemon call thread blocked after its phone stopped;
    the interpreter would then wait for it forever after the run and CI would never finish. Once pytest
    has reported, exit with its status instead of waiting for such threads."""
    import sys
    import threading
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
