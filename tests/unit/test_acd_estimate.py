"""Estimated wait (ivr/acd/estimate.py) with a fake clock: position over the recent departure rate, and no
estimate at all without data; the router's snapshots and the announcement media use it."""

from __future__ import annotations

import pytest

from ivr.acd import AgentConfig, Call, QueueConfig, Router
from ivr.acd.estimate import MIN_SPAN, WINDOW, DepartureRate
from ivr.calls.waiting_media import announcement_media


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_no_departure_no_estimate():
    d = DepartureRate(started=0.0)
    assert d.rate(500.0) is None
    assert d.estimate(1, 500.0) is None and d.estimate(5, 500.0) is None


def test_estimate_is_position_over_the_rate_in_the_window():
    d = DepartureRate(started=0.0)
    for t in range(110, 710, 60):         # 10 departures, one a minute
        d.record(float(t))
    now = 700.0
    assert d.count(now) == 10
    assert d.rate(now) == pytest.approx(10 / WINDOW)
    assert d.estimate(1, now) == pytest.approx(60.0)
    assert d.estimate(2, now) == pytest.approx(120.0)     # grows with the position
    assert d.estimate(5, now) == pytest.approx(300.0)
    assert d.estimate(None, now) is None


def test_old_departures_leave_the_window_and_then_there_is_no_estimate():
    d = DepartureRate(started=0.0)
    d.record(100.0)
    d.record(160.0)
    assert d.estimate(1, 650.0) == pytest.approx(WINDOW / 2)
    assert d.count(720.0) == 1                           # 100 + 600 <= 720: out
    assert d.estimate(1, 770.0) is None                   # both out: no data, no number


def test_right_after_start_the_span_is_at_least_min_span():
    d = DepartureRate(started=0.0)
    d.record(2.0)
    assert d.rate(3.0) == pytest.approx(1 / MIN_SPAN)    # not one a second
    d2 = DepartureRate(started=0.0)
    for t in range(10):
        d2.record(100.0 + t)
    assert d2.rate(200.0) == pytest.approx(10 / 200.0)    # since start, shorter than the window


def _router():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"s": 1})], clock)
    r.add_agent(AgentConfig("a1", skills={"s": 1}))
    return r, clock


def test_router_estimate_depends_on_position_and_departures():
    r, clock = _router()
    for i in range(3):
        r.enqueue(Call(f"c{i}", "q"))
        clock.t += 1
    snap = r.queue_snapshot("q")
    assert [c.position for c in snap.calls] == [1, 2, 3]
    assert [c.estimated_wait for c in snap.calls] == [None, None, None]      # nobody left yet
    clock.t += 10
    r.abandon("c0")                          # one departure: 1 per 60 s (the span's floor)
    snap = r.queue_snapshot("q")
    assert [c.call_id for c in snap.calls] == ["c1", "c2"]
    assert [c.estimated_wait for c in snap.calls] == [pytest.approx(60.0), pytest.approx(120.0)]
    assert r.call_snapshot("c2").estimated_wait == pytest.approx(120.0)
    # an answered call is a departure too (at the answer, not at its end)
    r.login("a1")
    r.offer_answered("c1")
    assert r.call_snapshot("c2").estimated_wait == pytest.approx(60.0 / 2)
    assert r.call_snapshot("c1").estimated_wait is None                      # answered
    # the call's end is no second departure; old departures fall out of the window
    r.call_ended("c1")
    assert r.call_snapshot("c2").estimated_wait == pytest.approx(30.0)
    clock.t += WINDOW + 1
    assert r.call_snapshot("c2").estimated_wait is None


def test_refusals_are_no_departures():
    clock = Clock()
    r = Router([QueueConfig("q", required_skills={"s": 1}, max_length=1)], clock)
    r.enqueue(Call("c1", "q"))
    r.enqueue(Call("c2", "q"))              # refused: full
    assert r.call_snapshot("c1").estimated_wait is None


def test_announcement_media():
    assert announcement_media(1, None) == ["sound:queue-youarenext"]
    assert announcement_media(2, None) == ["sound:queue-thereare", "number:2", "sound:queue-callswaiting"]
    assert announcement_media(None, None) == []
    assert announcement_media(None, 20.0) == ["sound:queue-holdtime", "number:1", "sound:queue-minute"]
    assert announcement_media(3, 121.0)[-3:] == ["sound:queue-holdtime", "number:3", "sound:queue-minutes"]
