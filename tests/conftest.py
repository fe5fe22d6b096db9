"""Shared fixtures. The e2e tier starts one real Asterisk per test session on free loopback ports."""

from __future__ import annotations

import os

import pytest

from tests.support.stack import make_test_config


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
