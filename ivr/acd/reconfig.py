"""Queue definitions changed at run time (a mixin of ``router.Router``; pure, no I/O): ``update_queue``
replaces a queue's definition keeping its callers, ``remove_queue`` forgets a queue nobody is in.

What an update means for the callers already in the queue
---------------------------------------------------------
Every caller keeps its place (join time and join order), its wait and its queue statistics. The new
definition applies at once, as if it had always been in force: its priority (seniority across queues),
its skills and relaxation steps (measured from the caller's join time, so a step whose ``after`` has
already passed applies now), ``max_wait`` (from the join time: a caller past it leaves with ``timeout``
at the next decision), ``overflow.after`` (from joining this queue) and ``no_agents_grace``. A caller
whose agent's phone is ringing keeps that offer; the new ring timeout applies to the next offer.
Answered calls are not touched (their wrap-up and service level are read from the queue when they end).
Then matching runs: a caller the new definition lets an available agent serve is offered at once.

A queue is removed only when nobody is in it (no caller waiting or ringing, no task in its line), no
agent's definition names it and no other queue overflows to it: ``QueueInUse`` says which of these holds
and changes nothing. Conversations of the queue that are still up end normally (the router keeps what
they need).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from .agent import Agent
from .call import CallState
from .decisions import Decision
from .errors import AcdError, UnknownQueue
from .index import CallEntry, Group, QueueRuntime
from .policy import merge_optional
from .queue import QueueConfig, check_overflows

_RECONFIG_GEN = itertools.count(2 * 10**18)     # timer generations after a redefinition (never a seq)


class AgentBusy(AcdError):
    """The agent is on a call: it cannot be removed now."""


class PhoneConflict(AcdError):
    """The agent's phone cannot be (re)defined through the API (its endpoint is in pjsip.conf, ...)."""


class QueueInUse(AcdError):
    """The queue cannot be removed now; ``reasons`` lists why (callers, agents, overflows)."""

    def __init__(self, queue: str, reasons: dict[str, list[str]]) -> None:
        self.queue, self.reasons = queue, reasons
        parts = [f"{k}: {', '.join(v)}" for k, v in reasons.items()]
        super().__init__(f"queue {queue!r} is in use ({'; '.join(parts)})")


class QueueChanges:
    """``update_queue`` / ``remove_queue``; the state below is the engine's."""

    _queues: dict[str, QueueRuntime]
    _agents: dict[str, Agent]
    _agent_queues: dict[str, set[str]]
    _groups: dict[str, Group]
    _task_caps: dict[str, tuple[int, int]]
    _dirty_calls: dict[CallEntry, str]
    _agents_version: int
    _advance: Callable[[], float]
    _place: Callable[[CallEntry], None]
    _unplace: Callable[[CallEntry], None]
    _arm_call_timers: Callable[[CallEntry], None]
    _check_empty: Callable[..., None]
    _finish_op: Callable[..., list[Decision]]

    def update_queue(self, config: QueueConfig) -> list[Decision]:
        """Replace queue ``config.name``'s definition (see the module docstring). Raises ``UnknownQueue``,
        ``ConfigError`` (an overflow to an unknown queue or a loop); nothing changes then."""
        qrt = self._queues.get(config.name)
        if qrt is None:
            raise UnknownQueue(config.name)
        check_overflows([config if q.name == config.name else q.config for q in self._queues.values()])
        self._advance()
        out: list[Decision] = []
        waiting = sorted(qrt.calls.values(), key=lambda c: c.key)
        for c in waiting:
            if c.state is CallState.WAITING:
                self._unplace(c)
        for g in qrt.groups.values():
            self._groups.pop(g.tid, None)       # their no-agents timers are void
        qrt.config = config
        qrt.__post_init__()                     # the compiled requirements and relaxation steps
        qrt.groups.clear()
        qrt.active.clear()
        self._task_caps.pop(config.name, None)
        self._agents_version += 1               # who could serve it may have changed
        for c in waiting:
            call = c.call
            g = qrt.group_for(config.priority + call.priority, dict(call.extra_skills), c.task)
            c.group, c.prio = g, g.prio
            c.key = (-g.prio, c.seq)
            c.optional = (tuple(merge_optional(r.optional, call.optional_skills) for r in qrt.reqs)
                          if call.optional_skills else None)
            c.step_at = tuple(c.entered + a for a in qrt.afters)
            c.tgen = next(_RECONFIG_GEN)        # the old definition's timers are void
            if c.state is CallState.WAITING:
                self._place(c)
                self._dirty_calls[c] = "queue_updated"
            self._arm_call_timers(c)
        self._check_empty([config.name], out)
        return self._finish_op(out)

    def queue_in_use(self, name: str) -> dict[str, list[str]]:
        """Why queue ``name`` cannot be removed now (empty: it can). Raises ``UnknownQueue``."""
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        reasons: dict[str, list[str]] = {}
        if qrt.calls:
            reasons["calls"] = sorted(qrt.calls)
        agents = sorted(aid for aid, a in self._agents.items()
                        if a.config.queues is not None and name in a.config.queues)
        if agents:
            reasons["agents"] = agents
        overflows = sorted(q.name for q in self._queues.values()
                           if q.config.overflow is not None and q.config.overflow.queue == name)
        if overflows:
            reasons["overflow_from"] = overflows
        return reasons

    def remove_queue(self, name: str) -> list[Decision]:
        """Forget queue ``name``. Raises ``UnknownQueue`` or ``QueueInUse`` (nothing changes then)."""
        reasons = self.queue_in_use(name)
        if reasons:
            raise QueueInUse(name, reasons)
        qrt = self._queues.pop(name)
        for aid in qrt.members:
            self._agent_queues[aid].discard(name)
        for g in qrt.groups.values():
            self._groups.pop(g.tid, None)
        self._task_caps.pop(name, None)
        self._agents_version += 1
        return self._finish_op([], advance=True)

