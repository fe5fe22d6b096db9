"""Tasks on the phones: what the router's decisions for a task (a callback, a voicemail to return, a web
callback request) become on Asterisk. Agent first, then the customer:

1. ``Offer``: the agent's phone rings (leg ``<task>-a<n>``, back into the app with args ``task,<task>``);
   the caller ID shows "Callback" and the customer's name and number, the agent page gets the screen pop.
   The leg fails (no answer, busy, unregistered): ``offer_failed`` (a miss like any other), the task is
   back at its place for the next agent.
2. The agent answers: the task is ``connecting``; the agent hears a short whisper (calling <the number's
   last four digits>, waited <n> minutes; the page shows the whole number and the customer), then ringback while the customer is dialled out through the configured trunk (a
   ``TransferAttempt`` from the agent's leg: the same originate-and-bridge as a flow's transfer).
3. The customer answers: agent and customer are bridged; the task is ``done`` (answered). When either
   hangs up the other is hung up, and the agent goes to wrap-up as after any call.
4. The customer is busy / does not answer / the trunk refuses: the agent hears "number not answering"
   and is hung up (wrap-up); the task is retried after ``retry_delay`` at its place while attempts
   remain (``TaskBook.customer_failed``), else ``failed``.
5. The agent hangs up before the customer answered: the customer leg is cancelled and the task goes back to
   its place without using an attempt.

Every event of a task's legs is handled in the order of its agent leg (the dispatcher key), so one task is
handled one thing at a time. Legs and bridges are claimed (the janitor leaves them alone while the task
lives and cleans whatever outlives it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..acd import AcdError, Call, CallFinished, CallRequeued, CancelOffer, Decision, Offer
from ..ari import (
    AriError,
    ChannelDestroyed,
    ChannelHangupRequest,
    Event,
    NotFound,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ..logsafe import CallLog, mask_number
from ..tasks import Task, TaskKind, TaskState
from ..tasks.policy import CallbackPolicy
from .clock import Cancellable, Clock, LoopClock
from .events import (
    CustomerDialled,
    HangupLegDue,
    Internal,
    TaskActionChosen,
    TasksWake,
    TransferLegEvent,
    TransferTimeout,
)
from .ids import sequence
from .task_book import TaskBook
from .transfer import Target, TransferAri, TransferAttempt, TransferDeps

log = logging.getLogger(__name__)

_seq = sequence()     # process-unique numbers for ids on Asterisk (ivr/calls/ids.py)
#: The dispatcher key of the book's wake-ups (held-back tasks due, windows closing).
#: Seconds after an originate that timed out to hang its leg up again (Asterisk may make it late).
LEG_RECHECK = 2.0
#: What an agent may do with a voicemail task once they have heard it.
ACTIONS = ("call_back", "close")


@dataclass(frozen=True)
class Message:
    """A voicemail a task is about (``TaskLegDeps.voicemail``)."""

    id: int
    recording: str
    duration: float
#: Q.850 cause of an agent leg that ended before answering -> the router's failure reason.
_CAUSES = {17: "busy", 18: "no-answer", 19: "no-answer", 21: "rejected", 20: "unreachable", 3: "unreachable"}
CUSTOMER_FAILED_MEDIA = "sound:number-not-answering"


class TaskRouter(Protocol):
    def enqueue(self, call: Call, *, waiting_since: float | None = None) -> list[Decision]: ...

    def abandon(self, call_id: str) -> list[Decision]: ...

    def offer_answered(self, call_id: str) -> list[Decision]: ...

    def offer_failed(self, call_id: str, reason: str = "no-answer", *, agent_fault: bool = True
                     ) -> list[Decision]: ...

    def call_ended(self, call_id: str) -> list[Decision]: ...


class TaskAri(TransferAri, Protocol):
    async def channel(self, channel_id: str) -> Any: ...


@dataclass(frozen=True)
class TaskLegDeps:
    ari: TaskAri
    book: TaskBook
    router: TaskRouter
    #: the ACD's executor of router decisions (agent states, wrap-up, the next offers)
    execute: Callable[[list[Decision]], Awaitable[None]]
    transfer: TransferDeps
    #: a customer's number -> how to dial it (the trunk endpoint and the caller ID to present), or None
    dial: Callable[[str], Target | None]
    submit: Callable[[Event], None]
    policy: CallbackPolicy
    #: screen pops and state for the agent page: (kind, payload)
    notify: Callable[[str, dict[str, Any]], None] = lambda kind, payload: None
    #: the voicemail a task of kind voicemail is about (from its ``source``), or None
    voicemail: Callable[[Task], Message | None] = lambda task: None
    clock: Clock = field(default_factory=LoopClock)


@dataclass
class _Work:
    """One task being worked: its agent leg and where it stands."""

    task_id: str
    agent_id: str
    leg: str
    log: CallLog
    state: str = "ringing"          # ringing, whisper | listening, listened, dialing, talking, closing, closed
    attempt: TransferAttempt | None = None
    whisper: str = ""
    outcome: str = ""               # the customer's: answered, busy, no_answer, failed
    hanging_up: bool = False        # ChannelHangupRequest seen on the agent's leg


class TaskLegs:
    def __init__(self, deps: TaskLegDeps) -> None:
        self.deps = deps
        self._by_leg: dict[str, _Work] = {}
        self._by_task: dict[str, _Work] = {}
        self._wake: Cancellable | None = None

    # ------------------------------------------------------------------------- the book's pump
    async def pump(self) -> None:
        """Windows that closed unserved leave the router; due tasks (new, scheduled, retried, back from an
        agent) enter it at their place; the next wake-up is armed."""
        book, router, execute = self.deps.book, self.deps.router, self.deps.execute
        for t in book.expire_overdue():
            await execute(router.abandon(t.id))
        for t in book.release_due():
            call, since = book.router_call(t)
            await execute(router.enqueue(call, waiting_since=since))
        self._arm_wake()

    def wake(self) -> None:
        """Ask for a pump soon, in the book's own order (from the web or a flow: a task was added)."""
        self.deps.submit(TasksWake())

    def _arm_wake(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        at = self.deps.book.next_wakeup()
        if at is not None:
            delay = max(0.0, at - self.deps.clock.wall()) + 0.01
            self._wake = self.deps.clock.call_later(delay, self.wake)

    def close(self) -> None:
        if self._wake is not None:
            self._wake.cancel()

    # ------------------------------------------------------------------------------ queries
    def handles(self, d: Decision) -> bool:
        """Is this router decision about one of the book's tasks?"""
        if isinstance(d, CallFinished):
            return d.record.kind != "call"
        cid = getattr(d, "call_id", None)
        return cid is not None and (self.deps.book.owns(cid) or cid in self._by_task)

    def legs(self) -> frozenset[str]:
        return frozenset(self._by_leg)

    def owns_leg(self, channel_id: str) -> bool:
        return channel_id in self._by_leg

    # ---------------------------------------------------------------------- router decisions
    async def execute(self, d: Decision) -> None:
        book = self.deps.book
        if isinstance(d, Offer):
            await self._offer(d)
        elif isinstance(d, CancelOffer):
            w = self._by_task.get(d.call_id)
            if w is not None and w.state == "ringing":
                w.log.info("task offer to %s cancelled (%s)", d.agent_id, d.reason)
                self._forget(w)
                await self.deps.ari.hangup_quietly(w.leg)
        elif isinstance(d, CallRequeued):
            book.agent_missed(d.call_id, d.reason)
        elif isinstance(d, CallFinished):
            book.left_router(d.record.call_id)

    async def _offer(self, d: Offer) -> None:
        task = self.deps.book.get(d.call_id)
        if task is None or not task.open:
            return
        self.deps.book.offered(task.id, d.agent_id, _why(d), d.explanation.as_dict())
        leg = f"{task.id}-a{next(_seq)}"
        w = _Work(task.id, d.agent_id, leg, CallLog(log, {"call": task.id}))
        self._by_leg[leg] = w
        self._by_task[task.id] = w
        w.log.info("%s", d.explanation.log_line())
        name = f"Callback {task.name}".strip() if task.name else "Callback"
        try:
            await self.deps.ari.originate(
                leg, d.endpoint, app_args=("task", task.id), timeout=max(1, int(round(d.ring_timeout))),
                caller_id=f'"{_quote(name)}" <{_quote(task.number or "anonymous")}>')
        except AriError as e:
            w.log.info("agent leg to %s failed at once: %s", d.endpoint, e)
            current = self._by_leg.get(leg) is w
            if _ours(e) or not current:
                # a timeout (or a withdrawn offer): Asterisk may have made the leg all the same, or make it
                # in a moment; it must not ring on at this agent's phone while the task moves on
                await self.deps.ari.hangup_quietly(leg)
                self.deps.clock.call_later(LEG_RECHECK, self.deps.submit, HangupLegDue(leg=leg))
            if current:   # else the offer was withdrawn meanwhile: the task has moved on, fail nothing
                await self._agent_failed(w, "unreachable", agent_fault=not _ours(e))
            return
        if self._by_leg.get(leg) is not w:
            # the offer was withdrawn while we originated (its hang-up found no leg yet): end it now
            w.log.info("offer withdrawn during the originate; hanging up %s", leg)
            await self.deps.ari.hangup_quietly(leg)
            return
        self.deps.notify("offer", {"agent_id": d.agent_id, "call_id": task.id, "queue": d.queue,
                                   "explanation": d.explanation.as_dict(),
                                   "call": _screen(task, self.deps.voicemail(task))})

    # -------------------------------------------------------------------------- leg events
    async def on_stasis_start(self, ev: StasisStart) -> bool:
        if ev.args[:1] != ("task",):
            return False
        w = self._by_leg.get(ev.channel.id)
        if w is None or w.state != "ringing":
            log.info("task leg %s answered for a task that moved on; hanging it up", ev.channel.id)
            await self.deps.ari.hangup_quietly(ev.channel.id)
            return True
        w.state = "whisper"
        await self.deps.execute(self.deps.router.offer_answered(w.task_id))
        task = self.deps.book.agent_answered(w.task_id)
        if task is None or task.state is not TaskState.CONNECTING:
            await self._close(w, "the task ended meanwhile")
            return True
        message = self.deps.voicemail(task) if task.kind is TaskKind.VOICEMAIL and task.attempts == 0 else None
        if message is not None:
            # a voicemail: the agent hears the message, then calls back or closes it (``act``)
            w.state = "listening"
            w.whisper = f"{w.leg}-message"
            w.log.info("agent %s took voicemail %s; playing it", w.agent_id, message.id)
            try:
                await self.deps.ari.play(w.leg, w.whisper, f"recording:{message.recording}")
            except AriError as e:
                w.log.info("the message cannot be played (%s)", e)
                w.state = "listened"
            return True
        w.log.info("agent %s took the task; whisper, then dialling %s", w.agent_id, mask_number(task.number or ""))
        w.whisper = f"{w.leg}-whisper"
        minutes = int(task.waited(self.deps.clock.wall()) // 60)
        last4 = "".join(c for c in task.number or "" if c.isdigit())[-4:]
        media = ["sound:calling"] + ([f"digits:{last4}"] if last4 else [])   # "calling ...0777": short
        if minutes:
            media += [f"number:{minutes}", "sound:minutes" if minutes > 1 else "sound:minute"]
        try:
            await self.deps.ari.play(w.leg, w.whisper, media)
        except AriError as e:
            w.log.info("no whisper (%s); dialling at once", e)
            await self._dial(w, task)
        return True

    async def on_event(self, ev: Event) -> bool:
        """Internal events keyed by an agent leg (the customer attempt's), the whisper's end, and the
        end of an agent leg. True when it was ours."""
        if isinstance(ev, HangupLegDue):
            await self.deps.ari.hangup_quietly(ev.leg)
            return True
        if isinstance(ev, TasksWake):
            await self.pump()
            return True
        if isinstance(ev, Internal):
            w = self._by_leg.get(ev.key)
            if w is None:
                return False
            if isinstance(ev, (TransferLegEvent, TransferTimeout)) and w.attempt is not None:
                await w.attempt.on_event(ev)
            elif isinstance(ev, CustomerDialled):
                await self._customer(w, ev.outcome)
            elif isinstance(ev, TaskActionChosen):
                await self._act(w, ev.action, ev.disposition)
            return True
        if isinstance(ev, PlaybackFinished):
            w = self._by_leg.get(ev.playback.channel_id or "")
            if w is None or ev.playback.id != w.whisper:
                return w is not None
            if w.state == "whisper":
                task = self.deps.book.get(w.task_id)
                if task is not None and task.state is TaskState.CONNECTING and not w.hanging_up \
                        and await self._still_up(w):
                    await self._dial(w, task)
            elif w.state == "listening":
                w.state = "listened"
            elif w.state == "closing":
                await self.deps.ari.hangup_quietly(w.leg)
            return True
        if isinstance(ev, (StasisEnd, ChannelDestroyed)):
            w = self._by_leg.get(ev.channel.id)
            if w is None:
                return False
            await self._agent_leg_gone(w, ev)
            return True
        if isinstance(ev, ChannelHangupRequest):
            w = self._by_leg.get(ev.channel.id)
            if w is not None:
                w.hanging_up = True    # before the whisper's end and the StasisEnd: do not dial now
            return w is not None
        return ev.channel_id in self._by_leg

    async def _agent_leg_gone(self, w: _Work, ev: Event) -> None:
        if w.state == "ringing":
            cause = ev.cause if isinstance(ev, ChannelDestroyed) else 0
            reason = _CAUSES.get(cause, f"cause-{cause}")
            w.log.info("agent %s did not take the task (%s)", w.agent_id, reason)
            await self._agent_failed(w, reason, agent_fault=True)
            return
        self._forget(w)                  # first: a second end event (StasisEnd, then ChannelDestroyed) is not ours
        if w.attempt is not None:
            await w.attempt.cancel()
        if w.state in ("whisper", "dialing", "listening", "listened"):
            w.log.info("agent %s hung up before the customer answered; the task goes back to its place",
                       w.agent_id)
            self.deps.book.agent_dropped(w.task_id)
        else:
            w.log.info("task conversation ended (agent %s)", w.agent_id)
        w.state = "ended"
        await self.deps.execute(self.deps.router.call_ended(w.task_id))
        self.deps.book.left_router(w.task_id)
        await self.pump()          # back at its place (agent dropped), or the next retry armed

    async def _still_up(self, w: _Work) -> bool:
        """Asterisk ends the playbacks of a channel that hangs up before its StasisEnd: a whisper that
        finished may mean the agent is gone. Dial the customer only for an agent leg still there."""
        try:
            await self.deps.ari.channel(w.leg)
            return True
        except NotFound:
            w.log.info("the agent hung up during the whisper; not dialling the customer")
            return False
        except AriError:
            return True                 # cannot tell: dial; the agent's StasisEnd cancels it if need be

    # ------------------------------------------------------------------- the agent's actions
    def action_refused(self, task_id: str, action: str) -> str | None:
        """Why an agent's action on a task cannot be taken now (None: it can; ``request_action`` it)."""
        if action not in ACTIONS:
            return f"unknown action {action!r} (actions: {', '.join(ACTIONS)})"
        w = self._by_task.get(task_id)
        if w is None or w.state not in ("listening", "listened"):
            return "the task is not with an agent who is listening to it"
        return None

    def request_action(self, task_id: str, action: str, disposition: str = "") -> None:
        """Queue the action in the task's order (the agent leg's)."""
        w = self._by_task[task_id]
        self.deps.submit(TaskActionChosen(key=w.leg, action=action, disposition=disposition))

    async def _act(self, w: _Work, action: str, disposition: str) -> None:
        if w.state not in ("listening", "listened") or self._by_task.get(w.task_id) is not w:
            return
        if w.state == "listening":
            await self.deps.ari.stop_playback(w.whisper)
        task = self.deps.book.get(w.task_id)
        if task is None:
            return
        if action == "call_back":
            w.log.info("agent %s calls back %s", w.agent_id, mask_number(task.number or ""))
            await self._dial(w, task)
        else:
            w.state = "closed"
            self.deps.book.closed(w.task_id, disposition or "closed")
            w.log.info("agent %s closed the task (%s)", w.agent_id, disposition or "closed")
            await self.deps.ari.hangup_quietly(w.leg)

    # ---------------------------------------------------------------------------- customer
    async def _dial(self, w: _Work, task: Task) -> None:
        target = self.deps.dial(task.number or "")
        if target is None:
            w.log.warning("cannot dial %s: no trunk configured for outside numbers", mask_number(task.number or ""))
            await self._customer(w, "failed")
            return
        w.state = "dialing"
        w.attempt = TransferAttempt(
            self.deps.transfer, w.leg, next(_seq), target, self.deps.policy.ring_seconds,
            lambda outcome: self.deps.submit(CustomerDialled(key=w.leg, outcome=outcome)), w.log)
        await w.attempt.start()

    async def _customer(self, w: _Work, outcome: str) -> None:
        if w.state != "dialing":
            return
        w.outcome = outcome
        if outcome == "answered":
            w.state = "talking"
            self.deps.book.customer_answered(w.task_id)
            w.log.info("customer answered; agent %s and customer bridged", w.agent_id)
            return
        task = self.deps.book.customer_failed(w.task_id, outcome)
        if task is not None and task.state is TaskState.WAITING:
            w.log.info("customer %s; retried in %.0fs (attempt %d of %d)", outcome,
                       self.deps.book.policy.retry_delay, task.attempts, task.max_attempts)
        else:
            w.log.info("customer %s; no attempt left: the task failed", outcome)
        await self._close(w, f"customer {outcome}")

    async def _close(self, w: _Work, why: str) -> None:
        """Tell the agent and hang up their leg (its end finishes the task's turn in the router)."""
        w.state = "closing"
        w.whisper = f"{w.leg}-bye"
        try:
            await self.deps.ari.play(w.leg, w.whisper, CUSTOMER_FAILED_MEDIA)
        except AriError:
            await self.deps.ari.hangup_quietly(w.leg)

    async def _agent_failed(self, w: _Work, reason: str, *, agent_fault: bool) -> None:
        self._forget(w)
        try:
            decisions = self.deps.router.offer_failed(w.task_id, reason, agent_fault=agent_fault)
        except AcdError as e:       # the offer is no longer ringing (withdrawn, moved on): nothing to fail
            w.log.info("offer_failed ignored: %s", e)
            return
        await self.deps.execute(decisions)

    def _forget(self, w: _Work) -> None:
        self._by_leg.pop(w.leg, None)
        if self._by_task.get(w.task_id) is w:
            self._by_task.pop(w.task_id, None)


def _why(d: Offer) -> str:
    """The router's explanation of an offer, for the task's history: fit, idle time, the candidates."""
    e = d.explanation
    cands = ", ".join(f"{c.agent_id} fit {c.score:g} idle {c.idle_for:.0f}s" for c in e.candidates)
    return (f"{e.reason}; wait {e.wait:.0f}s, step {e.step}, needs [{e.requirement}], "
            f"candidates [{cands}]" + (f" of {e.n_candidates}" if e.n_candidates > len(e.candidates) else ""))


def _ours(e: AriError) -> bool:
    """An originate failure that is our trouble with Asterisk (a timeout, no connection), not the phone's."""
    return getattr(e, "status", 0) == 0


def _screen(task: Task, message: Message | None = None) -> dict[str, Any]:
    """The agent page's screen pop for a task (the shape of a caller's: ``FlowSession.screen_pop``): the
    customer card, the number to call back, how long they have waited, what kind of work it is, and for a
    voicemail the message (its length, where to stream it) and what the agent may do with it."""
    extra: dict[str, Any] = {}
    if message is not None:
        extra = {"voicemail": {"id": message.id, "duration": message.duration,
                               "audio": f"/api/voicemails/{message.id}/audio"},
                 "actions": list(ACTIONS) if task.attempts == 0 else []}
    return {**extra, "call_id": task.id, "caller": task.number, "customer": dict(task.customer) or None,
            "known": bool(task.customer), "queue": task.queue, "flow": task.kind.value, "did": None,
            "ivr_path": [], "keys": "", "waiting_since": task.position_time,
            "flags": [task.kind.value] + ([f"attempt {task.attempts + 1} of {task.max_attempts}"]
                                          if task.attempts else [])}


def _quote(s: str) -> str:
    return s.replace("\\", "").replace('"', "")[:64]

