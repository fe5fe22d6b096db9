"""/metrics after a scripted set of real calls on the real Asterisk: answered, abandoned and timed out,
across two queues. Counts and histogram totals are exact; agent gauges match the agents' real states;
the staffing figure matches an Erlang C computed by hand from the exported rate and handle time."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _v(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _erlang_c_agents(rate: float, aht: float, target: float, t: float) -> int:
    """Smallest N with 1 - C(N, A) * exp(-(N - A) * t / aht) >= target (textbook factorial form)."""
    a = rate * aht
    n = max(1, math.ceil(a))
    while True:
        if n > a:
            top = a ** n / math.factorial(n) * n / (n - a)
            c = top / (sum(a ** k / math.factorial(k) for k in range(n)) + top)
            if 1 - c * math.exp(-(n - a) * t / aht) >= target:
                return n
        n += 1


async def _call(cfg, key, talk_ms=0):
    """talk_ms > 0: the caller hangs up after it; 0: the app ends the call (queue timeout -> hangup)."""
    steps = [("pause", 600), ("dtmf", key)] + ([("pause", talk_ms)] if talk_ms else [])
    call = SippCaller("400", steps=steps, end="hangup" if talk_ms else "wait_bye")
    r = await asyncio.to_thread(SippProcess(call, cfg.asterisk.sip_port, 60).wait)
    assert r.ok, r.stderr


async def test_metrics_count_exactly_what_the_calls_did(flow_cfg, phones):
    cfg = with_queue_overrides(flow_cfg, wrap_up=1, max_wait=2)
    phones("agent1")                       # billing agent; nobody serves technical
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        await _call(cfg, "1", 2500)                      # billing: answered, ~2 s talk
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 10)
        await app.acd.agent_action("agent1", "pause", "training")
        await _call(cfg, "1", 1200)                      # billing: abandoned after ~1 s (a short abandon)
        await _call(cfg, "2")                            # technical: times out after max_wait 2 s
        await assert_no_leaks(ari)
        s = _samples(app.metrics.render().decode())

    assert _v(s, "ivr_flow_calls_total", flow="acd") == 3
    assert _v(s, "ivr_queue_calls_offered_total", queue="billing") == 2
    assert _v(s, "ivr_queue_calls_answered_total", queue="billing") == 1
    assert _v(s, "ivr_queue_calls_abandoned_total", queue="billing") == 1
    assert _v(s, "ivr_queue_calls_short_abandoned_total", queue="billing") == 1
    assert _v(s, "ivr_queue_calls_offered_total", queue="technical") == 1
    assert _v(s, "ivr_queue_calls_timed_out_total", queue="technical") == 1
    assert _v(s, "ivr_queue_calls_answered_total", queue="technical") == 0
    assert _v(s, "ivr_queue_wait_seconds_count", queue="billing", outcome="answered") == 1
    assert _v(s, "ivr_queue_wait_seconds_count", queue="billing", outcome="abandoned") == 1
    assert _v(s, "ivr_queue_wait_seconds_count", queue="technical", outcome="timeout") == 1
    assert 1.9 <= _v(s, "ivr_queue_wait_seconds_sum", queue="technical", outcome="timeout") <= 3.0
    assert _v(s, "ivr_talk_seconds_count", queue="billing") == 1
    assert 1.0 <= _v(s, "ivr_talk_seconds_sum", queue="billing") <= 3.5
    # live gauges read at scrape time match the agent's real state
    assert _v(s, "ivr_queue_agents", queue="billing", state="paused") == 1
    assert _v(s, "ivr_queue_agents", queue="billing", state="available") == 0
    assert _v(s, "ivr_queue_agents_paused", queue="billing", reason="training") == 1
    assert _v(s, "ivr_queue_calls_waiting", queue="billing") == 0
    # staffing: Erlang C by hand from the exported arrival rate and handle time
    rate = _v(s, "ivr_queue_arrival_rate", queue="billing")
    aht = _v(s, "ivr_queue_handle_time_seconds", queue="billing")
    assert rate > 0 and aht > 0
    needed = _v(s, "ivr_queue_agents_needed", queue="billing")
    assert needed == _erlang_c_agents(rate, aht, 0.80, 20.0)
