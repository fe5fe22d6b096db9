"""CSV / YAML customer validation (ivr.crm.importer): per-line errors, masked numbers."""

from __future__ import annotations

import pytest

from ivr.crm.importer import CsvImportError, customer_from_dict, parse_csv, parse_yaml

HEADER = "customer_id,name,phones,tier,language,preferred_agent,extra.segment\n"


def test_good_rows_parse_with_normalised_numbers() -> None:
    text = HEADER + "C1,Ann,+44 20 7946 0001;020 7946 0011,VIP,fr,agent1,smb\nC2,Bob,+1 212 555 0102,,,,\n"
    rows, errors = parse_csv(text, "GB")
    assert errors == []
    (l1, c1), (l2, c2) = rows
    assert (l1, l2) == (2, 3)
    assert c1.phones == ("+442079460001", "+442079460011")
    assert (c1.tier, c1.language, c1.preferred_agent, dict(c1.extra)) == (
        "vip",
        "fr",
        "agent1",
        {"segment": "smb"},
    )
    assert (c2.tier, c2.language, c2.preferred_agent, dict(c2.extra)) == ("standard", None, None, {})


def test_bad_rows_get_line_numbers_and_clear_messages() -> None:
    text = (
        HEADER
        + "C1,Ann,+44 20 7946 0001,vip,,,\n"  # line 2 ok
        + ",NoId,+44 20 7946 0002,,,,\n"  # line 3: no id
        + "C3,BadPhone,not-a-number,,,,\n"  # line 4
        + 'C4,"Multi\nline name",+44 20 7946 0004,,,,\n'  # lines 5-6: ok (quoted newline)
        + "C5,BadLang,+44 20 7946 0005,,french!,,\n"  # line 7
        + "C1,Dup,+44 20 7946 0006,,,,\n"  # line 8: duplicate id
        + "C9,DupPhone,+44 20 7946 0001,,,,\n"  # line 9: phone used on line 2
        + "C10,short\n"  # line 10: wrong field count
        + "C11,NoPhone,,,,,\n"  # line 11
    )
    rows, errors = parse_csv(text, "GB")
    assert [line for line, _ in rows] == [2, 5]
    by_line = {e.line: e.message for e in errors}
    assert set(by_line) == {3, 4, 7, 8, 9, 10, 11}
    assert "customer_id is required" in by_line[3]
    assert "phone #1" in by_line[4] and "not a valid phone number" in by_line[4]
    assert "language" in by_line[7]
    assert "already used on line 2" in by_line[8]
    assert "already used on line 2" in by_line[9]
    assert "expected 7 fields, got 2" in by_line[10]
    assert "phones is required" in by_line[11]
    # Numbers in messages are masked.
    assert "79460001" not in by_line[9]
    assert str(errors[0]).startswith("line 3: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("customer_id,name,langauge,phones\n", r"unknown column\(s\) \['langauge'\]"),
        ("customer_id,name\nC1,x\n", r"missing required column\(s\) \['phones'\]"),
        ("customer_id,phones,phones\n", "duplicate column"),
    ],
)
def test_file_level_problems_raise(text: str, message: str) -> None:
    with pytest.raises(CsvImportError, match=message):
        parse_csv(text)


def test_bom_and_unicode_and_injection_strings_are_plain_data() -> None:
    text = (
        "\ufeffcustomer_id,name,phones,notes\n"
        '"x\'); DROP TABLE customers;--",Zoë 李 Ñ 🙂,+44 20 7946 0001,"a ""quoted"" note"\n'
    )
    rows, errors = parse_csv(text)
    assert errors == []
    c = rows[0][1]
    assert c.customer_id == "x'); DROP TABLE customers;--"
    assert c.name == "Zoë 李 Ñ 🙂"
    assert c.notes == 'a "quoted" note'


def test_customer_from_dict_rejects_unknown_fields_and_control_chars() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        customer_from_dict({"customer_id": "C1", "phones": ["+442079460001"], "vip": True})
    with pytest.raises(ValueError, match="control characters"):
        customer_from_dict({"customer_id": "C\x011", "phones": ["+442079460001"]})
    with pytest.raises(ValueError, match="longer than 200"):
        customer_from_dict({"customer_id": "C1", "name": "x" * 201, "phones": ["+442079460001"]})


def test_yaml_records_are_indexed_from_one() -> None:
    rows, errors = parse_yaml(
        "customers:\n  - {customer_id: A, phones: ['+442079460001']}\n  - {customer_id: B, phones: []}\n"
    )
    assert [n for n, _ in rows] == [1]
    assert errors[0].line == 2 and "phones is required" in errors[0].message
    with pytest.raises(CsvImportError, match="customers"):
        parse_yaml("clients: []")
