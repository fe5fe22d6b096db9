"""Internal indexes of the router (not public API): call entries, requirement groups, per-queue runtime,
and the timer heap.

Why groups are enough
---------------------
Waiting calls (without an active preferred agent) are kept in *groups* keyed by
(queue, effective priority, extra-skill signature), each sorted by join order (``seq``). Requirements of a
call depend only on (queue, extra skills, wait) and relaxation (of the queue's and of the call's skills) is
monotone in the wait, so inside a group
the head (the earliest joiner = the longest wait) has the *largest* eligible set: if any call of the group
is eligible for an agent, the head is. All calls of a group share the priority, so the head is also the
most senior call of the group. Hence, when an agent frees up, checking only the group heads of its
queues finds the most senior eligible call: O(#groups of its queues), independent of the number of
waiting calls. Calls with an active preference live in a per-agent ``pinned`` list instead (only that
agent may take them), and rejoin their group at their original place when the preference ends.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .call import Call, CallState
from .estimate import DepartureRate
from .policy import Requirement, SkillGroup, compile_requirements, merge_call, merge_optional, step_afters
from .queue import QueueConfig
from .ranking import Rankings

_seq = attrgetter("seq")
_key = attrgetter("key")


class CallEntry:
    """Mutable runtime state of one call inside the router."""

    __slots__ = (
        "agent_id",
        "answered_at",
        "call",
        "entered",
        "first_offer",
        "group",
        "id",
        "joined_q",
        "key",
        "last_agent",
        "missed_by",
        "move_due",
        "moved_from",
        "offer_gen",
        "offered_at",
        "offers",
        "optional",
        "pref_agent",
        "pref_note",
        "prio",
        "qrt",
        "rona",
        "seq",
        "state",
        "step_at",
        "task",
        "tgen",
        "timed_out",
    )

    def __init__(self, call: Call, qrt: QueueRuntime, group: Group, seq: tuple[float, int], now: float) -> None:
        self.call = call
        self.id = call.id
        self.qrt = qrt
        self.group = group
        self.seq = seq  # (time the call took its place, join counter): callers and tasks in one order
        self.entered = now
        self.prio = group.prio
        self.key = (-group.prio, seq)  # seniority: smaller = served first
        self.task = call.is_task
        self.state = CallState.WAITING
        self.agent_id: str | None = None
        self.last_agent: str | None = None
        self.pref_agent: str | None = None  # set while the preference is active
        self.pref_note = ""
        self.missed_by: set[str] = set()
        self.offers = 0
        self.rona = 0
        self.first_offer: float | None = None
        self.offered_at = 0.0
        self.answered_at: float | None = None
        self.timed_out = False  # max_wait passed while ringing: exit instead of requeue if it fails
        self.offer_gen = 0
        self.step_at: tuple[float, ...] = ()  # absolute times at which each relaxation step applies
        self.tgen = seq  # generation of the call's timers (a move to another queue invalidates them)
        self.joined_q = now  # joined the queue it is in now (differs from ``entered`` after an overflow)
        self.moved_from: tuple[str, ...] = ()  # queues it overflowed from, in order
        self.move_due = ""  # an overflow came due while it rang: the reason, to move if the ring fails
        # optional skills per relaxation step when the call has its own (else the queue's: ``qrt.reqs``)
        self.optional = (tuple(merge_optional(r.optional, call.optional_skills) for r in qrt.reqs)
                         if call.optional_skills else None)


class Group:
    """Waiting calls of one (queue, priority, extra skills, task or caller) signature, sorted by seniority.
    Tasks have groups of their own, so a queue's task cap holds them back without hiding a caller."""

    __slots__ = ("_reqs", "_texts", "calls", "checked", "episode", "extra", "prio", "qrt", "sig", "task", "tid",
                 "unserved_since")

    def __init__(self, qrt: QueueRuntime, prio: int, extra: dict[str, int], sig: tuple, task: bool = False) -> None:
        self.qrt = qrt
        self.prio = prio
        self.extra = extra
        self.sig = sig
        self.task = task
        self.calls: list[CallEntry] = []
        # Requirement groups merged with the call's skills (relaxed by the queue's steps, languages kept),
        # per relaxation step (computed once).
        self._reqs = tuple(merge_call(r, extra) for r in qrt.reqs)
        self._texts: dict[int, str] = {}
        # "no agent could ever serve it" bookkeeping (``moves``): since when, which stretch, checked when
        self.unserved_since: float | None = None
        self.episode = 0
        self.checked = -1
        self.tid = f"{qrt.config.name}\x00{sig!r}"

    def reqs(self, step: int) -> tuple[SkillGroup, ...]:
        return self._reqs[step]

    @property
    def final_reqs(self) -> tuple[SkillGroup, ...]:
        return self._reqs[-1]

    def text(self, step: int) -> str:
        t = self._texts.get(step)
        if t is None:
            t = " | ".join(",".join(f"{s}>={lv}" for s, lv in g) or "any" for g in self._reqs[step])
            self._texts[step] = t
        return t

    def insert(self, c: CallEntry) -> None:
        if not self.calls:
            self.qrt.active[self.sig] = self
        insort(self.calls, c, key=_seq)

    def remove(self, c: CallEntry) -> None:
        calls = self.calls
        if calls and calls[0] is c:  # the common case: the head is served
            del calls[0]
        else:
            i = bisect_left(calls, c.seq, key=_seq)
            if i >= len(calls) or calls[i] is not c:
                raise AssertionError(f"call {c.id} not in its group")  # internal bug, never user error
            del calls[i]
        if not calls:
            del self.qrt.active[self.sig]


@dataclass
class QueueRuntime:
    config: QueueConfig
    reqs: tuple[Requirement, ...] = ()
    afters: tuple[float, ...] = ()
    groups: dict[tuple, Group] = field(default_factory=dict)  # every signature seen
    active: dict[tuple, Group] = field(default_factory=dict)  # non-empty groups only (hot iteration)
    calls: dict[str, CallEntry] = field(default_factory=dict)  # in queue: waiting or ringing
    members: set[str] = field(default_factory=set)  # agent ids serving this queue
    avail: set[str] = field(default_factory=set)  # members that are available and registered
    stats: dict[str, Any] = field(default_factory=dict)
    #: callers leaving the line (for the estimated wait, ``estimate``); the router sets its start time
    departures: DepartureRate = field(default_factory=lambda: DepartureRate(0.0))
    #: tasks of this queue ringing an agent or being worked (counted against ``task_agents_percent``)
    engaged_tasks: set[str] = field(default_factory=set)
    #: ``avail`` in ranking order per requirement profile in use (``ranking``); the engine keeps it with ``avail``
    ranks: Rankings = field(default_factory=Rankings)

    def __post_init__(self) -> None:
        self.reqs = compile_requirements(self.config)
        self.afters = step_afters(self.config)
        self.ranks.clear()                      # a new definition: new requirement profiles

    @property
    def name(self) -> str:
        return self.config.name

    def group_for(self, prio: int, extra: dict[str, int], task: bool = False) -> Group:
        sig = (prio, tuple(sorted(extra.items())), task)
        g = self.groups.get(sig)
        if g is None:
            g = self.groups[sig] = Group(self, prio, extra, sig, task)
        return g


def insert_pinned(lst: list[CallEntry], c: CallEntry) -> None:
    insort(lst, c, key=_key)


def remove_pinned(lst: list[CallEntry], c: CallEntry) -> None:
    i = bisect_left(lst, c.key, key=_key)
    if i >= len(lst) or lst[i] is not c:
        raise AssertionError(f"call {c.id} not in its pinned list")
    del lst[i]


class TimerKind:
    RELAX = 0
    TIMEOUT = 1
    PREF = 2
    RING = 3
    WRAP = 4
    REST = 5
    OVERFLOW = 6  # a call's ``overflow.after`` in its queue
    NO_AGENTS = 7  # a group nobody can serve: its calls' ``no_agents_grace`` (ident: ``Group.tid``)


class Timers:
    """Min-heap of (deadline, n, kind, ident, gen) with lazy invalidation: the router checks on pop that
    ``gen`` still matches the object's current generation, so cancelling is free."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int, str, int]] = []
        self._n = itertools.count()

    def add(self, deadline: float, kind: int, ident: str, gen: int) -> None:
        heapq.heappush(self.heap, (deadline, next(self._n), kind, ident, gen))

    def pop(self) -> tuple[float, int, int, str, int]:
        return heapq.heappop(self.heap)

    def due(self, now: float) -> list[tuple[float, int, int, str, int]]:
        """Entries with deadline <= ``now`` (any order), without popping: O(due entries)."""
        heap = self.heap
        n = len(heap)
        found = []
        stack = [0] if heap and heap[0][0] <= now else []
        while stack:
            i = stack.pop()
            found.append(heap[i])
            for j in (2 * i + 1, 2 * i + 2):  # heap property: a child is due only if its parent is
                if j < n and heap[j][0] <= now:
                    stack.append(j)
        return found

    def __len__(self) -> int:
        return len(self.heap)
