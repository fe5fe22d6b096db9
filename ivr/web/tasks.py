"""The task API (admin token): every callback, voicemail and web callback request with its state and its
history of transitions; cancelling one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ..logsafe import mask_number
from ..tasks import Task, TaskKind, TaskState
from .errors import ApiError, bad_request, json_body, not_found

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

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/tasks", self.index)
        r.add_get("/api/tasks/{id}", self.one)
        r.add_post("/api/tasks/{id}/actions", self.act)

    async def act(self, request: web.Request) -> web.Response:
        """The agent's action on a voicemail they are listening to: ``call_back`` (the customer is dialled
        from the agent's line) or ``close`` with a ``disposition``."""
        task_id = request.match_info["id"]
        if self.book.get(task_id) is None:
            raise not_found("task", task_id)
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
        tasks = self.book.recent(state=state, kind=kind, queue=q.get("queue") or None, limit=limit)
        return web.json_response({"tasks": [task_view(t) for t in tasks]})

    async def one(self, request: web.Request) -> web.Response:
        t = self.book.get(request.match_info["id"])
        if t is None:
            raise not_found("task", request.match_info["id"])
        return web.json_response(task_view(t, history=True))


def task_view(t: Task, history: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": t.id, "kind": t.kind.value, "queue": t.queue, "state": t.state.value, "number": mask_number(t.number or ""),
        "name": t.name, "position_time": t.position_time, "created_at": t.created_at, "not_before": t.not_before,
        "not_after": t.not_after, "attempts": t.attempts, "max_attempts": t.max_attempts, "agent_id": t.agent_id,
        "assigned_agent": t.assigned_agent, "outcome": t.outcome or None}
    if history:
        d["history"] = [h.as_dict() for h in t.history]
    return d



