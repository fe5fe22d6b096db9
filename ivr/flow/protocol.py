"""What goes in and out of the flow engine: call info, events, commands, path steps.

All frozen dataclasses with plain fields, so the session can log, compare and queue them.
Events are what happened on the call (the session translates ARI events into these);
commands are what the engine wants done (the session translates them into ARI requests).
The rules linking the two are in ``engine.py``'s docstring.

Nothing here ever holds a digit typed during a ``secure`` collect, except the
``DigitReceived`` event the session itself creates: while ``FlowRunner.input_is_secure``
is true the session must not log those events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from .model import DTMF_KEYS
from .schema import QUEUE_OUTCOMES, TRANSFER_OUTCOMES


@dataclass(frozen=True)
class CallInfo:
    """The call a runner drives. ``caller``/``did`` are kept out of repr (personal data).

    ``customer_lookup``: False when no CRM lookup will ever send ``CustomerData`` (branches
    then never wait for it). ``language``: the channel's language, if known.
    """

    channel_id: str
    caller: str = field(default="", repr=False)
    did: str = field(default="", repr=False)
    language: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict, repr=False)
    customer_lookup: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))


# -- events (session -> engine) -------------------------------------------------------


@dataclass(frozen=True)
class DigitReceived:
    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DTMF_KEYS:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")


@dataclass(frozen=True)
class PlaybackFinished:
    playback_id: str


@dataclass(frozen=True)
class TimerFired:
    timer_id: str


@dataclass(frozen=True)
class HungUp:
    """The caller (or the network) hung up."""


@dataclass(frozen=True)
class QueueResult:
    """How a queue stay ended: answered, timeout, no_agents, full or abandoned."""

    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in QUEUE_OUTCOMES:
            raise ValueError(f"unknown queue outcome {self.outcome!r} (one of {', '.join(QUEUE_OUTCOMES)})")


@dataclass(frozen=True)
class TransferResult:
    """How a transfer attempt ended: answered (the target is bridged with the caller), busy, no_answer or
    failed (unreachable, trunk down, rejected)."""

    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in TRANSFER_OUTCOMES:
            raise ValueError(f"unknown transfer outcome {self.outcome!r} (one of {', '.join(TRANSFER_OUTCOMES)})")


@dataclass(frozen=True)
class RecordingFinished:
    name: str
    duration: float       # seconds


@dataclass(frozen=True)
class CustomerData:
    """CRM fields for ``customer.*`` conditions; keys with or without the ``customer.`` prefix."""

    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


Event = (DigitReceived | PlaybackFinished | TimerFired | HungUp | QueueResult | TransferResult | RecordingFinished
         | CustomerData)


# -- commands (engine -> session) -----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Play:
    playback_id: str
    media: tuple[str, ...]
    barge_in: bool          # informational: the engine itself stops the playback on a digit


@dataclass(frozen=True)
class StopPlayback:
    playback_id: str


@dataclass(frozen=True)
class StartTimer:
    timer_id: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class Enqueue:
    queue: str
    required_skills: tuple[tuple[str, int], ...] = ()
    optional_skills: tuple[tuple[str, int], ...] = ()
    priority: int = 0
    max_wait: float | None = None
    language: str = "en"


@dataclass(frozen=True)
class Transfer:
    """Ring ``destination`` (an internal extension / ``PJSIP/<endpoint>``, or with ``external`` a number to
    dial through ``trunk``, None: the only trunk) for at most ``timeout`` seconds and bridge it with the
    caller when it answers; report a ``TransferResult``."""

    destination: str = field(repr=False)
    timeout: float = 30.0
    trunk: str | None = None
    external: bool = False


@dataclass(frozen=True)
class Record:
    name: str
    max_seconds: int
    beep: bool = True
    terminate_on: str = "#"


@dataclass(frozen=True)
class StoreVoicemail:
    mailbox: str
    recording: str
    duration: float
    recorded_at: datetime
    caller: str = field(default="", repr=False)


@dataclass(frozen=True)
class DiscardRecording:
    """A recording that is not a message (shorter than ``MIN_MESSAGE_SECONDS``): delete it, store nothing."""

    recording: str
    duration: float


@dataclass(frozen=True)
class RequestCallback:
    queue: str
    requested_at: datetime
    number: str = field(default="", repr=False)


@dataclass(frozen=True)
class Hangup:
    reason: str = "normal"      # an ARI hangup reason


@dataclass(frozen=True)
class NodeEntered:
    """Notification (for metrics and the interaction history): the call entered a node."""

    flow: str
    node: str
    kind: str


@dataclass(frozen=True)
class FlowEnded:
    """Notification: the flow is over (hangup, transfer, queue answered, ...)."""

    reason: str


Command = (Answer | Play | StopPlayback | StartTimer | CancelTimer | SetLanguage | Enqueue | Transfer | Record
           | StoreVoicemail | DiscardRecording | RequestCallback | Hangup | NodeEntered | FlowEnded)


# -- the path -------------------------------------------------------------------------


@dataclass(frozen=True)
class PathStep:
    """One step of a call's path. Secure input is recorded as ``***``, never as digits.

    kinds: ``node`` (detail ``flow:node``), ``key`` (a menu key), ``input`` (``var=value``
    or ``var=***``), ``invalid``, ``timeout``, ``queue`` (the outcome), ``end`` (the reason), and
    ``skipped`` (``<n> steps`` left out of a very long path, see ``FlowRunner.path``).
    """

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "node":
            return self.detail
        return f"{self.kind} {self.detail}".rstrip()
