"""The book of tasks other than live calls (callbacks, voicemails, web callback requests): the one owner
of their state in the app. It keeps the store's copy current on every transition, knows which tasks are
in the router and when the held-back ones (scheduled, or retried after a busy customer) are due, and
reloads what a previous process left (an offer or a connection in flight goes back to its place).

No I/O but the store's; no ARI. The glue asks it what to enqueue (``release_due``), what to withdraw
(``expire_overdue``) and when to ask again (``next_wakeup``), and reports what happened on the phones.

Times: tasks carry wall-clock times (they outlive the process); the router runs on a monotonic clock.
``router_call`` converts a task's position time into the router's clock, so a callback keeps its place
among the callers of its queue.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ..acd import Call
from ..logsafe import mask_number
from ..tasks import CALLBACK_KINDS, NewTask, Task, TaskKind, TaskState, TaskStore
from ..tasks.policy import CallbackPolicy

log = logging.getLogger(__name__)

#: How long an assigned task waits for its one agent (router-clock seconds: "for good").
ASSIGNED_FOREVER = 10.0 ** 9


class TaskBook:
    def __init__(self, store: TaskStore, policy: CallbackPolicy, *, wall_clock: Callable[[], float],
                 router_clock: Callable[[], float], new_id: Callable[[], str] | None = None) -> None:
        self._store = store
        self.policy = policy
        self._wall = wall_clock
        self._router_clock = router_clock
        self._new_id = new_id or (lambda: f"task-{secrets.token_hex(6)}")
        self._open: dict[str, Task] = {}
        self._in_router: set[str] = set()
        #: called with (before, after) on every change: a new task (before None), a transition, an update
        #: by a second request (metrics, the agent pages, the CRM history); a listener that raises is logged.
        #: ``start`` reports each reloaded task as (as stored, as reloaded): the same object when nothing
        #: changed, else the transition back to its place (an offer or a connection cut by the restart)
        self.listeners: list[Callable[[Task | None, Task], None]] = []

    # ------------------------------------------------------------------------------ queries
    def get(self, task_id: str) -> Task | None:
        return self._open.get(task_id) or self._store.get(task_id)

    def owns(self, call_id: str) -> bool:
        """Is this router call id one of the book's tasks?"""
        return call_id in self._open

    def recent(self, *, state: TaskState | None = None, kind: TaskKind | None = None, queue: str | None = None,
               limit: int = 200) -> list[Task]:
        """Tasks of any state from the store, the newest first (for the API)."""
        return self._store.tasks(state=state, kind=kind, queue=queue, limit=limit)

    def open_tasks(self) -> list[Task]:
        return sorted(self._open.values(), key=lambda t: (t.queue, t.position_time, t.id))

    def in_router(self, task_id: str) -> bool:
        return task_id in self._in_router

    def next_wakeup(self) -> float | None:
        """Wall-clock time at which ``release_due`` / ``expire_overdue`` have something to do, or None."""
        times = []
        for t in self._open.values():
            if t.state is TaskState.WAITING and t.id not in self._in_router and t.not_before is not None:
                times.append(t.not_before)
            if t.not_after is not None and t.state is TaskState.WAITING:
                times.append(t.not_after)
        return min(times, default=None)

    def router_call(self, task: Task) -> tuple[Call, float]:
        """The router's view of a task, and the router-clock time it took its place."""
        now_r, now_w = self._router_clock(), self._wall()
        call = Call(task.id, task.queue, priority=task.priority, extra_skills=dict(task.required_skills),
                    optional_skills=dict(task.optional_skills), kind=task.kind,
                    preferred_agent=task.assigned_agent,
                    preferred_until=None if task.assigned_agent is None else now_r + ASSIGNED_FOREVER,
                    caller={"number": task.number or "", "name": task.name})
        return call, now_r - max(0.0, now_w - task.position_time)

    # ------------------------------------------------------------------------------ changes
    def start(self) -> list[Task]:
        """Load what a previous process left: every open task, offers and connections in flight sent back
        to their place. Returns them (the glue enqueues the due ones through ``release_due``)."""
        now = self._wall()
        self._open.clear()
        self._in_router.clear()
        for t in self._store.open_tasks():
            back = t.interrupted(now)
            if back is not t:
                self._store.save(back)
                log.info("task %s: %s interrupted by the restart, back at its place", t.id, t.state.value)
            self._open[t.id] = back
            self._changed(t, back)
        if self._open:
            log.info("%d open task(s) reloaded", len(self._open))
        return self.open_tasks()

    def add(self, req: NewTask) -> Task:
        """Store a new task; for a callback to a number that already has an open one in that queue, the
        first is updated instead (its earlier place kept) and returned."""
        return self.request(req)[0]

    def request(self, req: NewTask) -> tuple[Task, bool]:
        """``add``, and whether a new task was made (False: an open one was updated)."""
        now = self._wall()
        task = Task(id=self._new_id(), kind=req.kind, queue=req.queue, created_at=now,
                    position_time=min(now, req.position_time) if req.position_time is not None else now,
                    required_skills=dict(req.required_skills), optional_skills=dict(req.optional_skills),
                    priority=req.priority, number=req.number, name=req.name, customer=dict(req.customer),
                    not_before=req.not_before, not_after=req.not_after, max_attempts=self.policy.max_attempts,
                    assigned_agent=req.assigned_agent, source=req.source)
        before = self._open.get(stored_id) if (stored_id := self._store_key_owner(task)) else None
        stored = self._store.add(task, now)
        self._open[stored.id] = stored
        self._changed(before, stored)
        if stored.id != task.id:
            log.info("task %s: a new %s request for %s updates it", stored.id, req.kind.value,
                     mask_number(req.number or ""))
        else:
            log.info("task %s: %s for %s in queue %s", task.id, req.kind.value, mask_number(req.number or ""),
                     req.queue)
        return stored, stored.id == task.id

    def release_due(self) -> list[Task]:
        """Waiting tasks that are due and not in the router: the glue enqueues each (marked in it now)."""
        now = self._wall()
        due = [t for t in self.open_tasks() if t.id not in self._in_router and t.due(now)]
        self._in_router.update(t.id for t in due)
        return due

    def expire_overdue(self) -> list[Task]:
        """Waiting tasks whose window closed unserved: ended as expired. Returns those the glue must take
        out of the router."""
        now = self._wall()
        out = []
        for t in list(self._open.values()):
            if t.state is TaskState.WAITING and t.overdue(now):
                if t.id in self._in_router:
                    out.append(t)
                self._end(t.expired(now))
                log.info("task %s expired unserved (window closed)", t.id)
        return out

    def offered(self, task_id: str, agent_id: str, why: str = "",
                explanation: Mapping[str, Any] | None = None) -> Task | None:
        """The router offered it to ``agent_id``: ``why`` in one line (the history), ``explanation`` the
        router's whole one (``Offer.explanation.as_dict()``); both kept with the task as a routing
        decision (``Task.decisions``, the store, ``GET /api/tasks/{id}``)."""
        return self._move(task_id, lambda t, now: t.offer(agent_id, now, why, explanation))

    def agent_missed(self, task_id: str, reason: str) -> Task | None:
        """The agent did not take it; the router has put it back at its place (still in the router)."""
        return self._move(task_id, lambda t, now: t.agent_missed(now, reason)
                          if t.state is TaskState.OFFERED else t)

    def agent_answered(self, task_id: str) -> Task | None:
        return self._move(task_id, lambda t, now: t.agent_answered(now))

    def agent_dropped(self, task_id: str) -> Task | None:
        """The agent hung up before the customer answered: back at its place (the glue ends its turn in
        the router; ``release_due`` puts it back)."""
        self._in_router.discard(task_id)
        return self._move(task_id, lambda t, now: t.back_to_place(now, "agent hung up before the customer "
                                                                         "answered")
                          if t.state in (TaskState.OFFERED, TaskState.CONNECTING) else t)

    def customer_answered(self, task_id: str) -> Task | None:
        return self._move(task_id, lambda t, now: t.customer_answered(now))

    def customer_failed(self, task_id: str, reason: str) -> Task | None:
        """Busy / no answer / rejected: retried after ``retry_delay`` while attempts remain, else failed.
        Either way it has left the router (the glue ended its conversation there)."""
        self._in_router.discard(task_id)
        return self._move(task_id, lambda t, now: t.customer_failed(now, reason, self.policy.retry_delay))

    def closed(self, task_id: str, outcome: str) -> Task | None:
        """Handled without a dial-out (a voicemail closed with a disposition)."""
        self._in_router.discard(task_id)
        return self._move(task_id, lambda t, now: t.closed(now, outcome))

    def cancel(self, task_id: str, reason: str) -> Task | None:
        """Withdrawn (by the customer, an admin). The glue takes it out of the router if ``in_router``."""
        return self._move(task_id, lambda t, now: t.cancelled(now, reason))

    def left_router(self, task_id: str) -> None:
        self._in_router.discard(task_id)

    # ----------------------------------------------------------------------------- helpers
    def _move(self, task_id: str, step: Callable[[Task, float], Task]) -> Task | None:
        t = self._open.get(task_id)
        if t is None:
            return None
        new = step(t, self._wall())
        if new is t:
            return t
        if new.open:
            self._store.save(new)
            self._open[task_id] = new
            self._changed(t, new)
        else:
            self._end(new, t)
        return new

    def _end(self, t: Task, before: Task | None = None) -> None:
        self._store.save(t)
        before = before or self._open.get(t.id)
        self._open.pop(t.id, None)
        self._in_router.discard(t.id)
        self._changed(before, t)

    def _store_key_owner(self, task: Task) -> str | None:
        """The open task a callback request for this number and queue would update, if any."""
        if task.kind not in CALLBACK_KINDS or not task.number:
            return None
        for t in self._open.values():
            if t.kind in CALLBACK_KINDS and t.queue == task.queue and t.number == task.number:
                return t.id
        return None

    def _changed(self, before: Task | None, after: Task) -> None:
        for fn in list(self.listeners):
            try:
                fn(before, after)
            except Exception:
                log.exception("task listener failed")
