"""Internal mechanics of the router (not public API), a mixin of ``engine.Engine``: who serves whom.

* The best call for an agent who became available: the most senior waiting call it is eligible for,
  checking only the heads of its queues' groups and its pinned calls (``index`` says why heads suffice).
* The best agent for a waiting call: read from the queue's ranking of the call's requirement profile
  (``ranking``) where one is kept, else by scoring every available eligible agent (``_scan_best``),
  ranked by (missed this call, fit score, longest idle, id); the explanation's reason says which part
  of that order decided.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from heapq import nsmallest

from . import ranking as _ranking
from .agent import Agent
from .decisions import Explanation
from .index import CallEntry, QueueRuntime
from .policy import admits, fit_score


class Matching:
    """The best call for an agent and the best agent for a call; the state below is the engine's."""

    _queues: dict[str, QueueRuntime]
    _agents: dict[str, Agent]
    _agent_queues: dict[str, set[str]]
    _avail_by_skill: dict[str, set[str]]
    _pinned: dict[str, list[CallEntry]]
    _now: float
    _tasks_open: Callable[[QueueRuntime], bool]

    def _best_call_for(self, a: Agent) -> CallEntry | None:
        """Most senior waiting call ``a`` is eligible for, across all its queues (group heads + pinned)."""
        now = self._now
        skills = a.skills
        get = skills.get
        best: CallEntry | None = None
        bkey = None
        queues = self._queues
        for qn in self._agent_queues[a.id]:
            qrt = queues[qn]
            active = qrt.active
            if not active:
                continue
            tasks_ok: bool | None = None
            for g in active.values():
                head = g.calls[0]
                if bkey is not None and head.key >= bkey:
                    continue  # cannot beat the best found so far: skip the skill check
                if g.task:
                    if tasks_ok is None:
                        tasks_ok = self._tasks_open(qrt)
                    if not tasks_ok:
                        continue
                # inline of policy.admits (hot path)
                for grp in g._reqs[bisect_right(head.step_at, now)]:
                    for s, lv in grp:
                        if get(s, 0) < lv:
                            break
                    else:
                        best, bkey = head, head.key
                        break
        pinned = self._pinned.get(a.id)
        if pinned:
            for c in pinned:  # sorted by seniority: the first eligible one is the best
                if bkey is not None and c.key >= bkey:
                    break
                if c.task and not self._tasks_open(c.qrt):
                    continue
                if admits(c.group.reqs(bisect_right(c.step_at, now)), skills):
                    best, bkey = c, c.key
                    break
        return best

    #: tests set it: every choice from a ranking is checked against the full scan
    verify_rankings = False

    def _best_agent_for(self, c: CallEntry):
        """Best eligible available agent for waiting call ``c``: (agent, ranked top keys, n, step)."""
        qrt = c.qrt
        qavail = qrt.avail
        if not qavail or (c.task and not self._tasks_open(qrt)):
            return None
        k = bisect_right(c.step_at, self._now)
        groups = c.group._reqs[k]
        if c.pref_agent is not None or c.optional is not None:
            return self._scan_best(c, groups, k)
        ranks = qrt.ranks
        if len(qavail) < _ranking.MIN_AVAILABLE:
            if ranks.by_profile:
                ranks.clear()               # few idle agents: scanning them is cheaper than keeping rankings
            return self._scan_best(c, groups, k)
        profile = (groups, qrt.reqs[k].optional)
        if not ranks.wanted(profile):
            return self._scan_best(c, groups, k)
        agents = self._agents
        pool = self._pool(qavail, groups)
        r = ranks.get(profile, ((aid, agents[aid].skills, agents[aid].idle_since) for aid in pool if aid in qavail))
        n = len(r.entries)
        res = (agents[(top := r.best(c.missed_by, Explanation.MAX_CANDIDATES))[0][3]], top, n, k) if n else None
        if self.verify_rankings:
            scan = self._scan_best(c, groups, k)
            assert (res is None and scan is None) or (
                res is not None and scan is not None and res[0] is scan[0] and res[2:] == scan[2:]
                and res[1] == scan[1][:Explanation.MAX_CANDIDATES]), (res, scan)
        return res

    def _pool(self, qavail: set[str], groups: tuple) -> Iterable[str]:
        """Available agents that may hold a requirement group: the smallest of "available members of the
        queue" and "available agents holding skill s" per group (a superset of the eligible ones)."""
        pools = []
        abs_ = self._avail_by_skill
        for grp in groups:
            best = qavail
            for s, _ in grp:
                p = abs_.get(s)
                if not p:
                    best = None
                    break
                if len(p) < len(best):
                    best = p
            if best is qavail:
                return qavail  # filtering by queue membership makes any union a subset of it
            if best is not None:
                pools.append(best)
        if not pools:
            return ()
        return pools[0] if len(pools) == 1 else set().union(*pools)

    def _scan_best(self, c: CallEntry, groups: tuple, k: int):
        """``_best_agent_for`` by scoring every available eligible agent: a preferred agent, a call's own
        optional skills, a queue with few available agents, a profile without a ranking (yet), and the
        check of the rankings."""
        qrt = c.qrt
        qavail = qrt.avail
        if c.pref_agent is not None:
            pool: Iterable[str] = (c.pref_agent,)
        else:
            pool = self._pool(qavail, groups)
        optional = qrt.reqs[k].optional if c.optional is None else c.optional[k]
        agents = self._agents
        missed = c.missed_by
        ranked = []
        for aid in pool:
            if aid not in qavail:
                continue
            a = agents[aid]
            sc = fit_score(groups, optional, a.skills)
            if sc is not None:
                ranked.append((aid in missed, -sc, a.idle_since, aid))
        if not ranked:
            return None
        n = len(ranked)
        top = sorted(ranked) if n <= 16 else nsmallest(Explanation.MAX_CANDIDATES, ranked)
        return agents[top[0][3]], top, n, k

    @staticmethod
    def _reason(c: CallEntry, top: list) -> str:
        if c.pref_agent is not None:
            return "preferred agent"
        if len(top) == 1:
            return "only eligible agent"
        w, r = top[0], top[1]
        if w[0] != r[0]:
            return "the others already missed this call"
        if w[1] != r[1]:
            return f"best skill fit ({-w[1]:g} > {-r[1]:g})"
        if w[2] != r[2]:
            return "longest idle among equal fit"
        return "agent id tiebreak (equal fit and idle time)"
