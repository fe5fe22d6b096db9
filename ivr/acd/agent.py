"""Agents: static definition (``AgentConfig``) and runtime state machine (``Agent``).

Rules
-----
* States: logged_out, available, reserved (an offer is ringing the agent's phone), on_call, wrap_up,
  paused (with a reason). The legal moves are the ``TRANSITIONS`` table below (data, not code); any other
  (state, event) pair raises ``IllegalTransition`` and leaves the agent untouched.
* Presence (``registered``, i.e. the SIP endpoint is reachable) is a flag *separate* from the state.
  An unregistered agent is never offered a call. Policy when the phone drops and comes back: the agent
  keeps whatever state it had (an agent paused for lunch stays paused, an agent on a call stays on it);
  if it was *reserved* when the phone dropped, the router fails that offer (no miss is counted, the call
  goes back to its place). Registering again only makes the agent offerable again.
* Ring-no-answer: each miss increments a consecutive-miss counter; when it reaches the limit (queue
  ``max_misses``, agent override wins) the agent is paused with reason ``no-answer`` and the counter is
  reset. Answering an offer (and logging in) resets the counter. The router does not count a miss the
  agent did not cause and bounds auto-pauses (see ``autopause`` and ``docs/acd.md``).
* ``idle_since`` orders agents for "longest idle": it restarts when the agent becomes available after
  login, unpause, wrap-up or a *missed* offer (the ring was its turn). When an offer is withdrawn for a
  reason that is not the agent's fault (the caller hung up, ...), the old ``idle_since`` is kept.
* ``state_since`` is the time of the last transition (a pause with a new reason counts as one).
* Languages are folded into skills as ``lang:<code>`` at the top proficiency (unless the skill map sets
  that key itself), so a call can require a language like any other skill, e.g. ``{"lang:fr": 1}``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, IllegalTransition
from .frozen import FrozenDict

SKILL_MIN = 1
SKILL_MAX = 5
NO_ANSWER = "no-answer"
LANG_PREFIX = "lang:"


class AgentState(str, enum.Enum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentEvent(str, enum.Enum):
    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    OFFER = "offer"  # the router reserved the agent for a call; its phone rings
    ANSWER = "answer"
    MISS = "miss"  # ring-no-answer / agent leg failed: the agent's fault, counts towards auto-pause
    CANCEL = "cancel"  # offer withdrawn for a reason that is not the agent's fault (caller hung up, ...)
    CALL_END = "call_end"
    WRAP_UP_DONE = "wrap_up_done"
    #: after a restart the app found this agent talking on one of its calls (Asterisk is the truth)
    ADOPT = "adopt"


S, E = AgentState, AgentEvent

#: (state, event) -> new state. Everything not listed is illegal.
#: A reserved agent cannot pause or log out directly: the router first withdraws the offer (CANCEL), then
#: applies the pause/logout from ``available``; an agent on a call must end it first (no stuck calls).
TRANSITIONS: Mapping[tuple[AgentState, AgentEvent], AgentState] = FrozenDict({
    (S.LOGGED_OUT, E.LOGIN): S.AVAILABLE,
    (S.AVAILABLE, E.LOGOUT): S.LOGGED_OUT,
    (S.AVAILABLE, E.PAUSE): S.PAUSED,
    (S.AVAILABLE, E.OFFER): S.RESERVED,
    (S.RESERVED, E.ANSWER): S.ON_CALL,
    (S.RESERVED, E.MISS): S.AVAILABLE,
    (S.RESERVED, E.CANCEL): S.AVAILABLE,
    (S.ON_CALL, E.CALL_END): S.WRAP_UP,
    (S.WRAP_UP, E.WRAP_UP_DONE): S.AVAILABLE,
    (S.WRAP_UP, E.PAUSE): S.PAUSED,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
    (S.PAUSED, E.UNPAUSE): S.AVAILABLE,
    (S.PAUSED, E.PAUSE): S.PAUSED,  # change of pause reason
    (S.PAUSED, E.LOGOUT): S.LOGGED_OUT,
    # Adoption after a restart: the agent is on that call whatever the fresh state says. A reserved
    # agent's offer is withdrawn (CANCEL) first by the router.
    (S.LOGGED_OUT, E.ADOPT): S.ON_CALL,
    (S.AVAILABLE, E.ADOPT): S.ON_CALL,
    (S.PAUSED, E.ADOPT): S.ON_CALL,
    (S.WRAP_UP, E.ADOPT): S.ON_CALL,
})

#: Events after which ``idle_since`` restarts (see module docstring).
IDLE_RESTART_EVENTS = frozenset({E.LOGIN, E.UNPAUSE, E.WRAP_UP_DONE, E.MISS})


def _frozen_map(m: Mapping[str, Any]) -> Mapping[str, Any]:
    return FrozenDict(dict(m))


@dataclass(frozen=True, eq=True)
class AgentConfig:
    """Static definition of an agent (from YAML via ``agent_from_dict`` or built directly)."""

    id: str
    name: str = ""
    endpoint: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)
    languages: frozenset[str] = frozenset()
    team: str | None = None
    #: Queues the agent serves; ``None`` = every queue (skills still decide eligibility).
    queues: frozenset[str] | None = None
    #: Overrides the queue's wrap-up seconds / max consecutive misses when set.
    wrap_up: float | None = None
    max_misses: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ConfigError("agent: 'id' must be a non-empty string")
        for skill, level in dict(self.skills).items():
            if not isinstance(skill, str) or not skill:
                raise ConfigError(f"agent {self.id!r}: skill names must be non-empty strings")
            if isinstance(level, bool) or not isinstance(level, int) or not SKILL_MIN <= level <= SKILL_MAX:
                raise ConfigError(f"agent {self.id!r}: skill {skill!r} proficiency must be an integer "
                                  f"{SKILL_MIN}..{SKILL_MAX}, got {level!r}")
        if self.wrap_up is not None and (not isinstance(self.wrap_up, (int, float)) or isinstance(self.wrap_up, bool)
                                         or not math.isfinite(self.wrap_up) or self.wrap_up < 0):
            raise ConfigError(f"agent {self.id!r}: wrap_up must be >= 0 seconds")
        if self.max_misses is not None and (not isinstance(self.max_misses, int) or isinstance(self.max_misses, bool)
                                            or self.max_misses < 1):
            raise ConfigError(f"agent {self.id!r}: max_misses must be an integer >= 1")
        object.__setattr__(self, "skills", _frozen_map(self.skills))
        object.__setattr__(self, "languages", frozenset(self.languages))
        if self.queues is not None:
            object.__setattr__(self, "queues", frozenset(self.queues))
        eff = {f"{LANG_PREFIX}{lang}": SKILL_MAX for lang in self.languages}
        eff.update(self.skills)
        # Cached plain dict: the router reads it in its hot path (dict.get is the fastest lookup).
        object.__setattr__(self, "_effective", eff)

    @property
    def effective_skills(self) -> Mapping[str, int]:
        """Skills plus languages (``lang:<code>`` at ``SKILL_MAX`` unless set explicitly)."""
        return FrozenDict(self._effective)  # type: ignore[attr-defined]


_AGENT_KEYS = {"id", "name", "endpoint", "skills", "languages", "team", "queues", "wrap_up", "max_misses"}


def agent_from_dict(d: Mapping[str, Any]) -> AgentConfig:
    """Build an ``AgentConfig`` from a plain dict (YAML). Unknown keys are rejected.

    ``skills`` is a mapping skill -> proficiency (1..5), or a list of names meaning proficiency 1 (the
    lowest, so a bare list never overstates an agent). ``languages`` is a list of codes, ``queues`` an
    optional list of queue names (omitted = all queues).
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"agent: expected a mapping, got {type(d).__name__}")
    ident = d.get("id")
    where = f"agent {ident!r}" if ident is not None else "agent"
    unknown = set(d) - _AGENT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; "
                          f"allowed: {sorted(_AGENT_KEYS)}")
    if "id" not in d:
        raise ConfigError("agent: missing required key 'id'")
    skills_raw = d.get("skills") or {}
    if isinstance(skills_raw, (list, tuple)):
        skills = {str(s): SKILL_MIN for s in skills_raw}
    elif isinstance(skills_raw, Mapping):
        skills = dict(skills_raw)
    else:
        raise ConfigError(f"{where}: 'skills' must be a mapping skill -> level or a list of names")
    langs = d.get("languages") or []
    if isinstance(langs, str) or not isinstance(langs, (list, tuple, set, frozenset)):
        raise ConfigError(f"{where}: 'languages' must be a list")
    queues = d.get("queues")
    if queues is not None and (isinstance(queues, str) or not isinstance(queues, (list, tuple, set))):
        raise ConfigError(f"{where}: 'queues' must be a list of queue names")
    return AgentConfig(
        id=str(ident), name=str(d.get("name", "")), endpoint=str(d.get("endpoint", "")), skills=skills,
        languages=frozenset(str(x) for x in langs), team=d.get("team"),
        queues=None if queues is None else frozenset(str(q) for q in queues),
        wrap_up=d.get("wrap_up"), max_misses=d.get("max_misses"),
    )


def agent_to_dict(cfg: AgentConfig) -> dict[str, Any]:
    """Plain, JSON/YAML-ready dict of ``cfg``; ``agent_from_dict(agent_to_dict(cfg)) == cfg``."""
    return {"id": cfg.id, "name": cfg.name, "endpoint": cfg.endpoint, "skills": dict(cfg.skills),
            "languages": sorted(cfg.languages), "team": cfg.team,
            "queues": None if cfg.queues is None else sorted(cfg.queues), "wrap_up": cfg.wrap_up,
            "max_misses": cfg.max_misses}


class Agent:
    """Runtime state of one agent. Pure: every method takes ``now`` instead of reading a clock."""

    __slots__ = (
        "call_id",
        "config",
        "idle_since",
        "misses",
        "pause_reason",
        "registered",
        "rest_gen",
        "resting",
        "skills",
        "state",
        "state_since",
    )

    def __init__(self, config: AgentConfig, now: float, registered: bool = True) -> None:
        self.config = config
        self.state = AgentState.LOGGED_OUT
        self.pause_reason: str | None = None
        self.registered = registered
        self.misses = 0
        self.resting = False     # just failed an offer: not offered for the queue's ``retry`` seconds
        self.rest_gen = 0
        self.idle_since = now
        self.state_since = now
        self.call_id: str | None = None
        self.skills: dict[str, int] = config._effective  # type: ignore[attr-defined]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def offerable(self) -> bool:
        return self.state is AgentState.AVAILABLE and self.registered and not self.resting

    def can(self, event: AgentEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def apply(self, event: AgentEvent, now: float, *, reason: str | None = None,
              call_id: str | None = None, count_miss: bool = True) -> tuple[AgentState, AgentState]:
        """Apply one event; returns (old, new). Raises ``IllegalTransition`` without changing anything.
        ``count_miss=False`` applies a ``MISS`` without incrementing ``misses`` (a systemic failure, see
        ``autopause``)."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise IllegalTransition(self.config.id, self.state, event)
        if event is AgentEvent.PAUSE and not reason:
            raise ValueError("a pause needs a reason")
        if event in (AgentEvent.OFFER, AgentEvent.ADOPT) and call_id is None:
            raise ValueError(f"{event.value} needs a call id")
        old = self.state
        self.state = new
        self.state_since = now
        self.pause_reason = reason if new is AgentState.PAUSED else None
        if event in IDLE_RESTART_EVENTS:
            self.idle_since = now
        if event in (AgentEvent.OFFER, AgentEvent.ADOPT):
            self.call_id = call_id
        elif event in (AgentEvent.MISS, AgentEvent.CANCEL, AgentEvent.CALL_END):
            self.call_id = None
        if event is AgentEvent.MISS:
            self.misses += count_miss
        elif event in (AgentEvent.ANSWER, AgentEvent.LOGIN, AgentEvent.ADOPT):
            self.misses = 0
        return old, new
