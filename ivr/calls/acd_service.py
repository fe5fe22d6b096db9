"""The ACD at the edge: runs the pure router, carries out its decisions, feeds it what happens.

* ``AcdService`` owns the callers in queue (``QueuedCall``) and is the one executor of router decisions;
  the parts it delegates to each own their piece: ``live_offers`` (agent legs and conversations),
  ``waiting_media`` (music and announcements), ``presence`` (agents' registration, saved presence, admin
  actions), ``adoption`` (taking over after a restart), ``task_legs`` (callbacks, voicemails, web requests).
* Every way out of the ACD ends in the router's ``CallFinished`` (answered, timeout, flow max_wait =
  ``withdraw``, full, no agents, abandoned), and ``_finished`` is the one place that then hands a caller who
  is still there back to its flow (``_back_to_flow``); ``QueueExit`` is only logged. A queue's overflow
  moving a waiting caller to another queue (``CallMoved``) is no way out: the caller stays in the ACD with
  its music, gets the new queue's announcements, and its saved state names the new queue (``_moved``).
* Router calls are synchronous (no await inside), so the router's state never interleaves; ARI work for
  one decision may interleave with another call's, so every step re-checks that its offer is current.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..acd import (
    AgentAutoPaused,
    AgentState,
    AgentStateChanged,
    AutoPausePolicy,
    AutoPauseSuspended,
    CallFinished,
    CallMoved,
    CallOutcome,
    CallRequeued,
    CancelOffer,
    Offer,
    QueueExit,
    Router,
    StartWrapUp,
    queue_from_dict,
)
from ..acd.errors import AcdError
from ..ari import (
    AriClient,
    AriError,
    Channel,
    ChannelDestroyed,
    ContactStatusChange,
    EndpointStateChange,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ..flow import Enqueue
from ..logsafe import CallLog
from ..metrics import Metrics, QueueSnapshot
from . import adoption
from .clock import Clock, LoopClock
from .events import AcdTick, AnnounceDue, Internal, MaxWaitDue, MusicDue, OfferCheckDue
from .joining import join_call
from .live_config import LiveConfig
from .live_offers import LiveDeps, LiveOffers
from .member import QueuedCall, QueueMember
from .presence import AgentPresence, PresenceDeps, PresenceStore
from .saved_state import QUEUE_VAR, QueueState
from .waiting_media import PLAYBACK_PREFIX, MediaDeps, WaitingMedia

log = logging.getLogger(__name__)


class TaskDecisions(Protocol):
    def handles(self, d: Any) -> bool: ...

    async def execute(self, d: Any) -> None: ...


class AcdStore(PresenceStore, Protocol):
    def add_call_record(self, rec: dict[str, Any], *, wall_offset: float = 0.0, caller: str = "", did: str = "",
                        flow: str = "", extra: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class AcdDeps:
    """What the ACD needs from the rest of the app (no ``App``)."""

    ari: AriClient
    submit: Callable[[Event], None]                 # the dispatcher: events in each call's order
    metrics: Metrics
    queues: tuple[dict[str, Any], ...]              # config's queue definitions
    agents: tuple[dict[str, Any], ...]              # config's agent definitions
    options: dict[str, Any] = field(default_factory=dict)     # config's ``acd:`` section
    store: AcdStore | None = None
    clock: Clock = field(default_factory=LoopClock)
    subscribe: Callable[[str], None] = lambda source: None
    #: a live (flow) session owns this channel: adoption leaves it alone
    has_session: Callable[[str], bool] = lambda channel_id: False
    #: the session of a caller adopted after a restart (registered where its events find it)
    adopted_session: Callable[[Channel, QueueState | None], QueueMember] | None = None


class AcdService:
    """The only writer of the ACD's live bookkeeping: callers in queue (``calls``) and agent legs (``legs``)."""

    def __init__(self, deps: AcdDeps) -> None:
        self.deps = deps
        self.ari = deps.ari
        self.clock = deps.clock
        self.metrics = deps.metrics
        self.options = dict(deps.options)
        self.router = Router([queue_from_dict(q) for q in deps.queues], clock=deps.clock.now,
                             auto_pause=AutoPausePolicy.from_dict(self.options.get("auto_pause")))
        self.wall_offset = deps.clock.wall() - deps.clock.now()
        #: the router's decisions about tasks (not live callers) go there (``App`` sets it)
        self.tasks: TaskDecisions | None = None
        #: agents and queues changed at run time (``live_config``; ``App`` sets it)
        self.live_config: LiveConfig | None = None
        self.listeners: list[Callable[[str, dict], None]] = []   # agent pages / wallboard: (kind, payload)
        self.presence = AgentPresence(
            PresenceDeps(router=self.router, execute=self.execute, route=self.route, notify=self.notify,
                         subscribe=deps.subscribe, store=deps.store),
            deps.agents, auto_login=bool(self.options.get("auto_login", True)))
        self.media = WaitingMedia(MediaDeps(ari=deps.ari, router=self.router, clock=deps.clock,
                                            submit=deps.submit))
        self.live = LiveOffers(LiveDeps(ari=deps.ari, router=self.router, media=self.media, clock=deps.clock,
                                        submit=deps.submit), self)
        self.calls: dict[str, QueuedCall] = {}
        self._closing: dict[str, QueuedCall] = {}    # left the queue; kept until the router's CallFinished
        self.wrap_started: dict[str, float] = {}
        self._agent_queue: dict[str, str] = {}       # queue of each agent's last call (wrap-up metrics)
        self._tick: Any = None
        self._tick_at: float | None = None
        for q in self.router.queue_names():
            overflow = self.router.queue_config(q).overflow
            self.metrics.declare_queue(q, self.router.queue_snapshot(q).service_level_target[1],
                                       overflow_to=overflow.queue if overflow is not None else None)

    # ------------------------------------------------------------------------------- live state
    @property
    def legs(self) -> dict[str, str]:
        """Agent leg channel id -> call id (owned by ``live``)."""
        return self.live.legs

    def serving_agents(self, name: str) -> tuple[dict[str, int], dict[str, int]]:
        return self.presence.serving_agents(name)

    def queue_snapshots(self) -> list[QueueSnapshot]:
        return self.presence.queue_snapshots()

    async def agent_action(self, agent_id: str, action: str, reason: str | None = None) -> None:
        await self.presence.action(agent_id, action, reason)

    async def update_agent(self, definition: dict) -> None:
        if self.live_config is not None:
            await self.live_config.update_agent(str(definition.get("id", "")), definition)
        else:
            await self.presence.update(definition)

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
            c.cancel_timers()

    # ----------------------------------------------------------------------------- router calls
    def route(self, fn: Callable[..., list], *args: Any, **kw: Any) -> list:
        """A router call, timed for ``ivr_routing_decision_seconds``."""
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.metrics.routing_decision(time.perf_counter() - t0)

    async def enqueue(self, session: QueueMember, cmd: Enqueue) -> None:
        now = self.clock.now()
        cid = session.channel_id
        caller = {"number": session.caller_raw, "name": session.customer_name()}
        try:
            call = join_call(cid, cmd, session.hints, caller, self.router, now)
            qc = self.calls[cid] = QueuedCall(session, cid, call.queue, now, log=CallLog(log, {"call": cid}))
            decisions = self.route(self.router.enqueue, call)
        except AcdError as e:       # e.g. a skill level off the scale: logged, the flow goes on as no_agents
            log.error("call %s: queue %s refused the call: %s", cid, cmd.queue, e)
            self.calls.pop(cid, None)
            session.queue_outcome("no_agents")
            return
        qc.refused = any(isinstance(d, QueueExit) and d.call_id == qc.call_id for d in decisions)
        if not qc.refused:
            self.metrics.queue_entered(call.queue)
            qc.log.info("joined queue %s (priority %d, extra skills %s, optional skills %s%s)", call.queue,
                        call.priority, dict(call.extra_skills) or "-", dict(call.optional_skills) or "-",
                        f", preferred agent {call.preferred_agent}" if call.preferred_agent else "")
            if cmd.max_wait:
                qc.max_wait = self.clock.call_later(cmd.max_wait, self.deps.submit, MaxWaitDue(key=qc.call_id))
        if not qc.refused:
            qc.saved = QueueState(call.queue, self.clock.wall(), call.priority, dict(call.extra_skills),
                                  caller["name"] or "", session.flow_name, session.did, dict(call.optional_skills))
        # the offer goes out first (the agent's phone rings sooner; its leg carries the saved queue state),
        # then music and the saved state on the caller's channel (both at once). With an agent's phone
        # ringing both wait a moment (``MUSIC_DELAY``): an agent who answers meanwhile finds `answered` set,
        # and Asterisk starts no music and sets no variable for that call
        await self.execute(decisions)
        if not qc.refused and qc.call_id in self.calls:
            if qc.leg_id is not None:
                await self.media.joined(qc, ringing=True)
            else:
                await asyncio.gather(self.media.joined(qc, ringing=False), self._save(qc))
            self.media.schedule(qc)

    async def caller_gone(self, session: QueueMember) -> None:
        qc = self.calls.get(session.channel_id)
        if qc is None:
            return
        if qc.answered:
            await self.live.end_conversation(qc, by="caller")
        else:
            await self.execute(self.route(self.router.abandon, qc.call_id))

    # ----------------------------------------------------------------------------------- events
    async def on_stasis_start(self, ev: StasisStart) -> bool:
        return await self.live.answered(ev)

    async def on_channel_gone(self, ev: Event) -> None:
        if not isinstance(ev, (StasisEnd, ChannelDestroyed)) or await self.live.leg_gone(ev):
            return
        stale = self.calls.get(ev.channel.id)
        if stale is not None:      # a caller of ours whose session is already gone: end its queue stay
            stale.log.info("caller channel gone with no session; leaving the queue")
            await self.caller_gone(stale.session)

    # ----------------------------------------------------------------------------------- events
    async def on_event(self, ev: Event) -> bool:
        if isinstance(ev, AcdTick):
            self._tick, self._tick_at = None, None
            await self.execute(self.route(self.router.tick))
            return True
        if isinstance(ev, (AnnounceDue, MaxWaitDue, OfferCheckDue, MusicDue)):
            qc = self.calls.get(ev.key)
            if qc is None:
                return True
            if isinstance(ev, AnnounceDue):
                await self.media.announce(qc)
            elif isinstance(ev, MusicDue):
                await asyncio.gather(self.media.music_due(qc), self._save(qc))
            elif isinstance(ev, OfferCheckDue):
                await self.live.check(qc, ev.leg)
            elif not qc.answered:
                await self._max_wait(qc)
            return True
        if isinstance(ev, Internal):
            return False
        if isinstance(ev, (EndpointStateChange, ContactStatusChange)):
            return await self.presence.on_event(ev)
        if isinstance(ev, PlaybackFinished) and ev.playback.id.startswith(PLAYBACK_PREFIX):
            qc = self.calls.get(ev.playback.channel_id or "")
            if qc is not None:
                await self.media.announcement_finished(qc, ev.playback.id)
            return True
        return ev.channel_id in self.legs   # agent-leg events other than start/end: nothing to do

    async def _max_wait(self, qc: QueuedCall) -> None:
        # the router's CallFinished (overflow) takes the caller back to the flow as `timeout`
        qc.log.info("flow max_wait reached in queue %s", qc.queue)
        try:
            decisions = self.route(self.router.withdraw, qc.call_id)
        except AcdError as e:
            qc.log.warning("withdraw refused: %s", e)
            return
        await self.execute(decisions)

    async def reconcile(self) -> None:
        """After every (re)connect: presence from GET /endpoints; legs and bridges that vanished."""
        try:
            endpoints = {e.name: e.state == "online" for e in await self.ari.endpoints()}
            channels = {c.id for c in await self.ari.channels()}
        except AriError as e:
            log.warning("ACD reconcile failed: %s", e)
            return
        await self.presence.reconcile(endpoints)
        await self.live.reconcile(channels)

    # ------------------------------------------------------------------------------- decisions
    async def execute(self, decisions: list) -> None:
        """Carry out router decisions (also for the parts that call the router themselves)."""
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
            await self.live.offer(d)
        elif isinstance(d, CancelOffer):
            await self.live.cancel(d)
        elif isinstance(d, CallRequeued):
            qc = self.calls.get(d.call_id)
            if qc is not None:
                await asyncio.gather(self.media.moh(qc, True), self._save(qc))
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
            self.metrics.auto_pause_suspended(d.action)
        elif isinstance(d, AgentStateChanged):
            if d.old == AgentState.WRAP_UP and d.agent_id in self.wrap_started:
                started = self.wrap_started.pop(d.agent_id)
                self.metrics.wrap_up_finished(self._agent_queue.get(d.agent_id, ""), self.clock.now() - started)
            self.presence.save(d.agent_id, d.new, d.reason)
            self.notify("agent", self.router.agent_snapshot(d.agent_id).as_dict())
        elif isinstance(d, StartWrapUp):
            self.wrap_started[d.agent_id] = self.clock.now()
        elif isinstance(d, CallFinished):
            await self._finished(d)

    def forget(self, qc: QueuedCall) -> bool:
        """Stop tracking a call (idempotent, no await: safe against a racing hang-up of the other leg).
        False when it was not tracked any more."""
        qc.cancel_timers()
        if self.calls.pop(qc.call_id, None) is None:
            return False
        self._closing[qc.call_id] = qc
        while len(self._closing) > 1000:
            self._closing.pop(next(iter(self._closing)))
        return True

    async def _back_to_flow(self, qc: QueuedCall, outcome: CallOutcome) -> None:
        """The one way back from the ACD to the flow, for every outcome the router finishes a call with: the
        caller's queue media stop, its saved queue state is cleared (a restart must not queue it again) and
        the flow gets its ``QueueResult``. Nothing for a caller who is gone (abandoned, hung up by us)."""
        session = qc.session
        if outcome is CallOutcome.ABANDONED or qc.caller_hung_up or session.closed:
            return
        result = outcome.flow_result.value
        await self.media.stop(qc)
        if qc.persisted:
            await self._persist(qc, None)
        if outcome is not CallOutcome.ANSWERED:
            session.outcome = result
        qc.log.info("back to the flow: queue %s %s", qc.queue, result)
        session.queue_outcome(result)

    async def _finished(self, d: CallFinished) -> None:
        rec = d.record
        qc = self.calls.get(rec.call_id) or self._closing.pop(rec.call_id, None)
        refused = qc.refused if qc is not None else rec.outcome in (CallOutcome.FULL,)
        m = self.metrics
        if refused:
            m.queue_refused(rec.queue, rec.outcome.value)
        else:
            m.queue_left(rec.queue, rec.outcome, rec.wait_time, short_abandon=rec.short_abandon)
            if rec.talk_time is not None:
                m.talk_finished(rec.queue, rec.talk_time)
        if self.deps.store is not None:
            s = qc.session if qc is not None else None
            extra = {k: v for k, v in (("overflowed_from", list(rec.overflowed_from)), ("reason", rec.reason))
                     if v}
            self.deps.store.add_call_record(rec.as_dict(), wall_offset=self.wall_offset,
                                            caller=(s.e164 or "") if s else "", did=s.did if s else "",
                                            flow=s.flow_name if s else "", extra=extra or None)
        if qc is not None:
            self.forget(qc)
            self._closing.pop(rec.call_id, None)
            await self._back_to_flow(qc, rec.outcome)

    async def _moved(self, d: CallMoved) -> None:
        """The queue's overflow moved a waiting caller (``ivr/acd/moves.py``): same music (the new queue's
        class), the new queue's announcements, its channel's saved state names the new queue."""
        m = self.metrics
        m.queue_moved(d.from_queue, d.to_queue, d.wait)
        m.queue_entered(d.to_queue)
        qc = self.calls.get(d.call_id)
        if qc is None:
            return
        qc.log.info("moved from queue %s to queue %s after %.0fs there: %s", d.from_queue, d.to_queue, d.wait,
                    d.reason)
        qc.queue = d.to_queue
        qc.session.queue_name = d.to_queue
        await self.media.moved(qc, d.from_queue)
        if qc.saved is not None:
            qc.saved = dataclasses.replace(qc.saved, queue=d.to_queue)
            if qc.persisted:
                await self._persist(qc, qc.saved)

    async def _save(self, qc: QueuedCall) -> None:
        """The caller waits (no agent's phone rang, or none answered within ``MUSIC_DELAY``): its channel
        carries its queue state from now on. Before that, the ringing agent leg carries it (``LiveOffers``
        originates the leg with it), so a restart in that moment re-queues the caller all the same
        (``adoption``); a call answered at once costs no variable on Asterisk."""
        if qc.saved is not None and not qc.persisted and not qc.answered:
            await self._persist(qc, qc.saved)

    async def _persist(self, qc: QueuedCall, state: QueueState | None) -> None:
        """Leave on the caller's channel what a restarted app needs to take the call over."""
        try:
            await self.ari.set_var(qc.call_id, QUEUE_VAR, state.encode() if state else "")
            qc.persisted = state is not None
        except AriError as e:
            qc.log.debug("queue state not saved on the channel: %s", e)

    # ------------------------------------------------------------------------ adoption (restart)
    async def adopt(self, channels: list[Channel], orphans: set[str]) -> set[str]:
        """Take over what a previous process of the app left on Asterisk (``adoption.adopt``)."""
        if self.deps.adopted_session is None:
            return set()
        return await adoption.adopt(self, adoption.AdoptionDeps(self.ari, self.clock, self.deps.adopted_session),
                                    channels, orphans)

    # the host side of ``adoption.AdoptionHost`` and ``live_offers.LiveHost``
    def call(self, call_id: str) -> QueuedCall | None:
        return self.calls.get(call_id)

    def agent_left_call(self, agent_id: str, queue: str) -> None:
        self._agent_queue[agent_id] = queue

    def tracks(self, call_id: str) -> bool:
        return call_id in self.calls or self.deps.has_session(call_id)

    def owns_leg(self, leg: str) -> bool:
        return leg in self.legs

    def agent_of(self, endpoint: str) -> str | None:
        return self.presence.agent_of(endpoint)

    def track(self, qc: QueuedCall) -> None:
        self.calls[qc.call_id] = qc
        if qc.leg_id:
            self.legs[qc.leg_id] = qc.call_id

    def untrack(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    async def end_conversation(self, qc: QueuedCall, by: str) -> None:
        await self.live.end_conversation(qc, by)

    async def adopted_waits(self, qc: QueuedCall) -> None:
        qc.moh = False
        await asyncio.gather(self.media.moh(qc, True), self._save(qc))
        self.media.schedule(qc)

    # ----------------------------------------------------------------------------------- timers
    def _schedule_tick(self) -> None:
        at = self.router.next_deadline()
        if at is None or (self._tick_at is not None and self._tick_at <= at and self._tick is not None):
            return
        if self._tick is not None:
            self._tick.cancel()
        self._tick_at = at
        delay = max(0.0, at - self.clock.now()) + 0.001
        self._tick = self.clock.call_later(delay, self.deps.submit, AcdTick())

    def notify(self, kind: str, payload: dict) -> None:
        """Tell the agent pages / listeners (screen pops, agent states)."""
        for fn in list(self.listeners):
            try:
                fn(kind, payload)
            except Exception:
                log.exception("listener failed")

