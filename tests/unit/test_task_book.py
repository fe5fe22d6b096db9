"""The task book with the real router and an SQLite store (fake clocks): a callback keeps its place,
retries after a busy customer, survives a restart (an offer in flight goes back to its place), expires."""

from __future__ import annotations

from ivr.acd import AgentConfig, Call, Offer, QueueConfig, Router
from ivr.calls.task_book import NewTask, TaskBook
from ivr.tasks import SqliteTaskStore, TaskKind, TaskState
from ivr.tasks.policy import CallbackPolicy

WALL0 = 1_800_000_000.0


class Clocks:
    def __init__(self) -> None:
        self.router, self.wall = 500.0, WALL0

    def advance(self, s: float) -> None:
        self.router += s
        self.wall += s


def world(store=None, clocks=None, agents=1):
    clocks = clocks or Clocks()
    router = Router([QueueConfig("q", required_skills={"x": 1}, wrap_up=0)], lambda: clocks.router)
    for i in range(1, agents + 1):
        router.add_agent(AgentConfig(f"a{i}", skills={"x": 1}))
        router.login(f"a{i}")
    n = iter(range(1, 1000))
    book = TaskBook(store or SqliteTaskStore(), CallbackPolicy(retry_delay=120, max_attempts=2),
                    wall_clock=lambda: clocks.wall, router_clock=lambda: clocks.router,
                    new_id=lambda: f"task-{next(n)}")
    return router, book, clocks


def enqueue_due(router: Router, book: TaskBook) -> list:
    out = []
    for t in book.release_due():
        call, since = book.router_call(t)
        out += router.enqueue(call, waiting_since=since)
    return out


def offers(ds):
    return [(d.call_id, d.agent_id) for d in ds if isinstance(d, Offer)]


def test_a_callback_from_a_caller_who_waited_keeps_that_callers_place():
    router, book, clocks = world()
    router.enqueue(Call("busy", "q", preferred_agent="a1", preferred_until=clocks.router + 1))
    router.offer_answered("busy")
    router.enqueue(Call("caller-after", "q"))                      # joined now
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678", name="Ada",
                         position_time=clocks.wall - 400, source="chan-1"))
    assert enqueue_due(router, book) == [] and book.in_router(t.id)
    snap = router.call_snapshot(t.id)
    assert snap.position == 1 and 399 < snap.wait < 401 and snap.kind == "callback"
    assert offers(router.call_ended("busy")) == [(t.id, "a1")]
    assert book.offered(t.id, "a1").state is TaskState.OFFERED


def test_busy_customer_retried_after_the_delay_at_its_place_then_failed_after_max_attempts():
    router, book, clocks = world()
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678", position_time=clocks.wall - 60))
    assert offers(enqueue_due(router, book)) == [(t.id, "a1")]
    book.offered(t.id, "a1")
    router.offer_answered(t.id)
    book.agent_answered(t.id)
    router.call_ended(t.id)                                         # the agent's part is over
    t1 = book.customer_failed(t.id, "busy")
    assert t1.state is TaskState.WAITING and t1.attempts == 1 and not book.in_router(t.id)
    assert book.release_due() == [] and book.next_wakeup() == clocks.wall + 120
    clocks.advance(120)
    assert offers(enqueue_due(router, book)) == [(t.id, "a1")]
    assert 179 < router.call_snapshot(t.id).wait < 181              # its place: 60 s + 120 s ago
    book.offered(t.id, "a1")
    router.offer_answered(t.id)
    book.agent_answered(t.id)
    router.call_ended(t.id)
    t2 = book.customer_failed(t.id, "no_answer")
    assert t2.state is TaskState.FAILED and not book.owns(t.id) and book.get(t.id).outcome == "no_answer"


def test_a_restart_reloads_open_tasks_in_order_and_an_offer_in_flight_goes_back_to_its_place(tmp_path):
    path = tmp_path / "tasks.db"
    router, book, clocks = world(SqliteTaskStore(path))
    a = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33600000001", position_time=clocks.wall - 300))
    b = book.add(NewTask(TaskKind.VOICEMAIL, "q", number="+33600000002", position_time=clocks.wall - 100))
    assert offers(enqueue_due(router, book)) == [(a.id, "a1")]
    book.offered(a.id, "a1")
    # kill -9: a new process, a new router, the same file
    clocks.advance(30)
    router2, book2, _ = world(SqliteTaskStore(path), clocks, agents=0)
    reloaded = book2.start()
    assert [t.id for t in reloaded] == [a.id, b.id]
    assert book2.get(a.id).state is TaskState.WAITING
    assert book2.get(a.id).history[-1].reason == "interrupted by a restart"
    enqueue_due(router2, book2)
    assert [c.call_id for c in router2.queue_snapshot("q").calls] == [a.id, b.id]
    assert 329 < router2.call_snapshot(a.id).wait < 331


def test_a_scheduled_request_waits_for_its_window_and_expires_when_it_closes_unserved():
    router, book, clocks = world(agents=0)
    t = book.add(NewTask(TaskKind.WEB_CALLBACK, "q", number="+33611111111", not_before=clocks.wall + 600,
                         not_after=clocks.wall + 1200))
    assert book.release_due() == [] and book.next_wakeup() == clocks.wall + 600
    clocks.advance(600)
    assert enqueue_due(router, book) == [] and book.in_router(t.id)
    clocks.advance(600)
    [gone] = book.expire_overdue()
    assert gone.id == t.id and book.get(t.id).state is TaskState.EXPIRED and not book.owns(t.id)
    router.abandon(t.id)                                             # the glue takes it out of the router
    assert router.queue_snapshot("q").calls == ()


def test_a_second_request_for_the_same_number_and_queue_updates_the_first():
    router, book, clocks = world()
    a = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678", position_time=clocks.wall - 500))
    b = book.add(NewTask(TaskKind.WEB_CALLBACK, "q", number="+33612345678", name="Ada"))
    assert b.id == a.id and b.position_time == a.position_time and b.name == "Ada"
    assert [t.id for t in book.open_tasks()] == [a.id]


def test_a_task_assigned_to_an_agent_goes_to_that_agent_only():
    router, book, clocks = world(agents=2)
    router.enqueue(Call("busy", "q", preferred_agent="a2", preferred_until=clocks.router + 1))
    router.offer_answered("busy")
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678", assigned_agent="a2"))
    assert offers(enqueue_due(router, book)) == []                  # a1 is idle, but it is a2's
    assert offers(router.call_ended("busy")) == [(t.id, "a2")]


def test_listeners_see_every_change_and_a_failing_listener_breaks_nothing():
    router, book, clocks = world()
    seen = []
    book.listeners.append(lambda before, after: seen.append((before and before.state.value, after.state.value)))
    book.listeners.append(lambda before, after: 1 / 0)
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678"))
    book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678", name="again"))
    enqueue_due(router, book)
    book.offered(t.id, "a1")
    book.cancel(t.id, "withdrawn")
    assert seen == [(None, "waiting"), ("waiting", "waiting"), ("waiting", "offered"), ("offered", "cancelled")]


def test_the_routers_explanation_of_each_offer_is_kept_with_the_task_and_survives_a_restart(tmp_path):
    path = tmp_path / "tasks.db"
    router, book, clocks = world(SqliteTaskStore(path), agents=2)
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33612345678"))
    [offer] = [d for d in enqueue_due(router, book) if isinstance(d, Offer)]
    book.offered(t.id, offer.agent_id, offer.explanation.reason, explanation=offer.explanation.as_dict())
    [decision] = book.get(t.id).decisions
    assert decision.agent_id == offer.agent_id and decision.attempt == 1
    assert decision.explanation["reason"] == "agent id tiebreak (equal fit and idle time)"
    assert {c["agent_id"] for c in decision.explanation["candidates"]} == {"a1", "a2"}
    _, book2, _ = world(SqliteTaskStore(path), clocks, agents=0)
    book2.start()
    assert book2.get(t.id).decisions == (decision,)


def test_a_restart_reports_each_task_as_stored_and_as_reloaded():
    store = SqliteTaskStore()
    router, book, clocks = world(store)
    a = book.add(NewTask(TaskKind.CALLBACK, "q", number="+33600000001"))
    book.add(NewTask(TaskKind.CALLBACK, "q", number="+33600000002"))
    enqueue_due(router, book)
    book.offered(a.id, "a1")
    _, book2, _ = world(store, clocks, agents=0)
    seen = []
    book2.listeners.append(lambda before, after: seen.append((before.state.value, after.state.value,
                                                              before is after)))
    book2.start()
    assert sorted(seen) == [("offered", "waiting", False), ("waiting", "waiting", True)]
