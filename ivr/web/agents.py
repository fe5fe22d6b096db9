"""The agent routes of the API: list, read, change state (an agent user: itself; a supervisor: the agents of
their queues; an admin: all); create, replace and remove an agent's definition (admin; read by its
supervisors too), live and kept in the store (ivr/calls/live_config.py), every change in the audit log. The
agent websocket (ivr/web/live.py) acts through the same `AgentApi.action`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..acd.errors import AcdError, ConfigError, UnknownAgent
from ..acd.policy import requirement_at
from ..acd.views import AgentSnapshot
from ..audit import AuditLog
from .config_input import check_agent_definition, config_error, editor_of
from .deps import AcdView
from .errors import ApiError, bad_request, json_body, not_found
from .identity import Principal, Role, can_see_agent, principal_of, require_agent_access, require_role

AGENT_ACTIONS = ("login", "logout", "pause", "unpause", "available", "end_wrap_up")
ACTION_FIELDS = frozenset({"action", "reason"})      # a state change body / websocket message
AGENT_NAME_MAX = 64
PAUSE_REASONS = ("break", "lunch", "meeting", "training", "coaching", "admin", "other")


def require_acd(acd: AcdView | None) -> AcdView:
    if acd is None:
        raise ApiError(503, "acd-disabled", "no queues configured")
    return acd


@dataclass(frozen=True)
class AgentApi:
    acd: AcdView | None
    audit: AuditLog | None = None

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/agents", self.agents)
        r.add_post("/api/agents", self.agent_create)
        r.add_get("/api/agents/{id}", self.agent)
        r.add_post("/api/agents/{id}/state", self.agent_state)
        r.add_put("/api/agents/{id}", self.agent_update)
        r.add_delete("/api/agents/{id}", self.agent_delete)
        r.add_get("/api/agents/{id}/definition", self.agent_definition)

    # ---------------------------------------------------------------------------------- queries
    def snapshot(self, agent_id: str) -> dict[str, Any]:
        """The agent as the API shows it; 404 ``agent-not-found``, 503 ``acd-disabled``."""
        acd = require_acd(self.acd)
        if agent_id not in acd.router.agent_ids():
            raise not_found("agent", agent_id)
        return agent_view(acd.router.agent_snapshot(agent_id))

    def agent_queues(self, agent_id: str) -> tuple[str, ...]:
        """The queues agent `agent_id` can serve (a member with the queue's skills at its most relaxed step;
        none for an unknown agent): a supervisor's agents are those of their queues."""
        acd = self.acd
        if acd is None or agent_id not in acd.router.agent_ids():
            return ()
        r = acd.router
        skills = r.agent_skills(agent_id)
        return tuple(q for q in r.agent_snapshot(agent_id).queues
                     if requirement_at(r.queue_config(q), float("inf")).admits(skills))

    def require_access(self, request: web.Request, agent_id: str) -> Principal:
        """403 unless the request's principal may see and act on this agent (before any 404)."""
        return require_agent_access(request, agent_id, self.agent_queues(agent_id))

    def agent_ids(self) -> tuple[str, ...]:
        return self.acd.router.agent_ids() if self.acd is not None else ()

    async def action(self, agent_id: str, body: dict[str, Any]) -> None:
        """A state change ``{"action", "reason"}`` (the API's body or a websocket message)."""
        action, reason = body.get("action"), body.get("reason")
        if action not in AGENT_ACTIONS:
            raise bad_request("invalid-request", f"action must be one of {', '.join(AGENT_ACTIONS)}")
        if reason is not None and (not isinstance(reason, str) or not 0 < len(reason) <= 32
                                   or not reason.isprintable()):
            raise bad_request("invalid-request", "reason must be a printable string of 1-32 characters")
        try:
            await require_acd(self.acd).agent_action(agent_id, action, reason)
        except UnknownAgent:
            raise not_found("agent", agent_id) from None
        except AcdError as e:
            raise ApiError(409, "illegal-transition", str(e)) from None
        except ValueError as e:
            raise bad_request("invalid-request", str(e)) from None

    # ----------------------------------------------------------------------------------- routes
    async def agents(self, request: web.Request) -> web.Response:
        p = principal_of(request)
        if self.acd is None:
            return web.json_response({"agents": []})
        return web.json_response({"agents": [agent_view(a) for a in self.acd.router.agents_snapshot()
                                             if can_see_agent(p, a.agent_id, self.agent_queues(a.agent_id))]})

    async def agent(self, request: web.Request) -> web.Response:
        self.require_access(request, request.match_info["id"])
        return web.json_response(self.snapshot(request.match_info["id"]))

    async def agent_state(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self.require_access(request, agent_id)
        self.snapshot(agent_id)            # 404 before looking at the body
        body = await json_body(request, ACTION_FIELDS)
        await self.action(agent_id, body)
        return web.json_response(self.snapshot(agent_id))

    async def agent_update(self, request: web.Request) -> web.Response:
        """Replace an agent's definition (skills, languages, team, queues, wrap_up, max_misses; an admin may
        set the SIP password of a phone the app pushes), keeping its state. Persisted and audited."""
        agent_id = request.match_info["id"]
        p = require_role(request, Role.ADMIN)
        self.snapshot(agent_id)
        body = await json_body(request)
        if body.get("id", agent_id) != agent_id:
            raise bad_request("invalid-request", "the body's id must match the URL")
        acd = require_acd(self.acd)
        editor = acd.live_config
        if editor is None:        # an ACD without live configuration (tests' fakes): the old behaviour
            check_agent_body(body)
            try:
                await acd.update_agent({**body, "id": agent_id})
            except UnknownAgent:
                raise not_found("agent", agent_id) from None
            except ConfigError as e:
                raise bad_request("invalid-agent", str(e)) from None
            except AcdError as e:
                raise ApiError(409, "agent-conflict", str(e)) from None
            return web.json_response(self.snapshot(agent_id))
        check_agent_definition(body, creating=False)
        try:
            before, after = await editor.update_agent(agent_id, body)
        except UnknownAgent:
            raise not_found("agent", agent_id) from None
        except Exception as e:
            raise config_error("agent", e) from None
        self._audit(request, p.actor, "agent.update", agent_id, before, after)
        return web.json_response(self._definition(agent_id))

    async def agent_create(self, request: web.Request) -> web.Response:
        """A new agent, live: in the router at once (logged in unless ``login: false``), its SIP phone pushed
        to Asterisk when the body has a ``sip_password``. 201 with its definition and snapshot."""
        p = require_role(request, Role.ADMIN)
        editor = editor_of(self.acd)
        body = await json_body(request)
        check_agent_definition(body, creating=True)
        try:
            after = await editor.create_agent(body)
        except Exception as e:
            raise config_error("agent", e) from None
        aid = str(body["id"])
        self._audit(request, p.actor, "agent.create", aid, None, after)
        return web.json_response(self._definition(aid), status=201)

    async def agent_delete(self, request: web.Request) -> web.Response:
        """Remove an agent: 409 ``agent-busy`` while it is on a call (nothing changes); a call ringing it goes
        back to its place for the next agent. 204."""
        agent_id = request.match_info["id"]
        p = require_role(request, Role.ADMIN)
        editor = editor_of(self.acd)
        try:
            before = await editor.delete_agent(agent_id)
        except UnknownAgent:
            raise not_found("agent", agent_id) from None
        except Exception as e:
            raise config_error("agent", e) from None
        self._audit(request, p.actor, "agent.delete", agent_id, before, None)
        return web.Response(status=204)

    async def agent_definition(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self.require_access(request, agent_id)
        if agent_id not in require_acd(self.acd).router.agent_ids():
            raise not_found("agent", agent_id)
        return web.json_response(self._definition(agent_id))

    def _definition(self, agent_id: str) -> dict[str, Any]:
        """The agent's snapshot plus ``definition`` (never its SIP password: ``has_sip_password``)."""
        editor = editor_of(self.acd)
        return {**self.snapshot(agent_id), "definition": editor.agent_definition(agent_id)}

    def _audit(self, request: web.Request, actor: str, action: str, agent_id: str, before: Any, after: Any) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, f"agent:{agent_id}", before=before, after=after, address=request.remote)


def agent_view(snap: AgentSnapshot) -> dict[str, Any]:
    """An agent snapshot for the API, plus ``status``: what a supervisor should read at a glance. An agent
    whose phone is not registered cannot take a call whatever its state, so it is ``unregistered``, not
    ``available``; an available agent resting after a failed offer is ``resting``."""
    d = snap.as_dict()
    state = d["state"]
    d["status"] = ("unregistered" if not snap.registered and state != "logged_out"
                   else "resting" if snap.resting and state == "available" else state)
    return d


def check_agent_body(body: dict[str, Any]) -> None:
    """Types the ACD's agent_from_dict would coerce silently (str() of anything) are refused here, and so are
    keys the ACD would drop silently (sip_password, login: Asterisk's and start-up config, not run time)."""
    ignored = sorted(set(body) & {"sip_password", "login"})
    if ignored:
        raise bad_request("invalid-agent", f"{', '.join(ignored)} cannot be changed at run time")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= AGENT_NAME_MAX
                             or not name.isprintable()):
        raise bad_request("invalid-agent", f"name must be a printable string of 1-{AGENT_NAME_MAX} characters")
    team = body.get("team")
    if team is not None and (not isinstance(team, str) or len(team) > AGENT_NAME_MAX or not team.isprintable()):
        raise bad_request("invalid-agent", "team must be a printable string or null")
    for key in ("languages", "queues"):
        items = body.get(key)
        if isinstance(items, list) and not all(isinstance(x, str) and x.isprintable() for x in items):
            raise bad_request("invalid-agent", f"{key} must be a list of names")
