"""Routing benchmark of the pure ACD core (``ivr.acd.Router``).

Scenario per size N (waiting calls): 50 skills, 1,000 agents (10 skills each, member of 4 of 20 queues),
20 queues (1-2 required skills, 2 optional, relaxation at 30/90/180 s), calls with 3 priorities and
30 % carrying an extra "language" skill. All agents are busy and N calls wait. Then, repeatedly:
one on-call agent hangs up (``call_ended`` -> agent available -> Offer to the most senior eligible call),
the offer is answered, and a new call joins (``enqueue``) so N stays constant. A fake clock advances
10 ms per round, so relaxation timers fire during the run too.

Decision latency = wall time of one ``call_ended`` (agent frees up -> Offer) or one ``enqueue`` call.
Prints p50/p99 per size and operation; the last line is ``p99_ms=<x> decisions_per_s=<y>`` for the
largest size (p99 over both operations; decisions/s = measured operations / time spent in them).

Run: ``.venv/bin/python bench/routing.py`` (``--quick`` for a smoke run, ``--all-queues`` to make every
agent a member of all 20 queues, so a freed agent checks the group heads of 20 queues instead of 4).
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ivr.acd import AgentConfig, Call, Offer, QueueConfig, RelaxationStep, Router

N_SKILLS = 50
N_LANG = 5  # the last 5 skills play the role of languages (per-call extra skills)
N_QUEUES = 20
N_AGENTS = 1000


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


ALL_QUEUES = "--all-queues" in sys.argv  # agents serve every queue (skills alone decide): more groups


def build(rng: random.Random, clock: FakeClock) -> tuple[Router, list[QueueConfig]]:
    core = [f"s{i}" for i in range(N_SKILLS - N_LANG)]
    queues = []
    for qi in range(N_QUEUES):
        req_sk = rng.sample(core, rng.choice((1, 2)))
        opt = rng.sample([s for s in core if s not in req_sk], 2)
        steps = (RelaxationStep(30, drop_skills=frozenset({opt[0]})), RelaxationStep(90, min_proficiency=1),
                 RelaxationStep(180, add_alternative={rng.choice(core): 2}))
        queues.append(QueueConfig(f"q{qi}", required_skills={s: rng.randint(2, 3) for s in req_sk},
                                  optional_skills={opt[0]: 1.0, opt[1]: 0.5}, relaxation=steps,
                                  priority=rng.choice((0, 0, 1)), ring_timeout=20))
    router = Router(queues, clock)
    for ai in range(N_AGENTS):
        mine = rng.sample(queues, 4)
        skills: dict[str, int] = {}
        for q in mine:  # agents hold their queues' required skills (most at a useful level)
            for s in q.required_skills:
                skills[s] = rng.randint(1, 5)
        while len(skills) < 10:
            skills[f"s{rng.randrange(N_SKILLS)}"] = rng.randint(1, 5)
        router.add_agent(AgentConfig(f"a{ai:04d}", endpoint=f"PJSIP/a{ai:04d}", skills=skills,
                                     queues=None if ALL_QUEUES else frozenset(q.name for q in mine)))
        router.login(f"a{ai:04d}")
    return router, queues


def make_call(rng: random.Random, n: int, queues: list[QueueConfig]) -> Call:
    extra = {f"s{N_SKILLS - N_LANG + rng.randrange(N_LANG)}": 1} if rng.random() < 0.3 else {}
    return Call(f"c{n}", rng.choice(queues).name, priority=rng.choice((0, 0, 0, 1, 2)), extra_skills=extra)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run_size(n_waiting: int, rounds: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    clock = FakeClock()
    router, queues = build(rng, clock)
    on_call: list[str] = []  # answered call ids
    counter = 0

    def handle(decisions) -> None:
        for d in decisions:
            if isinstance(d, Offer):
                router.offer_answered(d.call_id)
                on_call.append(d.call_id)

    # Fill: agents get busy first, then the queue grows to n_waiting.
    waiting = lambda: sum(len(router._queues[q.name].calls) for q in queues)
    while waiting() < n_waiting:
        counter += 1
        handle(router.enqueue(make_call(rng, counter, queues)))
    gc.collect()
    free_lat: list[float] = []
    enq_lat: list[float] = []
    offers = 0
    perf = time.perf_counter
    for _ in range(rounds):
        clock.t += 0.01
        i = rng.randrange(len(on_call))
        on_call[i], on_call[-1] = on_call[-1], on_call[i]
        cid = on_call.pop()
        t0 = perf()
        out = router.call_ended(cid)  # agent frees up -> offer to the most senior eligible call
        free_lat.append(perf() - t0)
        offers += sum(isinstance(d, Offer) for d in out)
        handle(out)
        counter += 1
        call = make_call(rng, counter, queues)
        t0 = perf()
        out = router.enqueue(call)
        enq_lat.append(perf() - t0)
        offers += sum(isinstance(d, Offer) for d in out)
        handle(out)
    both = free_lat + enq_lat
    return {
        "n": n_waiting, "waiting_end": waiting(), "offers": offers, "ops": len(both),
        "free_p50": pct(free_lat, 50) * 1e3, "free_p99": pct(free_lat, 99) * 1e3,
        "enq_p50": pct(enq_lat, 50) * 1e3, "enq_p99": pct(enq_lat, 99) * 1e3,
        "p50": pct(both, 50) * 1e3, "p99": pct(both, 99) * 1e3, "mean": statistics.fmean(both) * 1e3,
        "dps": len(both) / sum(both),
    }


def run_idle_center(rounds: int, seed: int = 11) -> dict:
    """Low load: every agent idle, calls arrive and are offered at once (scores all eligible agents)."""
    rng = random.Random(seed)
    clock = FakeClock()
    router, queues = build(rng, clock)
    lat = []
    offered = 0
    perf = time.perf_counter
    for n in range(rounds):
        clock.t += 0.01
        call = make_call(rng, n, queues)
        t0 = perf()
        out = router.enqueue(call)
        lat.append(perf() - t0)
        offered += any(isinstance(d, Offer) for d in out)
        router.abandon(call.id)  # frees the agent again (not timed)
    return {"p50": pct(lat, 50) * 1e3, "p99": pct(lat, 99) * 1e3, "offered": offered / rounds}


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = (100, 1000) if quick else (100, 1000, 10000)
    rounds = 500 if quick else 5000
    print(f"ACD routing benchmark: {N_AGENTS} agents, {N_SKILLS} skills, {N_QUEUES} queues "
          f"({'all' if ALL_QUEUES else 4} per agent), {rounds} rounds per size "
          f"(python {sys.version.split()[0]})")
    print(f"{'waiting':>8} {'free p50':>9} {'free p99':>9} {'enq p50':>8} {'enq p99':>8} "
          f"{'all p50':>8} {'all p99':>8} {'decisions/s':>12}  (ms)")
    res = None
    for n in sizes:
        res = run_size(n, rounds)
        print(f"{res['n']:>8} {res['free_p50']:>9.3f} {res['free_p99']:>9.3f} {res['enq_p50']:>8.3f} "
              f"{res['enq_p99']:>8.3f} {res['p50']:>8.3f} {res['p99']:>8.3f} {res['dps']:>12.0f}")
    idle = run_idle_center(rounds // 2)
    print(f"idle center (all {N_AGENTS} agents available, enqueue -> offer to the best of all eligible, "
          f"{idle['offered']:.0%} offered at once): p50={idle['p50']:.3f} ms p99={idle['p99']:.3f} ms")
    assert res is not None
    print(f"p99_ms={res['p99']:.3f} decisions_per_s={res['dps']:.0f}")


if __name__ == "__main__":
    main()
