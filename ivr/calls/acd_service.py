"""The ACD at the edge: runs the pure router, executes its decisions against ARI, feeds it what happens.

* A caller in queue hears music on hold on its own channel (plus periodic position / estimated-wait
  announcements); the router's `Offer` makes us originate the agent leg with a known channel id
  `<call>-a<n>`, the customer's name as caller ID, back into our app with appArgs `agent,<call>`.
* The agent leg's StasisStart means the agent answered: MOH stops, both legs join a `mixing,dtmf_events`
  bridge with the deterministic id `call-<call>`. The caller hanging up tears down the agent leg and the
  bridge; the agent hanging up ends its leg and the bridge, and the caller goes back to the flow
  (``answered``: the queue node's ``on_answered``, else the flow hangs up). Either way wrap-up starts. A
  caller hanging up while the agent rings cancels the agent leg.
* Every way out of the ACD ends in the router's ``CallFinished`` (answered, timeout, flow max_wait =
  ``withdraw``, full, no agents, abandoned), and ``_finished`` is the one place that then hands a caller who
  is still there back to its flow (``_back_to_flow``); ``QueueExit`` is only logged. A queue's overflow
  moving a waiting caller to another queue (``CallMoved``) is no way out: the caller stays in the ACD with
  its music, gets the new queue's announcements, and its saved state names the new queue (``_moved``).
* An agent leg that ends before answering (no answer, busy, congestion, unreachable) is an offer failure:
  the router puts the call back in its place and tries the next agent (and auto-pauses after N misses).
* Presence comes from Asterisk: endpoint state changes for each agent endpoint (subscribed per agent and
  re-subscribed after every reconnect), reconciled from GET /endpoints on every connect.
* Router calls are synchronous (no await inside), so the router's state never interleaves; ARI work for
  one decision may interleave with another call's, so every step re-checks that its offer is current.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..acd import (
    AgentAutoPaused,
    AgentState,
    AgentStateChanged,
    AutoPausePolicy,
    AutoPauseSuspended,
    Call,
    CallFinished,
    CallMoved,
    CallOutcome,
    CallRequeued,
    CancelOffer,
    Offer,
    QueueExit,
    Router,
    StartWrapUp,
    agent_from_dict,
    queue_from_dict,
)
from ..acd.agent import SKILL_MAX, SKILL_MIN
from ..acd.errors import AcdError
from ..acd.policy import requirement_at
from ..ari import (
    AriError,
    Channel,
    ChannelDestroyed,
    ContactStatusChange,
    EndpointStateChange,
    Event,
    NotFound,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    Unavailable,
)
from ..crm.model import clean_text
from ..flow import Enqueue
from ..logsafe import CallLog
from ..metrics import QueueSnapshot, queue_snapshot_from_view
from .adoption import (
    QUEUE_VAR,
    AdoptedCall,
    QueueState,
    agent_endpoint_of,
    parse_ari_time,
    wall_to_monotonic,
)
from .ids import AGENT_LEG, bridge_id, call_of_bridge
from .internal import Internal, internal

if TYPE_CHECKING:
    from ..app import App
    from .flow_session import FlowSession

log = logging.getLogger(__name__)

# Q.850 causes of an agent leg that ended before answering -> offer failure reason
_CAUSES = {16: "normal", 17: "busy", 18: "no-response", 19: "no-answer", 21: "rejected", 34: "congestion",
           20: "unregistered", 3: "unreachable", 38: "network-down"}
_AGENT_CONFIG_EXTRA = {"sip_password", "login"}
OFFER_CHECK_DELAY = 2.0     # seconds before looking for an agent leg whose originate timed out
_seq = itertools.count(1)


@dataclass
class QueuedCall:
    session: FlowSession
    call_id: str
    queue: str
    entered: float
    refused: bool = False
    leg_id: str | None = None          # the agent leg currently ringing / talking
    agent_id: str | None = None
    bridge_id: str | None = None
    answered: bool = False
    moh: bool = False
    announce: asyncio.TimerHandle | None = None
    max_wait: asyncio.TimerHandle | None = None
    announcement_id: str | None = None
    log: Any = None
    legs_tried: list[str] = field(default_factory=list)
    caller_hung_up: bool = False       # we hung the caller up: nothing goes back to its flow
    saved: QueueState | None = None    # what its channel carries for a restart (the queue follows moves)


class TaskDecisions(Protocol):
    def handles(self, d: Any) -> bool: ...

    async def execute(self, d: Any) -> None: ...


class AcdService:
    def __init__(self, app: App) -> None:
        self.app = app
        cfg = app.cfg
        self.options = dict(cfg.acd)
        self.router = Router([queue_from_dict(q) for q in cfg.queues], clock=time.monotonic,
                             auto_pause=AutoPausePolicy.from_dict(self.options.get("auto_pause")))
        self.wall_offset = time.time() - time.monotonic()
        #: the router's decisions about tasks (not live callers) go there (``App`` sets it)
        self.tasks: TaskDecisions | None = None
        self.endpoints: dict[str, str] = {}          # "PJSIP/agent1" -> agent id
        self.agent_names: dict[str, str] = {}
        auto_login = bool(self.options.get("auto_login", True))
        # what each agent chose (logged in, paused with a reason, logged out) survives a restart of the app
        self._presence: dict[str, tuple[str, str | None]] = app.storage.agent_states() if app.storage else {}
        for raw in cfg.agents:
            d = {k: v for k, v in raw.items() if k not in _AGENT_CONFIG_EXTRA}
            ac = agent_from_dict(d)
            self.router.add_agent(ac, registered=False)   # presence comes from Asterisk
            saved, reason = self._presence.get(ac.id, (None, None))
            if saved is None and raw.get("login", auto_login) or saved in ("logged_in", "paused"):
                self.router.login(ac.id)
            if saved == "paused":
                self.router.pause(ac.id, reason or "break")
                log.info("agent %s restored paused (%s)", ac.id, reason or "break")
            self.endpoints[ac.endpoint] = ac.id
            self.agent_names[ac.id] = ac.name
            app.add_subscription(f"endpoint:{ac.endpoint}")
        self.calls: dict[str, QueuedCall] = {}
        self._closing: dict[str, QueuedCall] = {}    # left the queue; kept until the router's CallFinished
        self.legs: dict[str, str] = {}               # agent leg channel id -> call id
        self.wrap_started: dict[str, float] = {}
        self._agent_queue: dict[str, str] = {}       # queue of each agent's last call (wrap-up metrics)
        self.listeners: list = []                    # callables(kind, payload) for the agent page / wallboard
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at: float | None = None
        for q in self.router.queue_names():
            overflow = self._queue_cfg(q).overflow
            app.metrics.declare_queue(q, self.router.queue_snapshot(q).service_level_target[1],
                                      overflow_to=overflow.queue if overflow is not None else None)

    # ------------------------------------------------------------------------------- live state
    def serving_agents(self, name: str) -> tuple[dict[str, int], dict[str, int]]:
        """(agents by state, paused by reason) counting only agents who could serve queue `name`: a
        registered phone and the queue's skills at its most relaxed step (an agent whose phone is off, or
        who lacks the skills, is not 'available' for this queue on a wallboard or in metrics)."""
        r = self.router
        req = requirement_at(self._queue_cfg(name), float("inf"))
        states = {st.value: 0 for st in AgentState}
        paused: dict[str, int] = {}
        for aid in r._queues[name].members:
            agent = r._agents[aid]
            if not agent.registered or not req.admits(agent.skills):
                continue
            states[agent.state.value] += 1
            if agent.state == AgentState.PAUSED:
                paused[agent.pause_reason or ""] = paused.get(agent.pause_reason or "", 0) + 1
        return states, paused

    def queue_snapshots(self) -> list[QueueSnapshot]:
        out = []
        for name in self.router.queue_names():
            snap = queue_snapshot_from_view(self.router.queue_snapshot(name))
            states, paused = self.serving_agents(name)
            states["logged_in"] = sum(n for s, n in states.items() if s != "logged_out")
            out.append(dataclasses.replace(snap, agents_by_state=states, paused_by_reason=paused))
        return out

    def active_bridges(self) -> int:
        return sum(1 for c in self.calls.values() if c.bridge_id)

    def owns_channel(self, channel_id: str) -> bool:
        return channel_id in self.legs

    def held(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """(agent legs, caller channels in the ACD, bridges of live conversations): the janitor's view."""
        return (frozenset(self.legs), frozenset(self.calls),
                frozenset(c.bridge_id for c in self.calls.values() if c.bridge_id))

    def close(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        for c in self.calls.values():
            for h in (c.announce, c.max_wait):
                if h is not None:
                    h.cancel()

    # ----------------------------------------------------------------------------- router calls
    def _route(self, fn, *args, **kw) -> list:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.app.metrics.routing_decision(time.perf_counter() - t0)

    async def enqueue(self, session: FlowSession, cmd: Enqueue) -> None:
        hints = getattr(session, "hints", None)
        queue = cmd.queue
        priority = cmd.priority
        extra = dict(cmd.required_skills)
        preferred, preferred_until = None, None
        if hints is not None:
            if hints.queue_override and hints.queue_override in self.router.queue_names():
                queue = hints.queue_override
            priority += hints.priority_boost
            for s, lv in hints.extra_skills.items():
                extra[s] = max(lv, extra.get(s, 0))
        # levels are on the ACD's 1-5 scale already: `ivr validate`/the flow loader and the CRM routing config
        # refuse anything else (no clamp here; a stray one makes Call() refuse the call, logged, no_agents)
        optional = _skill_weights(cmd.optional_skills)
        if hints is not None and hints.preferred_agent in self.router.agent_ids() and queue in self.router.queue_names():
            # only prefer an agent who could take this call at all (a repeat caller who needs tier 2 is
            # not held for the tier-1 agent who served them last time)
            agent = self.router._agents[hints.preferred_agent]
            if requirement_at(self._queue_cfg(queue), float("inf")).admits(agent.skills, extra):
                preferred = hints.preferred_agent
                preferred_until = time.monotonic() + (hints.preferred_seconds or 0.0)
        qc = QueuedCall(session, session.channel_id, queue, time.monotonic(),
                        log=CallLog(log, {"call": session.channel_id}))
        self.calls[qc.call_id] = qc
        caller = {"number": session.caller_raw, "name": session.customer_name()}
        try:
            decisions = self._route(self.router.enqueue, Call(qc.call_id, queue, priority=priority,
                                                              extra_skills=extra, optional_skills=optional,
                                                              preferred_agent=preferred,
                                                              preferred_until=preferred_until, caller=caller))
        except AcdError as e:
            qc.log.error("queue %s refused the call: %s", queue, e)
            self.calls.pop(qc.call_id, None)
            session.queue_outcome("no_agents")
            return
        qc.refused = any(isinstance(d, QueueExit) and d.call_id == qc.call_id for d in decisions)
        if not qc.refused:
            self.app.metrics.queue_entered(queue)
            qc.log.info("joined queue %s (priority %d, extra skills %s, optional skills %s%s)", queue, priority,
                        extra or "-", optional or "-", f", preferred agent {preferred}" if preferred else "")
            if cmd.max_wait:
                qc.max_wait = asyncio.get_running_loop().call_later(
                    cmd.max_wait, self.app.dispatcher.submit, internal(qc.call_id, ("acd-max-wait", None)))
        # the offer goes out first (the agent's phone rings sooner), then music and the saved queue state
        # (both at once); an agent who answers meanwhile finds `answered` set and no music is started
        await self._execute(decisions)
        if not qc.refused and qc.call_id in self.calls:
            state = QueueState(queue, time.time(), priority, extra, caller["name"] or "", session.flow_name,
                               session.did, optional)
            qc.saved = state
            await asyncio.gather(self._moh(qc, True), self._persist(qc, state))
            self._schedule_announcement(qc)

    async def caller_gone(self, session: FlowSession) -> None:
        qc = self.calls.get(session.channel_id)
        if qc is None:
            return
        if qc.answered:
            await self._end_conversation(qc, by="caller")
        else:
            await self._execute(self._route(self.router.abandon, qc.call_id))

    # ----------------------------------------------------------------------------------- events
    async def on_stasis_start(self, ev: StasisStart) -> bool:
        if ev.args[:1] != ("agent",):
            return False
        leg = ev.channel.id
        call_id = ev.args[1] if len(ev.args) > 1 else ""
        qc = self.calls.get(call_id)
        if qc is None or qc.leg_id != leg or qc.answered:
            log.info("agent leg %s answered for a call that is gone; hanging it up", leg)
            self.legs.pop(leg, None)
            await self.app.ari.hangup_quietly(leg)
            return True
        qc.answered = True
        try:
            decisions = self._route(self.router.offer_answered, call_id)
        except AcdError as e:
            qc.log.warning("offer_answered refused: %s; hanging up the agent leg", e)
            qc.answered = False
            await self.app.ari.hangup_quietly(leg)
            return True
        for h in (qc.announce, qc.max_wait):
            if h is not None:
                h.cancel()
        qc.bridge_id = bridge_id(call_id)
        try:
            await self._moh(qc, False)
            if qc.announcement_id:
                await self.app.ari.stop_playback(qc.announcement_id)
            await self.app.ari.create_bridge(qc.bridge_id, "mixing,dtmf_events", name=f"queue {qc.queue}")
            await self.app.ari.add_channel(qc.bridge_id, [call_id, leg])
            qc.session.agent_id = qc.agent_id
            qc.session.queue_wait = time.monotonic() - qc.entered
            qc.log.info("agent %s answered; bridged in %s", qc.agent_id, qc.bridge_id)
        except AriError as e:
            qc.log.warning("bridging failed (%s); ending the conversation", e)
            await self._end_conversation(qc, by="error")
        await self._execute(decisions)
        self._notify("call", {"call_id": call_id, "agent_id": qc.agent_id, "state": "answered"})
        return True

    async def on_channel_gone(self, ev: Event) -> None:
        if not isinstance(ev, (StasisEnd, ChannelDestroyed)):
            return
        leg = ev.channel.id
        call_id = self.legs.pop(leg, None)
        if call_id is None:
            stale = self.calls.get(leg)
            if stale is not None:      # a caller of ours whose session is already gone: end its queue stay
                stale.log.info("caller channel gone with no session; leaving the queue")
                await self.caller_gone(stale.session)
            return
        qc = self.calls.get(call_id)
        if qc is None or qc.leg_id != leg:
            return
        if qc.answered:
            await self._end_conversation(qc, by="agent")
            return
        cause = ev.cause if isinstance(ev, ChannelDestroyed) else 0
        reason = _CAUSES.get(cause, f"cause-{cause}")
        qc.log.info("agent %s did not take the call (%s)", qc.agent_id, reason)
        await self._fail_offer(qc, leg, reason)

    async def on_event(self, ev: Event) -> bool:
        if isinstance(ev, Internal):
            if ev.key == "_acd":
                await self._execute(self._route(self.router.tick))
                return True
            kind = ev.payload[0] if isinstance(ev.payload, tuple) else None
            qc = self.calls.get(ev.key)
            if kind == "acd-announce" and qc is not None:
                await self._announce(qc)
                return True
            if kind == "acd-max-wait" and qc is not None and not qc.answered:
                # the router's CallFinished (overflow) takes the caller back to the flow as `timeout`
                qc.log.info("flow max_wait reached in queue %s", qc.queue)
                try:
                    decisions = self._route(self.router.withdraw, qc.call_id)
                except AcdError as e:
                    qc.log.warning("withdraw refused: %s", e)
                    return True
                await self._execute(decisions)
                return True
            if kind == "acd-offer-check" and qc is not None:
                await self._check_offer(qc, ev.payload[1])
                return True
            return kind in ("acd-announce", "acd-max-wait", "acd-offer-check")
        if isinstance(ev, (EndpointStateChange, ContactStatusChange)):
            aid = self.endpoints.get(ev.endpoint.name)
            if aid is None:
                return False
            if isinstance(ev, EndpointStateChange):
                online = ev.endpoint.state == "online"
            else:
                online = ev.contact_status in ("Reachable", "Created", "Updated", "NonQualified")
            await self._set_registered(aid, online)
            return True
        if isinstance(ev, PlaybackFinished) and ev.playback.id.startswith("acd-"):
            qc = self.calls.get(ev.playback.channel_id or "")
            if qc is not None and qc.announcement_id == ev.playback.id:
                qc.announcement_id = None
                if not qc.answered:
                    await self._moh(qc, True)
                    self._schedule_announcement(qc)
            return True
        if ev.channel_id in self.legs:
            return True     # agent-leg events other than start/end: nothing to do
        return False

    async def _check_offer(self, qc: QueuedCall, leg: str) -> None:
        """After an originate that timed out: the leg exists (events will tell) or the offer failed (no
        miss: it was not the agent's fault)."""
        if qc.leg_id != leg or qc.answered:
            return
        try:
            await self.app.ari.channel(leg)
            return                                  # it exists: it rings, answers or fails as usual
        except NotFound:
            pass
        except AriError as e:
            qc.log.info("agent leg %s still unknown (%s); offering again", leg, e)
            await self._quietly(self.app.ari.hangup_quietly(leg), "hang up a leg that may exist")
        await self._fail_offer(qc, leg, "ari-unavailable", agent_fault=False)

    async def _fail_offer(self, qc: QueuedCall, leg: str, reason: str, *, agent_fault: bool = True) -> None:
        """The offer on `leg` failed: the call goes back to its place and the router tries the next agent."""
        self.legs.pop(leg, None)
        if qc.leg_id != leg:
            return                    # not the current offer (cancelled, or the call moved on)
        qc.leg_id = None
        try:
            decisions = self._route(self.router.offer_failed, qc.call_id, reason, agent_fault=agent_fault)
        except AcdError as e:
            qc.log.debug("offer_failed ignored: %s", e)
            return
        await self._execute(decisions)

    async def _set_registered(self, agent_id: str, online: bool) -> None:
        snap = self.router.agent_snapshot(agent_id)
        if snap.registered == online:
            return
        log.info("agent %s %s", agent_id, "registered" if online else "unregistered")
        await self._execute(self._route(self.router.set_registered, agent_id, online))
        self._notify("agent", self.router.agent_snapshot(agent_id).as_dict())

    async def reconcile(self) -> None:
        """After every (re)connect: presence from GET /endpoints; legs and bridges that vanished."""
        try:
            endpoints = {e.name: e for e in await self.app.ari.endpoints()}
            channels = {c.id for c in await self.app.ari.channels()}
        except AriError as e:
            log.warning("ACD reconcile failed: %s", e)
            return
        for ep, aid in self.endpoints.items():
            e = endpoints.get(ep)
            await self._set_registered(aid, e is not None and e.state == "online")
        for leg, call_id in list(self.legs.items()):
            if leg not in channels:
                await self.on_channel_gone(ChannelDestroyed(type="ChannelDestroyed",
                                                            channel=_gone_channel(leg), cause=0))

    # --------------------------------------------------------------------------------- agent API
    async def agent_action(self, agent_id: str, action: str, reason: str | None = None) -> None:
        """login / logout / pause (reason) / unpause / available / end_wrap_up. Raises AcdError if illegal."""
        r = self.router
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
        await self._execute(self._route(fn))
        self._notify("agent", r.agent_snapshot(agent_id).as_dict())

    async def update_agent(self, definition: dict) -> None:
        """Change an agent's definition at run time (skills, languages, team, queues, wrap-up, max misses),
        keeping its state. The endpoint cannot change here: it is part of Asterisk's config."""
        aid = str(definition.get("id", ""))
        current = self.router._agents[aid].config if aid in self.router.agent_ids() else None
        if current is None:
            from ..acd.errors import UnknownAgent
            raise UnknownAgent(f"unknown agent {aid!r}")
        d = {k: v for k, v in definition.items() if k not in _AGENT_CONFIG_EXTRA}
        d.setdefault("endpoint", current.endpoint)
        d.setdefault("name", current.name)
        ac = agent_from_dict(d)
        if ac.endpoint != current.endpoint:
            raise AcdError(f"agent {aid!r}: the endpoint cannot change at run time ({current.endpoint})")
        await self._execute(self._route(self.router.update_agent, ac))
        self.agent_names[aid] = ac.name
        log.info("agent %s definition updated (skills %s)", aid, dict(ac.skills))
        self._notify("agent", self.router.agent_snapshot(aid).as_dict())

    # ------------------------------------------------------------------------------- decisions
    async def execute(self, decisions: list) -> None:
        """Carry out router decisions (for parts that call the router themselves: ``task_legs``)."""
        await self._execute(decisions)

    def notify(self, kind: str, payload: dict) -> None:
        """Tell the agent pages / listeners (screen pops, agent states)."""
        self._notify(kind, payload)

    async def _execute(self, decisions: list) -> None:
        for d in decisions:
            try:
                await self._execute_one(d)
            except AriError as e:
                log.info("%s: ARI error %s", type(d).__name__, e)
        self._schedule_tick()

    async def _execute_one(self, d: Any) -> None:
        if self.tasks is not None and self.tasks.handles(d):
            await self.tasks.execute(d)      # a callback / voicemail / web request (``task_legs``)
            return
        if isinstance(d, Offer):
            await self._offer(d)
        elif isinstance(d, CancelOffer):
            qc = self.calls.get(d.call_id)
            if qc is not None and qc.leg_id:
                leg, qc.leg_id = qc.leg_id, None
                self.legs.pop(leg, None)
                qc.log.info("cancelling the offer to %s (%s)", d.agent_id, d.reason)
                await self.app.ari.hangup_quietly(leg)
        elif isinstance(d, CallRequeued):
            qc = self.calls.get(d.call_id)
            if qc is not None:
                await self._moh(qc, True)
        elif isinstance(d, QueueExit):
            qc = self.calls.get(d.call_id)
            if qc is not None:     # its CallFinished follows: that one takes the caller back to the flow
                qc.log.info("leaves queue %s: %s%s", d.queue, d.outcome.value, f" ({d.reason})" if d.reason else "")
        elif isinstance(d, CallMoved):
            await self._moved(d)
        elif isinstance(d, AgentAutoPaused):
            log.warning("agent %s auto-paused: %s", d.agent_id, d.reason)
        elif isinstance(d, AutoPauseSuspended):
            log.info("agent %s: %s (%s)", d.agent_id, d.action, d.reason)
            self.app.metrics.auto_pause_suspended(d.action)
        elif isinstance(d, AgentStateChanged):
            if d.old == AgentState.WRAP_UP and d.agent_id in self.wrap_started:
                started = self.wrap_started.pop(d.agent_id)
                self.app.metrics.wrap_up_finished(self._agent_queue.get(d.agent_id, ""),
                                                  time.monotonic() - started)
            self._save_presence(d.agent_id, d.new, d.reason)
            self._notify("agent", self.router.agent_snapshot(d.agent_id).as_dict())
        elif isinstance(d, StartWrapUp):
            self.wrap_started[d.agent_id] = time.monotonic()
        elif isinstance(d, CallFinished):
            await self._finished(d)

    def _save_presence(self, agent_id: str, state: AgentState, reason: str | None) -> None:
        """Persist what outlives a restart: logged in / paused (with its reason) / logged out. The states
        of a call (reserved, on call, wrap-up) count as logged in, so a call writes nothing."""
        presence = ("paused" if state is AgentState.PAUSED else "logged_out" if state is AgentState.LOGGED_OUT
                    else "logged_in")
        rec = (presence, reason if presence == "paused" else None)
        if self.app.storage is None or self._presence.get(agent_id) == rec:
            return
        self._presence[agent_id] = rec
        self.app.storage.set_agent_state(agent_id, *rec)

    async def _offer(self, d: Offer) -> None:
        qc = self.calls.get(d.call_id)
        if qc is None:
            return
        qc.log.info("%s", d.explanation.log_line())
        leg = f"{d.call_id}-a{next(_seq)}"
        qc.leg_id, qc.agent_id = leg, d.agent_id
        qc.legs_tried.append(leg)
        self.legs[leg] = d.call_id
        name = qc.session.customer_name() or qc.session.channel.caller.name or "Caller"
        number = qc.session.caller_raw or "anonymous"
        try:
            await self.app.ari.originate(
                leg, d.endpoint, app_args=["agent", d.call_id], timeout=max(1, int(round(d.ring_timeout))),
                caller_id=f'"{_quote(name)}" <{_quote(number)}>', originator=d.call_id)
        except AriError as e:
            if isinstance(e, Unavailable):
                # a timeout / connection error is our trouble with Asterisk, not the agent's: no miss
                # (else an overload auto-pauses every agent in a cascade). The leg may exist all the same:
                # look again in a moment (this also paces retries while Asterisk is unreachable)
                qc.log.warning("agent leg to %s: %s; checking again in %.0fs", d.endpoint, e, OFFER_CHECK_DELAY)
                asyncio.get_running_loop().call_later(
                    OFFER_CHECK_DELAY, self.app.dispatcher.submit, internal(d.call_id, ("acd-offer-check", leg)))
                return
            # e.g. 500 "Allocation failed": the endpoint is not registered; the next agent is tried
            qc.log.info("agent leg to %s failed at once: %s", d.endpoint, e)
            await self._fail_offer(qc, leg, "unreachable")
            return
        if qc.leg_id != leg:          # cancelled while we were originating
            await self.app.ari.hangup_quietly(leg)
            return
        self._notify("offer", {"agent_id": d.agent_id, "call_id": d.call_id, "queue": d.queue,
                               "explanation": d.explanation.as_dict(), "call": qc.session.screen_pop()})

    @staticmethod
    async def _quietly(step, what: str) -> None:
        try:
            await step
        except NotFound:
            pass
        except AriError as e:
            log.warning("could not %s: %s", what, e)

    def _forget(self, qc: QueuedCall) -> None:
        """Stop tracking a call (idempotent, no await: safe against a racing hang-up of the other leg)."""
        for h in (qc.announce, qc.max_wait):
            if h is not None:
                h.cancel()
        if self.calls.pop(qc.call_id, None) is not None:
            self._closing[qc.call_id] = qc
            while len(self._closing) > 1000:
                self._closing.pop(next(iter(self._closing)))

    async def _end_conversation(self, qc: QueuedCall, by: str) -> None:
        if qc.call_id not in self.calls:
            return
        self._forget(qc)
        leg = qc.leg_id
        qc.log.info("conversation with %s ended by the %s", qc.agent_id, by)
        if qc.agent_id:
            self._agent_queue[qc.agent_id] = qc.queue
        try:
            decisions = self._route(self.router.call_ended, qc.call_id)
        except AcdError as e:
            qc.log.debug("call_ended ignored: %s", e)
            decisions = []
        # each step on its own: a timeout on one (an overloaded Asterisk) must not leave the bridge behind
        # or skip the router's follow-up (wrap-up, the next offer)
        if leg:
            self.legs.pop(leg, None)
            await self._quietly(self.app.ari.hangup_quietly(leg), "hang up the agent leg")
        if by == "error":      # the conversation never worked: nothing for the flow to go on with
            qc.caller_hung_up = True
            await self._quietly(self.app.ari.hangup_quietly(qc.call_id), "hang up the caller")
        # the agent hung up: the caller stays; the bridge goes, and the router's CallFinished (answered)
        # hands the caller back to the flow (on_answered, else the flow hangs up)
        if qc.bridge_id:
            await self._quietly(self.app.ari.destroy_bridge(qc.bridge_id), "destroy the bridge")
        qc.session.outcome = "answered"
        await self._execute(decisions)

    async def _back_to_flow(self, qc: QueuedCall, outcome: CallOutcome) -> None:
        """The one way back from the ACD to the flow, for every outcome the router finishes a call with: the
        caller's queue media stop, its saved queue state is cleared (a restart must not queue it again) and
        the flow gets its ``QueueResult``. Nothing for a caller who is gone (abandoned, hung up by us)."""
        session = qc.session
        if outcome is CallOutcome.ABANDONED or qc.caller_hung_up or getattr(session, "closed", False):
            return
        result = _FLOW_OUTCOME.get(outcome, "timeout")
        if qc.announcement_id:
            await self._quietly(self.app.ari.stop_playback(qc.announcement_id), "stop the announcement")
            qc.announcement_id = None
        await self._moh(qc, False)
        if not qc.refused:
            await self._persist(qc, None)
        if outcome is not CallOutcome.ANSWERED:
            session.outcome = result
        qc.log.info("back to the flow: queue %s %s", qc.queue, result)
        session.queue_outcome(result)

    async def _finished(self, d: CallFinished) -> None:
        rec = d.record
        qc = self.calls.get(rec.call_id) or self._closing.pop(rec.call_id, None)
        refused = qc.refused if qc is not None else rec.outcome in (CallOutcome.FULL,)
        m = self.app.metrics
        if refused:
            m.queue_refused(rec.queue, rec.outcome.value)
        else:
            m.queue_left(rec.queue, rec.outcome, rec.wait_time, short_abandon=rec.short_abandon)
            if rec.talk_time is not None:
                m.talk_finished(rec.queue, rec.talk_time)
        if self.app.storage is not None:
            s = qc.session if qc is not None else None
            extra = {k: v for k, v in (("overflowed_from", list(rec.overflowed_from)), ("reason", rec.reason))
                     if v}
            self.app.storage.add_call_record(rec.as_dict(), wall_offset=self.wall_offset,
                                             caller=(s.e164 or "") if s else "", did=s.did if s else "",
                                             flow=s.flow_name if s else "", extra=extra or None)
        if qc is not None:
            self._forget(qc)
            self._closing.pop(rec.call_id, None)
            await self._back_to_flow(qc, rec.outcome)

    async def _moved(self, d: CallMoved) -> None:
        """The queue's overflow moved a waiting caller (``ivr/acd/moves.py``): same music (the new queue's
        class), the new queue's announcements, its channel's saved state names the new queue."""
        m = self.app.metrics
        m.queue_moved(d.from_queue, d.to_queue, d.wait)
        m.queue_entered(d.to_queue)
        qc = self.calls.get(d.call_id)
        if qc is None:
            return
        qc.log.info("moved from queue %s to queue %s after %.0fs there: %s", d.from_queue, d.to_queue, d.wait,
                    d.reason)
        qc.queue = d.to_queue
        qc.session.queue_name = d.to_queue
        if qc.moh and self._queue_cfg(d.from_queue).moh_class != self._queue_cfg(d.to_queue).moh_class:
            qc.moh = False
            await self._moh(qc, True)
        if qc.announce is not None:
            qc.announce.cancel()
            qc.announce = None
        if qc.announcement_id is None:      # else its PlaybackFinished schedules the next one
            self._schedule_announcement(qc)
        if qc.saved is not None:
            qc.saved = dataclasses.replace(qc.saved, queue=d.to_queue)
            await self._persist(qc, qc.saved)

    async def _persist(self, qc: QueuedCall, state: QueueState | None) -> None:
        """Leave on the caller's channel what a restarted app needs to take the call over."""
        try:
            await self.app.ari.set_var(qc.call_id, QUEUE_VAR, state.encode() if state else "")
        except AriError as e:
            qc.log.debug("queue state not saved on the channel: %s", e)

    # ------------------------------------------------------------------------ adoption (restart)
    async def adopt(self, channels: list[Channel], orphans: set[str]) -> set[str]:
        """Take over what a previous process of the app left on Asterisk (see ``adoption``): conversations
        (bridge ``call-<id>`` with the caller and an agent leg), then waiting callers oldest first. Agent
        legs still ringing are hung up (their caller is re-queued), halves of conversations are ended.
        ``orphans``: ids of channels in our Stasis app that no session owns. Returns the adopted ids."""
        ari = self.app.ari
        by_id = {c.id: c for c in channels}
        adopted: set[str] = set()
        try:
            bridges = await ari.bridges()
        except AriError as e:
            log.warning("adoption: cannot list bridges: %s", e)
            bridges = []
        for b in bridges:
            call_id = call_of_bridge(b.id)
            if call_id is None:
                continue
            if call_id in self.calls or call_id in self.app.sessions:
                continue                   # ours already: a reconnect, not a restart
            caller = by_id.get(call_id) if call_id in b.channels and call_id in orphans else None
            legs = [by_id[c] for c in b.channels if c != call_id and c in by_id]
            agent_id = self.endpoints.get(agent_endpoint_of(legs[0].name)) if len(legs) == 1 else None
            if caller is None or agent_id is None or self.router.agent_snapshot(agent_id).state \
                    == AgentState.ON_CALL:
                log.info("adoption: ending half a conversation in bridge %s", b.id)
                for cid in b.channels:
                    await ari.hangup_quietly(cid)
                    adopted.add(cid)
                try:
                    await ari.destroy_bridge(b.id)
                except AriError:
                    pass
                continue
            await self._adopt_conversation(caller, legs[0], agent_id, b)
            adopted |= {call_id, legs[0].id}
        leftover = []
        for c in channels:              # agent legs still ringing: the caller goes back to its place
            m = AGENT_LEG.match(c.id)
            if m and c.id not in adopted and c.id not in self.legs and m["call"] not in self.calls:
                log.info("adoption: hanging up agent leg %s left ringing", c.id)
                await ari.hangup_quietly(c.id)
                adopted.add(c.id)
                leftover.append(c.id)
        if leftover:
            await self._gone(leftover)   # so the agent's phone is free before it is rung again
        waiting: list[tuple[QueueState, Channel]] = []
        for cid in sorted(orphans - adopted):
            if AGENT_LEG.match(cid):
                continue
            try:
                state = QueueState.decode(await ari.get_var(cid, QUEUE_VAR))
            except AriError:
                continue
            if state is not None and state.queue in self.router.queue_names():
                waiting.append((state, by_id[cid]))
        for state, ch in sorted(waiting, key=lambda w: w[0].joined_at):
            await self._adopt_waiting(ch, state)
            adopted.add(ch.id)
        if adopted:
            log.warning("adopted after a restart: %d conversations, %d waiting callers",
                        sum(1 for qc in self.calls.values() if qc.answered), len(waiting))
        return adopted

    async def _gone(self, ids: list[str], timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                live = {c.id for c in await self.app.ari.channels()}
            except AriError:
                return
            if not live.intersection(ids):
                return
            await asyncio.sleep(0.05)

    def _adopted_session(self, channel: Channel, state: QueueState | None) -> AdoptedCall:
        session = AdoptedCall(self.app, channel, state)
        self.app.sessions[channel.id] = session      # before any await: its hang-up finds it
        return session

    async def _adopt_conversation(self, caller: Channel, leg: Channel, agent_id: str, bridge) -> None:
        ari = self.app.ari
        try:
            state = QueueState.decode(await ari.get_var(caller.id, QUEUE_VAR))
        except AriError:
            state = None
        queue = state.queue if state and state.queue in self.router.queue_names() else None
        if queue is None:   # fall back on the bridge's name ("queue <name>"), then any queue of the agent
            named = str(bridge.raw.get("name", "")).removeprefix("queue ")
            queue = named if named in self.router.queue_names() else self.router.queue_names()[0]
        session = self._adopted_session(caller, state)
        session.agent_id = agent_id
        now_wall = time.time()
        joined = state.joined_at if state else now_wall
        answered = parse_ari_time(bridge.raw.get("creationtime")) or now_wall
        qc = QueuedCall(session, caller.id, queue, wall_to_monotonic(joined), leg_id=leg.id, agent_id=agent_id,
                        bridge_id=bridge.id, answered=True, log=CallLog(log, {"call": caller.id}))
        self.calls[caller.id] = qc
        self.legs[leg.id] = caller.id
        call = Call(caller.id, queue, priority=state.priority if state else 0,
                    extra_skills=_skill_levels(state.extra_skills) if state else {},
                    optional_skills=_skill_weights(state.optional_skills) if state else {},
                    caller={"number": caller.caller.number, "name": session.customer_name()})
        try:
            decisions = self._route(self.router.adopt_conversation, call, agent_id,
                                    waiting_since=wall_to_monotonic(joined),
                                    answered_at=wall_to_monotonic(answered))
        except AcdError as e:
            qc.log.warning("cannot adopt the conversation with %s: %s; ending it", agent_id, e)
            await self._end_conversation(qc, by="error")
            return
        session.queue_wait = max(0.0, answered - joined)
        qc.log.info("adopted the conversation with agent %s in %s", agent_id, bridge.id)
        await self._execute(decisions)

    async def _adopt_waiting(self, channel: Channel, state: QueueState) -> None:
        session = self._adopted_session(channel, state)
        qc = QueuedCall(session, channel.id, state.queue, wall_to_monotonic(state.joined_at),
                        log=CallLog(log, {"call": channel.id}), saved=state)
        self.calls[channel.id] = qc
        call = Call(channel.id, state.queue, priority=state.priority,
                    extra_skills=_skill_levels(state.extra_skills),
                    optional_skills=_skill_weights(state.optional_skills),
                    caller={"number": channel.caller.number, "name": state.name})
        try:
            decisions = self._route(self.router.enqueue, call, waiting_since=qc.entered)
        except AcdError as e:
            qc.log.warning("cannot re-queue the adopted caller: %s", e)
            self.calls.pop(channel.id, None)
            session.queue_outcome("no_agents")
            return
        qc.refused = any(isinstance(d, QueueExit) and d.call_id == qc.call_id for d in decisions)
        qc.log.info("adopted in queue %s (waiting %.0fs)", state.queue, time.time() - state.joined_at)
        if not qc.refused:
            qc.moh = False
            await self._moh(qc, True)
            self._schedule_announcement(qc)
        await self._execute(decisions)

    # ------------------------------------------------------------------------ media for waiting
    async def _moh(self, qc: QueuedCall, on: bool) -> None:
        if on == qc.moh or qc.answered and on:
            return
        qc.moh = on
        moh_class = self._queue_cfg(qc.queue).moh_class
        try:
            if on:
                await self.app.ari.moh_start(qc.call_id, moh_class)
            else:
                await self.app.ari.moh_stop(qc.call_id)
        except AriError as e:
            qc.log.debug("moh %s: %s", "start" if on else "stop", e)

    def _queue_cfg(self, name: str):
        return self.router._queues[name].config

    def _schedule_announcement(self, qc: QueuedCall) -> None:
        freq = self._queue_cfg(qc.queue).announce_frequency
        if not freq or qc.answered:
            return
        if qc.announce is not None:
            qc.announce.cancel()
        qc.announce = asyncio.get_running_loop().call_later(
            freq, self.app.dispatcher.submit, internal(qc.call_id, ("acd-announce", None)))

    async def _announce(self, qc: QueuedCall) -> None:
        """Position and estimated wait (``announcement_media``); nothing for the wait without an estimate."""
        if qc.answered or qc.call_id not in self.calls:
            return
        try:
            snap = self.router.call_snapshot(qc.call_id)
        except AcdError:
            return
        if snap.agent_id is not None:
            self._schedule_announcement(qc)   # ringing an agent: not now
            return
        q = self._queue_cfg(qc.queue)
        media = announcement_media(snap.position if q.announce_position else None,
                                   snap.estimated_wait if q.announce_hold_time else None)
        qc.log.debug("announcement in queue %s: position %s, estimated wait %s", qc.queue, snap.position,
                    "none (no caller left the line lately)" if snap.estimated_wait is None
                    else f"{snap.estimated_wait:.0f}s")
        if not media:
            self._schedule_announcement(qc)
            return
        await self._moh(qc, False)
        qc.announcement_id = f"acd-{qc.call_id}-{next(_seq)}"
        await self.app.ari.play(qc.call_id, qc.announcement_id, media)

    # ----------------------------------------------------------------------------------- timers
    def _schedule_tick(self) -> None:
        at = self.router.next_deadline()
        if at is None or (self._tick_at is not None and self._tick_at <= at and self._tick is not None):
            return
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = at
        delay = max(0.0, at - time.monotonic()) + 0.001
        self._tick = asyncio.get_running_loop().call_later(delay, self._fire_tick)

    def _fire_tick(self) -> None:
        self._tick, self._tick_at = None, None
        self.app.dispatcher.submit(internal("_acd", ("tick", None)))

    def _notify(self, kind: str, payload: dict) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, payload)
            except Exception:
                log.exception("listener failed")


def announcement_media(position: int | None, estimated_wait: float | None) -> list[str]:
    """What a waiting caller hears (Asterisk's app_queue wording): position 1 "you are next", else "there
    are N calls waiting"; then "the estimated hold time is currently M minute(s)", M = the estimate rounded
    up to whole minutes (at least 1). No estimate (None): nothing is said about the wait."""
    media: list[str] = []
    if position:
        media += (["sound:queue-youarenext"] if position == 1
                  else ["sound:queue-thereare", f"number:{position}", "sound:queue-callswaiting"])
    if estimated_wait is not None:
        minutes = max(1, math.ceil(estimated_wait / 60))
        media += ["sound:queue-holdtime", f"number:{minutes}",
                  "sound:queue-minute" if minutes == 1 else "sound:queue-minutes"]
    return media


def _skill_levels(skills) -> dict[str, int]:
    """Required skill levels of a saved restart state: a level off the ACD's scale (an older server clamped
    0-100 flow levels; a hand-edited or corrupt state) is logged and dropped, not clamped and not fatal."""
    out = {}
    for s, lv in dict(skills or {}).items():
        if isinstance(s, str) and s and isinstance(lv, int) and not isinstance(lv, bool) \
                and SKILL_MIN <= lv <= SKILL_MAX:
            out[s] = lv
        else:
            log.warning("saved queue state: dropping required skill %r level %r (not %d..%d)", s, lv,
                        SKILL_MIN, SKILL_MAX)
    return out


def _skill_weights(skills) -> dict[str, float]:
    """Optional skill weights (a flow's ``optional_skills``, a saved state) clamped to 0..100."""
    out = {}
    for s, w in dict(skills or ()).items():
        try:
            w = float(w)
        except (TypeError, ValueError):
            continue
        if not math.isnan(w):
            out[str(s)] = max(0.0, min(100.0, w))
    return out


# the router's outcome of a finished call -> the flow's QueueResult (a flow max_wait is the router's overflow)
_FLOW_OUTCOME = {CallOutcome.ANSWERED: "answered", CallOutcome.TIMEOUT: "timeout",
                 CallOutcome.OVERFLOW: "timeout", CallOutcome.FULL: "full", CallOutcome.NO_AGENTS: "no_agents"}


def _quote(s: str) -> str:
    """A caller-ID part safe inside `"name" <number>`: no controls, bidi overrides or SIP delimiters."""
    return clean_text("".join(c for c in str(s) if c not in '"<>\\'), limit=80)


def _gone_channel(cid: str):
    from ..ari import Channel
    return Channel(cid)
