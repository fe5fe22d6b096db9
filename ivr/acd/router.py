"""The skill-based router: pure (no I/O, no asyncio), injected monotonic clock, decisions as data.

Semantics (what every operation guarantees when it returns)
-----------------------------------------------------------
* **Eligibility** of agent A for waiting call C at time t: A is available and registered, A serves C's
  queue, A satisfies C's requirements at C's wait (see ``policy``: the queue's skills and the call's extra
  skills, both relaxed by the queue's steps as C waits, except the call's languages ``lang:*``), and, while
  C has an active preferred agent, A is that agent.
* **Matching** is the greedy rule "walk the waiting calls by seniority, each takes its best eligible
  available agent", applied whenever something changes. Seniority = effective priority (higher first),
  then join time (earlier first); FIFO within a priority. Best agent = not having missed this call before,
  then highest fit score (``policy.fit_score``), then longest idle (``idle_since``), then agent id.
  Consequences: a freed agent gets the most senior call it is eligible for across *all* its queues; a new
  call gets the best eligible available agent.
* **Invariants** after every operation: no agent has two outstanding offers; no call rings two agents;
  no available, registered agent is eligible for a waiting call (everything matchable is matched).
* **Time**: every operation first applies its own event, then processes all timers due at ``now`` in
  deadline order (relaxation steps, preference deadlines, max_wait, overflow, no-agents grace, wrap-up end,
  ring safety net; overflow and the no-agents grace: ``moves``), each
  followed by matching. ``tick()`` does only the latter; call it at ``next_deadline()``. An operation that
  raises (unknown id, illegal transition, wrong call state) has changed nothing.
* **Offer failure** puts the call back at its original place (same seniority key); the agent gets a miss
  (auto-pause with ``no-answer`` after the queue's/agent's ``max_misses``) unless the failure was not its
  fault or is systemic, and auto-pauses are bounded per minute (``autopause``, ``docs/acd.md``,
  ``auto_pause_state()``); the router tries again at once: the call ranks agents that already missed it
  last, so another eligible agent is rung if there is one. If ``max_wait`` passed while ringing, a failed
  offer ends the call with ``timeout``.
* **Pause / logout / unregister while reserved** withdraw the offer (``CancelOffer``, no miss, call
  requeued). An agent on a call cannot log out (``IllegalTransition``): the call must end first.
* **Preferred agent**: until its deadline only that agent may take the call (the call waits even if the
  agent is busy or paused); the preference ends for good at the deadline or as soon as the agent logs
  out, unregisters, stops serving the queue or is removed.
* **Wrap-up** ends by itself after the queue's (or the agent's) wrap-up seconds on ``tick()``;
  ``wrap_up_done`` ends it early. ``StartWrapUp`` is informational.
* ``call_ended`` on a call not yet answered behaves like ``abandon`` and ``abandon`` on an answered call
  like ``call_ended`` (both mean "the call is gone"), so a racy hang-up never leaves state behind.

Complexity (why it is fast at 10k waiting calls / 1k agents)
------------------------------------------------------------
* Agent frees up: only the heads of the non-empty groups of the agent's queues are checked (see
  ``index`` for why heads suffice under monotone relaxation) plus the agent's pinned calls:
  O(#groups x skills per requirement), independent of the number of waiting calls.
* New / requeued / relaxed call: the queue keeps its available agents in ranking order for each
  requirement profile in use (``ranking``), so the best few are read from the front instead of scoring
  every available agent. A call with its own optional skills or a preferred agent is scored the long
  way: candidates come from the smallest of "available members of the queue" and "available agents
  holding skill s" for the skills of each requirement group, so only plausible agents are scored.
* Queue insert/remove is a bisect on a list sorted by join order (appends at the tail in the common case),
  timers are a heap with lazy invalidation.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from heapq import heappop

from .agent import Agent, AgentConfig, AgentEvent, AgentState
from .autopause import AutoPausePolicy, AutoPauseState
from .call import Call
from .decisions import Decision, ExitOutcome, StartWrapUp
from .engine import _LOGGED_OUT, _ON_CALL, _RINGING, _WAITING, Engine
from .errors import DuplicateId, IllegalTransition, InvalidCallState, UnknownQueue
from .estimate import DepartureRate
from .index import CallEntry, QueueRuntime, TimerKind
from .policy import admits
from .queue import QueueConfig, check_overflows
from .reconfig import QueueChanges
from .record import CallOutcome
from .views import AgentSnapshot, CallSnapshot, QueueSnapshot, QueueStats


def _new_stats() -> dict:
    return {f: getattr(QueueStats(), f) for f in QueueStats.__dataclass_fields__}


class Router(QueueChanges, Engine):
    """See the module docstring. All public mutators return ``list[Decision]`` in execution order."""

    def __init__(self, queues: Iterable[QueueConfig] = (), clock: Callable[[], float] = time.monotonic,
                 *, offer_grace: float = 5.0, auto_pause: AutoPausePolicy | None = None) -> None:
        """``auto_pause``: when a miss counts and how many auto-pauses per minute (None = defaults)."""
        super().__init__(clock, offer_grace, auto_pause)
        queues = tuple(queues)
        check_overflows(queues)
        for q in queues:
            self.add_queue(q)

    # ------------------------------------------------------------------ configuration
    def add_queue(self, config: QueueConfig) -> None:
        """Add a queue (``Router(queues)`` checks the overflows of its queues together; a queue added here
        later may overflow to one added after it: until then its callers stay where they are). Changing or
        removing one at run time: ``update_queue`` / ``remove_queue`` (``reconfig``)."""
        if config.name in self._queues:
            raise DuplicateId(f"queue {config.name!r} already exists")
        qrt = QueueRuntime(config, stats=_new_stats(), departures=DepartureRate(self._advance()))
        self._queues[config.name] = qrt
        for aid, a in self._agents.items():
            if a.config.queues is None:
                qrt.members.add(aid)
                self._agent_queues[aid].add(config.name)
                if a.offerable:
                    qrt.avail.add(aid)

    def add_agent(self, config: AgentConfig, *, registered: bool = True) -> list[Decision]:
        """Add a logged-out agent. ``registered`` should be the endpoint's real state (default True).
        The queues it lists must already exist (``UnknownQueue`` otherwise: catches YAML typos)."""
        if config.id in self._agents:
            raise DuplicateId(f"agent {config.id!r} already exists")
        queues = self._resolve_queues(config)
        now = self._advance()
        self._agents[config.id] = Agent(config, now, registered)
        self._agent_queues[config.id] = queues
        for q in queues:
            self._queues[q].members.add(config.id)
        self._agents_version += 1
        return self._finish_op([])

    def update_agent(self, config: AgentConfig) -> list[Decision]:
        """Replace an agent's definition (skills, queues, overrides...) keeping its runtime state."""
        a = self._agent(config.id)
        queues = self._resolve_queues(config)
        self._advance()
        out: list[Decision] = []
        aid = config.id
        was = a.offerable
        if was:
            self._index_remove(a)
        old = self._agent_queues[aid]
        for q in old - queues:
            self._queues[q].members.discard(aid)
        for q in queues - old:
            self._queues[q].members.add(aid)
        self._agent_queues[aid] = queues
        a.config = config
        a.skills = config._effective  # type: ignore[attr-defined]
        if was:
            self._index_add(a)
            self._dirty_agents[aid] = "agent_updated"
        self._agents_version += 1
        for c in list(self._pinned.get(aid, ())):
            if c.qrt.name not in queues:
                self._drop_pref(c, f"preferred agent {aid} skipped: no longer serves the queue")
        self._check_empty(old, out)
        return self._finish_op(out)

    def remove_agent(self, agent_id: str) -> list[Decision]:
        """Log the agent out if needed (an offer ringing it is withdrawn) and forget it."""
        a = self._agent(agent_id)
        if a.state is AgentState.ON_CALL:
            raise IllegalTransition(agent_id, a.state, AgentEvent.LOGOUT)
        out = self.logout(agent_id) if a.state is not _LOGGED_OUT else self._finish_op([], advance=True)
        for q in self._agent_queues.pop(agent_id):
            self._queues[q].members.discard(agent_id)
        self._pinned.pop(agent_id, None)  # already emptied by logout
        self._wrap_gen.pop(agent_id, None)
        self._dirty_agents.pop(agent_id, None)
        del self._agents[agent_id]
        self._agents_version += 1
        return out

    # ------------------------------------------------------------------ agent operations
    def login(self, agent_id: str) -> list[Decision]:
        a = self._require(agent_id, AgentEvent.LOGIN)
        self._advance()
        out: list[Decision] = []
        self._transition(a, AgentEvent.LOGIN, out)
        return self._finish_op(out)

    def logout(self, agent_id: str) -> list[Decision]:
        a = self._require(agent_id, AgentEvent.LOGOUT, allow_reserved=True)
        self._advance()
        out: list[Decision] = []
        if a.state is AgentState.RESERVED:
            self._cancel_offer(a, "agent-logged-out", out)
        self._transition(a, AgentEvent.LOGOUT, out)
        self._drop_prefs_of(agent_id, "logged out")
        self._check_empty(self._agent_queues[agent_id], out)
        return self._finish_op(out)

    def pause(self, agent_id: str, reason: str) -> list[Decision]:
        if not isinstance(reason, str) or not reason:
            raise ValueError("a pause needs a non-empty reason")
        a = self._require(agent_id, AgentEvent.PAUSE, allow_reserved=True)
        self._advance()
        out: list[Decision] = []
        if a.state is AgentState.RESERVED:
            self._cancel_offer(a, "agent-paused", out)
        self._transition(a, AgentEvent.PAUSE, out, reason=reason)
        return self._finish_op(out)

    def unpause(self, agent_id: str) -> list[Decision]:
        a = self._require(agent_id, AgentEvent.UNPAUSE)
        self._advance()
        out: list[Decision] = []
        self._transition(a, AgentEvent.UNPAUSE, out)
        return self._finish_op(out)

    def wrap_up_done(self, agent_id: str) -> list[Decision]:
        """The agent ends wrap-up early ("ready"); the router also ends it by itself when it expires."""
        a = self._require(agent_id, AgentEvent.WRAP_UP_DONE)
        self._advance()
        out: list[Decision] = []
        self._transition(a, AgentEvent.WRAP_UP_DONE, out)
        return self._finish_op(out)

    def set_registered(self, agent_id: str, registered: bool) -> list[Decision]:
        """Presence of the agent's endpoint. The state is kept (see ``agent`` docstring); an offer ringing
        the agent when it unregisters is withdrawn without a miss; preferences for it are dropped."""
        a = self._agent(agent_id)
        self._advance()
        out: list[Decision] = []
        if a.registered != registered:
            if registered:
                a.registered = True
                if a.offerable:
                    self._index_add(a)
                    self._dirty_agents[agent_id] = "registered"
            else:
                if a.state is AgentState.RESERVED:
                    self._cancel_offer(a, "unregistered", out)
                if a.offerable:
                    self._index_remove(a)
                a.registered = False
                self._drop_prefs_of(agent_id, "unregistered")
                self._check_empty(self._agent_queues[agent_id], out)
            self._agents_version += 1
        return self._finish_op(out)

    # ------------------------------------------------------------------ call operations
    def enqueue(self, call: Call, *, waiting_since: float | None = None) -> list[Decision]:
        """A caller joins ``call.queue``. Refused with ``QueueExit`` (full / no_agents) + ``CallFinished``
        when the queue is at ``max_length`` or, with ``join_empty=False``, nobody could ever serve it.

        ``waiting_since`` (router clock) is the time the call took its place, when earlier than now: a
        caller re-admitted after a restart, a task keeping the place of the call it came from. Its wait,
        relaxation steps and max_wait count from then, and it ranks by that time among the calls of its
        priority (callers and tasks alike; ties keep the join order).

        A task (``call.kind`` other than ``call``) is never refused (full, no agents) and never times out:
        it waits until it is served or the glue withdraws it (cancelled, expired)."""
        qrt = self._queues.get(call.queue)
        if qrt is None:
            raise UnknownQueue(call.queue)
        if call.id in self._calls:
            raise DuplicateId(f"call {call.id!r} is already in the ACD")
        now = self._advance()
        out: list[Decision] = []
        cfg = qrt.config
        task = call.is_task
        if not task:
            qrt.stats["entered"] += 1
        group = qrt.group_for(cfg.priority + call.priority, dict(call.extra_skills), task)
        entered = now if waiting_since is None else min(now, waiting_since)
        c = CallEntry(call, qrt, group, (entered, next(self._seq)), entered)
        c.step_at = tuple(entered + a for a in qrt.afters)
        if not task and cfg.max_length is not None and len(qrt.calls) - self._tasks_in_line(qrt) \
                >= cfg.max_length:
            self._refuse(c, ExitOutcome.FULL, out)
            return self._finish_op(out)
        if not task and not cfg.join_empty and not self._could_serve(qrt, group):
            self._refuse(c, ExitOutcome.NO_AGENTS, out)
            return self._finish_op(out)
        self._calls[call.id] = c
        qrt.calls[call.id] = c
        if call.preferred_agent is not None:
            p = call.preferred_agent
            why = ("the deadline has already passed" if call.preferred_until <= now  # type: ignore[operator]
                   else self._pref_dead_reason(p, qrt.name))
            if why:
                c.pref_note = f"preferred agent {p} skipped: {why}"
            else:
                c.pref_agent = p
                c.pref_note = f"preferred agent {p} until t={call.preferred_until:.3f}"
                self._timers.add(call.preferred_until, TimerKind.PREF, c.id, c.tgen)  # type: ignore[arg-type]
        self._place(c)
        self._arm_call_timers(c)
        self._dirty_calls[c] = "call_joined"
        return self._finish_op(out)

    def adopt_conversation(self, call: Call, agent_id: str, *, waiting_since: float,
                           answered_at: float) -> list[Decision]:
        """After a restart: a conversation of ours is still up on Asterisk between this caller and this
        agent. The agent goes on that call whatever its fresh state (an offer ringing it is withdrawn,
        the call requeued); the call is known as answered, so ``call_ended`` later gives wrap-up and a
        record as usual. Queue statistics are not touched (the call was counted before the restart)."""
        qrt = self._queues.get(call.queue)
        if qrt is None:
            raise UnknownQueue(call.queue)
        if call.id in self._calls:
            raise DuplicateId(f"call {call.id!r} is already in the ACD")
        a = self._agent(agent_id)
        if a.state is AgentState.ON_CALL:
            raise IllegalTransition(agent_id, a.state, AgentEvent.ADOPT)
        now = self._advance()
        out: list[Decision] = []
        if a.state is AgentState.RESERVED:
            self._cancel_offer(a, "adopted", out)
        group = qrt.group_for(qrt.config.priority + call.priority, dict(call.extra_skills), call.is_task)
        entered = min(now, waiting_since)
        c = CallEntry(call, qrt, group, (entered, next(self._seq)), entered)
        c.state = _ON_CALL
        c.agent_id = c.last_agent = agent_id
        c.answered_at = max(entered, min(now, answered_at))
        c.first_offer = c.answered_at
        c.offers = 1
        self._calls[call.id] = c
        self._transition(a, AgentEvent.ADOPT, out, call_id=call.id)
        return self._finish_op(out)

    def offer_answered(self, call_id: str) -> list[Decision]:
        """The agent answered: agent -> on_call; the call leaves the queue (stays known until ended)."""
        c = self._call(call_id)
        if c.state is not _RINGING:
            raise InvalidCallState(f"call {call_id!r} is {c.state.value}, not ringing")
        now = self._advance()
        out: list[Decision] = []
        a = self._agents[c.agent_id]  # type: ignore[index]
        self._transition(a, AgentEvent.ANSWER, out)
        self._guard.success(a.id, now)
        c.state = _ON_CALL
        c.answered_at = now
        c.timed_out = False
        c.move_due = ""
        qrt = c.qrt
        del qrt.calls[c.id]
        qrt.departures.record(now)
        if c.task:
            return self._finish_op(out)
        st = qrt.stats
        hold = now - c.entered
        st["answered"] += 1
        if hold <= qrt.config.service_level.seconds:
            st["answered_within_sl"] += 1
        avg = st["avg_hold_time"]
        st["avg_hold_time"] = hold if avg is None else (3 * avg + hold) / 4
        return self._finish_op(out)

    def offer_failed(self, call_id: str, reason: str = "no-answer", *, agent_fault: bool = True
                     ) -> list[Decision]:
        """The agent leg failed (no answer, busy, rejected...). The call goes back to its original place;
        the agent gets a miss when ``agent_fault`` and the failure is not systemic (maybe auto-paused,
        within the per-minute bound); the next agent is tried. ``agent_fault=False`` (ARI / originate
        timeouts, congestion on our side) is never a miss but counts as a failure of the system."""
        c = self._call(call_id)
        if c.state is not _RINGING:
            raise InvalidCallState(f"call {call_id!r} is {c.state.value}, not ringing")
        self._advance()
        out: list[Decision] = []
        self._fail_offer(c, out, agent_fault=agent_fault, reason=reason)
        return self._finish_op(out)

    def abandon(self, call_id: str) -> list[Decision]:
        """The caller hung up: while waiting, or while an agent rings (``CancelOffer`` for that leg)."""
        c = self._call(call_id)
        if c.state is _ON_CALL:
            return self.call_ended(call_id)
        now = self._advance()
        out: list[Decision] = []
        if c.state is _RINGING:
            self._release_agent(c, "abandoned", out)
        short = now - c.entered <= c.qrt.config.short_abandon
        self._finish(c, CallOutcome.ABANDONED, out, short=short)
        return self._finish_op(out)

    def withdraw(self, call_id: str) -> list[Decision]:
        """The flow takes a waiting/ringing call out of the queue (outcome ``overflow``)."""
        c = self._call(call_id)
        if c.state is _ON_CALL:
            raise InvalidCallState(f"call {call_id!r} is already answered")
        self._advance()
        out: list[Decision] = []
        if c.state is _RINGING:
            self._release_agent(c, "withdrawn", out)
        self._finish(c, CallOutcome.OVERFLOW, out)
        return self._finish_op(out)

    def call_ended(self, call_id: str) -> list[Decision]:
        """The conversation ended: agent -> wrap_up (``StartWrapUp``) or straight to available when the
        wrap-up time (agent override, else queue) is 0; ``CallFinished`` with outcome ``answered``."""
        c = self._call(call_id)
        if c.state is not _ON_CALL:
            return self.abandon(call_id)
        now = self._advance()
        out: list[Decision] = []
        a = self._agents[c.agent_id]  # type: ignore[index]
        self._transition(a, AgentEvent.CALL_END, out)
        self._finish(c, CallOutcome.ANSWERED, out)
        wrap = a.config.wrap_up if a.config.wrap_up is not None else c.qrt.config.wrap_up
        if wrap > 0:
            gen = next(self._offer_gen)
            self._wrap_gen[a.id] = gen
            self._timers.add(now + wrap, TimerKind.WRAP, a.id, gen)
            out.append(StartWrapUp(a.id, wrap, now + wrap))
        else:
            self._transition(a, AgentEvent.WRAP_UP_DONE, out)
        return self._finish_op(out)

    def tick(self) -> list[Decision]:
        """Process every timer due now (call it at ``next_deadline()``; extra calls are harmless)."""
        return self._finish_op([], advance=True)

    def next_deadline(self) -> float | None:
        """Clock time of the earliest pending timer, or None."""
        heap = self._timers.heap
        while heap and not self._timer_valid(heap[0][2], heap[0][3], heap[0][4]):
            heappop(heap)
        return heap[0][0] if heap else None

    # ------------------------------------------------------------------ snapshots
    def auto_pause_state(self) -> AutoPauseState:
        """Read-only: is auto-pause suspended (systemic failures), the failure share and offers in the
        window, distinct failing agents in the burst window, auto-pauses in the last minute."""
        return self._guard.state(max(self._now, self._clock()))

    def queue_names(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def agent_ids(self) -> tuple[str, ...]:
        return tuple(self._agents)

    def queue_config(self, name: str) -> QueueConfig:
        """The queue's definition (skills, relaxation, service level, media...). Raises UnknownQueue."""
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        return qrt.config

    def agent_config(self, agent_id: str) -> AgentConfig:
        """The agent's definition (skills, queues, endpoint...). Raises UnknownAgent."""
        return self._agent(agent_id).config

    def is_registered(self, agent_id: str) -> bool:
        """Whether the agent's phone is registered (without building a snapshot: asked on every
        endpoint event). Raises UnknownAgent."""
        return self._agent(agent_id).registered

    def agent_skills(self, agent_id: str) -> Mapping[str, int]:
        """The agent's effective skills (languages folded in as ``lang:<code>``); read-only."""
        return self._agent(agent_id).skills

    def queue_members(self, name: str) -> tuple[str, ...]:
        """Ids of the agents who serve ``name`` (whatever their state), sorted. Raises UnknownQueue."""
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        return tuple(sorted(qrt.members))

    def call_snapshot(self, call_id: str) -> CallSnapshot:
        c = self._call(call_id)
        now = max(self._now, self._clock())
        pos = None
        if c.state is not _ON_CALL:
            pos = 1 + sum(1 for o in c.qrt.calls.values() if o.key < c.key)
        return self._call_view(c, now, pos)

    def queue_estimate(self, name: str) -> float | None:
        """Estimated seconds until a call joining ``name`` now is answered (behind every call in its line),
        or None without data (``estimate``)."""
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        now = max(self._now, self._clock())
        return qrt.departures.estimate(len(qrt.calls) + 1, now)

    def queue_snapshot(self, name: str) -> QueueSnapshot:
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        now = max(self._now, self._clock())
        ordered = sorted(qrt.calls.values(), key=lambda c: c.key)
        calls = tuple(self._call_view(c, now, i + 1) for i, c in enumerate(ordered))
        by_state = {s.value: 0 for s in AgentState}
        paused: dict[str, int] = {}
        unreg = 0
        for aid in sorted(qrt.members):
            a = self._agents[aid]
            by_state[a.state.value] += 1
            if a.state is AgentState.PAUSED:
                paused[a.pause_reason] = paused.get(a.pause_reason, 0) + 1  # type: ignore[index]
            unreg += not a.registered
        ringing = sum(1 for c in ordered if c.state is _RINGING)
        sl = qrt.config.service_level
        return QueueSnapshot(
            name=name, calls=calls, waiting=len(ordered) - ringing, ringing=ringing,
            longest_wait=max((now - c.entered for c in ordered), default=0.0), agents_by_state=by_state,
            paused_by_reason=paused, unregistered=unreg, stats=QueueStats(**qrt.stats),
            service_level_target=(sl.percent, sl.seconds))

    def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        a = self._agent(agent_id)
        now = max(self._now, self._clock())
        return AgentSnapshot(
            agent_id=a.id, name=a.config.name, state=a.state, pause_reason=a.pause_reason,
            registered=a.registered, misses=a.misses, state_for=now - a.state_since,
            idle_for=now - a.idle_since if a.state is AgentState.AVAILABLE else None, call_id=a.call_id,
            queues=tuple(sorted(self._agent_queues[agent_id])), resting=a.resting)

    def agents_snapshot(self) -> tuple[AgentSnapshot, ...]:
        return tuple(self.agent_snapshot(aid) for aid in sorted(self._agents))

    def is_eligible(self, agent_id: str, call_id: str) -> bool:
        """Would ``agent_id`` be eligible for the *waiting* call now (for an API "why not?" and tests)."""
        a = self._agent(agent_id)
        c = self._call(call_id)
        if c.state is not _WAITING or not a.offerable or c.qrt.name not in self._agent_queues[agent_id]:
            return False
        if c.pref_agent is not None and c.pref_agent != agent_id:
            return False
        now = max(self._now, self._clock())
        return admits(c.group.reqs(bisect_right(c.step_at, now)), a.skills)

    def _call_view(self, c: CallEntry, now: float, pos: int | None) -> CallSnapshot:
        k = bisect_right(c.step_at, now)
        wait = now - c.entered
        return CallSnapshot(
            call_id=c.id, queue=c.qrt.name, state=c.state, position=pos, wait=wait, priority=c.prio,
            agent_id=c.agent_id, step=k, step_description=c.qrt.reqs[k].description,
            preferred_agent=c.pref_agent, offers=c.offers, rona_count=c.rona,
            estimated_wait=c.qrt.departures.estimate(pos, now), overflowed_from=c.moved_from,
            note=self._waiting_note(c, now) if c.state is _WAITING else None, kind=c.call.kind.value)

    # ------------------------------------------------------------------ "why not this agent?" (``why_not``)
    def call_requirement(self, call_id: str) -> tuple[tuple[tuple[tuple[str, int], ...], ...],
                                                      tuple[tuple[str, float], ...], frozenset[str]]:
        """What the call asks of an agent now: its requirement groups at the relaxation step in force (its
        own skills merged; an agent qualifies with any group), the optional skills that rank the eligible
        agents, and the agents that already missed it (ranked after the others). Raises UnknownCall."""
        c = self._call(call_id)
        k = bisect_right(c.step_at, max(self._now, self._clock()))
        optional = c.qrt.reqs[k].optional if c.optional is None else c.optional[k]
        return c.group.reqs(k), optional, frozenset(c.missed_by)

    def task_slots(self, name: str) -> tuple[int, int]:
        """(tasks of queue ``name`` ringing an agent or being worked now, how many may be at once:
        ``task_agents_percent`` of its logged-in, registered members, at least one). Raises UnknownQueue."""
        qrt = self._queues.get(name)
        if qrt is None:
            raise UnknownQueue(name)
        return len(qrt.engaged_tasks), self._task_cap(qrt)
