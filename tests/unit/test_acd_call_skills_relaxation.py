"""How the queue's, the flow node's and the CRM's required skills combine under relaxation (fake clock).

Rule (``ivr.acd.policy``): the call's own required skills (flow ``required_skills`` + CRM hints, in
``Call.extra_skills``) join the queue's main group and the queue's steps relax them like the queue's own
(``min_proficiency`` caps, ``drop_skills`` drops, an alternative replaces the whole main group); the call's
language skills ``lang:*`` are hard: in every group, never capped or dropped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from ivr.acd import (
    AgentConfig,
    Call,
    ExitOutcome,
    Offer,
    QueueConfig,
    QueueExit,
    RelaxationStep,
    Router,
    queue_from_dict,
    requirement_at,
)

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def offers(ds) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def sample_technical() -> QueueConfig:
    """The shipped ``technical`` queue (config/ivr.yaml): 30 s drop networking, 90 s cap 1, 180 s alt support 3."""
    cfg = yaml.safe_load((ROOT / "config" / "ivr.yaml").read_text())
    [q] = [q for q in cfg["queues"] if q["name"] == "technical"]
    return queue_from_dict(q)


def router(*agents: AgentConfig, queue: QueueConfig | None = None) -> tuple[Router, Clock]:
    """The sample queue without its no_agents_grace: these callers wait for an agent who does not exist
    yet (the grace would take them out at 60 s; tests/unit/test_acd_overflow.py covers it)."""
    clock = Clock()
    r = Router([queue or dataclasses.replace(sample_technical(), no_agents_grace=None)], clock)
    for a in agents:
        r.add_agent(a)
        r.login(a.id)
    return r, clock


def run_until(r: Router, clock: Clock, t: float) -> list[tuple[str, str]]:
    """Tick at every deadline up to ``t`` (as the adapter does); the offers made on the way."""
    got = []
    while (nd := r.next_deadline()) is not None and nd <= t:
        clock.t = nd
        got += offers(r.tick())
    clock.t = t
    return got + offers(r.tick())


def test_support_flow_caller_needing_technical_2_gets_the_level_1_agent_at_90_s():
    # flows/support.yaml's technical node: required_skills {technical: 2}; only a technical 1 agent is idle
    r, clock = router(AgentConfig("junior", skills={"technical": 1}))
    assert offers(r.enqueue(Call("c1", "technical", extra_skills={"technical": 2}))) == []
    assert run_until(r, clock, 89.99) == []
    clock.t = 90.0
    assert offers(r.tick()) == [("c1", "junior")]


def test_the_flow_level_is_capped_even_above_the_queues_own():
    r, clock = router(AgentConfig("junior", skills={"technical": 1}))
    r.enqueue(Call("c1", "technical", extra_skills={"technical": 5}))
    assert run_until(r, clock, 89) == []
    assert run_until(r, clock, 90) == [("c1", "junior")]


def test_drop_skills_drops_a_skill_whoever_required_it():
    # the CRM/flow asks networking 3 too; the queue drops networking at 30 s
    r, clock = router(AgentConfig("tech", skills={"technical": 2}))
    r.enqueue(Call("c1", "technical", extra_skills={"technical": 2, "networking": 3}))
    assert run_until(r, clock, 29.9) == []
    assert run_until(r, clock, 30) == [("c1", "tech")]


def test_a_call_skill_the_queue_never_relaxes_stays_until_the_cap():
    # legacy is not the queue's: no step drops it; the 90 s cap lowers it to 1, never below
    r, clock = router(AgentConfig("tech", skills={"technical": 4}))
    r.enqueue(Call("c1", "technical", extra_skills={"legacy": 2}))
    assert run_until(r, clock, 299) == []  # (the queue's max_wait is 300 s)
    r.add_agent(AgentConfig("old", skills={"technical": 1, "legacy": 1}))
    assert offers(r.login("old")) == [("c1", "old")]


def test_an_alternative_replaces_the_main_group_call_skills_included():
    r, clock = router(AgentConfig("helper", skills={"support": 3}))
    r.enqueue(Call("c1", "technical", extra_skills={"technical": 2, "tier2": 1}))
    assert run_until(r, clock, 179.9) == []
    assert run_until(r, clock, 180) == [("c1", "helper")]


def test_languages_are_hard_never_relaxed_not_even_by_an_alternative():
    r, clock = router(AgentConfig("en", skills={"technical": 5}, languages=frozenset({"en"})),
                      AgentConfig("alt", skills={"support": 5}, languages=frozenset({"en"})))
    r.enqueue(Call("fr-caller", "technical", extra_skills={"technical": 2, "lang:fr": 1}))
    assert run_until(r, clock, 299) == []  # every step applied: still no English-only agent
    r.add_agent(AgentConfig("fr-alt", skills={"support": 3}, languages=frozenset({"fr"})))
    assert offers(r.login("fr-alt")) == [("fr-caller", "fr-alt")]  # the alternative, with French


def test_hard_language_level_is_not_capped():
    r, clock = router(AgentConfig("fr1", skills={"technical": 3, "lang:fr": 1}))
    r.enqueue(Call("c1", "technical", extra_skills={"lang:fr": 3}))
    assert run_until(r, clock, 299) == []
    r.add_agent(AgentConfig("fr3", skills={"technical": 1, "lang:fr": 3}))
    assert offers(r.login("fr3")) == [("c1", "fr3")]


def test_a_queue_without_steps_relaxes_nothing():
    q = QueueConfig("plain", required_skills={"technical": 1})
    r, clock = router(AgentConfig("junior", skills={"technical": 1}), queue=q)
    r.enqueue(Call("c1", "plain", extra_skills={"technical": 2}))
    assert run_until(r, clock, 10_000) == []


def test_join_empty_counts_agents_who_could_serve_after_relaxing_the_calls_skills():
    q = QueueConfig("strict", required_skills={"technical": 1}, join_empty=False,
                    relaxation=(RelaxationStep(60, min_proficiency=1),))
    r, _ = router(AgentConfig("junior", skills={"technical": 1}), queue=q)
    ds = r.enqueue(Call("c1", "strict", extra_skills={"technical": 3}))
    assert [d for d in ds if isinstance(d, QueueExit)] == []  # junior can serve it after 60 s
    ds = r.enqueue(Call("c2", "strict", extra_skills={"technical": 3, "lang:fr": 1}))
    assert [d.outcome for d in ds if isinstance(d, QueueExit)] == [ExitOutcome.NO_AGENTS]


def test_requirement_admits_applies_the_rule_at_any_wait():
    q = sample_technical()
    need = {"technical": 2, "lang:fr": 1}
    assert not requirement_at(q, 0).admits({"technical": 1, "lang:fr": 5}, need)
    assert requirement_at(q, 90).admits({"technical": 1, "lang:fr": 5}, need)
    assert not requirement_at(q, float("inf")).admits({"technical": 5, "support": 5, "lang:en": 5}, need)
    assert requirement_at(q, float("inf")).admits({"support": 3, "lang:fr": 1}, need)
