"""Who is asking: the `Principal` the auth middleware (ivr/web/auth.py) puts on every request, and the checks
routes make on it. Roles:

* ``agent``: their own agent only (page, state, screen pop, websocket, their tasks).
* ``supervisor``: the queues they are given and the agents serving those queues (read, state changes).
* ``admin``: everything (users, configuration, flows, audit log).

Routes call `require_role` / `require_agent_access` / `require_queue_access`; they never read headers or
cookies themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from aiohttp import web

from .errors import ApiError


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    agent_id: str | None = None                          # the agent this user is (role agent)
    queues: frozenset[str] = field(default_factory=frozenset)   # a supervisor's queues
    via: str = "session"                                 # session | token | bootstrap

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return self.username if self.via != "bootstrap" else "bootstrap-token"


PRINCIPAL_KEY = web.RequestKey("ivr_principal", Principal)


#: the environment's admin token while no admin user exists (docs/api.md, the bootstrap rule)
BOOTSTRAP = Principal("bootstrap", Role.ADMIN, via="bootstrap")


def unauthenticated() -> ApiError:
    return ApiError(401, "unauthorized", "log in or send a valid API token")


def forbidden(message: str = "your role does not allow this") -> ApiError:
    return ApiError(403, "forbidden", message)


def principal_of(request: web.Request) -> Principal:
    """The request's principal; 401 ``unauthorized`` when nobody is logged in."""
    p = request.get(PRINCIPAL_KEY)
    if not isinstance(p, Principal):
        raise unauthenticated()
    return p


def require_role(request: web.Request, *roles: Role) -> Principal:
    """The principal, if its role is one of `roles` (admin is always allowed); else 403 ``forbidden``."""
    p = principal_of(request)
    if p.role is Role.ADMIN or p.role in roles:
        return p
    raise forbidden()


def can_see_queue(p: Principal, queue: str | None) -> bool:
    """Admins see every queue, supervisors the queues they are given, agents none through the API."""
    return p.role is Role.ADMIN or (p.role is Role.SUPERVISOR and queue is not None and queue in p.queues)


def can_see_agent(p: Principal, agent_id: str, agent_queues: Iterable[str] = ()) -> bool:
    """Admins every agent; an agent user itself; a supervisor the agents serving one of their queues."""
    if p.role is Role.ADMIN:
        return True
    if p.role is Role.AGENT:
        return p.agent_id is not None and p.agent_id == agent_id
    return any(q in p.queues for q in agent_queues)


def require_queue_access(request: web.Request, queue: str | None) -> Principal:
    """403 ``forbidden`` unless the principal may see and act on `queue`."""
    p = principal_of(request)
    if not can_see_queue(p, queue):
        raise forbidden("this queue is not yours")
    return p


def require_agent_access(request: web.Request, agent_id: str, agent_queues: Iterable[str] = ()) -> Principal:
    """403 ``forbidden`` unless the principal may see and act on agent `agent_id` (whose queues are
    `agent_queues`; only a supervisor's check needs them)."""
    p = principal_of(request)
    if not can_see_agent(p, agent_id, agent_queues):
        raise forbidden("this agent is not yours")
    return p
