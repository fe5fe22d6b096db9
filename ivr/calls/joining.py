"""What a caller joining a queue becomes for the router (pure): the flow's queue node combined with the
CRM's routing hints (another queue, a priority boost, extra skills, a preferred agent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..acd import Call
from ..acd.policy import requirement_at
from ..acd.queue import QueueConfig
from ..flow import Enqueue
from .skills import skill_weights


class JoinQueries(Protocol):
    """The router's public queries a join needs."""

    def queue_names(self) -> tuple[str, ...]: ...

    def agent_ids(self) -> tuple[str, ...]: ...

    def queue_config(self, name: str) -> QueueConfig: ...

    def agent_skills(self, agent_id: str) -> Mapping[str, int]: ...


def join_call(call_id: str, cmd: Enqueue, hints: Any, caller: dict[str, Any], router: JoinQueries,
              now: float) -> Call:
    """The ``Call`` to enqueue. Levels are on the ACD's 1-5 scale already (``ivr validate``, the flow loader
    and the CRM routing config refuse anything else; a stray one makes ``Call()`` refuse the call)."""
    queue = cmd.queue
    priority = cmd.priority
    extra = dict(cmd.required_skills)
    if hints is not None:
        if hints.queue_override and hints.queue_override in router.queue_names():
            queue = hints.queue_override
        priority += hints.priority_boost
        for s, lv in hints.extra_skills.items():
            extra[s] = max(lv, extra.get(s, 0))
    preferred, until = None, None
    # only prefer an agent who could take this call at all (a repeat caller who needs tier 2 is not held
    # for the tier-1 agent who served them last time)
    if hints is not None and hints.preferred_agent in router.agent_ids() and queue in router.queue_names() \
            and requirement_at(router.queue_config(queue), float("inf")).admits(
                router.agent_skills(hints.preferred_agent), extra):
        preferred = hints.preferred_agent
        until = now + (hints.preferred_seconds or 0.0)
    return Call(call_id, queue, priority=priority, extra_skills=extra, optional_skills=skill_weights(cmd.optional_skills),
                preferred_agent=preferred, preferred_until=until, caller=caller)
