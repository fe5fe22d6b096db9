"""The rest of the admin API: queues, live calls and call records (supervisors: their queues; admins: all),
flows and the config (admins). The agent routes are in ivr/web/agents.py, tasks and voicemails in their own modules."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..acd.errors import AcdError
from ..logsafe import mask_number
from .agents import require_acd
from .deps import AcdView, CallRecords, FlowsView, SessionsView
from .errors import ApiError, bad_request, json_body, not_found
from .identity import Role, can_see_queue, require_queue_access, require_role

VALIDATE_FIELDS = frozenset({"file", "text"})


@dataclass(frozen=True)
class AdminApi:
    acd: AcdView | None
    sessions: SessionsView
    flows: FlowsView | None
    records: CallRecords | None
    redacted_config: Callable[[], dict[str, Any]]

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/queues", self.queues)
        r.add_get("/api/queues/{name}", self.queue)
        r.add_get("/api/calls", self.calls)
        r.add_get("/api/flows", self.flows_index)
        r.add_post("/api/flows/validate", self.flows_validate)
        r.add_post("/api/flows/reload", self.flows_reload)
        r.add_get("/api/config", self.config)
        r.add_get("/api/records", self.call_records)

    # ------------------------------------------------------------------------------------ queues
    def queue_names(self) -> tuple[str, ...]:
        return self.acd.router.queue_names() if self.acd is not None else ()

    def queue_estimate(self, name: str) -> float | None:
        """The estimated wait of queue `name` now (None: no such queue or no estimate)."""
        acd = self.acd
        if acd is None or name not in acd.router.queue_names():
            return None
        return acd.router.queue_estimate(name)

    def _queue_view(self, name: str) -> dict[str, Any]:
        acd = require_acd(self.acd)
        if name not in acd.router.queue_names():
            raise not_found("queue", name)
        snap = acd.router.queue_snapshot(name)
        d = snap.as_dict()
        d["stats"]["service_level_pct"] = snap.stats.service_level_pct
        for c in d["calls"]:
            s = self.sessions.get(c["call_id"])
            c["caller"] = mask_number(getattr(s, "caller_raw", None)) if s is not None else None
        return d

    async def queues(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.SUPERVISOR)
        if self.acd is None:
            return web.json_response({"queues": []})
        return web.json_response({"queues": [self._queue_view(n) for n in self.acd.router.queue_names()
                                             if can_see_queue(p, n)]})

    async def queue(self, request: web.Request) -> web.Response:
        require_queue_access(request, request.match_info["name"])
        return web.json_response(self._queue_view(request.match_info["name"]))

    # ------------------------------------------------------------------------------------- calls
    async def calls(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.SUPERVISOR)
        now = time.time()
        out = []
        for cid, s in list(self.sessions.items()):
            if not can_see_queue(p, getattr(s, "queue_name", None)):
                continue
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
        acd = self.acd
        if acd is None or call_id not in acd.calls:
            return None
        try:
            snap = acd.router.call_snapshot(call_id)
        except AcdError:            # gone between the two looks
            return None
        return {"queue": snap.queue, "state": snap.state.value, "position": snap.position,
                "wait": round(snap.wait, 1), "estimated_wait": snap.estimated_wait,
                "overflowed_from": list(snap.overflowed_from), "note": snap.note}

    # ------------------------------------------------------------------------------------- flows
    def _flows(self) -> FlowsView:
        if self.flows is None:
            raise ApiError(503, "flows-disabled", "no flow registry loaded")
        return self.flows

    async def flows_index(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        reg = self._flows()
        cur = reg.current
        return web.json_response({
            "version": cur.version if cur else None, "flows": list(cur.names) if cur else [],
            "default": reg.default, "routes": reg.routes,
            "last_reload": reg.last_result.as_dict() if reg.last_result else None})

    async def flows_validate(self, request: web.Request) -> web.Response:
        from ..flow import load_flow_text
        require_role(request, Role.ADMIN)
        body = await json_body(request, VALIDATE_FIELDS)
        text, file = body.get("text"), body.get("file", "flow.yaml")
        if not isinstance(text, str):
            raise bad_request("invalid-request", "'text' (the flow YAML) is required and must be a string")
        if (not isinstance(file, str) or not file or len(file) > 128 or "/" in file or "\\" in file
                or file in (".", "..") or not file.isprintable()):
            raise bad_request("invalid-request", "'file' must be a plain file name")
        known = self.flows.known_queues if self.flows is not None else None
        _flow, diags = load_flow_text(text, file=file, known_queues=known)
        errors = [str(d) for d in diags if d.is_error]
        warnings = [d.format() for d in diags if not d.is_error]
        return web.json_response({"ok": not errors, "errors": errors, "warnings": warnings})

    async def flows_reload(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        result = self._flows().reload()
        if not result.ok:
            raise ApiError(422, "flow-invalid", f"reload refused; version {result.version or '-'} stays in service",
                           details=result.as_dict())
        return web.json_response(result.as_dict())

    # ---------------------------------------------------------------------------- config, records
    async def config(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        return web.json_response(self.redacted_config())

    async def call_records(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.SUPERVISOR)
        if request.query.get("queue"):
            require_queue_access(request, request.query["queue"])
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise bad_request("invalid-request", "limit must be an integer") from None
        limit = max(1, min(limit, 1000))
        queue = request.query.get("queue") or None
        st = self.records
        if st is None:
            return web.json_response({"records": []})
        rows = [r for r in st.recent_call_records(queue, limit) if can_see_queue(p, r.get("queue"))]
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
