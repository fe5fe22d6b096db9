"""Overflow between queues and the no-agents grace, on the router with a fake clock (ivr/acd/moves.py)."""

from __future__ import annotations

import pytest

from ivr.acd import (
    AgentConfig,
    Call,
    CallFinished,
    CallMoved,
    CallOutcome,
    ConfigError,
    ExitOutcome,
    Offer,
    Overflow,
    QueueConfig,
    QueueExit,
    Router,
    ServiceLevel,
    queue_from_dict,
    queue_to_dict,
)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def of(ds, cls) -> list:
    return [d for d in ds if isinstance(d, cls)]


def run_until(r: Router, clock: Clock, t: float) -> list:
    """Tick at every deadline up to ``t`` (as the adapter does); every decision on the way."""
    got: list = []
    while (nd := r.next_deadline()) is not None and nd <= t:
        clock.t = nd
        got += r.tick()
    clock.t = t
    return got + r.tick()


def two_queues(*, after: float | None = 60, grace: float | None = None, sl: float = 20, **kw):
    clock = Clock()
    x = QueueConfig("x", required_skills={"x": 1}, overflow=Overflow("y", after), no_agents_grace=grace, **kw)
    y = QueueConfig("y", required_skills={"y": 1}, no_agents_grace=None,
                    service_level=ServiceLevel(80, sl))
    r = Router([x, y], clock)
    r.add_agent(AgentConfig("ya", skills={"y": 1}, queues=("y",)))
    return r, clock


# ------------------------------------------------------------------------------------------ config
def test_overflow_config_round_trip_and_errors_name_the_key():
    q = queue_from_dict({"name": "x", "overflow": {"queue": "y", "after": 60}, "no_agents_grace": 30})
    assert q.overflow == Overflow("y", 60) and q.no_agents_grace == 30
    assert queue_from_dict(queue_to_dict(q)) == q
    assert queue_from_dict({"name": "x"}).no_agents_grace == 60          # the default
    assert queue_from_dict({"name": "x", "no_agents_grace": None}).no_agents_grace is None
    for bad, key in [({"overflow": {"queue": "y", "after": 0}}, "overflow.after"),
                     ({"overflow": {"queue": "y", "after": "soon"}}, "overflow.after"),
                     ({"overflow": {"after": 5}}, "overflow: missing 'queue'"),
                     ({"overflow": {"queue": "y", "wait": 5}}, "overflow: unknown key"),
                     ({"overflow": "y"}, "overflow must be a mapping"),
                     ({"overflow": {"queue": "x"}}, "overflow.queue cannot be the queue itself"),
                     ({"no_agents_grace": -1}, "no_agents_grace")]:
        with pytest.raises(ConfigError, match=key):
            queue_from_dict({"name": "x", **bad})


def test_router_refuses_an_unknown_target_and_a_loop():
    with pytest.raises(ConfigError, match=r"queue 'x': overflow.queue 'nope' is not a queue"):
        Router([QueueConfig("x", overflow=Overflow("nope", 10))], Clock())
    loop = [QueueConfig("a", overflow=Overflow("b", 10)), QueueConfig("b", overflow=Overflow("c", 10)),
            QueueConfig("c", overflow=Overflow("b", 10))]
    with pytest.raises(ConfigError, match=r"overflow loop b -> c -> b"):
        Router(loop, Clock())
    Router([QueueConfig("a", overflow=Overflow("b", 10)), QueueConfig("b", overflow=Overflow("c")),
            QueueConfig("c")], Clock())                                   # a chain is fine


# ------------------------------------------------------------------------------------------ overflow
def test_overflow_moves_the_caller_keeping_its_join_time_and_counts_the_original_wait():
    r, clock = two_queues(after=60, sl=70)
    r.login("ya")
    r.pause("ya", "busy")
    r.enqueue(Call("c1", "x"))
    clock.t += 5
    r.enqueue(Call("early-y", "y"))           # joined y before c1 moves there, but after c1 joined x
    ds = run_until(r, clock, 1059.9)
    assert of(ds, CallMoved) == []
    ds = run_until(r, clock, 1060)
    [m] = of(ds, CallMoved)
    assert (m.call_id, m.from_queue, m.to_queue, m.wait) == ("c1", "x", "y", 60)
    assert "overflow after 60s" in m.reason
    assert of(ds, CallFinished) == [] and of(ds, QueueExit) == []           # still in the ACD
    snap = r.queue_snapshot("y")
    assert [c.call_id for c in snap.calls] == ["c1", "early-y"]              # ranks by its first join
    assert snap.calls[0].wait == 60 and snap.calls[0].overflowed_from == ("x",)
    assert r.queue_snapshot("x").calls == () and r.queue_snapshot("x").stats.overflow == 1
    assert r.queue_snapshot("y").stats.entered == 2
    clock.t += 5
    ds = r.unpause("ya")
    assert [(o.call_id, o.agent_id) for o in of(ds, Offer)] == [("c1", "ya")]
    r.offer_answered("c1")
    [fin] = of(r.call_ended("c1"), CallFinished)
    rec = fin.record
    assert rec.queue == "y" and rec.outcome is CallOutcome.ANSWERED and rec.overflowed_from == ("x",)
    assert rec.entered_at == 1000 and rec.wait_time == 65
    assert rec.within_service_level is True                                  # 65 <= y's 70 s
    assert r.queue_snapshot("y").stats.answered_within_sl == 1


def test_service_level_counts_the_wait_in_the_first_queue_too():
    r, clock = two_queues(after=30, sl=20)     # y answers within 20 s of the move: 40 s of wait in all
    r.enqueue(Call("c1", "x"))
    run_until(r, clock, 1030)
    clock.t = 1040
    r.login("ya")
    r.offer_answered("c1")
    [fin] = of(r.call_ended("c1"), CallFinished)
    assert fin.record.wait_time == 40 and fin.record.within_service_level is False
    assert r.queue_snapshot("y").stats.answered_within_sl == 0


def test_max_wait_of_the_destination_counts_from_the_first_join():
    clock = Clock()
    r = Router([QueueConfig("x", overflow=Overflow("y", 30), no_agents_grace=None),
                QueueConfig("y", max_wait=50, no_agents_grace=None)], clock)
    r.enqueue(Call("c1", "x"))
    ds = run_until(r, clock, 1049.9)
    assert [m.to_queue for m in of(ds, CallMoved)] == ["y"] and of(ds, QueueExit) == []
    ds = run_until(r, clock, 1050)
    assert [(e.queue, e.outcome) for e in of(ds, QueueExit)] == [("y", ExitOutcome.TIMEOUT)]


def test_a_ringing_call_is_moved_only_if_the_ring_fails():
    clock = Clock()
    r = Router([QueueConfig("x", required_skills={"x": 1}, overflow=Overflow("y", 30), no_agents_grace=None,
                            retry=0),
                QueueConfig("y", no_agents_grace=None)], clock)
    r.add_agent(AgentConfig("xa", skills={"x": 1}, queues=("x",)))
    r.enqueue(Call("c1", "x"))
    clock.t = 1025
    [offer] = of(r.login("xa"), Offer)
    ds = run_until(r, clock, 1035)             # overflow due while ringing: the ring goes on
    assert of(ds, CallMoved) == [] and r.call_snapshot("c1").agent_id == "xa"
    ds = r.offer_failed("c1", "no-answer")
    assert [m.to_queue for m in of(ds, CallMoved)] == ["y"]
    assert r.call_snapshot("c1").queue == "y"
    # answered while the overflow was due: stays answered
    r.enqueue(Call("c2", "x"))
    clock.t = 1070
    [offer] = of(r.tick(), Offer)
    assert offer.call_id == "c2"
    run_until(r, clock, 1080)
    r.offer_answered("c2")
    assert of(run_until(r, clock, 1200), CallMoved) == []


def test_old_queue_timers_do_not_follow_the_call():
    clock = Clock()
    r = Router([QueueConfig("x", max_wait=100, overflow=Overflow("y", 30), no_agents_grace=None),
                QueueConfig("y", no_agents_grace=None)], clock)
    r.enqueue(Call("c1", "x"))
    ds = run_until(r, clock, 2000)
    assert of(ds, QueueExit) == [] and r.call_snapshot("c1").queue == "y"    # x's max_wait is void


# ------------------------------------------------------------------------------------------ no agents
def test_a_call_nobody_can_serve_leaves_with_no_agents_after_the_grace():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"q": 1}, no_agents_grace=30)], clock)
    r.add_agent(AgentConfig("a", skills={"q": 1}))
    r.login("a")
    r.pause("a", "lunch")                      # paused can serve (comes back): no grace running
    r.enqueue(Call("c1", "q", extra_skills={"tier2": 1}))     # but nobody has tier2
    assert r.call_snapshot("c1").note.startswith("no logged-in, registered agent can serve it (needs ")
    assert "tier2>=1" in r.call_snapshot("c1").note and "leaves (no_agents) in 30s" in r.call_snapshot("c1").note
    r.enqueue(Call("c2", "q"))                 # a can serve this one
    assert r.call_snapshot("c2").note is None
    assert of(run_until(r, clock, 1029.9), QueueExit) == []
    ds = run_until(r, clock, 1030)
    [ex] = of(ds, QueueExit)
    assert (ex.call_id, ex.outcome) == ("c1", ExitOutcome.NO_AGENTS) and "tier2>=1" in ex.reason
    [fin] = of(ds, CallFinished)
    assert fin.record.outcome is CallOutcome.NO_AGENTS and "for 30s" in fin.record.reason
    assert of(run_until(r, clock, 5000), QueueExit) == []                    # c2 waits for a


def test_the_grace_is_one_continuous_stretch():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"q": 1}, no_agents_grace=30)], clock)
    r.add_agent(AgentConfig("a", skills={"q": 1}))
    r.enqueue(Call("c1", "q"))                 # a is logged out: nobody could serve it
    clock.t = 1020
    r.login("a")
    r.pause("a", "break")                      # could serve again: the stretch ends
    clock.t = 1025
    r.logout("a")                              # a new stretch starts at 1025
    assert of(run_until(r, clock, 1054.9), QueueExit) == []
    assert [e.outcome for e in of(run_until(r, clock, 1055), QueueExit)] == [ExitOutcome.NO_AGENTS]


def test_unregistering_the_last_agent_starts_the_grace_and_null_disables_it():
    clock = Clock()
    r = Router([QueueConfig("q", no_agents_grace=10), QueueConfig("forever", no_agents_grace=None)], clock)
    r.add_agent(AgentConfig("a"))
    r.login("a")
    r.pause("a", "x")
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "forever"))
    clock.t = 1100
    r.set_registered("a", False)
    assert r.call_snapshot("c2").note.endswith("it waits (no_agents_grace: null)")
    ds = run_until(r, clock, 1110)
    assert [e.call_id for e in of(ds, QueueExit)] == ["c1"]
    assert of(run_until(r, clock, 9000), QueueExit) == []


def test_with_an_overflow_the_unserved_call_moves_there_and_is_answered():
    r, clock = two_queues(after=None, grace=20)
    r.login("ya")
    r.pause("ya", "busy")
    r.enqueue(Call("c1", "x"))                 # nobody serves x at all
    note = r.call_snapshot("c1").note
    assert "goes to queue y in 20s" in note
    ds = run_until(r, clock, 1020)
    [m] = of(ds, CallMoved)
    assert m.to_queue == "y" and "no logged-in, registered agent can serve it" in m.reason
    assert of(ds, QueueExit) == []
    assert r.call_snapshot("c1").note is None                                # ya can serve it in y
    ds = r.unpause("ya")
    assert [(o.call_id, o.agent_id) for o in of(ds, Offer)] == [("c1", "ya")]


def test_after_null_never_moves_a_servable_call():
    r, clock = two_queues(after=None, grace=20)
    r.add_agent(AgentConfig("xa", skills={"x": 1}, queues=("x",)))
    r.login("xa")
    r.pause("xa", "break")
    r.enqueue(Call("c1", "x"))
    assert of(run_until(r, clock, 5000), CallMoved) == []


def test_a_caller_joining_late_gets_its_full_grace():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"q": 1}, no_agents_grace=30)], clock)
    r.enqueue(Call("c1", "q"))                 # nobody at all since 1000
    clock.t = 1020
    r.enqueue(Call("c2", "q"))
    assert [e.call_id for e in of(run_until(r, clock, 1030), QueueExit)] == ["c1"]
    assert of(run_until(r, clock, 1049.9), QueueExit) == []
    assert [e.call_id for e in of(run_until(r, clock, 1050), QueueExit)] == ["c2"]


@pytest.mark.parametrize("queues,msg", [
    ("[{name: billing, overflow: {queue: salez, after: 60}}, {name: sales}]",
     "queues: queue 'billing': overflow.queue 'salez' is not a queue (queues: billing, sales)"),
    ("[{name: billing, overflow: {queue: sales}}, {name: sales, overflow: {queue: billing, after: 5}}]",
     "queues: queue 'billing': overflow loop billing -> sales -> billing"),
    ("[{name: billing, overflow: {queue: sales, after: -1}}, {name: sales}]",
     "queues: queue 'billing': overflow.after must be > 0"),
    ("[{name: billing, no_agents_grace: soon}]", "queues: queue 'billing': no_agents_grace must be >= 0"),
])
def test_the_server_config_refuses_bad_overflows_at_load(tmp_path, queues, msg):
    from ivr.config import ConfigError as ServerConfigError
    from ivr.config import load_config
    p = tmp_path / "ivr.yaml"
    p.write_text(f"queues: {queues}\n")
    with pytest.raises(ServerConfigError) as e:
        load_config(p, env={})
    assert msg in str(e.value)
