"""Calls as given to the router (``Call``, frozen input) and their life-cycle states.

A call carries its queue, a priority (added to the queue's priority; higher first), per-call extra
required skills (levels 1-5, ANDed with the queue's and relaxed by the queue's steps like the queue's own,
except languages ``lang:*`` which are hard, never relaxed; see ``policy``; e.g. ``{"lang:fr": 1}`` or
``{"legacy": 1}``),
per-call optional skills (skill -> weight >= 0, combined with the queue's optional skills: they only
rank eligible agents, see ``policy.merge_optional``; e.g. a flow's ``optional_skills: {vip: 5}``), an
optional preferred agent with a deadline on the router clock (until then only that agent may take the
call, even if it is busy or paused: the call waits for it; the preference is skipped for good, at once,
if that agent is unknown, logged out, unregistered or not a member of the queue, at join time or later),
and an opaque ``caller`` dict the router never reads.

A call's ``kind`` says what work it is (``ivr.tasks.TaskKind``): a live caller (``call``) or a task that
waits without a channel (a callback, a voicemail to return, a web callback request). Tasks wait in the
same queues and are chosen by the same rules, ordered with the callers by the time they took their place
(``enqueue(waiting_since=...)``: a callback keeps the join time of the call it came from). What differs
(``Router`` docstring, "Tasks"): they never time out, never fill a queue or get refused for want of
agents, and at most ``task_agents_percent`` of a queue's logged-in agents are on tasks at once.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..tasks.model import TaskKind
from .agent import SKILL_MAX, SKILL_MIN
from .errors import ConfigError
from .frozen import FrozenDict


class CallState(str, enum.Enum):
    WAITING = "waiting"
    RINGING = "ringing"  # offered to an agent (agent reserved)
    ON_CALL = "on_call"  # answered; stays known to the router until call_ended


@dataclass(frozen=True)
class Call:
    id: str
    queue: str
    priority: int = 0
    extra_skills: Mapping[str, int] = field(default_factory=dict)
    preferred_agent: str | None = None
    #: Router-clock time until which only ``preferred_agent`` may take the call (e.g. ``clock() + 30``).
    preferred_until: float | None = None
    caller: Mapping[str, Any] = field(default_factory=dict)
    #: Skill -> weight (>= 0): ranks eligible agents like the queue's ``optional_skills``, never filters.
    optional_skills: Mapping[str, float] = field(default_factory=dict)
    kind: TaskKind = TaskKind.CALL

    @property
    def is_task(self) -> bool:
        return self.kind is not TaskKind.CALL

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", TaskKind(self.kind))
        except ValueError:
            raise ConfigError(f"call {self.id!r}: kind must be one of "
                              f"{', '.join(k.value for k in TaskKind)}, got {self.kind!r}") from None
        if not isinstance(self.id, str) or not self.id:
            raise ConfigError("call: id must be a non-empty string")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise ConfigError(f"call {self.id!r}: priority must be an integer")
        for s, lv in dict(self.extra_skills).items():
            if not isinstance(s, str) or not s or isinstance(lv, bool) or not isinstance(lv, int) \
                    or not SKILL_MIN <= lv <= SKILL_MAX:
                raise ConfigError(f"call {self.id!r}: extra skill {s!r} needs a level "
                                  f"{SKILL_MIN}..{SKILL_MAX}, got {lv!r}")
        for s, w in dict(self.optional_skills).items():
            if not isinstance(s, str) or not s or isinstance(w, bool) or not isinstance(w, (int, float)) \
                    or not math.isfinite(w) or w < 0:
                raise ConfigError(f"call {self.id!r}: optional skill {s!r} needs a weight >= 0, got {w!r}")
        if (self.preferred_agent is None) != (self.preferred_until is None):
            raise ConfigError(f"call {self.id!r}: preferred_agent and preferred_until go together")
        if self.preferred_until is not None and not (isinstance(self.preferred_until, (int, float))
                                                     and math.isfinite(self.preferred_until)):
            raise ConfigError(f"call {self.id!r}: preferred_until must be a finite clock time")
        object.__setattr__(self, "extra_skills", FrozenDict(dict(self.extra_skills)))
        object.__setattr__(self, "caller", FrozenDict(dict(self.caller)))
        object.__setattr__(self, "optional_skills",
                           FrozenDict({s: float(w) for s, w in dict(self.optional_skills).items()}))
