"""The connector for live callers: turns the router's offers into agent legs and answered legs into
conversations, and tells the router what became of them.

* An ``Offer`` originates the agent leg with a known channel id ``<call>-a<n>``, the customer's name as
  caller ID, back into our app with appArgs ``agent,<call>``.
* The agent leg's StasisStart means the agent answered: music stops, both legs join a ``mixing,dtmf_events``
  bridge with the deterministic id ``call-<call>``.
* An agent leg that ends before answering (no answer, busy, congestion, unreachable) is an offer failure:
  the router puts the call back in its place and tries the next agent. An originate that timed out is our
  trouble with Asterisk, not the agent's: no miss, and the leg is looked for again a moment later.
* The end of a conversation (either side, or a bridge that could not be made) takes each cleanup step on
  its own, so a timeout on one never leaves a bridge or a leg behind.

Owns ``legs`` (agent leg -> call id); the caller's ``QueuedCall`` is the ACD's (``LiveHost``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..acd import CancelOffer, Offer, Router
from ..acd.errors import AcdError
from ..ari import (
    AriClient,
    AriError,
    Channel,
    ChannelDestroyed,
    Event,
    NotFound,
    StasisEnd,
    StasisStart,
    Unavailable,
)
from ..crm.model import clean_text
from .clock import Clock
from .events import OfferCheckDue
from .ids import bridge_id, sequence
from .member import QueuedCall
from .saved_state import QUEUE_VAR
from .waiting_media import WaitingMedia

log = logging.getLogger(__name__)

# Q.850 causes of an agent leg that ended before answering -> offer failure reason
_CAUSES = {16: "normal", 17: "busy", 18: "no-response", 19: "no-answer", 21: "rejected", 34: "congestion",
           20: "unregistered", 3: "unreachable", 38: "network-down"}
OFFER_CHECK_DELAY = 2.0     # seconds before looking for an agent leg whose originate timed out
_seq = sequence()     # process-unique numbers for ids on Asterisk (ivr/calls/ids.py)


class LiveHost(Protocol):
    """What the ACD lends this connector."""

    def call(self, call_id: str) -> QueuedCall | None: ...

    def forget(self, qc: QueuedCall) -> bool:
        """Stop tracking the call; False when it was not tracked any more."""
        ...

    def route(self, fn: Callable[..., list], *args: Any, **kw: Any) -> list: ...

    async def execute(self, decisions: list) -> None: ...

    def notify(self, kind: str, payload: dict) -> None: ...

    def agent_left_call(self, agent_id: str, queue: str) -> None: ...


@dataclass(frozen=True)
class LiveDeps:
    ari: AriClient
    router: Router
    media: WaitingMedia
    clock: Clock
    submit: Callable[[Event], None]


class LiveOffers:
    def __init__(self, deps: LiveDeps, host: LiveHost) -> None:
        self.deps = deps
        self.ari = deps.ari
        self.host = host
        self.legs: dict[str, str] = {}               # agent leg channel id -> call id

    async def offer(self, d: Offer) -> None:
        qc = self.host.call(d.call_id)
        if qc is None:
            return
        qc.log.info("%s", d.explanation.log_line())
        leg = f"{d.call_id}-a{next(_seq)}"
        qc.leg_id, qc.agent_id = leg, d.agent_id
        qc.legs_tried.append(leg)
        self.legs[leg] = d.call_id
        name = qc.session.customer_name() or qc.session.channel.caller.name or "Caller"
        number = qc.session.caller_raw or "anonymous"
        # until the caller's own channel carries its queue state (it waits: ``AcdService._save``), the leg
        # does, so a restart while the agent's phone rings still re-queues the caller (``adoption``)
        saved = {QUEUE_VAR: qc.saved.encode()} if qc.saved is not None and not qc.persisted else None
        try:
            await self.ari.originate(
                leg, d.endpoint, app_args=["agent", d.call_id], timeout=max(1, int(round(d.ring_timeout))),
                caller_id=f'"{_quote(name)}" <{_quote(number)}>', originator=d.call_id, variables=saved)
        except AriError as e:
            if isinstance(e, Unavailable):
                # a timeout / connection error is our trouble with Asterisk, not the agent's: no miss
                # (else an overload auto-pauses every agent in a cascade). The leg may exist all the same:
                # look again in a moment (this also paces retries while Asterisk is unreachable)
                qc.log.warning("agent leg to %s: %s; checking again in %.0fs", d.endpoint, e, OFFER_CHECK_DELAY)
                self.deps.clock.call_later(OFFER_CHECK_DELAY, self.deps.submit,
                                           OfferCheckDue(key=d.call_id, leg=leg))
                return
            # Asterisk refused the originate (e.g. an endpoint it does not know): the next agent is tried
            qc.log.info("agent leg to %s failed at once: %s", d.endpoint, e)
            await self.fail(qc, leg, "unreachable")
            return
        if qc.leg_id != leg:          # cancelled while we were originating
            await self.ari.hangup_quietly(leg)
            return
        self.host.notify("offer", {"agent_id": d.agent_id, "call_id": d.call_id, "queue": d.queue,
                                   "explanation": d.explanation.as_dict(), "call": qc.session.screen_pop()})

    async def cancel(self, d: CancelOffer) -> None:
        qc = self.host.call(d.call_id)
        if qc is not None and qc.leg_id:
            leg, qc.leg_id = qc.leg_id, None
            self.legs.pop(leg, None)
            qc.log.info("cancelling the offer to %s (%s)", d.agent_id, d.reason)
            await self.ari.hangup_quietly(leg)

    async def answered(self, ev: StasisStart) -> bool:
        """An agent leg of ours answered: both legs join the bridge ``call-<call>``."""
        if ev.args[:1] != ("agent",):
            return False
        leg = ev.channel.id
        call_id = ev.args[1] if len(ev.args) > 1 else ""
        qc = self.host.call(call_id)
        if qc is None or qc.leg_id != leg or qc.answered:
            log.info("agent leg %s answered for a call that is gone; hanging it up", leg)
            self.legs.pop(leg, None)
            await self.ari.hangup_quietly(leg)
            return True
        qc.answered = True
        try:
            decisions = self.host.route(self.deps.router.offer_answered, call_id)
        except AcdError as e:
            qc.log.warning("offer_answered refused: %s; hanging up the agent leg", e)
            qc.answered = False
            await self.ari.hangup_quietly(leg)
            return True
        qc.cancel_timers()
        qc.bridge_id = bridge_id(call_id)
        try:
            await self.deps.media.stop(qc)
            await self.ari.create_bridge(qc.bridge_id, "mixing,dtmf_events", name=f"queue {qc.queue}")
            await self.ari.add_channel(qc.bridge_id, [call_id, leg])
            qc.session.agent_id = qc.agent_id
            qc.session.queue_wait = self.deps.clock.now() - qc.entered
            qc.log.info("agent %s answered; bridged in %s", qc.agent_id, qc.bridge_id)
        except AriError as e:
            qc.log.warning("bridging failed (%s); ending the conversation", e)
            await self.end_conversation(qc, by="error")
        await self.host.execute(decisions)
        self.host.notify("call", {"call_id": call_id, "agent_id": qc.agent_id, "state": "answered"})
        return True

    async def leg_gone(self, ev: StasisEnd | ChannelDestroyed) -> bool:
        """An agent leg ended: the conversation ends, or (before answering) the offer failed. False when
        the channel is no agent leg of ours."""
        leg = ev.channel.id
        call_id = self.legs.pop(leg, None)
        if call_id is None:
            return False
        qc = self.host.call(call_id)
        if qc is None or qc.leg_id != leg:
            return True
        if qc.answered:
            await self.end_conversation(qc, by="agent")
            return True
        cause = ev.cause if isinstance(ev, ChannelDestroyed) else 0
        reason = _CAUSES.get(cause, f"cause-{cause}")
        qc.log.info("agent %s did not take the call (%s)", qc.agent_id, reason)
        await self.fail(qc, leg, reason)
        return True

    async def check(self, qc: QueuedCall, leg: str) -> None:
        """After an originate that timed out: the leg exists (events will tell) or the offer failed (no
        miss: it was not the agent's fault)."""
        if qc.leg_id != leg or qc.answered:
            return
        try:
            await self.ari.channel(leg)
            return                                  # it exists: it rings, answers or fails as usual
        except NotFound:
            pass
        except AriError as e:
            qc.log.info("agent leg %s still unknown (%s); offering again", leg, e)
            await quietly(self.ari.hangup_quietly(leg), "hang up a leg that may exist")
        await self.fail(qc, leg, "ari-unavailable", agent_fault=False)

    async def fail(self, qc: QueuedCall, leg: str, reason: str, *, agent_fault: bool = True) -> None:
        """The offer on `leg` failed: the call goes back to its place and the router tries the next agent."""
        self.legs.pop(leg, None)
        if qc.leg_id != leg:
            return                    # not the current offer (cancelled, or the call moved on)
        qc.leg_id = None
        try:
            decisions = self.host.route(self.deps.router.offer_failed, qc.call_id, reason, agent_fault=agent_fault)
        except AcdError as e:
            qc.log.debug("offer_failed ignored: %s", e)
            return
        await self.host.execute(decisions)

    async def end_conversation(self, qc: QueuedCall, by: str) -> None:
        if not self.host.forget(qc):
            return
        leg = qc.leg_id
        qc.log.info("conversation with %s ended by the %s", qc.agent_id, by)
        if qc.agent_id:
            self.host.agent_left_call(qc.agent_id, qc.queue)
        try:
            decisions = self.host.route(self.deps.router.call_ended, qc.call_id)
        except AcdError as e:
            qc.log.debug("call_ended ignored: %s", e)
            decisions = []
        # each step on its own: a timeout on one (an overloaded Asterisk) must not leave the bridge behind
        # or skip the router's follow-up (wrap-up, the next offer)
        if leg:
            self.legs.pop(leg, None)
            await quietly(self.ari.hangup_quietly(leg), "hang up the agent leg")
        if by == "error":      # the conversation never worked: nothing for the flow to go on with
            qc.caller_hung_up = True
            await quietly(self.ari.hangup_quietly(qc.call_id), "hang up the caller")
        # the agent hung up: the caller stays; the bridge goes, and the router's CallFinished (answered)
        # hands the caller back to the flow (on_answered, else the flow hangs up)
        if qc.bridge_id:
            await quietly(self.ari.destroy_bridge(qc.bridge_id), "destroy the bridge")
        qc.session.outcome = "answered"
        await self.host.execute(decisions)

    async def reconcile(self, live_channels: set[str]) -> None:
        """After a reconnect: agent legs that vanished meanwhile end as if their channel was destroyed."""
        for leg in list(self.legs):
            if leg not in live_channels:
                await self.leg_gone(ChannelDestroyed(type="ChannelDestroyed", channel=Channel(leg), cause=0))


async def quietly(step: Any, what: str) -> None:
    try:
        await step
    except NotFound:
        pass
    except AriError as e:
        log.warning("could not %s: %s", what, e)


def _quote(s: str) -> str:
    """A caller-ID part safe inside `"name" <number>`: no controls, bidi overrides or SIP delimiters."""
    return clean_text("".join(c for c in str(s) if c not in '"<>\\'), limit=80)

