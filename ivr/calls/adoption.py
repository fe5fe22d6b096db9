"""Surviving a restart of the app (even SIGKILL): what a queued call leaves on Asterisk, and the session
that takes such a call over when a new process finds it.

Asterisk keeps the app's channels and bridges when the app dies: a waiting caller keeps hearing music on
hold, a bridged conversation goes on. What the new process needs to take them over is on Asterisk too:
* a waiting caller carries the channel variable ``IVR_ACD`` (queue, when it joined, priority, extra
  and optional skills, customer name; set when it joins the queue, cleared when it leaves without an agent), so the
  callers are re-queued oldest first with their original wait;
* a conversation is the bridge ``call-<caller channel id>`` holding the caller and the agent leg
  ``<caller channel id>-a<n>`` whose channel name gives the agent's endpoint.
The caller's IVR position is not persisted: an adopted caller whose queue stay ends without an agent
(timeout, no agents) is told goodbye and hung up instead of resuming the flow.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..ari import AriError, Channel, Event, PlaybackFinished
from ..logsafe import CallLog, mask_number
from .internal import Internal, internal

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

QUEUE_VAR = "IVR_ACD"
_MAX_VAR = 1024     # what we write is ~100 bytes; anything longer is not ours


@dataclass(frozen=True)
class QueueState:
    """What a queued caller carries on its channel so that a new app process can take it over."""

    queue: str
    joined_at: float                  # wall clock (epoch seconds): monotonic clocks do not survive reboots
    priority: int = 0
    extra_skills: dict[str, int] = field(default_factory=dict)
    name: str = ""                    # the customer's name (the agent's caller ID and screen pop)
    flow: str = ""
    did: str = ""
    optional_skills: dict[str, float] = field(default_factory=dict)   # the flow's, for agent ranking

    def encode(self) -> str:
        d = {"q": self.queue, "t": round(self.joined_at, 3), "p": self.priority, "x": self.extra_skills,
             "n": self.name[:80], "f": self.flow, "d": self.did}
        if self.optional_skills:
            d["o"] = self.optional_skills
        return json.dumps(d, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def decode(cls, raw: str | None) -> QueueState | None:
        """None for anything that is not a well-formed state of ours (never raises)."""
        if not raw or len(raw) > _MAX_VAR:
            return None
        try:
            d = json.loads(raw)
            queue, joined = d["q"], d["t"]
            extra = {str(k): int(v) for k, v in (d.get("x") or {}).items()}
            optional = {str(k): float(v) for k, v in (d.get("o") or {}).items()}
            if not isinstance(queue, str) or not queue or isinstance(joined, bool) \
                    or not isinstance(joined, (int, float)):
                return None
            return cls(queue, float(joined), int(d.get("p") or 0), extra, str(d.get("n") or ""),
                       str(d.get("f") or ""), str(d.get("d") or ""), optional)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def agent_endpoint_of(channel_name: str) -> str:
    """'PJSIP/agent1-0000002a' -> 'PJSIP/agent1' (the endpoint an agent leg was dialled on)."""
    return channel_name.rsplit("-", 1)[0] if "-" in channel_name else channel_name


def parse_ari_time(value: Any) -> float | None:
    """ARI timestamps ('2026-11-23T06:50:00.123+0000') -> epoch seconds."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def wall_to_monotonic(wall: float) -> float:
    return time.monotonic() - max(0.0, time.time() - wall)


class AdoptedCall:
    """The session of a caller taken over after a restart (in queue or talking to an agent)."""

    adopted = True

    def __init__(self, app: App, channel: Channel, state: QueueState | None) -> None:
        self.app = app
        self.channel = channel
        self.channel_id = channel.id
        self.log = CallLog(log, {"call": channel.id})
        self.caller_raw = channel.caller.number
        self.state = state
        self.did = (state.did if state else "") or channel.exten
        self.flow_name = state.flow if state else ""
        self.started_at = state.joined_at if state else time.time()
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
        if isinstance(ev, PlaybackFinished) and ev.playback.id == self._bye_id:
            await self.app.ari.hangup_quietly(self.channel_id)
            return
        if not isinstance(ev, Internal) or not isinstance(ev.payload, tuple):
            return
        kind, value = ev.payload
        if kind != "queue":
            return
        self.in_queue = False
        if value == "answered":
            await self.app.ari.hangup_quietly(self.channel_id)
            return
        # the flow that would have handled this outcome cannot be resumed: say goodbye and hang up
        self.log.info("queue outcome %s for an adopted call: goodbye", value)
        try:
            await self.app.ari.play(self.channel_id, self._bye_id, "sound:vm-goodbye")
        except AriError:
            await self.app.ari.hangup_quietly(self.channel_id)

    async def ended(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.in_queue and self.app.acd is not None:
            await self.app.acd.caller_gone(self)

    def customer_name(self) -> str:
        return self.state.name if self.state else ""

    def screen_pop(self) -> dict[str, Any]:
        return {"call_id": self.channel_id, "did": self.did, "flow": self.flow_name,
                "caller": mask_number(self.caller_raw), "customer": None, "known": False,
                "repeat_caller": False, "last_agent": None, "flags": ["adopted"], "ivr_path": [], "keys": "",
                "queue": self.queue_name, "waiting_since": self.started_at}

    def queue_outcome(self, outcome: str) -> None:
        self.app.dispatcher.submit(internal(self.channel_id, ("queue", outcome)))
