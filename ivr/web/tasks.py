"""The task API (admin token): every callback, voicemail and web callback request with its state and its
history of transitions; cancelling one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ..logsafe import mask_number
from ..tasks import Task, TaskKind, TaskState
from .errors import bad_request, not_found


class TaskQueries(Protocol):
    def get(self, task_id: str) -> Task | None: ...

    def in_router(self, task_id: str) -> bool: ...

    def recent(self, *, state: TaskState | None = None, kind: TaskKind | None = None, queue: str | None = None,
               limit: int = 200) -> list[Task]: ...


@dataclass(frozen=True)
class TaskApi:
    book: TaskQueries

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/tasks", self.index)
        r.add_get("/api/tasks/{id}", self.one)

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



