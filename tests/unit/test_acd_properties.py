"""Property-based tests of the router invariants (Hypothesis, stateful) and of monotone relaxation.

A ``World`` drives a real ``Router`` with a fake clock through agent and call events and checks, after
every step, against an *independent* reference of the rules (eligibility re-derived naively from the
queue configs; offers and ringing tracked from the decisions):

* never two outstanding offers to one agent; never one call ringing two agents; reserved <=> ringing;
* no available, registered agent is eligible for a waiting call (the router matched all it could);
* FIFO within a priority: an offer never goes to a call while an older call of the same queue, priority
  and extra skills (and no preferred agent) is waiting;
* an active preference only points at a logged-in, registered agent, before its deadline;
* an operation that raises changes nothing; ``next_deadline`` is always in the future after an operation.

The same ``World`` is driven by a Hypothesis ``RuleBasedStateMachine`` (shrinks failures to a minimal
story) and by a seeded random walk with longer, busier runs (reaches deep states, e.g. a busy preferred
agent freeing up while its pinned call waits).
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ivr.acd import (
    AcdError,
    AgentConfig,
    AgentState,
    Call,
    CallFinished,
    CallRequeued,
    CallState,
    CancelOffer,
    Offer,
    QueueConfig,
    RelaxationStep,
    Router,
    queue_from_dict,
    requirement_at,
)

SKILLS = ["x", "y", "z", "lang:fr"]
EXTRA_SKILLS = ["lang:fr", "z", "x", "y"]  # x, y: capped / dropped by q1's steps
AGENT_OPS = ["login", "logout", "pause", "unpause", "wrap_up_done", "unregister", "register"]
DTS = [0, 1, 5, 10, 13, 15, 29, 30, 31, 60, 90, 120, 200]

QUEUES = [
    QueueConfig("q1", required_skills={"x": 3}, optional_skills={"y": 1},
                relaxation=(RelaxationStep(30, drop_skills=frozenset({"y"})),
                            RelaxationStep(90, min_proficiency=1),
                            RelaxationStep(180, add_alternative={"z": 2})),
                max_wait=400, ring_timeout=15, max_misses=2, wrap_up=10),
    QueueConfig("q2", required_skills={"y": 2}, priority=1, max_length=6, leave_when_empty=True,
                ring_timeout=10),
    QueueConfig("q3", required_skills={"lang:fr": 1}, join_empty=False,
                relaxation=(RelaxationStep(60, add_alternative={"z": 1}),), wrap_up=5),
]
QCFG = {q.name: q for q in QUEUES}


def ref_admits(q: QueueConfig, wait: float, extra: dict[str, int], skills: dict[str, int]) -> bool:
    """The documented requirement rules, re-implemented naively from the config."""
    dropped: set[str] = set()
    cap = 99
    alts: list[dict[str, int]] = []
    for stp in q.relaxation:
        if stp.after <= wait:
            dropped |= stp.drop_skills
            if stp.min_proficiency is not None:
                cap = min(cap, stp.min_proficiency)
            if stp.add_alternative:
                alts.append(dict(stp.add_alternative))
    main = {s: min(max(lv, q.min_proficiency), cap) for s, lv in q.required_skills.items() if s not in dropped}
    groups = [main] + [{s: min(lv, cap) for s, lv in a.items() if s not in dropped} for a in alts]
    # the call's own skills: soft ones join the main group and are relaxed by the same steps (capped,
    # dropped); languages are hard: in every group, as given
    soft = {s: min(lv, cap) for s, lv in extra.items() if not s.startswith("lang:") and s not in dropped}
    hard = {s: lv for s, lv in extra.items() if s.startswith("lang:")}
    for i, g in enumerate(groups):
        need = dict(g)
        for s, lv in list(hard.items()) + (list(soft.items()) if i == 0 else []):
            need[s] = max(need.get(s, 0), lv)
        if all(skills.get(s, 0) >= lv for s, lv in need.items()):
            return True
    return False


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> float:
        return float(self.t)


class World:
    """A router plus the test's own model of calls and offers; every method checks as it goes."""

    def __init__(self, agents: list[dict]) -> None:
        self.clock = Clock()
        self.router = Router(QUEUES, self.clock, offer_grace=3)
        self.cfgs: dict[str, AgentConfig] = {}
        for i, a in enumerate(agents):
            cfg = AgentConfig(f"a{i}", skills=a["skills"], max_misses=a["max_misses"],
                              queues=None if a["queues"] is None else frozenset(a["queues"]))
            self.cfgs[cfg.id] = cfg
            self.router.add_agent(cfg)
            if a["logged_in"]:
                self.router.login(cfg.id)
        self.calls: dict[str, dict] = {}  # id -> queue, prio, extra, seq, state, pref, until, agent
        self.ringing: dict[str, str] = {}  # agent -> call, from the decisions
        self.n = 0
        self.offers = 0

    # ------------------------------------------------------------ bookkeeping
    def everything(self):
        r = self.router
        return ([s.as_dict() for s in r.agents_snapshot()], [r.queue_snapshot(q).as_dict() for q in QCFG])

    def do(self, fn, *args, **kw) -> list:
        before = self.everything()
        try:
            out = fn(*args, **kw)
        except AcdError:
            assert self.everything() == before, "a failed operation changed the router"
            return []
        self.apply(out)
        return out

    def apply(self, decisions) -> None:
        for d in decisions:
            if isinstance(d, Offer):
                assert d.agent_id not in self.ringing, f"second offer to {d.agent_id}"
                c = self.calls[d.call_id]
                assert c["state"] == "waiting", f"offer for a call that is {c['state']}"
                self.check_fifo(d.call_id)
                c["state"], c["agent"] = "ringing", d.agent_id
                self.ringing[d.agent_id] = d.call_id
                self.offers += 1
            elif isinstance(d, CancelOffer):
                assert self.ringing.pop(d.agent_id) == d.call_id
                self.calls[d.call_id]["state"] = "cancelled"
            elif isinstance(d, CallRequeued):
                self.calls[d.call_id]["state"] = "waiting"
            elif isinstance(d, CallFinished):
                c = self.calls.pop(d.record.call_id, None)
                assert c is None or c["state"] != "ringing"

    def check_fifo(self, cid: str) -> None:
        b = self.calls[cid]
        if b["pref"] is not None:
            return
        for aid, a in self.calls.items():
            if (a["state"] == "waiting" and a["pref"] is None and a["seq"] < b["seq"]
                    and (a["queue"], a["prio"], a["extra"]) == (b["queue"], b["prio"], b["extra"])):
                raise AssertionError(f"FIFO violated: {cid} offered while older {aid} waits")

    # ------------------------------------------------------------ actions
    def advance(self, dt: int) -> None:
        self.clock.t += dt
        self.apply(self.router.tick())

    def advance_to_next_deadline(self) -> None:
        nd = self.router.next_deadline()
        if nd is not None:
            self.clock.t = max(self.clock.t, -int(-nd // 1))  # ceil: stay on integer times
            self.apply(self.router.tick())

    def enqueue(self, queue: str, prio: int, extra: dict[str, int], pref: tuple[int, int] | None,
                optional: dict[str, float] | None = None) -> None:
        self.n += 1
        cid = f"c{self.n}"
        pa, until = (None, None) if pref is None else (f"a{pref[0]}", self.clock.t + pref[1])
        self.calls[cid] = {"queue": queue, "prio": prio, "extra": tuple(sorted(extra.items())), "seq": self.n,
                           "state": "waiting", "pref": pa, "until": until, "agent": None}
        self.apply(self.router.enqueue(Call(cid, queue, priority=prio, extra_skills=extra,
                                            preferred_agent=pa, preferred_until=until,
                                            optional_skills=optional or {})))

    def agent_op(self, aid: str, op: str, reason: str = "lunch") -> None:
        r = self.router
        if op == "pause":
            self.do(r.pause, aid, reason)
        elif op in ("unregister", "register"):
            self.do(r.set_registered, aid, op == "register")
        else:
            self.do(getattr(r, op), aid)
        if op in ("logout", "pause", "unregister"):
            assert aid not in self.ringing

    def answer(self, aid: str) -> None:
        cid = self.ringing.pop(aid)
        self.calls[cid]["state"] = "on_call"
        self.do(self.router.offer_answered, cid)

    def fail(self, aid: str, fault: bool) -> None:
        cid = self.ringing.pop(aid)
        self.calls[cid]["state"] = "failed"
        self.do(self.router.offer_failed, cid, agent_fault=fault)

    def end_call(self, cid: str) -> None:
        self.do(self.router.call_ended, cid)

    def hang_up(self, cid: str) -> None:
        c = self.calls[cid]
        if c["state"] == "ringing":
            del self.ringing[c["agent"]]
            c["state"] = "hungup"
            out = self.router.abandon(cid)
            assert [(d.call_id, d.reason) for d in out if isinstance(d, CancelOffer)] == [(cid, "abandoned")]
            self.apply([d for d in out if not isinstance(d, CancelOffer)])
        else:
            self.do(self.router.abandon, cid)

    def on_call(self) -> list[str]:
        return sorted(c for c, m in self.calls.items() if m["state"] == "on_call")

    # ------------------------------------------------------------ invariants
    def check(self) -> None:
        r = self.router
        ringing_by_agent: dict[str, str] = {}
        waiting = []
        for q in QCFG:
            for c in r.queue_snapshot(q).calls:
                if c.state is CallState.RINGING:
                    assert c.agent_id not in ringing_by_agent, "agent rings for two calls"
                    ringing_by_agent[c.agent_id] = c.call_id
                else:
                    waiting.append(c)
        agents = r.agents_snapshot()
        for a in agents:
            if a.state is AgentState.RESERVED:
                assert ringing_by_agent.get(a.agent_id) == a.call_id
            else:
                assert a.agent_id not in ringing_by_agent
        assert ringing_by_agent == self.ringing
        # an agent resting after a failed offer (the queue's ``retry``) is not offered until it is over
        idle = [a for a in agents if a.state is AgentState.AVAILABLE and a.registered and not a.resting]
        for c in waiting:
            m = self.calls[c.call_id]
            if c.preferred_agent is not None:
                p = r.agent_snapshot(c.preferred_agent)
                assert p.state is not AgentState.LOGGED_OUT and p.registered
                assert self.clock.t < m["until"] and c.preferred_agent == m["pref"]
            for a in idle:
                if c.queue not in a.queues or (c.preferred_agent and c.preferred_agent != a.agent_id):
                    continue
                assert not ref_admits(QCFG[c.queue], c.wait, dict(m["extra"]),
                                      dict(self.cfgs[a.agent_id].skills)), \
                    f"{a.agent_id} idle but eligible for waiting {c.call_id}"
        nd = r.next_deadline()
        assert nd is None or nd > self.clock.t


agent_st = st.fixed_dictionaries({
    "skills": st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), min_size=1, max_size=4),
    "logged_in": st.booleans() | st.just(True),
    "queues": st.one_of(st.none(), st.sets(st.sampled_from(list(QCFG)), min_size=1)),
    "max_misses": st.one_of(st.none(), st.integers(1, 3)),
})


class RouterMachine(RuleBasedStateMachine):
    @initialize(agents=st.lists(agent_st, min_size=1, max_size=5))
    def setup(self, agents):
        self.w = World(agents)

    @staticmethod
    def pick(data, ids):
        ids = sorted(ids)
        return data.draw(st.sampled_from(ids)) if ids else None

    @rule(dt=st.sampled_from(DTS))
    def advance(self, dt):
        self.w.advance(dt)

    @rule()
    def advance_to_next_deadline(self):
        self.w.advance_to_next_deadline()

    @rule(queue=st.sampled_from(list(QCFG)), prio=st.integers(0, 2),
          extra=st.dictionaries(st.sampled_from(EXTRA_SKILLS), st.integers(1, 3), max_size=2),
          pref=st.one_of(st.none(), st.tuples(st.integers(0, 2), st.sampled_from([5, 60, 300]))))
    def enqueue(self, queue, prio, extra, pref):
        self.w.enqueue(queue, prio, extra, pref)

    @rule(data=st.data(), op=st.sampled_from(AGENT_OPS), reason=st.sampled_from(["lunch", "break"]))
    def agent_op(self, data, op, reason):
        self.w.agent_op(self.pick(data, self.w.cfgs), op, reason)

    @rule(data=st.data())
    def answer(self, data):
        aid = self.pick(data, self.w.ringing)
        if aid is not None:
            self.w.answer(aid)

    @rule(data=st.data(), fault=st.booleans())
    def fail(self, data, fault):
        aid = self.pick(data, self.w.ringing)
        if aid is not None:
            self.w.fail(aid, fault)

    @rule(data=st.data())
    def end_call(self, data):
        cid = self.pick(data, self.w.on_call())
        if cid is not None:
            self.w.end_call(cid)

    @rule(data=st.data())
    def hang_up(self, data):
        cid = self.pick(data, self.w.calls)
        if cid is not None:
            self.w.hang_up(cid)

    @invariant()
    def invariants_hold(self):
        if hasattr(self, "w"):
            self.w.check()


RouterMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestRouterInvariants = RouterMachine.TestCase


def random_walk(seed: int, steps: int) -> World:
    """Longer, busier runs than Hypothesis explores by default (more calls and agents, biased actions)."""
    rng = random.Random(seed)
    agents = [{"skills": {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 4))},
               "logged_in": rng.random() < 0.8,
               "queues": None if rng.random() < 0.5 else set(rng.sample(list(QCFG), rng.randint(1, 3))),
               "max_misses": rng.choice([None, 1, 2, 3])} for _ in range(rng.randint(2, 6))]
    w = World(agents)
    actions = ["enqueue"] * 5 + ["advance"] * 3 + ["deadline"] * 2 + ["agent"] * 3 + ["answer"] * 4 + \
        ["fail"] * 2 + ["end"] * 4 + ["hang"]
    for _ in range(steps):
        act = rng.choice(actions)
        if act == "enqueue":
            pref = (rng.randrange(len(agents)), rng.choice([5, 60, 300])) if rng.random() < 0.3 else None
            extra = {rng.choice(EXTRA_SKILLS): rng.randint(1, 3)} if rng.random() < 0.3 else {}
            # per-call optional skills only rank agents: the invariants must hold with them too
            optional = {rng.choice(SKILLS): rng.choice([0.5, 1, 5])} if rng.random() < 0.3 else {}
            w.enqueue(rng.choice(list(QCFG)), rng.randint(0, 2), extra, pref, optional)
        elif act == "advance":
            w.advance(rng.choice(DTS))
        elif act == "deadline":
            w.advance_to_next_deadline()
        elif act == "agent":
            w.agent_op(rng.choice(sorted(w.cfgs)), rng.choice(AGENT_OPS), rng.choice(["lunch", "break"]))
        elif act in ("answer", "fail") and w.ringing:
            aid = rng.choice(sorted(w.ringing))
            w.answer(aid) if act == "answer" else w.fail(aid, rng.random() < 0.7)
        elif act == "end" and w.on_call():
            w.end_call(rng.choice(w.on_call()))
        elif act == "hang" and w.calls:
            w.hang_up(rng.choice(sorted(w.calls)))
        w.check()
    return w


def test_random_walks_keep_the_invariants():
    total_offers = 0
    for seed in range(30):
        total_offers += random_walk(seed, 250).offers
    assert total_offers > 500  # the walks really exercise matching


# ---------------------------------------------------------------- relaxation is monotone
step_st = st.fixed_dictionaries({
    "drop": st.booleans(), "minp": st.booleans(), "alt": st.one_of(st.none(), st.dictionaries(
        st.sampled_from(SKILLS), st.integers(1, 5), min_size=1, max_size=2))})


@settings(max_examples=200, deadline=None)
@given(req=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3),
       opt=st.dictionaries(st.sampled_from(["o1", "o2"]), st.floats(0, 3), max_size=2),
       minp=st.integers(1, 5), steps=st.lists(step_st, max_size=4),
       agents=st.lists(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5)), min_size=1, max_size=6),
       extra=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2),
       times=st.lists(st.floats(0, 400), min_size=2, max_size=6))
def test_relaxation_only_grows_the_eligible_set(req, opt, minp, steps, agents, extra, times):
    # Build a valid config: each step relaxes something (drop the first remaining skill, lower the cap,
    # and/or add an alternative), as the YAML loader demands.
    remaining = sorted(req) + sorted(opt)
    cap: int | None = None
    relax = []
    for s in steps:
        d: dict = {"after": 30 * (len(relax) + 1)}
        if s["drop"] and remaining:
            d["drop_skills"] = [remaining.pop(0)]
        if s["minp"] and cap != 1:
            cap = 5 if cap is None else cap - 1
            d["min_proficiency"] = cap
        if s["alt"]:
            d["add_alternative"] = s["alt"]
        if len(d) > 1:
            relax.append(d)
    q = queue_from_dict({"name": "q", "required_skills": req, "optional_skills": opt,
                         "min_proficiency": minp, "relaxation": relax})
    prev: set[int] | None = None
    for t in sorted(times):
        req_t = requirement_at(q, t)
        now = {i for i, a in enumerate(agents) if req_t.admits(a, extra)}
        assert now == {i for i, a in enumerate(agents) if ref_admits(q, t, extra, a)}
        if prev is not None:
            assert prev <= now, f"eligible set shrank at t={t}"
        prev = now
