"""Agents at the edge: who they are to Asterisk (endpoint -> agent), whether their phone is registered,
what each chose (logged in, paused with a reason, logged out: saved, so it survives a restart), and the
admin actions on them. Presence comes from Asterisk: endpoint state changes for each agent endpoint
(subscribed per agent), reconciled from GET /endpoints on every connect."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..acd import AgentState, Router, agent_from_dict
from ..acd.errors import AcdError, UnknownAgent
from ..acd.policy import requirement_at
from ..ari import ContactStatusChange, EndpointStateChange
from ..metrics import QueueSnapshot, queue_snapshot_from_view

log = logging.getLogger(__name__)

_AGENT_CONFIG_EXTRA = {"sip_password", "login", "phone"}   # for Asterisk / start-up, not the router
_REACHABLE = ("Reachable", "Created", "Updated", "NonQualified")


class PresenceStore(Protocol):
    def agent_states(self) -> dict[str, tuple[str, str | None]]: ...

    def set_agent_state(self, agent_id: str, presence: str, reason: str | None) -> None: ...


@dataclass(frozen=True)
class PresenceDeps:
    router: Router
    execute: Callable[[list], Awaitable[None]]      # carry out router decisions (the ACD's executor)
    route: Callable[..., list]                      # a timed router call: route(fn, *args)
    notify: Callable[[str, dict[str, Any]], None]   # agent pages / wallboard
    subscribe: Callable[[str], None]                # ARI event subscription ("endpoint:PJSIP/agent1")
    store: PresenceStore | None = None


class AgentPresence:
    """The only writer of agents' registration and saved presence."""

    def __init__(self, deps: PresenceDeps, agents: Iterable[Mapping[str, Any]], *, auto_login: bool) -> None:
        self.deps = deps
        self.endpoints: dict[str, str] = {}          # "PJSIP/agent1" -> agent id
        self.names: dict[str, str] = {}
        self._saved: dict[str, tuple[str, str | None]] = deps.store.agent_states() if deps.store else {}
        self.auto_login = auto_login
        for raw in agents:
            self._add(raw)

    def _add(self, raw: Mapping[str, Any]) -> list:
        """Put an agent in the router (logged out, unregistered: presence comes from Asterisk), then restore
        what it chose before a restart or log it in (``login``, else ``acd.auto_login``). Its decisions."""
        router = self.deps.router
        ac = agent_from_dict({k: v for k, v in raw.items() if k not in _AGENT_CONFIG_EXTRA})
        out = router.add_agent(ac, registered=False)
        saved, reason = self._saved.get(ac.id, (None, None))
        if saved is None and raw.get("login", self.auto_login) or saved in ("logged_in", "paused"):
            out += router.login(ac.id)
        if saved == "paused":
            out += router.pause(ac.id, reason or "break")
            log.info("agent %s restored paused (%s)", ac.id, reason or "break")
        self.endpoints[ac.endpoint] = ac.id
        self.names[ac.id] = ac.name
        self.deps.subscribe(f"endpoint:{ac.endpoint}")
        return out

    async def add(self, raw: Mapping[str, Any], registered: bool) -> None:
        """A new agent at run time (``live_config``): in the router, logged in as configured."""
        decisions = self.deps.route(self._add, raw)
        if registered:
            decisions += self.deps.route(self.deps.router.set_registered, str(raw["id"]), True)
        await self.deps.execute(decisions)
        self.deps.notify("agent", self.deps.router.agent_snapshot(str(raw["id"])).as_dict())

    async def remove(self, agent_id: str) -> None:
        """Forget an agent (``Router.remove_agent``: refused with IllegalTransition while on a call; an offer
        ringing it is withdrawn and the caller goes back to its place)."""
        r = self.deps.router
        endpoint = r.agent_config(agent_id).endpoint
        if r.agent_snapshot(agent_id).state is not AgentState.LOGGED_OUT:
            # logged out first (its decisions still name a known agent), saved as such
            await self.deps.execute(self.deps.route(r.logout, agent_id))
        await self.deps.execute(self.deps.route(r.remove_agent, agent_id))
        self.endpoints.pop(endpoint, None)
        self.names.pop(agent_id, None)
        self._saved.pop(agent_id, None)
        log.info("agent %s removed", agent_id)

    def agent_of(self, endpoint: str) -> str | None:
        return self.endpoints.get(endpoint)

    # ------------------------------------------------------------------------ registration
    async def on_event(self, ev: EndpointStateChange | ContactStatusChange) -> bool:
        aid = self.endpoints.get(ev.endpoint.name)
        if aid is None:
            return False
        if isinstance(ev, EndpointStateChange):
            online = ev.endpoint.state == "online"
        else:
            online = ev.contact_status in _REACHABLE
        await self.set_registered(aid, online)
        return True

    async def set_registered(self, agent_id: str, online: bool) -> None:
        r = self.deps.router
        if r.is_registered(agent_id) == online:
            return
        log.info("agent %s %s", agent_id, "registered" if online else "unregistered")
        await self.deps.execute(self.deps.route(r.set_registered, agent_id, online))
        self.deps.notify("agent", r.agent_snapshot(agent_id).as_dict())

    async def reconcile(self, online: Mapping[str, bool]) -> None:
        """``online``: endpoint name -> registered, as GET /endpoints says after a (re)connect."""
        for ep, aid in self.endpoints.items():
            await self.set_registered(aid, online.get(ep, False))

    def save(self, agent_id: str, state: AgentState, reason: str | None) -> None:
        """Persist what outlives a restart: logged in / paused (with its reason) / logged out. The states
        of a call (reserved, on call, wrap-up) count as logged in, so a call writes nothing."""
        presence = ("paused" if state is AgentState.PAUSED else "logged_out" if state is AgentState.LOGGED_OUT
                    else "logged_in")
        rec = (presence, reason if presence == "paused" else None)
        if self.deps.store is None or self._saved.get(agent_id) == rec:
            return
        self._saved[agent_id] = rec
        self.deps.store.set_agent_state(agent_id, *rec)

    # --------------------------------------------------------------------------- admin API
    async def action(self, agent_id: str, action: str, reason: str | None = None) -> None:
        """login / logout / pause (reason) / unpause / available / end_wrap_up. Raises AcdError if illegal."""
        r = self.deps.router
        fn = {"login": lambda: r.login(agent_id), "logout": lambda: r.logout(agent_id),
              "pause": lambda: r.pause(agent_id, reason or "break"), "unpause": lambda: r.unpause(agent_id),
              "end_wrap_up": lambda: r.wrap_up_done(agent_id)}.get(action)
        if action == "available":
            state = r.agent_snapshot(agent_id).state
            fn = {AgentState.PAUSED: lambda: r.unpause(agent_id), AgentState.WRAP_UP: lambda: r.wrap_up_done(agent_id),
                  AgentState.LOGGED_OUT: lambda: r.login(agent_id)}.get(state, fn)
            if fn is None:
                raise AcdError(f"agent {agent_id!r} cannot become available from {state.value}")
        if fn is None:
            raise ValueError(f"unknown action {action!r}")
        await self.deps.execute(self.deps.route(fn))
        self.deps.notify("agent", r.agent_snapshot(agent_id).as_dict())

    async def update(self, definition: Mapping[str, Any]) -> None:
        """Change an agent's definition at run time (skills, languages, team, queues, wrap-up, max misses),
        keeping its state. The endpoint cannot change here: it is part of Asterisk's config."""
        r = self.deps.router
        aid = str(definition.get("id", ""))
        if aid not in r.agent_ids():
            raise UnknownAgent(f"unknown agent {aid!r}")
        current = r.agent_config(aid)
        d = {k: v for k, v in definition.items() if k not in _AGENT_CONFIG_EXTRA}
        d.setdefault("endpoint", current.endpoint)
        d.setdefault("name", current.name)
        ac = agent_from_dict(d)
        if ac.endpoint != current.endpoint:
            raise AcdError(f"agent {aid!r}: the endpoint cannot change at run time ({current.endpoint})")
        await self.deps.execute(self.deps.route(r.update_agent, ac))
        self.names[aid] = ac.name
        log.info("agent %s definition updated (skills %s)", aid, dict(ac.skills))
        self.deps.notify("agent", r.agent_snapshot(aid).as_dict())

    # ---------------------------------------------------------------------------- read side
    def serving_agents(self, name: str) -> tuple[dict[str, int], dict[str, int]]:
        """(agents by state, paused by reason) counting only agents who could serve queue `name`: a
        registered phone and the queue's skills at its most relaxed step (an agent whose phone is off, or
        who lacks the skills, is not 'available' for this queue on a wallboard or in metrics)."""
        r = self.deps.router
        req = requirement_at(r.queue_config(name), float("inf"))
        states = {st.value: 0 for st in AgentState}
        paused: dict[str, int] = {}
        for aid in r.queue_members(name):
            snap = r.agent_snapshot(aid)
            if not snap.registered or not req.admits(r.agent_skills(aid)):
                continue
            states[snap.state.value] += 1
            if snap.state == AgentState.PAUSED:
                paused[snap.pause_reason or ""] = paused.get(snap.pause_reason or "", 0) + 1
        return states, paused

    def queue_snapshots(self) -> list[QueueSnapshot]:
        out = []
        for name in self.deps.router.queue_names():
            snap = queue_snapshot_from_view(self.deps.router.queue_snapshot(name))
            states, paused = self.serving_agents(name)
            states["logged_in"] = sum(n for s, n in states.items() if s != "logged_out")
            out.append(dataclasses.replace(snap, agents_by_state=states, paused_by_reason=paused))
        return out
