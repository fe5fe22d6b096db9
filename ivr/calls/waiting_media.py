"""What a waiting caller hears: the queue's music on hold and, every ``announce_frequency`` seconds, its
position and estimated wait (app_queue's wording). Owns the caller's media fields of ``QueuedCall``
(``moh``, ``announce``, ``announcement_id``); the ACD tells it when a caller waits, moves or is answered."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..acd.errors import AcdError
from ..acd.queue import QueueConfig
from ..acd.views import CallSnapshot
from ..ari import AriError, Event
from .clock import Clock
from .events import AnnounceDue, MusicDue
from .ids import sequence
from .member import QueuedCall

log = logging.getLogger(__name__)
_seq = sequence()     # process-unique numbers for ids on Asterisk (ivr/calls/ids.py)
PLAYBACK_PREFIX = "acd-"
#: seconds a caller whose agent's phone already rings waits before the music starts: a call an agent
#: (e.g. on auto-answer) takes at once gets no burst of music, and costs no music start and stop on Asterisk
MUSIC_DELAY = 0.5


class MediaAri(Protocol):
    async def moh_start(self, channel_id: str, moh_class: str | None = None) -> None: ...

    async def moh_stop(self, channel_id: str) -> None: ...

    async def play(self, channel_id: str, playback_id: str, media: str | Iterable[str],
                   lang: str | None = None) -> object: ...

    async def stop_playback(self, playback_id: str) -> object: ...


class QueueView(Protocol):
    """The router's public queries this part needs."""

    def queue_config(self, name: str) -> QueueConfig: ...

    def call_snapshot(self, call_id: str) -> CallSnapshot: ...


@dataclass(frozen=True)
class MediaDeps:
    ari: MediaAri
    router: QueueView
    clock: Clock
    submit: Callable[[Event], None]


class WaitingMedia:
    def __init__(self, deps: MediaDeps) -> None:
        self.deps = deps

    async def moh(self, qc: QueuedCall, on: bool) -> None:
        """Start / stop the queue's music on hold (idempotent; never music once an agent answered)."""
        if on == qc.moh or qc.answered and on:
            return
        qc.moh = on
        moh_class = self.deps.router.queue_config(qc.queue).moh_class
        try:
            if on:
                await self.deps.ari.moh_start(qc.call_id, moh_class)
            else:
                await self.deps.ari.moh_stop(qc.call_id)
        except AriError as e:
            qc.log.debug("moh %s: %s", "start" if on else "stop", e)

    async def joined(self, qc: QueuedCall, ringing: bool) -> None:
        """The caller joined the queue: music now, or after ``MUSIC_DELAY`` when an agent's phone
        already rings for it."""
        if not ringing:
            await self.moh(qc, True)
        elif qc.music_due is None:
            qc.music_due = self.deps.clock.call_later(MUSIC_DELAY, self.deps.submit, MusicDue(key=qc.call_id))

    async def music_due(self, qc: QueuedCall) -> None:
        """``MUSIC_DELAY`` has passed: music, unless an agent answered or an announcement plays."""
        qc.music_due = None
        if not qc.answered and qc.announcement_id is None:
            await self.moh(qc, True)

    def schedule(self, qc: QueuedCall) -> None:
        """The next announcement after the queue's ``announce_frequency`` (none without one)."""
        freq = self.deps.router.queue_config(qc.queue).announce_frequency
        if not freq or qc.answered:
            return
        if qc.announce is not None:
            qc.announce.cancel()
        qc.announce = self.deps.clock.call_later(freq, self.deps.submit, AnnounceDue(key=qc.call_id))

    async def announce(self, qc: QueuedCall) -> None:
        """Position and estimated wait (``announcement_media``); nothing for the wait without an estimate."""
        if qc.answered:
            return
        try:
            snap = self.deps.router.call_snapshot(qc.call_id)
        except AcdError:
            return
        if snap.agent_id is not None:
            self.schedule(qc)   # ringing an agent: not now
            return
        q = self.deps.router.queue_config(qc.queue)
        media = announcement_media(snap.position if q.announce_position else None,
                                   snap.estimated_wait if q.announce_hold_time else None)
        qc.log.debug("announcement in queue %s: position %s, estimated wait %s", qc.queue, snap.position,
                     "none (no caller left the line lately)" if snap.estimated_wait is None
                     else f"{snap.estimated_wait:.0f}s")
        if not media:
            self.schedule(qc)
            return
        await self.moh(qc, False)
        qc.announcement_id = f"{PLAYBACK_PREFIX}{qc.call_id}-{next(_seq)}"
        await self.deps.ari.play(qc.call_id, qc.announcement_id, media)

    async def announcement_finished(self, qc: QueuedCall, playback_id: str) -> None:
        """Music again, and the next announcement, unless an agent answered meanwhile."""
        if qc.announcement_id != playback_id:
            return
        qc.announcement_id = None
        if not qc.answered:
            await self.moh(qc, True)
            self.schedule(qc)

    async def stop(self, qc: QueuedCall) -> None:
        """The caller leaves the line (answered, back to its flow): no music, no announcement."""
        if qc.music_due is not None:
            qc.music_due.cancel()
            qc.music_due = None
        if qc.announce is not None:
            qc.announce.cancel()
            qc.announce = None
        if qc.announcement_id:
            try:
                await self.deps.ari.stop_playback(qc.announcement_id)
            except AriError as e:
                qc.log.debug("stop the announcement: %s", e)
            qc.announcement_id = None
        await self.moh(qc, False)

    async def moved(self, qc: QueuedCall, from_queue: str) -> None:
        """The caller moved to ``qc.queue`` (overflow): that queue's music class and announcements."""
        cfg = self.deps.router.queue_config
        if qc.moh and cfg(from_queue).moh_class != cfg(qc.queue).moh_class:
            qc.moh = False
            await self.moh(qc, True)
        if qc.announce is not None:
            qc.announce.cancel()
            qc.announce = None
        if qc.announcement_id is None:      # else its PlaybackFinished schedules the next one
            self.schedule(qc)


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
