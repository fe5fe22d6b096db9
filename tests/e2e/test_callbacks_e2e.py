"""Callbacks on the real Asterisk: a caller who waited asks for a callback (the flow's callback node); the
task keeps the caller's place in the queue; when it reaches an agent, the agent's phone (pyVoIP) rings
first, then the customer is dialled out through the configured trunk, where a sipp UAS stands in for the
carrier (it must get the customer's number); audio flows both ways. A busy customer is retried after the
delay, then the task fails. Nothing leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

from ivr.config import TrunkConfig
from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.sim.ports import free_udp_block
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskKind, TaskState
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, make_test_config, running_app, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CUSTOMER = "+441632960777"        # the number the caller asks to be called back on
CALLER_ID = "+442079460000"       # what the trunk presents

FLOW = f"""
flow: cb_queue
entry: number
nodes:
  number:
    type: set
    variables: {{cbnum: "{CUSTOMER}"}}
    next: queue
  queue:
    type: queue
    queue: billing
    max_wait: 2
    on_timeout: callback
  callback:
    type: callback
    queue: billing
    variable: cbnum
    next: bye
  bye:
    type: hangup
    prompt: sound:vm-goodbye
"""

LIVE = """
flow: cb_live
entry: queue
nodes:
  queue:
    type: queue
    queue: billing
"""


@pytest.fixture(scope="module")
def asterisk():
    """This module's own Asterisk, with a trunk 'carrier' to a loopback port where a sipp UAS listens."""
    from ivr.asterisk import AsteriskError, AsteriskInstance

    base = make_test_config()
    trunk = TrunkConfig(name="carrier", host="127.0.0.1", port=free_udp_block(2), caller_id=CALLER_ID)
    inst = AsteriskInstance(dataclasses.replace(base, trunks=(trunk,)))
    try:
        inst.start()
    except AsteriskError as e:
        pytest.fail(f"cannot start the real Asterisk for e2e tests: {e}")
    yield inst
    inst.remove()


@pytest.fixture
def cb_cfg(cfg, tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    for f in (REPO / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    (d / "cb_queue.yaml").write_text(FLOW)
    (d / "cb_live.yaml").write_text(LIVE)
    routes = {**cfg.flows.routes, "801": "cb_queue", "802": "cb_live"}
    crm = {**cfg.crm, "sqlite": {**cfg.crm.get("sqlite", {}), "path": str(tmp_path / "crm.sqlite")}}
    cfg = dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, dir=str(d), routes=routes),
                              storage=dataclasses.replace(cfg.storage, path=str(tmp_path / "ivr.sqlite")),
                              crm=crm, callbacks={"retry_delay": 2, "max_attempts": 2, "ring_seconds": 8})
    return with_queue_overrides(cfg, wrap_up=0, announce_frequency=None, retry=0)


def _caller(cfg, ms: int) -> SippProcess:
    return SippProcess(SippCaller("801", steps=[], end="wait_bye"), cfg.asterisk.sip_port, 40)


async def _task(app, state: TaskState | None = None):
    def find():
        tasks = app.task_book.recent(kind=TaskKind.CALLBACK)
        return tasks[0] if tasks and (state is None or tasks[0].state is state) else None
    return await wait_for(find, 30, what=f"a callback task {state.value if state else ''}")


async def test_a_callback_keeps_the_callers_place_and_reaches_the_customer_through_the_trunk(cb_cfg, phones):
    phones("agent1")
    carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=4000, echo=True), timeout=60)
    try:
        async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            await app.acd.agent_action("agent1", "pause", "meeting")
            # the caller waits 2 s, asks for a callback, hears goodbye, is hung up
            r = await asyncio.to_thread(_caller(cb_cfg, 15000).wait)
            assert r.ok, r.stderr
            task = await _task(app, TaskState.WAITING)
            assert task.number == CUSTOMER and task.queue == "billing"
            snap = app.acd.router.call_snapshot(task.id)
            assert snap.kind == "callback" and snap.wait >= 2.0          # its place: the caller's join time
            # a caller who joins now waits behind the callback
            later = SippProcess(SippCaller("802", steps=[("pause", 20000)]), cb_cfg.asterisk.sip_port, 60)
            await wait_for(lambda: len(app.acd.router.queue_snapshot("billing").calls) == 2, 15,
                           what="a live caller behind the callback")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["callback", "call"]
            await app.acd.agent_action("agent1", "unpause")
            # agent first (the phone answers), then the customer through the trunk; bridged, audio both ways
            bridged = await wait_for(lambda: _bridge_of(ari, task.id), 30, what="agent and customer bridged")
            await asyncio.sleep(1.5)
            for leg in bridged.channels:
                stats = await ari.rtp_statistics(leg)
                assert stats.get("txcount", 0) > 0 and stats.get("rxcount", 0) > 0, (leg, stats)
            done = await _task(app, TaskState.DONE)
            assert done.outcome == "answered" and done.attempts == 0
            assert [h.to_state for h in done.history][-3:] == [TaskState.OFFERED, TaskState.CONNECTING,
                                                              TaskState.DONE]
            assert done.history[-3].agent_id == "agent1"
            # the customer hangs up after 4 s: the agent's leg goes too; then agent1 serves the live caller
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").call_id not in (None, task.id), 30,
                           what="agent1 takes the live caller next")
            r = await asyncio.to_thread(later.wait)
            assert r.ok, r.stderr
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        [invite] = carrier.invites()
        assert invite.dialled == CUSTOMER.lstrip("+") or invite.dialled == CUSTOMER, invite
        assert CALLER_ID.lstrip("+") in invite.user_of("From") or CALLER_ID in invite.user_of("From")
    finally:
        carrier.stop()


async def test_a_busy_customer_is_retried_after_the_delay_then_the_task_fails(cb_cfg, phones):
    phones("agent1")
    async with running_app(cb_cfg) as app, ari_client(cb_cfg) as ari:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await app.acd.agent_action("agent1", "pause", "meeting")
        r = await asyncio.to_thread(_caller(cb_cfg, 15000).wait)
        assert r.ok, r.stderr
        task = await _task(app, TaskState.WAITING)
        for attempt in (1, 2):
            carrier = CarrierUas(cb_cfg.trunks[0].port, CarrierScenario(answer=486), timeout=40)
            try:
                if attempt == 1:
                    await app.acd.agent_action("agent1", "unpause")
                code, err = await asyncio.to_thread(carrier.wait)
                assert code == 0, err
                assert carrier.invites()[0].dialled.lstrip("+") == CUSTOMER.lstrip("+")
            finally:
                carrier.stop()
            if attempt == 1:
                t = await wait_for(lambda: _attempts(app, task.id, 1), 15, what="first attempt recorded")
                assert t.state is TaskState.WAITING and t.not_before is not None
        failed = await _task(app, TaskState.FAILED)
        assert failed.attempts == 2 and failed.outcome == "busy"
        assert app.task_book.open_tasks() == []
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                       what="agent1 free again")
        await assert_no_leaks(ari)


def _attempts(app, task_id: str, n: int):
    t = app.task_book.get(task_id)
    return t if t is not None and t.attempts >= n else None


async def _bridge_of(ari, task_id: str):
    for b in await ari.bridges():
        if b.id.startswith(f"call-{task_id}") and len(b.channels) == 2:
            return b
    return None
