"""Bad input at the HTTP edge: garbage, oversized and hostile requests on the admin API and the agent websocket.

Every refusal is a JSON error with a stable `error_id` (docs/api.md), never a 500 or a traceback, nothing is
changed by a refused request, and the server keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from ivr.web.live import WS_MAX_MESSAGE
from ivr.web.server import MAX_BODY
from tests.component import test_web_api as _api

web_stack, http = _api.web_stack, _api.http      # the shared fixtures

pytestmark = pytest.mark.timeout(60)

# every route that takes a JSON body: (method, path)
BODY_ROUTES = [("POST", "/api/agents/agent1/state"), ("PUT", "/api/agents/agent1"),
               ("POST", "/api/flows/validate")]
# every admin route (method, path)
ALL_API_ROUTES = BODY_ROUTES + [
    ("GET", "/api/queues"), ("GET", "/api/queues/billing"), ("GET", "/api/agents"),
    ("GET", "/api/agents/agent1"), ("GET", "/api/agents/agent1/screen"), ("GET", "/api/calls"),
    ("GET", "/api/flows"), ("POST", "/api/flows/reload"), ("GET", "/api/config"), ("GET", "/api/records"),
]

TEN_MB = 10 * 1024 * 1024


async def _error(r: aiohttp.ClientResponse, status: int, error_id: str | None = None) -> dict:
    """The response is a JSON error of that status (and id), with no traceback in it."""
    text = await r.text()
    assert r.status == status, (r.status, text[:300])
    assert r.content_type == "application/json", text[:300]
    body = json.loads(text)
    assert set(body) <= {"error_id", "message", "details"} and isinstance(body["error_id"], str)
    assert "Traceback" not in text and 'File "' not in text
    if error_id is not None:
        assert body["error_id"] == error_id, body
    return body


async def _still_serving(web_stack, http) -> None:
    async with http.get(web_stack.url + "/healthz") as r:
        assert r.status == 200
    async with http.get(web_stack.url + "/api/agents/agent1", headers=web_stack.headers) as r:
        assert r.status == 200


def _snapshot(web_stack, agent: str = "agent1") -> tuple:
    router = web_stack.app.acd.router
    s = router.agent_snapshot(agent)
    return s.state, s.pause_reason, router._agents[agent].config


# ------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer " + "x" * 4000, "bearer", "Token abc",
                                  "Bearer \u00e9\u00e8", "Bearer tok\ten"])
async def test_every_route_refuses_missing_or_wrong_token(web_stack, http, auth):
    headers = {} if auth is None else {"Authorization": auth}
    before = _snapshot(web_stack)
    for method, path in ALL_API_ROUTES:
        async with http.request(method, web_stack.url + path, headers=headers, json={"action": "logout"}) as r:
            await _error(r, 401, "unauthorized")
    assert _snapshot(web_stack) == before


async def test_token_with_raw_non_ascii_bytes_is_401_not_500(web_stack):
    """A header value aiohttp cannot decode as text (latin-1 bytes) must not crash the token check."""
    host, port = "127.0.0.1", web_stack.server.port
    for value in (b"Bearer \xff\xfe\x80", b"Bearer \xed\xa0\x80", b"\xc3\x28"):
        req = (b"GET /api/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " + value +
               b"\r\n\r\n")
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(req)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        status = int(raw.split(b" ", 2)[1])
        assert status in (400, 401), raw[:200]
        assert b"Traceback" not in raw and b"internal-error" not in raw


# ----------------------------------------------------------------------------------- huge bodies
async def test_ten_megabyte_body_is_413_on_every_route(web_stack, http):
    before = _snapshot(web_stack)
    big = b'{"action": "logout", "text": "' + b"a" * TEN_MB + b'"}'
    for method, path in ALL_API_ROUTES + [("GET", "/healthz"), ("GET", "/agent/agent1")]:
        async with http.request(method, web_stack.url + path, data=big,
                                headers={**web_stack.headers, "Content-Type": "application/json"}) as r:
            body = await _error(r, 413, "payload-too-large")
        assert str(MAX_BODY) in body["message"]
    assert _snapshot(web_stack) == before
    await _still_serving(web_stack, http)


@pytest.mark.parametrize("method, path", BODY_ROUTES)
async def test_chunked_body_above_limit_is_413(web_stack, http, method, path):
    """No Content-Length (chunked transfer): the limit still holds while reading."""
    async def gen():
        yield b'{"text": "'
        for _ in range(40):
            yield b"b" * 65536
        yield b'"}'
    async with http.request(method, web_stack.url + path, data=gen(),
                            headers={**web_stack.headers, "Content-Type": "application/json"}) as r:
        await _error(r, 413, "payload-too-large")
    await _still_serving(web_stack, http)


async def test_body_just_under_the_limit_is_accepted(web_stack, http):
    text = "flow: x\nentry: a\nnodes:\n  a: {type: hangup}\n" + "#" * (MAX_BODY - 300) + "\n"
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers,
                         json={"file": "x.yaml", "text": text}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["ok"] is True


# ------------------------------------------------------------------------------------ garbage JSON
GARBAGE = [b"", b"{", b"}", b"null", b"true", b"0", b'"pause"', b"[]", b'[{"action": "pause"}]',
           b"\x00\x01\x02", b"\xff\xfe\xfd", b'{"action": "pause"', b"{'action': 'pause'}",
           b'{"action": NaN}', b'{"action": "pause", "reason": Infinity}', b'{"wrap_up": -Infinity}',
           b'{"max_misses": ' + b"9" * 5000 + b"}",
           b"[" * 30000 + b"]" * 30000,                       # nested deeper than the JSON decoder's stack
           b'{"a":' * 10000 + b"1" + b"}" * 10000,
           b'\xef\xbb\xbf{"action": "pause"}',                  # a UTF-8 BOM is not JSON
           "{\"action\": \"pause\", \"reason\": \"\ud800\"}".encode("utf-8", "surrogatepass")]


@pytest.mark.parametrize("body", GARBAGE, ids=lambda b: repr(b[:24]))
async def test_garbage_json_is_400_invalid_json(web_stack, http, body):
    before = _snapshot(web_stack)
    for method, path in BODY_ROUTES:
        async with http.request(method, web_stack.url + path, data=body,
                                headers={**web_stack.headers, "Content-Type": "application/json"}) as r:
            await _error(r, 400, "invalid-json")
    assert _snapshot(web_stack) == before


# --------------------------------------------------------------------------- wrong types, unknown keys
@pytest.mark.parametrize("body", [
    {}, {"action": None}, {"action": 1}, {"action": ["pause"]}, {"action": {"pause": 1}}, {"action": "PAUSE"},
    {"action": "pause\x00"}, {"action": "pause", "reason": ""}, {"action": "pause", "reason": None or 0},
    {"action": "pause", "reason": ["lunch"]}, {"action": "pause", "reason": "lunch\r\nX-Injected: 1"},
    {"action": "pause", "reason": "\u202elunch"}, {"action": "pause", "reason": "x" * 33},
    {"action": "pause", "reason": "lunch", "agent_id": "agent2"},     # unknown field: refused, not ignored
    {"action": "pause", "colour": "blue"}, {"action": "pause", "": 1},
])
async def test_state_wrong_types_and_unknown_fields_are_400(web_stack, http, body):
    before = {a: _snapshot(web_stack, a) for a in ("agent1", "agent2")}
    async with http.post(web_stack.url + "/api/agents/agent1/state", headers=web_stack.headers,
                         json=body) as r:
        await _error(r, 400, "invalid-request")
    assert {a: _snapshot(web_stack, a) for a in ("agent1", "agent2")} == before


async def test_state_unicode_reason_is_accepted_and_returned_intact(web_stack, http):
    async with http.post(web_stack.url + "/api/agents/agent2/state", headers=web_stack.headers,
                         json={"action": "pause", "reason": "déjeuner 🍽"}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["pause_reason"] == "déjeuner 🍽"


@pytest.mark.parametrize("body", [
    {"skills": "billing"}, {"skills": {"billing": "5"}}, {"skills": {"billing": True}},
    {"skills": {"billing": 1.5}}, {"skills": {"billing": 10**30}}, {"skills": {"": 1}},
    {"languages": "en"}, {"languages": {"en": 1}}, {"queues": "billing"}, {"queues": 5},
    {"wrap_up": "5"}, {"wrap_up": -1}, {"wrap_up": True}, {"wrap_up": [5]},
    {"max_misses": 0}, {"max_misses": 1.5}, {"max_misses": True}, {"max_misses": "3"},
    {"name": 5}, {"name": ["x"]}, {"name": {"a": 1}}, {"team": ["a"]}, {"team": {"a": 1}}, {"team": 7},
    {"id": "agent2"}, {"id": 5}, {"colour": "blue"}, {"sip_password": "x"},
])
async def test_agent_update_wrong_types_are_400_and_change_nothing(web_stack, http, body):
    before = _snapshot(web_stack)
    async with http.put(web_stack.url + "/api/agents/agent1", headers=web_stack.headers, json=body) as r:
        err = await _error(r, 400)
    assert err["error_id"] in ("invalid-agent", "invalid-request")
    assert _snapshot(web_stack) == before
    await _still_serving(web_stack, http)


async def test_agent_update_unicode_and_long_name(web_stack, http):
    url = web_stack.url + "/api/agents/agent1"
    async with http.put(url, headers=web_stack.headers, json={"name": "Zoë O'Brien-Łukasz 李"}) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["name"] == "Zoë O'Brien-Łukasz 李"
    for bad in ("x" * 1000, "Eve\r\nInjected", "nul\x00byte", "\u202eevil"):
        async with http.put(url, headers=web_stack.headers, json={"name": bad}) as r:
            await _error(r, 400, "invalid-agent")
    async with http.get(url, headers=web_stack.headers) as r:
        assert (await r.json())["name"] == "Zoë O'Brien-Łukasz 李"


@pytest.mark.parametrize("body, error_id", [
    ({}, "invalid-request"), ({"text": None}, "invalid-request"), ({"text": 5}, "invalid-request"),
    ({"text": ["flow: x"]}, "invalid-request"), ({"text": "x", "file": 5}, "invalid-request"),
    ({"text": "x", "file": ""}, "invalid-request"), ({"text": "x", "file": "a" * 200}, "invalid-request"),
    ({"text": "x", "file": "../../etc/passwd"}, "invalid-request"),
    ({"text": "x", "file": "..\\..\\etc\\passwd"}, "invalid-request"),
    ({"text": "x", "file": "/etc/passwd"}, "invalid-request"),
    ({"text": "x", "file": "flow\x00.yaml"}, "invalid-request"),
    ({"text": "x", "file": "flow\r\n.yaml"}, "invalid-request"),
    ({"text": "x", "file": ".."}, "invalid-request"),
    ({"text": "x", "file": "x.yaml", "write": True}, "invalid-request"),
])
async def test_validate_bad_fields_are_400(web_stack, http, body, error_id):
    listing = sorted(p.name for p in web_stack.flow_dir.iterdir())
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers, json=body) as r:
        await _error(r, 400, error_id)
    assert sorted(p.name for p in web_stack.flow_dir.iterdir()) == listing     # nothing written


HOSTILE_FLOWS = {
    "deep list": "flow: x\nentry: a\nnodes: " + "[" * 30000 + "]" * 30000,
    "deep map": "flow: x\nentry: a\nnodes: " + "{a: " * 10000 + "1" + "}" * 10000,
    "deep not": ("flow: x\nentry: a\nnodes:\n  a:\n    type: branch\n    rules:\n      - when: "
                 + "{not: " * 3000 + "{var: caller, eq: '1'}" + "}" * 3000 + "\n        goto: b\n"
                 "    default: b\n  b: {type: hangup}\n"),
    "alias bomb": ("flow: x\nentry: a\nnodes:\n  a:\n    type: branch\n    rules:\n"
                   + "".join(f"      - when: &c{i} {{all: [{p}, {p}]}}\n        goto: b\n"
                             for i, p in ((i, "{var: caller, eq: '1'}" if i == 1 else f"*c{i - 1}")
                                          for i in range(1, 60)))
                   + "    default: b\n  b: {type: hangup}\n"),
    "huge int": "flow: x\nentry: a\nnodes:\n  a: {type: collect, variable: v, max_length: " + "9" * 5000
                + ", next: b}\n  b: {type: hangup}\n",
    "big int": "flow: x\nentry: a\nnodes:\n  a: {type: queue, queue: billing, priority: " + "9" * 400
               + "}\n",
    "nul": "flow: x\x00\nentry: a\n",
    "binary": bytes(range(256)).decode("latin-1"),
    "tabs": "flow: x\nentry: a\nnodes:\n\ta: {type: hangup}\n",
    "duplicate keys": "flow: x\nentry: a\nentry: b\nnodes:\n  a: {type: hangup}\n  a: {type: hangup}\n",
    "unicode names": "flow: flöw\nentry: ä\nnodes:\n  ä: {type: hangup}\n",
    "python tag": "flow: !!python/object/apply:os.system ['echo pwned']\nentry: a\nnodes:\n  a: {type: hangup}\n",
    "merge key": "x: &x {type: hangup}\nflow: y\nentry: a\nnodes:\n  a: {<<: *x}\n",
}


@pytest.mark.parametrize("name", list(HOSTILE_FLOWS))
async def test_validate_hostile_flow_text_gives_located_errors(web_stack, http, name):
    version = web_stack.app.flows.current.version
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with http.post(web_stack.url + "/api/flows/validate", headers=web_stack.headers,
                         json={"file": "evil.yaml", "text": HOSTILE_FLOWS[name]}) as r:
        assert r.status == 200, (r.status, (await r.text())[:300])
        res = await r.json()
    assert loop.time() - t0 < 10
    assert res["ok"] is False and res["errors"], res
    for e in res["errors"]:
        file, line, col, _ = e.split(":", 3)
        assert file == "evil.yaml" and line.isdigit() and col.isdigit(), e
        assert len(e) < 500, e          # an error quotes the bad value, bounded
    assert web_stack.app.flows.current.version == version
    await _still_serving(web_stack, http)


# ------------------------------------------------------------------------------- paths and queries
@pytest.mark.parametrize("path, status, error_id", [
    ("/api/agents/%00", 404, "agent-not-found"),
    ("/api/agents/%E2%80%AEnimda", 404, "agent-not-found"),
    ("/api/agents/" + "a" * 2000, 404, "agent-not-found"),
    ("/api/agents/agent1%0D%0AX-Injected:%201", 404, "agent-not-found"),
    ("/api/queues/%27%3B%20DROP%20TABLE%20call_records%3B--", 404, "queue-not-found"),
    ("/api/flows/..%2F..%2Fetc%2Fpasswd", 404, "route-not-found"),
    ("/api/../../etc/passwd", None, None),
    ("/api/flows/%2e%2e/%2e%2e/etc/passwd", None, None),
])
async def test_hostile_paths(web_stack, http, path, status, error_id):
    async with http.get(web_stack.url + path, headers=web_stack.headers) as r:
        text = await r.text()
        assert r.status < 500, text[:300]
        assert "root:" not in text
        if status is not None:
            await _error(r, status, error_id)
    await _still_serving(web_stack, http)


async def test_not_found_message_does_not_echo_control_characters(web_stack, http):
    async with http.get(web_stack.url + "/api/agents/a%0D%0Ab%1B%5B31m", headers=web_stack.headers) as r:
        body = await _error(r, 404, "agent-not-found")
    assert "\r" not in body["message"] and "\n" not in body["message"] and "\x1b" not in body["message"]


@pytest.mark.parametrize("query, status", [
    ("limit=abc", 400), ("limit=1e3", 400), ("limit=", 400), ("limit=" + "9" * 5000, 400),
    ("limit=-5", 200), ("limit=0", 200), ("limit=99999999999999999999", 200), ("limit=%EF%BC%99", 200),
    ("queue=%00", 200), ("queue=%27%20OR%201%3D1--", 200), ("queue=" + "q" * 3000, 200),
    ("limit=5&limit=6", 200), ("unknown=1", 200),
])
async def test_records_query_garbage(web_stack, http, query, status):
    app = web_stack.app
    app.storage.add_call_record({"call_id": "r1", "queue": "billing", "outcome": "answered",
                                 "entered_at": 1.0, "ended_at": 2.0},
                                caller="+442079460034", did="100", flow="support")
    async with http.get(web_stack.url + "/api/records?" + query, headers=web_stack.headers) as r:
        if status == 400:
            await _error(r, 400, "invalid-request")
            return
        assert r.status == 200, await r.text()
        data = await r.json()
    assert isinstance(data["records"], list) and len(data["records"]) <= 1000
    if "queue=" in query:
        assert data["records"] == []           # an injection string is just a queue name nobody has
    assert "+442079460034" not in json.dumps(data)


async def test_oversized_headers_and_url_do_not_break_the_server(web_stack, http):
    async with http.get(web_stack.url + "/api/agents", headers={**web_stack.headers, "X-Big": "x" * 20000}) as r:
        assert r.status in (400, 431), r.status
    async with http.get(web_stack.url + "/api/agents/" + "a" * 20000, headers=web_stack.headers) as r:
        assert r.status in (400, 404, 414), r.status
    await _still_serving(web_stack, http)


async def test_raw_socket_garbage_does_not_break_the_server(web_stack, http):
    """What HTTP itself cannot parse is answered by aiohttp's plain-text 400 (before any route): no traceback."""
    port = web_stack.server.port
    for junk in (b"\x00" * 1000, b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                 b"POST /api/flows/validate HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                 b"POST /api/flows/validate HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 500 + b"\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(junk)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert raw.startswith(b"HTTP/1.") and b" 400 " in raw.split(b"\r\n", 1)[0], raw[:200]
        assert b"Traceback" not in raw and b'File "' not in raw
    await _still_serving(web_stack, http)


# ------------------------------------------------------------------------------- agent websocket
async def _recv(ws, type_: str, timeout: float = 10.0) -> dict:
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
    await _recv(ws, "agent")
    return ws


async def _closed_with(ws) -> int | None:
    """Read until the server closes; the close code."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code
        if msg.type == aiohttp.WSMsgType.ERROR:
            return ws.close_code


@pytest.mark.parametrize("first", [
    b"\x00\x01binary", "", "null", "[]", '{"auth": null}', '{"auth": 5}', '{"auth": ["tok"]}',
    '{"auth": "\\ud800"}', '{"auth": "' + "x" * 3000 + '"}', '{"auth": "\\u0000"}',
    "[" * 20000 + "]" * 20000,
])
async def test_ws_bad_first_frame_is_refused_with_4401(web_stack, http, first):
    async with http.ws_connect(f"{web_stack.url}/agent/agent1/ws") as ws:
        if isinstance(first, bytes):
            await ws.send_bytes(first)
        else:
            await ws.send_str(first)
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        assert json.loads(msg.data)["error_id"] == "unauthorized"
        assert await _closed_with(ws) == 4401
    await _still_serving(web_stack, http)


async def test_ws_huge_first_frame_closes_the_connection(web_stack, http):
    async with http.ws_connect(f"{web_stack.url}/agent/agent1/ws") as ws:
        await ws.send_str('{"auth": "' + "x" * (200 * 1024) + '"}')
        code = await _closed_with(ws)
        assert code is not None and code != 1000
    await _still_serving(web_stack, http)


async def test_ws_garbage_after_auth_gets_errors_and_the_connection_stays(web_stack, http):
    ws = await _connect(web_stack, http, "agent3")
    before = _snapshot(web_stack, "agent3")
    cases = [
        ("", "invalid-json"), ("\x00\x00", "invalid-json"), ("nope", "invalid-json"),
        ("[" * 2000 + "]" * 2000, "invalid-json"),        # deeper than the JSON decoder's stack, under 4 KiB
        ('{"action": NaN}', "invalid-json"),
        ("null", "invalid-request"), ("5", "invalid-request"), ('"pause"', "invalid-request"),
        ('{"action": "fly"}', "invalid-request"), ('{"action": null}', "invalid-request"),
        ('{"action": ["pause"]}', "invalid-request"), ('{"action": "pause", "reason": 5}', "invalid-request"),
        ('{"action": "pause", "reason": "\\r\\n"}', "invalid-request"),
        ('{"auth": "wrong"}', None),                     # a repeated auth message is ignored (even a wrong one)
        ("é" * (WS_MAX_MESSAGE // 2 + 10), "payload-too-large"),     # over 4 KiB in bytes, not in characters
        ("x" * (WS_MAX_MESSAGE + 1), "payload-too-large"),
    ]
    for frame, error_id in cases:
        await ws.send_str(frame)
        if error_id is not None:
            err = await _recv(ws, "error")
            assert err["error_id"] == error_id, (frame[:40], err)
            assert "Traceback" not in err["message"]
    await ws.send_bytes(b"\xff" * 1000)
    assert (await _recv(ws, "error"))["error_id"] == "invalid-request"
    assert _snapshot(web_stack, "agent3") == before          # nothing applied
    await ws.send_str(json.dumps({"action": "pause", "reason": "lunch"}))
    assert (await _recv(ws, "ok"))["action"] == "pause"      # and it still works
    await ws.close()


async def test_ws_frame_above_the_protocol_limit_closes_only_that_client(web_stack, http):
    other = await _connect(web_stack, http, "agent2")
    ws = await _connect(web_stack, http, "agent1")
    await ws.send_str("x" * (128 * 1024))
    code = await _closed_with(ws)
    assert code is not None and code != 1000
    await other.send_str(json.dumps({"action": "pause", "reason": "break"}))
    assert (await _recv(other, "ok"))["action"] == "pause"
    await other.close()
    await _still_serving(web_stack, http)


async def test_ws_actions_for_other_agents_are_refused(web_stack, http):
    ws = await _connect(web_stack, http, "agent1")
    before = {a: _snapshot(web_stack, a) for a in ("agent1", "agent2")}
    for msg in ({"action": "logout", "agent_id": "agent2"}, {"action": "logout", "agent": "agent2"},
                {"action": "logout", "id": "agent2"}):
        await ws.send_str(json.dumps(msg))
        assert (await _recv(ws, "error"))["error_id"] == "invalid-request"
    assert {a: _snapshot(web_stack, a) for a in ("agent1", "agent2")} == before
    await ws.close()


async def test_ws_message_flood_is_bounded_and_others_keep_being_served(web_stack, http, caplog):
    """5,000 messages as fast as possible: the flooder gets its errors (or is dropped as too slow); memory
    stays bounded (one queue of WS_QUEUE per client) and another agent's connection is served meanwhile."""
    other = await _connect(web_stack, http, "agent2")
    ws = await _connect(web_stack, http, "agent1")
    for i in range(5000):
        await ws.send_str('{"action": "fly"}' if i % 2 else "garbage")
    for client in web_stack.server.clients.get("agent1", ()):
        assert client.queue.qsize() <= client.queue.maxsize
    errors = 0
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), 10)
        except TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        if json.loads(msg.data).get("type") == "error":
            errors += 1
            if errors == 5000:
                break
    assert errors == 5000 or ws.closed
    await other.send_str(json.dumps({"action": "pause", "reason": "break"}))
    assert (await _recv(other, "ok"))["action"] == "pause"
    await other.close()
    await ws.close()
    await _still_serving(web_stack, http)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_ws_many_connections_for_unknown_agents(web_stack, http):
    conns = []
    for i in range(50):
        ws = await http.ws_connect(f"{web_stack.url}/agent/ghost{i}/ws")
        await ws.send_str(json.dumps({"auth": web_stack.cfg.http.admin_token}))
        conns.append(ws)
    for ws in conns:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert json.loads(msg.data)["error_id"] == "agent-not-found"
        assert await _closed_with(ws) == 4404
    assert not any(k.startswith("ghost") for k in web_stack.server.clients)
    await _still_serving(web_stack, http)


# ------------------------------------------------------------------------------------------- logging
async def test_screen_pop_with_hostile_customer_and_failing_history_logs_no_number(web_stack, http, caplog):
    caplog.set_level(logging.DEBUG)
    caller = "+442079460034"

    class FailingCrm:
        async def recent_interactions(self, number, limit):
            raise RuntimeError(f"CRM refused the history of {number}")     # a backend that names the number
    await _api.restart_with(web_stack, crm=FailingCrm())
    ws = await _connect(web_stack, http, "agent1")
    evil = {"customer_id": "C1", "name": "<img src=x onerror=alert(1)>\r\nX: y", "notes": "</script><script>"}
    offer = {"agent_id": "agent1", "call_id": "chan-9", "queue": "billing",
             "call": {"call_id": "chan-9", "caller": caller, "customer": evil, "ivr_path": ["a" * 10_000],
                      "keys": "***", "waiting_since": "not a number", "flags": None}}
    for fn in list(web_stack.app.acd.listeners):
        fn("offer", offer)
    got = (await _recv(ws, "offer"))["screen"]
    assert got["customer"]["name"] == evil["name"] and got["wait"] is None     # data, shown as text by the page
    assert (await _recv(ws, "history"))["history"] == []
    await ws.close()
    for r in caplog.records:
        assert "2079460034" not in r.getMessage() + (r.exc_text or ""), r.getMessage()


async def test_agent_page_never_renders_data_as_html(web_stack, http):
    async with http.get(web_stack.url + "/agent/agent1") as r:
        page = await r.text()
    assert "innerHTML" not in page and "outerHTML" not in page and "insertAdjacentHTML" not in page
    assert "document.write" not in page and "eval(" not in page
