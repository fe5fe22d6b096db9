"""Configuration that lives (issue 16), on the real Asterisk with real SIP peers: an agent added through the API
(with a SIP password) registers its pyVoIP phone at once (its PJSIP objects pushed through ARI's dynamic
configuration), takes a call from a sipp caller through the IVR and the queue, and is still there after the
app restarts (the store wins; its phone pushed again, here after Asterisk was made to forget it); a queue
changed live routes the caller already waiting by the new definition and keeps it after a restart; removals
in use are refused (409 agent-busy / queue-in-use) and change nothing; every change is in the audit log
without a secret; bad input on every new route is a 4xx with a stable error id."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets

import aiohttp
import pytest

from ivr.audit import SqliteAuditLog
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.sim.softphone import AgentPhone
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _cfg(flow_cfg):
    cfg = with_queue_overrides(flow_cfg, wrap_up=0, announce_frequency=None, no_agents_grace=None)
    return dataclasses.replace(cfg, users=())      # the bootstrap admin token is the admin


class Api:
    def __init__(self, cfg, session: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{cfg.http.port}"
        self.s = session
        self.auth = {"Authorization": f"Bearer {cfg.http.admin_token}"}

    async def call(self, method: str, path: str, body=None, *, raw: str | None = None, auth: bool = True):
        kw = {"data": raw, "headers": {**self.auth, "Content-Type": "application/json"}} if raw is not None \
            else {"json": body, "headers": self.auth}
        if not auth:
            kw["headers"] = {}
        async with self.s.request(method, self.base + path, **kw) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None), text


def _caller(cfg, key: str, hold_ms: int = 2500, number: str = "441000000099") -> SippProcess:
    steps = [("pause", 600), ("dtmf", key), ("pause", hold_ms)]
    return SippProcess(SippCaller("400", steps=steps, caller_number=number), cfg.asterisk.sip_port, timeout=60)


def _records(app) -> list[tuple]:
    return [(r["queue"], r["outcome"], r["agent_id"]) for r in app.storage.call_records()]


def _audit(cfg, **filters):
    log = SqliteAuditLog(cfg.path(cfg.storage.path))
    try:
        return log.entries(**filters)
    finally:
        log.close()


async def _cannot_register(cfg, agent_id: str, password: str) -> bool:
    p = AgentPhone(agent_id, password, cfg.asterisk.sip_port)
    try:
        await asyncio.to_thread(p.start, 3)
    except RuntimeError:
        return True
    finally:
        await asyncio.to_thread(p.stop)
    return False


async def _answered_by(app, cfg, agent_id: str, key: str = "1") -> None:
    n = len(_records(app))
    sipp = _caller(cfg, key)
    r = await asyncio.to_thread(sipp.wait)
    assert r.ok, r.stderr
    await wait_for(lambda: len(_records(app)) > n, 10, what="the call record")
    assert _records(app)[0][1:] == ("answered", agent_id), _records(app)


async def test_an_agent_added_live_registers_takes_a_call_and_survives_a_restart(flow_cfg):
    cfg = _cfg(flow_cfg)
    pw = secrets.token_urlsafe(12)
    phone = None
    try:
        async with running_app(cfg) as app, aiohttp.ClientSession() as s:
            api = Api(cfg, s)
            st, body, text = await api.call("POST", "/api/agents", {
                "id": "agent9", "name": "Nina Novak", "skills": {"billing": 3}, "languages": ["en"],
                "sip_password": pw})
            assert st == 201, text
            assert pw not in text
            assert body["agent_id"] == "agent9" and body["state"] == "available" and not body["registered"]
            assert body["definition"]["skills"] == {"billing": 3} and body["definition"]["has_sip_password"]
            # an agent with no phone Asterisk knows: added, unregistered; it must not break the next connect
            st, body, text = await api.call("POST", "/api/agents", {"id": "agent8", "skills": {"billing": 1},
                                                                    "login": False})
            assert st == 201 and body["state"] == "logged_out" and not body["definition"]["has_sip_password"], text
            # its phone registers on the running Asterisk (no restart): the router sees it
            phone = await asyncio.to_thread(AgentPhone("agent9", pw, cfg.asterisk.sip_port).start)
            await wait_for(lambda: app.acd.router.agent_snapshot("agent9").registered, 10, what="agent9 registered")
            await _answered_by(app, cfg, "agent9")
            # a wrong password does not register (the pushed auth is real)
            assert await _cannot_register(cfg, "agent9", "wrong-" + pw)
            st, body, _ = await api.call("PUT", "/api/agents/agent9", {"skills": {"billing": 2, "sales": 1},
                                                                       "name": "Nina Novak"})
            assert st == 200 and body["definition"]["skills"] == {"billing": 2, "sales": 1}
            # a new SIP password (write-only, kept when a later PUT does not give one)
            pw2 = secrets.token_urlsafe(12)
            st, body, text = await api.call("PUT", "/api/agents/agent9", {
                "skills": {"billing": 2, "sales": 1}, "name": "Nina Novak", "sip_password": pw2})
            assert st == 200 and pw2 not in text and body["definition"]["has_sip_password"], text
        await asyncio.to_thread(phone.stop)
        phone = None
        entries = _audit(cfg, target="agent:agent9")
        assert [e.action for e in entries] == ["agent.update", "agent.update", "agent.create"]
        assert entries[2].actor == "bootstrap-token" and entries[2].after["sip_password"] == "***"
        assert entries[1].before["skills"] == {"billing": 3} and entries[1].after["skills"] == {"billing": 2, "sales": 1}
        assert entries[0].before["sip_password"] == entries[0].after["sip_password"] == "***"
        assert pw not in json.dumps([e.as_dict() for e in entries]) and pw2 not in json.dumps([e.as_dict() for e in entries])
        # Asterisk forgets pushed phones when it restarts: do that to it, then restart the app
        async with ari_client(cfg) as ari:
            for kind, ident in (("endpoint", "agent9"), ("auth", "agent9-auth"), ("aor", "agent9")):
                await ari.config_delete("res_pjsip", kind, ident)
        async with running_app(cfg) as app:
            assert app.acd.router.agent_config("agent9").skills == {"billing": 2, "sales": 1}   # the store won
            assert app.acd.router.agent_snapshot("agent8").state.value == "logged_out"
            assert await _cannot_register(cfg, "agent9", pw)      # the old password no longer does
            phone = await asyncio.to_thread(AgentPhone("agent9", pw2, cfg.asterisk.sip_port).start)
            await wait_for(lambda: app.acd.router.agent_snapshot("agent9").registered, 10, what="agent9 again")
            await _answered_by(app, cfg, "agent9")
            async with ari_client(cfg) as ari:
                await assert_no_leaks(ari)
    finally:
        if phone is not None:
            await asyncio.to_thread(phone.stop)


async def test_a_queue_changed_live_routes_the_waiting_caller_and_keeps_it(flow_cfg, phones):
    cfg = _cfg(flow_cfg)
    phones("agent4")                          # sales 4, no billing skill: billing's caller waits
    async with running_app(cfg) as app, aiohttp.ClientSession() as s:
        api = Api(cfg, s)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent4").registered, 10, what="agent4 registered")
        sipp = _caller(cfg, "1", hold_ms=9000)
        await wait_for(lambda: app.acd.router.queue_snapshot("billing").waiting == 1, 15, what="caller in billing")
        await asyncio.sleep(1.0)
        assert app.acd.router.queue_snapshot("billing").waiting == 1      # nobody can serve it
        # a caller waiting: the queue cannot be removed (nor while a flow queues to it)
        st, body, _ = await api.call("DELETE", "/api/queues/billing")
        assert st == 409 and body["error_id"] == "queue-in-use"
        assert len(body["details"]["in_use"]["calls"]) == 1 and "acd" in body["details"]["in_use"]["flows"]
        st, body, text = await api.call("PUT", "/api/queues/billing", {
            "required_skills": {"sales": 1}, "service_level": {"percent": 90, "seconds": 45}, "wrap_up": 0,
            "max_wait": 300, "no_agents_grace": None})
        assert st == 200, text
        # the caller already waiting is offered to agent4 by the new definition and answered
        await wait_for(lambda: any(c.agent_id == "agent4" and c.bridge_id for c in app.acd.calls.values()), 15,
                       what="billing's caller bridged to agent4")
        st, body, _ = await api.call("GET", "/api/queues/billing")
        assert body["service_level_target"] == [90, 45]
        r = await asyncio.to_thread(sipp.wait)
        assert r.ok, r.stderr
        await wait_for(lambda: _records(app), 10, what="the call record")
        assert _records(app)[0] == ("billing", "answered", "agent4")
        # a new queue is known to flows at once; removed, it is not
        flow = ("flow: t\nentry: q\nnodes:\n  q:\n    type: queue\n    queue: vip\n    on_timeout: bye\n"
                "    on_no_agents: bye\n    on_full: bye\n  bye:\n    type: hangup\n")
        st, body, _ = await api.call("POST", "/api/flows/validate", {"file": "t.yaml", "text": flow})
        assert not body["ok"] and "unknown queue 'vip'" in body["errors"][0]
        st, body, text = await api.call("POST", "/api/queues", {"name": "vip", "required_skills": {"sales": 3},
                                                               "priority": 5})
        assert st == 201, text
        st, body, _ = await api.call("POST", "/api/flows/validate", {"file": "t.yaml", "text": flow})
        assert body["ok"], body
        assert "vip" in app.acd.router.agent_snapshot("agent4").queues
        st, _, _ = await api.call("DELETE", "/api/queues/vip")
        assert st == 204 and "vip" not in app.acd.router.queue_names()
        st, body, _ = await api.call("POST", "/api/flows/validate", {"file": "t.yaml", "text": flow})
        assert not body["ok"]
    actions = [(e.action, e.target) for e in _audit(cfg)]
    assert actions[:3] == [("queue.delete", "queue:vip"), ("queue.create", "queue:vip"),
                           ("queue.update", "queue:billing")]
    upd = _audit(cfg, action="queue.update")[0]
    assert upd.before["required_skills"] == {"billing": 1} and upd.after["required_skills"] == {"sales": 1}
    async with running_app(cfg) as app:           # after a restart: the store's billing, no vip
        q = app.acd.router.queue_config("billing")
        assert dict(q.required_skills) == {"sales": 1} and (q.service_level.percent, q.service_level.seconds) == (90, 45)
        assert "vip" not in app.acd.router.queue_names()


async def test_removing_an_agent_on_a_call_is_refused_then_done_once_it_ended(flow_cfg, phones):
    cfg = _cfg(flow_cfg)
    phones("agent1")
    async with running_app(cfg) as app, aiohttp.ClientSession() as s, ari_client(cfg) as ari:
        api = Api(cfg, s)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="agent1 registered")
        sipp = _caller(cfg, "1", hold_ms=6000)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "on_call", 15,
                       what="agent1 on the call")
        st, body, _ = await api.call("DELETE", "/api/agents/agent1")
        assert st == 409 and body["error_id"] == "agent-busy"
        assert app.acd.router.agent_snapshot("agent1").state.value == "on_call"      # nothing changed
        r = await asyncio.to_thread(sipp.wait)
        assert r.ok, r.stderr
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 10,
                       what="agent1 free")
        st, _, text = await api.call("DELETE", "/api/agents/agent1")
        assert st == 204 and "agent1" not in app.acd.router.agent_ids(), text
        st, body, _ = await api.call("GET", "/api/agents/agent1")
        assert st == 404 and body["error_id"] == "agent-not-found"
        await assert_no_leaks(ari)
    assert [e.action for e in _audit(cfg, target="agent:agent1")] == ["agent.delete"]
    async with running_app(cfg) as app:           # the removal sticks: the file does not bring it back
        assert "agent1" not in app.acd.router.agent_ids()


BAD_AGENTS = [
    ("{", "invalid-json"), ("[]", "invalid-json"), ({"name": "x"}, "invalid-agent"),
    ({"id": "../x"}, "invalid-agent"), ({"id": "a" * 41}, "invalid-agent"), ({"id": 5}, "invalid-agent"),
    ({"id": "n1", "colour": "blue"}, "invalid-agent"), ({"id": "n1", "skills": {"billing": 9}}, "invalid-agent"),
    ({"id": "n1", "skills": {"billing": "5"}}, "invalid-agent"), ({"id": "n1", "skills": "billing"}, "invalid-agent"),
    ({"id": "n1", "queues": ["nope"]}, "invalid-agent"), ({"id": "n1", "queues": "billing"}, "invalid-agent"),
    ({"id": "n1", "sip_password": "short"}, "invalid-agent"), ({"id": "n1", "sip_password": "has space in it"},
                                                               "invalid-agent"),
    ({"id": "n1", "endpoint": "SIP/x"}, "invalid-agent"), ({"id": "n1", "phone": "fax"}, "invalid-agent"),
    ({"id": "n1", "languages": ["e n"]}, "invalid-agent"), ({"id": "n1", "wrap_up": -1}, "invalid-agent"),
    ({"id": "n1", "max_misses": True}, "invalid-agent"), ({"id": "n1", "name": "a\u202eb"}, "invalid-agent"),
    ({"id": "n1", "login": "yes"}, "invalid-agent"), ({"id": "n1", "skills": {f"s{i}": 1 for i in range(60)}},
                                                      "invalid-agent"),
]
BAD_QUEUES = [
    ("{", "invalid-json"), ({"required_skills": {"x": 1}}, "invalid-queue"), ({"name": "a b"}, "invalid-queue"),
    ({"name": "q9", "colour": 1}, "invalid-queue"), ({"name": "q9", "priority": "high"}, "invalid-queue"),
    ({"name": "q9", "ring_timeout": 0}, "invalid-queue"), ({"name": "q9", "ring_timeout": 10**9}, "invalid-queue"),
    ({"name": "q9", "service_level": {"percent": 120, "seconds": 20}}, "invalid-queue"),
    ({"name": "q9", "overflow": {"queue": "nowhere", "after": 5}}, "invalid-queue"),
    ({"name": "q9", "relaxation": [{"after": 5}]}, "invalid-queue"),
    ({"name": "q9", "relaxation": [{"after": 10, "min_proficiency": 2}, {"after": 5, "min_proficiency": 1}]},
     "invalid-queue"),
    ({"name": "q9", "required_skills": {"x": 1}, "optional_skills": {"x": 1}}, "invalid-queue"),
    ({"name": "q9", "on_timeout": {"a": 1}}, "invalid-queue"), ({"name": "q9", "join_empty": "no"}, "invalid-queue"),
    ({"name": "q9", "moh_class": None}, "invalid-queue"),
]


async def test_bad_input_on_every_new_route_changes_nothing(flow_cfg):
    cfg = _cfg(flow_cfg)
    async with running_app(cfg) as app, aiohttp.ClientSession() as s:
        api = Api(cfg, s)
        router = app.acd.router
        agents, queues = router.agent_ids(), router.queue_names()
        billing, agent2 = router.queue_config("billing"), router.agent_config("agent2")
        for body, error_id in BAD_AGENTS:
            kw = {"raw": body} if isinstance(body, str) else {}
            st, err, text = await api.call("POST", "/api/agents", None if kw else body, **kw)
            assert (st, err["error_id"]) == (400, error_id), (body, text)
            if not isinstance(body, str) and "id" in body:     # the same bad keys replacing agent2's definition
                st, err, text = await api.call("PUT", "/api/agents/agent2", {k: v for k, v in body.items() if k != "id"}
                                               or {"colour": 1})
                assert st == 400 and err["error_id"] in ("invalid-agent", "invalid-request"), (body, text)
        for body, error_id in BAD_QUEUES:
            kw = {"raw": body} if isinstance(body, str) else {}
            st, err, text = await api.call("POST", "/api/queues", None if kw else body, **kw)
            assert (st, err["error_id"]) == (400, error_id), (body, text)
            if not isinstance(body, str) and "name" in body and set(body) - {"name"}:
                st, err, text = await api.call("PUT", "/api/queues/billing", {k: v for k, v in body.items()
                                                                              if k != "name"})
                assert (st, (err or {}).get("error_id")) == (400, "invalid-queue"), (body, text)
        # conflicts and unknowns
        for method, path, body, want in [
            ("POST", "/api/agents", {"id": "agent2"}, (409, "agent-exists")),
            ("POST", "/api/agents", {"id": "n2", "endpoint": "PJSIP/agent2"}, (409, "agent-exists")),
            ("POST", "/api/agents", {"id": "n3", "endpoint": "PJSIP/agent3", "sip_password": "abcdefgh1"},
             (409, "agent-conflict")),
            ("PUT", "/api/agents/agent2", {"sip_password": "abcdefgh1"}, (409, "agent-conflict")),
            ("PUT", "/api/agents/agent2", {"endpoint": "PJSIP/other"}, (409, "agent-conflict")),
            ("PUT", "/api/agents/agent2", {"id": "agent3"}, (400, "invalid-request")),
            ("PUT", "/api/agents/ghost", {"name": "x"}, (404, "agent-not-found")),
            ("DELETE", "/api/agents/ghost", None, (404, "agent-not-found")),
            ("POST", "/api/queues", {"name": "billing"}, (409, "queue-exists")),
            ("PUT", "/api/queues/ghost", {}, (404, "queue-not-found")),
            ("PUT", "/api/queues/billing", {"name": "sales"}, (400, "invalid-request")),
            ("DELETE", "/api/queues/ghost", None, (404, "queue-not-found")),
            ("DELETE", "/api/queues/legacy", None, (409, "queue-in-use")),      # flows queue callers to it
            ("GET", "/api/queues/ghost/definition", None, (404, "queue-not-found")),
        ]:
            st, err, text = await api.call(method, path, body)
            assert (st, err["error_id"]) == want, (method, path, text)
        for method, path in [("POST", "/api/agents"), ("PUT", "/api/agents/agent2"), ("DELETE", "/api/agents/agent2"),
                             ("POST", "/api/queues"), ("PUT", "/api/queues/billing"),
                             ("DELETE", "/api/queues/billing")]:
            st, err, _ = await api.call(method, path, {"name": "x"}, auth=False)
            assert (st, err["error_id"]) == (401, "unauthorized"), (method, path)
        assert (router.agent_ids(), router.queue_names()) == (agents, queues)
        assert router.queue_config("billing") == billing and router.agent_config("agent2") == agent2
        st, body, _ = await api.call("DELETE", "/api/queues/billing")
        in_use = body["details"]["in_use"]
        assert st == 409 and in_use["config"] == ["voicemail.queues.support", "web_callbacks.topics.billing"]
        assert "acd" in in_use["flows"] and "calls" not in in_use
        st, body, _ = await api.call("GET", "/api/queues/billing/definition")
        assert st == 200 and body["definition"]["required_skills"] == {"billing": 1}
    assert _audit(cfg, action="agent.create") == [] and _audit(cfg, action="queue.update") == []
