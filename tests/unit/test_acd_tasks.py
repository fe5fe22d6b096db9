"""Tasks (callbacks, voicemails, web callback requests) in the router, with a fake clock: one order with
the live callers by the time each took its place, the queue's cap on agents working tasks, and what a task
never does (time out, fill a queue, be refused or dropped for want of agents)."""

from __future__ import annotations

import pytest

from ivr.acd import AgentConfig, Call, CallFinished, CallOutcome, ConfigError, QueueConfig, QueueExit, Router
from ivr.tasks import TaskKind
from tests.unit.test_acd_router import Clock, of, offers

CB = TaskKind.CALLBACK


def setup(queue: QueueConfig, n_agents: int, *, login=True):
    clock = Clock(1000.0)
    r = Router([queue], clock)
    for i in range(1, n_agents + 1):
        r.add_agent(AgentConfig(f"a{i}", skills={"x": 1}))
        if login:
            r.login(f"a{i}")
    return r, clock


def hold_all(r: Router, clock: Clock, n: int) -> None:
    """Every agent on a live call."""
    for i in range(1, n + 1):
        assert offers(r.enqueue(Call(f"busy{i}", "q", preferred_agent=f"a{i}", preferred_until=clock.t + 1))) \
            == [(f"busy{i}", f"a{i}")]
        r.offer_answered(f"busy{i}")


def free(r: Router, cid: str):
    return r.call_ended(cid)


Q = QueueConfig("q", required_skills={"x": 1})


def test_a_callback_keeps_its_place_ahead_of_callers_who_joined_after_it():
    r, clock = setup(Q, 1)
    hold_all(r, clock, 1)
    r.enqueue(Call("late-caller", "q"))                                   # joined at t=1000
    r.enqueue(Call("cb", "q", kind=CB), waiting_since=clock.t - 360)      # its call joined 6 min ago
    clock.t += 5
    r.enqueue(Call("later-caller", "q"))
    assert [c.call_id for c in r.queue_snapshot("q").calls] == ["cb", "late-caller", "later-caller"]
    snap = r.call_snapshot("cb")
    assert snap.kind == "callback" and snap.position == 1 and snap.wait == pytest.approx(365)
    assert offers(free(r, "busy1")) == [("cb", "a1")]                  # the oldest place is served first


def test_a_callback_waits_behind_callers_who_were_there_before_it():
    r, clock = setup(Q, 1)
    hold_all(r, clock, 1)
    r.enqueue(Call("early-caller", "q"), waiting_since=clock.t - 600)
    r.enqueue(Call("cb", "q", kind=CB), waiting_since=clock.t - 300)
    assert offers(free(r, "busy1")) == [("early-caller", "a1")]


def test_at_most_the_queues_share_of_agents_work_tasks_at_once_and_a_caller_is_never_held_back():
    q = QueueConfig("q", required_skills={"x": 1}, task_agents_percent=50)
    r, clock = setup(q, 4)
    hold_all(r, clock, 4)
    for i in range(4):                                                    # four callbacks, all old
        r.enqueue(Call(f"cb{i}", "q", kind=CB), waiting_since=clock.t - 900 + i)
    r.enqueue(Call("caller", "q"))
    assert offers(free(r, "busy1")) == [("cb0", "a1")]
    assert offers(free(r, "busy2")) == [("cb1", "a2")]
    # two of four agents on callbacks: the cap; the next free agent takes the caller, not cb2
    assert offers(free(r, "busy3")) == [("caller", "a3")]
    assert offers(free(r, "busy4")) == []                                # cb2 still held back
    for cid in ("cb0", "cb1", "caller"):
        r.offer_answered(cid)
    clock.t += 60
    ds = r.call_ended("cb0")                                 # a slot opens: a4, idle for 60 s, takes cb2
    assert offers(ds) == [("cb2", "a4")]
    assert [d.record.kind for d in of(ds, CallFinished)] == ["callback"]


def test_the_cap_is_at_least_one_agent():
    q = QueueConfig("q", required_skills={"x": 1}, task_agents_percent=10)
    r, clock = setup(q, 2)
    r.enqueue(Call("cb0", "q", kind=CB), waiting_since=clock.t - 10)
    r.enqueue(Call("cb1", "q", kind=CB), waiting_since=clock.t - 5)
    assert sorted(offers(r.tick())) == [] and r.call_snapshot("cb0").agent_id is not None
    assert r.call_snapshot("cb1").agent_id is None                       # 10 % of 2 agents: still one


def test_an_agent_who_misses_a_task_puts_it_back_at_its_place_and_frees_the_slot():
    q = QueueConfig("q", required_skills={"x": 1}, task_agents_percent=50, retry=0)
    r, clock = setup(q, 2)
    assert offers(r.enqueue(Call("cb", "q", kind=CB), waiting_since=clock.t - 60)) == [("cb", "a1")]
    ds = r.offer_failed("cb")
    assert offers(ds) == [("cb", "a2")]
    assert r.call_snapshot("cb").wait == pytest.approx(60)


def test_a_task_never_times_out_never_fills_the_queue_and_is_not_refused_without_agents():
    q = QueueConfig("q", required_skills={"x": 1}, max_wait=30, max_length=1, join_empty=False,
                    leave_when_empty=True)
    r, clock = setup(q, 1, login=False)                                   # nobody logged in
    assert of(r.enqueue(Call("cb", "q", kind=CB)), QueueExit) == []
    clock.t += 3600
    assert of(r.tick(), QueueExit) == [] and r.call_snapshot("cb").state.value == "waiting"
    r.login("a1")
    r.logout("a1")                                                        # leave_when_empty: callers only
    assert r.call_snapshot("cb").state.value == "waiting"
    assert r.queue_snapshot("q").stats.entered == 0                       # queue stats are the callers'
    r.login("a1")
    r.pause("a1", "break")
    assert of(r.enqueue(Call("caller", "q")), QueueExit) == []            # a task does not take the line
    assert of(r.enqueue(Call("caller2", "q")), QueueExit)[0].outcome.value == "full"


def test_a_cancelled_task_leaves_with_a_record_of_its_kind_and_no_caller_statistics():
    r, clock = setup(Q, 1)
    hold_all(r, clock, 1)
    r.enqueue(Call("vm", "q", kind=TaskKind.VOICEMAIL), waiting_since=clock.t - 100)
    [fin] = of(r.abandon("vm"), CallFinished)
    assert fin.record.kind == "voicemail" and fin.record.outcome is CallOutcome.ABANDONED
    assert r.queue_snapshot("q").stats.abandoned == 0


def test_a_task_assigned_to_one_agent_waits_for_that_agent():
    r, clock = setup(Q, 2)
    hold_all(r, clock, 2)
    r.enqueue(Call("vm-cb", "q", kind=CB, preferred_agent="a2", preferred_until=clock.t + 10**9),
              waiting_since=clock.t - 30)
    assert offers(free(r, "busy1")) == []
    assert offers(free(r, "busy2")) == [("vm-cb", "a2")]


def test_bad_kind_and_bad_share_are_refused():
    with pytest.raises(ConfigError):
        Call("c", "q", kind="fax")
    for bad in (0, 101, -5, "half"):
        with pytest.raises(ConfigError):
            QueueConfig("q", task_agents_percent=bad)


def test_a_task_never_overflows_nor_leaves_when_nobody_can_serve_it():
    from ivr.acd import queue_from_dict
    q = queue_from_dict({"name": "q", "required_skills": {"x": 1}, "no_agents_grace": 5,
                         "overflow": {"queue": "other", "after": 10}})
    other = QueueConfig("other", required_skills={"x": 1})
    clock = Clock(1000.0)
    r = Router([q, other], clock)
    r.enqueue(Call("cb", "q", kind=CB, extra_skills={"tier2": 1}))   # no agent at all, nor ever
    r.enqueue(Call("caller", "q", extra_skills={"tier2": 1}))
    clock.t += 3600
    r.tick()
    assert [c.call_id for c in r.queue_snapshot("q").calls] == ["cb"]
    assert "a task waits" in r.call_snapshot("cb").note


def test_the_cap_counts_only_agents_who_can_take_a_call():
    q = QueueConfig("q", required_skills={"x": 1}, task_agents_percent=50)
    r, clock = setup(q, 4)
    r.set_registered("a3", False)
    r.set_registered("a4", False)                                      # 2 of 4 can take calls: cap 1
    r.enqueue(Call("cb0", "q", kind=CB), waiting_since=clock.t - 10)
    r.enqueue(Call("cb1", "q", kind=CB), waiting_since=clock.t - 5)
    offered = [r.call_snapshot(c).agent_id for c in ("cb0", "cb1")]
    assert offered[0] is not None and offered[1] is None
