"""The HTTP edge: health, metrics, the admin API, the agent page (screen pop over a websocket), the wallboard.

* `/healthz`, `/metrics`, `/wallboard`, `/wallboard/data` and the agent page's HTML need no token (the
  server binds loopback by default; none of them shows a phone number or a secret).
* Everything under `/api/` needs `Authorization: Bearer <http.admin_token>`; with no token configured the
  API refuses everything (503 `admin-disabled`).
* The agent websocket authenticates with its first message `{"auth": "<token>"}` (the page reads the
  token from the URL fragment, which browsers never send to the server).
* Every error is JSON `{"error_id", "message"[, "details"]}` with a stable `error_id` (see docs/api.md);
  a bug gives 500 `internal-error` with no traceback in the body (it goes to the log).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..logsafe import mask_number
from ..task_metrics import queue_figures
from ..tasks.policy import WebCallbackPolicy
from .callbacks import WebCallbacks
from .errors import ApiError, bad_request, json_body, not_found, parse_json, printable, unauthorized
from .tasks import TaskApi
from .voicemail import VoicemailApi

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024                 # request bodies (client_max_size)
LINGER_SECONDS = 1.0                 # how long the rest of a refused body is read and dropped
WS_MAX_MESSAGE = 4 * 1024            # an agent websocket message above this gets an error back
WS_AUTH_TIMEOUT = 10.0               # seconds to send {"auth": ...} after connecting
WS_QUEUE = 256                       # pending pushes per agent connection before it is dropped as too slow
AGENT_ACTIONS = ("login", "logout", "pause", "unpause", "available", "end_wrap_up")
ACTION_FIELDS = frozenset({"action", "reason"})      # a state change body / websocket message
VALIDATE_FIELDS = frozenset({"file", "text"})
AGENT_NAME_MAX = 64
PAUSE_REASONS = ("break", "lunch", "meeting", "training", "coaching", "admin", "other")
HISTORY_LIMIT = 5
HISTORY_TIMEOUT = 2.0
_ACTIVE_CALL_STATES = {"reserved", "on_call", "wrap_up"}   # the screen pop stays while the agent is in these

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; media-src blob:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
APP_KEY = web.AppKey("ivr_web", object)


class _AgentClient:
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


class WebServer:
    def __init__(self, app: App) -> None:
        self.app = app
        self.clients: dict[str, set[_AgentClient]] = {}
        self.screens: dict[str, dict[str, Any]] = {}     # agent id -> current screen pop
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port: int | None = None                     # the bound port once started

    # ------------------------------------------------------------------------------- lifecycle
    def make_app(self) -> web.Application:
        wa = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors, self._auth])
        wa[APP_KEY] = self
        r = wa.router
        r.add_get("/", self.index)
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/queues", self.queues)
        r.add_get("/api/queues/{name}", self.queue)
        r.add_get("/api/agents", self.agents)
        r.add_get("/api/agents/{id}", self.agent)
        r.add_post("/api/agents/{id}/state", self.agent_state)
        r.add_put("/api/agents/{id}", self.agent_update)
        r.add_get("/api/agents/{id}/screen", self.agent_screen)
        r.add_get("/api/calls", self.calls)
        r.add_get("/api/flows", self.flows)
        r.add_post("/api/flows/validate", self.flows_validate)
        r.add_post("/api/flows/reload", self.flows_reload)
        r.add_get("/api/config", self.config)
        r.add_get("/api/records", self.records)
        if self.app.storage is not None:
            VoicemailApi(self.app.storage, self.app.ari).add_routes(r)
        book, legs = self.app.task_book, self.app.task_legs
        if book is not None and legs is not None:
            TaskApi(book, legs).add_routes(r)
            policy = WebCallbackPolicy.from_dict(self.app.cfg.web_callbacks)
            if policy.topics:
                WebCallbacks(policy, book, wake=legs.wake, estimate=self._queue_estimate).add_routes(r)
        r.add_get("/agent/{id}", self.agent_page)
        r.add_get("/agent/{id}/ws", self.agent_ws)
        r.add_get("/wallboard", self.wallboard)
        r.add_get("/wallboard/data", self.wallboard_data)
        wa.on_shutdown.append(self._on_shutdown)
        if self.app.acd is not None and self._on_acd not in self.app.acd.listeners:
            self.app.acd.listeners.append(self._on_acd)
        return wa

    async def start(self) -> None:
        h = self.app.cfg.http
        # lingering: after refusing a body (413) read and drop the rest for at most 1 s, not aiohttp's 10 s
        self._runner = web.AppRunner(self.make_app(), access_log=None, lingering_time=LINGER_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, h.bind_address, h.port)
        await site.start()
        addrs = self._runner.addresses
        self.port = addrs[0][1] if addrs else h.port
        if not h.admin_token:
            log.warning("http.admin_token is empty: the admin API and the agent page are disabled")
        log.info("http listening on %s:%s", h.bind_address, self.port)

    async def stop(self) -> None:
        if self.app.acd is not None and self._on_acd in self.app.acd.listeners:
            self.app.acd.listeners.remove(self._on_acd)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_shutdown(self, _wa: web.Application) -> None:
        for clients in list(self.clients.values()):
            for c in list(clients):
                c.close()
                await c.ws.close(code=1001, message=b"server shutdown")

    # ------------------------------------------------------------------------------ middleware
    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.content_length is not None and request.content_length > MAX_BODY:
                # refused up front on every route, also on those that never read a body
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
            return await handler(request)
        except ApiError as e:
            return e.response()
        except web.HTTPRequestEntityTooLarge:
            resp = ApiError(413, "payload-too-large", f"request body above {MAX_BODY} bytes").response()
            resp.force_close()      # do not linger reading the rest of a body nobody wants
            return resp
        except web.HTTPNotFound:
            return ApiError(404, "route-not-found", f"no route {request.method} {request.path}").response()
        except web.HTTPMethodNotAllowed as e:
            resp = ApiError(405, "method-not-allowed", f"{request.method} is not allowed here").response()
            resp.headers["Allow"] = ",".join(sorted(e.allowed_methods))
            return resp
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return ApiError(e.status, "http-error", e.reason).response()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return ApiError(500, "internal-error", "internal error (see the server log)").response()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/api/callbacks" and request.method == "POST":
            return await handler(request)        # the website's own key, checked by the route
        if request.path.startswith("/api/") or request.path == "/api":
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            self._check_token(given.strip() if scheme.lower() == "bearer" else None)
        return await handler(request)

    def _check_token(self, given: str | None) -> None:
        expected = self.app.cfg.http.admin_token
        if not expected:
            raise ApiError(503, "admin-disabled", "no admin token configured (http.admin_token)")
        # surrogatepass: a header or websocket value with undecodable bytes is just a wrong token
        if not given or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                expected.encode("utf-8", "surrogatepass")):
            raise unauthorized()

    # --------------------------------------------------------------------------------- helpers
    def _acd(self):
        if self.app.acd is None:
            raise ApiError(503, "acd-disabled", "no queues configured")
        return self.app.acd

    def _agent_snapshot(self, agent_id: str) -> dict[str, Any]:
        acd = self._acd()
        if agent_id not in acd.router.agent_ids():
            raise not_found("agent", agent_id)
        return _agent_view(acd.router.agent_snapshot(agent_id))

    def _queue_estimate(self, name: str) -> float | None:
        acd = self.app.acd
        if acd is None or name not in acd.router.queue_names():
            return None
        return acd.router.queue_estimate(name)

    def _queue_view(self, name: str) -> dict[str, Any]:
        acd = self._acd()
        if name not in acd.router.queue_names():
            raise not_found("queue", name)
        snap = acd.router.queue_snapshot(name)
        d = snap.as_dict()
        d["stats"]["service_level_pct"] = snap.stats.service_level_pct
        for c in d["calls"]:
            s = self.app.sessions.get(c["call_id"])
            c["caller"] = mask_number(getattr(s, "caller_raw", None)) if s is not None else None
        return d

    # ---------------------------------------------------------------------------- open routes
    async def index(self, request: web.Request) -> web.Response:
        """What this server offers, with links (instead of a 404 for someone who opens the bare URL)."""
        agents = ""
        if self.app.acd is not None:
            agents = "".join(f'<li><a href="/agent/{html.escape(a, quote=True)}">agent page: {html.escape(a)}</a>'
                             "</li>" for a in self.app.acd.router.agent_ids())
        page = INDEX_HTML.replace("<!--AGENTS-->", agents)
        return web.Response(text=page, content_type="text/html", headers=HTML_HEADERS)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "ari_connected": bool(self.app.ari_connected())})

    async def metrics(self, request: web.Request) -> web.Response:
        from ..metrics import CONTENT_TYPE
        body = self.app.metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    # -------------------------------------------------------------------------------- admin API
    async def queues(self, request: web.Request) -> web.Response:
        if self.app.acd is None:
            return web.json_response({"queues": []})
        return web.json_response({"queues": [self._queue_view(n) for n in self.app.acd.router.queue_names()]})

    async def queue(self, request: web.Request) -> web.Response:
        return web.json_response(self._queue_view(request.match_info["name"]))

    async def agents(self, request: web.Request) -> web.Response:
        if self.app.acd is None:
            return web.json_response({"agents": []})
        return web.json_response({"agents": [_agent_view(a) for a in self.app.acd.router.agents_snapshot()]})

    async def agent(self, request: web.Request) -> web.Response:
        return web.json_response(self._agent_snapshot(request.match_info["id"]))

    async def agent_state(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self._agent_snapshot(agent_id)            # 404 before looking at the body
        body = await json_body(request, ACTION_FIELDS)
        await self._agent_action(agent_id, body)
        return web.json_response(self._agent_snapshot(agent_id))

    async def agent_update(self, request: web.Request) -> web.Response:
        """Replace an agent's definition (skills, languages, team, queues, wrap_up, max_misses)."""
        from ..acd.errors import AcdError, ConfigError, UnknownAgent
        agent_id = request.match_info["id"]
        self._agent_snapshot(agent_id)
        body = await json_body(request)
        if body.get("id", agent_id) != agent_id:
            raise bad_request("invalid-request", "the body's id must match the URL")
        _check_agent_body(body)
        try:
            await self._acd().update_agent({**body, "id": agent_id})
        except UnknownAgent:
            raise not_found("agent", agent_id) from None
        except ConfigError as e:
            raise bad_request("invalid-agent", str(e)) from None
        except AcdError as e:
            raise ApiError(409, "agent-conflict", str(e)) from None
        return web.json_response(self._agent_snapshot(agent_id))

    async def _agent_action(self, agent_id: str, body: dict[str, Any]) -> None:
        from ..acd.errors import AcdError, UnknownAgent
        action, reason = body.get("action"), body.get("reason")
        if action not in AGENT_ACTIONS:
            raise bad_request("invalid-request", f"action must be one of {', '.join(AGENT_ACTIONS)}")
        if reason is not None and (not isinstance(reason, str) or not 0 < len(reason) <= 32
                                   or not reason.isprintable()):
            raise bad_request("invalid-request", "reason must be a printable string of 1-32 characters")
        try:
            await self._acd().agent_action(agent_id, action, reason)
        except UnknownAgent:
            raise not_found("agent", agent_id) from None
        except AcdError as e:
            raise ApiError(409, "illegal-transition", str(e)) from None
        except ValueError as e:
            raise bad_request("invalid-request", str(e)) from None

    async def agent_screen(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        snap = self._agent_snapshot(agent_id)
        screen = self.screens.get(agent_id)
        if screen is not None and screen.get("history") is None:
            await self._add_history(agent_id, screen)
        return web.json_response({"agent": snap, "screen": screen})

    async def calls(self, request: web.Request) -> web.Response:
        now = time.time()
        out = []
        for cid, s in list(self.app.sessions.items()):
            runner = getattr(s, "runner", None)
            started = getattr(s, "started_at", None)
            out.append({
                "id": cid, "flow": getattr(s, "flow_name", None), "did": getattr(s, "did", None),
                "caller": mask_number(getattr(s, "caller_raw", None)),
                "queue": getattr(s, "queue_name", None), "agent": getattr(s, "agent_id", None),
                "age": round(now - started, 1) if isinstance(started, (int, float)) else None,
                "path": list(getattr(runner, "visited_nodes", []) or []),
                "waiting": self._waiting(cid),
            })
        return web.json_response({"calls": out})

    def _waiting(self, call_id: str) -> dict[str, Any] | None:
        """The ACD's view of a caller in a queue (why it still waits: ``note``), None when in no queue."""
        from ..acd.errors import AcdError
        acd = self.app.acd
        if acd is None or call_id not in acd.calls:
            return None
        try:
            snap = acd.router.call_snapshot(call_id)
        except AcdError:            # gone between the two looks
            return None
        return {"queue": snap.queue, "state": snap.state.value, "position": snap.position,
                "wait": round(snap.wait, 1), "estimated_wait": snap.estimated_wait,
                "overflowed_from": list(snap.overflowed_from), "note": snap.note}

    def _flows(self):
        if self.app.flows is None:
            raise ApiError(503, "flows-disabled", "no flow registry loaded")
        return self.app.flows

    async def flows(self, request: web.Request) -> web.Response:
        reg = self._flows()
        cur = reg.current
        return web.json_response({
            "version": cur.version if cur else None, "flows": list(cur.names) if cur else [],
            "default": reg.default, "routes": reg.routes,
            "last_reload": reg.last_result.as_dict() if reg.last_result else None})

    async def flows_validate(self, request: web.Request) -> web.Response:
        from ..flow import load_flow_text
        body = await json_body(request, VALIDATE_FIELDS)
        text, file = body.get("text"), body.get("file", "flow.yaml")
        if not isinstance(text, str):
            raise bad_request("invalid-request", "'text' (the flow YAML) is required and must be a string")
        if (not isinstance(file, str) or not file or len(file) > 128 or "/" in file or "\\" in file
                or file in (".", "..") or not file.isprintable()):
            raise bad_request("invalid-request", "'file' must be a plain file name")
        known = self._flows().known_queues if self.app.flows is not None else None
        _flow, diags = load_flow_text(text, file=file, known_queues=known)
        errors = [str(d) for d in diags if d.is_error]
        warnings = [d.format() for d in diags if not d.is_error]
        return web.json_response({"ok": not errors, "errors": errors, "warnings": warnings})

    async def flows_reload(self, request: web.Request) -> web.Response:
        result = self._flows().reload()
        if not result.ok:
            raise ApiError(422, "flow-invalid", f"reload refused; version {result.version or '-'} stays in service",
                           details=result.as_dict())
        return web.json_response(result.as_dict())

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(self.app.cfg.redacted())

    async def records(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise bad_request("invalid-request", "limit must be an integer") from None
        limit = max(1, min(limit, 1000))
        queue = request.query.get("queue") or None
        st = self.app.storage
        if st is None:
            return web.json_response({"records": []})
        rows = st.recent_call_records(queue, limit)
        for r in rows:
            r["caller"] = mask_number(r["caller"]) if r.get("caller") else None
            try:
                extra = json.loads(r.pop("extra", None) or "{}")
            except ValueError:
                extra = {}
            extra = extra if isinstance(extra, dict) else {}
            # why it left (e.g. nobody could serve it) and the queues it overflowed from
            r["reason"] = str(extra.get("reason") or "") or None
            r["overflowed_from"] = [str(q) for q in extra.get("overflowed_from") or []]
        return web.json_response({"records": rows})

    # ------------------------------------------------------------------------------- agent page
    async def agent_page(self, request: web.Request) -> web.Response:
        # static page: the agent id is read from the URL by the script, the token from the fragment
        return web.Response(text=AGENT_HTML, content_type="text/html", headers=HTML_HEADERS)

    async def agent_ws(self, request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["id"]
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        try:
            msg = await ws.receive(timeout=WS_AUTH_TIMEOUT)
        except TimeoutError:
            await _ws_fail(ws, "unauthorized", "send {\"auth\": token} first", 4401)
            return ws
        if msg.type != WSMsgType.TEXT:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                await ws.close()     # gone, or a frame above max_msg_size (aiohttp closes with 1009)
            else:
                await _ws_fail(ws, "unauthorized", "send {\"auth\": token} first, as a text message", 4401)
            return ws
        data = _parse(msg.data)
        token = data.get("auth") if isinstance(data, dict) else None
        try:
            self._check_token(token if isinstance(token, str) else None)
            snap = self._agent_snapshot(agent_id)
        except ApiError as e:
            await _ws_fail(ws, e.error_id, e.message, 4000 + e.status)
            return ws

        client = _AgentClient(agent_id, ws)
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

    async def _ws_message(self, client: _AgentClient, text: str) -> None:
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
            await self._agent_action(client.agent_id, data)
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

    async def _sender(self, client: _AgentClient) -> None:
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
                screen = self._screen(payload)
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

    @staticmethod
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

    async def _add_history(self, agent_id: str, screen: dict[str, Any]) -> None:
        caller, crm = screen.get("caller"), self.app.crm
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

    # -------------------------------------------------------------------------------- wallboard
    def _wallboard(self) -> dict[str, Any]:
        """Per queue: callers on the line (``waiting``, ``ringing``, ``oldest_wait``: the router also holds
        tasks in its queues, they are not callers) and the tasks waiting for an agent (``tasks_waiting``,
        of which ``tasks_scheduled`` are held back until a time, ``tasks_oldest_wait``, ``tasks_by_kind``:
        the figures of ``ivr_tasks_*``)."""
        queues = []
        totals: dict[str, int] = {}
        acd = self.app.acd
        tasks = self.app.metrics.tasks.waiting_by_queue()
        if acd is not None:
            for name in acd.router.queue_names():
                s = acd.router.queue_snapshot(name)
                pct = s.stats.service_level_pct
                callers = [c for c in s.calls if c.kind == "call"]
                ringing = sum(1 for c in callers if getattr(c.state, "value", c.state) == "ringing")
                queues.append({
                    "name": name, "waiting": len(callers) - ringing, "ringing": ringing,
                    "oldest_wait": round(max((c.wait for c in callers), default=0.0), 1),
                    "agents": acd.serving_agents(name)[0],
                    "service_level_pct": None if pct is None else round(pct, 1),
                    "service_level_target": list(s.service_level_target),
                    "entered": s.stats.entered, "answered": s.stats.answered, "abandoned": s.stats.abandoned,
                    **queue_figures(tasks, name)})
            for a in acd.router.agents_snapshot():
                # a phone that is off is shown as such, whatever state the agent is logged in with
                st = getattr(a.state, "value", str(a.state)) if a.registered else "unregistered"
                totals[st] = totals.get(st, 0) + 1
        return {"time": time.time(), "ari_connected": bool(self.app.ari_connected()), "queues": queues,
                "agents": totals}

    async def wallboard_data(self, request: web.Request) -> web.Response:
        return web.json_response(self._wallboard())

    async def wallboard(self, request: web.Request) -> web.Response:
        rows = []
        for q in self._wallboard()["queues"]:
            n = html.escape(q["name"], quote=True)
            sl = "–" if q["service_level_pct"] is None else f"{q['service_level_pct']:.0f}%"
            rows.append(
                f'<tr data-queue="{n}"><th>{n}</th><td id="wb-{n}-waiting">{q["waiting"]}</td>'
                f'<td id="wb-{n}-tasks">{"–" if q["tasks_waiting"] is None else q["tasks_waiting"]}</td>'
                f'<td id="wb-{n}-oldest">{_mmss(q["oldest_wait"])}</td>'
                f'<td id="wb-{n}-agents">{html.escape(_agents_text(q["agents"]))}</td>'
                f'<td id="wb-{n}-sl">{sl}</td><td id="wb-{n}-answered">{q["answered"]}</td>'
                f'<td id="wb-{n}-abandoned">{q["abandoned"]}</td></tr>')
        page = WALLBOARD_HTML.replace("<!--ROWS-->", "\n".join(rows))
        return web.Response(text=page, content_type="text/html", headers=HTML_HEADERS)


# ------------------------------------------------------------------------------------ helpers
_BAD = object()


def _parse(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return _BAD


def _check_agent_body(body: dict[str, Any]) -> None:
    """Types the ACD's agent_from_dict would coerce silently (str() of anything) are refused here, and so are
    keys the ACD would drop silently (sip_password, login: Asterisk's and start-up config, not run time)."""
    ignored = sorted(set(body) & {"sip_password", "login"})
    if ignored:
        raise bad_request("invalid-agent", f"{', '.join(ignored)} cannot be changed at run time")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= AGENT_NAME_MAX
                             or not name.isprintable()):
        raise bad_request("invalid-agent", f"name must be a printable string of 1-{AGENT_NAME_MAX} characters")
    team = body.get("team")
    if team is not None and (not isinstance(team, str) or len(team) > AGENT_NAME_MAX or not team.isprintable()):
        raise bad_request("invalid-agent", "team must be a printable string or null")
    for key in ("languages", "queues"):
        items = body.get(key)
        if isinstance(items, list) and not all(isinstance(x, str) and x.isprintable() for x in items):
            raise bad_request("invalid-agent", f"{key} must be a list of names")


def _err(error_id: str, message: str) -> dict[str, str]:
    return {"type": "error", "error_id": error_id, "message": message}


async def _ws_fail(ws: web.WebSocketResponse, error_id: str, message: str, code: int) -> None:
    try:
        await ws.send_str(json.dumps(_err(error_id, message)))
    finally:
        await ws.close(code=code, message=error_id.encode()[:120])


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _agents_text(by_state: dict[str, int]) -> str:
    short = {"available": "avail", "on_call": "talk", "wrap_up": "wrap", "paused": "pause", "reserved": "ring"}
    return " ".join(f"{short[k]} {by_state.get(k, 0)}" for k in short)


# ---------------------------------------------------------------------------------- the pages
AGENT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px system-ui,sans-serif;margin:1em;max-width:60em;color:#222}
header{display:flex;gap:1em;align-items:center;flex-wrap:wrap}
#agent-state{font-weight:bold;padding:.2em .6em;border-radius:.3em;background:#ddd}
#agent-state.available{background:#bfe8c4}#agent-state.paused{background:#f6d9a8}
#agent-state.on_call,#agent-state.reserved{background:#f4b6b6}#agent-state.wrap_up{background:#c9d7f5}
section{border:1px solid #ccc;border-radius:.4em;padding:.6em 1em;margin:.8em 0}
#error{color:#a00}dt{font-weight:bold;float:left;width:9em}dd{margin-left:9em}
</style></head><body>
<header><h1 id="agent-name">Agent</h1><span id="agent-state">connecting</span>
<button data-action="available">Available</button>
<select id="reason"><option>break</option><option>lunch</option><option>meeting</option>
<option>training</option><option>coaching</option><option>admin</option><option>other</option></select>
<button data-action="pause">Pause</button><button data-action="end_wrap_up">End wrap-up</button>
<span id="error"></span></header>
<section id="screen"><h2 id="customer-name">No call</h2>
<dl><dt>Caller</dt><dd id="caller">-</dd><dt>Tier</dt><dd id="tier">-</dd>
<dt>Account</dt><dd id="account">-</dd><dt>Language</dt><dd id="language">-</dd>
<dt>Queue</dt><dd id="queue">-</dd><dt>Waited</dt><dd id="wait">-</dd>
<dt>IVR path</dt><dd id="ivr-path">-</dd><dt>Notes</dt><dd id="notes">-</dd></dl>
<div id="vm" hidden><h3>Voicemail</h3><p>Length: <span id="vm-length">-</span> s</p>
<audio id="vm-audio" controls></audio>
<p><button id="vm-call">Call back</button>
<select id="vm-disposition"><option>handled</option><option>no action needed</option><option>wrong number</option>
<option>spam</option></select><button id="vm-close">Close</button></p></div>
<h3>Open tickets</h3><ul id="tickets"></ul>
<h3>Recent history</h3><ul id="history"></ul></section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const agentId = decodeURIComponent(location.pathname.split("/")[2] || "");
let token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("ivr-token");
if (location.hash) {   // keep the token for reloads of this tab only, and take it out of the address bar
  if (token) sessionStorage.setItem("ivr-token", token);
  history.replaceState(null, "", location.pathname);
}
let ws = null, delay = 500;
function text(id, v) { $(id).textContent = (v === null || v === undefined || v === "") ? "-" : String(v); }
function list(id, items, fmt) {
  const ul = $(id); ul.replaceChildren();
  for (const it of items || []) { const li = document.createElement("li"); li.textContent = fmt(it); ul.append(li); }
}
function showAgent(a) {
  $("agent-name").textContent = a.name ? a.name + " (" + a.agent_id + ")" : a.agent_id;
  const st = a.state + (a.pause_reason ? " (" + a.pause_reason + ")" : "");
  $("agent-state").textContent = st; $("agent-state").className = a.state;
}
function showScreen(s) {
  const c = (s && s.customer) || {};
  $("customer-name").textContent = s ? (c.name || "Unknown caller") : "No call";
  text("caller", s && s.caller); text("tier", c.tier); text("account", c.account_id); text("language", c.language);
  text("queue", s && s.queue); text("wait", s && s.wait != null ? Math.round(s.wait) + " s" : "");
  text("ivr-path", s && s.ivr_path.join(" \u2192 ")); text("notes", c.notes);
  list("tickets", c.open_tickets, (t) => [t.id || t.ticket_id, t.subject || t.title, t.status].filter(Boolean).join(" \u2014 "));
  showHistory(s && s.history);
  showVoicemail(s);
}
let current = null;
async function showVoicemail(s) {
  const vm = s && s.voicemail;
  current = vm ? s : null;
  $("vm").hidden = !vm;
  if (!vm) return;
  text("vm-length", Math.round(vm.duration));
  for (const b of ["vm-call", "vm-close"]) $(b).disabled = !(s.actions || []).length;
  try {     // the audio needs the token: fetched, then played from a blob
    const r = await fetch(vm.audio, {headers: {Authorization: "Bearer " + token}});
    if (r.ok) $("vm-audio").src = URL.createObjectURL(await r.blob());
  } catch (e) { $("error").textContent = "cannot load the message"; }
}
async function taskAction(body) {
  if (!current) return;
  const r = await fetch("/api/tasks/" + encodeURIComponent(current.call_id) + "/actions", {method: "POST",
    headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"}, body: JSON.stringify(body)});
  const j = await r.json();
  $("error").textContent = r.ok ? "" : j.message;
  if (r.ok) { $("vm-call").disabled = true; $("vm-close").disabled = true; $("vm").dataset.done = body.action; }
}
$("vm-call").onclick = () => taskAction({action: "call_back"});
$("vm-close").onclick = () => taskAction({action: "close", disposition: $("vm-disposition").value});
function showHistory(h) {
  list("history", h, (i) => new Date(i.at * 1000).toLocaleString() + " \u2014 " + (i.queue || "ivr") + " \u2014 " +
       (i.outcome || "") + (i.agent_id ? " (" + i.agent_id + ")" : ""));
}
function connect() {
  if (!token) { $("error").textContent = "open this page as /agent/<id>#token=<admin token>"; return; }
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
                     "/agent/" + encodeURIComponent(agentId) + "/ws");
  ws.onopen = () => { delay = 500; ws.send(JSON.stringify({auth: token})); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "agent") { showAgent(m); $("error").textContent = ""; }
    else if (m.type === "offer") showScreen(m.screen);
    else if (m.type === "screen") showScreen(m.screen);
    else if (m.type === "history") showHistory(m.history);
    else if (m.type === "error") $("error").textContent = m.message;
  };
  ws.onclose = (ev) => {
    $("agent-state").textContent = "disconnected"; $("agent-state").className = "";
    if (ev.code >= 4000) { $("error").textContent = ev.reason || "refused"; return; }   // auth/agent refused
    setTimeout(connect, delay); delay = Math.min(delay * 2, 10000);
  };
}
for (const b of document.querySelectorAll("button[data-action]")) {
  b.onclick = () => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const msg = {action: b.dataset.action};
    if (msg.action === "pause") msg.reason = $("reason").value;
    ws.send(JSON.stringify(msg));
  };
}
connect();
</script></body></html>
"""

def _agent_view(snap) -> dict[str, Any]:
    """An agent snapshot for the API, plus ``status``: what a supervisor should read at a glance. An agent
    whose phone is not registered cannot take a call whatever its state, so it is ``unregistered``, not
    ``available``; an available agent resting after a failed offer is ``resting``."""
    d = snap.as_dict()
    state = d["state"]
    d["status"] = ("unregistered" if not snap.registered and state != "logged_out"
                   else "resting" if snap.resting and state == "available" else state)
    return d


INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IVR / ACD server</title>
<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:50em}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>IVR / ACD server</h1>
<ul>
<li><a href="/wallboard">wallboard</a>: queues, waiting calls, agents, service level (live)</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics (see <code>docs/metrics.md</code>)</li>
<li><a href="/healthz">/healthz</a>: liveness and the ARI connection</li>
<li>admin API under <code>/api/</code>: send <code>Authorization: Bearer &lt;IVR_ADMIN_TOKEN&gt;</code>
(see <code>docs/api.md</code>)</li>
<!--AGENTS-->
</ul>
<p>An agent page asks for the token: open it as <code>/agent/&lt;id&gt;#token=&lt;IVR_ADMIN_TOKEN&gt;</code>.</p>
</body></html>
"""

WALLBOARD_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Wallboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:20px system-ui,sans-serif;margin:1em;background:#111;color:#eee}
table{border-collapse:collapse;width:100%}th,td{padding:.4em .8em;border-bottom:1px solid #444;text-align:right}
th:first-child{text-align:left}.bad{color:#ff7b7b}.ok{color:#8fe39a}#status{font-size:14px;color:#aaa}
</style></head><body>
<h1>Queues</h1>
<table><thead><tr><th>Queue</th><th>Waiting</th><th title="callbacks, web callback requests, voicemails waiting for an agent">Tasks</th><th>Oldest</th><th>Agents</th><th>Service level</th>
<th>Answered</th><th>Abandoned</th></tr></thead><tbody id="rows">
<!--ROWS-->
</tbody></table>
<p id="status"></p>
<script>
"use strict";
const short = {available: "avail", on_call: "talk", wrap_up: "wrap", paused: "pause", reserved: "ring"};
const mmss = (s) => Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
function set(id, v, cls) { const el = document.getElementById(id); if (el) { el.textContent = v; if (cls !== undefined) el.className = cls; } }
function row(q) {
  if (document.getElementById("wb-" + q.name + "-waiting")) return;
  const tr = document.createElement("tr"); const th = document.createElement("th"); th.textContent = q.name; tr.append(th);
  for (const k of ["waiting", "tasks", "oldest", "agents", "sl", "answered", "abandoned"]) {
    const td = document.createElement("td"); td.id = "wb-" + q.name + "-" + k; tr.append(td);
  }
  document.getElementById("rows").append(tr);
}
async function refresh() {
  try {
    const r = await fetch("/wallboard/data", {cache: "no-store"});
    const d = await r.json();
    for (const q of d.queues) {
      row(q);
      set("wb-" + q.name + "-waiting", q.waiting);
      set("wb-" + q.name + "-tasks", q.tasks_waiting === null ? "\u2013" : q.tasks_waiting);
      set("wb-" + q.name + "-oldest", mmss(q.oldest_wait));
      set("wb-" + q.name + "-agents", Object.keys(short).map((k) => short[k] + " " + (q.agents[k] || 0)).join(" "));
      const sl = q.service_level_pct;
      set("wb-" + q.name + "-sl", sl === null ? "\u2013" : Math.round(sl) + "%",
          sl === null ? "" : (sl >= q.service_level_target[0] ? "ok" : "bad"));
      set("wb-" + q.name + "-answered", q.answered);
      set("wb-" + q.name + "-abandoned", q.abandoned);
    }
    set("status", "updated " + new Date(d.time * 1000).toLocaleTimeString() + (d.ari_connected ? "" : " \u2014 ARI disconnected"));
  } catch (e) { set("status", "cannot reach the server"); }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
