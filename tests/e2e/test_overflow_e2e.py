"""A queue's overflow on a real call (real Asterisk, sipp caller, pyVoIP agent phone): a caller waiting in
billing, where no registered agent can serve it, is moved to sales (the queue's `overflow`) and answered
there by a sales agent, keeping its original join time; the move is counted once in
`ivr_queue_calls_overflowed_total{queue="billing",to="sales"}`; the flow sees `queue billing answered`.
The same move happens without `after` when nobody can serve the call for `no_agents_grace` seconds; without
an overflow such a caller goes to the node's `on_no_agents`, and the API says why it waits / why it left.
The test flow is tests/e2e/flows/promises.yaml (key 1: the `plain` billing node)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import aiohttp
import pytest

from ivr.acd import AgentState
from tests.e2e.test_promises_e2e import _call, _cfg, _done, _follows, _new_session, _path, _wait_registered
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _queues(cfg, **per_queue: dict):
    """cfg with some keys of some queues replaced: _queues(cfg, billing={"overflow": {...}})."""
    return dataclasses.replace(cfg, queues=tuple({**q, **per_queue.get(q["name"], {})} for q in cfg.queues))


def _metric(body: str, name: str, **labels: str) -> float:
    want = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in body.splitlines():
        if line.startswith(name + want + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{want} not exported")


async def _api(cfg, path: str) -> dict:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {cfg.http.admin_token}"}) as s, \
            s.get(f"http://127.0.0.1:{cfg.http.port}{path}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def _record(app, call_id: str) -> dict | None:
    return next((r for r in app.storage.call_records() if r["call_id"] == call_id), None)


@pytest.mark.parametrize("how", ["after", "no_agents_grace"])
async def test_overflow_moves_the_caller_to_another_queue_where_its_agent_answers(flow_cfg, phones, how):
    # agent4 (sales 4, no billing) is the only phone: nobody can serve billing, sales can
    billing = ({"overflow": {"queue": "sales", "after": 3}, "no_agents_grace": None} if how == "after"
               else {"overflow": {"queue": "sales"}, "no_agents_grace": 3})
    cfg = _queues(_cfg(flow_cfg), billing=billing, sales={"wrap_up": 0})
    p = phones("agent4")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent4")
        seen: set = set()
        t0 = time.time()
        caller = _call(cfg, ("dtmf", "1"), ("audio",))          # waits for Asterisk's BYE
        s = await _new_session(app, seen)
        await wait_for(lambda: s.channel_id in app.acd.calls, 10, what="queued in billing")
        assert app.acd.calls[s.channel_id].queue == "billing"
        if how == "no_agents_grace":      # the API says why it waits, and where it goes
            view = await _api(cfg, "/api/queues/billing")
            [c] = view["calls"]
            assert "no logged-in, registered agent can serve it (needs billing>=1)" in c["note"], c
            assert "goes to queue sales" in c["note"], c
        assert p["agent4"].rings == 0
        qc = await wait_for(lambda: (c := app.acd.calls.get(s.channel_id)) is not None and c.bridge_id and c,
                            20, what="moved to sales and bridged with agent4")
        assert qc.queue == "sales" and qc.agent_id == "agent4"
        assert time.time() - t0 >= 3
        await asyncio.sleep(1.0)
        await asyncio.to_thread(p["agent4"].hangup_all)
        await _done(caller, s)
        assert _follows(_path(s), "queue billing answered", "end queue_answered"), _path(s)
        rec = await wait_for(lambda: _record(app, s.channel_id), 5, what="the call record")
        assert (rec["queue"], rec["outcome"], rec["agent_id"]) == ("sales", "answered", "agent4")
        # the original join time: the wait counts the seconds in billing too
        assert rec["entered_at"] <= t0 + 2 and rec["wait_seconds"] >= 3
        assert rec["within_sl"] == 1                                  # sales: 30 s
        assert json.loads(rec["extra"])["overflowed_from"] == ["billing"]
        body = app.metrics.render().decode()
        assert _metric(body, "ivr_queue_calls_overflowed_total", queue="billing", to="sales") == 1
        assert _metric(body, "ivr_queue_calls_overflowed_total", queue="billing", to="flow") == 0
        assert _metric(body, "ivr_queue_calls_offered_total", queue="sales") == 1
        assert _metric(body, "ivr_queue_calls_answered_total", queue="sales") == 1
        assert _metric(body, "ivr_queue_calls_answered_total", queue="billing") == 0
        assert app.acd.router.queue_snapshot("billing").stats.overflow == 1
        await wait_for(lambda: app.acd.router.agent_snapshot("agent4").state == AgentState.AVAILABLE, 10,
                       what="agent4 available")
        assert not app.acd.calls
        await assert_no_leaks(ari)


async def test_a_caller_nobody_can_serve_goes_to_on_no_agents_after_the_grace(flow_cfg, phones, caplog):
    # billing needs tier2 here: agent1 (billing 4) is logged in and registered but has no tier2, and no
    # relaxation step drops it: nobody could ever serve the caller, who would otherwise wait 300 s
    cfg = _queues(_cfg(flow_cfg), billing={"required_skills": {"billing": 1, "tier2": 1}, "no_agents_grace": 3})
    p = phones("agent1")
    caplog.set_level("INFO", logger="ivr.calls.acd_service")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        seen: set = set()
        t0 = time.monotonic()
        caller = _call(cfg, ("dtmf", "1"))          # waits for the flow to hang up
        s = await _new_session(app, seen)
        await wait_for(lambda: s.channel_id in app.acd.calls, 10, what="queued in billing")
        calls = (await _api(cfg, "/api/calls"))["calls"]
        [waiting] = [c["waiting"] for c in calls if c["id"] == s.channel_id]
        assert waiting["queue"] == "billing" and waiting["position"] == 1
        note = waiting["note"]
        assert note.startswith("no logged-in, registered agent can serve it (needs ") and "tier2>=1" in note
        assert "leaves (no_agents) in" in note, note
        await wait_for(lambda: "promises:no_agents" in _path(s), 10, what="the node's on_no_agents")
        assert time.monotonic() - t0 >= 3
        assert s.channel_id not in app.acd.calls
        await _done(caller, s)
        assert _follows(_path(s), "queue billing no_agents", "promises:no_agents", "promises:bye"), _path(s)
        assert p["agent1"].rings == 0
        rec = await wait_for(lambda: _record(app, s.channel_id), 5, what="the call record")
        assert (rec["queue"], rec["outcome"], rec["agent_id"]) == ("billing", "no_agents", None)
        [api_rec] = [r for r in (await _api(cfg, "/api/records"))["records"] if r["call_id"] == s.channel_id]
        assert "tier2>=1" in api_rec["reason"] and api_rec["reason"].endswith("for 3s"), api_rec
        assert api_rec["overflowed_from"] == []
        logged = [r.getMessage() for r in caplog.records if "leaves queue billing: no_agents" in r.getMessage()]
        assert len(logged) == 1 and "no logged-in, registered agent can serve it" in logged[0], logged
        body = app.metrics.render().decode()
        assert _metric(body, "ivr_queue_calls_left_no_agents_total", queue="billing") == 1
        assert _metric(body, "ivr_queue_calls_overflowed_total", queue="billing", to="flow") == 0
        await assert_no_leaks(ari)
