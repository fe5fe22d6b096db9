"""Agent state machine: every (state, event) pair, legal or not, and the idle/miss bookkeeping."""

from __future__ import annotations

import itertools

import pytest

from ivr.acd import (
    NO_ANSWER,
    TRANSITIONS,
    Agent,
    AgentConfig,
    AgentEvent,
    AgentState,
    ConfigError,
    IllegalTransition,
    agent_from_dict,
)

S, E = AgentState, AgentEvent

# The legal moves, written out independently of the table under test.
EXPECTED = {
    (S.LOGGED_OUT, E.LOGIN): S.AVAILABLE,
    (S.AVAILABLE, E.LOGOUT): S.LOGGED_OUT,
    (S.AVAILABLE, E.PAUSE): S.PAUSED,
    (S.AVAILABLE, E.OFFER): S.RESERVED,
    (S.RESERVED, E.ANSWER): S.ON_CALL,
    (S.RESERVED, E.MISS): S.AVAILABLE,
    (S.RESERVED, E.CANCEL): S.AVAILABLE,
    (S.ON_CALL, E.CALL_END): S.WRAP_UP,
    (S.WRAP_UP, E.WRAP_UP_DONE): S.AVAILABLE,
    (S.WRAP_UP, E.PAUSE): S.PAUSED,
    (S.WRAP_UP, E.LOGOUT): S.LOGGED_OUT,
    (S.PAUSED, E.UNPAUSE): S.AVAILABLE,
    (S.PAUSED, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.LOGOUT): S.LOGGED_OUT,
    # adoption after a restart: the agent is found talking on one of our calls
    (S.LOGGED_OUT, E.ADOPT): S.ON_CALL,
    (S.AVAILABLE, E.ADOPT): S.ON_CALL,
    (S.PAUSED, E.ADOPT): S.ON_CALL,
    (S.WRAP_UP, E.ADOPT): S.ON_CALL,
}

# A path of legal events reaching each state from logged_out.
PATH = {
    S.LOGGED_OUT: [],
    S.AVAILABLE: [E.LOGIN],
    S.RESERVED: [E.LOGIN, E.OFFER],
    S.ON_CALL: [E.LOGIN, E.OFFER, E.ANSWER],
    S.WRAP_UP: [E.LOGIN, E.OFFER, E.ANSWER, E.CALL_END],
    S.PAUSED: [E.LOGIN, E.PAUSE],
}


def agent_in(state: AgentState) -> Agent:
    a = Agent(AgentConfig("a1", skills={"x": 3}), now=0.0)
    for i, ev in enumerate(PATH[state]):
        a.apply(ev, float(i + 1), reason="break" if ev is E.PAUSE else None,
                call_id="c1" if ev is E.OFFER else None)
    assert a.state is state
    return a


def kwargs_for(ev: AgentEvent) -> dict:
    return {"reason": "lunch" if ev is E.PAUSE else None, "call_id": "c9" if ev in (E.OFFER, E.ADOPT) else None}


def test_table_is_exactly_the_expected_one():
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize("state,event", sorted(itertools.product(S, E), key=str))
def test_every_pair(state: AgentState, event: AgentEvent):
    a = agent_in(state)
    before = (a.state, a.pause_reason, a.idle_since, a.state_since, a.misses, a.call_id, a.registered)
    if (state, event) in EXPECTED:
        old, new = a.apply(event, 100.0, **kwargs_for(event))
        assert (old, new) == (state, EXPECTED[(state, event)])
        assert a.state is new and a.state_since == 100.0
        assert (a.pause_reason == "lunch") == (new is S.PAUSED)
    else:
        with pytest.raises(IllegalTransition) as ei:
            a.apply(event, 100.0, **kwargs_for(event))
        assert ei.value.state is state and ei.value.event is event and ei.value.agent_id == "a1"
        after = (a.state, a.pause_reason, a.idle_since, a.state_since, a.misses, a.call_id, a.registered)
        assert after == before


def test_idle_since_restarts_on_return_to_work_but_not_on_cancel():
    a = agent_in(S.AVAILABLE)
    assert a.idle_since == 1.0
    a.apply(E.OFFER, 5.0, call_id="c1")
    a.apply(E.CANCEL, 6.0)  # caller hung up: not the agent's turn, keeps its place
    assert a.idle_since == 1.0 and a.call_id is None
    a.apply(E.OFFER, 7.0, call_id="c2")
    a.apply(E.MISS, 8.0)  # missed: the ring was its turn
    assert a.idle_since == 8.0 and a.misses == 1
    a.apply(E.OFFER, 9.0, call_id="c3")
    a.apply(E.ANSWER, 10.0)
    assert a.misses == 0 and a.call_id == "c3"
    a.apply(E.CALL_END, 20.0)
    assert a.call_id is None
    a.apply(E.WRAP_UP_DONE, 30.0)
    assert a.idle_since == 30.0 and a.state_since == 30.0


def test_pause_requires_reason_and_offer_requires_call():
    a = agent_in(S.AVAILABLE)
    with pytest.raises(ValueError):
        a.apply(E.PAUSE, 2.0)
    with pytest.raises(ValueError):
        a.apply(E.OFFER, 2.0)
    assert a.state is S.AVAILABLE


def test_offerable_needs_available_and_registered():
    a = agent_in(S.AVAILABLE)
    assert a.offerable
    a.registered = False
    assert not a.offerable
    assert NO_ANSWER == "no-answer"


def test_languages_become_skills():
    cfg = AgentConfig("a", skills={"lang:de": 2, "billing": 4}, languages=frozenset({"fr", "de"}))
    assert dict(cfg.effective_skills) == {"lang:fr": 5, "lang:de": 2, "billing": 4}


def test_agent_from_dict_full_and_list_skills():
    cfg = agent_from_dict({"id": "a7", "name": "Ann", "endpoint": "PJSIP/a7", "skills": {"billing": 4},
                           "languages": ["fr"], "team": "blue", "queues": ["sales"], "wrap_up": 5,
                           "max_misses": 2})
    assert cfg.endpoint == "PJSIP/a7" and cfg.queues == frozenset({"sales"}) and cfg.wrap_up == 5
    assert cfg.max_misses == 2 and cfg.team == "blue" and cfg.skills["billing"] == 4
    assert agent_from_dict({"id": "b", "skills": ["x", "y"]}).skills == {"x": 1, "y": 1}
    assert agent_from_dict({"id": "b"}).queues is None


@pytest.mark.parametrize("d,msg", [
    ({"id": "a", "skils": {}}, "unknown key(s) ['skils']"),
    ({"name": "x"}, "missing required key 'id'"),
    ({"id": "a", "skills": {"x": 6}}, "proficiency must be an integer 1..5"),
    ({"id": "a", "skills": {"x": 0}}, "proficiency"),
    ({"id": "a", "skills": {"x": True}}, "proficiency"),
    ({"id": "a", "skills": "x"}, "'skills' must be"),
    ({"id": "a", "languages": "fr"}, "'languages' must be a list"),
    ({"id": "a", "queues": "sales"}, "'queues' must be a list"),
    ({"id": "a", "wrap_up": -1}, "wrap_up"),
    ({"id": "a", "max_misses": 0}, "max_misses"),
    ({"id": ""}, "non-empty"),
])
def test_agent_from_dict_rejects(d, msg):
    with pytest.raises(ConfigError) as ei:
        agent_from_dict(d)
    assert msg in str(ei.value)
