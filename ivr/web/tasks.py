"""The task API (an agent: the tasks offered to or done by it; a supervisor: the tasks of their queues; an
admin: all): every callback, voicemail and web callback request with its state, its
history of transitions and the router's decisions about it (who it was offered to, when, why); the agent's
action on a voicemail; why a given agent is not chosen for a task (``GET /api/tasks/{id}/why-not/{agent}``,
the router's reasoning replayed by ``ivr.acd.why_not``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ..acd import Router, UnknownAgent, UnknownCall, why_not
from ..logsafe import mask_number
from ..tasks import Task, TaskKind, TaskState
from .errors import ApiError, bad_request, json_body, not_found
from .identity import Principal, Role, can_see_queue, forbidden, principal_of, require_queue_access

ACTION_FIELDS = frozenset({"action", "disposition"})


class TaskActions(Protocol):
    def action_refused(self, task_id: str, action: str) -> str | None: ...

    def request_action(self, task_id: str, action: str, disposition: str = "") -> None: ...


class TaskQueries(Protocol):
    def get(self, task_id: str) -> Task | None: ...

    def in_router(self, task_id: str) -> bool: ...

    def recent(self, *, state: TaskState | None = None, kind: TaskKind | None = None, queue: str | None = None,
               limit: int = 200) -> list[Task]: ...


@dataclass(frozen=True)
class TaskApi:
    book: TaskQueries
    actions: TaskActions
    #: the ACD's router, for why-not answers; None: the one of ``actions`` (``TaskLegs.deps.router``) if any
    router: Router | None = None

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/tasks", self.index)
        r.add_get("/api/tasks/{id}", self.one)
        r.add_post("/api/tasks/{id}/actions", self.act)
        r.add_get("/api/tasks/{id}/why-not/{agent_id}", self.why_not)

    def _task(self, request: web.Request) -> Task:
        """The URL's task, if the principal may see it (403 before 404 for a non-admin)."""
        p = principal_of(request)
        t = self.book.get(request.match_info["id"])
        if t is not None and can_see_task(p, t):
            return t
        if p.role is not Role.ADMIN:
            raise forbidden("this task is not yours")
        raise not_found("task", request.match_info["id"])

    def _router(self) -> Router | None:
        if self.router is not None:
            return self.router
        found = getattr(getattr(self.actions, "deps", None), "router", None)
        return found if isinstance(found, Router) else None

    async def why_not(self, request: web.Request) -> web.Response:
        """Why this agent is not chosen for this task now (``ivr.acd.why_not``), with the task's past
        decisions; a task that has ended is no longer routable: 409 ``task-not-routable`` with its decisions."""
        task_id, agent_id = request.match_info["id"], request.match_info["agent_id"]
        t = self.book.get(task_id)
        require_queue_access(request, t.queue if t is not None else None)
        if t is None:
            raise not_found("task", task_id)
        router = self._router()
        if router is None:
            raise ApiError(503, "routing-unavailable", "no ACD router to ask")
        if agent_id not in router.agent_ids():
            raise not_found("agent", agent_id)
        decisions = [d.as_dict() for d in t.decisions]
        if not t.open:
            raise ApiError(409, "task-not-routable", f"task {task_id} is {t.state.value}: it is no longer routed; "
                           f"details.decisions says who it was offered to, when and why",
                           {"task_id": task_id, "state": t.state.value, "outcome": t.outcome or None,
                            "agent_id": agent_id, "decisions": decisions,
                            "offered_to_agent": [d for d in decisions if d["agent_id"] == agent_id]})
        base = {"task_id": task_id, "agent_id": agent_id, "task_state": t.state.value, "queue": t.queue,
                "decisions": decisions}
        try:
            if not self.book.in_router(task_id):
                raise UnknownCall(task_id)
            answer = why_not(router, task_id, agent_id).as_dict()
        except UnknownCall:
            return web.json_response({**base, "routable": True, "in_router": False, "chosen": False,
                                      "reasons": [_held_back(t)]})
        except UnknownAgent:                      # removed meanwhile
            raise not_found("agent", agent_id) from None
        answer.pop("call_id", None)
        return web.json_response({**base, **answer, "routable": True, "in_router": True})

    async def act(self, request: web.Request) -> web.Response:
        """The agent's action on a voicemail they are listening to: ``call_back`` (the customer is dialled
        from the agent's line) or ``close`` with a ``disposition``."""
        task_id = self._task(request).id
        body = await json_body(request, ACTION_FIELDS)
        action, disposition = body.get("action"), body.get("disposition", "")
        if not isinstance(action, str) or not isinstance(disposition, str) or len(disposition) > 64 \
                or not disposition.isprintable():
            raise bad_request("invalid-request", "action is a string; disposition at most 64 printable characters")
        why = self.actions.action_refused(task_id, action)
        if why is not None:
            raise ApiError(409, "task-not-actionable", why)
        self.actions.request_action(task_id, action, disposition.strip())
        return web.json_response({"id": task_id, "action": action}, status=202)

    async def index(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            state = TaskState(q["state"]) if q.get("state") else None
            kind = TaskKind(q["kind"]) if q.get("kind") else None
            limit = max(1, min(int(q.get("limit", "200")), 1000))
        except ValueError:
            raise bad_request("invalid-request", "state, kind or limit is not valid") from None
        p = principal_of(request)
        tasks = [t for t in self.book.recent(state=state, kind=kind, queue=q.get("queue") or None, limit=limit)
                 if can_see_task(p, t)]
        return web.json_response({"tasks": [task_view(t) for t in tasks]})

    async def one(self, request: web.Request) -> web.Response:
        return web.json_response(task_view(self._task(request), history=True))


def can_see_task(p: Principal, t: Task) -> bool:
    """Admins every task, a supervisor those of their queues, an agent those offered to or done by it."""
    if p.role is Role.AGENT:
        return p.agent_id is not None and p.agent_id in (t.agent_id, t.assigned_agent)
    return can_see_queue(p, t.queue)


def task_view(t: Task, history: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": t.id, "kind": t.kind.value, "queue": t.queue, "state": t.state.value, "number": mask_number(t.number or ""),
        "name": t.name, "position_time": t.position_time, "created_at": t.created_at, "not_before": t.not_before,
        "not_after": t.not_after, "attempts": t.attempts, "max_attempts": t.max_attempts, "agent_id": t.agent_id,
        "assigned_agent": t.assigned_agent, "outcome": t.outcome or None}
    if history:
        d["history"] = [h.as_dict() for h in t.history]
        d["decisions"] = [x.as_dict() for x in t.decisions]
    return d


def _held_back(t: Task) -> dict[str, Any]:
    """The reason of an open task that is not in the router (held back until a time, or between steps)."""
    if t.state is TaskState.WAITING and t.not_before is not None:
        at = dt.datetime.fromtimestamp(t.not_before, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        why = "a retry after a failed attempt to reach the customer" if t.attempts else "a request for later"
        return {"code": "held_back", "message": f"the task waits until {at} ({why}): no agent is chosen before",
                "details": {"not_before": t.not_before, "attempts": t.attempts}}
    return {"code": "not_in_router", "message": f"the task is {t.state.value} and not in the router now: it goes "
                                                f"back at its next step"}



