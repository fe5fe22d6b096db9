"""Read-only snapshots of the router for the lead's API and metrics (frozen, plain values, ``as_dict``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from .agent import AgentState
from .call import CallState


def _plain(v: Any) -> Any:
    if isinstance(v, (AgentState, CallState)):
        return v.value
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if is_dataclass(v) and not isinstance(v, type):
        return {name: _plain(getattr(v, name)) for name in _field_names(type(v))}
    return v


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


class _AsDict:
    def as_dict(self) -> dict[str, Any]:
        """Plain values, like ``dataclasses.asdict`` without its deep copies (the values are immutable; an
        agent's state changes several times per call and each change is pushed to its page)."""
        return _plain(self)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CallSnapshot(_AsDict):
    call_id: str
    queue: str
    state: CallState
    position: int | None  # 1-based among callers in the queue (waiting or ringing); None once answered
    wait: float  # seconds since joining
    priority: int  # effective (queue + call)
    agent_id: str | None  # ringing / talking agent
    step: int  # relaxation step in force
    step_description: str
    preferred_agent: str | None  # only while the preference is active
    offers: int
    rona_count: int
    #: Seconds until answered: ``position / rate of callers leaving the line`` over the last 10 minutes
    #: (``estimate``); None when nobody left the line in that window (no data: no estimate) or answered.
    estimated_wait: float | None
    #: Queues it was moved from by their ``overflow`` (its wait counts from joining the first one).
    overflowed_from: tuple[str, ...] = ()
    #: Why it is still waiting when that is worth saying, e.g. "no logged-in, registered agent can serve
    #: it (needs tier2>=1) for 12s; at 30s it goes to queue sales"; None otherwise.
    note: str | None = None
    #: what work it is (``ivr.tasks.TaskKind`` value): ``call`` for a live caller
    kind: str = "call"


@dataclass(frozen=True)
class QueueStats(_AsDict):
    entered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    timeouts: int = 0
    full: int = 0
    no_agents: int = 0
    overflow: int = 0
    #: Exponential average of hold times of answered calls ((3 * old + new) / 4, like Asterisk).
    avg_hold_time: float | None = None

    @property
    def service_level_pct(self) -> float | None:
        """Answered within the target / answered, in % (short abandons are not in the base)."""
        return None if not self.answered else 100.0 * self.answered_within_sl / self.answered


@dataclass(frozen=True)
class QueueSnapshot(_AsDict):
    name: str
    calls: tuple[CallSnapshot, ...]  # callers in queue order (waiting and ringing)
    waiting: int
    ringing: int
    longest_wait: float
    agents_by_state: Mapping[str, int]  # member agents per state (all states present)
    paused_by_reason: Mapping[str, int]
    unregistered: int  # member agents whose phone is not registered (any state)
    stats: QueueStats
    service_level_target: tuple[float, float]  # (percent, seconds)


@dataclass(frozen=True)
class AgentSnapshot(_AsDict):
    agent_id: str
    name: str
    state: AgentState
    pause_reason: str | None
    registered: bool
    misses: int  # consecutive ring-no-answer misses
    state_for: float
    idle_for: float | None  # only when available
    call_id: str | None
    queues: tuple[str, ...]
    resting: bool = False  # just failed an offer: not offered for the queue's ``retry`` seconds

    def as_dict(self) -> dict[str, Any]:
        """Spelled out: an agent's state changes several times per call and each change is pushed as
        this dict (the generic walk cost ~4 % of the app's CPU per call); the same as ``_plain(self)``
        (``tests/unit/test_acd_views.py``)."""
        return {"agent_id": self.agent_id, "name": self.name, "state": self.state.value,
                "pause_reason": self.pause_reason, "registered": self.registered, "misses": self.misses,
                "state_for": self.state_for, "idle_for": self.idle_for, "call_id": self.call_id,
                "queues": list(self.queues), "resting": self.resting}
