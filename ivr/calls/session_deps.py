"""What a caller's flow session needs from the rest of the app, declared (``App.session_deps`` builds it
once), and the tasks a caller leaves behind (a callback, a voicemail to return) built from its session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ari import AriClient, Event
from ..flow import Enqueue
from ..tasks import NewTask, TaskKind
from .clock import Clock, LoopClock
from .task_book import TaskBook
from .transfer import TransferLegs


class QueueService(Protocol):
    """The ACD as a flow sees it."""

    async def enqueue(self, session: Any, cmd: Enqueue) -> None: ...

    async def caller_gone(self, session: Any) -> None: ...


class TaskWaker(Protocol):
    def wake(self) -> None: ...


@dataclass(frozen=True)
class SessionDeps:
    """What a caller's flow needs from the rest of the app (``App.session_deps`` builds it once)."""

    ari: AriClient
    submit: Callable[[Event], None]              # the dispatcher: events in this call's order
    metrics: Any = None                          # ``ivr.metrics.Metrics``
    crm: Any = None                              # ``lookup_caller`` / ``record_interaction``
    routing: Any = None                          # CRM routing rules: ``hints(result)``
    storage: Any = None                          # ``add_voicemail``
    acd: QueueService | None = None
    task_book: TaskBook | None = None
    task_legs: TaskWaker | None = None
    transfer_legs: TransferLegs = field(default_factory=TransferLegs)
    extensions: Mapping[str, Any] = field(default_factory=dict)
    phones: tuple[str, ...] = ()                 # agents' endpoints (a transfer to an agent's phone)
    trunks: Mapping[str, Any] = field(default_factory=dict)
    voicemail_queues: Mapping[str, str] = field(default_factory=dict)   # mailbox -> queue (voicemail tasks)
    region: str = "GB"                           # numbers typed without a country code
    clock: Clock = field(default_factory=LoopClock)


def task_request(kind: TaskKind, queue: str, number: str | None, source: str, *,
                 joined: tuple[Enqueue, float] | None, hints: Any, crm_result: Any, name: str) -> NewTask:
    """A task at the caller's place in ``queue`` when they waited there (``joined``: the queue node and its
    join time; skills and priority with the CRM's hints), else at the back of it; with the customer card."""
    node, at = joined if joined is not None else (None, None)
    same = node is not None and node.queue == queue
    extra = dict(node.required_skills) if same and node is not None else {}
    if same and hints is not None:
        for s, lv in hints.extra_skills.items():
            extra[s] = max(lv, extra.get(s, 0))
    c = getattr(crm_result, "customer", None)
    return NewTask(kind, queue, number=number, name=name, customer=customer_card(c) or {},
                   required_skills=extra,
                   optional_skills=dict(node.optional_skills) if same and node is not None else {},
                   priority=node.priority if same and node is not None else 0, position_time=at if same else None,
                   source=source)


def customer_card(c: Any) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"customer_id": c.customer_id, "name": c.name, "account_id": c.account_id, "tier": c.tier,
            "language": c.language, "preferred_agent": c.preferred_agent, "notes": c.notes,
            "open_tickets": [t.as_dict() for t in c.open_tickets]}
