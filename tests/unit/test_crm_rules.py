"""Repeat caller, first-contact resolution and routing policy (ivr.crm.rules)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ivr.crm.model import Customer, Interaction, LookupResult, LookupStatus
from ivr.crm.rules import NEUTRAL_HINTS, fcr, is_repeat_caller, last_agent, routing_from_dict

HOUR = 3600.0
DAY = 24 * HOUR
NOW = 1_700_000_000.0
ROUTING_YAML = Path(__file__).resolve().parents[2] / "config" / "crm" / "routing.yaml"


def call(at: float, who: str = "C1", *, agent: str | None = None, outcome: str = "answered") -> Interaction:
    return Interaction(at=at, customer_id=who, agent_id=agent, outcome=outcome)


# ----------------------------------------------------------------- repeat caller


@pytest.mark.parametrize(
    ("ago", "window", "expected"),
    [
        (HOUR, DAY, True),
        (DAY - 1, DAY, True),
        (DAY + 1, DAY, False),
        (3 * DAY, 7 * DAY, True),
        (8 * DAY, 7 * DAY, False),
    ],
)
def test_repeat_caller_window(ago: float, window: float, expected: bool) -> None:
    assert is_repeat_caller([call(NOW - ago)], NOW, window) is expected


def test_no_history_is_not_repeat() -> None:
    assert is_repeat_caller([], NOW, DAY) is False


def test_last_agent_is_most_recent_with_an_agent() -> None:
    history = [call(NOW - 50, agent="agent1"), call(NOW - 10, agent=None), call(NOW - 30, agent="agent2")]
    assert last_agent(history) == "agent2"
    assert last_agent([call(NOW)]) is None


# ----------------------------------------------------------------- FCR


def test_fcr_per_call_verdicts() -> None:
    calls = [
        call(NOW - 10 * DAY, "A"),  # A calls back 2 days later -> not resolved
        call(NOW - 8 * DAY, "A"),  # no call-back within a day, window passed -> resolved
        call(NOW - 5 * DAY, "B"),  # resolved
        call(NOW - 2 * HOUR, "C"),  # window (1 day) not over yet -> undecided
        Interaction(at=NOW - 3 * DAY),  # withheld, unknown -> undecided
    ]
    report = fcr(calls, 2 * DAY, NOW)
    assert report.per_call == (False, True, True, None, None)
    assert report.decided == 3 and report.resolved == 2
    assert report.rate == pytest.approx(2 / 3)


def test_fcr_window_boundary_and_order_independence() -> None:
    calls = [call(NOW - DAY, "A"), call(NOW - 2 * DAY, "A")]  # not sorted
    # The second call is exactly one window after the first: still a call-back.
    assert fcr(calls, DAY, NOW).per_call == (True, False)
    # With a shorter window the call-back is outside it.
    assert fcr(calls, DAY - 1, NOW).per_call == (True, True)


def test_fcr_identity_by_number_when_customer_unknown() -> None:
    calls = [
        Interaction(at=NOW - 3 * DAY, caller="+442079460001"),
        Interaction(at=NOW - 3 * DAY + HOUR, caller="+442079460001"),
        Interaction(at=NOW - 3 * DAY, caller="+442079460002"),
    ]
    assert fcr(calls, DAY, NOW).per_call == (False, True, True)


def test_fcr_eligibility_filter_and_empty_rate() -> None:
    calls = [call(NOW - 5 * DAY, outcome="abandoned"), call(NOW - 5 * DAY + HOUR)]
    report = fcr(calls, DAY, NOW, eligible=lambda i: i.outcome == "answered")
    # The abandoned call is not judged, but it does not hide the answered one either.
    assert report.per_call == (None, True)
    assert fcr([], DAY, NOW).rate is None
    with pytest.raises(ValueError):
        fcr(calls, 0, NOW)


# ----------------------------------------------------------------- routing policy


@pytest.fixture(scope="module")
def policy():
    return routing_from_dict(yaml.safe_load(ROUTING_YAML.read_text(encoding="utf-8")))


def found(**kw: object) -> LookupResult:
    extra = {k: kw.pop(k) for k in ("repeat_caller", "last_agent") if k in kw}
    return LookupResult(LookupStatus.FOUND, Customer(customer_id="C1", **kw), "sqlite", **extra)  # type: ignore[arg-type]


def test_vip_gets_priority_boost(policy) -> None:
    h = policy.hints(found(tier="vip"))
    assert h.priority_boost == 10
    assert dict(h.extra_skills) == {}
    assert "tier:vip" in h.flags and "known" in h.flags


def test_legacy_tier_requires_legacy_skill(policy) -> None:
    assert dict(policy.hints(found(tier="Legacy")).extra_skills) == {"legacy": 1}


def test_language_on_file_adds_skill_and_prompt_language(policy) -> None:
    h = policy.hints(found(language="fr-CA"))
    assert dict(h.extra_skills) == {"lang:fr": 1}  # default template matches the ACD (agent languages -> lang:<code>)
    assert h.language == "fr"
    # Default and unsupported languages change nothing.
    assert policy.hints(found(language="en")).language is None
    h = policy.hints(found(language="pt"))
    assert (h.language, dict(h.extra_skills)) == (None, {})


def test_repeat_caller_gets_tier2(policy) -> None:
    h = policy.hints(found(tier="vip", repeat_caller=True))
    assert h.priority_boost == 12
    assert dict(h.extra_skills) == {"tier2": 1}
    assert "repeat" in h.flags
    # History alone is enough: an unknown repeat caller still goes to tier 2.
    unknown = LookupResult(LookupStatus.NOT_FOUND, None, "sqlite", repeat_caller=True)
    assert dict(policy.hints(unknown).extra_skills) == {"tier2": 1}


def test_preferred_agent_owner_then_last_agent(policy) -> None:
    h = policy.hints(found(preferred_agent="agent1", last_agent="agent9"))
    assert (h.preferred_agent, h.preferred_seconds) == ("agent1", 20.0)
    h = policy.hints(found(last_agent="agent9"))
    assert (h.preferred_agent, h.preferred_seconds) == ("agent9", 20.0)
    assert policy.hints(found()).preferred_agent is None
    assert policy.hints(found()).preferred_seconds == 0.0


def test_failed_or_unknown_lookup_gives_neutral_hints(policy) -> None:
    for status in (
        LookupStatus.ERROR,
        LookupStatus.TIMEOUT,
        LookupStatus.CIRCUIT_OPEN,
        LookupStatus.ANONYMOUS,
    ):
        assert policy.hints(LookupResult(status)) == NEUTRAL_HINTS


def test_hints_are_frozen(policy) -> None:
    h = policy.hints(found(tier="legacy"))
    with pytest.raises(TypeError):
        h.extra_skills["x"] = 1  # type: ignore[index]


def test_queue_override_default_tier_and_skill_merge() -> None:
    p = routing_from_dict(
        {
            "tiers": {
                "gold": {"skills": {"lang_fr": 3}, "queue": "gold_q"},
                "standard": {"priority_boost": 1},
            },
            "default_tier": "standard",
            "language": {"skill_template": "speaks_{lang}", "min_level": 2},
            "repeat_caller": {"queue": "tier2", "skills": ["escalations"]},
        }
    )
    h = p.hints(found(tier="gold", language="fr"))
    assert dict(h.extra_skills) == {"lang_fr": 3, "speaks_fr": 2}
    assert h.queue_override == "gold_q"
    assert p.hints(found(tier="bronze")).priority_boost == 1  # falls back to default_tier
    h = p.hints(found(tier="gold", repeat_caller=True))
    assert h.queue_override == "tier2" and h.extra_skills["escalations"] == 1


def test_empty_policy_is_neutral_for_known_customers() -> None:
    h = routing_from_dict({}).hints(found(tier="vip", language="fr"))
    assert h.priority_boost == 0 and h.queue_override is None


def test_routing_levels_on_the_acd_scale_are_accepted() -> None:
    p = routing_from_dict({"tiers": {"a": {"skills": {"x": 1}}, "b": {"skills": {"x": 5}}},
                           "language": {"min_level": 5}, "repeat_caller": {"skills": ["tier2"]}})
    assert p.tiers["a"].skills == {"x": 1} and p.tiers["b"].skills == {"x": 5} and p.language_min_level == 5
    assert p.repeat.skills == {"tier2": 1}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tierz": {}}, r"routing: unknown key\(s\) \['tierz'\]"),
        ({"tiers": {"vip": {"boost": 10}}}, r"routing.tiers.vip: unknown key"),
        ({"tiers": {"vip": {"priority_boost": "10"}}}, "expected an integer"),
        ({"tiers": {"vip": {"skills": {"legacy": -1}}}}, r"routing\.tiers\.vip\.skills\.legacy: level must be 1\.\.5"),
        ({"tiers": {"vip": {"skills": {"legacy": 0}}}}, (r"routing\.tiers\.vip\.skills\.legacy: level must be 1\.\.5 "
                                                        r"\(the ACD's proficiency scale\), got 0")),
        ({"tiers": {"vip": {"skills": {"legacy": 80}}}}, r"routing\.tiers\.vip\.skills\.legacy: .*got 80"),
        ({"repeat_caller": {"skills": {"tier2": 6}}}, r"routing\.repeat_caller\.skills\.tier2: level must be 1\.\.5"),
        ({"language": {"min_level": 0}}, r"routing\.language\.min_level: level must be 1\.\.5"),
        ({"tiers": {}, "default_tier": "gold"}, "not one of routing.tiers"),
        ({"language": {"skill_template": "lang"}}, "must be a string containing"),
        ({"language": {"skill_template": "lang_{lang}_{x}"}}, "only"),
        ({"language": {"set_prompt": "no"}}, "expected true or false"),
        ({"preferred_agent": {"seconds": -1}}, "seconds"),
        ({"preferred_agent": {"use_owners": True}}, "unknown key"),
        ({"tiers": ["vip"]}, "routing.tiers"),
    ],
)
def test_bad_routing_config_is_rejected_with_a_clear_message(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        routing_from_dict(config)
