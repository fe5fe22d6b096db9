"""Who is asking: the `Principal` the auth middleware (ivr/web/auth.py) puts on every request, and the checks
routes make on it. Roles:

* ``agent``: their own agent only (page, state, screen pop, websocket, their tasks).
* ``supervisor``: the queues they are given and the agents serving those queues (read, state changes).
* ``admin``: everything (users, configuration, flows, audit log).

Routes call `require_role` / `require_agent_access` / `require_queue_access`; they never read headers or
cookies themselves.
"""

from __future__ import annotations

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


PRINCIPAL_KEY = "ivr_principal"


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
