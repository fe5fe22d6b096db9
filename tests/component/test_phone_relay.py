"""The browser phone's routes on a real loopback port, against a real App and a stand-in for Asterisk's SIP
websocket: the credentials go to the agent itself only, the relay carries SIP both ways and closes with
either side, and bad requests get a clear error without reaching Asterisk. The real thing (Asterisk,
Chromium, audio) is tests/e2e/test_webrtc_agent_e2e.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import aiohttp
import pytest
from aiohttp import web

from ivr.app import App
from ivr.sim.ports import free_tcp_port
from ivr.web.server import WebServer
from tests.support.stack import make_test_config, wait_for

PW = "a long password"


class FakeAsteriskWs:
    """Asterisk's /ws: accepts subprotocol sip, records what it gets, answers each message with a 200."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.received: list[str] = []
        self.open = 0
        self.connections = 0

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        self.connections += 1
        self.open += 1
        try:
            async for msg in ws:
                self.received.append(msg.data)
                await ws.send_str("SIP/2.0 200 OK\r\n\r\n")
        finally:
            self.open -= 1
        return ws

    async def __aenter__(self) -> FakeAsteriskWs:
        wa = web.Application()
        wa.router.add_get("/ws", self.ws)
        self.runner = web.AppRunner(wa)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def web_(tmp_path):
    async with FakeAsteriskWs() as ast:
        cfg = make_test_config(data_dir=str(tmp_path))
        cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, port=0, bind_address="127.0.0.1"),
                                  asterisk=dataclasses.replace(cfg.asterisk, http_port=ast.port),
                                  auth={"scrypt_n": 1024})
        app = App(cfg)
        server = WebServer(app.web.deps)
        await server.start()
        url = f"http://127.0.0.1:{server.port}"
        boot = {"Authorization": f"Bearer {cfg.http.admin_token}"}
        async with aiohttp.ClientSession(url) as http:
            for body in ({"username": "eve", "role": "agent", "password": PW, "agent_id": "agent5"},
                         {"username": "ann", "role": "agent", "password": PW, "agent_id": "agent1"},
                         {"username": "root", "role": "admin", "password": PW}):
                async with http.post("/api/users", json=body, headers=boot) as r:
                    assert r.status == 201, await r.text()
        secret = next(a.sip_password for a in cfg.agent_sip() if a.id == "agent5")
        yield type("W", (), {"url": url, "ast": ast, "secret": secret, "app": app})
        await server.stop()
        if app.crm is not None:
            await app.crm.close()


async def login(w, username: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(w.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post("/api/login", json={"username": username, "password": PW}) as r:
        assert r.status == 200, await r.text()
    return s


async def test_the_credentials_are_the_agents_own_only(web_, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with await login(web_, "eve") as s:
        async with s.get("/api/me/phone") as r:
            assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
            body = await r.json()
    assert body == {"ws_path": "/api/me/phone/ws", "sip_uri": "sip:agent5@127.0.0.1", "username": "agent5",
                    "password": web_.secret, "display_name": "Eve Laurent"}
    for user in ("ann", "root"):          # an agent with a SIP phone, an admin: no browser phone, no password
        async with await login(web_, user) as s:
            async with s.get("/api/me/phone") as r:
                assert r.status == 404 and (await r.json())["error_id"] == "no-phone"
            async with s.get("/api/me/phone/ws") as r:
                assert r.status == 404 and (await r.json())["error_id"] == "no-phone"
    async with aiohttp.ClientSession(web_.url) as anon:
        async with anon.get("/api/me/phone") as r:
            assert r.status == 401
        async with anon.get("/api/me/phone/ws") as r:
            assert r.status == 401
    assert web_.ast.connections == 0
    assert web_.secret not in caplog.text


async def test_the_relay_carries_sip_both_ways_and_closes_with_the_page(web_) -> None:
    async with await login(web_, "eve") as s:
        async with s.ws_connect("/api/me/phone/ws", protocols=("sip",), origin=web_.url) as ws:
            assert ws.protocol == "sip"
            await ws.send_str("REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n")
            answer = await asyncio.wait_for(ws.receive(), 5)
            assert answer.data.startswith("SIP/2.0 200")
            assert web_.ast.received == ["REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n"] and web_.ast.open == 1
        await wait_for(lambda: web_.ast.open == 0, 5, what="the upstream closed with the page")
        async with s.ws_connect("/api/me/phone/ws", protocols=("sip",), origin=web_.url) as ws:
            await ws.send_str("X" * (64 * 1024 + 1))           # above the 64 KiB a SIP message may have
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        await wait_for(lambda: web_.ast.open == 0, 5, what="the upstream closed with the page")
        assert len(web_.ast.received) == 1                     # the big one never reached Asterisk


async def test_bad_phone_requests_never_reach_asterisk(web_) -> None:
    async with await login(web_, "eve") as s:
        async with s.get("/api/me/phone/ws") as r:               # not a websocket
            assert r.status == 400 and (await r.json())["error_id"] == "websocket-expected"
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:  # another site's page
            await s.ws_connect("/api/me/phone/ws", protocols=("sip",), origin="http://evil.example")
        assert e.value.status == 403
        assert web_.ast.connections == 0
        socks = [await s.ws_connect("/api/me/phone/ws", protocols=("sip",), origin=web_.url)
                 for _ in range(3)]
        async with s.get("/api/me/phone/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                      "Sec-WebSocket-Version": "13",
                                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                                      "Origin": web_.url}) as r:
            assert r.status == 429 and (await r.json())["error_id"] == "too-many-phones"
        for ws in socks:
            await ws.close()


async def test_asterisk_unreachable_is_a_clear_503(web_) -> None:
    await web_.ast.runner.cleanup()
    async with await login(web_, "eve") as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect("/api/me/phone/ws", protocols=("sip",), origin=web_.url)
        assert e.value.status == 503
