"""Available agents of a queue kept in ranking order for one requirement profile (internal to the router).

Choosing the best agent for a call ranks every available eligible agent by (fit score, longest idle,
id). Scoring them all on every arriving call costs time linear in the idle agents (~300 scored per call in
`bench/compare.py`, the router's largest share of the app's CPU). But an agent's score for a profile
(the call's requirement groups at its relaxation step, and the optional skills) depends only on the
agent's skills, and ``idle_since`` only changes while the agent is not available. So a queue keeps, per
profile in use, its available eligible agents sorted by ``(-score, idle_since, id)``: kept up to date when
an agent becomes available or stops being available (the engine's ``_index_add`` / ``_index_remove``, the
same places as the queue's ``avail`` set), and read from the front, so the best few cost O(few).

Keeping a ranking costs a score and an insert for every agent that becomes available, so the engine keeps
them only where reading them beats scanning: while the queue has at least ``MIN_AVAILABLE`` available
agents (a busy queue drops them: its few idle agents are scanned), for a profile asked for
``MIN_USES`` times since it last had a ranking, at most ``MAX_PROFILES`` per queue (least recently used
dropped). Calls with their own optional skills or a preferred agent are always scanned.
`tests/unit/test_acd_ranking.py` checks, over random operations, that every choice equals the full scan's.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping

from .policy import SkillGroup, fit_score

MAX_PROFILES = 4
MIN_AVAILABLE = 48
MIN_USES = 3

Profile = tuple[tuple[SkillGroup, ...], tuple[tuple[str, float], ...]]


class Ranking:
    """Available agents eligible for one profile, best first: entries ``(-score, idle_since, agent id)``."""

    __slots__ = ("entries", "groups", "keys", "optional")

    def __init__(self, groups: tuple[SkillGroup, ...], optional: tuple[tuple[str, float], ...]) -> None:
        self.groups = groups
        self.optional = optional
        self.entries: list[tuple[float, float, str]] = []
        self.keys: dict[str, tuple[float, float, str]] = {}

    def _key(self, aid: str, skills: Mapping[str, int], idle_since: float) -> tuple[float, float, str] | None:
        """The agent's entry, kept in ``keys``; None (and nothing kept) when it is not eligible."""
        sc = fit_score(self.groups, self.optional, skills)
        if sc is None:
            return None
        key = self.keys[aid] = (-sc, idle_since, aid)
        return key

    def add(self, aid: str, skills: Mapping[str, int], idle_since: float) -> None:
        self.remove(aid)
        key = self._key(aid, skills, idle_since)
        if key is not None:
            insort(self.entries, key)

    def remove(self, aid: str) -> None:
        key = self.keys.pop(aid, None)
        if key is not None:
            del self.entries[bisect_left(self.entries, key)]

    def best(self, missed: frozenset[str] | set[str], limit: int) -> list[tuple[bool, float, float, str]]:
        """The first ``limit`` of all entries ordered as the full scan orders them: agents who already
        missed this call after all others."""
        top: list[tuple[bool, float, float, str]] = []
        later: list[tuple[bool, float, float, str]] = []
        for e in self.entries:
            if e[2] in missed:
                later.append((True, *e))
                continue
            top.append((False, *e))
            if len(top) >= limit:
                return top
        return (top + later)[:limit]


class Rankings:
    """One queue's rankings by profile, least recently used first."""

    __slots__ = ("by_profile", "uses")

    def __init__(self) -> None:
        self.by_profile: dict[Profile, Ranking] = {}
        self.uses: dict[Profile, int] = {}

    def wanted(self, profile: Profile) -> bool:
        """Count a use of ``profile``: True when it has a ranking or has earned one (``get`` builds it)."""
        if profile in self.by_profile:
            return True
        n = self.uses.get(profile, 0) + 1
        if n < MIN_USES:
            if len(self.uses) > 64:
                self.uses.clear()           # many one-off profiles: forget them
            self.uses[profile] = n
            return False
        self.uses.pop(profile, None)
        return True

    def get(self, profile: Profile, available: Iterable[tuple[str, Mapping[str, int], float]]) -> Ranking:
        """The ranking of ``profile``, built from ``available`` (id, skills, idle_since: at least every
        available agent eligible for it) on first use."""
        r = self.by_profile.pop(profile, None)
        if r is None:
            r = Ranking(*profile)
            keys = (r._key(aid, skills, idle) for aid, skills, idle in available)
            r.entries = sorted(k for k in keys if k is not None)
            if len(self.by_profile) >= MAX_PROFILES:
                del self.by_profile[next(iter(self.by_profile))]
        self.by_profile[profile] = r          # most recently used last
        return r

    def add(self, aid: str, skills: Mapping[str, int], idle_since: float) -> None:
        for r in self.by_profile.values():
            r.add(aid, skills, idle_since)

    def remove(self, aid: str) -> None:
        for r in self.by_profile.values():
            r.remove(aid)

    def clear(self) -> None:
        self.by_profile.clear()
        self.uses.clear()
