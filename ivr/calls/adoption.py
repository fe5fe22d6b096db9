"""Surviving a restart of the app (even SIGKILL): taking over what an earlier process left on Asterisk.

Asterisk keeps the app's channels and bridges when the app dies: a waiting caller keeps hearing music on
hold, a bridged conversation goes on. What the new process needs to take them over is on Asterisk too
(``saved_state``):
* a waiting caller carries the channel variable ``IVR_ACD`` (queue, when it joined, priority, extra
  and optional skills, customer name; set when it waits, cleared when it leaves without an agent), so the
  callers are re-queued oldest first with their original wait. Before it waits (an agent's phone rang as it
  joined, less than ``MUSIC_DELAY`` ago) the ringing agent leg carries it, from its originate;
* a conversation is the bridge ``call-<caller channel id>`` holding the caller and the agent leg
  ``<caller channel id>-a<n>`` whose channel name gives the agent's endpoint.
The caller's IVR position is not persisted: an adopted caller whose queue stay ends without an agent
(timeout, no agents) is told goodbye and hung up instead of resuming the flow (``AdoptedCall``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..acd import AgentState, Call, QueueExit, Router
from ..acd.errors import AcdError
from ..ari import AriError, Bridge, Channel, Event, PlaybackFinished
from ..logsafe import CallLog, mask_number
from .clock import Clock, to_monotonic
from .events import QueueDone
from .ids import AGENT_LEG, call_of_bridge
from .member import QueuedCall, QueueMember
from .saved_state import QUEUE_VAR, QueueState, agent_endpoint_of, parse_ari_time
from .skills import skill_levels, skill_weights

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- the adopted caller
class AdoptedAri(Protocol):
    async def hangup_quietly(self, channel_id: str) -> None: ...

    async def play(self, channel_id: str, playback_id: str, media: Any, lang: str | None = None) -> Any: ...


@dataclass(frozen=True)
class AdoptedDeps:
    ari: AdoptedAri
    submit: Callable[[Event], None]
    #: the ACD's "this caller is gone" (None without an ACD)
    caller_gone: Callable[[QueueMember], Awaitable[None]] | None
    clock: Clock


class AdoptedCall:
    """The session of a caller taken over after a restart (in queue or talking to an agent)."""

    adopted = True

    def __init__(self, deps: AdoptedDeps, channel: Channel, state: QueueState | None) -> None:
        self.deps = deps
        self.channel = channel
        self.channel_id = channel.id
        self.log = CallLog(log, {"call": channel.id})
        self.caller_raw = channel.caller.number
        self.state = state
        self.did = (state.did if state else "") or channel.exten
        self.flow_name = state.flow if state else ""
        self.started_at = state.joined_at if state else deps.clock.wall()
        self.e164: str | None = None
        self.hints: Any = None
        self.crm_result: Any = None
        self.in_queue = True
        self.queue_name = state.queue if state else None
        self.queue_wait = 0.0
        self.agent_id: str | None = None
        self.outcome = "queued"
        self.closed = False
        self._bye_id = f"{channel.id}-bye"

    async def start(self) -> None:
        self.log.info("adopted after a restart: caller %s in %s", mask_number(self.caller_raw),
                      self.queue_name or "a conversation")

    async def on_event(self, ev: Event) -> None:
        if self.closed:
            return
        ari = self.deps.ari
        if isinstance(ev, PlaybackFinished) and ev.playback.id == self._bye_id:
            await ari.hangup_quietly(self.channel_id)
            return
        if not isinstance(ev, QueueDone):
            return
        self.in_queue = False
        if ev.outcome == "answered":
            await ari.hangup_quietly(self.channel_id)
            return
        # the flow that would have handled this outcome cannot be resumed: say goodbye and hang up
        self.log.info("queue outcome %s for an adopted call: goodbye", ev.outcome)
        try:
            await ari.play(self.channel_id, self._bye_id, "sound:vm-goodbye")
        except AriError:
            await ari.hangup_quietly(self.channel_id)

    async def ended(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.in_queue and self.deps.caller_gone is not None:
            await self.deps.caller_gone(self)

    def customer_name(self) -> str:
        return self.state.name if self.state else ""

    def screen_pop(self) -> dict[str, Any]:
        return {"call_id": self.channel_id, "did": self.did, "flow": self.flow_name,
                "caller": mask_number(self.caller_raw), "customer": None, "known": False,
                "repeat_caller": False, "last_agent": None, "flags": ["adopted"], "ivr_path": [], "keys": "",
                "queue": self.queue_name, "waiting_since": self.started_at}

    def queue_outcome(self, outcome: str) -> None:
        self.deps.submit(QueueDone(key=self.channel_id, outcome=outcome))


# ---------------------------------------------------------------------- the take-over itself
class AdoptionAri(Protocol):
    async def bridges(self) -> list[Bridge]: ...

    async def channels(self) -> list[Channel]: ...

    async def get_var(self, channel_id: str, variable: str) -> str: ...

    async def hangup_quietly(self, channel_id: str) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


class AdoptionHost(Protocol):
    """What the ACD lends the take-over: its bookkeeping and its executor."""

    router: Router

    def tracks(self, call_id: str) -> bool: ...

    def owns_leg(self, leg: str) -> bool: ...

    def agent_of(self, endpoint: str) -> str | None: ...

    def track(self, qc: QueuedCall) -> None: ...

    def untrack(self, call_id: str) -> None: ...

    def route(self, fn: Callable[..., list], *args: Any, **kw: Any) -> list: ...

    async def execute(self, decisions: list) -> None: ...

    async def end_conversation(self, qc: QueuedCall, by: str) -> None: ...

    async def adopted_waits(self, qc: QueuedCall) -> None:
        """The adopted caller waits: music, announcements, its queue state on its channel."""
        ...


@dataclass(frozen=True)
class AdoptionDeps:
    ari: AdoptionAri
    clock: Clock
    #: the session of an adopted caller, registered where its channel's events find it
    new_session: Callable[[Channel, QueueState | None], QueueMember]


async def adopt(host: AdoptionHost, deps: AdoptionDeps, channels: list[Channel], orphans: set[str]) -> set[str]:
    """Take over conversations (bridge ``call-<id>`` with the caller and an agent leg), then waiting callers
    oldest first. Agent legs still ringing are hung up (their caller is re-queued), halves of
    conversations are ended. ``orphans``: ids of channels in our Stasis app that no session owns.
    Returns the adopted ids."""
    ari = deps.ari
    by_id = {c.id: c for c in channels}
    adopted: set[str] = set()
    try:
        bridges = await ari.bridges()
    except AriError as e:
        log.warning("adoption: cannot list bridges: %s", e)
        bridges = []
    conversations = 0
    for b in bridges:
        call_id = call_of_bridge(b.id)
        if call_id is None or host.tracks(call_id):
            continue                   # not a call bridge, or ours already: a reconnect, not a restart
        caller = by_id.get(call_id) if call_id in b.channels and call_id in orphans else None
        legs = [by_id[c] for c in b.channels if c != call_id and c in by_id]
        agent_id = host.agent_of(agent_endpoint_of(legs[0].name)) if len(legs) == 1 else None
        if caller is None or agent_id is None or host.router.agent_snapshot(agent_id).state \
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
        conversations += await _adopt_conversation(host, deps, caller, legs[0], agent_id, b)
        adopted |= {call_id, legs[0].id}
    leftover = []
    from_legs: dict[str, QueueState] = {}
    for c in channels:              # agent legs still ringing: the caller goes back to its place
        m = AGENT_LEG.match(c.id)
        if m and c.id not in adopted and not host.owns_leg(c.id) and not host.tracks(m["call"]):
            leg_state = await _saved_state(ari, c.id)     # the caller's, if its own channel has none yet
            if leg_state is not None:
                from_legs[m["call"]] = leg_state
            log.info("adoption: hanging up agent leg %s left ringing", c.id)
            await ari.hangup_quietly(c.id)
            adopted.add(c.id)
            leftover.append(c.id)
    if leftover:
        await _gone(deps, leftover)   # so the agent's phone is free before it is rung again
    waiting: list[tuple[QueueState, Channel, bool]] = []
    for cid in sorted(orphans - adopted):
        if AGENT_LEG.match(cid):
            continue
        state = await _saved_state(ari, cid)      # none (a 404 on Asterisk 22) before the caller waited
        on_caller = state is not None
        state = state or from_legs.get(cid)
        if state is not None and state.queue in host.router.queue_names():
            waiting.append((state, by_id[cid], on_caller))
    for state, ch, on_caller in sorted(waiting, key=lambda w: w[0].joined_at):
        await adopt_waiting(host, deps, ch, state, persisted=on_caller)
        adopted.add(ch.id)
    if adopted:
        log.warning("adopted after a restart: %d conversations, %d waiting callers", conversations, len(waiting))
    return adopted


async def _gone(deps: AdoptionDeps, ids: list[str], timeout: float = 2.0) -> None:
    deadline = deps.clock.now() + timeout
    while deps.clock.now() < deadline:
        try:
            live = {c.id for c in await deps.ari.channels()}
        except AriError:
            return
        if not live.intersection(ids):
            return
        await asyncio.sleep(0.05)


async def _adopt_conversation(host: AdoptionHost, deps: AdoptionDeps, caller: Channel, leg: Channel,
                              agent_id: str, bridge: Bridge) -> int:
    # the caller's channel carries its queue state once it waited; one answered at once has it on the leg
    state = await _saved_state(deps.ari, caller.id) or await _saved_state(deps.ari, leg.id)
    queues = host.router.queue_names()
    queue = state.queue if state and state.queue in queues else None
    if queue is None:   # fall back on the bridge's name ("queue <name>"), then any queue of the agent
        named = str(bridge.raw.get("name", "")).removeprefix("queue ")
        queue = named if named in queues else queues[0]
    session = deps.new_session(caller, state)
    session.agent_id = agent_id
    now_wall = deps.clock.wall()
    joined = state.joined_at if state else now_wall
    answered = parse_ari_time(bridge.raw.get("creationtime")) or now_wall
    qc = QueuedCall(session, caller.id, queue, to_monotonic(deps.clock, joined), leg_id=leg.id,
                    agent_id=agent_id, bridge_id=bridge.id, answered=True, log=CallLog(log, {"call": caller.id}))
    host.track(qc)
    call = Call(caller.id, queue, priority=state.priority if state else 0,
                extra_skills=skill_levels(state.extra_skills) if state else {},
                optional_skills=skill_weights(state.optional_skills) if state else {},
                caller={"number": caller.caller.number, "name": session.customer_name()})
    try:
        decisions = host.route(host.router.adopt_conversation, call, agent_id,
                               waiting_since=to_monotonic(deps.clock, joined),
                               answered_at=to_monotonic(deps.clock, answered))
    except AcdError as e:
        qc.log.warning("cannot adopt the conversation with %s: %s; ending it", agent_id, e)
        await host.end_conversation(qc, by="error")
        return 0
    session.queue_wait = max(0.0, answered - joined)
    qc.log.info("adopted the conversation with agent %s in %s", agent_id, bridge.id)
    await host.execute(decisions)
    return 1


async def _saved_state(ari: AdoptionAri, channel_id: str) -> QueueState | None:
    try:
        return QueueState.decode(await ari.get_var(channel_id, QUEUE_VAR))
    except AriError:
        return None


async def adopt_waiting(host: AdoptionHost, deps: AdoptionDeps, channel: Channel, state: QueueState, *,
                        persisted: bool = True) -> None:
    """Re-queue a caller with its saved state; ``persisted``: its own channel carries it (else it came from
    the agent leg that rang for it, and the caller's channel gets it when it waits)."""
    session = deps.new_session(channel, state)
    qc = QueuedCall(session, channel.id, state.queue, to_monotonic(deps.clock, state.joined_at),
                    log=CallLog(log, {"call": channel.id}), saved=state, persisted=persisted)
    host.track(qc)
    call = Call(channel.id, state.queue, priority=state.priority, extra_skills=skill_levels(state.extra_skills),
                optional_skills=skill_weights(state.optional_skills),
                caller={"number": channel.caller.number, "name": state.name})
    try:
        decisions = host.route(host.router.enqueue, call, waiting_since=qc.entered)
    except AcdError as e:
        qc.log.warning("cannot re-queue the adopted caller: %s", e)
        host.untrack(channel.id)
        session.queue_outcome("no_agents")
        return
    qc.refused = any(isinstance(d, QueueExit) and d.call_id == qc.call_id for d in decisions)
    qc.log.info("adopted in queue %s (waiting %.0fs)", state.queue, deps.clock.wall() - state.joined_at)
    if not qc.refused:
        await host.adopted_waits(qc)
    await host.execute(decisions)
