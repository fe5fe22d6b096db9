"""The state a queued caller leaves on its channel for a restarted app, and the helpers that read ARI."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.calls.clock import to_monotonic
from ivr.calls.saved_state import QueueState, agent_endpoint_of, parse_ari_time
from ivr.calls.ids import AGENT_LEG


def test_queue_state_round_trip_keeps_everything_the_router_needs():
    s = QueueState("billing", 1795415540.102, 5, {"lang:fr": 1, "legacy": 2}, "Chloé \"VIP\" Dubois",
                   "support", "100")
    back = QueueState.decode(s.encode())
    assert back == s
    assert s.encode().isascii()          # channel variables are passed in a query string


@pytest.mark.parametrize("raw", [None, "", "x" * 5000, "not json", "[]", '{"q": 1, "t": 2}', '{"q": "b"}',
                                 '{"q": "b", "t": "yesterday"}', '{"q": "b", "t": true}',
                                 '{"q": "b", "t": 1, "x": {"s": "high"}}', '{"q": "", "t": 1}',
                                 '{"q": "b", "t": 1, "x": [1, 2]}'])
def test_anything_that_is_not_our_state_decodes_to_none(raw):
    assert QueueState.decode(raw) is None


@given(st.text(max_size=300))
def test_decode_never_raises(raw):
    QueueState.decode(raw)


def test_long_customer_names_are_cut():
    assert len(QueueState.decode(QueueState("q", 1.0, name="n" * 500).encode()).name) == 80


def test_agent_leg_ids_and_endpoints():
    assert AGENT_LEG.match("1795415522.6-a3")["call"] == "1795415522.6"
    assert AGENT_LEG.match("1795415522.6") is None
    assert agent_endpoint_of("PJSIP/agent1-0000002a") == "PJSIP/agent1"
    assert agent_endpoint_of("PJSIP/team-lead-0000002a") == "PJSIP/team-lead"


def test_ari_times():
    assert parse_ari_time("2026-11-23T06:50:00.123+0000") == pytest.approx(1795416600.123)
    assert parse_ari_time("garbage") is None and parse_ari_time(None) is None


class _Clock:
    def now(self):
        return 1000.0

    def wall(self):
        return 1_800_000_000.0


def test_wall_to_monotonic_counts_back_from_now():
    assert to_monotonic(_Clock(), 1_800_000_000.0 - 30) == pytest.approx(970.0)
    assert to_monotonic(_Clock(), 1_800_000_000.0 + 30) == pytest.approx(1000.0)   # never ahead
