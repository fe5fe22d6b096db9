"""The ARI events websocket: connect, reconnect with backoff and jitter, re-apply subscriptions and the
event filter on every (re)connect, and tell the app to reconcile.

After an Asterisk restart the app's subscriptions (`applications/{app}/subscription`) and event filter are
gone: `on_connect` hooks re-apply them before the synthetic `Connected` event is dispatched, so the app's
reconcile step sees a fully set-up application.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from .backoff import backoff_delay, wait_unless
from .client import AriClient
from .errors import AriError, Unprocessable
from .models import Connected, Disconnected, Event, parse_event

log = logging.getLogger(__name__)

ConnectHook = Callable[[AriClient], Awaitable[None]]


class EventStream:
    def __init__(self, client: AriClient, sink: Callable[[Event], None], *,
                 subscriptions: Callable[[], list[str]] | None = None,
                 event_types: list[str] | None = None, reconnect_min: float = 0.2,
                 reconnect_max: float = 5.0, before_subscribe: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client = client
        #: runs on every connect before the subscriptions (e.g. agent phones pushed to a restarted Asterisk,
        #: whose endpoints must exist to be subscribed to)
        self._before_subscribe = before_subscribe
        self._sink = sink
        self._subscriptions = subscriptions or (list)
        self.event_types = event_types
        self._min, self._max = reconnect_min, reconnect_max
        self.connected = False
        self.reconnects = 0
        self.connects = 0
        self.events_received = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stop = asyncio.Event()

    @property
    def ws_url(self) -> str:
        base = self.client.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        # credentials travel in the Authorization header, never in this URL
        return f"{base}/ari/events?app={self.client.app}&subscribeAll=false"

    async def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                async with self.client.session.ws_connect(self.ws_url, heartbeat=10.0,
                                                          timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:
                    self._ws = ws
                    await self._setup()
                    self.connected = True
                    if self.connects:
                        self.reconnects += 1
                    self.connects += 1
                    attempt = 0
                    log.info("ARI events connected (app=%s, reconnects=%d)", self.client.app, self.reconnects)
                    self._sink(Connected(type="Connected", application=self.client.app, reconnect=self.reconnects))
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self.events_received += 1
                            try:
                                data = json.loads(msg.data)
                            except ValueError:
                                log.warning("ARI sent a non-JSON message (%d bytes); ignored", len(msg.data))
                                continue
                            self._sink(parse_event(data))
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
                reason = "closed by Asterisk"
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, AriError, OSError) as e:
                reason = f"{type(e).__name__}: {e}"
            finally:
                self._ws = None
            if self.connected:
                self.connected = False
                log.warning("ARI events disconnected (%s); reconnecting", reason)
                self._sink(Disconnected(type="Disconnected", application=self.client.app, reason=reason))
            elif attempt % 10 == 0:
                # never connected yet, or still down: say why (first failure, then every 10th attempt)
                log.warning("ARI events: cannot connect to %s (%s); retrying", self.ws_url.split("?")[0], reason)
            if self._stop.is_set():
                break
            await wait_unless(self._stop, backoff_delay(attempt, self._min, self._max))
            attempt += 1

    async def _setup(self) -> None:
        if self.event_types is not None:
            await self.client.set_event_filter(self.event_types)
        if self._before_subscribe is not None:
            await self._before_subscribe()
        subs = self._subscriptions()
        if subs:
            try:
                await self.client.subscribe(subs)
            except Unprocessable:
                # one source does not exist (an agent's endpoint Asterisk does not know): the others still
                # count; that one is skipped (logged), never the whole connection
                for source in subs:
                    try:
                        await self.client.subscribe([source])
                    except Unprocessable as e:
                        log.warning("ARI events: cannot subscribe to %s (%s); skipped", source, e.message)

    async def drop(self) -> None:
        """Close the current websocket (tests use it to prove reconnection)."""
        if self._ws is not None:
            await self._ws.close()

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()
