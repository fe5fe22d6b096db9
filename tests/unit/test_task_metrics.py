"""ivr.task_metrics: a real TaskBook (SQLite in memory, fake clocks) feeds the task counters and histogram
through its listener; the gauges are read from its open tasks at scrape time."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ivr.calls.task_book import NewTask, TaskBook
from ivr.metrics import Metrics
from ivr.task_metrics import TASK_KINDS, queue_figures
from ivr.tasks import SqliteTaskStore, TaskKind, TaskState
from ivr.tasks.policy import CallbackPolicy

WALL0 = 1_800_000_000.0
N1, N2, N3 = "+33612345678", "+33612345679", "+33612345670"


class Clocks:
    def __init__(self) -> None:
        self.wall, self.router = WALL0, 500.0

    def advance(self, s: float) -> None:
        self.wall += s
        self.router += s


class Provider:
    def queue_snapshots(self):
        return []

    def active_calls(self) -> int:
        return 0

    def active_bridges(self) -> int:
        return 0

    def ari_connected(self) -> bool:
        return True


class World:
    def __init__(self, max_attempts: int = 2, store=None) -> None:
        self.clocks = Clocks()
        self.metrics = Metrics(Provider(), registry=CollectorRegistry())
        self.metrics.declare_queue("q", 20)
        n = iter(range(1, 1000))
        self.book = TaskBook(store or SqliteTaskStore(), CallbackPolicy(retry_delay=120, max_attempts=max_attempts),
                             wall_clock=lambda: self.clocks.wall, router_clock=lambda: self.clocks.router,
                             new_id=lambda: f"task-{next(n)}")
        self.book.listeners.append(self.metrics.tasks.on_change)
        self.metrics.tasks.set_source(self.book.open_tasks, clock=lambda: self.clocks.wall)

    def scrape(self) -> dict:
        out = {}
        for fam in text_string_to_metric_families(self.metrics.render().decode()):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def val(self, name: str, **labels) -> float:
        return self.scrape()[(name, tuple(sorted(labels.items())))]

    def callback(self, number: str = N1, *, waited: float = 0.0, kind=TaskKind.CALLBACK, queue: str = "q",
                 **kw):
        return self.book.add(NewTask(kind, queue, number=number, position_time=self.clocks.wall - waited, **kw))

    def take(self, task_id: str, agent: str = "a1") -> None:
        """Offered, the agent answers: the customer is being dialled."""
        assert self.book.offered(task_id, agent).state is TaskState.OFFERED
        assert self.book.agent_answered(task_id).state is TaskState.CONNECTING


@pytest.fixture
def w() -> World:
    return World()


def test_every_task_series_exists_at_zero_for_a_declared_queue(w):
    s = w.scrape()
    for k in TASK_KINDS:
        for name in ("ivr_tasks_waiting", "ivr_tasks_scheduled", "ivr_tasks_oldest_wait_seconds",
                     "ivr_task_offers_total", "ivr_callback_time_to_callback_seconds_count"):
            assert s[(name, (("kind", k), ("queue", "q")))] == 0, (name, k)
        for o in ("done", "failed", "expired", "cancelled"):
            assert s[("ivr_tasks_total", (("kind", k), ("outcome", o), ("queue", "q")))] == 0
        for r in ("answered", "busy", "no_answer", "failed"):
            assert s[("ivr_task_attempts_total", (("kind", k), ("queue", "q"), ("result", r)))] == 0


def test_answered_callback_counts_an_offer_an_answered_attempt_a_done_task_and_its_time_to_callback(w):
    t = w.callback(waited=100)
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 1
    w.clocks.advance(30)
    assert w.val("ivr_tasks_oldest_wait_seconds", queue="q", kind="callback") == 130
    w.take(t.id)
    # offered / connecting: no longer waiting
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 0
    assert w.val("ivr_tasks_oldest_wait_seconds", queue="q", kind="callback") == 0
    w.clocks.advance(20)
    assert w.book.customer_answered(t.id).state is TaskState.DONE
    assert w.val("ivr_task_offers_total", queue="q", kind="callback") == 1
    assert w.val("ivr_task_attempts_total", queue="q", kind="callback", result="answered") == 1
    assert w.val("ivr_tasks_total", queue="q", kind="callback", outcome="done") == 1
    # position time (the caller took their place 100 s before asking) -> the customer answered: 150 s
    assert w.val("ivr_callback_time_to_callback_seconds_count", queue="q", kind="callback") == 1
    assert w.val("ivr_callback_time_to_callback_seconds_sum", queue="q", kind="callback") == 150
    assert w.val("ivr_callback_time_to_callback_seconds_bucket", queue="q", kind="callback", le="120.0") == 0
    assert w.val("ivr_callback_time_to_callback_seconds_bucket", queue="q", kind="callback", le="300.0") == 1
    # other kinds untouched
    assert w.val("ivr_tasks_total", queue="q", kind="web_callback", outcome="done") == 0


def test_busy_then_no_answer_counts_two_attempts_and_one_failed_task(w):
    t = w.callback()
    w.take(t.id)
    retried = w.book.customer_failed(t.id, "busy")
    assert retried.state is TaskState.WAITING and retried.attempts == 1
    assert w.val("ivr_task_attempts_total", queue="q", kind="callback", result="busy") == 1
    assert w.val("ivr_tasks_total", queue="q", kind="callback", outcome="failed") == 0
    # held back until the retry: waiting and scheduled, not in the oldest wait
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 1
    assert w.val("ivr_tasks_scheduled", queue="q", kind="callback") == 1
    assert w.val("ivr_tasks_oldest_wait_seconds", queue="q", kind="callback") == 0
    w.clocks.advance(121)
    assert w.val("ivr_tasks_scheduled", queue="q", kind="callback") == 0
    assert w.val("ivr_tasks_oldest_wait_seconds", queue="q", kind="callback") == 121
    assert [x.id for x in w.book.release_due()] == [t.id]
    w.take(t.id, "a2")
    assert w.book.customer_failed(t.id, "no_answer").state is TaskState.FAILED
    assert w.val("ivr_task_attempts_total", queue="q", kind="callback", result="no_answer") == 1
    assert w.val("ivr_task_attempts_total", queue="q", kind="callback", result="answered") == 0
    assert w.val("ivr_tasks_total", queue="q", kind="callback", outcome="failed") == 1
    assert w.val("ivr_task_offers_total", queue="q", kind="callback") == 2
    assert w.val("ivr_callback_time_to_callback_seconds_count", queue="q", kind="callback") == 0
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 0


def test_a_failed_dial_out_for_an_unknown_reason_is_failed():
    w = World(max_attempts=3)
    t = w.callback()
    w.take(t.id)
    w.book.customer_failed(t.id, "failed")
    w.clocks.advance(121)
    w.book.release_due()
    w.take(t.id)
    w.book.customer_failed(t.id, "rejected")          # not a dial-out result the metrics know
    assert w.val("ivr_task_attempts_total", queue="q", kind="callback", result="failed") == 2


def test_agent_miss_and_agent_drop_use_no_attempt_and_end_nothing(w):
    t = w.callback()
    w.book.offered(t.id, "a1")
    w.book.agent_missed(t.id, "no-answer")
    w.take(t.id, "a2")
    w.book.agent_dropped(t.id)                         # the agent hung up while the customer's phone rang
    s = w.scrape()
    assert s[("ivr_task_offers_total", (("kind", "callback"), ("queue", "q")))] == 2
    assert sum(v for (n, _), v in s.items() if n in ("ivr_task_attempts_total", "ivr_tasks_total")) == 0
    assert s[("ivr_tasks_waiting", (("kind", "callback"), ("queue", "q")))] == 1


def test_expired_and_cancelled_by_kind(w):
    a = w.callback(N1, kind=TaskKind.WEB_CALLBACK, not_after=WALL0 + 60)
    b = w.callback(N2, kind=TaskKind.WEB_CALLBACK)
    w.callback(N3, kind=TaskKind.VOICEMAIL)
    assert w.val("ivr_tasks_waiting", queue="q", kind="web_callback") == 2
    assert w.val("ivr_tasks_waiting", queue="q", kind="voicemail") == 1
    w.clocks.advance(61)
    assert [t.id for t in w.book.expire_overdue()] == []           # not in the router: nothing to take out
    assert w.book.get(a.id).state is TaskState.EXPIRED
    w.book.cancel(b.id, "customer withdrew")
    assert w.val("ivr_tasks_total", queue="q", kind="web_callback", outcome="expired") == 1
    assert w.val("ivr_tasks_total", queue="q", kind="web_callback", outcome="cancelled") == 1
    assert w.val("ivr_tasks_waiting", queue="q", kind="web_callback") == 0
    assert w.val("ivr_tasks_waiting", queue="q", kind="voicemail") == 1


def test_a_second_request_for_the_same_number_counts_once(w):
    first = w.callback(N1, waited=50)
    again = w.callback(N1, kind=TaskKind.WEB_CALLBACK)
    assert again.id == first.id
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 1
    assert w.val("ivr_tasks_waiting", queue="q", kind="web_callback") == 0
    assert sum(v for (n, _), v in w.scrape().items() if n.endswith("_total")
               and n.startswith(("ivr_task", "ivr_tasks"))) == 0


def test_a_scheduled_request_waits_held_back_and_is_not_late(w):
    w.callback(N1, not_before=WALL0 + 3600)
    w.clocks.advance(600)
    assert w.val("ivr_tasks_waiting", queue="q", kind="callback") == 1
    assert w.val("ivr_tasks_scheduled", queue="q", kind="callback") == 1
    assert w.val("ivr_tasks_oldest_wait_seconds", queue="q", kind="callback") == 0


def test_tasks_reloaded_after_a_restart_count_nothing_again():
    store = SqliteTaskStore()
    w1 = World(store=store)
    t = w1.callback(waited=10)
    w1.take(t.id)
    w2 = World(store=store)                     # a new process on the same store
    w2.book.start()                             # the connection in flight goes back to its place
    s = w2.scrape()
    assert s[("ivr_tasks_waiting", (("kind", "callback"), ("queue", "q")))] == 1
    assert sum(v for (n, _), v in s.items() if n.endswith("_total") and n.startswith(("ivr_task", "ivr_tasks"))
               ) == 0


def test_a_queue_not_declared_gets_its_series_on_first_use(w):
    t = w.callback(queue="sales")
    s = w.scrape()
    assert s[("ivr_tasks_waiting", (("kind", "callback"), ("queue", "sales")))] == 1
    assert s[("ivr_tasks_waiting", (("kind", "voicemail"), ("queue", "sales")))] == 0
    w.book.cancel(t.id, "admin")
    assert w.val("ivr_tasks_total", queue="sales", kind="callback", outcome="cancelled") == 1


def test_unreadable_open_tasks_omit_the_gauges_and_keep_the_counters(w, caplog):
    def boom():
        raise RuntimeError("book exploded")

    w.metrics.tasks.set_source(boom)
    with caplog.at_level(logging.ERROR, logger="ivr.task_metrics"):
        s = w.scrape()
    assert not [k for k in s if k[0].startswith(("ivr_tasks_waiting", "ivr_tasks_oldest"))]
    assert s[("ivr_tasks_total", (("kind", "callback"), ("outcome", "done"), ("queue", "q")))] == 0
    assert "open tasks unreadable" in caplog.text
    assert s[("ivr_metrics_provider_up", ())] == 1


def test_wallboard_figures_per_queue(w):
    w.callback(N1, waited=30)
    w.callback(N2, kind=TaskKind.WEB_CALLBACK, not_before=WALL0 + 600)
    figures = w.metrics.tasks.waiting_by_queue()
    assert queue_figures(figures, "q") == {"tasks_waiting": 2, "tasks_scheduled": 1, "tasks_oldest_wait": 30.0,
                                           "tasks_by_kind": {"callback": 1, "web_callback": 1, "voicemail": 0}}
    assert queue_figures(figures, "nowhere") == {"tasks_waiting": 0, "tasks_scheduled": 0, "tasks_oldest_wait": 0,
                                                 "tasks_by_kind": {k: 0 for k in TASK_KINDS}}
    assert queue_figures(None, "q")["tasks_waiting"] is None         # unreadable: not a reassuring 0


def test_no_phone_number_in_any_label(w):
    t = w.callback(N1)
    w.take(t.id)
    w.book.customer_answered(t.id)
    assert "3361234" not in w.metrics.render().decode()
