"""Typed ARI REST client on one pooled aiohttp session.

Credentials go in an `Authorization: Basic` header built here (never `?api_key=` in a URL that might be
logged). Every request goes through `_op`, which only accepts parameters listed in `operations.OPERATIONS`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .errors import AriError, NotFound, Unavailable, response_value
from .models import Bridge, Channel, DeviceState, Endpoint, LiveRecording, Playback
from .operations import OPERATIONS
from .rest_socket import RestSockets

log = logging.getLogger(__name__)


def basic_auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _qval(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# Asterisk's HTTP server answers 400 to a request line above ~4 KB: event sources (one per agent endpoint,
# `endpoint:PJSIP/agent1`, ~30 URL-encoded bytes each) go in several requests below that.
_MAX_SOURCES_CHARS = 1500


def _batches(sources: Iterable[str]) -> list[list[str]]:
    out: list[list[str]] = []
    size = 0
    for s in sources:
        if not out or size + len(s) + 1 > _MAX_SOURCES_CHARS:
            out.append([])
            size = 0
        out[-1].append(s)
        size += len(s) + 1
    return out


#: GETs of whole collections: slow by size (hundreds of channels), never on a REST websocket, where Asterisk
#: would make every request queued behind one wait for it; not a sign of a saturated Asterisk (admission)
BULK_LISTS = frozenset({"/channels", "/bridges", "/endpoints", "/deviceStates", "/sounds", "/applications",
                        "/recordings/stored"})


class AriClient:
    """REST half of ARI. `async with AriClient(...)` owns the HTTP session."""

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 session: aiohttp.ClientSession | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = basic_auth_header(user, password)
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.requests_made = 0
        #: called with (seconds, method, path) of every REST request (a timeout or connection error counts
        #: as the time it took): feeds admission control
        self.on_latency: Callable[[float, str, str], None] | None = None
        #: when set (`use_websockets`), requests go over these ARI websockets while one is connected
        self.sockets: RestSockets | None = None

    def use_websockets(self, count: int, *, reconnect_min: float = 0.2, reconnect_max: float = 5.0) -> RestSockets:
        """Send REST requests over `count` websockets (their `run()` keeps them connected) instead of HTTP
        whenever one is connected. Raw responses (a recording's audio) always use HTTP."""
        self.sockets = RestSockets(lambda: self.session, self.base_url, self.app, count,
                                   reconnect_min=reconnect_min, reconnect_max=reconnect_max)
        return self.sockets

    async def __aenter__(self) -> AriClient:
        self.session  # noqa: B018 - create it now, inside the running loop
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # one pooled keep-alive session: REST round trips per call are a throughput cost
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._auth},
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30))
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    @property
    def auth_header(self) -> str:
        return self._auth

    # ------------------------------------------------------------------------------------------ core
    async def _op(self, op_name: str, /, _raw: bool = False, **params: Any) -> Any:
        """Call an operation of ``OPERATIONS``; with ``_raw`` the response is ``(bytes, content type)``
        (a recording's audio) instead of parsed JSON."""
        name = op_name
        op = OPERATIONS[name]
        path_vals = {}
        for p in op.path_params:
            if p not in params:
                raise TypeError(f"{name}: missing path parameter {p}")
            path_vals[p] = quote(str(params.pop(p)), safe="")
        query: list[tuple[str, str]] = []
        body: dict[str, Any] | None = None
        for k, v in params.items():
            if v is None:
                continue
            if k in op.query:
                if isinstance(v, (list, tuple)):
                    # one comma-separated value (a list of media is played in order): Asterisk keeps only
                    # the last of repeated parameters (a repeated `media` played only the last sound)
                    query.append((k, ",".join(_qval(x) for x in v)))
                else:
                    query.append((k, _qval(v)))
            elif k in op.body:
                body = v if k == "filter" else {k: v}
            else:
                raise TypeError(f"{name}: unknown parameter {k!r} (ARI takes {op.query + op.body})")
        path = op.path.format(**path_vals)
        return await self._request(op.method, path, query, body, raw=_raw)

    async def _request(self, method: str, path: str, query: list[tuple[str, str]],
                       body: dict[str, Any] | None, raw: bool = False) -> Any:
        self.requests_made += 1
        t0 = time.monotonic()
        sock = (self.sockets.pick() if self.sockets is not None and not raw
                and not (method == "GET" and path in BULK_LISTS) else None)
        if sock is not None:
            try:
                return await sock.request(method, path, query, body, self._timeout.total or 10.0)
            finally:
                if self.on_latency is not None:
                    self.on_latency(time.monotonic() - t0, method, path)
        url = f"{self.base_url}/ari{path}"
        try:
            async with self.session.request(method, url, params=query, json=body, timeout=self._timeout) as r:
                if raw and r.status < 300:
                    return await r.read(), r.content_type
                return response_value(method, path, r.status, await r.text())
        except AriError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise Unavailable(method, path, 0, type(e).__name__ + (f": {e}" if str(e) else "")) from None
        finally:
            if self.on_latency is not None:
                self.on_latency(time.monotonic() - t0, method, path)

    # ------------------------------------------------------------------------------------ asterisk
    async def info(self) -> dict[str, Any]:
        return await self._op("asterisk.info")

    async def global_var(self, variable: str) -> str:
        """A global (dialplan) variable; '' when unset."""
        try:
            r = await self._op("asterisk.variable_get", variable=variable)
        except NotFound:
            return ""
        return str((r or {}).get("value", ""))

    async def set_global_var(self, variable: str, value: str) -> None:
        await self._op("asterisk.variable_set", variable=variable, value=value)

    async def ping(self) -> dict[str, Any]:
        return await self._op("asterisk.ping")

    async def config_get(self, config_class: str, object_type: str, ident: str) -> list[dict[str, str]]:
        """A sorcery object's fields (``[{"attribute", "value"}]``); NotFound when it does not exist."""
        return await self._op("asterisk.config_get", configClass=config_class, objectType=object_type, id=ident)

    async def config_put(self, config_class: str, object_type: str, ident: str,
                         fields: list[dict[str, str]]) -> list[dict[str, str]]:
        """Create or update a sorcery object (e.g. ``res_pjsip``/``endpoint``/``agent9``) in a writable
        wizard (config/asterisk/sorcery.conf); 403 when no wizard of that type can be written."""
        return await self._op("asterisk.config_update", configClass=config_class, objectType=object_type,
                              id=ident, fields=fields)

    async def config_delete(self, config_class: str, object_type: str, ident: str) -> None:
        await self._op("asterisk.config_delete", configClass=config_class, objectType=object_type, id=ident)

    # -------------------------------------------------------------------------------- applications
    async def application(self) -> dict[str, Any]:
        return await self._op("applications.get", applicationName=self.app)

    async def subscribe(self, event_sources: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for batch in _batches(event_sources):
            result = await self._op("applications.subscribe", applicationName=self.app, eventSource=batch)
        return result

    async def unsubscribe(self, event_sources: Iterable[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for batch in _batches(event_sources):
            result = await self._op("applications.unsubscribe", applicationName=self.app, eventSource=batch)
        return result

    async def set_event_filter(self, allowed: Iterable[str] | None) -> dict[str, Any]:
        """Ask Asterisk to send only these event types (it spends CPU on every event it sends)."""
        f = {"allowed": [{"type": t} for t in allowed]} if allowed else {"allowed": [], "disallowed": []}
        return await self._op("applications.filter", applicationName=self.app, filter=f)

    # ------------------------------------------------------------------------------------ channels
    async def channels(self) -> list[Channel]:
        return [Channel.parse(c) for c in await self._op("channels.list") or []]

    async def channel(self, channel_id: str) -> Channel:
        return Channel.parse(await self._op("channels.get", channelId=channel_id))

    async def originate(self, channel_id: str, endpoint: str, *, app: str | None = None,
                        app_args: Iterable[str] = (), caller_id: str | None = None, timeout: int | None = None,
                        variables: Mapping[str, str] | None = None, originator: str | None = None,
                        other_channel_id: str | None = None) -> Channel:
        """Originate with a client-chosen channel id back into our app (args say which call it is for)."""
        d = await self._op("channels.originate", channelId=channel_id, endpoint=endpoint, app=app or self.app,
                           appArgs=",".join(app_args) or None, callerId=caller_id, timeout=timeout,
                           variables=dict(variables) if variables else None, originator=originator,
                           otherChannelId=other_channel_id)
        return Channel.parse(d)

    async def hangup(self, channel_id: str, reason: str | None = None) -> None:
        await self._op("channels.hangup", channelId=channel_id, reason=reason)

    async def hangup_quietly(self, channel_id: str, reason: str | None = None) -> bool:
        """Hang up; a channel that is already gone is fine (the caller may have hung up first)."""
        try:
            await self.hangup(channel_id, reason)
            return True
        except NotFound:
            return False

    async def answer(self, channel_id: str) -> None:
        await self._op("channels.answer", channelId=channel_id)

    async def ring(self, channel_id: str) -> None:
        await self._op("channels.ring", channelId=channel_id)

    async def ring_stop(self, channel_id: str) -> None:
        await self._op("channels.ring_stop", channelId=channel_id)

    async def send_dtmf(self, channel_id: str, dtmf: str, *, duration: int | None = None,
                        between: int | None = None) -> None:
        await self._op("channels.dtmf", channelId=channel_id, dtmf=dtmf, duration=duration, between=between)

    async def play(self, channel_id: str, playback_id: str, media: str | Iterable[str],
                   lang: str | None = None) -> Playback:
        m = [media] if isinstance(media, str) else list(media)
        return Playback.parse(await self._op("channels.play", channelId=channel_id, playbackId=playback_id,
                                             media=m, lang=lang))

    async def record(self, channel_id: str, name: str, *, fmt: str = "wav", max_seconds: int = 0,
                     max_silence: int = 0, beep: bool = True, terminate_on: str = "#",
                     if_exists: str = "fail") -> LiveRecording:
        return LiveRecording.parse(await self._op(
            "channels.record", channelId=channel_id, name=name, format=fmt, maxDurationSeconds=max_seconds,
            maxSilenceSeconds=max_silence, beep=beep, terminateOn=terminate_on, ifExists=if_exists))

    async def moh_start(self, channel_id: str, moh_class: str | None = None) -> None:
        await self._op("channels.moh_start", channelId=channel_id, mohClass=moh_class)

    async def moh_stop(self, channel_id: str) -> None:
        await self._op("channels.moh_stop", channelId=channel_id)

    async def get_var(self, channel_id: str, variable: str) -> str:
        d = await self._op("channels.var_get", channelId=channel_id, variable=variable)
        return str((d or {}).get("value", ""))

    async def set_var(self, channel_id: str, variable: str, value: str) -> None:
        await self._op("channels.var_set", channelId=channel_id, variable=variable, value=value)

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str,
                                   priority: int = 1) -> None:
        await self._op("channels.continue", channelId=channel_id, context=context, extension=extension,
                       priority=priority)

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        await self._op("channels.redirect", channelId=channel_id, endpoint=endpoint)

    async def rtp_statistics(self, channel_id: str) -> dict[str, Any]:
        return await self._op("channels.rtp_statistics", channelId=channel_id)

    # ------------------------------------------------------------------------------------- bridges
    async def bridges(self) -> list[Bridge]:
        return [Bridge.parse(b) for b in await self._op("bridges.list") or []]

    async def bridge(self, bridge_id: str) -> Bridge:
        return Bridge.parse(await self._op("bridges.get", bridgeId=bridge_id))

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing,dtmf_events",
                            name: str | None = None) -> Bridge:
        return Bridge.parse(await self._op("bridges.create", bridgeId=bridge_id, type=bridge_type, name=name))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._op("bridges.destroy", bridgeId=bridge_id)

    async def add_channel(self, bridge_id: str, channel_ids: str | Iterable[str], role: str | None = None,
                          inhibit_connected_line_updates: bool | None = None) -> None:
        ch = [channel_ids] if isinstance(channel_ids, str) else list(channel_ids)
        await self._op("bridges.add_channel", bridgeId=bridge_id, channel=ch, role=role,
                       inhibitConnectedLineUpdates=inhibit_connected_line_updates)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Iterable[str]) -> None:
        ch = [channel_ids] if isinstance(channel_ids, str) else list(channel_ids)
        await self._op("bridges.remove_channel", bridgeId=bridge_id, channel=ch)

    async def bridge_moh_start(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self._op("bridges.moh_start", bridgeId=bridge_id, mohClass=moh_class)

    async def bridge_moh_stop(self, bridge_id: str) -> None:
        await self._op("bridges.moh_stop", bridgeId=bridge_id)

    async def bridge_play(self, bridge_id: str, playback_id: str, media: str | Iterable[str],
                          lang: str | None = None) -> Playback:
        m = [media] if isinstance(media, str) else list(media)
        return Playback.parse(await self._op("bridges.play", bridgeId=bridge_id, playbackId=playback_id,
                                             media=m, lang=lang))

    # ---------------------------------------------------------------------------- playbacks & co
    async def playback(self, playback_id: str) -> Playback:
        return Playback.parse(await self._op("playbacks.get", playbackId=playback_id))

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; one that already finished is fine."""
        try:
            await self._op("playbacks.stop", playbackId=playback_id)
            return True
        except NotFound:
            return False

    async def stored_recordings(self) -> list[str]:
        """Names of the recordings Asterisk keeps."""
        return [str(r.get("name", "")) for r in await self._op("recordings.stored_list") or []]

    async def stored_recording(self, name: str) -> dict[str, Any]:
        return await self._op("recordings.stored_get", recordingName=name)

    async def stored_recording_file(self, name: str) -> tuple[bytes, str]:
        """A stored recording's audio and its content type (e.g. ``audio/wav``)."""
        data, content_type = await self._op("recordings.stored_file", _raw=True, recordingName=name)
        return data, content_type

    async def delete_stored_recording(self, name: str) -> None:
        await self._op("recordings.stored_delete", recordingName=name)

    async def stop_live_recording(self, name: str) -> None:
        await self._op("recordings.live_stop", recordingName=name)

    async def endpoints(self) -> list[Endpoint]:
        return [Endpoint.parse(e) for e in await self._op("endpoints.list") or []]

    async def endpoint(self, tech: str, resource: str) -> Endpoint:
        return Endpoint.parse(await self._op("endpoints.get", tech=tech, resource=resource))

    async def device_states(self) -> list[DeviceState]:
        return [DeviceState.parse(d) for d in await self._op("device_states.list") or []]

    async def device_state(self, name: str) -> DeviceState:
        return DeviceState.parse(await self._op("device_states.get", deviceName=name))

    async def sounds(self, lang: str | None = None) -> list[str]:
        return [str(s.get("id")) for s in await self._op("sounds.list", lang=lang) or []]
