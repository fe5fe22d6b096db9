"""Auto-pause protection in the pure router, with a fake clock: a miss the agent did not cause never
counts, a systemic failure pauses nobody, auto-pauses are bounded per minute (see docs/acd.md)."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from ivr.acd import (
    AgentAutoPaused,
    AgentConfig,
    AgentState,
    AutoPausePolicy,
    AutoPauseSuspended,
    Call,
    CallState,
    CancelOffer,
    ConfigError,
    Offer,
    QueueConfig,
    Router,
)
from ivr.acd.autopause import MissGuard
from ivr.acd.index import TimerKind, Timers


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def offers(ds) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def of(ds, cls) -> list:
    return [d for d in ds if isinstance(d, cls)]


def actions(ds, action: str) -> list[str]:
    return [d.agent_id for d in ds if isinstance(d, AutoPauseSuspended) and d.action == action]


def setup(queue: QueueConfig, n: int, *, skills=None, t: float = 1000.0, **kw):
    clock = Clock(t)
    r = Router([queue], clock, offer_grace=5, **kw)
    for i in range(n):
        aid = f"a{i:03}"
        r.add_agent(AgentConfig(aid, skills=(skills or {}).get(aid, {"x": 1})))
        r.login(aid)
    return r, clock


def ringing(r: Router, queue: str = "q") -> list[tuple[str, str]]:
    return [(c.call_id, c.agent_id) for c in r.queue_snapshot(queue).calls if c.state is CallState.RINGING]


def q(max_misses: int = 1) -> QueueConfig:
    # retry=0: these tests are about counting misses, with the next offer at once (retry pacing is
    # tested in test_acd_router.py)
    return QueueConfig("q", required_skills={"x": 1}, ring_timeout=15, max_misses=max_misses, retry=0)


# ---------------------------------------------------------------- systemic failures pause nobody
def test_400_ring_timeouts_in_one_router_step_pause_nobody():
    """The incident: the loop stalled, every ring safety net fired in the same tick."""
    r, clock = setup(q(max_misses=1), 400)
    for i in range(400):
        assert len(offers(r.enqueue(Call(f"c{i}", "q")))) == 1
    clock.t += 20  # ring_timeout + offer_grace
    d = r.tick()
    assert len(of(d, CancelOffer)) == 400
    assert of(d, AgentAutoPaused) == []
    assert len(set(actions(d, "miss-not-counted"))) == 400
    assert len(offers(d)) == 400  # every call rings another agent at once
    assert r.call_snapshot("c0").rona_count == 1  # the call still knows it was missed
    snaps = r.agents_snapshot()
    assert all(s.misses == 0 and s.state is AgentState.RESERVED for s in snaps)
    st = r.auto_pause_state()
    assert st.suspended and st.failure_share == 1.0 and st.offers_in_window == 400
    assert st.failing_agents == 400 and st.pauses_in_last_minute == 0 and "systemic" in st.reason
    clock.t += 20  # and again
    d = r.tick()
    assert of(d, AgentAutoPaused) == []
    assert all(s.misses == 0 and s.pause_reason is None for s in r.agents_snapshot())


@pytest.mark.parametrize("max_misses", [1, 3])
def test_a_storm_spread_over_seconds_leaves_nobody_paused_and_no_miss_counted(max_misses):
    """The first failures of a storm look like genuine misses; once the storm shows, their misses are
    given back and their auto-pauses lifted."""
    r, clock = setup(q(max_misses), 20)
    t0 = clock.t
    for i in range(20):  # one offer per second: the safety nets fire one per second, tick by tick
        assert offers(r.enqueue(Call(f"c{i}", "q"))) == [(f"c{i}", f"a{i:03}")]
        clock.t += 1
    log: list[tuple[float, object]] = []
    misses_after_two = None
    while clock.t < t0 + 60:  # c0 fails at t0+20 (a000), c1 at t0+21 (a001), c2 at t0+22 (a002), ...
        log += [(clock.t, d) for d in r.tick()]
        if clock.t == t0 + 21:
            misses_after_two = {a: r.agent_snapshot(a).misses for a in ("a000", "a001")}
        clock.t += 1
    paused = [(t, d.agent_id) for t, d in log if isinstance(d, AgentAutoPaused)]
    guarded = [(t, d) for t, d in log if isinstance(d, AutoPauseSuspended)]
    lifted = {d.agent_id: t for t, d in guarded if d.action == "pause-lifted"}
    refunded = {d.agent_id for _, d in guarded if d.action == "miss-refunded"}
    if max_misses == 1:  # the first two looked genuine and were paused (the budget is 2), then lifted
        assert paused == [(t0 + 20, "a000"), (t0 + 21, "a001")]
        assert {d.agent_id for t, d in guarded if t == t0 + 22 and d.action == "miss-not-counted"} == {"a002"}
        assert set(lifted) == {"a000", "a001"}
        assert all(lifted[a] - t <= 10 for t, a in paused)  # within burst_window
    else:  # their first misses counted, then were given back
        assert misses_after_two == {"a000": 1, "a001": 1}
        assert paused == [] and refunded == {"a000", "a001"}
    assert len({d.agent_id for _, d in log if isinstance(d, CancelOffer)}) == 20
    for s in r.agents_snapshot():
        assert s.state is not AgentState.PAUSED and s.misses == 0, s


def test_an_auto_pause_changed_since_is_not_lifted():
    r, clock = setup(q(max_misses=1), 5)
    for i in range(3):
        r.enqueue(Call(f"c{i}", "q"))
        clock.t += 1
    clock.t += 17  # c0's safety net: a000 auto-paused
    assert [d.agent_id for d in of(r.tick(), AgentAutoPaused)] == ["a000"]
    r.unpause("a000")
    r.pause("a000", "lunch")  # the agent took it from there
    clock.t += 2  # c1, c2: the third distinct agent makes it a storm
    d = r.tick()
    assert actions(d, "pause-lifted") == [] and actions(d, "miss-not-counted")
    assert r.agent_snapshot("a000").pause_reason == "lunch"


def test_failures_without_agent_fault_never_miss_and_suspend_auto_pause():
    """Originate / ARI timeouts on every agent: no miss, no pause, and a genuine-looking miss meanwhile
    does not count either (the window is systemic)."""
    r, clock = setup(q(max_misses=1), 10)
    for i in range(10):
        r.enqueue(Call(f"c{i}", "q"))
    out = []
    for _ in range(3):
        for cid, _aid in ringing(r):
            clock.t += 0.2
            out += r.offer_failed(cid, "ari-unavailable", agent_fault=False)
    assert of(out, AgentAutoPaused) == [] and of(out, AutoPauseSuspended) == []
    assert all(s.misses == 0 and s.state is AgentState.RESERVED for s in r.agents_snapshot())
    st = r.auto_pause_state()
    assert st.suspended and st.failure_share == 1.0 and st.offers_in_window == 30
    cid, aid = ringing(r)[0]
    d = r.offer_failed(cid, "no-answer")  # agent fault, but in the middle of the storm
    assert actions(d, "miss-not-counted") == [aid] and of(d, AgentAutoPaused) == []
    assert r.agent_snapshot(aid).misses == 0


# ---------------------------------------------------------------- genuine misses still pause
def test_one_absent_agent_among_answering_agents_is_still_auto_paused():
    """Its own failures make half of all offers: that must not hide it (its offers are left out)."""
    skills = {"a000": {"x": 5}}  # the best fit: every new call rings it first
    r, clock = setup(q(max_misses=6), 5, skills=skills)
    pauses, seen_share = [], 0.0
    for i in range(6):  # all within the window: a call every 5 s, rejected by a000 after 4 s
        clock.t += 1
        assert offers(r.enqueue(Call(f"c{i}", "q"))) == [(f"c{i}", "a000")]
        clock.t += 4
        d = r.offer_failed(f"c{i}", "busy")
        assert of(d, AutoPauseSuspended) == []
        pauses += of(d, AgentAutoPaused)
        if i < 5:
            assert r.agent_snapshot("a000").misses == i + 1
            [(cid, other)] = offers(d)
            assert other != "a000"
            r.offer_answered(cid)
            r.call_ended(cid)
        st = r.auto_pause_state()
        if st.offers_in_window >= 8:
            seen_share = max(seen_share, st.failure_share)
        assert not st.suspended
    assert seen_share >= 0.5  # the overall share reached the threshold with >= min_offers offers
    assert [p.agent_id for p in pauses] == ["a000"]
    assert r.agent_snapshot("a000").pause_reason == "no-answer"


def test_single_agent_genuine_no_answers_pause_after_max_misses_as_before():
    r, clock = setup(q(max_misses=2), 1)
    r.enqueue(Call("c1", "q"))
    clock.t += 15
    assert offers(r.offer_failed("c1")) == [("c1", "a000")]
    clock.t += 15
    d = r.offer_failed("c1")
    assert [p.agent_id for p in of(d, AgentAutoPaused)] == ["a000"]
    assert r.auto_pause_state().pauses_in_last_minute == 1


def test_the_window_forgets_old_failures():
    r, clock = setup(q(max_misses=2), 10)
    for i in range(10):
        r.enqueue(Call(f"c{i}", "q"))
    for _ in range(2):
        for cid, _ in ringing(r):
            r.offer_failed(cid, "congestion", agent_fault=False)
    for i in range(10):
        r.abandon(f"c{i}")  # not an outcome
    assert r.auto_pause_state().suspended
    clock.t += 30  # still inside the window: a miss does not count
    r.enqueue(Call("k1", "q"))
    [(_, aid)] = ringing(r)
    assert actions(r.offer_failed("k1"), "miss-not-counted") == [aid]
    r.abandon("k1")
    clock.t += 62  # the window (60 s, to the second) has passed since the last failure
    st = r.auto_pause_state()
    assert not st.suspended and st.offers_in_window == 0 and st.failing_agents == 0
    r.enqueue(Call("k2", "q"))
    [(_, aid)] = ringing(r)
    d = r.offer_failed("k2")
    assert of(d, AutoPauseSuspended) == [] and r.agent_snapshot(aid).misses == 1
    clock.t += 20
    r.abandon("k2")
    r.enqueue(Call("k3", "q", preferred_agent=aid, preferred_until=clock.t + 60))
    assert [p.agent_id for p in of(r.offer_failed("k3"), AgentAutoPaused)] == [aid]


# ---------------------------------------------------------------- per-minute bound
def test_a_pause_held_by_the_budget_happens_at_a_later_miss_once_it_allows():
    r, clock = setup(q(max_misses=1), 2, auto_pause=AutoPausePolicy(max_per_minute=1))
    r.enqueue(Call("c1", "q"))  # rings a000
    d = r.offer_failed("c1")
    assert [p.agent_id for p in of(d, AgentAutoPaused)] == ["a000"]  # at t0
    t0 = clock.t
    for dt in (1, 30, 59.9):
        clock.t = t0 + dt
        d = r.offer_failed("c1")  # a001, the only one left, rung again each time
        assert actions(d, "pause-held") == ["a001"] and of(d, AgentAutoPaused) == []
    assert r.agent_snapshot("a001").misses == 3 and r.agent_snapshot("a001").state is AgentState.RESERVED
    assert r.auto_pause_state().pauses_in_last_minute == 1
    clock.t = t0 + 60  # the pause at t0 is out of (t-60, t]
    d = r.offer_failed("c1")
    assert [p.agent_id for p in of(d, AgentAutoPaused)] == ["a001"]
    assert r.agent_snapshot("a001").pause_reason == "no-answer"


def test_max_per_minute_zero_disables_auto_pause():
    r, clock = setup(q(max_misses=1), 1, auto_pause=AutoPausePolicy(max_per_minute=0))
    r.enqueue(Call("c1", "q"))
    for _ in range(5):
        clock.t += 20
        d = r.offer_failed("c1")
        assert of(d, AgentAutoPaused) == [] and actions(d, "pause-held") == ["a000"]


class Traffic:
    """Steady calls on 100 agents: offers to present agents are answered at once and end after
    ``talk`` s; offers to absent agents ring until the router's safety net fails them."""

    def __init__(self, r: Router, clock: Clock, absent: set[str], talk: float) -> None:
        self.r, self.clock, self.absent, self.talk = r, clock, absent, talk
        self.ends: list[tuple[float, str]] = []
        self.pauses: list[tuple[float, str]] = []
        self.actions: Counter[str] = Counter()
        self.n = 0

    def feed(self, ds) -> None:
        todo = list(ds)
        while todo:
            d = todo.pop(0)
            if isinstance(d, Offer) and d.agent_id not in self.absent:
                todo += self.r.offer_answered(d.call_id)
                self.ends.append((self.clock.t + self.talk, d.call_id))
            elif isinstance(d, AgentAutoPaused):
                self.pauses.append((self.clock.t, d.agent_id))
            elif isinstance(d, AutoPauseSuspended):
                self.actions[d.action] += 1

    def run(self, seconds: int, per_second: int) -> None:
        for _ in range(seconds):
            self.clock.t += 1
            self.feed(self.r.tick())
            due = [cid for t, cid in self.ends if t <= self.clock.t]
            self.ends = [(t, cid) for t, cid in self.ends if t > self.clock.t]
            for cid in due:
                self.feed(self.r.call_ended(cid))
            for _ in range(per_second):
                self.n += 1
                self.feed(self.r.enqueue(Call(f"c{self.n}", "q")))


def test_ten_absent_agents_among_100_are_paused_at_most_two_a_minute_and_all_in_the_end():
    r, clock = setup(q(max_misses=2), 100)
    absent = {f"a{i:03}" for i in range(5, 100, 10)}
    sim = Traffic(r, clock, absent, talk=20)
    sim.run(600, per_second=2)
    times = [t for t, _ in sim.pauses]
    assert {a for _, a in sim.pauses} == absent  # every absent agent, and nobody else
    assert len(times) == 10
    for t in times:
        assert sum(1 for u in times if t - 60 < u <= t) <= 2, times
    assert sim.actions["pause-held"] > 0  # the bound really held some back: they were paused later
    assert times[-1] - times[0] >= 4 * 60
    assert sim.actions["miss-not-counted"] == 0  # normal traffic is not mistaken for a storm
    assert not r.auto_pause_state().suspended


# ---------------------------------------------------------------- the guard and the policy
def test_guard_memory_is_bounded_by_the_window_whatever_the_traffic():
    g = MissGuard(AutoPausePolicy(window=30, burst_window=5))
    for i in range(100_000):
        now = i / 100  # 100 outcomes a second for 1000 s
        aid = f"a{i % 50}"
        if i % 3:
            g.success(aid, now)
        else:
            g.failure(aid, now)
            g.judge(aid, now, agent_fault=True)
    assert len(g._buckets) <= 32 and len(g._by_agent) <= 50 and len(g._failing) <= 50
    assert len(g._counted) <= 4096
    st = g.state(1000.0)
    assert 2900 <= st.offers_in_window <= 3100 and abs(st.failure_share - 1 / 3) < 0.01


def test_policy_defaults_and_from_dict():
    p = AutoPausePolicy()
    assert (p.window, p.systemic_share, p.min_offers, p.burst_window, p.burst_agents, p.max_per_minute) \
        == (60.0, 0.5, 8, 10.0, 3, 2)
    assert AutoPausePolicy.from_dict({}) == p == AutoPausePolicy.from_dict(None)
    p2 = AutoPausePolicy.from_dict({"window": 120, "systemic_share": 0.3, "min_offers": 20,
                                    "burst_window": 5, "burst_agents": 4, "max_per_minute": 5})
    assert p2.window == 120 and p2.systemic_share == 0.3 and p2.max_per_minute == 5
    assert AutoPausePolicy.from_dict(p2.as_dict()) == p2


@pytest.mark.parametrize("d, match", [
    ({"windows": 60}, "unknown key"),
    ({"window": 0}, "window"),
    ({"window": float("inf")}, "window"),
    ({"window": "60"}, "window"),
    ({"systemic_share": 0}, "systemic_share"),
    ({"systemic_share": 1.5}, "systemic_share"),
    ({"min_offers": 0}, "min_offers"),
    ({"min_offers": 2.5}, "min_offers"),
    ({"burst_window": -1}, "burst_window"),
    ({"burst_window": 90}, "must not exceed window"),
    ({"burst_agents": 1}, "burst_agents"),
    ({"burst_agents": True}, "burst_agents"),
    ({"max_per_minute": -1}, "max_per_minute"),
    ({"max_per_minute": None}, "max_per_minute"),
])
def test_policy_validation_errors(d, match):
    with pytest.raises(ConfigError, match=match):
        AutoPausePolicy.from_dict(d)


def test_policy_from_dict_rejects_a_non_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        AutoPausePolicy.from_dict([("window", 60)])  # type: ignore[arg-type]


def test_docs_state_every_knob_with_its_default():
    text = Path(__file__).resolve().parents[2].joinpath("docs/acd.md").read_text()
    assert "## Auto-pause (ring-no-answer) and systemic failures" in text
    block = re.search(r"```yaml\n(acd:\n  auto_pause:\n.*?)```", text, re.DOTALL)
    assert block, "docs/acd.md has no `acd: auto_pause:` example"
    documented = yaml.safe_load(block.group(1))["acd"]["auto_pause"]
    assert documented == AutoPausePolicy().as_dict()
    assert AutoPausePolicy.from_dict(documented) == AutoPausePolicy()


def test_timers_due_lists_exactly_the_due_entries_without_popping():
    rng = random.Random(7)
    tm = Timers()
    for i in range(500):
        tm.add(rng.uniform(0, 100), TimerKind.RING, f"c{i}", i)
    for now in (-1, 0.5, 17.0, 50.0, 100.0):
        expect = sorted(e for e in tm.heap if e[0] <= now)
        assert sorted(tm.due(now)) == expect
    assert len(tm) == 500
