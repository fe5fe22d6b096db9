"""The auth middleware and the users API on a real loopback port, against a real App (no Asterisk): the
bootstrap rule, login/logout with the cookie, CSRF, login rate limits, API tokens, role checks, the audit
log (no secret in it), hostile input. The full route x role table is tests/e2e/test_users_e2e.py's."""

from __future__ import annotations

import dataclasses
import sqlite3

import aiohttp
import pytest

from ivr.app import App
from ivr.web.server import WebServer
from tests.support.stack import make_test_config

PW = "a long password"


@pytest.fixture
async def web(tmp_path):
    cfg = make_test_config(data_dir=str(tmp_path))
    cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, port=0, bind_address="127.0.0.1"),
                              auth={"scrypt_n": 1024, "login_per_user": 3, "login_per_address": 50})
    app = App(cfg)
    server = WebServer(app.web.deps)
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    boot = {"Authorization": f"Bearer {cfg.http.admin_token}"}
    async with aiohttp.ClientSession(url) as http:
        for body in ({"username": "sup", "role": "supervisor", "password": PW, "queues": ["billing"]},
                     {"username": "ann", "role": "agent", "password": PW, "agent_id": "agent1"},
                     {"username": "root", "role": "admin", "password": PW}):     # the bootstrap's last act
            async with http.post("/api/users", json=body, headers=boot) as r:
                assert r.status == 201, await r.text()
        yield type("W", (), {"app": app, "url": url, "boot": boot, "http": http, "db": cfg.path(cfg.storage.path)})
    await server.stop()
    if app.crm is not None:
        await app.crm.close()


async def login(w, username: str, password: str = PW, **kw) -> tuple[aiohttp.ClientSession, str]:
    s = aiohttp.ClientSession(w.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post("/api/login", json={"username": username, "password": password}, **kw) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return s, body["csrf_token"]


async def test_the_admin_token_is_only_a_bootstrap(web) -> None:
    async with web.http.get("/api/agents", headers=web.boot) as r:     # an admin user exists now
        assert r.status == 401 and (await r.json())["error_id"] == "bootstrap-token-retired"
    entries = web.app.audit.entries(action="user.create")
    assert [e.actor for e in entries] == ["bootstrap-token"] * 3
    assert PW not in repr([e.as_dict() for e in entries])


async def test_login_sets_a_strict_httponly_cookie_and_only_its_hash_is_stored(web) -> None:
    async with aiohttp.ClientSession(web.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.post("/api/login", json={"username": "root", "password": PW}) as r:
            assert r.status == 200
            header = r.headers["Set-Cookie"]
            body = await r.json()
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
        assert "Max-Age=43200" in header and "password_hash" not in body and PW not in repr(body)
        raw = next(c.value for c in s.cookie_jar if c.key == "ivr_session")
        async with s.get("/api/me") as r:
            me = await r.json()
        assert me["username"] == "root" and me["role"] == "admin" and me["csrf_token"] == body["csrf_token"]
    dump = "\n".join(sqlite3.connect(web.db).iterdump())
    assert raw not in dump and PW not in dump


async def test_a_cookie_request_that_changes_state_needs_the_csrf_token_and_our_origin(web) -> None:
    s, csrf = await login(web, "root")
    async with s:
        body = {"username": "eve", "role": "admin", "password": PW}
        async with s.post("/api/users", json=body) as r:
            assert r.status == 403 and (await r.json())["error_id"] == "csrf-failed"
        async with s.post("/api/users", json=body, headers={"X-CSRF-Token": "0" * 64}) as r:
            assert r.status == 403
        async with s.post("/api/users", json=body, headers={"X-CSRF-Token": csrf,
                                                             "Origin": "http://evil.example"}) as r:
            assert r.status == 403 and (await r.json())["error_id"] == "csrf-failed"
        assert web.app.accounts.store.user("eve") is None
        host = web.url.split("://", 1)[1]
        for other in (f"http://{host.rsplit(':', 1)[0]}:1", "null", "file://" + host):   # another port, opaque
            async with s.post("/api/users", json=body, headers={"X-CSRF-Token": csrf, "Origin": other}) as r:
                assert r.status == 403 and (await r.json())["error_id"] == "csrf-failed"
        async with s.post("/api/users", json=body, headers={"X-CSRF-Token": csrf, "Origin": web.url}) as r:
            assert r.status == 201
        # behind a proxy that ends TLS: the page's origin is https on the default port, the proxy keeps Host
        body2 = {**body, "username": "eve2"}
        async with s.post("/api/users", json=body2, headers={"X-CSRF-Token": csrf, "Origin": "https://cc.example",
                                                              "Host": "cc.example"}) as r:
            assert r.status == 201
        async with s.post("/api/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with s.get("/api/me") as r:
            assert r.status == 401
    actions = [e.action for e in web.app.audit.entries(actor="root")]
    assert actions[:4] == ["logout", "user.create", "user.create", "login"]


async def test_login_attempts_are_limited_per_user_and_recorded_without_the_password(web) -> None:
    for _ in range(3):
        async with web.http.post("/api/login", json={"username": "sup", "password": "guess number x"}) as r:
            assert r.status == 401 and (await r.json())["error_id"] == "login-failed"
    async with web.http.post("/api/login", json={"username": "sup", "password": PW}) as r:
        assert r.status == 429 and (await r.json())["error_id"] == "login-rate-limited"
        assert int(r.headers["Retry-After"]) > 0
    async with web.http.post("/api/login", json={"username": "ann", "password": PW}) as r:
        assert r.status == 200                       # another user is not blocked
    failed = web.app.audit.entries(action="login-failed")
    assert len(failed) == 3 and failed[0].target == "user:sup" and "guess" not in repr(failed)


async def test_unknown_user_and_wrong_password_answer_the_same(web) -> None:
    answers = []
    for name in ("my-secret-pass", "root"):
        async with web.http.post("/api/login", json={"username": name, "password": "wrong password"}) as r:
            answers.append((r.status, await r.json()))
    assert answers[0] == answers[1]
    # a name nobody has is not kept: it is often a password typed into the user name field
    assert [e.target for e in web.app.audit.entries(action="login-failed")] == ["user:root", "user:(unknown)"]


async def test_api_tokens_are_shown_once_listed_without_secret_and_revocable(web) -> None:
    s, csrf = await login(web, "sup")
    async with s:
        async with s.post("/api/users/sup/tokens", json={"name": "wallboard"}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 201
            t = await r.json()
        async with s.get("/api/users/sup/tokens") as r:
            listed = await r.json()
        assert t["token"] not in repr(listed) and listed["tokens"][0]["id"] == t["id"]
        async with s.get("/api/users/root/tokens") as r:        # someone else's: admins only
            assert r.status == 403
    bearer = {"Authorization": f"Bearer {t['token']}"}
    async with web.http.get("/api/queues", headers=bearer) as r:
        assert r.status == 200 and [q["name"] for q in (await r.json())["queues"]] == ["billing"]
    async with web.http.delete(f"/api/users/sup/tokens/{t['id']}", headers=bearer) as r:
        assert r.status == 204                        # a bearer request needs no CSRF token
    async with web.http.get("/api/queues", headers=bearer) as r:
        assert r.status == 401
    assert t["token"] not in repr([e.as_dict() for e in web.app.audit.entries()])


async def test_an_agent_sees_and_acts_on_itself_only(web) -> None:
    s, csrf = await login(web, "ann")
    async with s:
        async with s.get("/api/agents") as r:
            assert [a["agent_id"] for a in (await r.json())["agents"]] == ["agent1"]
        async with s.get("/api/agents/agent1") as r:
            assert r.status == 200
            was = (await r.json())["state"]
        for method, path in (("GET", "/api/agents/agent2"), ("GET", "/api/config"), ("GET", "/api/queues"),
                             ("GET", "/api/users"), ("GET", "/api/audit"), ("POST", "/api/agents/agent2/state")):
            async with s.request(method, path, json={"action": "login"}, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 403, (method, path)
                assert (await r.json())["error_id"] == "forbidden"
        action = "login" if was == "logged_out" else "logout"
        async with s.post("/api/agents/agent1/state", json={"action": action}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200 and ((await r.json())["state"] == "logged_out") == (action == "logout")


async def test_the_agent_websocket_takes_the_cookie_from_our_origin_only(web) -> None:
    s, _csrf = await login(web, "ann")
    async with s:
        async with s.ws_connect("/agent/ws", origin=web.url) as ws:
            first = await ws.receive_json(timeout=5)
            assert first["type"] == "agent" and first["agent_id"] == "agent1"
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect("/agent/ws", origin="http://evil.example")
        assert e.value.status == 403
        async with s.ws_connect("/agent/agent2/ws", origin=web.url) as ws:
            msg = await ws.receive_json(timeout=5)
            assert msg["error_id"] == "forbidden"
            await ws.receive(timeout=5)
            assert ws.close_code == 4403
    async with aiohttp.ClientSession(web.url) as anon:
        async with anon.get("/agent", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/login?next=/agent"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"username": "root"}', b'{"username": 1, "password": "x"}',
                                  b'{"username": "root", "password": "' + b"x" * 5000 + b'"}',
                                  b'{"username": "root", "password": "x", "admin": true}'])
async def test_hostile_login_bodies_are_a_clear_400(web, body: bytes) -> None:
    async with web.http.post("/api/login", data=body, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["error_id"] in ("invalid-json", "invalid-request")
        assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize("body, error_id", [
    ({"username": "x", "role": "god", "password": PW}, "invalid-user"),
    ({"username": "<script>", "role": "admin", "password": PW}, "invalid-user"),
    ({"username": "x", "role": "agent", "password": PW, "agent_id": "nobody"}, "unknown-agent"),
    ({"username": "x", "role": "supervisor", "password": PW, "queues": ["nope"]}, "unknown-queue"),
    ({"username": "x", "role": "admin", "password": "short"}, "weak-password"),
    ({"username": "x", "role": "admin", "password": PW, "password_hash": "scrypt$..."}, "invalid-request"),
    ({"username": "root", "role": "admin", "password": PW}, "user-exists"),
])
async def test_bad_user_edits_are_refused_and_change_nothing(web, body: dict, error_id: str) -> None:
    s, csrf = await login(web, "root")
    async with s:
        before = [u.as_dict() for u in web.app.accounts.store.users()]
        async with s.post("/api/users", json=body, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status in (400, 409) and (await r.json())["error_id"] == error_id
        assert [u.as_dict() for u in web.app.accounts.store.users()] == before


async def test_the_config_seeds_users_once_with_env_or_printed_passwords(tmp_path, monkeypatch, capsys, caplog):
    cfg = make_test_config(data_dir=str(tmp_path))
    cfg = dataclasses.replace(cfg, auth={"scrypt_n": 1024}, users=(
        {"username": "admin", "role": "admin"}, {"username": "agent1", "role": "agent", "agent_id": "agent1"}))
    monkeypatch.setenv("IVR_USER_ADMIN_PASSWORD", "from the environment")
    caplog.set_level("DEBUG")
    app = App(cfg)
    printed = capsys.readouterr().out
    (line,) = [x for x in printed.splitlines() if "agent1" in x]
    generated = line.split("generated password ")[1].split()[0]
    assert "admin" not in printed and generated not in caplog.text
    assert app.accounts.authenticate("agent1", generated).agent_id == "agent1"
    assert app.accounts.authenticate("admin", "from the environment").role == "admin"
    app.accounts.update_user("agent1", {"password": "changed at run time"})
    app.accounts.store.close()
    app.audit.close()
    if app.storage is not None:
        app.storage.close()
    again = App(cfg)                                        # a restart: the store wins, nothing printed
    assert capsys.readouterr().out == ""
    assert again.accounts.authenticate("agent1", "changed at run time").username == "agent1"
    async with aiohttp.ClientSession() as http:
        server = WebServer(dataclasses.replace(again.web.deps, http=dataclasses.replace(cfg.http, port=0)))
        await server.start()
        try:
            async with http.get(f"http://127.0.0.1:{server.port}/api/agents",
                                headers={"Authorization": f"Bearer {cfg.http.admin_token}"}) as r:
                assert r.status == 401 and (await r.json())["error_id"] == "bootstrap-token-retired"
        finally:
            await server.stop()


async def test_a_user_changes_their_password_with_the_current_one_and_their_sessions_end(web) -> None:
    s, csrf = await login(web, "ann")
    async with s:
        h = {"X-CSRF-Token": csrf}
        async with s.post("/api/users/ann/password", json={"password": "a brand new one!"}, headers=h) as r:
            assert r.status == 403 and (await r.json())["error_id"] == "wrong-password"
        async with s.post("/api/users/sup/password", json={"password": "a brand new one!", "current_password": PW},
                          headers=h) as r:
            assert r.status == 403 and (await r.json())["error_id"] == "forbidden"
        async with s.post("/api/users/ann/password", json={"password": "a brand new one!", "current_password": PW},
                          headers=h) as r:
            assert r.status == 200
        async with s.get("/api/me") as r:
            assert r.status == 401                      # every session of ann ended
    s2, _ = await login(web, "ann", "a brand new one!")
    await s2.close()
    (entry,) = web.app.audit.entries(action="user.password")
    assert entry.actor == "ann" and "brand" not in repr(entry.as_dict()) and PW not in repr(entry.as_dict())


async def test_the_audit_api_filters_and_refuses_bad_limits(web) -> None:
    s, _csrf = await login(web, "root")
    async with s:
        async with s.get("/api/audit", params={"actor": "bootstrap-token", "limit": "2"}) as r:
            entries = (await r.json())["entries"]
        assert len(entries) == 2 and {e["actor"] for e in entries} == {"bootstrap-token"}
        assert entries[0]["id"] > entries[1]["id"]                       # newest first
        for bad in ({"limit": "0"}, {"limit": "x"}, {"limit": "1001"}, {"action": "a" * 201}):
            async with s.get("/api/audit", params=bad) as r:
                assert r.status == 400 and (await r.json())["error_id"] == "invalid-request"
