"""One inbound call driven by the pure flow interpreter: ARI events -> flow events, flow commands -> ARI.

Timers, CRM results and ACD outcomes come back as `Internal` events through the per-channel dispatcher,
so the runner only ever sees one event at a time, in order. Digits are never logged (some are secure).
Cleanup on hangup is idempotent: timers cancelled, CRM task cancelled, the ACD told, history written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..ari import (
    AriError,
    Channel,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
)
from ..crm.phone import normalize
from ..flow import (
    Answer,
    CallInfo,
    CancelTimer,
    CustomerData,
    DigitReceived,
    DiscardRecording,
    Enqueue,
    FlowEnded,
    FlowRunner,
    FlowSet,
    Hangup,
    HungUp,
    NodeEntered,
    Play,
    QueueResult,
    Record,
    RequestCallback,
    SetLanguage,
    StartTimer,
    StopPlayback,
    StoreVoicemail,
    TimerFired,
    Transfer,
    TransferResult,
)
from ..flow import PlaybackFinished as FlowPlaybackFinished
from ..flow import RecordingFinished as FlowRecordingFinished
from ..flow.model import DTMF_KEYS
from ..logsafe import CallLog, mask_number
from ..tasks import NewTask, TaskKind
from .clock import Cancellable
from .events import CrmAnswered, QueueDone, TimerDue, TransferDone, TransferLegEvent, TransferTimeout
from .ids import sequence
from .session_deps import SessionDeps, customer_card, task_request
from .transfer import TransferAttempt, TransferDeps, resolve_target

log = logging.getLogger(__name__)
_seq = sequence()     # process-unique numbers for ids on Asterisk (ivr/calls/ids.py)


class FlowSession:
    def __init__(self, deps: SessionDeps, channel: Channel, flowset: FlowSet, flow_name: str,
                 wall_clock: Callable[[], datetime]) -> None:
        self.deps = deps
        self.ari = deps.ari
        self.channel = channel
        self.channel_id = channel.id
        self.flow_name = flow_name
        self.flow_version = flowset.version
        self.log = CallLog(log, {"call": channel.id})
        self.caller_raw = channel.caller.number
        self.did = channel.exten
        self.started_at = deps.clock.wall()
        self.crm_result: Any = None
        self.hints: Any = None          # RoutingHints from the CRM result (priority, skills, preferred agent)
        self.e164: str | None = None
        self.runner = FlowRunner(
            flowset, flow_name,
            CallInfo(channel.id, caller=channel.caller.number, did=channel.exten,
                     language=channel.language or None, customer_lookup=deps.crm is not None),
            clock=wall_clock)
        self._timers: dict[str, Cancellable] = {}
        self._playbacks: dict[str, str] = {}     # ARI playback id -> runner playback id
        self._language: str | None = None
        self._channel_language = channel.language    # what Asterisk has on the channel now
        self._escalated_to: str | None = None       # queue / transfer: the call needed people (metrics)
        self._queue_node: tuple[str, str] | None = None
        self._crm_task: asyncio.Task | None = None
        self._node: tuple[str, str] | None = None
        self.in_queue = False
        self.queue_name: str | None = None
        self.queue_wait: float = 0.0
        self.agent_id: str | None = None
        self.outcome = "ivr"
        self.closed = False
        self.transferred = False
        self._transfer: TransferAttempt | None = None
        self._joined: tuple[Enqueue, float] | None = None    # the last queue joined and when (wall clock)
        self.hanging_up = False          # ChannelHangupRequest seen: the caller is going

    # ----------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.log.info("inbound call from %s to %s -> flow %s (version %s)", mask_number(self.caller_raw),
                      self.did, self.flow_name, self.flow_version)
        if self.deps.metrics is not None:
            self.deps.metrics.call_entered_flow(self.flow_name)
        if self.deps.crm is not None:
            self._crm_task = asyncio.create_task(self._lookup(), name=f"crm:{self.channel_id}")
        await self._run(self.runner.start())


    async def _lookup(self) -> None:
        # runs while the welcome prompt plays; the result comes back through the dispatcher in order
        try:
            result = await self.deps.crm.lookup_caller(self.caller_raw)
        except asyncio.CancelledError:
            raise
        except Exception:   # the guarded lookup never raises; belt and braces for a call's sake
            self.log.exception("CRM lookup failed")
            return
        self.deps.submit(CrmAnswered(key=self.channel_id, result=result))

    async def on_event(self, ev: Event) -> None:
        if self.closed:
            return
        if isinstance(ev, ChannelHangupRequest):
            # the caller is hanging up: what ends now (the prompt's playback, a timer) is no input; the
            # StasisEnd that follows ends the flow (``ended``)
            self.hanging_up = True
            return
        if self.hanging_up and isinstance(ev, (PlaybackFinished, ChannelDtmfReceived, TimerDue)):
            return
        fe: Any = None
        if isinstance(ev, ChannelDtmfReceived):
            if ev.digit in DTMF_KEYS and len(ev.digit) == 1:
                fe = DigitReceived(ev.digit)
        elif isinstance(ev, PlaybackFinished):
            rid = self._playbacks.pop(ev.playback.id, None)
            if rid is not None:
                fe = FlowPlaybackFinished(rid)
        elif isinstance(ev, RecordingFinished):
            fe = FlowRecordingFinished(ev.recording.name, float(ev.recording.duration))
        elif isinstance(ev, RecordingFailed):
            fe = FlowRecordingFinished(ev.recording.name, 0.0)
        elif isinstance(ev, TimerDue):
            if self._timers.pop(ev.timer_id, None) is not None:
                fe = TimerFired(ev.timer_id)
        elif isinstance(ev, CrmAnswered):
            value = ev.result
            self.crm_result = value
            self.e164 = getattr(value, "caller", None)
            if self.deps.routing is not None:
                self.hints = self.deps.routing.hints(value)
                if self.hints.language and self._language is None:
                    await self._set_language(self.hints.language)
            self.log.info("CRM: %s%s", value.status.value if hasattr(value.status, "value") else value.status,
                          f" (flags {sorted(self.hints.flags)})" if self.hints and self.hints.flags else "")
            fe = CustomerData(value.as_flow_vars())
        elif isinstance(ev, QueueDone):
            self.in_queue = False
            fe = QueueResult(ev.outcome)
        elif isinstance(ev, TransferDone):
            fe = self._transfer_result(ev.outcome)
        elif isinstance(ev, (TransferLegEvent, TransferTimeout)) and self._transfer is not None:
            await self._transfer.on_event(ev)
        if fe is not None:
            await self._run(self.runner.feed(fe))

    async def ended(self) -> None:
        """The caller's channel left the app or was destroyed (hung up, transferred)."""
        if self.closed:
            return
        self.closed = True
        if self._crm_task is not None:
            self._crm_task.cancel()
        if self.in_queue and self.deps.acd is not None:
            await self.deps.acd.caller_gone(self)
        if self._transfer is not None:
            if self._transfer.state == "ringing" and self.deps.metrics is not None:
                self.deps.metrics.transfer_ended(self._transfer.target.kind, "abandoned")
            await self._transfer.cancel()
        if not self.runner.finished:
            await self._run(self.runner.feed(HungUp()), hung_up=True)
            if self._node and self.deps.metrics is not None:
                self.deps.metrics.node_exit(self._node[0], self._node[1], self._exit_of("hangup"))
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        await self._write_history()

    # ------------------------------------------------------------------------------------ commands
    async def _run(self, commands: list, hung_up: bool = False) -> None:
        for cmd in commands:
            try:
                await self._execute(cmd, hung_up)
            except AriError as e:
                # the channel may be gone (caller hung up mid-command): the hangup event will clean up
                self.log.info("%s failed: %s", type(cmd).__name__, e)

    async def _execute(self, cmd: Any, hung_up: bool) -> None:
        if isinstance(cmd, (StartTimer, CancelTimer)):
            old = self._timers.pop(cmd.timer_id, None)
            if old is not None:
                old.cancel()
            if isinstance(cmd, StartTimer) and not hung_up:
                self._timers[cmd.timer_id] = self.deps.clock.call_later(
                    cmd.seconds, self.deps.submit, TimerDue(key=self.channel_id, timer_id=cmd.timer_id))
            return
        if isinstance(cmd, NodeEntered):
            if self._node and self.deps.metrics is not None:
                self.deps.metrics.node_exit(self._node[0], self._node[1], "next")
            self._node = (cmd.flow, cmd.node)
            self.log.debug("node %s:%s (%s)", cmd.flow, cmd.node, cmd.kind)
            return
        if isinstance(cmd, FlowEnded):
            if self.log.isEnabledFor(logging.INFO):
                self.log.info("flow ended: %s; path: %s", cmd.reason, " > ".join(self.runner.visited_nodes))
            if self._node and self.deps.metrics is not None and cmd.reason != "hangup":
                self.deps.metrics.node_exit(self._node[0], self._node[1], self._exit_of(_exit_label(cmd.reason)))
                self._node = None
            return
        if isinstance(cmd, StoreVoicemail):
            if self.deps.storage is not None:
                vid = self.deps.storage.add_voicemail(cmd.mailbox, cmd.caller, cmd.recording, cmd.duration,
                                                     self.channel_id, cmd.recorded_at.timestamp())
                self.log.info("voicemail %d stored in mailbox %s (%.1fs)", vid, cmd.mailbox, cmd.duration)
                self._voicemail_task(cmd, vid)
            return
        if isinstance(cmd, DiscardRecording):
            self.log.info("empty voicemail (%.1fs) discarded", cmd.duration)
            try:
                await self.ari.delete_stored_recording(cmd.recording)
            except AriError as e:
                self.log.info("empty recording %s not deleted: %s", cmd.recording, e)
            return
        if isinstance(cmd, RequestCallback):
            self._request_callback(cmd)
            return
        if hung_up:
            return   # nothing else can be done on a channel that is gone
        if isinstance(cmd, SetLanguage):
            await self._set_language(cmd.language)
            return
        if isinstance(cmd, Answer):
            await self.ari.answer(self.channel_id)
        elif isinstance(cmd, Play):
            pid = f"{self.channel_id}-{cmd.playback_id}-{next(_seq)}"
            self._playbacks[pid] = cmd.playback_id
            await self.ari.play(self.channel_id, pid, list(cmd.media), lang=self._language)
        elif isinstance(cmd, StopPlayback):
            for pid, rid in list(self._playbacks.items()):
                if rid == cmd.playback_id:
                    self._playbacks.pop(pid, None)
                    await self.ari.stop_playback(pid)
        elif isinstance(cmd, Enqueue):
            await self._enqueue(cmd)
        elif isinstance(cmd, Transfer):
            await self._start_transfer(cmd)
        elif isinstance(cmd, Record):
            await self.ari.record(self.channel_id, cmd.name, max_seconds=cmd.max_seconds, beep=cmd.beep,
                                  terminate_on=cmd.terminate_on, if_exists="overwrite")
        elif isinstance(cmd, Hangup):
            await self.ari.hangup_quietly(self.channel_id, cmd.reason)
        else:
            self.log.warning("unknown flow command %s ignored", type(cmd).__name__)

    def _exit_of(self, label: str) -> str:
        """A caller who hangs up while talking to an agent did not drop off in the queue node: 'answered'."""
        if label == "hangup" and self.agent_id is not None and self._node == self._queue_node:
            return "answered"
        return label

    def _escalated(self, to: str) -> None:
        if not self._escalated_to:
            self._escalated_to = to
            if self.deps.metrics is not None:
                self.deps.metrics.flow_escalated(self.flow_name, to)

    async def _enqueue(self, cmd: Enqueue) -> None:
        self._escalated("queue")
        self._queue_node = self._node
        if self.deps.acd is None:
            self.log.warning("queue %s: no ACD configured; continuing as no_agents", cmd.queue)
            self.deps.submit(QueueDone(key=self.channel_id, outcome="no_agents"))
            return
        self.in_queue = True
        self.queue_name = cmd.queue
        self._joined = (cmd, self.deps.clock.wall())       # a callback from this queue keeps this place
        await self.deps.acd.enqueue(self, cmd)

    async def _start_transfer(self, cmd: Transfer) -> None:
        self._escalated("transfer")
        d = self.deps
        target = resolve_target(cmd.destination, external=cmd.external, trunk=cmd.trunk, extensions=d.extensions,
                                phones=d.phones, trunks=d.trunks, caller_number=self.caller_raw or "")
        if target is None:     # the validator refuses these when the config is known; belt and braces
            self.log.warning("transfer to %s: not configured", "an outside number" if cmd.external
                             else cmd.destination)
            self._transfer = None
            self.deps.submit(TransferDone(key=self.channel_id, outcome="failed"))
            return
        self._transfer = TransferAttempt(
            TransferDeps(self.ari, self.deps.transfer_legs, self.deps.submit, self.deps.clock), self.channel_id,
            next(_seq), target, cmd.timeout,
            lambda outcome: self.deps.submit(TransferDone(key=self.channel_id, outcome=outcome)),
            self.log)
        await self._transfer.start()

    def _transfer_result(self, outcome: str) -> TransferResult:
        kind = self._transfer.target.kind if self._transfer is not None else "internal"
        if self.deps.metrics is not None:
            self.deps.metrics.transfer_ended(kind, outcome)
        if outcome == "answered":
            self.transferred = True
            self.outcome = "transferred"
        else:
            self.outcome = "transfer_failed"
            self._transfer = None
        return TransferResult(outcome)

    def _voicemail_task(self, cmd: StoreVoicemail, voicemail_id: int) -> None:
        """A message in a mailbox of ``voicemail.queues`` is work: a task for that queue's agents, at the
        caller's place when they waited in that queue."""
        queue = self.deps.voicemail_queues.get(cmd.mailbox)
        book, legs = self.deps.task_book, self.deps.task_legs
        if queue is None or book is None or legs is None:
            return
        number = self.e164 or normalize(self.caller_raw or "", self._region()) or None
        task = book.add(self._task_request(TaskKind.VOICEMAIL, queue, number, f"voicemail:{voicemail_id}"))
        self.log.info("voicemail %d is task %s in queue %s", voicemail_id, task.id, queue)
        legs.wake()

    def _region(self) -> str:
        return self.deps.region

    def _task_request(self, kind: TaskKind, queue: str, number: str | None, source: str) -> NewTask:
        return task_request(kind, queue, number, source, joined=self._joined, hints=self.hints,
                            crm_result=self.crm_result, name=self.customer_name())

    def _request_callback(self, cmd: RequestCallback) -> None:
        """The flow's callback node: a callback task at this caller's place in the queue it waited in (its
        join time, skills and priority), else at the back of the named queue."""
        book, legs = self.deps.task_book, self.deps.task_legs
        if book is None or legs is None:
            self.log.error("callback for %s requested but no task book (no queues or no storage): nobody "
                           "will call back", mask_number(cmd.number))
            return
        number = normalize(cmd.number, self._region()) or "".join(ch for ch in cmd.number
                                                                   if ch.isdigit() or ch == "+")
        task = book.add(self._task_request(TaskKind.CALLBACK, cmd.queue, number, self.channel_id))
        self.log.info("callback task %s for %s in queue %s", task.id, mask_number(number), cmd.queue)
        legs.wake()

    def customer_name(self) -> str:
        c = getattr(self.crm_result, "customer", None)
        return getattr(c, "name", "") or ""

    async def _set_language(self, language: str) -> None:
        """The call's language: prompt variants follow it (``lang`` of every playback), and so does the
        channel, so what Asterisk plays by itself on it later (queue announcements, digits, numbers) is in
        that language too."""
        self._language = language
        if language == self._channel_language:
            return      # the channel already speaks it (e.g. the endpoint's default): no request
        try:
            await self.ari.set_var(self.channel_id, "CHANNEL(language)", language)
            self._channel_language = language
        except AriError as e:
            self.log.info("channel language not set: %s", e)

    def screen_pop(self) -> dict[str, Any]:
        """What the agent sees when this call is offered: customer card, IVR path, queue and wait."""
        c = getattr(self.crm_result, "customer", None)
        return {
            "call_id": self.channel_id, "did": self.did, "flow": self.flow_name,
            "caller": self.e164 or mask_number(self.caller_raw),
            "customer": customer_card(c), "known": c is not None,
            "repeat_caller": bool(getattr(self.crm_result, "repeat_caller", False)),
            "last_agent": getattr(self.crm_result, "last_agent", None),
            "flags": sorted(self.hints.flags) if self.hints else [],
            "ivr_path": list(self.runner.visited_nodes), "keys": self.runner.keys_pressed,
            "queue": self.queue_name, "waiting_since": self.started_at,
        }

    def queue_outcome(self, outcome: str) -> None:
        """Called by the ACD: the queue stay ended (answered conversation over, timeout, full, ...)."""
        self.deps.submit(QueueDone(key=self.channel_id, outcome=outcome))

    async def _write_history(self) -> None:
        if self.deps.crm is None:
            return
        from ..crm.model import Interaction
        try:
            inter = Interaction(
                at=self.started_at, call_id=self.channel_id, did=self.did,
                ivr_path=tuple(self.runner.visited_nodes), keys=self.runner.keys_pressed,
                queue=self.queue_name, wait_seconds=self.queue_wait, agent_id=self.agent_id,
                outcome=self.outcome, duration_seconds=self.deps.clock.wall() - self.started_at,
                customer_id=getattr(getattr(self.crm_result, "customer", None), "customer_id", None),
                caller=self.e164)
            await self.deps.crm.record_interaction(self.e164, inter)
        except Exception:
            self.log.exception("could not record the interaction")


def _exit_label(reason: str) -> str:
    for k in ("transfer", "voicemail", "queue", "hangup", "callback"):
        if k in reason:
            return k
    return reason.split(":")[0][:32] or "end"


def utc_now() -> datetime:
    return datetime.now(UTC)
