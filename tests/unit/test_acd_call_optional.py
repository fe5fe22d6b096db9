"""Per-call optional skills (a flow queue node's ``optional_skills``): they rank eligible agents like the
queue's optional skills, combined with them, and never make an agent eligible or ineligible."""

from __future__ import annotations

import pytest

from ivr.acd import AgentConfig, Call, ConfigError, Offer, QueueConfig, RelaxationStep, Router
from ivr.acd.policy import merge_optional


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _router(queue: QueueConfig, agents: list[tuple[str, dict, float]]):
    clock = Clock()
    r = Router([queue], clock)
    for aid, skills, login_at in agents:
        r.add_agent(AgentConfig(aid, skills=skills))
    for aid, _, login_at in sorted(agents, key=lambda a: a[2]):
        clock.t = login_at
        r.login(aid)
    clock.t = 100.0
    return r, clock


def _offer(ds) -> Offer:
    [o] = [d for d in ds if isinstance(d, Offer)]
    return o


def test_the_call_s_optional_skill_picks_the_agent_who_holds_it_over_the_longest_idle():
    q = QueueConfig("q", required_skills={"x": 1})
    # "plain" is idle longest: without optional skills it would be chosen
    r, _ = _router(q, [("plain", {"x": 3}, 1.0), ("vip", {"x": 3, "vip": 2}, 50.0)])
    assert _offer(r.enqueue(Call("c0", "q"))).agent_id == "plain"
    r2, _ = _router(q, [("plain", {"x": 3}, 1.0), ("vip", {"x": 3, "vip": 2}, 50.0)])
    o = _offer(r2.enqueue(Call("c1", "q", optional_skills={"vip": 5})))
    assert o.agent_id == "vip" and o.explanation.reason.startswith("best skill fit")


def test_optional_skills_never_make_an_agent_eligible():
    q = QueueConfig("q", required_skills={"x": 2})
    r, _ = _router(q, [("novice", {"x": 1, "vip": 5}, 1.0)])
    assert [d for d in r.enqueue(Call("c1", "q", optional_skills={"vip": 100})) if isinstance(d, Offer)] == []


def test_call_and_queue_optional_skills_combine_with_the_higher_weight():
    q = QueueConfig("q", required_skills={"x": 1}, optional_skills={"net": 1})
    # net only (queue weight 1): 3 + 1*4 = 7; vip only (call weight 2): 3 + 2*3 = 9 -> vip
    r, _ = _router(q, [("net", {"x": 3, "net": 4}, 1.0), ("vip", {"x": 3, "vip": 3}, 2.0)])
    assert _offer(r.enqueue(Call("c1", "q", optional_skills={"vip": 2}))).agent_id == "vip"
    # the call raises the queue's own weight for net to 3: 3 + 3*4 = 15 > 9 -> net
    r, _ = _router(q, [("net", {"x": 3, "net": 4}, 2.0), ("vip", {"x": 3, "vip": 3}, 1.0)])
    assert _offer(r.enqueue(Call("c1", "q", optional_skills={"vip": 2, "net": 3}))).agent_id == "net"
    assert merge_optional((("net", 1.0),), {"vip": 2, "net": 0.5}) == (("net", 1.0), ("vip", 2.0))
    assert merge_optional((("net", 1.0),), {}) == (("net", 1.0),)


def test_relaxation_drops_the_queue_s_optional_skill_but_not_the_call_s():
    q = QueueConfig("q", required_skills={"x": 1}, optional_skills={"net": 5},
                    relaxation=(RelaxationStep(30, drop_skills=frozenset({"net"})),))
    # joined at 100, decided at 140: past the 30 s step that drops the queue's "net"
    r3, clock3 = _router(q, [("net", {"x": 1, "net": 5}, 2.0), ("vip", {"x": 1, "vip": 5}, 1.0)])
    clock3.t = 140.0
    o = _offer(r3.enqueue(Call("late", "q", optional_skills={"net": 5}), waiting_since=100.0))
    assert o.agent_id == "net"       # the call's own "net" still counts
    r4, clock4 = _router(q, [("net", {"x": 1, "net": 5}, 2.0), ("vip", {"x": 1, "vip": 5}, 1.0)])
    clock4.t = 140.0
    o = _offer(r4.enqueue(Call("late", "q"), waiting_since=100.0))   # queue's "net" dropped: longest idle
    assert o.agent_id == "vip"


@pytest.mark.parametrize("bad", [{"vip": -1}, {"vip": float("nan")}, {"": 1}, {"vip": True}, {"vip": "5"}])
def test_bad_optional_skills_are_refused(bad):
    with pytest.raises(ConfigError):
        Call("c", "q", optional_skills=bad)
