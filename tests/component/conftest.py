"""Fixtures of the component tier. ``stack``: the real App against the loopback fake ARI
(``tests/support/component_app.py``), every agent's phone registered, no Asterisk."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.component_app import Stack, component_stack


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with component_stack() as s:
        yield s
