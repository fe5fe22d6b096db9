"""Every step of a task is in its customer's CRM history (kind ``task``), and no repeat-caller / FCR /
last-agent rule counts those steps as calls."""

from __future__ import annotations

import asyncio
import sqlite3

from ivr.acd import AgentConfig, Offer, QueueConfig, Router
from ivr.calls.task_book import NewTask, TaskBook
from ivr.calls.task_history import TaskHistory, task_interactions
from ivr.crm.model import Customer, Interaction, InteractionKind
from ivr.crm.rules import contact_quality, fcr, is_repeat_caller, last_agent
from ivr.crm.store import SqliteCrm
from ivr.tasks import SqliteTaskStore, TaskKind, TaskState
from ivr.tasks.policy import CallbackPolicy
from tests.unit.test_task_book import WALL0, Clocks

NUMBER = "+33612345678"


def world(store=None, clocks=None):
    clocks = clocks or Clocks()
    router = Router([QueueConfig("q", required_skills={"x": 1}, wrap_up=0)], lambda: clocks.router)
    router.add_agent(AgentConfig("a1", skills={"x": 1}))
    router.login("a1")
    n = iter(range(1, 1000))
    book = TaskBook(store or SqliteTaskStore(), CallbackPolicy(retry_delay=120, max_attempts=2),
                    wall_clock=lambda: clocks.wall, router_clock=lambda: clocks.router,
                    new_id=lambda: f"task-{next(n)}")
    return router, book, clocks


def offer_and_connect(router, book, task_id):
    decisions = []
    for t in book.release_due():
        call, since = book.router_call(t)
        decisions += router.enqueue(call, waiting_since=since)
    [offer] = [d for d in decisions if isinstance(d, Offer)]
    book.offered(task_id, offer.agent_id, "only eligible agent")
    router.offer_answered(task_id)
    book.agent_answered(task_id)
    router.call_ended(task_id)


async def test_each_step_of_a_callback_is_in_the_customers_history_with_agent_and_attempt():
    crm = SqliteCrm(clock=lambda: WALL0 + 1000)
    await crm.upsert_customer(Customer("C1", name="Ada", phones=(NUMBER,)))
    router, book, clocks = world()
    history = TaskHistory(crm.record_interaction)
    book.listeners.append(history)
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number=NUMBER, name="Ada", source="call:chan-1",
                         customer={"customer_id": "C1"}))
    offer_and_connect(router, book, t.id)
    clocks.advance(5)
    book.customer_failed(t.id, "busy")                      # attempt 1 of 2 used, retried later
    clocks.advance(120)
    offer_and_connect(router, book, t.id)
    book.customer_answered(t.id)
    await history.flush()

    steps = list(reversed(await crm.recent_interactions(NUMBER, 20)))
    assert all(i.kind == InteractionKind.TASK and i.call_id == t.id and i.queue == "q" for i in steps)
    assert [(i.state, i.agent_id, i.attempt) for i in steps] == [
        ("waiting", None, 1), ("offered", "a1", 1), ("connecting", "a1", 1), ("waiting", "a1", 1),
        ("offered", "a1", 2), ("connecting", "a1", 2), ("done", "a1", 2)]
    assert steps[0].detail == "requested (call)" and steps[0].customer_id == "C1"
    assert steps[3].detail == "customer busy, attempt 1 of 2"
    assert steps[-1].outcome == "callback done (answered), attempt 2 of 2"
    assert steps[1].outcome == "callback offered, attempt 1 of 2" and "only eligible agent" in steps[1].detail
    assert history.recorded == 7 and history.failed == 0
    # the agent screen's source (recent_interactions as_dict) carries the kind and the step
    d = steps[1].as_dict()
    assert d["kind"] == "task" and d["state"] == "offered" and d["attempt"] == 1

    # none of it makes the customer a repeat caller or an agent their last agent
    found = await crm.lookup(NUMBER)
    assert found.found and found.repeat_caller is False and found.last_agent is None
    await crm.close()


async def test_a_real_call_still_counts_and_task_steps_do_not_crowd_it_out():
    crm = SqliteCrm(clock=lambda: WALL0 + 1000)
    await crm.record_interaction(NUMBER, Interaction(at=WALL0 + 10, call_id="chan-1", queue="q", agent_id="a2",
                                                     outcome="answered"))
    for k in range(150):                                   # more than the lookup's LIMIT of history rows
        await crm.record_interaction(NUMBER, Interaction(at=WALL0 + 20 + k, call_id="task-1", queue="q",
                                                         agent_id="a1", outcome="callback offered",
                                                         kind=InteractionKind.TASK, state="offered"))
    found = await crm.lookup(NUMBER)
    assert found.repeat_caller is True and found.last_agent == "a2"
    assert await crm.history_flags(NUMBER) == (True, "a2")
    await crm.close()


def test_unknown_number_and_a_reload_without_change_record_nothing():
    _, book, _ = world()
    t = book.add(NewTask(TaskKind.VOICEMAIL, "q", number=None))
    assert task_interactions(None, t) == []
    t2 = book.add(NewTask(TaskKind.CALLBACK, "q", number=NUMBER))
    assert len(task_interactions(None, t2)) == 1
    assert task_interactions(t2, t2) == []                   # what ``start`` reports for an untouched task


async def test_a_restart_records_the_offer_cut_short_once_and_nothing_for_untouched_tasks(tmp_path):
    path = tmp_path / "tasks.db"
    router, book, clocks = world(SqliteTaskStore(path))
    a = book.add(NewTask(TaskKind.CALLBACK, "q", number=NUMBER))
    book.add(NewTask(TaskKind.CALLBACK, "q", number="+33600000002"))
    for t in book.release_due():
        call, since = book.router_call(t)
        router.enqueue(call, waiting_since=since)
    book.offered(a.id, "a1")
    seen = []

    async def record(number, interaction):
        seen.append((number, interaction.state, interaction.agent_id, interaction.detail))

    _, book2, _ = world(SqliteTaskStore(path), clocks)
    history = TaskHistory(record)
    book2.listeners.append(history)
    book2.start()
    await history.flush()
    assert seen == [(NUMBER, "waiting", "a1", "interrupted by a restart")]


async def test_the_listener_never_raises_into_the_book_nor_waits_for_the_crm():
    _, book, _ = world()
    release = asyncio.Event()
    calls = []

    async def slow_then_broken(number, interaction):
        calls.append(interaction.state)
        await release.wait()
        raise sqlite3.OperationalError("disk I/O error")

    history = TaskHistory(slow_then_broken, max_pending=2)
    book.listeners.append(history)
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number=NUMBER))     # returns at once: the CRM is stuck
    for _ in book.release_due():
        pass
    book.offered(t.id, "a1")
    book.cancel(t.id, "withdrawn by the customer")
    assert book.get(t.id).state is TaskState.CANCELLED
    await asyncio.sleep(0)
    release.set()
    await history.flush()
    # three steps queued before the writer ran, at most 2 kept: the oldest was dropped; both writes failed
    assert calls == ["offered", "cancelled"]
    assert history.failed == 2 and history.dropped == 1 and history.recorded == 0


def test_without_an_event_loop_the_listener_drops_the_step_quietly():
    _, book, _ = world()
    history = TaskHistory(lambda number, interaction: asyncio.sleep(0))
    book.listeners.append(history)
    t = book.add(NewTask(TaskKind.CALLBACK, "q", number=NUMBER))
    assert book.get(t.id).state is TaskState.WAITING and history.dropped == 1


# ------------------------------------------------------------------------------- the rules ignore tasks
def _task_step(at: float, agent: str | None = "a1", queue: str = "q") -> Interaction:
    return Interaction(at=at, call_id="task-1", queue=queue, agent_id=agent, outcome="callback done",
                       caller=NUMBER, kind=InteractionKind.TASK, state="done")


def _call(at: float, agent: str | None = "a2", outcome: str = "answered") -> Interaction:
    return Interaction(at=at, call_id=f"chan-{at}", queue="q", agent_id=agent, outcome=outcome, caller=NUMBER)


def test_repeat_caller_and_last_agent_ignore_task_steps():
    now = WALL0
    assert is_repeat_caller([_task_step(now - 60)], now, 3600) is False
    assert is_repeat_caller([_task_step(now - 60), _call(now - 120)], now, 3600) is True
    assert last_agent([_task_step(now - 60, "a1")]) is None
    assert last_agent([_call(now - 600, "a2"), _task_step(now - 60, "a1")]) == "a2"


def test_fcr_neither_judges_task_steps_nor_counts_them_as_a_call_back():
    calls = [_call(WALL0), _task_step(WALL0 + 60)]
    report = fcr(calls, 3600, WALL0 + 7200)
    assert report.per_call == (True, None) and report.resolved == 1 and report.decided == 1
    assert fcr([_call(WALL0), _call(WALL0 + 60)], 3600, WALL0 + 7200).per_call[0] is False   # a real one does


def test_contact_quality_counts_no_task_step_as_a_call_or_a_repeat():
    w, r = 3600.0, 600.0
    now = WALL0 + 10_000
    answered = _call(now - w - r + 100)                        # decided, within the report window
    later = _call(now - 100)                                   # in the window, no call within r before it
    steps = [_task_step(answered.at + k) for k in (30, 60, 90)] + [_task_step(now - 150)]
    report = contact_quality([answered, later, *steps], now, w, r)
    q = report["q"]
    assert (q.resolved, q.called_back) == (1, 0)
    assert (q.first_calls, q.repeat_calls) == (1, 0)
    only_steps = contact_quality(steps, now, w, r)
    assert only_steps == {}


# ------------------------------------------------------------------------------- an older CRM file
async def test_a_crm_file_of_the_previous_schema_opens_and_its_rows_read_as_calls(tmp_path):
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE interactions (id INTEGER PRIMARY KEY AUTOINCREMENT, e164 TEXT, customer_id TEXT,
          at REAL NOT NULL, call_id TEXT NOT NULL DEFAULT '', did TEXT NOT NULL DEFAULT '',
          ivr_path TEXT NOT NULL DEFAULT '[]', keys TEXT NOT NULL DEFAULT '', queue TEXT,
          wait_seconds REAL NOT NULL DEFAULT 0, agent_id TEXT, outcome TEXT NOT NULL DEFAULT '',
          duration_seconds REAL NOT NULL DEFAULT 0);
        INSERT INTO interactions (e164, at, call_id, queue, agent_id, outcome)
          VALUES ('+33612345678', 1800000500, 'chan-old', 'q', 'a9', 'answered');
    """)
    db.commit()
    db.close()
    crm = SqliteCrm(path, clock=lambda: WALL0 + 1000)
    await crm.record_interaction(NUMBER, _task_step(WALL0 + 600))
    old, new = reversed(await crm.recent_interactions(NUMBER))
    assert old.kind == "call" and old.is_call and new.kind == "task" and not new.is_call
    assert await crm.history_flags(NUMBER) == (True, "a9")
    await crm.close()
