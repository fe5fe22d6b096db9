"""`ivr run` runs on uvloop when it is installed (a pinned dependency), on asyncio when asked."""

from __future__ import annotations

import asyncio

import uvloop

from ivr.cli import event_loop_runner


def test_uvloop_by_default_and_asyncio_on_request():
    name, run = event_loop_runner({})
    assert name == "uvloop" and run is uvloop.run
    name, run = event_loop_runner({"IVR_EVENT_LOOP": "asyncio"})
    assert name == "asyncio" and run is asyncio.run


def test_the_chosen_runner_runs_a_coroutine_on_that_loop():
    seen = []

    async def probe() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    event_loop_runner({})[1](probe())
    event_loop_runner({"IVR_EVENT_LOOP": "asyncio"})[1](probe())
    assert seen[0].startswith("uvloop") and seen[1].startswith("asyncio")
