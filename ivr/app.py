"""Composition root: config -> ARI client, events websocket, dispatcher, call sessions; graceful shutdown.

The app owns the mapping channel id -> call session. Asterisk is the source of truth: after every
(re)connect the app reconciles its sessions with `GET /channels` (sessions whose channel is gone are
ended; channels in our Stasis app that no session owns are hung up, so nothing leaks).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Callable

from .ari import (AriClient, AriError, Channel, ChannelDestroyed, Connected, Disconnected, Dispatcher, Event,
                  EventStream, StasisEnd, StasisStart)
from .calls.session import CallSession, PromptAndHangup
from .config import Config

log = logging.getLogger(__name__)

SessionFactory = Callable[["App", StasisStart], CallSession | None]

# Only these event types are requested from Asterisk (it pays CPU for every event it sends).
EVENT_TYPES = ["StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelDtmfReceived", "PlaybackStarted",
               "PlaybackFinished", "ChannelStateChange", "RecordingFinished", "RecordingFailed",
               "ChannelEnteredBridge", "ChannelLeftBridge", "ChannelHangupRequest", "Dial",
               "EndpointStateChange", "ContactStatusChange", "DeviceStateChanged"]


def default_session_factory(app: "App", ev: StasisStart) -> CallSession | None:
    if ev.args[:1] == ("inbound",):
        return PromptAndHangup(app.ari, ev.channel)
    return None


class App:
    def __init__(self, cfg: Config, session_factory: SessionFactory = default_session_factory) -> None:
        self.cfg = cfg
        self.ari = AriClient(cfg.ari_url, cfg.ari.user, cfg.ari.password, cfg.ari.app)
        self.dispatcher = Dispatcher(self.handle)
        self.events = EventStream(self.ari, self.dispatcher.submit, subscriptions=self.subscriptions,
                                  event_types=EVENT_TYPES, reconnect_min=cfg.ari.reconnect_min,
                                  reconnect_max=cfg.ari.reconnect_max)
        self.session_factory = session_factory
        self.sessions: dict[str, CallSession] = {}
        self.calls_started = 0
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._extra_subscriptions: list[str] = []

    def subscriptions(self) -> list[str]:
        """Event sources re-applied on every (re)connect (e.g. agent endpoints for presence)."""
        return list(self._extra_subscriptions)

    def add_subscription(self, source: str) -> None:
        if source not in self._extra_subscriptions:
            self._extra_subscriptions.append(source)

    # ------------------------------------------------------------------------------------- events
    async def handle(self, ev: Event) -> None:
        if isinstance(ev, StasisStart):
            await self._on_stasis_start(ev)
        elif isinstance(ev, (StasisEnd, ChannelDestroyed)):
            s = self.sessions.pop(ev.channel.id, None)
            if s is not None:
                await s.ended()
        elif isinstance(ev, Connected):
            await self.reconcile()
            self.ready.set()
        elif isinstance(ev, Disconnected):
            self.ready.clear()
        else:
            cid = ev.channel_id
            s = self.sessions.get(cid) if cid else None
            if s is not None:
                await s.on_event(ev)

    async def _on_stasis_start(self, ev: StasisStart) -> None:
        session = self.session_factory(self, ev)
        if session is None:
            log.warning("no session for channel %s (args %s): hanging up", ev.channel.id, ev.args)
            await self.ari.hangup_quietly(ev.channel.id)
            return
        self.sessions[ev.channel.id] = session
        self.calls_started += 1
        try:
            await session.start()
        except AriError as e:
            # the caller may hang up while we answer: end this call only, never the app
            log.info("call %s: start failed (%s); ending it", ev.channel.id, e)
            self.sessions.pop(ev.channel.id, None)
            await session.ended()
            await self.ari.hangup_quietly(ev.channel.id)

    async def reconcile(self) -> None:
        """Make our state match Asterisk's after a (re)connect."""
        try:
            channels = await self.ari.channels()
        except AriError as e:
            log.warning("reconcile: cannot list channels: %s", e)
            return
        live = {c.id: c for c in channels}
        for cid in [c for c in self.sessions if c not in live]:
            s = self.sessions.pop(cid)
            log.info("reconcile: channel %s is gone; ending its session", cid)
            await s.ended()
        for c in channels:
            if c.id not in self.sessions and self._in_our_app(c):
                log.info("reconcile: hanging up orphan channel %s", c.id)
                await self.ari.hangup_quietly(c.id)

    def _in_our_app(self, c: Channel) -> bool:
        dp = c.raw.get("dialplan") or {}
        return dp.get("app_name") == "Stasis" and str(dp.get("app_data", "")).split(",")[0] == self.cfg.ari.app

    # ---------------------------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        log.info("ivr starting: ARI %s app=%s", self.cfg.ari_url, self.cfg.ari.app)
        async with self.ari:
            task = asyncio.create_task(self.events.run(), name="ari-events")
            try:
                await self._stopping.wait()
            finally:
                await self.events.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await self.dispatcher.close()
        log.info("ivr stopped")

    def stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
