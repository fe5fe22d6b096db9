"""The spelled-out ``as_dict`` of the hot snapshots equals the generic walk (a new field cannot be forgotten)."""

from dataclasses import asdict, fields

from ivr.acd.agent import AgentState
from ivr.acd.record import CallOutcome, CallRecord
from ivr.acd.views import AgentSnapshot, _plain


def test_an_agent_snapshot_dict_is_the_generic_walk_for_every_field():
    snaps = [
        AgentSnapshot(agent_id="a1", name="Ann", state=AgentState.AVAILABLE, pause_reason=None, registered=True,
                      misses=0, state_for=1.5, idle_for=1.5, call_id=None, queues=("billing", "support")),
        AgentSnapshot(agent_id="a2", name="Bo", state=AgentState.PAUSED, pause_reason="lunch", registered=False,
                      misses=2, state_for=30.0, idle_for=None, call_id="c9", queues=(), resting=True),
    ]
    for s in snaps:
        d = s.as_dict()
        assert d == _plain(s)
        assert list(d) == [f.name for f in fields(AgentSnapshot)]
        assert d["state"] == s.state.value and isinstance(d["queues"], list)


def test_a_call_record_dict_has_every_field_plain_and_the_derived_times():
    rec = CallRecord(call_id="c1", queue="support", priority=3, entered_at=10.0, offered_at=12.0, answered_at=15.0,
                     ended_at=75.0, agent_id="a1", outcome=CallOutcome.ANSWERED, offers=1, rona_count=0,
                     within_service_level=True, overflowed_from=("sales",), reason="")
    d = rec.as_dict()
    expected = asdict(rec)
    expected.update(outcome="answered", overflowed_from=["sales"], wait_time=5.0, talk_time=60.0)
    assert d == expected
