"""The task life cycle (pure) and the SQLite task store (a file in a temp dir, reopened as after a restart)."""

from __future__ import annotations

import sqlite3

import pytest

from ivr.tasks import InvalidTransition, SqliteTaskStore, Task, TaskKind, TaskState, order_key

T0 = 1_800_000_000.0


def cb(tid: str = "t1", number: str = "+33612345678", queue: str = "billing", at: float = T0, **kw) -> Task:
    return Task(id=tid, kind=kw.pop("kind", TaskKind.CALLBACK), queue=queue, position_time=at, created_at=at + 30,
                number=number, **kw)


def test_a_callback_goes_from_waiting_to_done_with_every_step_in_its_history():
    t = cb().offer("agent1", T0 + 100).agent_answered(T0 + 104).customer_answered(T0 + 110)
    assert t.state is TaskState.DONE and t.outcome == "answered" and not t.open
    assert [(h.from_state, h.to_state) for h in t.history] == [
        (TaskState.WAITING, TaskState.OFFERED), (TaskState.OFFERED, TaskState.CONNECTING),
        (TaskState.CONNECTING, TaskState.DONE)]
    assert t.history[0].agent_id == "agent1" and t.history[0].at == T0 + 100


def test_an_agent_who_misses_puts_the_task_back_at_its_place():
    t = cb().offer("agent1", T0 + 100).agent_missed(T0 + 115)
    assert t.state is TaskState.WAITING and t.position_time == T0 and t.agent_id is None and t.attempts == 0
    assert t.due(T0 + 116)


def test_a_busy_customer_is_retried_later_then_the_task_fails_after_max_attempts():
    t = cb(max_attempts=2).offer("agent1", T0 + 100).agent_answered(T0 + 101)
    t = t.customer_failed(T0 + 120, "busy", retry_after=300)
    assert t.state is TaskState.WAITING and t.attempts == 1 and t.position_time == T0
    assert not t.due(T0 + 419) and t.due(T0 + 420)
    t = t.offer("agent2", T0 + 420).agent_answered(T0 + 421).customer_failed(T0 + 450, "no_answer", 300)
    assert t.state is TaskState.FAILED and t.attempts == 2 and t.outcome == "no_answer"
    assert "attempt 2 of 2" in t.history[-1].reason


def test_transitions_outside_the_life_cycle_are_refused():
    with pytest.raises(InvalidTransition):
        cb().agent_answered(T0)
    done = cb().offer("a", T0).agent_answered(T0).customer_answered(T0)
    with pytest.raises(InvalidTransition):
        done.cancelled(T0, "too late")
    with pytest.raises(InvalidTransition):
        cb(assigned_agent="agent2").offer("agent1", T0)


def test_a_window_holds_a_task_back_and_expires_it():
    t = cb(not_before=T0 + 3600, not_after=T0 + 7200)
    assert not t.due(T0 + 3599) and t.due(T0 + 3600) and not t.due(T0 + 7200) and t.overdue(T0 + 7200)
    e = t.expired(T0 + 7200)
    assert e.state is TaskState.EXPIRED and e.outcome == "window_closed"


def test_a_restart_sends_offers_and_connections_in_flight_back_to_their_place_without_using_an_attempt():
    t = cb().offer("agent1", T0).agent_answered(T0 + 1).interrupted(T0 + 60)
    assert t.state is TaskState.WAITING and t.attempts == 0 and t.history[-1].reason == "interrupted by a restart"
    w = cb()
    assert w.interrupted(T0) is w


def test_queue_order_is_priority_then_the_oldest_place():
    a, b, c = cb("a", at=T0 + 10), cb("b", at=T0), cb("c", at=T0 + 20, priority=5)
    assert [t.id for t in sorted([a, b, c], key=order_key)] == ["c", "b", "a"]


def test_the_store_keeps_tasks_and_their_history_across_a_reopen(tmp_path):
    path = tmp_path / "store.db"
    s = SqliteTaskStore(path)
    t = cb(required_skills={"billing": 2}, optional_skills={"vip": 5}, customer={"name": "Ada", "tier": "vip"},
           name="Ada", source="call-1")
    s.add(t, T0)
    t = t.offer("agent1", T0 + 5)
    s.save(t)
    s.add(cb("t2", number="+33700000000", at=T0 - 50), T0)
    s.add(cb("vm1", kind=TaskKind.VOICEMAIL, at=T0 + 1, number=None), T0)
    again = SqliteTaskStore(sqlite3.connect(str(path), isolation_level=None))
    assert again.get("t1") == t
    assert [x.id for x in again.open_tasks()] == ["t2", "t1", "vm1"]
    t = again.get("t1").agent_missed(T0 + 20)
    again.save(t)
    assert [h.to_state for h in SqliteTaskStore(path).get("t1").history] == [TaskState.OFFERED, TaskState.WAITING]
    assert again.get("nope") is None


def test_one_open_callback_per_number_and_queue_a_second_request_updates_the_first():
    s = SqliteTaskStore()
    first = s.add(cb("t1", at=T0, name=""), T0)
    second = s.add(cb("t2", at=T0 + 600, name="Ada B.", kind=TaskKind.WEB_CALLBACK, not_before=T0 + 900), T0 + 600)
    assert second.id == "t1" and second.position_time == T0 and second.name == "Ada B."
    assert second.not_before == T0 + 900
    assert [t.id for t in s.open_tasks()] == ["t1"] and s.get("t2") is None
    assert s.get("t1").history[-1].reason == "updated by a new web_callback request"
    other_queue = s.add(cb("t3", queue="sales"), T0)
    assert other_queue.id == "t3"
    done = first.offer("a", T0).agent_answered(T0).customer_answered(T0 + 1)
    s.save(done)
    assert s.add(cb("t4"), T0 + 2).id == "t4"          # the first ended: a new request is a new task


def test_the_store_lists_by_state_kind_and_queue_newest_first():
    s = SqliteTaskStore()
    for i in range(3):
        s.add(cb(f"t{i}", number=f"+3361234567{i}", at=T0 + i), T0)
    s.save(s.get("t1").cancelled(T0 + 9, "customer withdrew"))
    assert [t.id for t in s.tasks()] == ["t2", "t1", "t0"]
    assert [t.id for t in s.tasks(state=TaskState.CANCELLED)] == ["t1"]
    assert s.tasks(kind=TaskKind.VOICEMAIL) == [] and len(s.tasks(queue="billing", limit=2)) == 2


def test_a_failed_write_changes_nothing(tmp_path):
    s = SqliteTaskStore(tmp_path / "x.db")
    s.add(cb("t1"), T0)
    bad = cb("t1").offer("agent1", T0)
    object.__setattr__(bad, "customer", {"not json": object()})
    with pytest.raises(TypeError):
        s.save(bad)
    assert s.get("t1").state is TaskState.WAITING and s.get("t1").history == ()


# ------------------------------------------------------------------------------ routing decisions
EXPLANATION = {"call_id": "t1", "queue": "billing", "agent_id": "a1", "trigger": "call_joined", "wait": 12.5,
               "step": 1, "requirement": "billing>=2", "reason": "best skill fit (7 > 5)",
               "candidates": [{"agent_id": "a1", "score": 7.0, "idle_for": 30.0, "missed_before": False},
                              {"agent_id": "a2", "score": 5.0, "idle_for": 90.0, "missed_before": False}]}


def test_each_offer_is_kept_as_a_routing_decision_with_its_attempt_and_explanation():
    t = cb().offer("a1", T0 + 1, "best skill fit", EXPLANATION)
    t = t.agent_answered(T0 + 2).customer_failed(T0 + 3, "busy", retry_after=60)
    t = t.offer("a2", T0 + 70, "only eligible agent")
    first, second = t.decisions
    assert (first.at, first.agent_id, first.attempt, first.summary) == (T0 + 1, "a1", 1, "best skill fit")
    assert first.explanation["candidates"][1]["agent_id"] == "a2"
    assert (second.agent_id, second.attempt, second.explanation) == ("a2", 2, None)
    assert t.history[-1].reason == "offered: only eligible agent"
    assert second.as_dict() == {"at": T0 + 70, "agent_id": "a2", "attempt": 2, "summary": "only eligible agent",
                                "explanation": None}


def test_the_store_keeps_the_decisions_across_a_reopen(tmp_path):
    path = tmp_path / "tasks.db"
    store = SqliteTaskStore(path)
    t = store.add(cb(), T0)
    t = t.offer("a1", T0 + 1, "best skill fit", EXPLANATION)
    store.save(t)
    t = t.agent_missed(T0 + 20, "no_answer").offer("a2", T0 + 21, "the others already missed this call")
    store.save(t)
    store.save(t)                                               # saving again appends nothing
    again = SqliteTaskStore(path).get(t.id)
    assert again == t
    assert [d.agent_id for d in again.decisions] == ["a1", "a2"]
    assert again.decisions[0].explanation == EXPLANATION


def test_a_task_file_of_the_previous_schema_opens_and_its_tasks_have_no_decisions(tmp_path):
    path = tmp_path / "tasks.db"
    store = SqliteTaskStore(path)
    store.save(store.add(cb(), T0).offer("a1", T0 + 1, "x"))
    db = sqlite3.connect(path)
    db.execute("DROP TABLE task_decisions")                     # as the file was before decisions existed
    db.commit()
    db.close()
    old = SqliteTaskStore(path)
    t = old.get("t1")
    assert t is not None and t.state is TaskState.OFFERED and t.decisions == () and len(t.history) == 1
    t = t.agent_missed(T0 + 20).offer("a2", T0 + 21, "y")
    old.save(t)
    assert [d.agent_id for d in SqliteTaskStore(path).get("t1").decisions] == ["a2"]
