"""First-contact resolution and repeat-caller rate per queue over a report window (ivr.crm.rules.
contact_quality), their gauges (Metrics.contact_quality) and the reporter that feeds them from the history."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.crm.errors import CrmConfigError
from ivr.crm.model import Interaction
from ivr.crm.quality import ContactQualityReporter
from ivr.crm.rules import QueueContactQuality, contact_quality
from ivr.metrics import Metrics

H = 3600.0
R = 24 * H          # repeat window
W = 24 * H          # report window
NOW = 1_000_000.0


def call(at: float, who: str | None, queue: str | None = "billing", outcome: str = "answered",
         customer: str | None = None) -> Interaction:
    return Interaction(at=at, caller=who, queue=queue, outcome=outcome, customer_id=customer)


def test_fcr_counts_answered_calls_whose_call_back_window_closed_in_the_report_window():
    t0 = NOW - R - 10 * H                                     # decided: its 24 h ended 10 h ago
    calls = [
        call(t0, "+1"),                                         # +1 calls back 2 h later: not resolved
        call(t0 + 2 * H, "+1", queue=None, outcome="ivr"),      # (the call-back went nowhere near a queue)
        call(t0, "+2"),                                         # +2 never calls again: resolved
        call(t0 + H, "+3", outcome="abandoned"),                # not answered: no FCR verdict
        call(t0, None),                                         # withheld: no identity
        call(NOW - R - W - H, "+4"),                            # before the report window: ignored
        call(NOW - H, "+5"),                                    # undecided yet (window still open)
        call(t0 + 5 * H, "+6", queue="sales"),                  # resolved, in sales
        call(t0 + 3 * H, "+7", customer="C7"),                  # a customer who calls back from another
        call(t0 + 4 * H, "+8", customer="C7", queue="sales", outcome="abandoned"),   # number: not resolved
    ]
    q = contact_quality(calls, NOW, W, R)
    assert (q["billing"].resolved, q["billing"].called_back) == (1, 2)
    assert q["billing"].first_contact_resolution == pytest.approx(1 / 3)
    assert (q["sales"].resolved, q["sales"].called_back) == (1, 0)
    assert q["sales"].first_contact_resolution == 1.0


def test_call_back_exactly_at_the_window_edge_counts_and_one_second_later_does_not():
    t0 = NOW - R - H
    q = contact_quality([call(t0, "+1"), call(t0 + R, "+1", queue=None), call(t0, "+2"),
                         call(t0 + R + 1, "+2", queue=None)], NOW, W, R)
    assert (q["billing"].resolved, q["billing"].called_back) == (1, 1)


def test_repeat_callers_are_calls_in_the_window_whose_caller_had_called_within_the_repeat_window():
    calls = [
        call(NOW - W - 2 * H, "+1", queue=None, outcome="ivr"),   # earlier call, before the report window
        call(NOW - W + H, "+1", outcome="abandoned"),             # 3 h later: a repeat (any outcome)
        call(NOW - 3 * H, "+2"),                                  # first
        call(NOW - 2 * H, "+2", queue="sales"),                   # repeat, in sales
        call(NOW - 10, "+3"),                                     # first (+3's earlier call is > R before)
        call(NOW - R - 20, "+3", queue=None),
        call(NOW - H, None),                                      # withheld: in neither
        call(NOW + 5, "+9"),                                      # in the future: ignored
    ]
    q = contact_quality(calls, NOW, W, R)
    assert (q["billing"].first_calls, q["billing"].repeat_calls) == (2, 1)
    assert q["billing"].repeat_caller_rate == pytest.approx(1 / 3)
    assert (q["sales"].first_calls, q["sales"].repeat_calls) == (0, 1)
    assert q["sales"].repeat_caller_rate == 1.0


def test_nothing_to_report():
    assert contact_quality([], NOW, W, R) == {}
    empty = QueueContactQuality("billing")
    assert empty.first_contact_resolution is None and empty.repeat_caller_rate is None
    with pytest.raises(CrmConfigError):
        contact_quality([], NOW, 0, R)


def _samples(m: Metrics) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples}


def test_gauges_follow_the_latest_report():
    m = Metrics()
    m.declare_queue("billing")
    m.declare_queue("sales")
    s = _samples(m)
    b = ("queue", "billing")
    assert s[("ivr_queue_first_contact_calls", frozenset({b, ("verdict", "resolved")}))] == 0
    assert s[("ivr_queue_repeat_window_calls", frozenset({("queue", "sales"), ("caller", "repeat")}))] == 0
    assert not [k for k in s if k[0].endswith("_ratio")]          # no call, no ratio

    m.contact_quality({"billing": QueueContactQuality("billing", 3, 1, 6, 2)})
    s = _samples(m)
    assert s[("ivr_queue_first_contact_calls", frozenset({b, ("verdict", "resolved")}))] == 3
    assert s[("ivr_queue_first_contact_calls", frozenset({b, ("verdict", "called_back")}))] == 1
    assert s[("ivr_queue_first_contact_resolution_ratio", frozenset({b}))] == 0.75
    assert s[("ivr_queue_repeat_window_calls", frozenset({b, ("caller", "first")}))] == 6
    assert s[("ivr_queue_repeat_window_calls", frozenset({b, ("caller", "repeat")}))] == 2
    assert s[("ivr_queue_repeat_caller_ratio", frozenset({b}))] == 0.25
    assert ("ivr_queue_repeat_caller_ratio", frozenset({("queue", "sales")})) not in s

    m.contact_quality({})                                        # the calls left the window
    s = _samples(m)
    assert s[("ivr_queue_first_contact_calls", frozenset({b, ("verdict", "resolved")}))] == 0
    assert not [k for k in s if k[0].endswith("_ratio")]


class History:
    def __init__(self, calls):
        self.calls = calls
        self.asked: list[tuple[float, float]] = []

    async def interactions_between(self, start, end):
        self.asked.append((start, end))
        return [c for c in self.calls if start <= c.at < end]


async def test_reporter_reads_the_history_over_both_windows_and_feeds_the_sink():
    got = []
    hist = History([call(NOW - R - H, "+1"), call(NOW - H, "+1")])
    rep = ContactQualityReporter(hist, got.append, window_seconds=W, repeat_window_seconds=R,
                                 interval_seconds=0.01, clock=lambda: NOW)
    report = await rep.refresh()
    assert hist.asked[0][0] == NOW - W - R and hist.asked[0][1] >= NOW
    assert got == [report]
    assert (report["billing"].called_back, report["billing"].repeat_calls) == (1, 1)


async def test_reporter_survives_a_failing_history():
    got = []

    class Broken(History):
        async def interactions_between(self, start, end):
            self.asked.append((start, end))
            if len(self.asked) == 1:
                raise OSError("disk")
            return []

    hist = Broken([])
    rep = ContactQualityReporter(hist, got.append, window_seconds=W, repeat_window_seconds=R,
                                 interval_seconds=0.01, clock=lambda: NOW)
    task = asyncio.create_task(rep.run())
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(hist.asked) >= 2 and got and got[0] == {}


async def test_guarded_lookup_gives_the_store_history(tmp_path):
    from ivr.crm.factory import contact_quality_from_config, crm_from_config

    crm = crm_from_config({"backend": "sqlite", "sqlite": {"path": str(tmp_path / "c.sqlite")}})
    await crm.record_interaction("+442079460001", call(NOW - H, None))
    await crm.record_interaction("+442079460001", call(NOW - 1, None))
    got = []
    rep = contact_quality_from_config({"report_window_hours": 2, "repeat_window_hours": 1}, crm, got.append)
    rep.clock = lambda: NOW
    report = await rep.refresh()
    await crm.close()
    assert (report["billing"].first_calls, report["billing"].repeat_calls) == (1, 1)
    assert (report["billing"].resolved, report["billing"].called_back) == (0, 1)
    with pytest.raises(CrmConfigError, match="report_window_hours"):
        crm_from_config({"backend": "sqlite", "report_window_hours": 0})
