"""Fixtures of the component tier. ``stack``: the real App against the loopback fake ARI
(``tests/support/component_app.py``), every agent's phone registered, no Asterisk."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.component_app import Stack, component_stack


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with component_stack() as s:
        yield s


@pytest.fixture(autouse=True)
def _close_stores_left_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After each test (its own fixtures torn down first), close the SQLite connections it opened and left
    open: an App built by a test holds several stores, the tier would keep over a thousand files open, and a
    later e2e test's pyVoIP phone (select()) cannot use a socket numbered above 1024 ("agentN did not
    register")."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn
    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    yield
    monkeypatch.undo()
    for conn in opened:
        conn.close()
