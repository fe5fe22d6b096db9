"""Agents and queues changed at run time (the API's POST/PUT/DELETE /api/agents and /api/queues): the router
changes at once, the definition is kept in the store (``ivr.settings``), an agent's SIP phone is pushed to
the running Asterisk (ARI dynamic configuration) and pushed again after every (re)connect.

Every operation checks everything first and changes nothing when it refuses:
* an agent on a call cannot be removed (``AgentBusy``); one whose phone rings is removed and the caller
  goes back to its place for the next agent;
* a queue is removed only when nobody is in its line (no caller, no open task), no agent names it, no
  queue overflows to it, no flow queues callers to it and no config section (voicemail, web callbacks)
  names it (``QueueInUse`` lists which);
* an agent's phone in pjsip.conf (an agent of config/ivr.yaml, rendered at Asterisk's start) cannot take a
  SIP password from the API (``PhoneConflict``): Asterisk's config wizard is read-only.

Each operation returns the definitions before and after (with the SIP password: the caller's audit log
scrubs it, and the API never shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..acd import AgentState, Router, agent_from_dict, agent_to_dict, queue_from_dict, queue_to_dict
from ..acd.errors import AcdError, DuplicateId, UnknownAgent, UnknownQueue
from ..acd.reconfig import AgentBusy, PhoneConflict, QueueInUse
from ..ari import AriError
from ..asterisk.endpoints import PjsipObject
from ..settings import ConfigStore

log = logging.getLogger(__name__)

#: an agent definition's keys that are not the router's (``agent_from_dict``)
PHONE_KEYS = ("sip_password", "phone", "login")


class DynamicConfig(Protocol):
    """ARI's dynamic configuration (``ivr.ari.AriClient``)."""

    async def config_put(self, config_class: str, object_type: str, ident: str,
                         fields: list[dict[str, str]]) -> Any: ...

    async def config_delete(self, config_class: str, object_type: str, ident: str) -> None: ...

    async def subscribe(self, event_sources: Any) -> Any: ...


#: the PJSIP objects of an agent's phone: (endpoint name, SIP password, webrtc) -> endpoint, auth, aor
PhoneObjects = Callable[[str, str, bool], tuple[PjsipObject, ...]]


@dataclass(frozen=True)
class LiveConfigDeps:
    router: Router
    execute: Callable[[list], Awaitable[None]]
    route: Callable[..., list]
    add_agent: Callable[[dict[str, Any], bool], Awaitable[None]]   # presence: router + endpoints map
    remove_agent: Callable[[str], Awaitable[None]]
    ari: DynamicConfig
    phone_objects: PhoneObjects
    wall: Callable[[], float]
    store: ConfigStore | None = None
    #: endpoints Asterisk has from pjsip.conf (the file's agents): their phones are not pushed
    static_endpoints: frozenset[str] = frozenset()
    registered: Callable[[str], Awaitable[bool]] | None = None     # is this endpoint registered now
    queue_added: Callable[[str], None] = lambda name: None          # metrics, flows' known queues
    queue_removed: Callable[[str], None] = lambda name: None
    #: who else uses a queue (flows, config sections, open tasks): name -> {reason: [names]}
    queue_users: Callable[[str], dict[str, list[str]]] = lambda name: {}


def _endpoint_name(endpoint: str) -> str | None:
    return endpoint[len("PJSIP/"):] if endpoint.startswith("PJSIP/") else None


class LiveConfig:
    """The only writer of agent and queue definitions after start-up."""

    def __init__(self, deps: LiveConfigDeps, agents: tuple[dict[str, Any], ...]) -> None:
        self.deps = deps
        #: every agent's whole definition (with its phone keys), by id
        self.agents: dict[str, dict[str, Any]] = {str(a["id"]): dict(a) for a in agents}

    # ------------------------------------------------------------------------------------ reads
    def agent_definition(self, agent_id: str) -> dict[str, Any]:
        """The agent's definition for the API: no SIP password, ``has_sip_password`` instead."""
        r = self.deps.router
        d = agent_to_dict(r.agent_config(agent_id))
        full = self.agents.get(agent_id, {})
        d["phone"] = full.get("phone", "sip")
        d["has_sip_password"] = bool(full.get("sip_password")) or d["endpoint"] in self.deps.static_endpoints
        return d

    def queue_definition(self, name: str) -> dict[str, Any]:
        return queue_to_dict(self.deps.router.queue_config(name))

    # --------------------------------------------------------------------------------- phones
    def _pushed(self, d: dict[str, Any]) -> bool:
        return bool(d.get("sip_password")) and str(d.get("endpoint", "")) not in self.deps.static_endpoints

    async def _push(self, d: dict[str, Any]) -> None:
        name = _endpoint_name(str(d["endpoint"]))
        if name is None:
            raise PhoneConflict(f"agent {d['id']!r}: only a PJSIP/<name> endpoint can get a SIP password")
        for o in self.deps.phone_objects(name, str(d["sip_password"]), d.get("phone") == "webrtc"):
            await self.deps.ari.config_put("res_pjsip", o.type, o.id, o.ari_fields())

    async def _unpush(self, d: dict[str, Any]) -> None:
        name = _endpoint_name(str(d["endpoint"]))
        if name is None:
            return
        for o in reversed(self.deps.phone_objects(name, "-", d.get("phone") == "webrtc")):
            try:
                await self.deps.ari.config_delete("res_pjsip", o.type, o.id)
            except AriError as e:
                log.info("agent %s: phone object %s/%s not deleted: %s", d["id"], o.type, o.id, e)

    async def push_phones(self) -> None:
        """After every ARI (re)connect: the phones of agents added through the API (memory objects are gone
        when Asterisk restarted; pushing them again is harmless when it did not)."""
        for d in list(self.agents.values()):
            if self._pushed(d):
                try:
                    await self._push(d)
                except (AriError, AcdError) as e:
                    log.warning("agent %s: phone not pushed to Asterisk: %s", d["id"], e)

    # --------------------------------------------------------------------------------- agents
    def _agent_full(self, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        d = dict(body)
        aid = str(d["id"])
        d.setdefault("endpoint", current["endpoint"] if current else f"PJSIP/{aid}")
        if current is not None:
            d.setdefault("name", current.get("name", ""))
            for k in ("sip_password", "phone"):       # write-only / kept unless given
                if k not in d and k in current:
                    d[k] = current[k]
        ac = agent_from_dict({k: v for k, v in d.items() if k not in PHONE_KEYS})
        if d.get("sip_password") and ac.endpoint in self.deps.static_endpoints:
            raise PhoneConflict(f"agent {aid!r}: {ac.endpoint} is defined in pjsip.conf (config/ivr.yaml): its "
                                "SIP password comes from there")
        r = self.deps.router
        for q in ac.queues or ():
            if q not in r.queue_names():
                raise UnknownQueue(q)
        return {k: v for k, v in {**agent_to_dict(ac), **{k: d[k] for k in PHONE_KEYS if k in d}}.items()
                if v is not None}

    async def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        aid = str(body["id"])
        r = self.deps.router
        if aid in r.agent_ids():
            raise DuplicateId(f"agent {aid!r} already exists")
        d = self._agent_full(body, None)
        if any(r.agent_config(a).endpoint == d["endpoint"] for a in r.agent_ids()):
            raise DuplicateId(f"endpoint {d['endpoint']} is another agent's phone")
        if self._pushed(d):
            await self._push(d)       # first: if Asterisk refuses, nothing changed
        registered = False
        if self.deps.registered is not None:
            try:
                registered = await self.deps.registered(d["endpoint"])
            except AriError:
                registered = False
        await self.deps.add_agent(d, registered)      # also re-applied on every (re)connect from now on
        try:        # its phone's registrations (EndpointStateChange / ContactStatusChange) from now on
            await self.deps.ari.subscribe([f"endpoint:{d['endpoint']}"])
        except AriError as e:
            log.warning("agent %s: endpoint events not subscribed (tried again at every connect): %s", aid, e)
        self.agents[aid] = d
        self._save("agent", aid, d)
        return d

    async def update_agent(self, agent_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        r = self.deps.router
        if agent_id not in r.agent_ids():
            raise UnknownAgent(agent_id)
        before = self.agents.get(agent_id) or agent_to_dict(r.agent_config(agent_id))
        d = self._agent_full({**body, "id": agent_id}, before)
        if d["endpoint"] != before["endpoint"]:
            raise PhoneConflict(f"agent {agent_id!r}: the endpoint cannot change at run time ({before['endpoint']})")
        if d.get("phone", "sip") != before.get("phone", "sip") and not self._pushed(d):
            raise PhoneConflict(f"agent {agent_id!r}: its phone kind is defined in config/ivr.yaml")
        if self._pushed(d) and (d.get("sip_password") != before.get("sip_password")
                                or d.get("phone") != before.get("phone")):
            await self._push(d)
        ac = agent_from_dict({k: v for k, v in d.items() if k not in PHONE_KEYS})
        await self.deps.execute(self.deps.route(r.update_agent, ac))
        self.agents[agent_id] = d
        self._save("agent", agent_id, d)
        log.info("agent %s definition updated (skills %s)", agent_id, dict(ac.skills))
        return before, d

    async def delete_agent(self, agent_id: str) -> dict[str, Any]:
        r = self.deps.router
        if agent_id not in r.agent_ids():
            raise UnknownAgent(agent_id)
        snap = r.agent_snapshot(agent_id)
        if snap.state is AgentState.ON_CALL:
            raise AgentBusy(f"agent {agent_id!r} is on call {snap.call_id}: remove it once the call has ended")
        before = self.agents.get(agent_id) or agent_to_dict(r.agent_config(agent_id))
        await self.deps.remove_agent(agent_id)
        self.agents.pop(agent_id, None)
        if self.deps.store is not None:
            self.deps.store.delete("agent", agent_id, self.deps.wall())
        if self._pushed(before):
            await self._unpush(before)
        return before

    # --------------------------------------------------------------------------------- queues
    async def create_queue(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.deps.router
        q = queue_from_dict(body)
        if q.name in r.queue_names():
            raise DuplicateId(f"queue {q.name!r} already exists")
        from ..acd.queue import check_overflows
        check_overflows([*(r.queue_config(n) for n in r.queue_names()), q])
        r.add_queue(q)
        self.deps.queue_added(q.name)
        d = queue_to_dict(q)
        self._save("queue", q.name, d)
        await self.deps.execute(self.deps.route(r.tick))   # agents of every queue may now take its calls
        return d

    async def update_queue(self, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        r = self.deps.router
        before = queue_to_dict(r.queue_config(name))       # UnknownQueue first
        q = queue_from_dict({**body, "name": name})
        await self.deps.execute(self.deps.route(r.update_queue, q))
        self.deps.queue_added(name)                        # metrics: its service level threshold
        d = queue_to_dict(q)
        self._save("queue", name, d)
        log.info("queue %s definition updated", name)
        return before, d

    async def delete_queue(self, name: str) -> dict[str, Any]:
        r = self.deps.router
        reasons = r.queue_in_use(name)                     # UnknownQueue first
        for k, v in self.deps.queue_users(name).items():
            if v:
                reasons[k] = v
        if reasons:
            raise QueueInUse(name, reasons)
        before = queue_to_dict(r.queue_config(name))
        await self.deps.execute(self.deps.route(r.remove_queue, name))
        self.deps.queue_removed(name)
        if self.deps.store is not None:
            self.deps.store.delete("queue", name, self.deps.wall())
        return before

    def _save(self, kind: str, key: str, d: dict[str, Any]) -> None:
        if self.deps.store is not None:
            self.deps.store.put(kind, key, d, self.deps.wall())   # type: ignore[arg-type]


def endpoint_registered(ari: Any) -> Callable[[str], Awaitable[bool]]:
    """Is ``PJSIP/<name>`` registered now (GET /endpoints/PJSIP/<name>)."""
    async def registered(endpoint: str) -> bool:
        tech, _, resource = endpoint.partition("/")
        try:
            return (await ari.endpoint(tech, resource)).state == "online"
        except AriError:
            return False
    return registered


def live_config_for(acd: Any, cfg: Any, store: ConfigStore | None, agents: list[dict[str, Any]],
                    queue_users: Callable[[str], dict[str, list[str]]],
                    queue_known: Callable[[str, bool], None]) -> LiveConfig:
    """The live configuration of an ``AcdService`` (``acd``) for an app config ``cfg`` (``ivr.config.Config``):
    phones pushed as pjsip.conf would have them (``ivr.asterisk.endpoints.agent_objects``)."""
    from ..asterisk.endpoints import agent_objects
    ast = cfg.asterisk

    def phone_objects(name: str, password: str, webrtc: bool) -> tuple[PjsipObject, ...]:
        return agent_objects(name, password, contact=ast.agent_contact, webrtc=webrtc,
                             media_address=ast.webrtc_media_address if webrtc else ast.bind_address)

    def added(name: str) -> None:
        overflow = acd.router.queue_config(name).overflow
        acd.metrics.declare_queue(name, acd.router.queue_config(name).service_level.seconds,
                                  overflow_to=overflow.queue if overflow is not None else None)
        queue_known(name, True)

    return LiveConfig(LiveConfigDeps(
        router=acd.router, execute=acd.execute, route=acd.route, add_agent=acd.presence.add,
        remove_agent=acd.presence.remove, ari=acd.ari, phone_objects=phone_objects, wall=acd.clock.wall,
        store=store, static_endpoints=frozenset(a.endpoint for a in cfg.agent_sip()),
        registered=endpoint_registered(acd.ari), queue_added=added,
        queue_removed=lambda name: queue_known(name, False), queue_users=queue_users), tuple(agents))
