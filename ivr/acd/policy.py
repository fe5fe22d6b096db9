"""Eligibility and fit score: the pure policy the router applies.

Requirements of a call are a function of (queue, wait time, the call's extra skills) only:

* step ``k`` = number of relaxation steps whose ``after`` <= wait;
* skill groups: the *main* group (every required skill not dropped by steps <= k, at level
  ``min(max(level, queue.min_proficiency), cap)`` where ``cap`` is the lowest ``min_proficiency`` set by
  steps <= k) followed by each alternative added by steps <= k (levels capped the same way, dropped skills
  removed). An agent qualifies if it satisfies *any* group;
* the call's own required skills (``Call.extra_skills``: the flow node's ``required_skills`` merged with the
  CRM hints' skills) extend the queue's required skills, i.e. join the *main* group (the stricter level
  wins), and are relaxed by the *queue's* steps like the queue's own: from step ``k`` on each level is
  capped at ``cap`` and a skill dropped by a step <= k is dropped whoever required it; an alternative
  added by a step replaces the whole main group, the call's skills included (``merge_call``). The queue's
  base ``min_proficiency`` floor is the queue's statement about its own skills, not applied to the call's;
* except **hard** skills (``is_hard``): the call's language skills ``lang:*`` are ANDed into *every* group
  and never capped or dropped (a French-only caller must not reach an English-only agent: relaxation
  trades match quality for wait, and a caller who cannot be understood gets no service at all). A
  queue's *own* ``lang:*`` requirement follows the queue's steps as written (its author chose them);
* a skill the agent lacks counts as proficiency 0.

Every step removes constraints, lowers levels or adds a group, so the eligible set of a call only grows
with its wait (monotone), with or without the call's skills; ``queue_from_dict`` rejects steps that would
tighten.

Fit score (higher is better), computed on the first group (main first) that the agent satisfies::

    score = sum(agent level of s for s in group incl. extra skills)
          + sum(weight(s) * agent level of s for s in optional skills not dropped)

so agents stronger on what the call needs win, and optional skills break ties in proportion to weight.
A call's own optional skills (``Call.optional_skills``) join the queue's at every step (``merge_optional``:
the higher weight of a skill wins; relaxation never drops a call's own optional skill).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass

from .agent import LANG_PREFIX, SKILL_MAX
from .queue import QueueConfig

SkillGroup = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Requirement:
    """Requirements of a queue at one relaxation step (before per-call extra skills)."""

    queue: str
    step: int  # 0 = no relaxation applied
    groups: tuple[SkillGroup, ...]  # main group first, then alternatives
    optional: tuple[tuple[str, float], ...]
    description: str  # of the last applied step ("" at step 0)
    cap: int | None = None  # lowest min_proficiency of the applied steps (None: no cap)
    dropped: frozenset[str] = frozenset()  # skills dropped by the applied steps
    #: every alternative added so far (capped, dropped), also one equal to the main group (left out of
    #: ``groups`` as redundant there, but not once a call's own skills extend the main group)
    alternatives: tuple[SkillGroup, ...] = ()

    def with_call(self, extra: Mapping[str, int] | None) -> tuple[SkillGroup, ...]:
        """The groups at this step for a call with these required skills (see ``merge_call``)."""
        return merge_call(self, extra)

    def admits(self, skills: Mapping[str, int], extra: Mapping[str, int] | None = None) -> bool:
        return admits(merge_call(self, extra), skills)


def compile_requirements(q: QueueConfig) -> tuple[Requirement, ...]:
    """One ``Requirement`` per step index 0..len(q.relaxation)."""
    dropped: set[str] = set()
    cap: int | None = None
    alts: list[dict[str, int]] = []
    out = []
    for k in range(len(q.relaxation) + 1):
        desc = ""
        if k:
            st = q.relaxation[k - 1]
            dropped |= st.drop_skills
            if st.min_proficiency is not None:
                cap = st.min_proficiency if cap is None else min(cap, st.min_proficiency)
            if st.add_alternative:
                alts.append(dict(st.add_alternative))
            desc = f"step {k} ({st.describe()})"

        top = SKILL_MAX if cap is None else cap
        main = tuple(sorted((s, min(max(v, q.min_proficiency), top)) for s, v in q.required_skills.items()
                            if s not in dropped))
        groups = [main]
        alternatives: list[SkillGroup] = []
        for a in alts:
            g = tuple(sorted((s, min(v, top)) for s, v in a.items() if s not in dropped))
            if g not in alternatives:
                alternatives.append(g)
            if g not in groups:
                groups.append(g)
        optional = tuple(sorted((s, float(w)) for s, w in q.optional_skills.items() if s not in dropped))
        out.append(Requirement(q.name, k, tuple(groups), optional, desc, cap, frozenset(dropped),
                               tuple(alternatives)))
    return tuple(out)


def step_afters(q: QueueConfig) -> tuple[float, ...]:
    return tuple(st.after for st in q.relaxation)


def step_at(afters: tuple[float, ...], wait: float) -> int:
    """Relaxation step index in force after ``wait`` seconds (a step applies from exactly ``after``)."""
    return bisect_right(afters, wait)


def requirement_at(q: QueueConfig, wait: float) -> Requirement:
    """Convenience (not the hot path): the requirement of queue ``q`` for a call that waited ``wait`` s."""
    return compile_requirements(q)[step_at(step_afters(q), wait)]


def is_hard(skill: str) -> bool:
    """A call requirement no relaxation step touches: a language (``lang:*``)."""
    return skill.startswith(LANG_PREFIX)


def relax_call_skills(req: Requirement, extra: Mapping[str, int] | None) -> tuple[dict[str, int], dict[str, int]]:
    """The call's required skills at ``req``'s step as (soft, hard): soft ones capped and dropped like the
    queue's, hard ones (languages) as given."""
    soft: dict[str, int] = {}
    hard: dict[str, int] = {}
    if extra:
        top = SKILL_MAX if req.cap is None else req.cap
        for s, lv in extra.items():
            if is_hard(s):
                hard[s] = lv
            elif s not in req.dropped:
                soft[s] = min(lv, top)
    return soft, hard


def merge_call(req: Requirement, extra: Mapping[str, int] | None) -> tuple[SkillGroup, ...]:
    """``req``'s groups for a call: its relaxed soft skills ANDed into the main group, its hard skills into
    every group (the stricter level wins)."""
    soft, hard = relax_call_skills(req, extra)
    groups = req.groups
    if soft:
        main = merge_extra(groups[:1], soft)[0]
        out = [main]
        for g in req.alternatives:
            if g not in out:
                out.append(g)
        groups = tuple(out)
    return merge_extra(groups, hard)


def merge_extra(groups: tuple[SkillGroup, ...], extra: Mapping[str, int] | None) -> tuple[SkillGroup, ...]:
    """AND ``extra`` (as given, no relaxation) into every group (the stricter level wins)."""
    if not extra:
        return groups
    out = []
    for g in groups:
        d = dict(g)
        for s, lv in extra.items():
            if d.get(s, 0) < lv:
                d[s] = lv
        out.append(tuple(sorted(d.items())))
    return tuple(out)


def admits(groups: tuple[SkillGroup, ...], skills: Mapping[str, int]) -> bool:
    """True if ``skills`` satisfy at least one group (hot path: plain loops, early exit)."""
    get = skills.get
    for g in groups:
        for s, lv in g:
            if get(s, 0) < lv:
                break
        else:
            return True
    return False


def merge_optional(optional: tuple[tuple[str, float], ...], extra: Mapping[str, float]
                   ) -> tuple[tuple[str, float], ...]:
    """A queue step's optional skills combined with a call's: the higher weight of each skill."""
    if not extra:
        return optional
    merged = dict(optional)
    for s, w in extra.items():
        merged[s] = max(float(w), merged.get(s, 0.0))
    return tuple(sorted(merged.items()))


def fit_score(groups: tuple[SkillGroup, ...], optional: tuple[tuple[str, float], ...],
              skills: Mapping[str, int]) -> float | None:
    """Score per the module docstring, or None if the agent satisfies no group."""
    get = skills.get
    for g in groups:
        total = 0.0
        for s, lv in g:
            have = get(s, 0)
            if have < lv:
                break
            total += have
        else:
            for s, w in optional:
                total += w * get(s, 0)
            return total
    return None
