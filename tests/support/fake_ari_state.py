"""The state a fake Asterisk keeps for the component tier (``tests/support/fake_ari.py``): channels, bridges,
playbacks, live recordings, endpoints, as Asterisk's ARI renders them (the JSON the real one sends, for the
fields the app reads and a few more), plus failure injection rules for the REST side."""

from __future__ import annotations

import fnmatch
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Asterisk's hangup reasons (DELETE /channels/{id}?reason=) -> Q.850 cause
REASON_CAUSES = {"normal": 16, "busy": 17, "congestion": 34, "no_answer": 19, "timeout": 19, "rejected": 21,
                 "unallocated": 1, "normal_unspecified": 31, "answered_elsewhere": 26}
CAUSE_TEXT = {16: "Normal Clearing", 17: "User busy", 18: "No user responding", 19: "User alerting, no answer",
              21: "Call Rejected", 20: "Subscriber absent", 34: "Circuit/channel congestion", 3: "No route to destination"}

_ids = itertools.count(1)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def new_unique_id() -> str:
    """An id shaped like Asterisk's uniqueid (``<epoch>.<n>``)."""
    return f"{int(time.time())}.{next(_ids)}"


class AriFailure(Exception):
    """Raised by a handler: the response is ``status`` with ARI's ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class FakeChannel:
    id: str
    name: str
    state: str = "Ring"                 # Down, Ring, Ringing, Up
    caller_name: str = ""
    caller_number: str = ""
    context: str = "from-caller"
    exten: str = ""
    app_name: str = ""                  # "Stasis" once in the app
    app_data: str = ""
    language: str = "en"
    in_stasis: bool = False
    originated: bool = False
    endpoint: str = ""                  # what it was originated to
    app_args: tuple[str, ...] = ()      # the originate's appArgs (StasisStart args on answer)
    ring_timeout: int | None = None
    variables: dict[str, str] = field(default_factory=dict)
    moh: bool = False
    bridge: str | None = None
    hangup_cause: int | None = None     # hanging up (``FakeAri.hangup(linger=True)``)
    created: str = field(default_factory=now_iso)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state,
                "caller": {"name": self.caller_name, "number": self.caller_number},
                "connected": {"name": "", "number": ""}, "accountcode": "",
                "dialplan": {"context": self.context, "exten": self.exten, "priority": 2,
                             "app_name": self.app_name, "app_data": self.app_data},
                "creationtime": self.created, "language": self.language, "channelvars": {}}


@dataclass
class FakeBridge:
    id: str
    bridge_type: str = "mixing"
    name: str = ""
    channels: list[str] = field(default_factory=list)
    moh: bool = False
    created: str = field(default_factory=now_iso)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "technology": "simple_bridge", "bridge_type": "mixing",
                "bridge_class": "stasis", "creator": "Stasis", "name": self.name, "channels": list(self.channels),
                "creationtime": self.created, "video_mode": "talker"}


@dataclass
class FakePlayback:
    id: str
    media: tuple[str, ...]
    target_uri: str                     # channel:<id> or bridge:<id>
    state: str = "playing"

    @property
    def target(self) -> str:
        return self.target_uri.split(":", 1)[1]

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "media_uri": self.media[0] if self.media else "", "media_uris": list(self.media),
                "target_uri": self.target_uri, "language": "en", "state": self.state}


@dataclass
class FakeRecording:
    name: str
    channel_id: str
    fmt: str = "wav"
    state: str = "recording"
    duration: int = 0

    def json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.fmt, "state": self.state, "duration": self.duration,
                "target_uri": f"channel:{self.channel_id}"}


@dataclass
class Injection:
    """The next ``times`` requests matching ``method`` and ``path`` (a glob on the path below /ari, e.g.
    ``/channels/*``) fail with ``status``, or, with ``delay``, are held that long first (a client with a
    shorter timeout sees a timeout; ``apply`` says whether the operation then happens all the same)."""

    method: str
    path: str
    times: int = 1
    status: int = 500
    delay: float = 0.0
    apply: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method.upper() and fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True)
class Request:
    """One REST request the fake received (tests assert on what the app asked for)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None


def cause_of(reason: str | None) -> int:
    return REASON_CAUSES.get(reason or "normal", 16)
