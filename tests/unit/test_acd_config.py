"""Queue configuration from plain dicts, and the relaxation / fit-score policy."""

from __future__ import annotations

import pytest

from ivr.acd import (
    AgentConfig,
    ConfigError,
    QueueConfig,
    agent_from_dict,
    agent_to_dict,
    compile_requirements,
    fit_score,
    queue_from_dict,
    queue_to_dict,
    requirement_at,
)

FULL = {
    "name": "support", "required_skills": {"support": 3, "billing": None}, "optional_skills": {"vip": 2},
    "min_proficiency": 2, "priority": 5,
    "relaxation": [{"after": 30, "drop_skills": ["vip"]}, {"after": 90, "min_proficiency": 1},
                   {"after": 180, "add_alternative": {"generalist": 2}}],
    "max_wait": 600, "max_length": 50, "on_timeout": "voicemail", "on_full": "sorry", "on_no_agents": "closed",
    "join_empty": False, "leave_when_empty": True, "ring_timeout": 20, "max_misses": 2, "wrap_up": 15,
    "moh_class": "jazz", "announce_frequency": 45, "announce_position": False, "announce_hold_time": True,
    "service_level": {"percent": 90, "seconds": 30}, "short_abandon": 3,
}


def test_full_queue_dict():
    q = queue_from_dict(FULL)
    assert q.required_skills == {"support": 3, "billing": 2}  # null = the queue min_proficiency
    assert q.optional_skills == {"vip": 2} and q.priority == 5 and q.max_wait == 600
    assert q.max_length == 50 and q.on_timeout == "voicemail" and not q.join_empty and q.leave_when_empty
    assert q.ring_timeout == 20 and q.max_misses == 2 and q.wrap_up == 15 and q.moh_class == "jazz"
    assert q.announce_frequency == 45 and not q.announce_position
    assert (q.service_level.percent, q.service_level.seconds) == (90, 30) and q.short_abandon == 3
    assert [s.after for s in q.relaxation] == [30, 90, 180]


def test_defaults_and_list_forms():
    q = queue_from_dict({"name": "s", "required_skills": ["a", "b"], "optional_skills": ["c"],
                         "min_proficiency": 3})
    assert q.required_skills == {"a": 3, "b": 3} and q.optional_skills == {"c": 1.0}
    d = queue_from_dict({"name": "d"})
    assert d.join_empty and not d.leave_when_empty and d.max_wait is None and d.relaxation == ()


@pytest.mark.parametrize("patch,msg", [
    ({"colour": "red"}, "unknown key(s) ['colour']"),
    ({"relaxation": [{"after": 30, "drop": ["vip"]}]}, "relaxation step 1: unknown key(s) ['drop']"),
    ({"service_level": {"percent": 80, "secs": 20}}, "service_level: unknown key(s) ['secs']"),
    ({"relaxation": [{"drop_skills": ["vip"]}]}, "missing 'after'"),
    ({"relaxation": [{"after": 90, "min_proficiency": 1}, {"after": 30, "drop_skills": ["vip"]}]},
     "greater than the previous"),
    ({"relaxation": [{"after": 30}]}, "relaxes nothing"),
    ({"relaxation": [{"after": 30, "drop_skills": ["nope"]}]}, "cannot drop 'nope'"),
    ({"relaxation": [{"after": 30, "drop_skills": ["vip"]}, {"after": 60, "drop_skills": ["vip"]}]},
     "cannot drop 'vip'"),
    ({"relaxation": [{"after": 30, "min_proficiency": 1}, {"after": 60, "min_proficiency": 2}]},
     "may only loosen"),
    ({"relaxation": [{"after": 30, "add_alternative": {"x": 9}}]}, "alternative skill 'x'"),
    ({"required_skills": {"support": 7}}, "required skill 'support'"),
    ({"optional_skills": {"support": 1}}, "both required and optional"),
    ({"max_wait": 0}, "max_wait"),
    ({"max_length": 0}, "max_length"),
    ({"ring_timeout": -1}, "ring_timeout"),
    ({"join_empty": "yes"}, "join_empty must be true or false"),
    ({"service_level": {"percent": 120, "seconds": 20}}, "service_level"),
])
def test_queue_from_dict_rejects(patch, msg):
    d = {"name": "q", "required_skills": {"support": 2}, "optional_skills": {"vip": 1}, **patch}
    with pytest.raises(ConfigError) as ei:
        queue_from_dict(d)
    assert msg in str(ei.value), str(ei.value)
    assert "'q'" in str(ei.value) or msg.startswith("unknown")


def test_missing_name():
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        queue_from_dict({"required_skills": ["x"]})


def test_relaxation_steps_by_wait():
    q = queue_from_dict(FULL)
    r0, r30, r90, r180 = (requirement_at(q, w) for w in (0, 30, 90, 180))
    assert r0.groups == ((("billing", 2), ("support", 3)),) and r0.optional == (("vip", 2.0),)
    assert requirement_at(q, 29.999).step == 0 and r30.step == 1
    assert r30.optional == () and r30.groups == r0.groups  # dropping the optional skill
    assert r90.groups == ((("billing", 1), ("support", 1)),)  # every level capped at 1
    assert r180.groups == ((("billing", 1), ("support", 1)), (("generalist", 1),))  # alt capped too
    assert "after 180s" in r180.description
    agent = {"generalist": 3}
    assert [requirement_at(q, w).admits(agent) for w in (0, 30, 90, 180)] == [False, False, False, True]
    assert not r180.admits(agent, {"lang:fr": 1}) and r180.admits({**agent, "lang:fr": 1}, {"lang:fr": 1})


def test_floor_of_min_proficiency():
    q = QueueConfig("q", required_skills={"a": 1, "b": 4}, min_proficiency=3)
    assert compile_requirements(q)[0].groups == ((("a", 3), ("b", 4)),)


def test_fit_score_formula():
    q = QueueConfig("q", required_skills={"a": 2}, optional_skills={"o": 0.5, "p": 2})
    r = compile_requirements(q)[0]
    # 4 (required a) + 0.5 * 2 (o) + 2 * 0 (p missing)
    assert fit_score(r.groups, r.optional, {"a": 4, "o": 2}) == 5.0
    assert fit_score(r.groups, r.optional, {"a": 1, "o": 5}) is None


def test_queue_round_trip_and_serialisable():
    import json
    import pickle

    q = queue_from_dict(FULL)
    d = queue_to_dict(q)
    assert queue_from_dict(json.loads(json.dumps(d))) == q
    assert pickle.loads(pickle.dumps(q)) == q
    with pytest.raises(TypeError):
        q.required_skills["x"] = 1  # type: ignore[index]


def test_agent_round_trip():
    cfg = agent_from_dict({"id": "a", "skills": {"x": 2}, "languages": ["fr"], "queues": ["q"], "wrap_up": 3})
    assert agent_from_dict(agent_to_dict(cfg)) == cfg
    assert agent_from_dict(agent_to_dict(AgentConfig("b"))) == AgentConfig("b")
