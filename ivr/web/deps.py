"""What the web layer needs from the rest of the server, declared: `WebDeps` and the small protocols of its
parts. The web layer imports neither ``ivr.app`` nor ``ivr.calls``: the ACD service, the flow registry,
the storage, the CRM and the task glue are described here by the methods the routes call on them, and
whoever builds the server (``ivr.app``) hands the real objects over.

Config pieces are plain values. ``None`` means the part is not configured (no queues, no storage, ...):
the routes that need it answer as they always did (503 ``acd-disabled``, an empty list, no route).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..audit import AuditLog
from ..acd.queue import QueueConfig
from ..acd.views import AgentSnapshot, CallSnapshot, QueueSnapshot
from ..config import HttpConfig
from ..users import Accounts
from ..voicemail import Recordings, VoicemailRows
from .callbacks import TaskRequests
from .phone import PhoneOf
from .tasks import TaskActions, TaskQueries

#: an ACD listener: ``(kind, payload)`` with kind ``offer``, ``agent`` or ``call``; synchronous, cheap
AcdListener = Callable[[str, dict], None]


# ------------------------------------------------------------------------------------------ the ACD
class RouterView(Protocol):
    """The router's read-only queries (``ivr.acd.Router``)."""

    def queue_names(self) -> tuple[str, ...]: ...

    def agent_ids(self) -> tuple[str, ...]: ...

    def queue_snapshot(self, name: str) -> QueueSnapshot: ...

    def queue_estimate(self, name: str) -> float | None: ...

    def agent_snapshot(self, agent_id: str) -> AgentSnapshot: ...

    def agents_snapshot(self) -> tuple[AgentSnapshot, ...]: ...

    def call_snapshot(self, call_id: str) -> CallSnapshot: ...

    def queue_config(self, name: str) -> QueueConfig: ...

    def agent_skills(self, agent_id: str) -> Mapping[str, int]: ...


class ConfigEditor(Protocol):
    """Agents and queues changed at run time (``ivr.calls.live_config.LiveConfig``). Errors: the ACD's
    (``ConfigError``, ``UnknownAgent``, ``UnknownQueue``, ``DuplicateId``) and ``AgentBusy``,
    ``PhoneConflict``, ``QueueInUse``; ``AriError`` when Asterisk refused a phone (nothing changed)."""

    def agent_definition(self, agent_id: str) -> dict[str, Any]: ...

    def queue_definition(self, name: str) -> dict[str, Any]: ...

    async def create_agent(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def update_agent(self, agent_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]: ...

    async def delete_agent(self, agent_id: str) -> dict[str, Any]: ...

    async def create_queue(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def update_queue(self, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]: ...

    async def delete_queue(self, name: str) -> dict[str, Any]: ...


class AcdView(Protocol):
    """The ACD service (``ivr.calls.acd_service.AcdService``) as the web layer uses it."""

    @property
    def live_config(self) -> ConfigEditor | None: ...

    @property
    def router(self) -> RouterView: ...

    @property
    def calls(self) -> Container[str]:
        """The ids of the callers the ACD holds in a queue (or connected)."""
        ...

    @property
    def listeners(self) -> list[AcdListener]:
        """Notified of offers and agent/call changes; the web server adds itself while it runs."""
        ...

    def serving_agents(self, name: str) -> tuple[dict[str, int], dict[str, int]]: ...

    async def agent_action(self, agent_id: str, action: str, reason: str | None = None) -> None: ...

    async def update_agent(self, definition: dict) -> None: ...


# ------------------------------------------------------------------------------------- the flows
class FlowSetView(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def names(self) -> Sequence[str]: ...


class ReloadOutcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def version(self) -> str: ...

    def as_dict(self) -> dict: ...


class FlowsView(Protocol):
    """The flow registry (``ivr.calls.flows.FlowRegistry``)."""

    @property
    def current(self) -> FlowSetView | None: ...

    @property
    def default(self) -> str: ...

    @property
    def routes(self) -> Mapping[str, str]: ...

    @property
    def known_queues(self) -> set[str] | None: ...

    @property
    def last_result(self) -> ReloadOutcome | None: ...

    def reload(self) -> ReloadOutcome: ...


# ------------------------------------------------------------------------------------ the rest
class CallRecords(Protocol):
    """The call records of the storage (``ivr.storage.Storage``): rows with ``caller`` and ``extra``."""

    def recent_call_records(self, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...


class InteractionView(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class CallHistory(Protocol):
    """The CRM's interaction history, for the screen pop."""

    async def recent_interactions(self, e164: str, limit: int = 10) -> Sequence[InteractionView]: ...


class TaskBookView(TaskQueries, TaskRequests, Protocol):
    """The task book (``ivr.calls.task_book.TaskBook``): the task API reads it, web callbacks add to it."""


class TaskLegsView(TaskActions, Protocol):
    """The task glue (``ivr.calls.task_legs.TaskLegs``): agents' actions on tasks, and ``wake`` after a
    task was added."""

    def wake(self) -> None: ...


#: the live calls by channel id (``App.sessions``). A call's fields are read with ``getattr`` and a default
#: (flow_name, did, caller_raw, queue_name, agent_id, started_at, runner.visited_nodes): any object will do.
SessionsView = Mapping[str, object]


# ------------------------------------------------------------------------------------- WebDeps
@dataclass(frozen=True)
class WebDeps:
    http: HttpConfig                                   # bind address, port, admin token
    redacted_config: Callable[[], dict[str, Any]]      # GET /api/config (secrets masked)
    ari_connected: Callable[[], bool]
    render_metrics: Callable[[], bytes]                # GET /metrics: the Prometheus text (``Metrics.render``)
    #: the wallboard's task figures, {queue: {kind: {waiting, scheduled, oldest_wait}}} or None when they
    #: cannot be read (``TaskMetrics.waiting_by_queue``)
    tasks_waiting: Callable[[], dict[str, dict[str, dict[str, float]]] | None]
    sessions: SessionsView
    acd: AcdView | None = None                         # None: no queues configured
    flows: FlowsView | None = None
    records: CallRecords | None = None                 # None: no storage
    voicemails: VoicemailRows | None = None            # the voicemail API needs both these two
    recordings: Recordings | None = None
    task_book: TaskBookView | None = None              # the task API and web callbacks need both these two
    task_legs: TaskLegsView | None = None
    web_callbacks: Mapping[str, Any] | None = None     # the ``web_callbacks`` config section (parsed at start)
    crm: CallHistory | None = None
    audit: AuditLog | None = None                      # who changed what, every login (ivr/audit)
    accounts: Accounts | None = None                   # users, sessions, API tokens (ivr/users)
    phone_of: PhoneOf | None = None                    # agent id -> its browser phone (ivr/web/phone.py)
    phone_upstream: str = ""                           # Asterisk's SIP websocket, ws://<host>:<port>/ws

