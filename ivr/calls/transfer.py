"""Transfers from a flow: ring a target from the app and bridge it with the caller when it answers.

The caller never leaves Stasis. ``TransferAttempt.start`` plays ringback to the caller and originates the
target leg ``<caller>-t<n>`` (an internal phone, or ``PJSIP/<number>@trunk-<name>`` for an outside number
through a configured trunk, presenting the trunk's caller ID) back into the app with the args
``transfer,<caller>``. Every event of the leg is handed to the caller's own event queue (``TransferLegs``:
the app routes by leg id), so one call is handled in one order. Then:

* the leg enters Stasis (it answered): ringback stops, bridge ``call-<caller>-t<n>`` joins both, the
  attempt reports ``answered``; when either side hangs up later the other one is hung up and the bridge
  destroyed;
* the leg ends before answering (busy: cause 17/21; no answer: 18/19; anything else, e.g. a trunk's 503
  or an unregistered phone, ``failed``), the originate fails, or nobody answers within the timeout (the
  leg is hung up): the attempt reports that outcome and the flow goes on;
* the caller hangs up: ``cancel`` hangs up the leg and destroys the bridge.

The leg and bridge ids are claimed (``TransferLegs``), so the janitor leaves them alone while the call
lives and destroys whatever outlives it (the bridge starts with ``call-``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ari import AriError, ChannelDestroyed, Event, StasisEnd, StasisStart
from ..config import TrunkConfig
from ..logsafe import CallLog
from .clock import Cancellable, Clock, LoopClock
from .events import TransferLegEvent, TransferTimeout
from .ids import bridge_id as call_bridge_id

log = logging.getLogger(__name__)

# Q.850 cause of a target leg that ended before answering -> transfer outcome. Anything else is failed: 34
# (a trunk's 503), 18 (SIP 408: nobody responded, e.g. the trunk is down), 20 (unregistered), ... A target
# that rings without answering is hung up by our own timer: no_answer.
_CAUSES = {17: "busy", 21: "busy", 19: "no_answer"}
RINGBACK = "tone:ring"


class TransferAri(Protocol):
    async def originate(self, channel_id: str, endpoint: str, *, app: str | None = None,
                        app_args: Iterable[str] = (), caller_id: str | None = None, timeout: int | None = None,
                        variables: Mapping[str, str] | None = None, originator: str | None = None,
                        other_channel_id: str | None = None) -> Any: ...

    async def hangup_quietly(self, channel_id: str, reason: str | None = None) -> bool: ...

    async def play(self, channel_id: str, playback_id: str, media: str | Iterable[str],
                   lang: str | None = None) -> Any: ...

    async def stop_playback(self, playback_id: str) -> bool: ...

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing,dtmf_events",
                            name: str | None = None) -> Any: ...

    async def add_channel(self, bridge_id: str, channel_ids: str | Iterable[str], role: str | None = None,
                          **kwargs: Any) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


@dataclass(frozen=True)
class Target:
    dial: str                      # the originate endpoint
    label: str                     # for logs and metrics: the extension, or "external via <trunk>" (no number)
    kind: str                      # internal | external
    caller_id: str | None = None   # presented to the target


def resolve_target(destination: str, *, external: bool, trunk: str | None, extensions: Mapping[str, str],
                   phones: Iterable[str], trunks: Iterable[TrunkConfig],
                   caller_number: str = "") -> Target | None:
    """The target of a flow's Transfer command in this server config; None when it is not configured."""
    if not external:
        dial = extensions.get(destination) or (destination if destination in set(phones) else None)
        if dial is None:
            return None
        return Target(dial, destination, "internal", caller_number or None)
    by_name = {t.name: t for t in trunks}
    t = by_name.get(trunk) if trunk else (next(iter(by_name.values())) if len(by_name) == 1 else None)
    if t is None or not destination.lstrip("+").isdigit():
        return None
    cid = t.caller_id or None
    if cid and t.caller_name:
        cid = f'"{t.caller_name}" <{cid}>'
    return Target(f"PJSIP/{destination}@{t.endpoint}", f"external via {t.name}", "external", cid)


class TransferLegs:
    """Which call each live transfer leg belongs to, and the bridges in use: the app routes leg events by
    it and the janitor's claims include it."""

    def __init__(self) -> None:
        self._callers: dict[str, str] = {}
        self._bridges: dict[str, str] = {}

    def add(self, leg: str, caller: str, bridge: str) -> None:
        self._callers[leg] = caller
        self._bridges[leg] = bridge

    def remove(self, leg: str) -> None:
        self._callers.pop(leg, None)
        self._bridges.pop(leg, None)

    def caller_of(self, leg: str) -> str | None:
        return self._callers.get(leg)

    def legs(self) -> frozenset[str]:
        return frozenset(self._callers)

    def bridges(self) -> frozenset[str]:
        return frozenset(self._bridges.values())

    def route(self, ev: Event) -> TransferLegEvent | None:
        """A leg's StasisStart / StasisEnd / ChannelDestroyed as an event for its caller's queue."""
        if isinstance(ev, (StasisStart, StasisEnd, ChannelDestroyed)):
            caller = self._callers.get(ev.channel.id)
            if caller is not None:
                return TransferLegEvent(key=caller, event=ev)
        return None


@dataclass(frozen=True)
class TransferDeps:
    ari: TransferAri
    legs: TransferLegs
    submit: Callable[[Event], None]          # the dispatcher: events for the caller's queue
    clock: Clock = field(default_factory=LoopClock)


class TransferAttempt:
    """One transfer of one caller; ``report(outcome)`` is called once: answered, busy, no_answer, failed."""

    def __init__(self, deps: TransferDeps, caller: str, seq: int, target: Target, timeout: float,
                 report: Callable[[str], None], call_log: CallLog) -> None:
        self.deps = deps
        self.caller = caller
        self.target = target
        self.timeout = timeout
        self.leg = f"{caller}-t{seq}"
        self.bridge = f"{call_bridge_id(caller)}-t{seq}"
        self._ringback = f"{caller}-ringback-{seq}"
        self._report = report
        self.log = call_log
        self.state = "new"              # new, ringing, bridged, done
        self._timer: Cancellable | None = None
        self._bridge_made = False

    async def start(self) -> None:
        ari = self.deps.ari
        self.state = "ringing"
        self.deps.legs.add(self.leg, self.caller, self.bridge)
        try:
            await ari.play(self.caller, self._ringback, RINGBACK)
        except AriError as e:
            self.log.info("transfer: no ringback (%s)", e)
        try:
            await ari.originate(self.leg, self.target.dial, app_args=("transfer", self.caller),
                                caller_id=self.target.caller_id, timeout=int(self.timeout) + 5,
                                originator=self.caller)
        except AriError as e:
            self.log.info("transfer to %s failed at once: %s", self.target.label, e)
            await self._fail("failed")
            return
        self._timer = self.deps.clock.call_later(self.timeout, self.deps.submit,
                                                 TransferTimeout(key=self.caller, leg=self.leg))
        self.log.info("transfer: ringing %s (%s, up to %gs)", self.target.label, self.leg, self.timeout)

    async def on_event(self, ev: TransferLegEvent | TransferTimeout) -> None:
        """An ARI event of the leg, or the ring timer."""
        if isinstance(ev, TransferTimeout):
            if ev.leg == self.leg and self.state == "ringing":
                self.log.info("transfer: %s did not answer within %gs", self.target.label, self.timeout)
                await self._fail("no_answer")
            return
        value = ev.event
        if isinstance(value, StasisStart):
            await self._answered()
        elif isinstance(value, (StasisEnd, ChannelDestroyed)):
            if self.state == "ringing":
                cause = value.cause if isinstance(value, ChannelDestroyed) else 0
                outcome = _CAUSES.get(cause, "failed")
                self.log.info("transfer: %s did not take the call (cause %s: %s)", self.target.label, cause,
                              outcome)
                await self._fail(outcome)
            elif self.state == "bridged":
                self.log.info("transfer: %s hung up; ending the call", self.target.label)
                await self._teardown()
                await self.deps.ari.hangup_quietly(self.caller)

    async def _answered(self) -> None:
        ari = self.deps.ari
        if self.state != "ringing":
            await ari.hangup_quietly(self.leg)
            return
        self._cancel_timer()
        try:
            await ari.stop_playback(self._ringback)
            await ari.create_bridge(self.bridge, "mixing,dtmf_events", name="transfer")
            self._bridge_made = True
            await ari.add_channel(self.bridge, [self.caller, self.leg])
        except AriError as e:
            self.log.warning("transfer: bridging failed (%s)", e)
            await self._fail("failed")
            return
        self.state = "bridged"
        self.log.info("transfer: %s answered; bridged in %s", self.target.label, self.bridge)
        self._report("answered")

    async def cancel(self) -> None:
        """The caller is gone: hang up the leg, destroy the bridge (idempotent)."""
        await self._teardown()

    async def _fail(self, outcome: str) -> None:
        await self._teardown()
        try:
            await self.deps.ari.stop_playback(self._ringback)
        except AriError:
            pass
        self._report(outcome)

    async def _teardown(self) -> None:
        if self.state == "done":
            return
        self.state = "done"
        self._cancel_timer()
        self.deps.legs.remove(self.leg)
        try:
            await self.deps.ari.hangup_quietly(self.leg)
        except AriError as e:
            self.log.info("transfer: could not hang up the leg: %s", e)
        if self._bridge_made:
            try:
                await self.deps.ari.destroy_bridge(self.bridge)
            except AriError as e:
                self.log.info("transfer: could not destroy the bridge: %s", e)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
