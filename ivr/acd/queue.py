"""Queue definitions: ``QueueConfig`` (frozen) and ``queue_from_dict`` for the YAML the lead reads.

Rules
-----
* Required skills are mandatory: an agent must hold every one at the effective minimum level, which is
  ``max(level given for the skill, queue min_proficiency)`` before any relaxation.
* Optional skills only add to the fit score (``weight x proficiency``), they never exclude anyone.
* Relaxation steps (``relaxation``) loosen the requirements as a *call* waits (evaluated at decision time
  from the call's wait, so they apply to callers already waiting). Each step may
  ``drop_skills`` (required or optional), lower ``min_proficiency`` (a cap on every required level) and/or
  ``add_alternative`` (another skill group that also qualifies an agent). Steps are strictly ordered by
  ``after`` and each one may only relax, so the set of eligible agents of a call only grows with time
  (``queue_from_dict`` rejects a step that would tighten anything).
* A call's effective priority is ``queue.priority + call.priority`` (higher first), so queue priority also
  orders calls across the queues an agent serves.
* ``max_wait`` -> outcome ``timeout``; ``max_length`` (callers waiting or ringing) -> ``full`` at join;
  ``join_empty=False`` refuses a caller (``no_agents``) when no logged-in, registered member could ever
  serve it (fully relaxed requirements); ``leave_when_empty=True`` makes waiting callers leave with
  ``no_agents`` when the last such agent logs out / unregisters / loses the skills. Paused agents count as
  "could serve" (they come back). The ``on_*`` targets are opaque strings for the flow.
* ``overflow: {queue, after}`` moves a waiting caller to another queue after ``after`` seconds in this
  one, keeping its join time (seniority, wait, relaxation, max_wait and service level count the original
  wait); ``no_agents_grace``: a waiting caller nobody logged in and registered could ever serve goes, after
  that many seconds, to the overflow queue if there is one, else leaves with ``no_agents``.
  ``check_overflows`` refuses an unknown target and a loop of overflows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .agent import SKILL_MAX, SKILL_MIN
from .errors import ConfigError
from .frozen import FrozenDict


def _is_level(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and SKILL_MIN <= v <= SKILL_MAX


def _is_seconds(v: Any, *, positive: bool = False) -> bool:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 if positive else v >= 0)


@dataclass(frozen=True)
class ServiceLevel:
    """Target: ``percent`` % of answered calls answered within ``seconds`` (e.g. 80 % in 20 s)."""

    percent: float = 80.0
    seconds: float = 20.0


@dataclass(frozen=True)
class RelaxationStep:
    """Applies to a call once it has waited ``after`` seconds (and to every later step)."""

    after: float
    drop_skills: frozenset[str] = frozenset()
    min_proficiency: int | None = None
    add_alternative: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "drop_skills", frozenset(self.drop_skills))
        if self.add_alternative is not None:
            object.__setattr__(self, "add_alternative", FrozenDict(dict(self.add_alternative)))

    def describe(self) -> str:
        parts = []
        if self.drop_skills:
            parts.append("drop " + ",".join(sorted(self.drop_skills)))
        if self.min_proficiency is not None:
            parts.append(f"min_proficiency={self.min_proficiency}")
        if self.add_alternative:
            parts.append("alt " + "+".join(f"{s}>={lv}" for s, lv in sorted(self.add_alternative.items())))
        return f"after {self.after:g}s: " + "; ".join(parts)


@dataclass(frozen=True)
class Overflow:
    """Move a waiting caller to ``queue``: after ``after`` seconds in this queue (None: only when no agent
    can serve it, ``no_agents_grace``)."""

    queue: str
    after: float | None = None


#: Default ``no_agents_grace`` (seconds): long enough for a phone to re-register, short of a lost caller.
NO_AGENTS_GRACE = 60.0


@dataclass(frozen=True)
class QueueConfig:
    name: str
    required_skills: Mapping[str, int] = field(default_factory=dict)
    optional_skills: Mapping[str, float] = field(default_factory=dict)
    min_proficiency: int = SKILL_MIN
    priority: int = 0
    relaxation: tuple[RelaxationStep, ...] = ()
    max_wait: float | None = None
    max_length: int | None = None
    on_timeout: str | None = None
    on_full: str | None = None
    on_no_agents: str | None = None
    join_empty: bool = True
    leave_when_empty: bool = False
    ring_timeout: float = 15.0
    max_misses: int = 3
    #: Seconds an agent whose offer failed (no answer, busy, congestion, unreachable, ARI trouble) is not
    #: offered another call; its state does not change (app_queue's ``retry``). Paces re-offers: a phone
    #: or a trunk failing at once is not rung in a tight loop.
    retry: float = 2.0
    wrap_up: float = 0.0
    moh_class: str = "default"
    #: Seconds between position / estimated-wait announcements (None = never); the flow plays them.
    announce_frequency: float | None = None
    announce_position: bool = True
    announce_hold_time: bool = True
    service_level: ServiceLevel = ServiceLevel()
    #: An abandon within this many seconds of joining is flagged ``short_abandon`` in the call record.
    short_abandon: float = 5.0
    #: Move waiting callers to another queue (``Overflow``), keeping their join time.
    overflow: Overflow | None = None
    #: Seconds a waiting caller nobody could ever serve waits before going to ``overflow`` (if set) or
    #: leaving with ``no_agents`` (None = never).
    no_agents_grace: float | None = NO_AGENTS_GRACE
    #: At most this percentage of the queue's logged-in agents are on tasks (callbacks, voicemails) at
    #: once (at least one agent), so live callers never starve behind a pile of tasks.
    task_agents_percent: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "required_skills", FrozenDict(dict(self.required_skills)))
        object.__setattr__(self, "optional_skills", FrozenDict(dict(self.optional_skills)))
        object.__setattr__(self, "relaxation", tuple(self.relaxation))
        _validate(self)


def _validate(q: QueueConfig) -> None:
    w = f"queue {q.name!r}"
    if not isinstance(q.name, str) or not q.name:
        raise ConfigError("queue: 'name' must be a non-empty string")
    for s, lv in q.required_skills.items():
        if not isinstance(s, str) or not s or not _is_level(lv):
            raise ConfigError(f"{w}: required skill {s!r} needs a level {SKILL_MIN}..{SKILL_MAX}, got {lv!r}")
    for s, wt in q.optional_skills.items():
        if not isinstance(s, str) or not s or not _is_seconds(wt):
            raise ConfigError(f"{w}: optional skill {s!r} needs a weight >= 0, got {wt!r}")
        if s in q.required_skills:
            raise ConfigError(f"{w}: skill {s!r} is both required and optional")
    if not _is_level(q.min_proficiency):
        raise ConfigError(f"{w}: min_proficiency must be {SKILL_MIN}..{SKILL_MAX}")
    if not isinstance(q.priority, int) or isinstance(q.priority, bool):
        raise ConfigError(f"{w}: priority must be an integer")
    if q.max_wait is not None and not _is_seconds(q.max_wait, positive=True):
        raise ConfigError(f"{w}: max_wait must be > 0 seconds (or null)")
    if q.max_length is not None and (not isinstance(q.max_length, int) or q.max_length < 1):
        raise ConfigError(f"{w}: max_length must be an integer >= 1 (or null)")
    if not _is_seconds(q.ring_timeout, positive=True):
        raise ConfigError(f"{w}: ring_timeout must be > 0 seconds")
    if not isinstance(q.max_misses, int) or q.max_misses < 1:
        raise ConfigError(f"{w}: max_misses must be an integer >= 1")
    if not _is_seconds(q.retry):
        raise ConfigError(f"{w}: retry must be >= 0 seconds")
    if not _is_seconds(q.wrap_up):
        raise ConfigError(f"{w}: wrap_up must be >= 0 seconds")
    if q.announce_frequency is not None and not _is_seconds(q.announce_frequency, positive=True):
        raise ConfigError(f"{w}: announce_frequency must be > 0 seconds (or null)")
    if not (_is_seconds(q.task_agents_percent, positive=True) and q.task_agents_percent <= 100):
        raise ConfigError(f"{w}: task_agents_percent must be > 0 and <= 100")
    if not _is_seconds(q.short_abandon):
        raise ConfigError(f"{w}: short_abandon must be >= 0 seconds")
    if q.no_agents_grace is not None and not _is_seconds(q.no_agents_grace):
        raise ConfigError(f"{w}: no_agents_grace must be >= 0 seconds (or null = never)")
    ov = q.overflow
    if ov is not None:
        if not isinstance(ov.queue, str) or not ov.queue:
            raise ConfigError(f"{w}: overflow.queue must be the name of another queue")
        if ov.queue == q.name:
            raise ConfigError(f"{w}: overflow.queue cannot be the queue itself")
        if ov.after is not None and not _is_seconds(ov.after, positive=True):
            raise ConfigError(f"{w}: overflow.after must be > 0 seconds (or null: only when no agent can "
                              f"serve the call, after no_agents_grace), got {ov.after!r}")
    sl = q.service_level
    if not (_is_seconds(sl.percent) and sl.percent <= 100 and _is_seconds(sl.seconds, positive=True)):
        raise ConfigError(f"{w}: service_level needs 0 <= percent <= 100 and seconds > 0")
    for b in ("join_empty", "leave_when_empty", "announce_position", "announce_hold_time"):
        if not isinstance(getattr(q, b), bool):
            raise ConfigError(f"{w}: {b} must be true or false")
    # Relaxation must be strictly ordered and only ever loosen (monotone eligibility).
    remaining = set(q.required_skills) | set(q.optional_skills)
    prev_after = 0.0
    cap: int | None = None
    for i, st in enumerate(q.relaxation):
        ws = f"{w}: relaxation step {i + 1}"
        if not _is_seconds(st.after, positive=True) or st.after <= prev_after:
            raise ConfigError(f"{ws}: 'after' must be > 0 and greater than the previous step's")
        prev_after = st.after
        if not (st.drop_skills or st.min_proficiency is not None or st.add_alternative):
            raise ConfigError(f"{ws}: relaxes nothing (give drop_skills, min_proficiency or add_alternative)")
        for s in st.drop_skills:
            if s not in remaining:
                raise ConfigError(f"{ws}: cannot drop {s!r}: not a (remaining) required or optional skill")
            remaining.discard(s)
        if st.min_proficiency is not None:
            if not _is_level(st.min_proficiency):
                raise ConfigError(f"{ws}: min_proficiency must be {SKILL_MIN}..{SKILL_MAX}")
            if cap is not None and st.min_proficiency >= cap:
                raise ConfigError(f"{ws}: min_proficiency {st.min_proficiency} does not lower the "
                                  f"previous step's {cap} (relaxation may only loosen)")
            cap = st.min_proficiency
        if st.add_alternative is not None:
            if not st.add_alternative:
                raise ConfigError(f"{ws}: add_alternative is empty")
            for s, lv in st.add_alternative.items():
                if not isinstance(s, str) or not s or not _is_level(lv):
                    raise ConfigError(f"{ws}: alternative skill {s!r} needs a level "
                                      f"{SKILL_MIN}..{SKILL_MAX}, got {lv!r}")


_QUEUE_KEYS = {
    "name", "required_skills", "optional_skills", "min_proficiency", "priority", "relaxation", "max_wait",
    "max_length", "on_timeout", "on_full", "on_no_agents", "join_empty", "leave_when_empty", "ring_timeout",
    "max_misses", "retry", "wrap_up", "moh_class", "announce_frequency", "announce_position", "announce_hold_time",
    "service_level", "short_abandon", "overflow", "no_agents_grace", "task_agents_percent",
}
_OVERFLOW_KEYS = {"queue", "after"}
_STEP_KEYS = {"after", "drop_skills", "min_proficiency", "add_alternative"}
_SL_KEYS = {"percent", "seconds"}


def _reject_unknown(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(d) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed)}")


def queue_from_dict(d: Mapping[str, Any]) -> QueueConfig:
    """Build a ``QueueConfig`` from a plain dict (YAML). Unknown keys (at any level) are rejected.

    ``required_skills`` is a mapping skill -> min level (``null`` = the queue ``min_proficiency``) or a list
    of names; ``optional_skills`` a mapping skill -> weight (or a list: weight 1); ``relaxation`` a list of
    ``{after, drop_skills, min_proficiency, add_alternative}``; ``service_level`` ``{percent, seconds}``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"queue: expected a mapping, got {type(d).__name__}")
    name = d.get("name")
    where = f"queue {name!r}" if name is not None else "queue"
    _reject_unknown(d, _QUEUE_KEYS, where)
    if "name" not in d:
        raise ConfigError("queue: missing required key 'name'")
    minp = d.get("min_proficiency", SKILL_MIN)
    req_raw = d.get("required_skills") or {}
    if isinstance(req_raw, (list, tuple)):
        req_raw = {s: None for s in req_raw}
    if not isinstance(req_raw, Mapping):
        raise ConfigError(f"{where}: required_skills must be a mapping skill -> level or a list")
    required = {str(s): (minp if lv is None else lv) for s, lv in req_raw.items()}
    opt_raw = d.get("optional_skills") or {}
    if isinstance(opt_raw, (list, tuple)):
        opt_raw = {s: 1.0 for s in opt_raw}
    if not isinstance(opt_raw, Mapping):
        raise ConfigError(f"{where}: optional_skills must be a mapping skill -> weight or a list")
    steps = []
    relax_raw = d.get("relaxation") or []
    if not isinstance(relax_raw, (list, tuple)):
        raise ConfigError(f"{where}: relaxation must be a list of steps")
    for i, st in enumerate(relax_raw):
        ws = f"{where}: relaxation step {i + 1}"
        if not isinstance(st, Mapping):
            raise ConfigError(f"{ws}: expected a mapping")
        _reject_unknown(st, _STEP_KEYS, ws)
        if "after" not in st:
            raise ConfigError(f"{ws}: missing 'after' (seconds of wait)")
        drops = st.get("drop_skills") or []
        if isinstance(drops, str):
            drops = [drops]
        alt = st.get("add_alternative")
        if alt is not None and not isinstance(alt, Mapping):
            raise ConfigError(f"{ws}: add_alternative must be a mapping skill -> level")
        steps.append(RelaxationStep(after=st["after"], drop_skills=frozenset(map(str, drops)),
                                    min_proficiency=st.get("min_proficiency"), add_alternative=alt))
    sl_raw = d.get("service_level") or {}
    if not isinstance(sl_raw, Mapping):
        raise ConfigError(f"{where}: service_level must be a mapping {{percent, seconds}}")
    _reject_unknown(sl_raw, _SL_KEYS, f"{where}: service_level")
    kwargs = {k: d[k] for k in _QUEUE_KEYS - {"name", "required_skills", "optional_skills", "relaxation",
                                              "service_level", "overflow"} if k in d}
    ov_raw = d.get("overflow")
    if ov_raw is not None:
        if not isinstance(ov_raw, Mapping):
            raise ConfigError(f"{where}: overflow must be a mapping {{queue, after}}")
        _reject_unknown(ov_raw, _OVERFLOW_KEYS, f"{where}: overflow")
        if "queue" not in ov_raw:
            raise ConfigError(f"{where}: overflow: missing 'queue' (the queue to move callers to)")
        kwargs["overflow"] = Overflow(queue=ov_raw["queue"], after=ov_raw.get("after"))
    return QueueConfig(name=str(name), required_skills=required, optional_skills=dict(opt_raw),
                       relaxation=tuple(steps), service_level=ServiceLevel(**sl_raw), **kwargs)


def check_overflows(queues: Iterable[QueueConfig]) -> None:
    """Refuse (``ConfigError`` naming the key) an overflow to a queue that does not exist and a loop of
    overflows (a caller moved on and on: billing -> sales -> billing)."""
    by_name = {q.name: q for q in queues}
    for q in by_name.values():
        if q.overflow is not None and q.overflow.queue not in by_name:
            raise ConfigError(f"queue {q.name!r}: overflow.queue {q.overflow.queue!r} is not a queue "
                              f"(queues: {', '.join(sorted(by_name))})")
    for start, q in by_name.items():
        path = [start]
        cur = q
        while cur.overflow is not None:
            nxt = cur.overflow.queue
            if nxt in path:
                raise ConfigError(f"queue {nxt!r}: overflow loop {' -> '.join([*path[path.index(nxt):], nxt])}"
                                  " (a caller would be moved on forever)")
            path.append(nxt)
            cur = by_name[nxt]


def queue_to_dict(q: QueueConfig) -> dict[str, Any]:
    """Plain, JSON/YAML-ready dict of ``q``; ``queue_from_dict(queue_to_dict(q)) == q``."""
    d: dict[str, Any] = {f: getattr(q, f) for f in _QUEUE_KEYS}
    d["required_skills"] = dict(q.required_skills)
    d["optional_skills"] = dict(q.optional_skills)
    d["service_level"] = {"percent": q.service_level.percent, "seconds": q.service_level.seconds}
    steps = []
    for st in q.relaxation:
        sd: dict[str, Any] = {"after": st.after}
        if st.drop_skills:
            sd["drop_skills"] = sorted(st.drop_skills)
        if st.min_proficiency is not None:
            sd["min_proficiency"] = st.min_proficiency
        if st.add_alternative:
            sd["add_alternative"] = dict(st.add_alternative)
        steps.append(sd)
    d["relaxation"] = steps
    d["overflow"] = None if q.overflow is None else {"queue": q.overflow.queue, "after": q.overflow.after}
    return d
