"""The HTTP edge: health, metrics, the admin API, the agent page (screen pop over a websocket), the wallboard.

* `/healthz`, `/metrics`, `/wallboard`, `/wallboard/data`, `/login` and the pages' HTML need no login (the
  server binds loopback by default; none of them shows a phone number or a secret).
* Who asks is decided by ivr/web/auth.py (session cookie, per-user API tokens, the bootstrap admin token)
  and every route checks the role (ivr/web/identity.py); docs/api.md has the table.
* Every error is JSON `{"error_id", "message"[, "details"]}` with a stable `error_id` (see docs/api.md);
  a bug gives 500 `internal-error` with no traceback in the body (it goes to the log).

This module is the wiring: the server's lifecycle, the middlewares (errors, auth) and which routes are
served. The routes live by concept in ivr/web (wallboard.py, admin.py, agents.py, live.py, tasks.py,
voicemail.py, callbacks.py), the pages in ivr/web/pages/, and everything they need from the rest of the
server is declared in `WebDeps` (ivr/web/deps.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..tasks.policy import WebCallbackPolicy
from . import admin_page, static
from .admin import AdminApi
from .agents import AgentApi
from .auth import Auth
from .callbacks import WebCallbacks
from .deps import WebDeps
from .errors import ApiError
from .live import AgentClient, AgentLive
from .phone import PhoneApi
from .queues import QueueApi
from .tasks import TaskApi
from .users import UsersApi
from .voicemail import VoicemailApi
from .wallboard import Wallboard

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024                 # request bodies (client_max_size)
LINGER_SECONDS = 1.0                 # how long the rest of a refused body is read and dropped

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
APP_KEY = web.AppKey("ivr_web", object)


class WebServer:
    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.auth = Auth(deps.accounts, deps.http.admin_token, deps.audit)     # who asks (ivr/web/auth.py)
        self.agents = AgentApi(deps.acd, deps.audit)
        self.live = AgentLive(self.agents, deps.acd, deps.crm, self.auth.token_principal)
        self.admin = AdminApi(deps.acd, deps.sessions, deps.flows, deps.records, deps.redacted_config)
        self.wallboard = Wallboard(deps.acd, deps.ari_connected, deps.render_metrics, deps.tasks_waiting)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None                     # the bound port once started

    @property
    def clients(self) -> dict[str, set[AgentClient]]:
        """The agents' open websockets, by agent id."""
        return self.live.clients

    @property
    def screens(self) -> dict[str, dict[str, Any]]:
        """The agents' current screen pops, by agent id."""
        return self.live.screens

    # ------------------------------------------------------------------------------- lifecycle
    def make_app(self) -> web.Application:
        d = self.deps
        wa = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors, self.auth.middleware])
        wa[APP_KEY] = self
        r = wa.router
        self.auth.add_routes(r)             # /login, /api/login, /api/logout, /api/me
        if d.accounts is not None:          # /api/users..., /api/audit
            UsersApi(d.accounts, d.audit, self.agents.agent_ids, self.admin.queue_names).add_routes(r)
        self.wallboard.add_routes(r)        # /, /healthz, /metrics, /wallboard, /wallboard/data
        self.admin.add_routes(r)            # /api/queues, /api/calls, /api/flows, /api/config, /api/records
        self.agents.add_routes(r)           # /api/agents
        QueueApi(d.acd, d.audit).add_routes(r)     # POST/PUT/DELETE /api/queues, definitions
        self.live.add_routes(r)             # /api/agents/{id}/screen, /agent/{id}, /agent/{id}/ws
        admin_page.add_routes(r)            # /admin
        if d.voicemails is not None and d.recordings is not None:
            VoicemailApi(d.voicemails, d.recordings, self.live.may_hear).add_routes(r)
        book, legs = d.task_book, d.task_legs
        if book is not None and legs is not None:
            TaskApi(book, legs).add_routes(r)
            policy = WebCallbackPolicy.from_dict(d.web_callbacks or {})
            if policy.topics:
                WebCallbacks(policy, book, wake=legs.wake, estimate=self.admin.queue_estimate).add_routes(r)
        static.add_routes(r)                # /static/jssip.min.js, /static/softphone.js
        if d.phone_of is not None and d.phone_upstream:
            phones = PhoneApi(d.phone_of, d.phone_upstream)
            phones.add_routes(r)            # /api/me/phone, /api/me/phone/ws (docs/webrtc.md)
            wa.on_cleanup.append(lambda _wa: phones.close())
        wa.on_shutdown.append(self._on_shutdown)
        self.live.listen()
        return wa

    async def start(self) -> None:
        h = self.deps.http
        # lingering: after refusing a body (413) read and drop the rest for at most 1 s, not aiohttp's 10 s
        self._runner = web.AppRunner(self.make_app(), access_log=None, lingering_time=LINGER_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, h.bind_address, h.port)
        await site.start()
        addrs = self._runner.addresses
        self.port = addrs[0][1] if addrs else h.port
        if not h.admin_token and (self.deps.accounts is None or not self.deps.accounts.store.users()):
            log.warning("no users and no http.admin_token: nobody can use the API")
        log.info("http listening on %s:%s", h.bind_address, self.port)

    async def stop(self) -> None:
        self.live.unlisten()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.live.cancel_tasks()

    async def _on_shutdown(self, _wa: web.Application) -> None:
        await self.live.close_clients()

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
