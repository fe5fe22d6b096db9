"""Tasks visible and measured, on the real Asterisk: two callers who waited ask for a callback (the flow's
callback node); while each task waits (agent1 paused) the wallboard's data and /metrics show it as a task,
not as a caller on the line; the first customer answers (a sipp UAS carrier on the trunk), the second is
busy (486, max_attempts 1: the task fails). Then /metrics carries the counters and the time-to-callback
histogram with their queue/kind/outcome/result labels, and a real Prometheus scraping the app returns data
for every task query of docs/metrics.md and of the Grafana dashboard (the callback success rate is 1/2)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskKind, TaskState
from tests.e2e.callbacks_support import asterisk_with_trunks, callback_flow
from tests.e2e.conftest import with_queue_overrides
from tests.e2e.test_prometheus_e2e import prometheus  # noqa: F401 - the real Prometheus fixture
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for
from tests.unit.test_docker import DOCS, _dashboard_exprs, _grafana_to_promql

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ANSWERS, BUSY = "+441632960777", "+441632960888"       # the numbers the callers ask to be called back on
QUEUE_WAIT = 2                                          # the queue node's max_wait before the callback node

FLOW = callback_flow("tm_cb", ANSWERS, QUEUE_WAIT)
FLOW2 = callback_flow("tm_cb2", BUSY, QUEUE_WAIT)


asterisk = asterisk_with_trunks()    # this module's own Asterisk with the trunk 'carrier'


@pytest.fixture
def tm_cfg(cfg, tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    for f in (REPO / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    (d / "tm_cb.yaml").write_text(FLOW)
    (d / "tm_cb2.yaml").write_text(FLOW2)
    routes = {**cfg.flows.routes, "811": "tm_cb", "812": "tm_cb2"}
    crm = {**cfg.crm, "sqlite": {**cfg.crm.get("sqlite", {}), "path": str(tmp_path / "crm.sqlite")}}
    cfg = dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, dir=str(d), routes=routes),
                              storage=dataclasses.replace(cfg.storage, path=str(tmp_path / "ivr.sqlite")),
                              crm=crm, callbacks={"retry_delay": 2, "max_attempts": 1, "ring_seconds": 8})
    return with_queue_overrides(cfg, wrap_up=0, announce_frequency=None, retry=0)


def _caller(cfg, exten: str) -> SippProcess:
    return SippProcess(SippCaller(exten, steps=[], end="wait_bye"), cfg.asterisk.sip_port, 40)


async def _scrape(http: aiohttp.ClientSession, app) -> dict:
    async with http.get(f"http://127.0.0.1:{app.web.port}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    assert not re.search(r"1632960(777|888)", text)                   # no customer number in any label
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _v(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted({"queue": "billing", "kind": "callback", **labels}.items())))]


async def _wallboard(http: aiohttp.ClientSession, app) -> dict:
    async with http.get(f"http://127.0.0.1:{app.web.port}/wallboard/data") as r:
        assert r.status == 200
        data = await r.json()
    return {q["name"]: q for q in data["queues"]}


async def _wait_state(app, number: str, state: TaskState):
    def find():
        for t in app.task_book.recent(kind=TaskKind.CALLBACK):
            if t.number == number and t.state is state:
                return t
        return None
    return await wait_for(find, 40, what=f"the callback to {number[:6]}... {state.value}")


async def _one_waiting_callback(cfg, app, http, exten: str, number: str):
    """A caller waits QUEUE_WAIT s (agent1 paused), asks for a callback and is hung up: the task waits in
    billing, and the wallboard and /metrics show it as a task, not as a caller."""
    r = await asyncio.to_thread(_caller(cfg, exten).wait)
    assert r.ok, r.stderr
    task = await _wait_state(app, number, TaskState.WAITING)
    await wait_for(lambda: [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["callback"], 10,
                   what="the task at its place in billing")
    board = (await _wallboard(http, app))["billing"]
    assert (board["tasks_waiting"], board["tasks_scheduled"], board["tasks_by_kind"]) == \
        (1, 0, {"callback": 1, "web_callback": 0, "voicemail": 0})
    assert board["tasks_oldest_wait"] >= QUEUE_WAIT                     # its place: the caller's join time
    assert (board["waiting"], board["ringing"], board["oldest_wait"]) == (0, 0, 0)   # nobody on the line
    async with http.get(f"http://127.0.0.1:{app.web.port}/wallboard") as r:
        page = await r.text()
    assert 'id="wb-billing-waiting">0</td><td id="wb-billing-tasks">1</td>' in page
    s = await _scrape(http, app)
    assert _v(s, "ivr_tasks_waiting") == 1 and _v(s, "ivr_tasks_scheduled") == 0
    assert _v(s, "ivr_tasks_oldest_wait_seconds") >= QUEUE_WAIT
    assert s[("ivr_queue_calls_waiting", (("queue", "billing"),))] == 0
    return task


def _task_queries() -> list[tuple[str, str]]:
    """Every query of docs/metrics.md (plain `promql` and `promql tasks` blocks) and of the dashboard that
    reads a task metric."""
    docs = re.findall(r"```promql(?: tasks)?\n(.*?)```", DOCS.read_text(), re.DOTALL)
    out = [("docs/metrics.md", e) for e in docs]
    out += [("dashboard", _grafana_to_promql(e)) for e in _dashboard_exprs() if not e.startswith("label_values")]
    return [(w, e) for w, e in out if re.search(r"\bivr_(tasks?|callback)_", e)]


async def test_callbacks_answered_and_failed_are_on_the_wallboard_and_in_the_metrics(tm_cfg, phones, prometheus):  # noqa: F811
    phones("agent1")
    async with running_app(tm_cfg) as app, ari_client(tm_cfg) as ari, aiohttp.ClientSession() as http:
        prom = await prometheus(tm_cfg.http.port)        # scraping before the first task: increase() sees it
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await app.acd.agent_action("agent1", "pause", "meeting")
        s = await _scrape(http, app)
        assert _v(s, "ivr_tasks_total", outcome="done") == 0 and _v(s, "ivr_tasks_waiting") == 0

        # ---- the first customer answers the callback
        first = await _one_waiting_callback(tm_cfg, app, http, "811", ANSWERS)
        carrier = CarrierUas(tm_cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=1500), timeout=60)
        try:
            await app.acd.agent_action("agent1", "unpause")
            done = await _wait_state(app, ANSWERS, TaskState.DONE)
            code, err = await asyncio.to_thread(carrier.wait)
            assert code == 0, err
        finally:
            carrier.stop()
        assert done.id == first.id and done.outcome == "answered"
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                       what="agent1 free again")
        await app.acd.agent_action("agent1", "pause", "meeting")

        # ---- the second customer is busy; one attempt only: the task fails
        await _one_waiting_callback(tm_cfg, app, http, "812", BUSY)
        carrier = CarrierUas(tm_cfg.trunks[0].port, CarrierScenario(answer=486), timeout=40)
        try:
            await app.acd.agent_action("agent1", "unpause")
            failed = await _wait_state(app, BUSY, TaskState.FAILED)
            code, err = await asyncio.to_thread(carrier.wait)
            assert code == 0, err
        finally:
            carrier.stop()
        assert (failed.outcome, failed.attempts) == ("busy", 1)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 15,
                       what="agent1 free again")

        # ---- /metrics: what the two tasks did, by queue, kind, outcome and result
        s = await _scrape(http, app)
        assert {o: _v(s, "ivr_tasks_total", outcome=o) for o in ("done", "failed", "expired", "cancelled")} == \
            {"done": 1, "failed": 1, "expired": 0, "cancelled": 0}
        assert _v(s, "ivr_task_offers_total") == 2
        assert {r: _v(s, "ivr_task_attempts_total", result=r) for r in ("answered", "busy", "no_answer", "failed")
                } == {"answered": 1, "busy": 1, "no_answer": 0, "failed": 0}
        assert _v(s, "ivr_callback_time_to_callback_seconds_count") == 1
        # from the first caller's join time to the customer answering: its queue wait, the goodbye, the
        # agent's ring and whisper, the dial-out: more than the queue wait, well under a minute here
        took = _v(s, "ivr_callback_time_to_callback_seconds_sum")
        assert QUEUE_WAIT < took < 60, took
        assert _v(s, "ivr_callback_time_to_callback_seconds_bucket", le="60.0") == 1
        assert _v(s, "ivr_callback_time_to_callback_seconds_bucket", le="+Inf") == 1
        assert _v(s, "ivr_tasks_total", kind="web_callback", outcome="done") == 0     # other kinds untouched
        assert _v(s, "ivr_tasks_waiting") == 0
        board = (await _wallboard(http, app))["billing"]
        assert board["tasks_waiting"] == 0 and board["waiting"] == 0

        # ---- a real Prometheus: every task query of the docs and the dashboard has data, and the success
        # rate is what the calls did (one answered of two ended)
        queries = _task_queries()
        assert any("histogram_quantile" in e for _, e in queries) and len(queries) >= 8, queries

        async def empty():
            out = []
            for where, q in queries:
                if not any(math.isfinite(float(r["value"][1])) for r in await prom.query(q)):
                    out.append((where, q))
            return out

        await wait_for(lambda: _none(empty()), 20, 1.0, "every task query has data")
        [rate] = [e for w, e in queries if w == "docs/metrics.md" and 'outcome="cancelled"' in e]   # documented
        got = {r["metric"]["kind"]: float(r["value"][1]) for r in await prom.query(rate)
               if r["metric"]["queue"] == "billing"}
        assert got["callback"] == pytest.approx(0.5, abs=0.01) and got["web_callback"] == 0
        p90 = await prom.value('histogram_quantile(0.9, sum by (le, queue, kind) (rate('
                               'ivr_callback_time_to_callback_seconds_bucket{queue="billing",kind="callback"}[1h])))')
        assert p90 is not None and QUEUE_WAIT < p90 <= 60, p90
        await assert_no_leaks(ari)


async def _none(coro) -> bool:
    return not await coro
