"""The admin API on a real loopback port, against a real App (no Asterisk: the App is never run)."""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import aiohttp
import pytest

from ivr.app import App
from ivr.web.server import MAX_BODY, WebServer
from tests.support.stack import make_test_config


def _replace(cfg, section: str, **values):
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})


@pytest.fixture
async def web_stack(tmp_path):
    """(app, server, base url, admin headers) with flows copied to tmp_path/flows (so tests may break them)."""
    cfg = make_test_config(data_dir=str(tmp_path))
    flow_dir = tmp_path / "flows"
    shutil.copytree(cfg.path(cfg.flows.dir), flow_dir)
    cfg = _replace(cfg, "flows", dir=str(flow_dir))
    cfg = _replace(cfg, "http", port=0, bind_address="127.0.0.1")
    app = App(cfg)
    server = WebServer(app.web.deps)     # the deps the App declared for its own server
    await server.start()
    stack = SimpleNamespace(app=app, server=server, url=f"http://127.0.0.1:{server.port}",
                            headers={"Authorization": f"Bearer {cfg.http.admin_token}"}, cfg=cfg,
                            flow_dir=flow_dir)
    try:
        yield stack
    finally:
        await stack.server.stop()
        if app.crm is not None:
            await app.crm.close()
        if app.storage is not None:
            app.storage.close()


async def restart_with(web_stack, **deps) -> None:
    """Serve the same App with some of the server's deps replaced (e.g. a failing CRM)."""
    await web_stack.server.stop()
    web_stack.server = WebServer(dataclasses.replace(web_stack.server.deps, **deps))
    await web_stack.server.start()
    web_stack.url = f"http://127.0.0.1:{web_stack.server.port}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


async def _json(resp: aiohttp.ClientResponse) -> dict:
    assert resp.content_type == "application/json", await resp.text()
    return await resp.json()


# ------------------------------------------------------------------------------------- open routes
async def test_healthz_and_metrics_need_no_token(web_stack, http):
    async with http.get(web_stack.url + "/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"ok": True, "ari_connected": False}
    async with http.get(web_stack.url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "ivr_queue_calls_waiting" in await r.text()


async def test_the_bare_url_leads_to_the_wallboard_metrics_api_and_agent_pages(web_stack, http):
    async with http.get(web_stack.url + "/") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    for link in ('href="/wallboard"', 'href="/metrics"', 'href="/healthz"', 'href="/agent/agent1"',
                 'href="/agent/agent4"'):
        assert link in page
    assert web_stack.cfg.http.admin_token not in page


async def test_an_agent_whose_phone_is_not_registered_is_not_shown_available(web_stack, http):
    h = web_stack.headers
    acd = web_stack.app.acd
    async with http.get(web_stack.url + "/api/agents", headers=h) as r:
        agents = {a["agent_id"]: a for a in (await _json(r))["agents"]}
    # the app never ran: no phone registered, every agent logged in (auto_login) and "available" inside
    assert agents["agent1"]["state"] == "available" and not agents["agent1"]["registered"]
    assert agents["agent1"]["status"] == "unregistered"
    await acd.execute(acd.router.set_registered("agent1", True))
    assert (await _state(web_stack, http))["status"] == "available"
    await acd.agent_action("agent1", "pause", "lunch")
    assert (await _state(web_stack, http))["status"] == "paused"


# -------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
                                     {"Authorization": "Bearer "}])
async def test_api_refuses_missing_or_wrong_token(web_stack, http, headers):
    for path in ("/api/agents", "/api/config", "/api/nope"):
        async with http.get(web_stack.url + path, headers=headers) as r:
            assert r.status == 401
            assert (await _json(r))["error_id"] == "unauthorized"
    async with http.post(web_stack.url + "/api/flows/reload", headers=headers) as r:
        assert r.status == 401


async def test_api_disabled_without_configured_token(web_stack, http):
    await restart_with(web_stack, http=dataclasses.replace(web_stack.server.deps.http, admin_token=""))
    async with http.get(web_stack.url + "/api/agents", headers={"Authorization": "Bearer "}) as r:
        assert r.status == 503
        assert (await _json(r))["error_id"] == "admin-disabled"


async def test_unknown_route_is_json_404(web_stack, http):
    async with http.get(web_stack.url + "/api/nope", headers=web_stack.headers) as r:
        assert r.status == 404
        assert (await _json(r))["error_id"] == "route-not-found"
    async with http.get(web_stack.url + "/nope") as r:
        assert r.status == 404
        assert (await _json(r))["error_id"] == "route-not-found"


# ------------------------------------------------------------------------------------ queues/agents
async def test_queues_and_agents(web_stack, http):
    h = web_stack.headers
    async with http.get(web_stack.url + "/api/queues", headers=h) as r:
        names = [q["name"] for q in (await _json(r))["queues"]]
        assert names == ["billing", "technical", "sales", "legacy"]
    async with http.get(web_stack.url + "/api/queues/billing", headers=h) as r:
        q = await _json(r)
        assert q["waiting"] == 0 and q["calls"] == [] and "service_level_pct" in q["stats"]
    async with http.get(web_stack.url + "/api/queues/nope", headers=h) as r:
        assert r.status == 404 and (await _json(r))["error_id"] == "queue-not-found"
    async with http.get(web_stack.url + "/api/agents", headers=h) as r:
        assert [a["agent_id"] for a in (await _json(r))["agents"]] == ["agent1", "agent2", "agent3", "agent4",
                                                                       "agent5"]
    async with http.get(web_stack.url + "/api/agents/nope", headers=h) as r:
        assert r.status == 404 and (await _json(r))["error_id"] == "agent-not-found"
    async with http.post(web_stack.url + "/api/agents/nope/state", headers=h, json={"action": "pause"}) as r:
        assert r.status == 404 and (await _json(r))["error_id"] == "agent-not-found"


async def _state(web_stack, http, agent="agent1") -> dict:
    async with http.get(f"{web_stack.url}/api/agents/{agent}", headers=web_stack.headers) as r:
        assert r.status == 200
        return await r.json()


async def test_illegal_transition_is_409_and_changes_nothing(web_stack, http):
    # put agent1 in a known state first: logged in + available (presence comes from Asterisk normally)
    web_stack.app.acd.router.set_registered("agent1", True)
    before = await _state(web_stack, http)
    assert before["state"] == "available"
    async with http.post(web_stack.url + "/api/agents/agent1/state", headers=web_stack.headers,
                         json={"action": "end_wrap_up"}) as r:
        assert r.status == 409
        body = await _json(r)
        assert body["error_id"] == "illegal-transition" and "traceback" not in str(body).lower()
    after = await _state(web_stack, http)
    assert after["state"] == before["state"] and after["pause_reason"] == before["pause_reason"]


async def test_pause_with_reason_then_available(web_stack, http):
    url = web_stack.url + "/api/agents/agent2/state"
    async with http.post(url, headers=web_stack.headers, json={"action": "pause", "reason": "lunch"}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["state"] == "paused"
    s = await _state(web_stack, http, "agent2")
    assert s["state"] == "paused" and s["pause_reason"] == "lunch"
    async with http.post(url, headers=web_stack.headers, json={"action": "available"}) as r:
        assert r.status == 200, await r.text()
    s = await _state(web_stack, http, "agent2")
    assert s["state"] != "paused" and s["pause_reason"] is None


@pytest.mark.parametrize("body, error_id", [
    (b"{not json", "invalid-json"), (b"[1, 2]", "invalid-json"), (b"\xff\xfe", "invalid-json"),
    (b'{"action": "dance"}', "invalid-request"), (b'{"action": "pause", "reason": 5}', "invalid-request"),
    (b'{"action": "pause", "reason": "' + b"x" * 100 + b'"}', "invalid-request"),
])
async def test_bad_body_is_400(web_stack, http, body, error_id):
    async with http.post(web_stack.url + "/api/agents/agent1/state", data=body,
                         headers={**web_stack.headers, "Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await _json(r))["error_id"] == error_id


async def test_oversized_body_is_413(web_stack, http):
    big = b'{"text": "' + b"a" * (MAX_BODY + 10) + b'"}'
    async with http.post(web_stack.url + "/api/flows/validate", data=big,
                         headers={**web_stack.headers, "Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert (await _json(r))["error_id"] == "payload-too-large"


async def test_internal_error_has_no_traceback(web_stack, http):
    def boom():
        raise RuntimeError("secret internals")
    await restart_with(web_stack, ari_connected=boom)
    async with http.get(web_stack.url + "/healthz") as r:
        assert r.status == 500
        body = await _json(r)
        assert body["error_id"] == "internal-error"
        assert "secret internals" not in str(body) and "Traceback" not in str(body)


# ----------------------------------------------------------------------------------------- flows
async def test_validate_reports_errors_with_location(web_stack, http):
    broken = "flow: broken\nentry: nowhere\nnodes:\n  a: {type: hangup}\n"
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers,
                         json={"file": "broken.yaml", "text": broken}) as r:
        assert r.status == 200
        res = await r.json()
    assert res["ok"] is False and res["errors"]
    assert all(e.startswith("broken.yaml:") and e.split(":")[1].isdigit() and e.split(":")[2].isdigit()
               for e in res["errors"]), res["errors"]
    version = web_stack.app.flows.current.version
    good = (web_stack.flow_dir / "support.yaml").read_text()
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers,
                         json={"file": "support.yaml", "text": good}) as r:
        res = await r.json()
    assert res["ok"] is True and res["errors"] == [], res
    assert web_stack.app.flows.current.version == version      # validating never changes what is in service
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers,
                         json={"file": "../x.yaml", "text": good}) as r:
        assert r.status == 400 and (await r.json())["error_id"] == "invalid-request"


async def test_reload_refuses_broken_flow_and_keeps_version(web_stack, http):
    version = web_stack.app.flows.current.version
    async with http.post(web_stack.url + "/api/flows/reload", headers=web_stack.headers) as r:
        assert r.status == 200
        body = await r.json()
        assert body["ok"] is True and body["version"] == version and body["errors"] == []
    (web_stack.flow_dir / "support.yaml").write_text("flow: support\nentry: [\n")
    async with http.post(web_stack.url + "/api/flows/reload", headers=web_stack.headers) as r:
        assert r.status == 422
        body = await _json(r)
    assert body["error_id"] == "flow-invalid"
    assert body["details"]["ok"] is False and body["details"]["version"] == version
    assert any("support.yaml:" in e for e in body["details"]["errors"]), body
    assert web_stack.app.flows.current.version == version
    async with http.get(web_stack.url + "/api/flows", headers=web_stack.headers) as r:
        info = await r.json()
    assert info["version"] == version and info["last_reload"]["ok"] is False


# ---------------------------------------------------------------------------------- config/calls
async def test_config_has_no_secret_values(web_stack, http):
    cfg = web_stack.cfg
    async with http.get(web_stack.url + "/api/config", headers=web_stack.headers) as r:
        assert r.status == 200
        text = await r.text()
    secrets = [cfg.http.admin_token, cfg.ari.password] + [a.sip_password for a in cfg.agent_sip()]
    for s in secrets:
        assert s and s not in text
    data = await (await http.get(web_stack.url + "/api/config", headers=web_stack.headers)).json()
    assert data["http"]["admin_token"] == "***" and data["ari"]["password"] == "***"


async def test_calls_and_records_mask_numbers(web_stack, http):
    app = web_stack.app
    fake = SimpleNamespace(flow_name="support", did="100", caller_raw="+442079460034", queue_name="billing",
                           agent_id=None, started_at=__import__("time").time() - 5,
                           runner=SimpleNamespace(visited_nodes=["welcome", "menu"]))
    app.sessions["chan-1"] = fake
    async with http.get(web_stack.url + "/api/calls", headers=web_stack.headers) as r:
        calls = (await _json(r))["calls"]
    assert len(calls) == 1
    c = calls[0]
    assert c["id"] == "chan-1" and c["flow"] == "support" and c["path"] == ["welcome", "menu"]
    assert c["age"] >= 4 and "+442079460034" not in str(calls) and c["caller"].endswith("34")
    rec = {"call_id": "r1", "queue": "billing", "outcome": "answered", "entered_at": 1.0, "ended_at": 2.0}
    app.storage.add_call_record(rec, caller="+442079460034", did="100", flow="support")
    rec2 = {**rec, "call_id": "r2", "ended_at": 3.0}
    app.storage.add_call_record(rec2, caller="", did="100", flow="support")
    async with http.get(web_stack.url + "/api/records?limit=1", headers=web_stack.headers) as r:
        recs = (await _json(r))["records"]
    assert [x["call_id"] for x in recs] == ["r2"]    # newest first
    async with http.get(web_stack.url + "/api/records", headers=web_stack.headers) as r:
        text = await r.text()
    assert "+442079460034" not in text and '"r1"' in text


async def test_agent_definition_changes_at_run_time(web_stack, http):
    router = web_stack.app.acd.router
    router.set_registered("agent3", True)
    before = await _state(web_stack, http, "agent3")
    url = web_stack.url + "/api/agents/agent3"
    body = {"name": "Chloé Dubois", "skills": {"billing": 5, "legacy": 4}, "languages": ["en", "fr"]}
    async with http.put(url, headers=web_stack.headers, json=body) as r:
        assert r.status == 200, await r.text()
    cfg = router._agents["agent3"].config
    assert dict(cfg.skills) == {"billing": 5, "legacy": 4} and "fr" in cfg.languages
    after = await _state(web_stack, http, "agent3")
    assert after["state"] == before["state"]          # the definition changed, the state did not
    async with http.put(url, headers=web_stack.headers, json={"skills": {"billing": 9}}) as r:
        assert r.status == 400 and (await _json(r))["error_id"] == "invalid-agent"
    async with http.put(url, headers=web_stack.headers, json={"colour": "blue"}) as r:
        assert r.status == 400 and (await _json(r))["error_id"] == "invalid-agent"
    async with http.put(url, headers=web_stack.headers, json={"endpoint": "PJSIP/agent9"}) as r:
        assert r.status == 409 and (await _json(r))["error_id"] == "agent-conflict"
    async with http.put(web_stack.url + "/api/agents/nobody", headers=web_stack.headers, json={}) as r:
        assert r.status == 404 and (await _json(r))["error_id"] == "agent-not-found"
    assert dict(router._agents["agent3"].config.skills) == {"billing": 5, "legacy": 4}   # refused = unchanged
