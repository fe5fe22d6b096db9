"""Internal mechanics of the router (not public API), a mixin of ``engine.Engine``: a waiting call moving
to another queue (the queue's ``overflow``), and the grace given to calls nobody could ever serve.

Overflow
--------
A call that has waited ``overflow.after`` seconds in its queue (since it joined it, or was moved into it)
moves to ``overflow.queue`` (``CallMoved``). It keeps its join time: its seniority (``seq``) ranks it in
the new queue as if it had joined it then, and its wait, the new queue's relaxation steps, ``max_wait``
and service level count from that first join. Its preference for an agent ends. While an agent's phone
rings for it the move waits for that ring: answered, it stays answered; failed, it moves then. The new
queue's ``max_length`` and ``join_empty`` do not refuse a moved caller. No ``CallFinished`` is emitted:
the call is still in the ACD, and its one record (written when it leaves) names the last queue and lists
the queues it came from (``CallRecord.overflowed_from``).

No agent could ever serve it
----------------------------
A waiting call is *unserved* when no member of its queue who is logged in (paused counts) and registered
holds the call's fully relaxed requirements (``Engine._could_serve``). All calls of a ``Group`` share
that answer, so it is tracked per group: ``unserved_since`` is set when the group is found unserved after
a change of the agent population (login, logout, registration, definition) and cleared as soon as it is
served again. A call leaves ``no_agents_grace`` seconds after the later of ``unserved_since`` and its
joining the queue, so it always gets the full grace of one continuous stretch: to ``overflow.queue`` when
the queue has an overflow, else with ``QueueExit(no_agents)`` (the flow's ``on_no_agents``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from operator import attrgetter

from .decisions import CallMoved, Decision, ExitOutcome
from .index import CallEntry, Group, QueueRuntime, TimerKind, Timers
from .policy import merge_optional

_key = attrgetter("key")


class Moves:
    """Overflow moves and the no-agents grace; the state below is the engine's."""

    _queues: dict[str, QueueRuntime]
    _pinned: dict[str, list[CallEntry]]
    _timers: Timers
    _now: float
    _agents_version: int
    _dirty_calls: dict[CallEntry, str]
    _place: Callable[[CallEntry], None]
    _unplace: Callable[[CallEntry], None]
    _could_serve: Callable[[QueueRuntime, Group], bool]
    _exit: Callable[..., None]

    def _init_moves(self) -> None:
        self._groups: dict[str, Group] = {}      # groups with a no-agents timer, by ``Group.tid``
        self._reviewed = -1                      # agents version the groups were last reviewed at
        self._tgen = itertools.count(10**18)     # timer generations of moved calls (never a seq)

    # ------------------------------------------------------------------ timers of a call in its queue
    def _arm_call_timers(self, c: CallEntry) -> None:
        """Relaxation, max_wait (both from the first join), overflow (from joining this queue), no agents."""
        cfg = c.qrt.config
        add = self._timers.add
        if c.step_at:
            add(c.step_at[0], TimerKind.RELAX, c.id, c.tgen)
        if c.task:  # a task waits until served, cancelled or expired: no max_wait, overflow or no-agents exit
            return
        if cfg.max_wait is not None:
            add(c.entered + cfg.max_wait, TimerKind.TIMEOUT, c.id, c.tgen)
        ov = cfg.overflow
        if ov is not None and ov.after is not None:
            add(c.joined_q + ov.after, TimerKind.OVERFLOW, c.id, c.tgen)
        self._arm_no_agents(c)

    def _arm_no_agents(self, c: CallEntry) -> None:
        """A call (back) in its group: when nobody can serve the group, its own deadline."""
        grace = c.qrt.config.no_agents_grace
        if grace is None:
            return
        g = c.group
        self._review_group(g)
        if g.unserved_since is not None:
            self._timers.add(max(g.unserved_since, c.joined_q) + grace, TimerKind.NO_AGENTS, g.tid, g.episode)

    # ------------------------------------------------------------------ who could serve
    def _review_service(self) -> None:
        """After the agent population changed: which groups (of queues with callers) nobody can serve."""
        if self._reviewed == self._agents_version:
            return
        self._reviewed = self._agents_version
        for qrt in self._queues.values():
            if qrt.config.no_agents_grace is None or not qrt.calls:
                continue
            for g in qrt.groups.values():
                self._review_group(g)

    def _review_group(self, g: Group) -> None:
        v = self._agents_version
        if g.checked == v or g.task:
            return
        g.checked = v
        if self._could_serve(g.qrt, g):
            g.unserved_since = None
        elif g.unserved_since is None:
            grace = g.qrt.config.no_agents_grace
            g.unserved_since = self._now
            g.episode += 1
            self._groups[g.tid] = g
            if grace is not None:
                self._timers.add(self._now + grace, TimerKind.NO_AGENTS, g.tid, g.episode)

    def _no_agents_timer_valid(self, tid: str, episode: int) -> bool:
        g = self._groups.get(tid)
        return g is not None and g.unserved_since is not None and g.episode == episode

    def _no_agents_due(self, tid: str, out: list[Decision]) -> None:
        """A group's no-agents deadline: its calls whose grace is over leave (overflow or no_agents)."""
        g = self._groups[tid]
        grace = g.qrt.config.no_agents_grace
        since = g.unserved_since
        if grace is None or since is None:
            return
        calls = list(g.calls) + [c for lst in self._pinned.values() for c in lst if c.group is g]
        nxt: float | None = None
        for c in sorted(calls, key=_key):
            at = max(since, c.joined_q) + grace
            if at <= self._now:
                self._no_agents(c, grace, out)
            elif nxt is None or at < nxt:
                nxt = at
        if nxt is not None:
            self._timers.add(nxt, TimerKind.NO_AGENTS, tid, g.episode)

    def _no_agents(self, c: CallEntry, grace: float, out: list[Decision]) -> None:
        qrt = c.qrt
        reason = (f"no logged-in, registered agent can serve it (needs {self._final_text(c)}) "
                  f"for {grace:g}s")
        ov = qrt.config.overflow
        if ov is not None and ov.queue in self._queues:
            self._move(c, reason, out)
        else:
            self._exit(c, ExitOutcome.NO_AGENTS, out, reason=reason)

    @staticmethod
    def _final_text(c: CallEntry) -> str:
        return c.group.text(len(c.qrt.reqs) - 1)

    def _waiting_note(self, c: CallEntry, now: float) -> str | None:
        """Why a waiting call is still waiting, when nobody could serve it (for the API)."""
        qrt = c.qrt
        if self._could_serve(qrt, c.group):
            return None
        cfg = qrt.config
        text = f"no logged-in, registered agent can serve it (needs {self._final_text(c)})"
        if c.task:
            return text + "; a task waits until an agent can"
        if cfg.no_agents_grace is None:
            return text + "; it waits (no_agents_grace: null)"
        since = max(c.group.unserved_since if c.group.unserved_since is not None else now, c.joined_q)
        where = f"goes to queue {cfg.overflow.queue}" if cfg.overflow is not None else "leaves (no_agents)"
        left = max(0.0, since + cfg.no_agents_grace - now)
        return f"{text} for {now - since:.0f}s; {where} in {left:.0f}s"

    # ------------------------------------------------------------------ the move
    def _overflow_due(self, c: CallEntry, out: list[Decision], waiting: bool) -> None:
        ov = c.qrt.config.overflow
        if ov is None or ov.queue not in self._queues:  # a target added later than the queue: stay
            return
        reason = f"overflow after {ov.after:g}s in queue {c.qrt.name}"
        if waiting:
            self._move(c, reason, out)
        else:
            c.move_due = reason  # ringing: let the ring finish (answered, or moved when it fails)

    def _move(self, c: CallEntry, reason: str, out: list[Decision]) -> None:
        """Move the waiting call ``c`` to its queue's overflow queue, keeping its join time."""
        src = c.qrt
        dst = self._queues[src.config.overflow.queue]  # type: ignore[union-attr]
        now = self._now
        self._unplace(c)
        self._dirty_calls.pop(c, None)
        del src.calls[c.id]
        src.departures.record(now)
        src.stats["overflow"] += 1
        if c.pref_agent is not None:
            c.pref_note = f"preferred agent {c.pref_agent} skipped: moved to queue {dst.name}"
            c.pref_agent = None
        call = c.call
        g = dst.group_for(dst.config.priority + call.priority, dict(call.extra_skills), c.task)
        wait = now - c.joined_q
        c.qrt, c.group, c.prio = dst, g, g.prio
        c.key = (-g.prio, c.seq)             # seniority of its first join
        c.optional = (tuple(merge_optional(r.optional, call.optional_skills) for r in dst.reqs)
                      if call.optional_skills else None)
        c.step_at = tuple(c.entered + a for a in dst.afters)
        c.tgen = next(self._tgen)            # the old queue's timers are void
        c.joined_q = now
        c.moved_from = (*c.moved_from, src.name)
        c.move_due = ""
        dst.stats["entered"] += 1
        dst.calls[c.id] = c
        self._place(c)
        out.append(CallMoved(c.id, src.name, dst.name, reason, wait))
        self._arm_call_timers(c)
        self._dirty_calls[c] = "overflow"
