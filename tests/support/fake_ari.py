"""A loopback fake Asterisk ARI for the component tier: an aiohttp server on 127.0.0.1, port 0.

It serves the subset of ARI the app uses (``ivr/ari/operations.py``: channels, bridges, playbacks,
recordings, applications, asterisk, endpoints, device states, sounds), keeps the state Asterisk would
(channels, bridges with their members, playbacks, global variables) and sends the app the events Asterisk
sends on ``/ari/events?app=...`` (honouring the app's event filter and its endpoint subscriptions).

The test plays the phones (``controls``): ``incoming_call`` is a caller the dialplan hands to the app
(``Stasis(app,inbound)``), ``answer`` / ``fail`` an originated leg, ``hangup`` the far end, ``dtmf``,
``finish_playbacks``, ``set_endpoint``; ``inject`` makes the next requests of a path fail or hang. Nothing
happens by itself but Asterisk's own timers: an unanswered originated leg ends (cause 19) at its originate
timeout times ``ring_time_scale`` (0.01: a 15 s ring is over in 0.15 s), and with ``playback_seconds`` a
playback finishes after that long (else when the test says).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .fake_ari_routes import add_routes
from .fake_ari_state import (
    CAUSE_TEXT,
    AriFailure,
    FakeBridge,
    FakeChannel,
    FakePlayback,
    FakeRecording,
    Injection,
    Request,
    new_unique_id,
    now_iso,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Connection:
    app: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    sent: int = 0


class FakeAri:
    def __init__(self, *, user: str = "ivr", password: str = "", app: str = "ivr",
                 endpoints: dict[str, str] | None = None, playback_seconds: float | None = None,
                 ring_time_scale: float | None = 1.0) -> None:
        self.user, self.password, self.app_name = user, password, app
        #: endpoint name (``PJSIP/agent1``) -> state (``online`` / ``offline``)
        self.endpoints: dict[str, str] = dict(endpoints or {})
        #: None: playbacks finish when the test says (``finish_playbacks``); else after that many seconds
        self.playback_seconds = playback_seconds
        #: an originated leg nobody answers ends like Asterisk's originate timeout (cause 19) after its
        #: ``timeout`` x this (0.1: ten times sooner, a fake clock for ring timeouts); None: it rings forever
        self.ring_time_scale = ring_time_scale
        self.channels: dict[str, FakeChannel] = {}
        self.bridges: dict[str, FakeBridge] = {}
        self.playbacks: dict[str, FakePlayback] = {}
        self.recordings: dict[str, FakeRecording] = {}
        self.stored_recordings: set[str] = set()
        self.device_states: dict[str, str] = {}
        self.global_vars: dict[str, str] = {}
        self.requests: list[Request] = []
        self.injections: list[Injection] = []
        self.subscriptions: dict[str, set[str]] = {}
        self.event_filters: dict[str, tuple[set[str], set[str]]] = {}
        self.events_sent: list[dict[str, Any]] = []
        self.in_flight = 0
        self.written = 0                # events written to the websockets, all connections
        self._connections: list[_Connection] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeAri:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/ari/events", self._events)
        add_routes(app.router, self)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeAri:  # noqa: PYI034
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def drop_connections(self) -> None:
        """Close every events websocket (the app sees the connection drop, like an Asterisk restart)."""
        for c in list(self._connections):
            c.queue.put_nowait(None)
            await c.ws.close()

    @property
    def connected_apps(self) -> list[str]:
        return [c.app for c in self._connections]

    @property
    def quiet(self) -> bool:
        """No request being handled and no event waiting to be written."""
        return self.in_flight == 0 and all(c.queue.empty() for c in self._connections)

    # ---------------------------------------------------------------------------------- plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Authentication required"}, status=401)
        if request.path == "/ari/events":
            return await handler(request)
        path = request.path.removeprefix("/ari")
        body = await request.json() if request.can_read_body else None
        self.requests.append(Request(request.method, path, dict(request.query), body))
        self.in_flight += 1
        try:
            for inj in self.injections:
                if inj.matches(request.method, path):
                    inj.times -= 1
                    if inj.delay:
                        await asyncio.sleep(inj.delay)
                    if not inj.apply:
                        return web.json_response({"message": "injected failure"}, status=inj.status)
                    break
            try:
                return await handler(request)
            except AriFailure as e:
                return web.json_response({"message": e.message}, status=e.status)
        finally:
            self.in_flight -= 1

    async def _events(self, request: web.Request) -> web.WebSocketResponse:
        app = request.query.get("app", "")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(app, ws)
        self._connections.append(conn)
        writer = asyncio.get_running_loop().create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            conn.queue.put_nowait(None)
            self._connections.remove(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, conn: _Connection) -> None:
        while (msg := await conn.queue.get()) is not None:
            if conn.ws.closed:
                return
            await conn.ws.send_str(json.dumps(msg))
            conn.sent += 1
            self.written += 1

    def emit(self, event_type: str, *, source: str | None = None, **fields: Any) -> None:
        """Send an event to every connected app that wants it: its event filter lets it through, and for
        an event of a ``source`` the app must subscribe to (``endpoint:PJSIP/agent1``), it subscribed."""
        for conn in list(self._connections):
            allowed, disallowed = self.event_filters.get(conn.app, (set(), set()))
            if (allowed and event_type not in allowed) or event_type in disallowed:
                continue
            if source is not None and source not in self.subscriptions.get(conn.app, set()):
                continue
            msg = {"type": event_type, "application": conn.app, "timestamp": now_iso(), **fields,
                   "asterisk_id": "fa:ke:00:00:00:01"}
            self.events_sent.append(msg)
            conn.queue.put_nowait(msg)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            fn()
        t = asyncio.get_running_loop().create_task(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------- controls
    def incoming_call(self, caller: str = "+442071234567", exten: str = "400", *, name: str = "",
                      context: str = "from-caller") -> str:
        """A caller the dialplan hands to the app: ``Stasis(<app>,inbound)``. Returns its channel id."""
        cid = new_unique_id()
        ch = FakeChannel(cid, f"PJSIP/caller-{len(self.channels) + 1:08x}", "Ring", name, caller, context, exten,
                         "Stasis", f"{self.app_name},inbound", in_stasis=True)
        self.channels[cid] = ch
        self.emit("StasisStart", args=["inbound"], channel=ch.json())
        return cid

    def answer(self, channel_id: str) -> None:
        """The far end of an originated leg answers: it enters the app with the originate's appArgs."""
        ch = self._channel(channel_id)
        if ch.in_stasis:
            raise AssertionError(f"channel {channel_id} already answered")
        ch.state, ch.in_stasis, ch.app_name = "Up", True, "Stasis"
        ch.app_data = ",".join((self.app_name, *ch.app_args))
        self.emit("StasisStart", args=list(ch.app_args), channel=ch.json())

    def fail(self, channel_id: str, cause: int = 17) -> None:
        """An originated leg ends before answering (17 busy, 19 no answer, 20 unregistered, 34 congestion)."""
        ch = self._channel(channel_id)
        if ch.in_stasis:
            raise AssertionError(f"channel {channel_id} was answered: hang it up instead")
        self.end_channel(ch, cause)

    def hangup(self, channel_id: str, cause: int = 16, *, linger: bool = False) -> None:
        """The far end hangs up (a caller, an agent, a customer). With ``linger`` only the first half
        happens now (ChannelHangupRequest, its playbacks end) and the channel is still listed, as on a busy
        Asterisk, until ``complete_hangup`` (StasisEnd, ChannelDestroyed)."""
        ch = self._channel(channel_id)
        if linger:
            self._hangup_request(ch, cause)
        else:
            self.end_channel(ch, cause)

    def complete_hangup(self, channel_id: str) -> None:
        ch = self._channel(channel_id)
        self.end_channel(ch, ch.hangup_cause or 16)

    def dtmf(self, channel_id: str, digits: str, duration_ms: int = 100) -> None:
        ch = self._channel(channel_id)
        for d in digits:
            self.emit("ChannelDtmfReceived", digit=d, duration_ms=duration_ms, channel=ch.json())

    def finish_playbacks(self, channel_id: str | None = None) -> list[str]:
        """Every playback on this channel (or bridge; None: everywhere) finishes. Returns their ids."""
        done = [p for p in self.playbacks.values() if channel_id is None or p.target == channel_id]
        for p in done:
            self.finish_playback(p.id)
        return [p.id for p in done]

    def finish_playback(self, playback_id: str, state: str = "done") -> None:
        p = self.playbacks.pop(playback_id, None)
        if p is not None:
            p.state = state
            self.emit("PlaybackFinished", playback=p.json())

    def finish_recording(self, channel_id: str, duration: int = 5) -> None:
        for r in [r for r in self.recordings.values() if r.channel_id == channel_id]:
            del self.recordings[r.name]
            r.state, r.duration = "done", duration
            self.stored_recordings.add(r.name)
            self.emit("RecordingFinished", recording=r.json())

    def set_endpoint(self, endpoint: str, state: str) -> None:
        """An agent's phone registers (``online``) or not (``offline``)."""
        self.endpoints[endpoint] = state
        tech, res = endpoint.split("/", 1)
        self.emit("EndpointStateChange", source=f"endpoint:{endpoint}",
                  endpoint={"technology": tech, "resource": res, "state": state, "channel_ids": []})

    def inject(self, method: str, path: str, *, times: int = 1, status: int = 500, delay: float = 0.0,
               apply: bool = False) -> Injection:
        """The next ``times`` requests ``method path`` (a glob below /ari) fail with ``status``, or are held
        ``delay`` seconds (then fail, or with ``apply`` are carried out)."""
        inj = Injection(method, path, times, status, delay, apply)
        self.injections.append(inj)
        return inj

    # ------------------------------------------------------------------------------- queries
    def originates(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.count("/") == 2
                and r.path.startswith("/channels/") and "endpoint" in r.query]

    def legs_to(self, endpoint: str) -> list[FakeChannel]:
        """Live originated channels to this endpoint, oldest first."""
        return [c for c in self.channels.values() if c.originated and c.endpoint == endpoint]

    def playing(self, channel_id: str) -> list[FakePlayback]:
        return [p for p in self.playbacks.values() if p.target == channel_id]

    # -------------------------------------------------------------------------- state changes
    def _channel(self, channel_id: str) -> FakeChannel:
        ch = self.channels.get(channel_id)
        if ch is None:
            raise AssertionError(f"no channel {channel_id} (live: {sorted(self.channels)})")
        return ch

    def _hangup_request(self, ch: FakeChannel, cause: int) -> None:
        if ch.hangup_cause is None:
            ch.hangup_cause = cause
            self.emit("ChannelHangupRequest", cause=cause, soft=False, channel=ch.json())
        for p in self.playing(ch.id):
            self.finish_playback(p.id)

    def end_channel(self, ch: FakeChannel, cause: int) -> None:
        """Asterisk's order: hang-up request, playbacks end, the channel leaves its bridge and the app, then
        is destroyed."""
        self._hangup_request(ch, cause)
        if ch.bridge is not None:
            self.leave_bridge(ch)
        if ch.in_stasis:
            ch.in_stasis = False
            self.emit("StasisEnd", channel=ch.json())
        ch.state = "Down"
        self.channels.pop(ch.id, None)
        self.emit("ChannelDestroyed", cause=cause, cause_txt=CAUSE_TEXT.get(cause, "Unknown"), channel=ch.json())

    def leave_bridge(self, ch: FakeChannel) -> None:
        b = self.bridges.get(ch.bridge or "")
        ch.bridge = None
        if b is not None and ch.id in b.channels:
            b.channels.remove(ch.id)
            self.emit("ChannelLeftBridge", bridge=b.json(), channel=ch.json())

    def ring(self, ch: FakeChannel) -> None:
        """A leg just originated: it rings until answered, failed, hung up or its originate timeout."""
        if ch.ring_timeout and self.ring_time_scale is not None:
            def no_answer() -> None:
                if self.channels.get(ch.id) is ch and not ch.in_stasis and ch.hangup_cause is None:
                    self.end_channel(ch, 19)
            self.later(ch.ring_timeout * self.ring_time_scale, no_answer)

    def play(self, playback_id: str, target_uri: str, media: tuple[str, ...]) -> FakePlayback:
        if playback_id in self.playbacks:
            raise AriFailure(409, "Playback with this id already exists")
        p = FakePlayback(playback_id, media, target_uri)
        self.playbacks[playback_id] = p
        self.emit("PlaybackStarted", playback=p.json())
        if self.playback_seconds is not None:
            self.later(self.playback_seconds, lambda: self.finish_playback(playback_id))
        return p
