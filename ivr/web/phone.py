"""The agent page's browser phone (docs/webrtc.md): the logged-in agent's own SIP credentials, and a relay of
SIP-over-WebSocket from the page to Asterisk's ``/ws``.

* ``GET /api/me/phone``: for a principal that is an agent with ``phone: webrtc``, the credentials its page
  registers with: ``{ws_path, sip_uri, username, password, display_name}``. Anyone else: 404 ``no-phone``
  (admins and supervisors included: a phone's password is for its agent only). Never cached, never logged.
* ``GET /api/me/phone/ws``: the page's SIP websocket (subprotocol ``sip``), relayed message by message to
  Asterisk's PJSIP ``transport-ws``. The browser thus needs the app's address only (behind TLS: ``wss`` on
  the same origin); Asterisk's HTTP server (ARI) stays on loopback. Media does not go through here: it
  flows between the browser and Asterisk's media address (ICE, DTLS-SRTP).

Both live under ``/api/`` so the auth middleware (ivr/web/auth.py) has put the principal on the request
(cookie session, same-origin websocket).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ..config import Config
from .errors import ApiError
from .identity import Role, principal_of

log = logging.getLogger(__name__)

MAX_SIP_MESSAGE = 64 * 1024
MAX_RELAYS_PER_AGENT = 3              # tabs of one agent at once (each registers; the last one wins)


@dataclass(frozen=True)
class BrowserPhone:
    """What an agent's page needs to register its WebRTC endpoint."""

    username: str                      # the PJSIP endpoint / auth user (``agent5`` of ``PJSIP/agent5``)
    password: str
    domain: str                        # the SIP URI's host
    display_name: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"ws_path": "/api/me/phone/ws", "sip_uri": f"sip:{self.username}@{self.domain}",
                "username": self.username, "password": self.password, "display_name": self.display_name}


PhoneOf = Callable[[str], "BrowserPhone | None"]       # agent id -> its browser phone, None if it has none


def browser_phones(cfg: Config) -> dict[str, BrowserPhone]:
    """The configured agents with ``phone: webrtc``, by agent id."""
    names = {str(a.get("id")): str(a.get("name", "")) for a in cfg.agents}
    return {a.id: BrowserPhone(a.endpoint.split("/", 1)[1], a.sip_password, cfg.asterisk.bind_address,
                               names.get(a.id, ""))
            for a in cfg.agent_sip() if a.webrtc and a.endpoint.startswith("PJSIP/")}


def live_phones(definitions: Callable[[], Mapping[str, Mapping[str, Any]]], passwords: Mapping[str, str],
                domain: str) -> PhoneOf:
    """agent id -> its browser phone, read at each request from the live agent definitions (agents added,
    changed or removed at run time included, e.g. ``LiveConfig.agents``): ``phone: webrtc``, a PJSIP
    endpoint, and the SIP password of the definition, else of the config (``IVR_AGENT_<ID>_PASSWORD``:
    `passwords`)."""
    def phone_of(agent_id: str) -> BrowserPhone | None:
        d = definitions().get(agent_id)
        if d is None or d.get("phone") != "webrtc":
            return None
        endpoint = str(d.get("endpoint") or f"PJSIP/{agent_id}")
        password = str(d.get("sip_password") or passwords.get(agent_id, ""))
        if not endpoint.startswith("PJSIP/") or not password:
            return None
        return BrowserPhone(endpoint.split("/", 1)[1], password, domain, str(d.get("name", "")))
    return phone_of


def phones_for(cfg: Config, live: Any | None) -> PhoneOf:
    """The app's phone book: from the live agent definitions when agents change at run time (`live`: an
    object with ``agents``, the ACD's ``LiveConfig``), else from the config file."""
    if live is None:
        return browser_phones(cfg).get
    passwords = {a.id: a.sip_password for a in cfg.agent_sip()}
    return live_phones(lambda: live.agents, passwords, cfg.asterisk.bind_address)


def asterisk_ws_url(cfg: Config) -> str:
    """Asterisk's SIP websocket (its HTTP server, path /ws) as the app reaches it."""
    host = cfg.asterisk.bind_address
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{cfg.asterisk.http_port}/ws"


def no_phone() -> ApiError:
    return ApiError(404, "no-phone", "this login has no browser phone (an agent with phone: webrtc)")


class PhoneApi:
    def __init__(self, phone_of: PhoneOf, upstream: str) -> None:
        self._phone_of = phone_of
        self._upstream = upstream          # Asterisk's SIP websocket, e.g. ws://127.0.0.1:8088/ws
        self._relays: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/me/phone", self.credentials)
        r.add_get("/api/me/phone/ws", self.relay)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _mine(self, request: web.Request) -> tuple[str, BrowserPhone]:
        p = principal_of(request)
        phone = self._phone_of(p.agent_id) if p.role is Role.AGENT and p.agent_id else None
        if phone is None:
            raise no_phone()
        return p.agent_id or "", phone

    async def credentials(self, request: web.Request) -> web.Response:
        _, phone = self._mine(request)
        return web.json_response(phone.as_dict(), headers={"Cache-Control": "no-store"})

    async def relay(self, request: web.Request) -> web.StreamResponse:
        agent_id, _ = self._mine(request)
        if self._relays.get(agent_id, 0) >= MAX_RELAYS_PER_AGENT:
            raise ApiError(429, "too-many-phones",
                           f"at most {MAX_RELAYS_PER_AGENT} phone connections per agent")
        ws = web.WebSocketResponse(protocols=("sip",), max_msg_size=MAX_SIP_MESSAGE, heartbeat=30)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "websocket-expected", "open this route as a websocket (subprotocol sip)")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._relays[agent_id] = self._relays.get(agent_id, 0) + 1
        try:
            try:
                up = await self._session.ws_connect(self._upstream, protocols=("sip",),
                                                    max_msg_size=MAX_SIP_MESSAGE)
            except (aiohttp.ClientError, OSError) as e:
                log.warning("phone relay for agent %s: Asterisk's websocket is unreachable: %s", agent_id, e)
                raise ApiError(503, "phone-unavailable",
                               "the phone server (Asterisk) is unreachable") from None
            await ws.prepare(request)
            async with up:
                await _pump_both(ws, up)
            await ws.close()
        finally:
            self._relays[agent_id] -= 1
            if not self._relays[agent_id]:
                del self._relays[agent_id]
        return ws


async def _pump_both(page: web.WebSocketResponse, up: aiohttp.ClientWebSocketResponse) -> None:
    """Text frames both ways until either side closes; the other side is then closed too."""
    async def pump(src, send) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send(msg.data)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break
    tasks = [asyncio.ensure_future(pump(page, up.send_str)), asyncio.ensure_future(pump(up, page.send_str))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await up.close()
