"""REST over ARI websockets (`ivr.ari.rest_socket`): the request/response matching, errors, the pool's
choice, and the client's fallback to HTTP. The real Asterisk side: tests/e2e/test_ari_rest_websocket_e2e.py."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from ivr.ari import AriClient, NotFound, Unavailable
from ivr.ari.rest_socket import RestSocket, RestSockets, probe


class FakeWs:
    """What a RestSocket uses of aiohttp's ClientWebSocketResponse."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.closed = False

    async def send_str(self, data: str) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.sent.append(json.loads(data))


def response(req: dict, status: int, body: object = None, reason: str = "OK") -> str:
    msg = {"type": "RESTResponse", "request_id": req["request_id"], "status_code": status,
           "reason_phrase": reason, "uri": req["uri"]}
    if body is not None:
        msg["content_type"] = "application/json"
        msg["message_body"] = json.dumps(body)
    return json.dumps(msg)


def connected_socket() -> tuple[RestSocket, FakeWs]:
    s = RestSocket("ws://x/ari/events?app=ivr-rest1&subscribeAll=false")
    ws = FakeWs()
    s.ws = ws  # type: ignore[assignment]
    return s, ws


async def test_a_request_is_one_message_and_its_response_is_matched_by_request_id():
    s, ws = connected_socket()
    first = asyncio.create_task(s.request("POST", "/bridges/call-1", [("type", "mixing,dtmf_events"), ("name", "q x")],
                                          None, 5))
    second = asyncio.create_task(s.request("POST", "/channels/c1/variable", [], {"variable": "A", "value": "b"}, 5))
    await asyncio.sleep(0)
    a, b = ws.sent
    assert a["type"] == "RESTRequest" and a["method"] == "POST" and a["uri"] == "bridges/call-1"
    # query values travel as they are (no URL quoting inside JSON)
    assert a["query_strings"] == [{"name": "type", "value": "mixing,dtmf_events"}, {"name": "name", "value": "q x"}]
    assert "message_body" not in a
    assert b["content_type"] == "application/json" and json.loads(b["message_body"]) == {"variable": "A", "value": "b"}
    assert a["request_id"] != b["request_id"]
    # answered out of order: each request gets its own response
    s.received(response(b, 204, reason="No Content"))
    s.received(response(a, 200, {"id": "call-1"}))
    assert await first == {"id": "call-1"}
    assert await second is None
    assert s.pending == {}


async def test_error_statuses_become_the_same_typed_errors_as_over_http():
    s, ws = connected_socket()
    t = asyncio.create_task(s.request("GET", "/channels/nope", [], None, 5))
    await asyncio.sleep(0)
    s.received(response(ws.sent[0], 404, {"message": "Channel not found"}, "Not Found"))
    with pytest.raises(NotFound) as e:
        await t
    assert e.value.status == 404 and e.value.message == "Channel not found" and e.value.path == "/channels/nope"
    t = asyncio.create_task(s.request("POST", "/channels", [], None, 5))
    await asyncio.sleep(0)
    s.received(response(ws.sent[1], 500, {"message": "Allocation failed"}))
    with pytest.raises(Unavailable):
        await t


async def test_no_response_in_time_is_unavailable_and_a_late_one_is_ignored():
    s, ws = connected_socket()
    with pytest.raises(Unavailable) as e:
        await s.request("DELETE", "/bridges/call-1", [], None, 0.05)
    assert e.value.status == 0 and "Timeout" in e.value.message
    assert s.pending == {}
    s.received(response(ws.sent[0], 204))       # too late: nobody waits for it, nothing breaks


async def test_a_socket_that_closes_fails_its_requests_in_flight_and_refuses_new_ones():
    s, ws = connected_socket()
    t = asyncio.create_task(s.request("POST", "/channels/c1/answer", [], None, 5))
    await asyncio.sleep(0)
    s.closed("closed by Asterisk")
    with pytest.raises(Unavailable) as e:
        await t
    assert e.value.status == 0 and "closed by Asterisk" in e.value.message
    with pytest.raises(Unavailable):
        await s.request("POST", "/channels/c1/answer", [], None, 5)


async def test_messages_that_are_not_responses_or_not_json_are_ignored():
    s, ws = connected_socket()
    t = asyncio.create_task(s.request("GET", "/asterisk/ping", [], None, 5))
    await asyncio.sleep(0)
    s.received('{"type": "ApplicationReplaced", "application": "ivr-rest1"}')
    s.received("not json")
    s.received('{"type": "RESTResponse", "request_id": "999", "status_code": 200}')
    assert not t.done()
    s.received(response(ws.sent[0], 200, {"ping": "pong"}))
    assert await t == {"ping": "pong"}


async def test_the_pool_picks_the_connected_socket_with_fewest_requests_in_flight():
    pool = RestSockets(lambda: None, "http://127.0.0.1:8088", "ivr", 3)  # type: ignore[arg-type,return-value]
    assert [s.url.split("app=")[1].split("&")[0] for s in pool.sockets] == ["ivr-rest1", "ivr-rest2", "ivr-rest3"]
    assert pool.sockets[0].url.startswith("ws://127.0.0.1:8088/ari/events?")
    assert pool.pick() is None                   # none connected: the client uses HTTP
    a, b, c = pool.sockets
    for s in (a, b):
        s.ws = FakeWs()  # type: ignore[assignment]
    a.pending["1"] = asyncio.get_running_loop().create_future()
    assert pool.pick() is b and pool.connected == 2
    b.ws.closed = True  # type: ignore[union-attr]
    assert pool.pick() is a


class RecordingSocket:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def request(self, method, path, query, body, timeout):
        self.calls.append((method, path))
        return {"via": "websocket"}


async def test_the_client_sends_over_a_socket_except_bulk_lists_and_raw_bodies_and_falls_back_to_http():
    client = AriClient("http://127.0.0.1:1", "u", "p", "ivr", timeout=0.5)
    pool = client.use_websockets(2)
    sock = RecordingSocket()
    pool.pick = lambda: sock  # type: ignore[method-assign]
    latencies = []
    client.on_latency = lambda sec, method, path: latencies.append((method, path))
    async with client:
        assert await client._request("POST", "/channels/c1/answer", [], None) == {"via": "websocket"}
        assert sock.calls == [("POST", "/channels/c1/answer")]
        assert latencies == [("POST", "/channels/c1/answer")] and client.requests_made == 1
        # a whole collection and a raw body go over HTTP (nothing listens on port 1: Unavailable)
        with pytest.raises(Unavailable):
            await client._request("GET", "/channels", [], None)
        with pytest.raises(Unavailable):
            await client._request("GET", "/recordings/stored/r1/file", [], None, raw=True)
        assert sock.calls == [("POST", "/channels/c1/answer")]
        # no socket connected: HTTP
        pool.pick = lambda: None  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await client._request("POST", "/channels/c1/answer", [], None)
        assert len(sock.calls) == 1 and client.requests_made == 4


class ProbeWs:
    """A websocket whose Asterisk answers (or not) the probe, after other messages."""

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.sent: list[dict] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def receive(self):
        if not self.replies:
            await asyncio.sleep(3600)
        kind, data = self.replies.pop(0)
        return aiohttp.WSMessage(kind, data, None)


async def test_a_socket_is_used_only_once_asterisk_answered_a_probe_over_it():
    text = aiohttp.WSMsgType.TEXT
    answering = ProbeWs([(text, '{"type": "ApplicationReplaced"}'), (text, "junk"),
                         (text, '{"type": "RESTResponse", "request_id": "probe", "status_code": 200}')])
    assert await probe(answering, timeout=1) is True  # type: ignore[arg-type]
    assert answering.sent == [{"type": "RESTRequest", "request_id": "probe", "method": "GET", "uri": "asterisk/ping"}]
    # an Asterisk before 22.4 reads the message and says nothing
    assert await probe(ProbeWs([]), timeout=0.05) is False  # type: ignore[arg-type]
    # the socket closed during the probe: not a verdict on Asterisk, just a connection to retry
    assert await probe(ProbeWs([(aiohttp.WSMsgType.CLOSED, None)]), timeout=1) is None  # type: ignore[arg-type]
