"""Bad input in CRM data and caller IDs: unicode, control characters, CRLF, quotes, injection strings and very
long values are stored and returned safely, cleaned where they reach a screen or a SIP header, and the phone
normaliser never raises and never takes long."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.calls.live_offers import _quote
from ivr.crm.importer import CsvImportError, customer_from_dict, parse_csv, parse_yaml
from ivr.crm.mapping import CustomerMapping, MappingError
from ivr.crm.model import MAX_NOTES, MAX_TEXT, Customer, Ticket, clean_text
from ivr.crm.phone import is_e164, mask, normalize

pytestmark = pytest.mark.timeout(60)

NUMBER = "+442079460018"
NASTY_TEXT = [
    "Eve\r\nX-Injected: evil",                      # header injection
    "Mallory\x00Null",                              # NUL
    "\x1b[31mred\x1b[0m",                            # terminal escape codes
    "Bob\x08\x08\x08Alice",                          # backspaces
    "\u202eecilA\u202c",                            # right-to-left override
    "Zoë\u2028Line\u2029Para",                       # unicode line / paragraph separators
    "Next\x85Line",                                 # C1 next line
    'Robert"); DROP TABLE customers;--',            # SQL injection with a quote
    "<script>alert(1)</script>",
    '"quoted" <sip:evil@attacker> \\',
    "\t  tabs   and   spaces \t",
    "x" * 100_000,
]


def _bad_chars(s: str) -> list[str]:
    return [c for c in s if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in "\u202a\u202b\u202c\u202d\u202e"
            "\u2066\u2067\u2068\u2069\u200e\u200f\u061c"]


# ------------------------------------------------------------------------------------------ phone numbers
@pytest.mark.parametrize("raw", [
    "9" * 10_000, "+44" + "2" * 10_000, " " * 10_000 + NUMBER, NUMBER + "\x00" * 10_000, "é" * 10_000,
    "anonymous", "Anonymous", " ANONYMOUS ", "restricted", "Private", "unavailable", "", None, 442079460018,
    b"+442079460018", ["+442079460018"], "'; DROP TABLE phones;--", "' OR '1'='1", "1; DROP TABLE x",
    "+44 20 7946 0018\r\nX-Injected: 1", "+44\x0020 7946 0018", "%2B442079460018", "<sip:+442079460018@x>",
    "\ud800\udfff+442079460018", "\u202e8100649702442+", "${jndi:ldap://x/a}", "{e164}", "../../etc/passwd",
    "+4420794600180000000000000000000000000000", "+", "++++", "0", "00", "(((((((((((((((((((((((((((((((",
    "sip:" + "9" * 300 + "@host", "sip:+442079460018@" + "h" * 500,
])
def test_normalize_never_raises_and_never_returns_garbage(raw):
    t0 = time.perf_counter()
    out = normalize(raw, "GB")
    assert time.perf_counter() - t0 < 0.5
    assert out is None or is_e164(out)
    m = mask(raw)
    assert isinstance(m, str) and len(m) <= 20
    if isinstance(raw, str) and out is None:
        assert sum(c.isdigit() for c in m) <= 2          # a non-number reveals at most two digits


@pytest.mark.parametrize("raw, expected", [
    ("sip:+442079460018@10.0.0.1:5060;user=phone", NUMBER),       # a whole SIP URI, longer than 40
    ("sips:02079460018@pbx.example.com;transport=tls", NUMBER),
    ("tel:+44-20-7946-0018;phone-context=+44", NUMBER),
    ("\uff10\uff12\uff10\uff17\uff19\uff14\uff16\uff10\uff10\uff11\uff18", NUMBER),   # full-width digits
    ("\u0660\u0662\u0660\u0667\u0669\u0664\u0666\u0660\u0660\u0661\u0668", NUMBER),   # Arabic-Indic
    (("\U0001d7ce\U0001d7d0\U0001d7ce\U0001d7d5\U0001d7d7\U0001d7d2\U0001d7d4\U0001d7ce\U0001d7ce\U0001d7cf"
     "\U0001d7d6"), NUMBER),                                                            # mathematical digits
    ("020\u20037946\u20030018", NUMBER),                           # em spaces from a copy-paste
    ("+44 (0) 20 7946 0018", NUMBER),
])
def test_normalize_odd_but_real_caller_ids(raw, expected):
    assert normalize(raw, "GB") == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_normalize_and_mask_never_raise_on_any_text(raw):
    out = normalize(raw, "GB")
    assert out is None or is_e164(out)
    assert len(mask(raw)) <= 20


def test_mask_keeps_numbers_out():
    assert mask(NUMBER) == "+4420******18"
    for raw in ("020 7946 0018", "sip:+442079460018@host", "00442079460018", "+44 20 7946 0018"):
        m = mask(raw)
        assert "7946" not in m and "2079" not in m, (raw, m)


# ---------------------------------------------------------------------------------------- text cleaning
@pytest.mark.parametrize("value", NASTY_TEXT)
def test_clean_text_leaves_no_control_or_bidi_character(value):
    out = clean_text(value)
    assert not _bad_chars(out) and len(out) <= MAX_TEXT and out == out.strip()
    multi = clean_text(value, limit=MAX_NOTES, multiline=True)
    assert not [c for c in _bad_chars(multi) if c != "\n"] and len(multi) <= MAX_NOTES


@pytest.mark.parametrize("value", ["Élodie Martin", "Zoë O'Brien-Łukasz", "李小龍", "محمد علي", "Ωμέγα 🙂",
                                   "Renée \"Mac\" MacDonald", "a/b\\c", "O'Neil; DROP"])
def test_clean_text_keeps_printable_text_of_any_script(value):
    assert clean_text(value) == value


def test_customer_fields_are_cleaned_whatever_the_source():
    c = Customer("C1", name="Eve\r\nX-Injected: 1\x00", tier="vip\x1b", account_id="A\u202e1",
                 preferred_agent="agent1\n", notes="line 1\r\nline 2\x07\n" + "n" * 10_000,
                 open_tickets=(Ticket("T\r\n1", "subj\x00", "open\u2028"),))
    assert c.name == "Eve X-Injected: 1" and c.tier == "vip" and c.account_id == "A1"
    assert c.preferred_agent == "agent1"
    assert c.notes.startswith("line 1\nline 2\n") and len(c.notes) <= MAX_NOTES and "\x07" not in c.notes
    assert c.open_tickets[0] == Ticket("T 1", "subj", "open")
    long = Customer("C2", name="x" * 100_000)
    assert len(long.name) == MAX_TEXT
    assert Customer("C3", name="Élodie 🙂").name == "Élodie 🙂"


# -------------------------------------------------------------------------------- SIP caller ID (_quote)
@pytest.mark.parametrize("value", NASTY_TEXT + ["", "anonymous", NUMBER, "9" * 10_000])
def test_quote_never_lets_a_header_breaker_through(value):
    out = _quote(value)
    assert not set(out) & set('"<>\r\n\\') and len(out) <= 80


def test_agent_leg_caller_id_from_a_hostile_crm_name_is_one_clean_quoted_header_value():
    """What the ACD builds for the agent leg: '"<name>" <<number>>' from the customer's (cleaned) name."""
    for raw in NASTY_TEXT:
        name = Customer("C1", name=raw).name
        caller_id = f'"{_quote(name)}" <{_quote(NUMBER)}>'
        assert not _bad_chars(caller_id), repr(caller_id)
        assert caller_id.count('"') == 2 and caller_id.count("<") == 1 and caller_id.count(">") == 1
        assert len(caller_id.encode()) <= 80 * 4 + 20


def test_quote_drops_every_control_character():
    for value in ("a\x00b", "a\tb", "a\x1bb", "a\x85b", "a\u202eb", "a\u2028b"):
        assert not _bad_chars(_quote(value)), repr(_quote(value))


# -------------------------------------------------------------------------------------------- importer
def test_import_rejects_escape_codes_but_accepts_unicode_quotes_and_injection_text():
    ok = customer_from_dict({"customer_id": "C'1; DROP TABLE customers;--", "name": 'Zoë "Z" O\'Brien <x>',
                             "phones": "+44 20 7946 0018", "notes": "line 1\nline 2\ttab"})
    assert ok.customer_id == "C'1; DROP TABLE customers;--" and ok.name == 'Zoë "Z" O\'Brien <x>'
    assert ok.notes == "line 1\nline 2 tab"
    for field, value in (("name", "Eve\x1b[2J"), ("name", "a\x08b"), ("account_id", "A\x7f"),
                         ("tier", "v\x85ip"), ("customer_id", "C\x01")):
        with pytest.raises(ValueError, match="control characters"):
            customer_from_dict({"customer_id": "C1", "phones": [NUMBER], field: value})


@pytest.mark.parametrize("record, message", [
    ({"customer_id": "C1", "phones": [NUMBER], "tickets": [{"id": "T" * 100}]}, "ticket id is longer"),
    ({"customer_id": "C1", "phones": [NUMBER], "tickets": [{"id": {"x": 1}}]}, "ticket id must be text"),
    ({"customer_id": "C1", "phones": [NUMBER], "tickets": [{"id": "T1", "subject": ["x"]}]}, "subject must"),
    ({"customer_id": "C1", "phones": [NUMBER], "tickets": [{"id": f"T{i}"} for i in range(101)]}, "tickets"),
    ({"customer_id": "C1", "phones": [NUMBER], "extra": {"k": "v" * 1000}}, "extra.k is longer"),
    ({"customer_id": "C1", "phones": [NUMBER], "name": "n" * 201}, "longer than 200"),
    ({"customer_id": "C1", "phones": ["+44" + "1" * 5000]}, "not a valid phone number"),
    ({"customer_id": "C1", "phones": "'; DROP TABLE phones;--"}, "not a valid phone number"),
])
def test_import_limits(record, message):
    with pytest.raises(ValueError, match=message):
        customer_from_dict(record)


def test_import_error_messages_mask_numbers():
    with pytest.raises(ValueError) as e:
        customer_from_dict({"customer_id": "C1", "phones": ["+44 20 7946 0018 ext 5"]})
    assert "7946" not in str(e.value)


@pytest.mark.parametrize("text", [
    "customers:\n" + "  " * 1 + "- " + "[" * 50_000 + "]" * 50_000 + "\n",
    "customers:\n  - {customer_id: C1, phones: [" + "9" * 10_000 + "]}\n",
    "customers: &a [*a]\n",
    "\x00\x01\x02",
    "customers: !!python/object/apply:os.system ['touch /tmp/ivr-pwned']\n",
])
def test_yaml_import_garbage_is_an_import_error_not_a_crash(text):
    try:
        rows, errors = parse_yaml(text)
    except CsvImportError as e:
        assert "YAML" in str(e) or "customers" in str(e)
    else:
        assert not rows and errors


def test_csv_import_hostile_cells():
    header = "customer_id,name,phones,notes\n"
    rows_text = ('"C1","=cmd|\' /C calc\'!A0","+44 20 7946 0018","a ""quoted"" note"\n'
                 '"C2","Eve\x1b[2J","+44 20 7946 0019",""\n'
                 '"C3","' + "x" * 300 + '","+44 20 7946 0020",""\n'
                 '"C4","ok","+44 20 7946 0021","' + "n" * 200_000 + '"\n')
    rows, errors = parse_csv(header + rows_text, "GB")
    assert [c.customer_id for _, c in rows] == ["C1"]
    assert rows[0][1].name == "=cmd|' /C calc'!A0" and rows[0][1].notes == 'a "quoted" note'
    msgs = {e.line: e.message for e in errors}
    assert "control characters" in msgs[3] and "longer than 200" in msgs[4]
    assert 5 in msgs                                         # 200 kB cell: the CSV reader's field limit


# --------------------------------------------------------------------------------- HTTP CRM mapping
MAPPING = CustomerMapping.from_dict({"record": "data", "customer_id": "id", "name": "name", "notes": "notes",
                                     "tickets": {"path": "tickets"}, "extra": {"segment": "segment"}})


@pytest.mark.parametrize("doc", [
    {"data": {"id": "C1", "name": "x" * 1_000_000}},
    {"data": {"id": "C1", "name": "Eve\r\nX-Injected: 1", "notes": "\x00" * 100}},
    {"data": {"id": "C1", "name": float("nan"), "segment": float("inf")}},
    {"data": {"id": "C1", "name": {"first": "a"}, "tickets": "nope", "segment": [1, 2]}},
    {"data": {"id": "C1", "tickets": [{"id": "T\r\n1", "subject": "\u202ex"}] * 1000}},
    {"data": [{"id": "C1"}] * 10_000},
    {"data": {"id": "\u202eC1", "name": "\ud800"}},
])
def test_mapping_hostile_documents_give_a_clean_customer(doc):
    customer, _warnings = MAPPING.map(doc, caller=NUMBER)
    assert customer is not None
    for value in (customer.name, customer.tier, *(t.id for t in customer.open_tickets),
                  *(t.subject for t in customer.open_tickets)):
        assert not _bad_chars(value) and len(value) <= MAX_TEXT
    assert len(customer.open_tickets) <= 20
    assert all(len(str(v)) <= MAX_TEXT for v in customer.extra.values())


@pytest.mark.parametrize("doc", ["OK", 5, None, True, {"data": {"id": True}}, {"data": {"id": ""}},
                                 {"data": {"id": ["C1"]}}, {"data": 5}])
def test_mapping_unreadable_documents_are_mapping_errors(doc):
    try:
        customer, _ = MAPPING.map(doc, caller=NUMBER)
    except MappingError:
        return
    assert customer is None
