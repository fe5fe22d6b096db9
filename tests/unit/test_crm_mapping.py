"""CRM JSON -> Customer field mapping (ivr.crm.mapping)."""

from __future__ import annotations

import pytest

from ivr.crm.mapping import MISSING, CustomerMapping, MappingError, get_path

CALLER = "+442079460001"

MAPPING = CustomerMapping.from_dict(
    {
        "record": "data",
        "customer_id": "id",
        "account_id": "attributes.account.id",
        "name": "attributes.name",
        "tier": {"path": "attributes.tier", "default": "standard"},
        "language": "attributes.locale",
        "preferred_agent": "attributes.owner.agent_id",
        "phones": "attributes.phones",
        "tickets": {"path": "relationships.tickets", "id": "id", "subject": "title", "status": "state"},
        "extra": {"segment": "attributes.segment", "first_phone": "attributes.phones.0"},
    }
)


def _doc(**attrs: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "Victoria Sterling",
        "tier": "VIP",
        "locale": "fr-CA",
        "account": {"id": 7788},
        "owner": {"agent_id": "agent1"},
        "phones": ["+44 20 7946 0001", "020 7946 0002", "garbage"],
        "segment": "enterprise",
    }
    base.update(attrs)
    return {
        "data": {
            "id": "C1001",
            "attributes": base,
            "relationships": {
                "tickets": [
                    {"id": 1, "title": "Invoice", "state": "open"},
                    {"id": 2, "title": "Old", "state": "closed"},
                ]
            },
        }
    }


def test_get_path_nested_and_indices() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert get_path(doc, "a.b.1.c") == 2
    assert get_path(doc, "a.b.-1.c") == 2
    assert get_path(doc, "a.b.5.c") is MISSING
    assert get_path(doc, "a.x") is MISSING
    assert get_path(doc, "a.b.c") is MISSING  # not an index
    assert get_path(doc, "") == doc
    assert get_path("scalar", "a") is MISSING


def test_nested_mapping() -> None:
    customer, warnings = MAPPING.map(_doc(), caller=CALLER)
    assert customer is not None
    assert customer.customer_id == "C1001"
    assert customer.account_id == "7788"  # number accepted as an id
    assert customer.name == "Victoria Sterling"
    assert customer.tier == "vip"  # lower-cased
    assert customer.language == "fr-CA"
    assert customer.preferred_agent == "agent1"
    assert customer.phones == ("+442079460001", "+442079460002")
    assert [t.id for t in customer.open_tickets] == ["1"]  # closed ticket dropped
    assert customer.extra["segment"] == "enterprise"
    assert warnings == ("phones",)  # one bad number in the list


def test_missing_optional_fields_take_defaults() -> None:
    doc = {"data": {"id": "C9"}}
    customer, warnings = MAPPING.map(doc, caller=CALLER)
    assert customer is not None
    assert customer.name == ""
    assert customer.tier == "standard"
    assert customer.language is None
    assert customer.phones == (CALLER,)  # the number we looked up
    assert customer.open_tickets == ()
    assert warnings == ()


@pytest.mark.parametrize(
    ("attrs", "field"),
    [
        ({"name": ["not", "a", "string"]}, "name"),
        ({"tier": 3}, "tier"),
        ({"tier": True}, "tier"),
        ({"locale": "not a language!"}, "language"),
        ({"locale": {"code": "fr"}}, "language"),
        ({"owner": {"agent_id": {"x": 1}}}, "preferred_agent"),
        ({"phones": {"home": "+442079460001"}}, "phones"),
        ({"segment": {"deep": 1}}, "extra.segment"),
    ],
)
def test_wrong_type_optional_field_falls_back_and_is_reported(attrs: dict[str, object], field: str) -> None:
    customer, warnings = MAPPING.map(_doc(**attrs), caller=CALLER)
    assert customer is not None and customer.customer_id == "C1001"
    assert field in warnings


@pytest.mark.parametrize(
    "doc",
    [
        {"data": None},
        {"data": []},
        {"data": {}},
        {},
        {"other": 1},
    ],
)
def test_not_found_shapes(doc: object) -> None:
    assert MAPPING.map(doc, caller=CALLER) == (None, ())


@pytest.mark.parametrize(
    "doc",
    [
        "a string",
        42,
        None,
        {"data": "C1001"},  # record is not an object
        {"data": [1, 2, 3]},
        {"data": {"attributes": {}}},  # no id
        {"data": {"id": {"nested": 1}}},  # wrong type id
        {"data": {"id": True}},
        {"data": {"id": ""}},
    ],
)
def test_malformed_documents_raise_mapping_error(doc: object) -> None:
    with pytest.raises(MappingError):
        MAPPING.map(doc, caller=CALLER)


def test_list_record_takes_first_element_and_long_strings_are_truncated() -> None:
    m = CustomerMapping.from_dict({"record": "results", "customer_id": "cid", "name": "n"})
    customer, _ = m.map({"results": [{"cid": 12, "n": "x" * 10_000}, {"cid": 13}]})
    assert customer is not None
    assert customer.customer_id == "12"
    assert len(customer.name) == 256


def test_default_mapping_reads_flat_documents() -> None:
    customer, _ = CustomerMapping().map({"id": "C5", "name": "Zoë", "tier": "legacy", "language": "de"})
    assert customer is not None
    assert (customer.customer_id, customer.name, customer.tier, customer.language) == (
        "C5",
        "Zoë",
        "legacy",
        "de",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"custmer_id": "id"}, "unknown key"),
        ({"tier": {"path": "a", "dflt": 1}}, "unknown key"),
        ({"tier": {"default": 1}}, "'path' is required"),
        ({"name": 5}, "expected a dotted path"),
        ({"name": "a..b"}, "empty component"),
        ({"tickets": {"path": "t", "title": "x"}}, "unknown key"),
    ],
)
def test_bad_mapping_config_is_rejected(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CustomerMapping.from_dict(config)
