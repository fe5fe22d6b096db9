"""Queue definitions through the API (the queues' live views, GET /api/queues, are in admin.py):

* ``GET /api/queues/{name}/definition``: admin, or a supervisor of that queue.
* ``POST /api/queues``, ``PUT /api/queues/{name}``, ``DELETE /api/queues/{name}``: admin. Live (callers
  already waiting get the new definition, ivr/acd/reconfig.py), kept in the store, in the audit log
  (``queue.create``, ``queue.update``, ``queue.delete``). A queue in use is not removed: 409
  ``queue-in-use`` with ``details.in_use`` (callers, agents, overflows, flows, config, tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..audit import AuditLog
from .agents import require_acd
from .config_input import check_queue_definition, config_error, editor_of
from .deps import AcdView
from .errors import bad_request, json_body, not_found
from .identity import Role, require_queue_access, require_role


@dataclass(frozen=True)
class QueueApi:
    acd: AcdView | None
    audit: AuditLog | None = None

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/api/queues", self.create)
        r.add_put("/api/queues/{name}", self.update)
        r.add_delete("/api/queues/{name}", self.delete)
        r.add_get("/api/queues/{name}/definition", self.definition)

    def _known(self, name: str) -> None:
        if name not in require_acd(self.acd).router.queue_names():
            raise not_found("queue", name)

    async def definition(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        require_queue_access(request, name)
        self._known(name)
        return web.json_response({"definition": editor_of(self.acd).queue_definition(name)})

    async def create(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.ADMIN)
        editor = editor_of(self.acd)
        body = await json_body(request)
        check_queue_definition(body, creating=True)
        try:
            after = await editor.create_queue(body)
        except Exception as e:
            raise config_error("queue", e) from None
        self._audit(request, p.actor, "queue.create", str(body["name"]), None, after)
        return web.json_response({"definition": after}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        """Replace the queue's definition (keys not given take their defaults, like in config/ivr.yaml)."""
        name = request.match_info["name"]
        p = require_role(request, Role.ADMIN)
        editor = editor_of(self.acd)
        self._known(name)
        body = await json_body(request)
        if body.get("name", name) != name:
            raise bad_request("invalid-request", "the body's name must match the URL")
        check_queue_definition(body, creating=False)
        try:
            before, after = await editor.update_queue(name, body)
        except Exception as e:
            raise config_error("queue", e) from None
        self._audit(request, p.actor, "queue.update", name, before, after)
        return web.json_response({"definition": after})

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        p = require_role(request, Role.ADMIN)
        editor = editor_of(self.acd)
        self._known(name)
        try:
            before = await editor.delete_queue(name)
        except Exception as e:
            raise config_error("queue", e) from None
        self._audit(request, p.actor, "queue.delete", name, before, None)
        return web.Response(status=204)

    def _audit(self, request: web.Request, actor: str, action: str, name: str, before: Any, after: Any) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, f"queue:{name}", before=before, after=after, address=request.remote)
