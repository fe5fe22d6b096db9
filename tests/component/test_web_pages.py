"""Agent page + websocket (screen pop, state controls) and the wallboard."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from tests.component import test_web_api as _api

web_stack, http = _api.web_stack, _api.http      # the shared fixtures

OFFER = {
    "agent_id": "agent1", "call_id": "chan-42", "queue": "billing", "explanation": {"reason": "best score"},
    "call": {"call_id": "chan-42", "did": "100", "flow": "support", "caller": "+442079460034",
             "customer": {"customer_id": "C1", "name": "Ada Lovelace", "account_id": "ACC-1", "tier": "vip",
                          "language": "en", "preferred_agent": None, "notes": "prefers email",
                          "open_tickets": [{"id": "T-9", "subject": "invoice", "status": "open"}]},
             "known": True, "repeat_caller": False, "last_agent": None, "flags": [],
             "ivr_path": ["welcome", "main_menu", "billing"], "keys": "1", "queue": "billing",
             "waiting_since": 0.0},
}


async def _recv(ws, type_: str, timeout: float = 5.0) -> dict:
    """The next message of that type (others are skipped)."""
    async def loop():
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data.get("type") == type_:
                return data
    return await asyncio.wait_for(loop(), timeout)


async def _connect(web_stack, http, agent="agent1"):
    ws = await http.ws_connect(f"{web_stack.url}/agent/{agent}/ws")
    await ws.send_str(json.dumps({"auth": web_stack.cfg.http.admin_token}))
    return ws


async def test_agent_page_has_the_elements_and_no_secrets(web_stack, http):
    async with http.get(web_stack.url + "/agent/agent1") as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        page = await r.text()
    assert 'id="customer-name"' in page and 'id="agent-state"' in page
    assert web_stack.cfg.http.admin_token not in page and web_stack.cfg.ari.password not in page


@pytest.mark.parametrize("first", [json.dumps({"auth": "wrong"}), "garbage", json.dumps({"action": "pause"})])
async def test_ws_requires_auth(web_stack, http, first):
    async with http.ws_connect(f"{web_stack.url}/agent/agent1/ws") as ws:
        await ws.send_str(first)
        msg = await ws.receive(timeout=5)
        assert json.loads(msg.data)["error_id"] == "unauthorized"
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401


async def test_ws_unknown_agent(web_stack, http):
    ws = await _connect(web_stack, http, "nobody")
    msg = await ws.receive(timeout=5)
    assert json.loads(msg.data)["error_id"] == "agent-not-found"
    assert (await ws.receive(timeout=5)).data == 4404
    await ws.close()


async def test_ws_pushes_snapshot_offer_and_history_and_screen_api(web_stack, http):
    ws = await _connect(web_stack, http)
    snap = await _recv(ws, "agent")
    assert snap["agent_id"] == "agent1" and "state" in snap
    assert (await _recv(ws, "screen"))["screen"] is None
    for fn in list(web_stack.app.acd.listeners):
        fn("offer", OFFER)
    offer = (await _recv(ws, "offer"))["screen"]
    assert offer["customer"]["name"] == "Ada Lovelace" and offer["customer"]["tier"] == "vip"
    assert offer["ivr_path"] == ["welcome", "main_menu", "billing"] and offer["queue"] == "billing"
    assert offer["wait"] is not None and offer["customer"]["open_tickets"][0]["id"] == "T-9"
    hist = await _recv(ws, "history")
    assert hist["call_id"] == "chan-42" and isinstance(hist["history"], list)
    async with http.get(web_stack.url + "/api/agents/agent1/screen", headers=web_stack.headers) as r:
        body = await r.json()
    assert body["screen"]["call_id"] == "chan-42" and body["agent"]["agent_id"] == "agent1"
    # an offer for another agent is not pushed here
    for fn in list(web_stack.app.acd.listeners):
        fn("offer", {**OFFER, "agent_id": "agent2", "call_id": "other"})
        fn("call", {"call_id": "chan-42", "agent_id": "agent1", "state": "answered"})
    assert (await _recv(ws, "call"))["call_id"] == "chan-42"
    await ws.close()


async def test_ws_state_controls_and_errors(web_stack, http):
    ws = await _connect(web_stack, http, "agent3")
    await _recv(ws, "agent")
    await ws.send_str(json.dumps({"action": "pause", "reason": "lunch"}))
    s = await _recv(ws, "agent")
    assert s["state"] == "paused" and s["pause_reason"] == "lunch"
    await ws.send_str(json.dumps({"action": "end_wrap_up"}))
    assert (await _recv(ws, "error"))["error_id"] == "illegal-transition"
    for garbage, error_id in [("{nope", "invalid-json"), ("[1]", "invalid-request"),
                              (json.dumps({"action": "fly"}), "invalid-request"),
                              ("x" * 10_000, "payload-too-large")]:
        await ws.send_str(garbage)
        assert (await _recv(ws, "error"))["error_id"] == error_id
    await ws.send_bytes(b"\x00\x01")
    assert (await _recv(ws, "error"))["error_id"] == "invalid-request"
    await ws.send_str(json.dumps({"action": "available"}))
    assert (await _recv(ws, "agent"))["state"] != "paused"
    await ws.close()
    async with http.get(web_stack.url + "/healthz") as r:      # the server is still fine
        assert r.status == 200


async def test_ws_closed_on_server_stop(web_stack, http):
    ws = await _connect(web_stack, http)
    await _recv(ws, "agent")
    t0 = asyncio.get_running_loop().time()
    await web_stack.server.stop()
    assert asyncio.get_running_loop().time() - t0 < 5
    msg = await ws.receive(timeout=5)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await web_stack.server.start()        # the fixture stops it again


async def test_wallboard_page_and_data(web_stack, http):
    async with http.get(web_stack.url + "/wallboard") as r:
        assert r.status == 200
        page = await r.text()
    for q in ("billing", "technical", "sales", "legacy"):
        assert f'id="wb-{q}-waiting"' in page and f'id="wb-{q}-sl"' in page
    async with http.get(web_stack.url + "/wallboard/data") as r:
        data = await r.json()
    q = {x["name"]: x for x in data["queues"]}
    assert set(q) == {"billing", "technical", "sales", "legacy"}
    b = q["billing"]
    assert b["waiting"] == 0 and b["answered"] == 0 and b["abandoned"] == 0 and b["service_level_pct"] is None
    assert "available" in b["agents"] and b["service_level_target"] == [80, 20]
    assert not re.search(r"\+\d{6,}", json.dumps(data) + page)    # no phone numbers
