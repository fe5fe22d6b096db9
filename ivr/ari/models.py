"""Typed ARI resources and events. Unknown fields are kept in `.raw`; unknown event types parse to `Event`.

Only the fields the server reads are typed; everything Asterisk sent stays available in `raw`, so a newer
Asterisk that adds fields or event types never breaks parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallerId:
    name: str = ""
    number: str = ""

    @classmethod
    def parse(cls, d: dict | None) -> CallerId:
        d = d or {}
        return cls(str(d.get("name") or ""), str(d.get("number") or ""))


@dataclass(frozen=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller: CallerId = CallerId()
    connected: CallerId = CallerId()
    exten: str = ""          # dialplan extension when the channel entered Stasis: the dialed number
    context: str = ""
    language: str = ""
    channelvars: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> Channel:
        dp = d.get("dialplan") or {}
        return cls(id=str(d.get("id", "")), name=str(d.get("name", "")), state=str(d.get("state", "")),
                   caller=CallerId.parse(d.get("caller")), connected=CallerId.parse(d.get("connected")),
                   exten=str(dp.get("exten", "")), context=str(dp.get("context", "")),
                   language=str(d.get("language", "")), channelvars=dict(d.get("channelvars") or {}), raw=d)


@dataclass(frozen=True)
class Bridge:
    id: str
    bridge_type: str = ""
    technology: str = ""
    channels: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> Bridge:
        return cls(id=str(d.get("id", "")), bridge_type=str(d.get("bridge_type", "")),
                   technology=str(d.get("technology", "")), channels=tuple(d.get("channels") or ()), raw=d)


@dataclass(frozen=True)
class Playback:
    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> Playback:
        return cls(id=str(d.get("id", "")), media_uri=str(d.get("media_uri", "")),
                   target_uri=str(d.get("target_uri", "")), state=str(d.get("state", "")), raw=d)

    @property
    def channel_id(self) -> str | None:
        return self.target_uri[8:] if self.target_uri.startswith("channel:") else None


@dataclass(frozen=True)
class Endpoint:
    technology: str
    resource: str
    state: str = ""
    channel_ids: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> Endpoint:
        return cls(technology=str(d.get("technology", "")), resource=str(d.get("resource", "")),
                   state=str(d.get("state", "")), channel_ids=tuple(d.get("channel_ids") or ()), raw=d)

    @property
    def name(self) -> str:
        return f"{self.technology}/{self.resource}"


@dataclass(frozen=True)
class DeviceState:
    name: str
    state: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> DeviceState:
        return cls(name=str(d.get("name", "")), state=str(d.get("state", "")), raw=d)


@dataclass(frozen=True)
class LiveRecording:
    name: str
    state: str = ""
    duration: int = 0
    target_uri: str = ""
    cause: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, d: dict) -> LiveRecording:
        return cls(name=str(d.get("name", "")), state=str(d.get("state", "")),
                   duration=int(d.get("duration") or 0), target_uri=str(d.get("target_uri", "")),
                   cause=str(d.get("cause", "")), raw=d)


# ---------------------------------------------------------------------------------------------- events

@dataclass(frozen=True)
class Event:
    """Any ARI event. Subclasses type the fields the server uses; `raw` keeps everything."""

    type: str
    application: str = ""
    timestamp: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def channel_id(self) -> str | None:
        """The channel this event belongs to, for per-channel ordered dispatch (None: not channel-bound)."""
        return None


@dataclass(frozen=True)
class ChannelEvent(Event):
    channel: Channel = Channel("")

    @property
    def channel_id(self) -> str | None:
        return self.channel.id or None


@dataclass(frozen=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int = 0


@dataclass(frozen=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelEnteredBridge(ChannelEvent):
    bridge: Bridge = Bridge("")


@dataclass(frozen=True)
class ChannelLeftBridge(ChannelEvent):
    bridge: Bridge = Bridge("")


@dataclass(frozen=True)
class ChannelVarset(ChannelEvent):
    variable: str = ""
    value: str = ""

    @property
    def channel_id(self) -> str | None:
        return self.channel.id or None   # global varsets have no channel


@dataclass(frozen=True)
class Dial(Event):
    peer: Channel = Channel("")
    dialstatus: str = ""

    @property
    def channel_id(self) -> str | None:
        return self.peer.id or None


@dataclass(frozen=True)
class PlaybackEvent(Event):
    playback: Playback = Playback("")

    @property
    def channel_id(self) -> str | None:
        return self.playback.channel_id


@dataclass(frozen=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True)
class PlaybackContinuing(PlaybackEvent):
    pass


@dataclass(frozen=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True)
class RecordingEvent(Event):
    recording: LiveRecording = LiveRecording("")

    @property
    def channel_id(self) -> str | None:
        t = self.recording.target_uri
        return t[8:] if t.startswith("channel:") else None


@dataclass(frozen=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(frozen=True)
class RecordingFinished(RecordingEvent):
    pass


@dataclass(frozen=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(frozen=True)
class EndpointStateChange(Event):
    endpoint: Endpoint = Endpoint("", "")


@dataclass(frozen=True)
class ContactStatusChange(Event):
    endpoint: Endpoint = Endpoint("", "")
    contact_status: str = ""
    aor: str = ""


@dataclass(frozen=True)
class DeviceStateChanged(Event):
    device_state: DeviceState = DeviceState("", "")


@dataclass(frozen=True)
class BridgeEvent(Event):
    bridge: Bridge = Bridge("")


@dataclass(frozen=True)
class BridgeCreated(BridgeEvent):
    pass


@dataclass(frozen=True)
class BridgeDestroyed(BridgeEvent):
    pass


@dataclass(frozen=True)
class Connected(Event):
    """Synthetic: the events websocket is (re)connected, subscriptions re-applied. `reconnect` > 0 after a drop."""

    reconnect: int = 0


@dataclass(frozen=True)
class Disconnected(Event):
    """Synthetic: the events websocket dropped; the client is reconnecting with backoff."""

    reason: str = ""


def _base(d: dict) -> dict[str, Any]:
    return {"type": str(d.get("type", "")), "application": str(d.get("application", "")),
            "timestamp": str(d.get("timestamp", "")), "raw": d}


def _ch(d: dict, key: str = "channel") -> Channel:
    v = d.get(key)
    return Channel.parse(v) if isinstance(v, dict) else Channel("")


def parse_event(d: Any) -> Event:
    """Parse one websocket message. Never raises on unknown types or missing/odd fields."""
    if not isinstance(d, dict):
        return Event(type="Invalid", raw={"value": d})
    t = d.get("type")
    b = _base(d)
    try:
        if t == "StasisStart":
            rc = d.get("replace_channel")
            return StasisStart(**b, channel=_ch(d), args=tuple(str(a) for a in d.get("args") or ()),
                               replace_channel=Channel.parse(rc) if isinstance(rc, dict) else None)
        if t == "StasisEnd":
            return StasisEnd(**b, channel=_ch(d))
        if t == "ChannelStateChange":
            return ChannelStateChange(**b, channel=_ch(d))
        if t == "ChannelDestroyed":
            return ChannelDestroyed(**b, channel=_ch(d), cause=int(d.get("cause") or 0),
                                    cause_txt=str(d.get("cause_txt", "")))
        if t == "ChannelHangupRequest":
            return ChannelHangupRequest(**b, channel=_ch(d), cause=int(d.get("cause") or 0))
        if t == "ChannelDtmfReceived":
            return ChannelDtmfReceived(**b, channel=_ch(d), digit=str(d.get("digit", "")),
                                       duration_ms=int(d.get("duration_ms") or 0))
        if t in ("ChannelEnteredBridge", "ChannelLeftBridge"):
            cls = ChannelEnteredBridge if t == "ChannelEnteredBridge" else ChannelLeftBridge
            return cls(**b, channel=_ch(d), bridge=Bridge.parse(d.get("bridge") or {}))
        if t == "ChannelVarset":
            return ChannelVarset(**b, channel=_ch(d), variable=str(d.get("variable", "")),
                                 value=str(d.get("value", "")))
        if t == "Dial":
            return Dial(**b, peer=_ch(d, "peer"), dialstatus=str(d.get("dialstatus", "")))
        if t in ("PlaybackStarted", "PlaybackContinuing", "PlaybackFinished"):
            cls = {"PlaybackStarted": PlaybackStarted, "PlaybackContinuing": PlaybackContinuing,
                   "PlaybackFinished": PlaybackFinished}[t]
            return cls(**b, playback=Playback.parse(d.get("playback") or {}))
        if t in ("RecordingStarted", "RecordingFinished", "RecordingFailed"):
            cls = {"RecordingStarted": RecordingStarted, "RecordingFinished": RecordingFinished,
                   "RecordingFailed": RecordingFailed}[t]
            return cls(**b, recording=LiveRecording.parse(d.get("recording") or {}))
        if t == "EndpointStateChange":
            return EndpointStateChange(**b, endpoint=Endpoint.parse(d.get("endpoint") or {}))
        if t == "ContactStatusChange":
            ci = d.get("contact_info") or {}
            return ContactStatusChange(**b, endpoint=Endpoint.parse(d.get("endpoint") or {}),
                                       contact_status=str(ci.get("contact_status", "")),
                                       aor=str(ci.get("aor", "")))
        if t == "DeviceStateChanged":
            return DeviceStateChanged(**b, device_state=DeviceState.parse(d.get("device_state") or {}))
        if t in ("BridgeCreated", "BridgeDestroyed"):
            cls = BridgeCreated if t == "BridgeCreated" else BridgeDestroyed
            return cls(**b, bridge=Bridge.parse(d.get("bridge") or {}))
    except (TypeError, ValueError, AttributeError):
        pass   # odd field types: fall back to the generic event rather than dropping it
    return Event(**b)
