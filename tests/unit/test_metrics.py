"""ivr.metrics: names and types, live gauges read at scrape time, queue invariants, staffing figures,
cardinality guards, registry isolation."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ivr import staffing
from ivr.metrics import (
    AGENT_STATES,
    CONTENT_TYPE,
    NODE_EXITS,
    QUEUE_OUTCOMES,
    WAIT_BUCKETS,
    LiveStateProvider,
    Metrics,
    QueueSnapshot,
    crm_error_kind,
    queue_snapshot_from_view,
)


@dataclass
class FakeProvider:
    snapshots: list[QueueSnapshot] = field(default_factory=list)
    calls: int = 0
    bridges: int = 0
    connected: bool = True
    fail: bool = False
    reads: int = 0

    def queue_snapshots(self) -> list[QueueSnapshot]:
        self.reads += 1
        if self.fail:
            raise RuntimeError("router exploded")
        return list(self.snapshots)

    def active_calls(self) -> int:
        return self.calls

    def active_bridges(self) -> int:
        return self.bridges

    def ari_connected(self) -> bool:
        return self.connected


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def snap(queue="support", waiting=0, oldest=0.0, sl_t=20.0, sl=0.8, **states) -> QueueSnapshot:
    paused = states.pop("paused_by_reason", {})
    return QueueSnapshot(queue, waiting, oldest, states, paused, sl_t, sl)


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def types(m: Metrics) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(m.render().decode())}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def provider():
    return FakeProvider()


@pytest.fixture
def m(provider, clock):
    return Metrics(provider, registry=CollectorRegistry(), clock=clock)


# ------------------------------------------------------------------------------------ names / types
EXPECTED_TYPES = {
    "ivr_queue_calls_waiting": "gauge", "ivr_queue_oldest_wait_seconds": "gauge", "ivr_queue_agents": "gauge",
    "ivr_queue_agents_paused": "gauge", "ivr_active_calls": "gauge", "ivr_active_bridges": "gauge",
    "ivr_ari_connected": "gauge", "ivr_queue_wait_seconds": "histogram",
    "ivr_queue_calls_offered": "counter", "ivr_queue_calls_answered": "counter",
    "ivr_queue_calls_abandoned": "counter", "ivr_queue_calls_short_abandoned": "counter",
    "ivr_queue_calls_timed_out": "counter", "ivr_queue_calls_overflowed": "counter",
    "ivr_talk_seconds": "histogram", "ivr_wrapup_seconds": "histogram", "ivr_flow_calls": "counter",
    "ivr_flow_node_exits": "counter", "ivr_ari_reconnects": "counter",
    "ivr_ari_event_lag_seconds": "histogram",
    "ivr_routing_decision_seconds": "histogram", "ivr_crm_lookup_seconds": "histogram",
    "ivr_crm_errors": "counter", "ivr_queue_arrival_rate": "gauge", "ivr_queue_handle_time_seconds": "gauge",
    "ivr_queue_agents_needed": "gauge",
    # additions
    "ivr_queue_calls_answered_within_sl": "counter", "ivr_queue_calls_left_no_agents": "counter",
    "ivr_queue_calls_refused": "counter", "ivr_queue_service_level_target": "gauge",
    "ivr_queue_service_level_threshold_seconds": "gauge", "ivr_metrics_provider_up": "gauge",
    # overload (docs/overload.md)
    "ivr_calls_shed": "counter", "ivr_admission_shedding": "gauge", "ivr_janitor_cleaned": "counter",
    "ivr_autopause_suspended": "counter", "ivr_flow_escalations": "counter", "ivr_flow_transfers": "counter",
    # contact quality over a report window (ivr.crm.rules.contact_quality)
    "ivr_queue_first_contact_calls": "gauge", "ivr_queue_first_contact_resolution_ratio": "gauge",
    "ivr_queue_repeat_window_calls": "gauge", "ivr_queue_repeat_caller_ratio": "gauge",
    # tasks: callbacks, web callback requests, voicemails (ivr.task_metrics, fed by a TaskBook listener)
    "ivr_tasks_waiting": "gauge", "ivr_tasks_scheduled": "gauge", "ivr_tasks_oldest_wait_seconds": "gauge",
    "ivr_tasks": "counter", "ivr_task_offers": "counter", "ivr_task_attempts": "counter",
    "ivr_callback_time_to_callback_seconds": "histogram",
}


def record_one_of_each(m: Metrics) -> None:
    m.declare_queue("support", 20)
    m.declare_flow("main", ["welcome", "menu"])
    m.call_entered_flow("main")
    m.node_exit("main", "welcome", "next")
    m.queue_entered("support")
    m.queue_left("support", "answered", 3.0)
    m.queue_refused("support", "full")
    m.talk_finished("support", 120)
    m.wrap_up_finished("support", 15)
    m.routing_decision(0.0002)
    m.crm_lookup("http", "found", 0.03)
    m.crm_error("http", "timeout")
    m.ari_reconnected()
    m.event_lag(0.004)


def test_every_metric_has_its_name_and_type(m, provider):
    provider.snapshots = [snap(waiting=1, oldest=3, logged_in=2, available=1, paused=1,
                               paused_by_reason={"lunch": 1})]
    record_one_of_each(m)
    assert types(m) == EXPECTED_TYPES
    body = m.render().decode()
    for name in ("ivr_queue_calls_offered_total", "ivr_flow_node_exits_total", "ivr_ari_reconnects_total",
                 "ivr_crm_errors_total", "ivr_queue_wait_seconds_bucket",
                 "ivr_routing_decision_seconds_count"):
        assert name in body


def test_content_type_and_registry_isolation(provider, clock):
    a = Metrics(provider, registry=CollectorRegistry(), clock=clock)
    b = Metrics(provider, clock=clock)          # its own fresh registry
    assert a.registry is not b.registry and b.registry is not REGISTRY
    a.ari_reconnected()
    assert val(scrape(a), "ivr_ari_reconnects_total") == 1
    assert val(scrape(b), "ivr_ari_reconnects_total") == 0
    assert not [n for n in REGISTRY._names_to_collectors if n.startswith("ivr_")]
    assert CONTENT_TYPE.startswith("text/plain") and Metrics.CONTENT_TYPE == CONTENT_TYPE


def test_fake_provider_satisfies_protocol(provider):
    assert isinstance(provider, LiveStateProvider)


# ------------------------------------------------------------------------------------- live gauges
def test_live_gauges_are_read_at_scrape_time(m, provider):
    provider.snapshots = [snap(waiting=2, oldest=31.5, logged_in=4, available=1, on_call=2, paused=1,
                               paused_by_reason={"lunch": 1})]
    provider.calls, provider.bridges = 5, 2
    s = scrape(m)
    assert val(s, "ivr_queue_calls_waiting", queue="support") == 2
    assert val(s, "ivr_queue_oldest_wait_seconds", queue="support") == 31.5
    for state, n in {"logged_in": 4, "available": 1, "reserved": 0, "on_call": 2, "wrap_up": 0,
                     "paused": 1}.items():
        assert val(s, "ivr_queue_agents", queue="support", state=state) == n
    assert val(s, "ivr_queue_agents_paused", queue="support", reason="lunch") == 1
    assert val(s, "ivr_active_calls") == 5 and val(s, "ivr_active_bridges") == 2
    assert val(s, "ivr_ari_connected") == 1 and val(s, "ivr_metrics_provider_up") == 1
    assert val(s, "ivr_queue_service_level_target", queue="support") == 0.8
    assert val(s, "ivr_queue_service_level_threshold_seconds", queue="support") == 20
    # the router's state changes; nobody updates a gauge; the next scrape shows it
    provider.snapshots = [snap(waiting=0, oldest=99, logged_in=4, available=3, on_call=1)]
    provider.connected = False
    s = scrape(m)
    assert val(s, "ivr_queue_calls_waiting", queue="support") == 0
    assert val(s, "ivr_queue_oldest_wait_seconds", queue="support") == 0     # nobody waiting
    assert val(s, "ivr_queue_agents", queue="support", state="available") == 3
    assert val(s, "ivr_ari_connected") == 0
    assert ("ivr_queue_agents_paused", (("queue", "support"), ("reason", "lunch"))) not in s


def test_registering_does_not_read_the_provider(provider, clock):
    provider.fail = True
    Metrics(provider, registry=CollectorRegistry(), clock=clock)
    assert provider.reads == 0


def test_failing_provider_does_not_break_the_scrape(m, provider, caplog):
    m.ari_reconnected()
    provider.fail = True
    s = scrape(m)
    assert val(s, "ivr_metrics_provider_up") == 0
    assert val(s, "ivr_ari_reconnects_total") == 1
    assert not [k for k in s if k[0] == "ivr_ari_connected"]
    assert "live state provider failed" in caplog.text


def test_no_provider_yet(clock):
    m = Metrics(registry=CollectorRegistry(), clock=clock)
    assert val(scrape(m), "ivr_metrics_provider_up") == 0
    p = FakeProvider(calls=3)
    m.set_provider(p)
    assert val(scrape(m), "ivr_active_calls") == 3


# -------------------------------------------------------------------------------------- queue counts
def test_queue_invariants(m, provider):
    m.declare_queue("support", sl_threshold_seconds=20)
    waits = {"answered": [5, 20, 21, 100], "abandoned": [2, 40], "timeout": [300], "overflow": [60],
             "no_agents": [12]}
    for outcome, ws in waits.items():
        for w in ws:
            m.queue_entered("support")
            m.queue_left("support", outcome, w, short_abandon=(outcome == "abandoned" and w < 5))
    for _ in range(3):
        m.queue_entered("support")          # still waiting
    provider.snapshots = [snap(waiting=3, oldest=1)]
    s = scrape(m)
    q = {"queue": "support"}
    offered = val(s, "ivr_queue_calls_offered_total", **q)
    left = sum(val(s, "ivr_queue_wait_seconds_count", queue="support", outcome=o) for o in QUEUE_OUTCOMES)
    assert offered == 12 and left == 9
    assert offered == left + val(s, "ivr_queue_calls_waiting", **q)
    assert val(s, "ivr_queue_calls_answered_total", **q) == 4
    assert val(s, "ivr_queue_calls_answered_within_sl_total", **q) == 2       # 5 and 20 (<= threshold)
    assert val(s, "ivr_queue_calls_abandoned_total", **q) == 2
    assert val(s, "ivr_queue_calls_short_abandoned_total", **q) == 1
    assert val(s, "ivr_queue_calls_timed_out_total", **q) == 1
    assert val(s, "ivr_queue_calls_overflowed_total", to="flow", **q) == 1
    assert val(s, "ivr_queue_calls_left_no_agents_total", **q) == 1
    # "answered within T" read from the histogram bucket agrees with the counter for T = threshold
    assert val(s, "ivr_queue_wait_seconds_bucket", queue="support", outcome="answered", le="20.0") == 2
    assert val(s, "ivr_queue_wait_seconds_sum", queue="support", outcome="answered") == 146


def test_a_move_by_the_queues_overflow_leaves_one_queue_and_enters_the_other(m, provider):
    m.declare_queue("billing", 20, overflow_to="sales")
    m.declare_queue("sales", 30)
    assert val(scrape(m), "ivr_queue_calls_overflowed_total", queue="billing", to="sales") == 0
    m.queue_entered("billing")
    m.queue_moved("billing", "sales", 60)
    m.queue_entered("sales")
    m.queue_left("sales", "answered", 75)          # the whole wait: over sales' 30 s
    provider.snapshots = [snap("billing"), snap("sales")]
    s = scrape(m)
    assert val(s, "ivr_queue_calls_overflowed_total", queue="billing", to="sales") == 1
    assert val(s, "ivr_queue_calls_overflowed_total", queue="billing", to="flow") == 0
    assert val(s, "ivr_queue_wait_seconds_sum", queue="billing", outcome="overflow") == 60
    for q in ("billing", "sales"):              # offered = left + waiting, in each queue
        left = sum(val(s, "ivr_queue_wait_seconds_count", queue=q, outcome=o) for o in QUEUE_OUTCOMES)
        assert val(s, "ivr_queue_calls_offered_total", queue=q) == left == 1
    assert val(s, "ivr_queue_calls_answered_within_sl_total", queue="sales") == 0


def test_declared_series_exist_at_zero(m):
    m.declare_queue("sales", 30)
    m.declare_flow("main", ["a"])
    s = scrape(m)
    for name in ("ivr_queue_calls_offered_total", "ivr_queue_calls_answered_total",
                 "ivr_queue_calls_abandoned_total", "ivr_queue_calls_timed_out_total"):
        assert val(s, name, queue="sales") == 0
    for outcome in QUEUE_OUTCOMES:
        assert val(s, "ivr_queue_wait_seconds_count", queue="sales", outcome=outcome) == 0
    assert val(s, "ivr_queue_calls_refused_total", queue="sales", reason="full") == 0
    assert val(s, "ivr_flow_calls_total", flow="main") == 0


def test_within_sl_uses_the_declared_threshold(m):
    m.declare_queue("sales", sl_threshold_seconds=30)
    m.queue_left("sales", "answered", 25)
    m.queue_left("sales", "answered", 30)
    m.queue_left("sales", "answered", 30.01)
    assert val(scrape(m), "ivr_queue_calls_answered_within_sl_total", queue="sales") == 2


def test_undeclared_queue_uses_default_threshold_and_warns(m, caplog):
    m.queue_left("q2", "answered", 19)
    m.queue_left("q2", "answered", 21)
    assert val(scrape(m), "ivr_queue_calls_answered_within_sl_total", queue="q2") == 1
    assert "declare_queue" in caplog.text


def test_outcome_enum_members_are_accepted(m):
    from ivr.acd.record import CallOutcome

    m.queue_left("support", CallOutcome.ABANDONED, 3, short_abandon=True)
    s = scrape(m)
    assert val(s, "ivr_queue_calls_abandoned_total", queue="support") == 1
    assert val(s, "ivr_queue_wait_seconds_count", queue="support", outcome="abandoned") == 1
    with pytest.raises(ValueError, match="queue_refused"):
        m.queue_left("support", CallOutcome.FULL, 0)


def test_unknown_outcome_is_a_programming_error(m):
    with pytest.raises(ValueError):
        m.queue_left("support", "gave_up", 1)
    m.queue_refused("support", "full")
    m.queue_refused("support", "weird")
    s = scrape(m)
    assert val(s, "ivr_queue_calls_refused_total", queue="support", reason="full") == 1
    assert val(s, "ivr_queue_calls_refused_total", queue="support", reason="other") == 1


def test_short_abandon_only_counts_with_abandoned(m):
    m.queue_left("support", "answered", 1, short_abandon=True)
    assert val(scrape(m), "ivr_queue_calls_short_abandoned_total", queue="support") == 0


def test_bad_durations_never_raise(m):
    m.queue_left("support", "answered", -0.2)       # clock skew: clamped to 0
    m.talk_finished("support", float("nan"))         # dropped
    m.routing_decision("x")                          # dropped
    s = scrape(m)
    assert val(s, "ivr_queue_wait_seconds_bucket", queue="support", outcome="answered", le="1.0") == 1
    assert val(s, "ivr_queue_calls_answered_total", queue="support") == 1
    assert val(s, "ivr_talk_seconds_count", queue="support") == 0
    assert val(s, "ivr_routing_decision_seconds_count") == 0


def test_wait_buckets_hold_every_common_sl_threshold():
    for t in (10, 15, 20, 30, 45, 60, 90, 120, 180, 300):
        assert t in WAIT_BUCKETS


def test_routing_buckets_are_sub_millisecond(m):
    m.routing_decision(0.00003)
    s = scrape(m)
    assert val(s, "ivr_routing_decision_seconds_bucket", le="5e-05") == 1
    assert val(s, "ivr_routing_decision_seconds_bucket", le="2.5e-05") == 0


# ------------------------------------------------------------------------------------------ flows/CRM
def test_flow_counts_and_exit_enum(m):
    m.declare_flow("main", ["welcome", "menu"])
    m.call_entered_flow("main")
    m.call_entered_flow("main")
    m.node_exit("main", "welcome", "next")
    m.node_exit("main", "menu", "hangup")
    m.node_exit("main", "menu", "free text the caller typed")
    s = scrape(m)
    assert val(s, "ivr_flow_calls_total", flow="main") == 2
    assert val(s, "ivr_flow_node_exits_total", flow="main", node="menu", exit="hangup") == 1
    assert val(s, "ivr_flow_node_exits_total", flow="main", node="menu", exit="other") == 1
    assert {"next", "hangup", "queue", "transfer", "voicemail"} <= set(NODE_EXITS)


def test_crm_labels_are_bounded(m):
    m.crm_lookup("http", "found", 0.02)
    m.crm_lookup("mystery-backend", "exploded", 0.02)
    for reason in ("http_503", "bad_json", "timeout", "client_OSError", "disconnected", "circuit_open", "?"):
        m.crm_error("http", reason)
    s = scrape(m)
    assert val(s, "ivr_crm_lookup_seconds_count", backend="http", status="found") == 1
    assert val(s, "ivr_crm_lookup_seconds_count", backend="other", status="other") == 1
    assert val(s, "ivr_crm_errors_total", backend="http", kind="http") == 1
    assert val(s, "ivr_crm_errors_total", backend="http", kind="connect") == 2
    assert val(s, "ivr_crm_errors_total", backend="http", kind="bad_response") == 1
    assert val(s, "ivr_crm_errors_total", backend="http", kind="other") == 1
    assert crm_error_kind("history_http_500") == "http"


def test_declared_crm_backend_has_every_series_at_zero(m):
    assert not [k for k in scrape(m) if k[0].startswith("ivr_crm_")]
    m.declare_crm_backend("sqlite")
    s = scrape(m)
    for status in ("found", "not_found", "anonymous", "error", "timeout", "circuit_open"):
        assert val(s, "ivr_crm_lookup_seconds_count", backend="sqlite", status=status) == 0
    for kind in ("timeout", "connect", "http", "bad_response", "circuit_open", "exception"):
        assert val(s, "ivr_crm_errors_total", backend="sqlite", kind=kind) == 0
    m.crm_error("sqlite", "exception")
    assert val(scrape(m), "ivr_crm_errors_total", backend="sqlite", kind="exception") == 1


# --------------------------------------------------------------------------------------- cardinality
def test_name_guards(provider, clock):
    m = Metrics(provider, registry=CollectorRegistry(), clock=clock, max_names=3)
    m.call_entered_flow("bad\nname")
    for f in ("f1", "f2", "f3", "f4", "f5"):
        m.call_entered_flow(f)
    s = scrape(m)
    flows = {dict(k[1])["flow"] for k in s if k[0] == "ivr_flow_calls_total"}
    assert flows == {"_invalid", "f1", "f2", "_other"}


def test_pause_reasons_are_bounded(provider, clock):
    provider.snapshots = [snap(paused=4, paused_by_reason={"lunch": 1, "no-answer": 1, "x" * 60: 1,
                                                             "drop table; --": 1})]
    s = scrape(Metrics(provider, registry=CollectorRegistry(), clock=clock))
    reasons = {dict(k[1])["reason"]: v for k, v in s.items() if k[0] == "ivr_queue_agents_paused"}
    assert reasons == {"lunch": 1, "no-answer": 1, "other": 2}
    m2 = Metrics(provider, registry=CollectorRegistry(), clock=clock, pause_reasons=["lunch"])
    reasons = {dict(k[1])["reason"]: v for k, v in scrape(m2).items() if k[0] == "ivr_queue_agents_paused"}
    assert reasons == {"lunch": 1, "other": 3}


def test_unknown_agent_states_are_ignored(m, provider):
    provider.snapshots = [snap(available=1, logged_out=7, dancing=2)]
    states = {dict(k[1])["state"] for k in scrape(m) if k[0] == "ivr_queue_agents"}
    assert states == set(AGENT_STATES)


# ------------------------------------------------------------------------------------------- staffing
def test_arrival_rate_over_sliding_window(m, provider, clock):
    provider.snapshots = [snap()]
    clock.t += 900                                   # a full window since start
    for _ in range(90):
        m.queue_entered("support")
    assert val(scrape(m), "ivr_queue_arrival_rate", queue="support") == pytest.approx(90 / 900)
    clock.t += 450
    for _ in range(45):
        m.queue_entered("support")
    assert val(scrape(m), "ivr_queue_arrival_rate", queue="support") == pytest.approx(135 / 900)
    clock.t += 451                                   # the first 90 slide out
    assert val(scrape(m), "ivr_queue_arrival_rate", queue="support") == pytest.approx(45 / 900)
    clock.t += 900
    s = scrape(m)
    assert val(s, "ivr_queue_arrival_rate", queue="support") == 0
    assert val(s, "ivr_queue_agents_needed", queue="support") == 0


def test_rate_right_after_start_uses_elapsed_time_with_a_floor(m, provider, clock):
    provider.snapshots = [snap()]
    m.queue_entered("support")
    assert val(scrape(m), "ivr_queue_arrival_rate", queue="support") == pytest.approx(1 / 60)
    clock.t += 300
    assert val(scrape(m), "ivr_queue_arrival_rate", queue="support") == pytest.approx(1 / 300)


def test_handle_time_is_talk_plus_wrap_per_handled_call(m, provider, clock):
    provider.snapshots = [snap()]
    assert ("ivr_queue_handle_time_seconds", (("queue", "support"),)) not in scrape(m)   # unknown yet
    m.talk_finished("support", 100)
    m.talk_finished("support", 200)
    m.wrap_up_finished("support", 30)                # only one call had wrap-up
    assert val(scrape(m), "ivr_queue_handle_time_seconds", queue="support") == pytest.approx(165)
    clock.t += 2000                                  # window empties: the last value is kept
    assert val(scrape(m), "ivr_queue_handle_time_seconds", queue="support") == pytest.approx(165)
    m.talk_finished("support", 60)
    assert val(scrape(m), "ivr_queue_handle_time_seconds", queue="support") == pytest.approx(60)


def test_agents_needed_is_erlang_c_of_live_figures(provider, clock):
    # 100 calls in 30 min (window), AHT 180 s, 80 % in 20 s -> the textbook 14 agents
    m = Metrics(provider, registry=CollectorRegistry(), clock=clock, staffing_window_seconds=1800)
    provider.snapshots = [snap(sl_t=20, sl=0.8, logged_in=15, available=3)]
    clock.t += 1800
    for _ in range(100):
        m.queue_entered("support")
    m.talk_finished("support", 160)
    m.wrap_up_finished("support", 20)
    s = scrape(m)
    assert val(s, "ivr_queue_arrival_rate", queue="support") == pytest.approx(100 / 1800)
    assert val(s, "ivr_queue_handle_time_seconds", queue="support") == pytest.approx(180)
    assert val(s, "ivr_queue_agents_needed", queue="support") == 14
    assert 14 == staffing.agents_needed(100 / 1800, 180, 0.8, 20)
    # a stricter target on the same traffic needs more agents
    provider.snapshots = [snap(sl_t=10, sl=0.9)]
    assert val(scrape(m), "ivr_queue_agents_needed", queue="support") > 14


def test_agents_needed_without_handle_time_or_unreachable(m, provider, clock):
    provider.snapshots = [snap(sl=0.8)]
    m.queue_entered("support")
    s = scrape(m)
    assert ("ivr_queue_agents_needed", (("queue", "support"),)) not in s      # rate > 0, AHT unknown
    m.talk_finished("support", 100)
    provider.snapshots = [snap(sl=1.0)]                                          # 100 %: never reachable
    assert math.isinf(val(scrape(m), "ivr_queue_agents_needed", queue="support"))


# ------------------------------------------------------------------------------------------ adapters
def test_queue_snapshot_from_router_view():
    view = SimpleNamespace(name="support", waiting=2, ringing=1, longest_wait=42.0,
                           agents_by_state={"logged_out": 3, "available": 1, "reserved": 1, "on_call": 2,
                                            "wrap_up": 0, "paused": 1},
                           paused_by_reason={"lunch": 1}, service_level_target=(80.0, 20.0))
    s = queue_snapshot_from_view(view)
    assert s == QueueSnapshot("support", 3, 42.0, {"logged_out": 3, "available": 1, "reserved": 1,
                                                   "on_call": 2, "wrap_up": 0, "paused": 1, "logged_in": 5},
                              {"lunch": 1}, 20.0, 0.8)


def test_queue_snapshot_from_router_view_counts_callers_not_tasks():
    """A callback the router holds in the queue is not a caller waiting on the line: it is never offered
    nor answered as a call (ivr_queue_calls_*), so the waiting gauge leaves it to ivr_tasks_waiting."""
    calls = (SimpleNamespace(kind="callback", wait=900.0), SimpleNamespace(kind="call", wait=12.0),
             SimpleNamespace(kind="call", wait=30.0), SimpleNamespace(kind="web_callback", wait=5.0))
    view = SimpleNamespace(name="support", calls=calls, waiting=3, ringing=1, longest_wait=900.0,
                           agents_by_state={}, paused_by_reason={}, service_level_target=(80.0, 20.0))
    s = queue_snapshot_from_view(view)
    assert (s.waiting, s.oldest_wait_seconds) == (2, 30.0)
    only_tasks = SimpleNamespace(**{**vars(view), "calls": calls[:1], "waiting": 1, "ringing": 0})
    s = queue_snapshot_from_view(only_tasks)
    assert (s.waiting, s.oldest_wait_seconds) == (0, 0.0)


def test_router_view_still_has_the_fields_the_adapter_reads():
    dataclasses = pytest.importorskip("dataclasses")
    views = pytest.importorskip("ivr.acd.views")
    names = {f.name for f in dataclasses.fields(views.QueueSnapshot)}
    assert {"name", "calls", "waiting", "ringing", "longest_wait", "agents_by_state", "paused_by_reason",
            "service_level_target"} <= names
    assert {"kind", "wait"} <= {f.name for f in dataclasses.fields(views.CallSnapshot)}


def test_aiohttp_handler(m):
    resp = asyncio.run(m.aiohttp_handler()(None))
    assert resp.headers["Content-Type"] == CONTENT_TYPE
    assert b"ivr_ari_reconnects_total" in resp.body


def test_overload_metrics_count_shed_calls_and_cleaned_leftovers(provider, clock):
    m = Metrics(provider, registry=CollectorRegistry(), clock=clock)
    body = m.render().decode()
    # every series exists from the start at 0, so rate() and alerts work from the first shed call
    assert 'ivr_calls_shed_total{stage="dialplan"} 0.0' in body
    assert 'ivr_admission_shedding{reason="event_lag"} 0.0' in body
    m.calls_shed("dialplan", 5)
    m.calls_shed("app")
    m.calls_shed("app", 0)
    m.admission_state("capacity")
    m.janitor_cleaned("bridge", 2)
    body = m.render().decode()
    assert 'ivr_calls_shed_total{stage="dialplan"} 5.0' in body
    assert 'ivr_calls_shed_total{stage="app"} 1.0' in body
    assert 'ivr_admission_shedding{reason="capacity"} 1.0' in body
    assert 'ivr_admission_shedding{reason="event_lag"} 0.0' in body
    assert 'ivr_janitor_cleaned_total{what="bridge"} 2.0' in body
    m.admission_state(None)
    assert 'ivr_admission_shedding{reason="capacity"} 0.0' in m.render().decode()


def test_escalations_count_calls_handed_to_people_and_start_at_zero(provider, clock):
    m = Metrics(provider, registry=CollectorRegistry(), clock=clock)
    m.call_entered_flow("support")
    body = m.render().decode()
    assert 'ivr_flow_escalations_total{flow="support",to="queue"} 0.0' in body
    m.flow_escalated("support", "queue")
    m.flow_escalated("support", "transfer")
    m.flow_escalated("support", "elsewhere")
    body = m.render().decode()
    assert 'ivr_flow_escalations_total{flow="support",to="queue"} 1.0' in body
    assert 'ivr_flow_escalations_total{flow="support",to="transfer"} 1.0' in body
    assert 'ivr_flow_escalations_total{flow="support",to="other"} 1.0' in body


def test_transfers_are_counted_by_kind_and_outcome(m):
    m.transfer_ended("internal", "answered")
    m.transfer_ended("external", "busy")
    m.transfer_ended("external", "busy")
    m.transfer_ended("sideways", "exploded")
    body = m.render().decode()
    assert 'ivr_flow_transfers_total{kind="internal",outcome="answered"} 1.0' in body
    assert 'ivr_flow_transfers_total{kind="external",outcome="busy"} 2.0' in body
    assert 'ivr_flow_transfers_total{kind="other",outcome="other"} 1.0' in body
