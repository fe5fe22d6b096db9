"""The agent page and its live side: the websocket (state changes, screen pop), the ACD listener that feeds
it, the screen pop with the caller's CRM history, and ``GET /api/agents/{id}/screen``.

``/agent`` is the logged-in agent's own page (``/login`` first); its websocket ``/agent/ws`` is authenticated
by the session cookie (and must come from this server's origin: ivr/web/auth.py). ``/agent/{id}`` and
``/agent/{id}/ws`` serve API-token clients too: their first message is ``{"auth": "<token>"}``. Either way
a connection sees and acts on one agent, which the principal must be allowed (an agent user: itself; a
supervisor: an agent of their queues; an admin: any)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from ..logsafe import mask_number
from .agents import ACTION_FIELDS, AgentApi
from .deps import AcdView, CallHistory
from .errors import ApiError, parse_json, printable
from .identity import PRINCIPAL_KEY, Principal, Role, can_see_agent, forbidden
from .pages import html_response, page

log = logging.getLogger(__name__)

WS_MAX_MESSAGE = 4 * 1024            # an agent websocket message above this gets an error back
WS_AUTH_TIMEOUT = 10.0               # seconds to send {"auth": ...} after connecting
WS_QUEUE = 256                       # pending pushes per agent connection before it is dropped as too slow
HISTORY_LIMIT = 5
HISTORY_TIMEOUT = 2.0
_ACTIVE_CALL_STATES = {"reserved", "on_call", "wrap_up"}   # the screen pop stays while the agent is in these


class AgentClient:
    """One agent websocket: every outgoing message goes through `queue`, written by one sender task."""

    def __init__(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        self.agent_id = agent_id
        self.ws = ws
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue(WS_QUEUE)

    def push(self, msg: dict) -> None:
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("agent %s websocket too slow; dropping it", self.agent_id)
            self.close()

    def close(self) -> None:
        while True:   # make room for the sentinel
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class AgentLive:
    """The agents' live connections and screen pops. `token_principal` gives the principal of an API token
    (or raises an `ApiError`: the auth middleware's check, ivr/web/auth.py)."""

    def __init__(self, agents: AgentApi, acd: AcdView | None, crm: CallHistory | None,
                 token_principal: Callable[[str | None], Principal]) -> None:
        self.agents = agents
        self.acd = acd
        self.crm = crm
        self.token_principal = token_principal
        self.clients: dict[str, set[AgentClient]] = {}
        self.screens: dict[str, dict[str, Any]] = {}     # agent id -> current screen pop
        self._tasks: set[asyncio.Task] = set()

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/agents/{id}/screen", self.agent_screen)
        r.add_get("/agent", self.own_page)
        r.add_get("/agent/ws", self.agent_ws)            # before /agent/{id}: the logged-in agent's own
        r.add_get("/agent/{id}", self.agent_page)
        r.add_get("/agent/{id}/ws", self.agent_ws)

    # ---------------------------------------------------------------------------------- lifecycle
    def listen(self) -> None:
        """Follow the ACD's notifications (idempotent)."""
        if self.acd is not None and self._on_acd not in self.acd.listeners:
            self.acd.listeners.append(self._on_acd)

    def unlisten(self) -> None:
        if self.acd is not None and self._on_acd in self.acd.listeners:
            self.acd.listeners.remove(self._on_acd)

    async def close_clients(self) -> None:
        for clients in list(self.clients.values()):
            for c in list(clients):
                c.close()
                await c.ws.close(code=1001, message=b"server shutdown")

    async def cancel_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------------------------- routes
    async def agent_screen(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self.agents.require_access(request, agent_id)
        snap = self.agents.snapshot(agent_id)
        screen = self.screens.get(agent_id)
        if screen is not None and screen.get("history") is None:
            await self._add_history(agent_id, screen)
        return web.json_response({"agent": snap, "screen": screen})

    async def agent_page(self, request: web.Request) -> web.Response:
        # static page: the agent id is read from the URL by the script; the data comes over the websocket
        return html_response(page("agent"))

    async def own_page(self, request: web.Request) -> web.StreamResponse:
        """The logged-in agent's page; whoever is not logged in is sent to the login page."""
        if not isinstance(request.get(PRINCIPAL_KEY), Principal):
            raise web.HTTPFound("/login?next=/agent")
        return html_response(page("agent"))

    def may_hear(self, p: Principal, voicemail_id: int) -> bool:
        """An agent may play the voicemail on its current screen pop (the voicemail task offered to it)."""
        if p.agent_id is None:
            return False
        vm = (self.screens.get(p.agent_id) or {}).get("voicemail")
        return isinstance(vm, dict) and vm.get("id") == voicemail_id

    async def _ws_principal(self, request: web.Request, ws: web.WebSocketResponse) -> Principal | None:
        """The cookie's principal (checked by the middleware), else the first message's token."""
        p = request.get(PRINCIPAL_KEY)
        if isinstance(p, Principal):
            return p
        try:
            msg = await ws.receive(timeout=WS_AUTH_TIMEOUT)
        except TimeoutError:
            await _ws_fail(ws, "unauthorized", "send {\"auth\": token} first", 4401)
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                await ws.close()     # gone, or a frame above max_msg_size (aiohttp closes with 1009)
            else:
                await _ws_fail(ws, "unauthorized", "send {\"auth\": token} first, as a text message", 4401)
            return None
        data = _parse(msg.data)
        token = data.get("auth") if isinstance(data, dict) else None
        return self.token_principal(token if isinstance(token, str) and len(token) <= 512 else None)

    async def agent_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        try:
            p = await self._ws_principal(request, ws)
            if p is None:
                return ws
            agent_id = request.match_info.get("id") or p.agent_id
            if agent_id is None:
                raise forbidden("this user is not an agent: open /agent/<id>")
            if not can_see_agent(p, agent_id, self.agents.agent_queues(agent_id)) or (
                    p.role is Role.AGENT and "id" in request.match_info and agent_id != p.agent_id):
                raise forbidden("this agent is not yours")
            snap = self.agents.snapshot(agent_id)
        except ApiError as e:
            await _ws_fail(ws, e.error_id, e.message, 4000 + e.status)
            return ws

        client = AgentClient(agent_id, ws)
        self.clients.setdefault(agent_id, set()).add(client)
        sender = asyncio.create_task(self._sender(client), name=f"ws-agent-{agent_id}")
        client.push({"type": "agent", **snap})
        screen = self.screens.get(agent_id)
        client.push({"type": "screen", "screen": screen})
        if screen is not None and screen.get("history") is None:
            self._spawn(self._add_history(agent_id, screen))     # pushed as a "history" message
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._ws_message(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    client.push(_err("invalid-request", "binary messages are not accepted"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.get(agent_id, set()).discard(client)
            if not self.clients.get(agent_id):
                self.clients.pop(agent_id, None)
            client.close()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _ws_message(self, client: AgentClient, text: str) -> None:
        if len(text) > WS_MAX_MESSAGE or len(text.encode("utf-8", "surrogatepass")) > WS_MAX_MESSAGE:
            client.push(_err("payload-too-large", f"messages are limited to {WS_MAX_MESSAGE} bytes"))
            return
        data = _parse(text)
        if data is _BAD:
            client.push(_err("invalid-json", "message is not valid JSON"))
            return
        if not isinstance(data, dict):
            client.push(_err("invalid-request", "message must be a JSON object"))
            return
        if "auth" in data and len(data) == 1:
            return    # a repeated auth message is harmless
        unknown = sorted(set(data) - ACTION_FIELDS)
        if unknown:   # e.g. an agent_id: a connection only ever acts for its own agent
            client.push(_err("invalid-request", f"unknown field(s) {', '.join(map(printable, unknown))}; "
                                                "allowed: action, reason"))
            return
        try:
            await self.agents.action(client.agent_id, data)
        except ApiError as e:
            client.push(_err(e.error_id, e.message))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent %s websocket action failed", client.agent_id)
            client.push(_err("internal-error", "internal error (see the server log)"))
        else:
            # the ACD notifies listeners too; this makes the answer explicit even if it did not
            client.push({"type": "ok", "action": data.get("action")})

    async def _sender(self, client: AgentClient) -> None:
        try:
            while True:
                msg = await client.queue.get()
                if msg is None:
                    break
                await client.ws.send_str(json.dumps(msg, default=str))
        except (ConnectionError, RuntimeError):
            pass
        finally:
            if not client.ws.closed:
                await client.ws.close()

    # ---------------------------------------------------------------------- ACD notifications
    def _on_acd(self, kind: str, payload: dict) -> None:
        """ACD listener (synchronous, must be cheap and never raise)."""
        try:
            agent_id = payload.get("agent_id")
            if not isinstance(agent_id, str):
                return
            if kind == "offer":
                screen = _screen(payload)
                self.screens[agent_id] = screen
                self._push(agent_id, {"type": "offer", "screen": screen})
                if self.clients.get(agent_id):   # else loaded when the screen is asked for (a CRM query per
                    self._spawn(self._add_history(agent_id, screen))   # offer nobody sees is wasted)
            elif kind == "agent":
                if payload.get("state") not in _ACTIVE_CALL_STATES and not payload.get("call_id"):
                    self.screens.pop(agent_id, None)
                self._push(agent_id, {"type": "agent", **payload})
            elif kind == "call":
                self._push(agent_id, {"type": "call", **payload})
        except Exception:
            log.exception("web: ACD notification %s failed", kind)

    def _push(self, agent_id: str, msg: dict) -> None:
        for c in list(self.clients.get(agent_id, ())):
            c.push(msg)

    def _spawn(self, coro: Awaitable[None]) -> None:
        try:
            t = asyncio.get_running_loop().create_task(coro)   # type: ignore[arg-type]
        except RuntimeError:      # no loop (a synchronous test calling the listener): skip the extra
            coro.close()          # type: ignore[attr-defined]
            return
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _add_history(self, agent_id: str, screen: dict[str, Any]) -> None:
        caller, crm = screen.get("caller"), self.crm
        items: list[dict[str, Any]] = []
        if crm is not None and isinstance(caller, str) and caller.startswith("+"):
            try:
                found = await asyncio.wait_for(crm.recent_interactions(caller, HISTORY_LIMIT), HISTORY_TIMEOUT)
                for i in found:
                    d = i.as_dict()
                    d.pop("caller", None)
                    if d.get("call_id") != screen.get("call_id"):
                        items.append(d)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a CRM problem must never break the screen pop
                # the exception's type only: a backend's message may quote the caller's number
                log.info("screen pop history for %s unavailable: %s", mask_number(caller), type(e).__name__)
        screen["history"] = items
        if self.screens.get(agent_id) is screen:
            self._push(agent_id, {"type": "history", "call_id": screen.get("call_id"), "history": items})


def _screen(payload: dict) -> dict[str, Any]:
    call = dict(payload.get("call") or {})
    since = call.get("waiting_since")
    return {
        "call_id": payload.get("call_id"), "queue": payload.get("queue") or call.get("queue"),
        "customer": call.get("customer"), "known": call.get("known", call.get("customer") is not None),
        "caller": call.get("caller"), "did": call.get("did"), "flow": call.get("flow"),
        "ivr_path": list(call.get("ivr_path") or []), "keys": call.get("keys", ""),
        "repeat_caller": call.get("repeat_caller", False), "last_agent": call.get("last_agent"),
        "flags": list(call.get("flags") or []), "waiting_since": since,
        "wait": round(time.time() - since, 1) if isinstance(since, (int, float)) else None,
        "offered_at": time.time(), "history": None,
        # a voicemail task: the message (length, audio URL) and what the agent may do with it
        "voicemail": call.get("voicemail"), "actions": list(call.get("actions") or []),
    }


_BAD = object()


def _parse(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return _BAD


def _err(error_id: str, message: str) -> dict[str, str]:
    return {"type": "error", "error_id": error_id, "message": message}


async def _ws_fail(ws: web.WebSocketResponse, error_id: str, message: str, code: int) -> None:
    try:
        await ws.send_str(json.dumps(_err(error_id, message)))
    finally:
        await ws.close(code=code, message=error_id.encode()[:120])
