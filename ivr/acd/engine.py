"""Internal mechanics of the router (not public API): state, indexes, agent and call moves, matching,
timers. ``router.Router`` subclasses ``Engine`` and adds the public operations; its docstring states the
guarantees this code implements.

Matching is incremental: operations mark what changed as *dirty* (calls that may have gained agents,
agents that became offerable) and ``_dispatch`` serves the most senior candidate first, where candidates
are the dirty calls plus, for each dirty agent, the most senior call it is eligible for. That equals
walking *all* waiting calls by seniority (each taking its best eligible available agent): a call that is
neither dirty nor eligible for a dirty agent has no eligible available agent, because the invariant held
before the change. Timers (relaxation steps, preference deadlines, max_wait, overflow, no-agents grace,
wrap-up end, ring safety net) live in a heap with lazy invalidation; each due timer is applied and
followed by a dispatch. Moving a call to another queue and the no-agents grace are in ``moves`` (a mixin).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Iterable
from heapq import heappop

from .agent import NO_ANSWER, Agent, AgentConfig, AgentEvent, AgentState
from .autopause import AutoPausePolicy, MissGuard, MissVerdict
from .call import CallState
from .decisions import (
    AgentAutoPaused,
    AgentStateChanged,
    AutoPauseSuspended,
    CallFinished,
    CallRequeued,
    CancelOffer,
    Candidate,
    Decision,
    ExitOutcome,
    Explanation,
    Offer,
    QueueExit,
)
from .errors import IllegalTransition, UnknownAgent, UnknownCall, UnknownQueue
from .index import CallEntry, Group, QueueRuntime, TimerKind, Timers, insert_pinned, remove_pinned
from .matching import Matching
from .moves import Moves
from .policy import admits
from .record import CallOutcome, CallRecord

_WAITING = CallState.WAITING
_RINGING = CallState.RINGING
_ON_CALL = CallState.ON_CALL
_LOGGED_OUT = AgentState.LOGGED_OUT
_MISSING = object()
_EXIT_TO_OUTCOME = {ExitOutcome.TIMEOUT: CallOutcome.TIMEOUT, ExitOutcome.FULL: CallOutcome.FULL,
                    ExitOutcome.NO_AGENTS: CallOutcome.NO_AGENTS}
_STAT_FOR_OUTCOME = {CallOutcome.ABANDONED: "abandoned", CallOutcome.TIMEOUT: "timeouts",
                     CallOutcome.FULL: "full", CallOutcome.NO_AGENTS: "no_agents",
                     CallOutcome.OVERFLOW: "overflow"}


class Engine(Moves, Matching):
    """State and internals shared by the public ``Router`` operations (overflow and no-agents: ``moves``)."""

    def __init__(self, clock: Callable[[], float], offer_grace: float,
                 auto_pause: AutoPausePolicy | None = None) -> None:
        self._clock = clock
        self._now = clock()
        self._grace = offer_grace
        self._guard = MissGuard(auto_pause)
        self._queues: dict[str, QueueRuntime] = {}
        self._agents: dict[str, Agent] = {}
        self._agent_queues: dict[str, set[str]] = {}
        self._avail_by_skill: dict[str, set[str]] = {}
        self._pinned: dict[str, list[CallEntry]] = {}  # preferred agent -> its waiting pinned calls
        self._calls: dict[str, CallEntry] = {}  # waiting, ringing and on-call calls
        self._timers = Timers()
        self._seq = itertools.count(1)  # join order: breaks ties between calls that took their place at once
        self._offer_gen = itertools.count(1)
        self._wrap_gen: dict[str, int] = {}
        self._dirty_calls: dict[CallEntry, str] = {}  # call -> trigger (may have gained agents)
        self._dirty_agents: dict[str, str] = {}  # agent id -> trigger (became offerable / changed)
        self._agents_version = 0  # bumped when "who could ever serve" may change
        self._serve_cache: dict[Group, tuple[int, bool]] = {}
        self._init_moves()
        self._task_caps: dict[str, tuple[int, int]] = {}  # queue -> (agents version, agents allowed on tasks)

    # ------------------------------------------------------------------ internals: lookups
    def _advance(self) -> float:
        self._now = max(self._now, self._clock())  # never let a wobbly clock move time backwards
        return self._now

    def _agent(self, agent_id: str) -> Agent:
        a = self._agents.get(agent_id)
        if a is None:
            raise UnknownAgent(agent_id)
        return a

    def _call(self, call_id: str) -> CallEntry:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        return c

    def _require(self, agent_id: str, event: AgentEvent, *, allow_reserved: bool = False) -> Agent:
        """Validate before mutating (an op that raises changes nothing)."""
        a = self._agent(agent_id)
        if not (a.can(event) or (allow_reserved and a.state is AgentState.RESERVED)):
            raise IllegalTransition(agent_id, a.state, event)
        return a

    def _resolve_queues(self, config: AgentConfig) -> set[str]:
        if config.queues is None:
            return set(self._queues)
        for q in config.queues:
            if q not in self._queues:
                raise UnknownQueue(q)
        return set(config.queues)

    def _pref_dead_reason(self, agent_id: str, queue: str) -> str:
        a = self._agents.get(agent_id)
        if a is None:
            return "unknown agent"
        if a.state is _LOGGED_OUT:
            return "logged out"
        if not a.registered:
            return "unregistered"
        if queue not in self._agent_queues[agent_id]:
            return "does not serve the queue"
        return ""

    # ------------------------------------------------------------------ internals: agent side
    def _index_add(self, a: Agent) -> None:
        aid = a.id
        for q in self._agent_queues[aid]:
            qrt = self._queues[q]
            qrt.avail.add(aid)
            if qrt.ranks.by_profile:
                qrt.ranks.add(aid, a.skills, a.idle_since)
        abs_ = self._avail_by_skill
        for s in a.skills:
            p = abs_.get(s)
            if p is None:
                abs_[s] = {aid}
            else:
                p.add(aid)

    def _index_remove(self, a: Agent) -> None:
        aid = a.id
        for q in self._agent_queues[aid]:
            qrt = self._queues[q]
            qrt.avail.discard(aid)
            if qrt.ranks.by_profile:
                qrt.ranks.remove(aid)
        for s in a.skills:
            p = self._avail_by_skill.get(s)
            if p is not None:
                p.discard(aid)

    def _transition(self, a: Agent, event: AgentEvent, out: list[Decision], *, reason: str | None = None,
                    call_id: str | None = None, count_miss: bool = True) -> None:
        was = a.offerable
        old, new = a.apply(event, self._now, reason=reason, call_id=call_id, count_miss=count_miss)
        out.append(AgentStateChanged(a.id, old, new, a.pause_reason))
        now_ok = a.offerable
        if now_ok and not was:
            self._index_add(a)
            self._dirty_agents[a.id] = "agent_available"
        elif was and not now_ok:
            self._index_remove(a)
        if (old is _LOGGED_OUT) != (new is _LOGGED_OUT):
            self._agents_version += 1

    def _drop_prefs_of(self, agent_id: str, why: str) -> None:
        for c in list(self._pinned.get(agent_id, ())):
            self._drop_pref(c, f"preferred agent {agent_id} skipped: {why}")

    # ------------------------------------------------------------------ internals: call side
    def _place(self, c: CallEntry) -> None:
        if c.pref_agent is not None:
            lst = self._pinned.get(c.pref_agent)
            if lst is None:
                lst = self._pinned[c.pref_agent] = []
            insert_pinned(lst, c)
        else:
            c.group.insert(c)

    def _unplace(self, c: CallEntry) -> None:
        if c.pref_agent is not None:
            remove_pinned(self._pinned[c.pref_agent], c)
        else:
            c.group.remove(c)

    def _drop_pref(self, c: CallEntry, note: str, trigger: str = "preference_dropped") -> None:
        """End a preference for good (monotone: the eligible set only grows)."""
        if c.state is _WAITING:
            self._unplace(c)
            c.pref_agent = None
            self._place(c)
            self._dirty_calls[c] = trigger
        else:
            c.pref_agent = None
        c.pref_note = note

    def _release_agent(self, c: CallEntry, reason: str, out: list[Decision]) -> Agent:
        """Withdraw the ringing offer of ``c`` (not the agent's fault) and free the agent."""
        a = self._agents[c.agent_id]  # type: ignore[index]
        out.append(CancelOffer(c.id, a.id, reason))
        c.agent_id = None
        self._transition(a, AgentEvent.CANCEL, out)
        return a

    def _cancel_offer(self, a: Agent, reason: str, out: list[Decision]) -> None:
        c = self._calls[a.call_id]  # type: ignore[index]
        out.append(CancelOffer(c.id, a.id, reason))
        self._requeue(c, out, miss=False, reason=reason)

    def _fail_offer(self, c: CallEntry, out: list[Decision], *, agent_fault: bool, reason: str,
                    recorded: bool = False) -> None:
        """An offer outcome "failed" (``offer_failed`` or the ring safety net): record it, ask the guard
        whether the miss counts (``autopause``), apply refunds / lifts it hands back, requeue the call."""
        aid = c.agent_id
        if not recorded:
            self._guard.failure(aid, self._now)  # type: ignore[arg-type]
        v = self._guard.judge(aid, self._now, agent_fault=agent_fault)  # type: ignore[arg-type]
        self._relieve(v, out)
        retry = c.qrt.config.retry
        if retry > 0:  # before the requeue's transition, so the agent does not re-enter the index now
            a = self._agents[aid]  # type: ignore[index]
            a.resting = True
            a.rest_gen = gen = next(self._offer_gen)
            self._timers.add(self._now + retry, TimerKind.REST, a.id, gen)
        self._requeue(c, out, miss=agent_fault, reason=reason, counted=v.counts, why=v.systemic)

    def _relieve(self, v: MissVerdict, out: list[Decision]) -> None:
        """A storm was detected: give back the misses counted and lift the auto-pauses made just before."""
        for aid, n in v.refunds:
            a = self._agents.get(aid)
            if a is not None and a.misses > 0:
                a.misses = max(0, a.misses - n)
                out.append(AutoPauseSuspended(aid, "miss-refunded", f"{n} miss(es) given back: {v.systemic}"))
        for aid, t in v.lifts:
            a = self._agents.get(aid)
            if (a is not None and a.state is AgentState.PAUSED and a.pause_reason == NO_ANSWER
                    and a.state_since == t):  # still in that very auto-pause
                self._transition(a, AgentEvent.UNPAUSE, out)
                out.append(AutoPauseSuspended(aid, "pause-lifted", v.systemic))

    def _requeue(self, c: CallEntry, out: list[Decision], *, miss: bool, reason: str, counted: bool = True,
                 why: str = "") -> None:
        a = self._agents[c.agent_id]  # type: ignore[index]
        c.agent_id = None
        c.state = _WAITING
        if c.task:
            self._task_released(c)
        if miss:
            c.rona += 1
            c.missed_by.add(a.id)
            self._transition(a, AgentEvent.MISS, out, count_miss=counted)
            limit = a.config.max_misses or c.qrt.config.max_misses
            if not counted:
                out.append(AutoPauseSuspended(a.id, "miss-not-counted", why))
            elif a.misses >= limit:
                held = self._guard.pause_refusal(self._now)
                if held:  # the miss stays counted: paused at a later miss once the budget allows
                    out.append(AutoPauseSuspended(a.id, "pause-held", held))
                else:
                    self._transition(a, AgentEvent.PAUSE, out, reason=NO_ANSWER)
                    a.misses = 0  # fresh budget after the unpause
                    self._guard.paused(a.id, self._now)
                    out.append(AgentAutoPaused(a.id, NO_ANSWER))
        else:
            self._transition(a, AgentEvent.CANCEL, out)
        self._place(c)
        if c.timed_out:  # max_wait passed while it rang: leave now rather than wait again
            self._exit(c, ExitOutcome.TIMEOUT, out)
            return
        out.append(CallRequeued(c.id, c.qrt.name, reason))
        if c.move_due:  # its overflow came due while it rang: move now
            self._move(c, c.move_due, out)
            return
        self._dirty_calls[c] = "requeued"
        self._arm_no_agents(c)

    def _refuse(self, c: CallEntry, outcome: ExitOutcome, out: list[Decision]) -> None:
        qrt = c.qrt
        out.append(QueueExit(c.id, qrt.name, outcome, getattr(qrt.config, f"on_{outcome.value}")))
        rec = _EXIT_TO_OUTCOME[outcome]
        qrt.stats[_STAT_FOR_OUTCOME[rec]] += 1
        out.append(CallFinished(self._record(c, rec, False)))

    def _exit(self, c: CallEntry, outcome: ExitOutcome, out: list[Decision], *, reason: str = "") -> None:
        qrt = c.qrt
        out.append(QueueExit(c.id, qrt.name, outcome, getattr(qrt.config, f"on_{outcome.value}"), reason))
        self._finish(c, _EXIT_TO_OUTCOME[outcome], out, reason=reason)

    def _finish(self, c: CallEntry, outcome: CallOutcome, out: list[Decision], *, short: bool = False,
                reason: str = "") -> None:
        if c.state is _WAITING:
            self._unplace(c)
        qrt = c.qrt
        if c.state is not _ON_CALL:  # left the line now (an answered call left it when answered)
            qrt.departures.record(self._now)
        qrt.calls.pop(c.id, None)
        del self._calls[c.id]
        self._dirty_calls.pop(c, None)
        if c.task:
            self._task_released(c)
            out.append(CallFinished(self._record(c, outcome, False)))
            return
        key = _STAT_FOR_OUTCOME.get(outcome)
        if key:
            qrt.stats[key] += 1
        if short:
            qrt.stats["short_abandoned"] += 1
        out.append(CallFinished(self._record(c, outcome, short, reason)))

    def _record(self, c: CallEntry, outcome: CallOutcome, short: bool, reason: str = "") -> CallRecord:
        within = None
        if c.answered_at is not None:
            within = c.answered_at - c.entered <= c.qrt.config.service_level.seconds
        return CallRecord(
            call_id=c.id, queue=c.qrt.name, priority=c.prio, entered_at=c.entered, offered_at=c.first_offer,
            answered_at=c.answered_at, ended_at=self._now, agent_id=c.last_agent, outcome=outcome,
            offers=c.offers, rona_count=c.rona, short_abandon=short, within_service_level=within,
            overflowed_from=c.moved_from, reason=reason, kind=c.call.kind.value)

    def _could_serve(self, qrt: QueueRuntime, group: Group) -> bool:
        """Is a logged-in, registered member able to serve this group once fully relaxed? (cached per
        group until the agent population changes)"""
        hit = self._serve_cache.get(group)
        if hit is not None and hit[0] == self._agents_version:
            return hit[1]
        reqs = group.final_reqs
        agents = self._agents
        ok = False
        for aid in qrt.members:
            a = agents[aid]
            if a.state is not _LOGGED_OUT and a.registered and admits(reqs, a.skills):
                ok = True
                break
        self._serve_cache[group] = (self._agents_version, ok)
        return ok

    # ------------------------------------------------------------------ internals: tasks
    def _task_cap(self, qrt: QueueRuntime) -> int:
        """How many of the queue's agents may be on tasks at once: ``task_agents_percent`` of its
        logged-in members whose phone is registered (those who can take a call), at least one (cached until
        the agent population changes)."""
        hit = self._task_caps.get(qrt.name)
        if hit is not None and hit[0] == self._agents_version:
            return hit[1]
        agents = self._agents
        n = sum(1 for aid in qrt.members if agents[aid].state is not _LOGGED_OUT and agents[aid].registered)
        cap = max(1, int(n * qrt.config.task_agents_percent / 100 + 1e-9))
        self._task_caps[qrt.name] = (self._agents_version, cap)
        return cap

    def _tasks_open(self, qrt: QueueRuntime) -> bool:
        """May one more of this queue's tasks be offered now?"""
        return len(qrt.engaged_tasks) < self._task_cap(qrt)

    def _task_released(self, c: CallEntry) -> None:
        """A task stopped ringing / being worked: a slot may have opened for the queue's waiting tasks."""
        qrt = c.qrt
        qrt.engaged_tasks.discard(c.id)
        for g in qrt.active.values():
            if g.task:
                self._dirty_calls[g.calls[0]] = "task_slot_free"

    @staticmethod
    def _tasks_in_line(qrt: QueueRuntime) -> int:
        return sum(1 for c in qrt.calls.values() if c.task)

    def _check_empty(self, queue_names: Iterable[str], out: list[Decision]) -> None:
        """leave_when_empty: waiting callers nobody logged in could ever serve leave with no_agents."""
        for qn in sorted(queue_names):
            qrt = self._queues[qn]
            if not qrt.config.leave_when_empty or not qrt.calls:
                continue
            # Per group, not per call: every call of a group has the same fully relaxed requirement.
            leaving = [c for g in qrt.active.values() if not g.task and not self._could_serve(qrt, g)
                       for c in g.calls]
            for lst in self._pinned.values():
                leaving += [c for c in lst if c.qrt is qrt and not c.task and not self._could_serve(qrt, c.group)]
            for c in sorted(leaving, key=lambda c: c.key):
                self._exit(c, ExitOutcome.NO_AGENTS, out)

    # ------------------------------------------------------------------ internals: matching
    def _finish_op(self, out: list[Decision], *, advance: bool = False) -> list[Decision]:
        if advance:
            self._advance()
        self._dispatch(out)
        self._review_service()
        self._run_timers(out)
        return out

    def _dispatch(self, out: list[Decision]) -> None:
        """Greedy matching over what changed (see module docstring). The most senior call among the dirty
        calls and the best calls of the dirty agents is served first, so the result equals walking *all*
        waiting calls by seniority: a call that is neither dirty nor eligible for a dirty agent has no
        eligible available agent (the invariant held before the change)."""
        dc = self._dirty_calls
        da = self._dirty_agents
        cache: dict[str, CallEntry | None] = {}
        calls = self._calls
        agents = self._agents
        while dc or da:
            best: CallEntry | None = None
            trig = ""
            for c in list(dc):
                if c.state is not _WAITING or calls.get(c.id) is not c:
                    del dc[c]
                elif best is None or c.key < best.key:
                    best, trig = c, dc[c]
            for aid in list(da):
                a = agents.get(aid)
                if a is None or not a.offerable:
                    del da[aid]
                    continue
                bc = cache.get(aid, _MISSING)
                if bc is _MISSING or (bc is not None and bc.state is not _WAITING):
                    bc = cache[aid] = self._best_call_for(a)
                if bc is None:
                    del da[aid]
                elif best is None or bc.key < best.key:
                    best, trig = bc, da[aid]
            if best is None:
                break
            dc.pop(best, None)
            res = self._best_agent_for(best)
            if res is None:
                continue
            agent, top, n, k = res
            da.pop(agent.id, None)
            self._offer(best, agent, top, n, k, trig, out)

    def _offer(self, c: CallEntry, a: Agent, top: list, n: int, k: int, trigger: str,
               out: list[Decision]) -> None:
        now = self._now
        qrt = c.qrt
        self._unplace(c)
        c.state = _RINGING
        c.agent_id = a.id
        c.last_agent = a.id
        c.offers += 1
        if c.first_offer is None:
            c.first_offer = now
        c.offered_at = now
        c.offer_gen = next(self._offer_gen)
        if c.task:
            qrt.engaged_tasks.add(c.id)
        self._transition(a, AgentEvent.OFFER, out, call_id=c.id)
        ring = qrt.config.ring_timeout
        self._timers.add(now + ring + self._grace, TimerKind.RING, c.id, c.offer_gen)
        cands = tuple(Candidate(t[3], -t[1], now - t[2], t[0]) for t in top[:Explanation.MAX_CANDIDATES])
        expl = Explanation(
            call_id=c.id, queue=qrt.name, agent_id=a.id, trigger=trigger, wait=now - c.entered,
            priority=c.prio, step=k, step_description=qrt.reqs[k].description, requirement=c.group.text(k),
            candidates=cands, n_candidates=n, reason=self._reason(c, top), preference=c.pref_note)
        out.append(Offer(c.id, a.id, a.config.endpoint, qrt.name, ring, expl))

    # ------------------------------------------------------------------ internals: timers
    def _timer_valid(self, kind: int, ident: str, gen: int) -> bool:
        if kind == TimerKind.WRAP:
            a = self._agents.get(ident)
            return a is not None and a.state is AgentState.WRAP_UP and self._wrap_gen.get(ident) == gen
        if kind == TimerKind.REST:
            a = self._agents.get(ident)
            return a is not None and a.resting and a.rest_gen == gen
        if kind == TimerKind.NO_AGENTS:
            return self._no_agents_timer_valid(ident, gen)
        c = self._calls.get(ident)
        if c is None:
            return False
        if kind == TimerKind.RING:
            return c.state is _RINGING and c.offer_gen == gen
        if c.tgen != gen or c.state is _ON_CALL:
            return False
        if kind == TimerKind.PREF:
            return c.pref_agent is not None
        return True  # RELAX, TIMEOUT, OVERFLOW

    def _record_due_rings(self) -> set[tuple[str, int]]:
        """Record every ring safety net due now as a failure *before* judging any of them, so that a
        stalled loop's batch of timeouts is seen as the storm it is (``autopause``)."""
        due: set[tuple[str, int]] = set()
        for _, _, kind, ident, gen in self._timers.due(self._now):
            if kind == TimerKind.RING and self._timer_valid(kind, ident, gen):
                self._guard.failure(self._calls[ident].agent_id, self._now)  # type: ignore[arg-type]
                due.add((ident, gen))
        return due

    def _run_timers(self, out: list[Decision]) -> None:
        heap = self._timers.heap
        now = self._now
        rings = self._record_due_rings() if heap and heap[0][0] <= now else set()
        while heap and heap[0][0] <= now:
            _, _, kind, ident, gen = heappop(heap)
            if not self._timer_valid(kind, ident, gen):
                continue
            if kind == TimerKind.WRAP:
                self._transition(self._agents[ident], AgentEvent.WRAP_UP_DONE, out)
            elif kind == TimerKind.REST:
                a = self._agents[ident]
                a.resting = False
                if a.offerable:
                    self._index_add(a)
                    self._dirty_agents[a.id] = "retry_over"
            elif kind == TimerKind.NO_AGENTS:
                self._no_agents_due(ident, out)
            else:
                c = self._calls[ident]
                if kind == TimerKind.RELAX:
                    k = bisect_right(c.step_at, now)
                    if k < len(c.step_at):
                        self._timers.add(c.step_at[k], TimerKind.RELAX, c.id, c.tgen)
                    if c.state is _WAITING:
                        self._dirty_calls[c] = "relaxation"
                elif kind == TimerKind.TIMEOUT:
                    if c.state is _WAITING:
                        self._exit(c, ExitOutcome.TIMEOUT, out)
                    else:
                        c.timed_out = True
                elif kind == TimerKind.OVERFLOW:
                    self._overflow_due(c, out, waiting=c.state is _WAITING)
                elif kind == TimerKind.PREF:
                    self._drop_pref(c, f"preferred agent {c.pref_agent} expired", "preference_expired")
                elif kind == TimerKind.RING:
                    a = self._agents[c.agent_id]  # type: ignore[index]
                    out.append(CancelOffer(c.id, a.id, "ring-timeout"))
                    self._fail_offer(c, out, agent_fault=True, reason="ring-timeout",
                                     recorded=(ident, gen) in rings)
            self._dispatch(out)
