"""The per-call session seam: the app feeds a session the events of its channel, in order.

A session owns one inbound channel. `start()` runs on StasisStart, `on_event()` for every later event of
its channel, and `ended()` once when the channel leaves the app or is destroyed (cleanup must be
idempotent: a caller may hang up at any moment).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..ari import AriClient, Channel, Event, NotFound, PlaybackFinished
from ..logsafe import CallLog, mask_number

log = logging.getLogger(__name__)


class CallSession(Protocol):
    channel_id: str

    async def start(self) -> None: ...

    async def on_event(self, ev: Event) -> None: ...

    async def ended(self) -> None: ...


class PromptAndHangup:
    """The simplest inbound call: answer, play one prompt, hang up (the foundation's behaviour)."""

    def __init__(self, ari: AriClient, channel: Channel, prompt: str = "sound:hello-world") -> None:
        self.ari = ari
        self.channel_id = channel.id
        self.prompt = prompt
        self.playback_id = f"{channel.id}-pb1"
        self.log = CallLog(log, {"call": channel.id})
        self.log.info("inbound call from %s to %s", mask_number(channel.caller.number), channel.exten)
        self.done = False

    async def start(self) -> None:
        await self.ari.answer(self.channel_id)
        await self.ari.play(self.channel_id, self.playback_id, self.prompt)

    async def on_event(self, ev: Event) -> None:
        if isinstance(ev, PlaybackFinished) and ev.playback.id == self.playback_id:
            self.log.info("prompt finished; hanging up")
            try:
                await self.ari.hangup(self.channel_id, "normal")
            except NotFound:
                pass

    async def ended(self) -> None:
        self.done = True
