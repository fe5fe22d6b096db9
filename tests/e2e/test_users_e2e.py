"""Users and roles on the real stack (real Asterisk, real SIP phones, headless Chromium):

* the allowed/denied table over EVERY route of the running server, with each role and with no credentials
  (a route added without a decision here fails the test);
* login/logout with the session cookie, CSRF refusal, the login rate limit, API tokens created, used and
  revoked, the bootstrap admin token retired, the audit log (logins, user changes, no secret in it);
* an agent's page and websocket for that agent only; logging out while a call rings the agent puts the call
  back in its place (it is offered to the next agent);
* hostile input on login, user edits and the websocket: a 4xx with a stable error id, nothing changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import pytest

from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.browser import Browser
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e
PW = "correct horse battery"
USERS = {"ann": {"role": "agent", "agent_id": "agent1"}, "sup": {"role": "supervisor", "queues": ["billing"]},
         "root": {"role": "admin"}}          # root last: creating an admin retires the bootstrap token

OK, DENY, AUTH, PUBLIC = "ok", "deny", "auth", "public"
ADMIN_ONLY = {"none": AUTH, "agent": DENY, "supervisor": DENY, "admin": OK}
SUPERVISOR = {"none": AUTH, "agent": DENY, "supervisor": OK, "admin": OK}
ANY_USER = {"none": AUTH, "agent": OK, "supervisor": OK, "admin": OK}
SELF_OR_ADMIN = {"none": AUTH, "agent": OK, "supervisor": DENY, "admin": OK}     # {username} is ann, the agent
OPEN = {"none": PUBLIC, "agent": PUBLIC, "supervisor": PUBLIC, "admin": PUBLIC}
#: the browser phone's credentials: an agent's own (agent1 has a SIP phone: 404 no-phone, not a refusal), never
#: a supervisor's or an admin's (404 no-phone); tests/component/test_phone_relay.py has the rest
C_ROUTE = {"none": AUTH, "agent": OK, "supervisor": OK, "admin": OK}

#: every route: (the URL asked, the JSON body, the expected outcome by role). {username} -> ann, {id} -> agent1
ROUTES: dict[str, tuple[str, object, dict[str, str]]] = {
    "GET /": ("/", None, OPEN),
    "GET /healthz": ("/healthz", None, OPEN),
    "GET /metrics": ("/metrics", None, OPEN),
    "GET /wallboard": ("/wallboard", None, OPEN),
    "GET /wallboard/data": ("/wallboard/data", None, OPEN),
    "GET /login": ("/login", None, OPEN),
    "GET /callback": ("/callback", None, OPEN),
    "POST /callback": ("/callback", None, OPEN),
    "POST /api/callbacks": ("/api/callbacks", {}, OPEN),
    "POST /api/login": ("/api/login", {}, OPEN),
    "GET /static/{name}": ("/static/softphone.js", None, OPEN),
    "GET /agent/{id}": ("/agent/agent1", None, OPEN),
    "GET /agent": ("/agent", None, {"none": "redirect", "agent": OK, "supervisor": OK, "admin": OK}),
    "GET /admin": ("/admin", None, {"none": "redirect", "agent": DENY, "supervisor": DENY, "admin": OK}),
    "POST /api/logout": ("/api/logout", None, ANY_USER),
    "GET /api/me": ("/api/me", None, ANY_USER),
    "GET /api/queues": ("/api/queues", None, SUPERVISOR),
    "GET /api/queues/{name}": ("/api/queues/billing", None, SUPERVISOR),
    "GET /api/calls": ("/api/calls", None, SUPERVISOR),
    "GET /api/records": ("/api/records", None, SUPERVISOR),
    "GET /api/flows": ("/api/flows", None, ADMIN_ONLY),
    "POST /api/flows/validate": ("/api/flows/validate", {}, ADMIN_ONLY),
    "POST /api/flows/reload": ("/api/flows/reload", None, ADMIN_ONLY),
    "GET /api/config": ("/api/config", None, ADMIN_ONLY),
    "GET /api/agents": ("/api/agents", None, ANY_USER),
    "GET /api/agents/{id}": ("/api/agents/agent1", None, ANY_USER),
    "POST /api/agents/{id}/state": ("/api/agents/agent1/state", {"action": "bogus"}, ANY_USER),
    "PUT /api/agents/{id}": ("/api/agents/agent1", {"name": 5}, ADMIN_ONLY),
    "GET /api/agents/{id}/screen": ("/api/agents/agent1/screen", None, ANY_USER),
    "GET /api/voicemails": ("/api/voicemails", None, ADMIN_ONLY),
    "GET /api/voicemails/{id}/audio": ("/api/voicemails/999999/audio", None, ADMIN_ONLY),
    "DELETE /api/voicemails/{id}": ("/api/voicemails/999999", None, ADMIN_ONLY),
    "GET /api/tasks": ("/api/tasks", None, ANY_USER),
    "GET /api/tasks/{id}": ("/api/tasks/nope", None, ADMIN_ONLY),          # nobody's task: admins only
    "POST /api/tasks/{id}/actions": ("/api/tasks/nope/actions", {}, ADMIN_ONLY),
    "GET /api/tasks/{id}/why-not/{agent_id}": ("/api/tasks/nope/why-not/agent1", None, ADMIN_ONLY),
    "GET /api/users": ("/api/users", None, ADMIN_ONLY),
    "POST /api/users": ("/api/users", {}, ADMIN_ONLY),
    "GET /api/users/{username}": ("/api/users/ann", None, SELF_OR_ADMIN),
    "PUT /api/users/{username}": ("/api/users/ann", {"bogus": 1}, ADMIN_ONLY),
    "DELETE /api/users/{username}": ("/api/users/ghost", None, ADMIN_ONLY),
    "POST /api/users/{username}/password": ("/api/users/ann/password", {"current_password": PW, "password": "x"},
                                            SELF_OR_ADMIN),
    "GET /api/users/{username}/tokens": ("/api/users/ann/tokens", None, SELF_OR_ADMIN),
    "POST /api/users/{username}/tokens": ("/api/users/ann/tokens", {"name": 5}, SELF_OR_ADMIN),
    "DELETE /api/users/{username}/tokens/{token_id}": ("/api/users/ann/tokens/nope", None, SELF_OR_ADMIN),
    "GET /api/audit": ("/api/audit", None, ADMIN_ONLY),
    "GET /api/me/phone": ("/api/me/phone", None, C_ROUTE),
    # live configuration (helper B's routes): definitions are admins'; reading one follows the access rules
    "POST /api/agents": ("/api/agents", {}, ADMIN_ONLY),
    "DELETE /api/agents/{id}": ("/api/agents/nobody", None, ADMIN_ONLY),
    "GET /api/agents/{id}/definition": ("/api/agents/agent1/definition", None, ANY_USER),
    "POST /api/queues": ("/api/queues", {}, ADMIN_ONLY),
    "PUT /api/queues/{name}": ("/api/queues/nope", {}, ADMIN_ONLY),
    "DELETE /api/queues/{name}": ("/api/queues/nope", None, ADMIN_ONLY),
    "GET /api/queues/{name}/definition": ("/api/queues/billing/definition", None, SUPERVISOR),
}
#: websockets, asked with a websocket handshake (below)
WEBSOCKETS = {"GET /agent/ws", "GET /agent/{id}/ws", "GET /api/me/phone/ws"}


@pytest.fixture
def users_cfg(flow_cfg):
    return dataclasses.replace(flow_cfg, auth={"login_per_user": 3, "login_per_address": 200})


async def make_users(base: str, boot_token: str) -> dict[str, str]:
    """The three users, and an API token for each: {username: token}."""
    boot = {"Authorization": f"Bearer {boot_token}"}
    tokens = {}
    async with aiohttp.ClientSession(base) as http:
        for name, fields in USERS.items():
            async with http.post("/api/users", json={"username": name, "password": PW, **fields},
                                 headers=boot) as r:
                assert r.status == 201, await r.text()
            if name != "root":
                async with http.post(f"/api/users/{name}/tokens", json={"name": "e2e"}, headers=boot) as r:
                    tokens[name] = (await r.json())["token"]
        async with http.get("/api/agents", headers=boot) as r:
            assert (await r.json())["error_id"] == "bootstrap-token-retired"
    s, csrf = await login(base, "root")
    async with s, s.post("/api/users/root/tokens", json={"name": "e2e"}, headers={"X-CSRF-Token": csrf}) as r:
        tokens["root"] = (await r.json())["token"]
    return tokens


async def login(base: str, username: str, password: str = PW) -> tuple[aiohttp.ClientSession, str]:
    s = aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post("/api/login", json={"username": username, "password": password}) as r:
        assert r.status == 200, await r.text()
        return s, (await r.json())["csrf_token"]


async def wait_js(b: Browser, expr: str, timeout: float = 10.0) -> None:
    async def ok() -> bool:
        return bool(await b.eval(expr))
    for _ in range(int(timeout * 10)):
        if await ok():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true in the page: {expr}")


def outcome(status: int, body: dict | None) -> str:
    if status == 401:
        return AUTH
    if status == 403 and (body or {}).get("error_id") == "forbidden":
        return DENY
    if status == 302:
        return "redirect"
    return OK


async def test_every_route_allows_and_denies_by_role(users_cfg, phones):
    async with running_app(users_cfg) as app:
        base = f"http://127.0.0.1:{app.web.port}"
        tokens = await make_users(base, users_cfg.http.admin_token)
        served = set()
        for r in app.web._runner.app.router.routes():
            if r.method != "HEAD":
                served.add(f"{r.method} {r.resource.canonical}")
        assert served - set(ROUTES) - WEBSOCKETS == set(), "a route without a role decision in ROUTES"
        assert set(ROUTES) | WEBSOCKETS >= served
        who = {"none": None, "agent": tokens["ann"], "supervisor": tokens["sup"], "admin": tokens["root"]}
        wrong = []
        async with aiohttp.ClientSession(base) as http:
            for key in sorted(served - WEBSOCKETS):
                url, body, table = ROUTES[key]
                for role, expected in table.items():
                    headers = {"Authorization": f"Bearer {who[role]}"} if who[role] else {}
                    async with http.request(key.split()[0], url, json=body, headers=headers,
                                            allow_redirects=False) as r:
                        got = r.status, (await r.json() if r.content_type == "application/json" else None)
                    result = outcome(*got)
                    ok = result == expected or (expected == PUBLIC and result == OK)
                    if not ok:
                        wrong.append((key, role, expected, got))
            # websockets: no credentials -> refused (4401 after the auth timeout is not waited: a bad token)
            for path in ("/agent/ws", "/agent/agent1/ws"):
                async with http.ws_connect(path) as ws:
                    await ws.send_str(json.dumps({"auth": "wrong"}))
                    msg = await ws.receive_json(timeout=5)
                    assert msg["error_id"] == "unauthorized"
            for role, agent, expected in (("agent", "agent1", "agent"), ("agent", "agent2", "forbidden"),
                                          ("supervisor", "agent1", "agent"), ("supervisor", "agent2", "forbidden"),
                                          ("admin", "agent2", "agent")):
                async with http.ws_connect(f"/agent/{agent}/ws") as ws:
                    await ws.send_str(json.dumps({"auth": who[role]}))
                    msg = await ws.receive_json(timeout=5)
                    got = msg.get("error_id") or msg["type"]
                    if got != expected:
                        wrong.append((f"WS /agent/{agent}/ws", role, expected, msg))
        assert wrong == []


async def test_login_logout_csrf_rate_limit_tokens_and_the_audit_log(users_cfg):
    async with running_app(users_cfg) as app:
        base = f"http://127.0.0.1:{app.web.port}"
        tokens = await make_users(base, users_cfg.http.admin_token)
        # login sets a strict, HttpOnly cookie; a state change without the CSRF token is refused
        s, csrf = await login(base, "root")
        async with s:
            new = {"username": "zoe", "role": "agent", "agent_id": "agent2", "password": PW}
            async with s.post("/api/users", json=new) as r:
                assert r.status == 403 and (await r.json())["error_id"] == "csrf-failed"
            assert app.accounts.store.user("zoe") is None
            async with s.post("/api/users", json=new, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 201
            async with s.put("/api/users/zoe", json={"role": "supervisor", "queues": ["billing"]},
                             headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200 and (await r.json())["queues"] == ["billing"]
            async with s.post("/api/logout", headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 200 and "ivr_session=" in r.headers["Set-Cookie"]
            async with s.get("/api/me") as r:
                assert r.status == 401
        # a revoked token is refused at once
        async with aiohttp.ClientSession(base) as http:
            bearer = {"Authorization": f"Bearer {tokens['sup']}"}
            async with http.get("/api/users/sup/tokens", headers=bearer) as r:
                (tid,) = [t["id"] for t in (await r.json())["tokens"]]
            async with http.delete(f"/api/users/sup/tokens/{tid}", headers=bearer) as r:
                assert r.status == 204
            async with http.get("/api/queues", headers=bearer) as r:
                assert r.status == 401
            # the login rate limit: 3 failures for a user, then even the right password waits
            for _ in range(3):
                async with http.post("/api/login", json={"username": "ann", "password": "guessed wrong"}) as r:
                    assert r.status == 401
            async with http.post("/api/login", json={"username": "ann", "password": PW}) as r:
                assert r.status == 429 and (await r.json())["error_id"] == "login-rate-limited"
            admin = {"Authorization": f"Bearer {tokens['root']}"}
            async with http.get("/api/audit", params={"limit": "50"}, headers=admin) as r:
                entries = (await r.json())["entries"]
            async with http.get("/api/audit", params={"action": "login-failed"}, headers=admin) as r:
                failed = (await r.json())["entries"]
        actions = [e["action"] for e in entries]
        for a in ("login", "logout", "login-failed", "user.create", "user.update", "token.create", "token.revoke"):
            assert a in actions
        upd = next(e for e in entries if e["action"] == "user.update")
        assert upd["actor"] == "root" and upd["before"]["role"] == "agent" and upd["after"]["role"] == "supervisor"
        assert len(failed) == 3 and all(e["target"] == "user:ann" for e in failed)
        dump = json.dumps(entries)
        assert PW not in dump and "guessed" not in dump and not any(t in dump for t in tokens.values())
        assert "scrypt$" not in dump and users_cfg.http.admin_token not in dump


async def test_hostile_input_on_login_user_edits_and_the_websocket(users_cfg):
    async with running_app(users_cfg) as app:
        base = f"http://127.0.0.1:{app.web.port}"
        tokens = await make_users(base, users_cfg.http.admin_token)
        admin = {"Authorization": f"Bearer {tokens['root']}"}
        before = [u.as_dict() for u in app.accounts.store.users()]
        async with aiohttp.ClientSession(base) as http:
            for body in (b"\xff\xfe", b"[]", b'{"username": "root"}', b'{"username": "root", "password": 1}',
                         b'{"username": "' + b"a" * 70_000 + b'", "password": "x"}',
                         json.dumps({"username": "root\u0000", "password": PW, "x": 1}).encode()):
                async with http.post("/api/login", data=body, headers={"Content-Type": "application/json"}) as r:
                    assert r.status in (400, 413), body[:40]
                    assert (await r.json())["error_id"] in ("invalid-json", "invalid-request", "payload-too-large")
                    assert "Set-Cookie" not in r.headers
            for method, url, body, error_id in (
                    ("POST", "/api/users", {"username": "../etc", "role": "admin", "password": PW}, "invalid-user"),
                    ("POST", "/api/users", {"username": "x", "role": "admin", "password": PW, "queues": [1]},
                     "invalid-user"),
                    ("POST", "/api/users", {"username": "x", "role": "agent", "password": PW,
                                            "agent_id": "<script>"}, "unknown-agent"),
                    ("PUT", "/api/users/root", {"role": "agent", "agent_id": "agent1"}, "last-admin"),
                    ("PUT", "/api/users/ann", {"disabled": "yes"}, "invalid-user"),
                    ("PUT", "/api/users/ann", {"password_hash": "scrypt$1$1$1$x$y"}, "invalid-request"),
                    ("DELETE", "/api/users/root", None, "last-admin"),
                    ("POST", "/api/users/ann/tokens", {"name": "x" * 500}, "invalid-token")):
                async with http.request(method, url, json=body, headers=admin) as r:
                    got = await r.json()
                    assert 400 <= r.status < 500 and got["error_id"] == error_id, (url, body, got)
            assert [u.as_dict() for u in app.accounts.store.users()] == before
            # the websocket: garbage before and after authenticating never crashes it
            async with http.ws_connect("/agent/agent1/ws") as ws:
                await ws.send_str("x" * 3000)
                msg = await ws.receive_json(timeout=5)
                assert msg["error_id"] == "unauthorized"
            async with http.ws_connect("/agent/agent1/ws") as ws:
                await ws.send_str(json.dumps({"auth": tokens["ann"]}))
                assert (await ws.receive_json(timeout=5))["type"] == "agent"
                for junk in ("{", "[]", json.dumps({"action": "login", "agent_id": "agent2"}), "y" * 5000):
                    await ws.send_str(junk)
                errors = []
                while len(errors) < 4:
                    m = await ws.receive_json(timeout=5)
                    if m["type"] == "error":
                        errors.append(m["error_id"])
                assert errors == ["invalid-json", "invalid-request", "invalid-request", "payload-too-large"]
        async with aiohttp.ClientSession(base) as http, http.get("/healthz") as r:
            assert r.status == 200


async def test_the_agent_logs_in_on_its_page_and_logging_out_while_ringing_puts_the_call_back(users_cfg, phones):
    """The agent page at /agent after /login: the agent's own state live, available, pause with a reason,
    log out. A call ringing agent1 when it logs out goes back to its place and is offered to agent3."""
    cfg = with_queue_overrides(users_cfg, wrap_up=0, ring_timeout=30, retry=0)
    phones(agent1="ignore", agent3="answer")          # agent1's phone rings and is never answered
    async with running_app(cfg) as app, ari_client(cfg) as ari, Browser() as b:
        base = f"http://127.0.0.1:{app.web.port}"
        await make_users(base, cfg.http.admin_token)
        router = app.acd.router
        await wait_for(lambda: router.agent_snapshot("agent1").registered
                       and router.agent_snapshot("agent3").registered, 10, what="phones registered")
        await app.acd.agent_action("agent3", "pause", "meeting")
        await b.goto(f"{base}/agent")
        await wait_js(b, "location.pathname === '/login'", timeout=10)
        await b.eval(f"""document.getElementById('username').value = 'ann';
                         document.getElementById('password').value = {json.dumps(PW)};
                         document.getElementById('submit').click(); true""")
        await wait_js(b, "location.pathname === '/agent'", timeout=10)
        await b.wait_text("agent-name", lambda t: "agent1" in t)
        await b.eval("document.querySelector('#reason').value = 'lunch'; "
                     "document.querySelector('button[data-action=pause]').click(); true")
        await b.wait_text("agent-state", lambda t: "paused (lunch)" in t)
        await b.eval("document.querySelector('button[data-action=available]').click(); true")
        await b.wait_text("agent-state", lambda t: t.strip() == "available")
        caller = SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", 9000)]),
                             cfg.asterisk.sip_port, timeout=60)
        await b.wait_text("agent-state", lambda t: "reserved" in t, timeout=15)
        call_id = router.agent_snapshot("agent1").call_id
        await app.acd.agent_action("agent3", "unpause")
        await b.eval("document.querySelector('button[data-action=logout]').click(); true")
        await b.wait_text("agent-state", lambda t: "logged_out" in t)
        await wait_for(lambda: router.agent_snapshot("agent3").call_id == call_id, 10,
                       what="the call offered to agent3 after agent1 logged out")
        assert router.agent_snapshot("agent1").state.value == "logged_out"
        assert (await asyncio.to_thread(caller.wait)).ok
        # Sign out ends the session: back to /login, and the API no longer knows the browser
        await b.eval("document.getElementById('signout').click(); true")
        await wait_js(b, "location.pathname === '/login'", timeout=10)
        await b.eval("fetch('/api/me').then((r) => { window.meStatus = r.status; }); true")
        await wait_js(b, "window.meStatus === 401", timeout=5)
        await assert_no_leaks(ari)
