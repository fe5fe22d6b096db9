"""The router's kept rankings (`ivr/acd/ranking.py`): every choice equals scoring every available agent.

`tests/conftest.py` turns on `Engine.verify_rankings` for every test, so each choice read from a ranking is
compared with the full scan (agent, top candidates, number eligible) inside the router; here random walks
drive the cases that change a ranking: agents coming and going, skills edited live, relaxation steps,
misses, many profiles (more than a queue keeps)."""

from __future__ import annotations

import random

import pytest

from ivr.acd import AcdError, AgentConfig, Call, Offer, QueueConfig, RelaxationStep, Router
from ivr.acd.engine import Engine
from ivr.acd import ranking
from ivr.acd.ranking import MAX_PROFILES, Ranking

SKILLS = ["support", "billing", "sales", "lang:fr", "lang:de"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _skills(rng: random.Random) -> dict[str, int]:
    return {s: rng.randint(1, 5) for s in SKILLS if rng.random() < 0.6}


def test_verification_is_on_for_the_test_suite():
    assert Engine.verify_rankings


def test_best_puts_agents_who_missed_the_call_last_and_stops_at_the_limit():
    r = Ranking(((("support", 1),),), (("billing", 1.0),))
    r.add("a", {"support": 2, "billing": 3}, 10.0)      # score 5
    r.add("b", {"support": 3, "billing": 2}, 5.0)       # score 5, idle longer
    r.add("c", {"support": 1}, 1.0)                     # score 1
    r.add("d", {"billing": 5}, 0.0)                     # not eligible
    assert [e[3] for e in r.best(set(), 5)] == ["b", "a", "c"]
    assert [e[3] for e in r.best({"b"}, 5)] == ["a", "c", "b"]
    assert r.best({"b"}, 5)[2] == (True, -5.0, 5.0, "b")
    assert [e[3] for e in r.best(set(), 2)] == ["b", "a"]
    r.add("a", {"support": 1}, 20.0)                    # re-added: its old entry goes
    assert [e[3] for e in r.best(set(), 5)] == ["b", "c", "a"]
    r.remove("b")
    r.remove("zz")
    assert [e[3] for e in r.best(set(), 5)] == ["c", "a"] and set(r.keys) == {"a", "c"}


@pytest.fixture
def rank_always(monkeypatch):
    """Rankings for every profile from its first use, however few agents are available."""
    monkeypatch.setattr(ranking, "MIN_AVAILABLE", 0)
    monkeypatch.setattr(ranking, "MIN_USES", 1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thresholds", ["always", "default"])
def test_random_walks_choose_exactly_as_the_full_scan(seed, thresholds, request):
    if thresholds == "always":
        request.getfixturevalue("rank_always")
    rng = random.Random(seed)
    clock = Clock()
    queues = [
        QueueConfig("q1", required_skills={"support": 2}, optional_skills={"billing": 1.0, "sales": 0.5},
                    relaxation=(RelaxationStep(20, min_proficiency=1),
                                RelaxationStep(40, add_alternative={"sales": 3})),
                    ring_timeout=15, wrap_up=3, max_misses=3),
        QueueConfig("q2", required_skills={"billing": 1}, optional_skills={"lang:fr": 2.0}, ring_timeout=10),
    ]
    r = Router(queues, clock)
    read = 0
    get = ranking.Rankings.get

    def counting_get(self, *a):
        nonlocal read
        read += 1
        return get(self, *a)

    ranking.Rankings.get = counting_get  # type: ignore[method-assign]
    request.addfinalizer(lambda: setattr(ranking.Rankings, "get", get))
    agents = [f"a{i}" for i in range(40 if thresholds == "always" else 160)]
    for aid in agents:
        r.add_agent(AgentConfig(aid, skills=_skills(rng),
                                queues=None if rng.random() < 0.7 else frozenset({"q1"})))
        r.login(aid)
    ringing: dict[str, str] = {}       # call -> agent
    talking: set[str] = set()
    offers = 0
    n = 0

    def absorb(ds):
        nonlocal offers
        for d in ds:
            if isinstance(d, Offer):
                ringing[d.call_id] = d.agent_id
                offers += 1

    for _ in range(2500):
        clock.t += rng.choice([0, 0.1, 1, 3, 7])
        op = rng.random()
        try:
            if op < 0.3:
                n += 1
                extra = {rng.choice(SKILLS[2:]): rng.randint(1, 3)} if rng.random() < 0.3 else {}
                absorb(r.enqueue(Call(f"c{n}", rng.choice(["q1", "q2"]), priority=rng.randint(0, 2),
                                      extra_skills=extra)))
            elif op < 0.5 and ringing:
                cid = rng.choice(sorted(ringing))
                del ringing[cid]
                if rng.random() < 0.7:
                    absorb(r.offer_answered(cid))
                    talking.add(cid)
                else:
                    absorb(r.offer_failed(cid, "no-answer", agent_fault=rng.random() < 0.5))
            elif op < 0.65 and talking:
                cid = rng.choice(sorted(talking))
                talking.discard(cid)
                absorb(r.call_ended(cid))
            elif op < 0.72:
                aid = rng.choice(agents)
                absorb(r.update_agent(AgentConfig(aid, skills=_skills(rng))))
            elif op < 0.8:
                aid = rng.choice(agents)
                absorb(rng.choice([lambda: r.pause(aid, "break"), lambda: r.unpause(aid),
                                   lambda: r.wrap_up_done(aid)])())
            elif op < 0.85:
                aid = rng.choice(agents)
                absorb(r.set_registered(aid, rng.random() < 0.6))
            else:
                absorb(r.tick())
        except AcdError:
            pass                  # e.g. answering an offer the router withdrew meanwhile (ring timeout)
    assert offers > 300                                     # the walk really routed
    assert read > 100                                      # and read rankings doing it
    assert all(len(q.ranks.by_profile) <= MAX_PROFILES for q in r._queues.values())


def test_more_profiles_than_a_queue_keeps_evict_the_least_recently_used(rank_always):
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"support": 1}, optional_skills={"billing": 1.0})], clock)
    for i in range(20):
        r.add_agent(AgentConfig(f"a{i}", skills={"support": 1 + i % 5, f"x{i % 12}": 1 + i % 3, "billing": 1 + i % 4}))
        r.login(f"a{i}")
    for i in range(12):                     # each extra skill is its own requirement profile
        ds = r.enqueue(Call(f"c{i}", "q", extra_skills={f"x{i}": 1}))
        assert [d for d in ds if isinstance(d, Offer)], i
    assert len(r._queues["q"].ranks.by_profile) == MAX_PROFILES


def test_a_busy_queue_keeps_no_ranking_and_a_profile_earns_one_by_use():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"support": 1}, optional_skills={"billing": 1.0},
                            wrap_up=0)], clock)
    n = ranking.MIN_AVAILABLE + 2
    for i in range(n):
        r.add_agent(AgentConfig(f"a{i}", skills={"support": 1 + i % 5, "billing": 1 + i % 3}))
        r.login(f"a{i}")
    ranks = r._queues["q"].ranks
    for i in range(ranking.MIN_USES - 1):
        r.enqueue(Call(f"c{i}", "q"))
        assert not ranks.by_profile                    # scanned until the profile is asked for often
    r.enqueue(Call("c-next", "q"))
    assert len(ranks.by_profile) == 1
    # agents taken until fewer than MIN_AVAILABLE are free: the ranking goes, its upkeep with it
    for i in range(3):
        r.enqueue(Call(f"d{i}", "q"))
    assert not ranks.by_profile
