"""Customer / LookupResult flow variables and PII-free reprs (ivr.crm.model)."""

from __future__ import annotations

import dataclasses

import pytest

from ivr.crm.model import UNKNOWN_FLOW_VARS, Customer, Interaction, LookupResult, LookupStatus, Ticket


def _customer(**kw: object) -> Customer:
    base: dict[str, object] = {
        "customer_id": "C1",
        "name": "Élodie Martin",
        "account_id": "A1",
        "phones": ("+12125550104",),
        "tier": "vip",
        "language": "fr",
        "preferred_agent": "agent1",
        "open_tickets": (Ticket("T1", "Router", "open"),),
        "extra": {"segment": "enterprise", "score": 4.5, "nested": {"no": 1}},
    }
    base.update(kw)
    return Customer(**base)  # type: ignore[arg-type]


def test_flow_vars_for_known_customer() -> None:
    v = _customer().as_flow_vars(repeat=True, last_agent="agent7")
    assert v["customer.known"] is True
    assert v["customer.tier"] == "vip"
    assert v["customer.name"] == "Élodie Martin"
    assert v["customer.language"] == "fr"
    assert v["customer.repeat"] is True
    assert v["customer.last_agent"] == "agent7"
    assert v["customer.preferred_agent"] == "agent1"
    assert v["customer.open_tickets"] == 1
    assert v["customer.extra.segment"] == "enterprise"
    assert v["customer.extra.score"] == 4.5
    assert "customer.extra.nested" not in v  # only scalars are condition material


def test_flow_vars_have_the_same_keys_known_or_not() -> None:
    known = LookupResult(LookupStatus.FOUND, _customer(extra={}), "sqlite").as_flow_vars()
    unknown = LookupResult(LookupStatus.NOT_FOUND, None, "sqlite").as_flow_vars()
    assert set(known) == set(unknown) == set(UNKNOWN_FLOW_VARS)
    assert unknown["customer.known"] is False
    assert unknown["customer.tier"] == ""
    assert unknown["customer.lookup"] == "not_found"


def test_flow_vars_of_failed_lookup_keep_history_flags() -> None:
    r = LookupResult(LookupStatus.TIMEOUT, None, "http", 0.3, repeat_caller=True, last_agent="agent2")
    v = r.as_flow_vars()
    assert v["customer.known"] is False
    assert v["customer.repeat"] is True
    assert v["customer.lookup"] == "timeout"
    assert r.failed and not r.found


def test_phone_numbers_stay_out_of_reprs() -> None:
    c = _customer()
    r = LookupResult(LookupStatus.FOUND, c, "sqlite", caller="+12125550104")
    i = Interaction(at=1.0, caller="+12125550104")
    for obj in (c, r, i):
        assert "2125550104" not in repr(obj)


def test_customer_is_frozen_and_extra_read_only() -> None:
    c = _customer()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tier = "standard"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.extra["x"] = 1  # type: ignore[index]


def test_ticket_open_status() -> None:
    assert Ticket("1", status="in_progress").is_open
    assert not Ticket("1", status="Closed").is_open


def test_interaction_identity_prefers_customer() -> None:
    assert Interaction(at=0, customer_id="C1", caller="+442079460001").identity == "c:C1"
    assert Interaction(at=0, caller="+442079460001").identity == "n:+442079460001"
    assert Interaction(at=0).identity is None
    assert Interaction(at=0, ivr_path=["menu", "billing"]).as_dict()["ivr_path"] == ["menu", "billing"]
