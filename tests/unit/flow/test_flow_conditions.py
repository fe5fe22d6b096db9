"""Branch conditions: operators, missing values, combinators; all data, never eval."""

from __future__ import annotations

import re

import pytest

from ivr.flow.conditions import MISSING, AllOf, AnyOf, Compare, NotOf, ScheduleIs, evaluate, needs_customer
from ivr.flow.model import Secret

VARIABLES = {
    "caller": "+33123456789",
    "customer.tier": "vip",
    "customer.known": True,
    "customer.open_tickets": 2,
    "customer.balance": 12.5,
    "customer.name": "",
    "pin": Secret("2468"),
}


def lookup(name: str):
    return VARIABLES.get(name, MISSING)


def check(condition, open_schedules=("office",)) -> bool:
    return evaluate(condition, lookup, lambda name: name in open_schedules)


@pytest.mark.parametrize("variable, op, value, expected", [
    ("customer.tier", "eq", "vip", True),
    ("customer.tier", "eq", "VIP", False),               # text, case-sensitive
    ("customer.tier", "ne", "vip", False),
    ("customer.known", "eq", "true", True),             # booleans compare as true/false
    ("customer.open_tickets", "eq", "2", True),         # numbers as their text
    ("customer.tier", "in", ("gold", "vip"), True),
    ("customer.tier", "not_in", ("gold", "vip"), False),
    ("caller", "matches", re.compile(r"^\+33"), True),  # a search: anchor with ^
    ("caller", "matches", re.compile(r"456"), True),
    ("caller", "matches", re.compile(r"^\+44"), False),
    ("customer.open_tickets", "gt", 1.0, True),
    ("customer.open_tickets", "gt", 2.0, False),
    ("customer.open_tickets", "ge", 2.0, True),
    ("customer.balance", "lt", 20.0, True),
    ("customer.balance", "le", 12.5, True),
    ("customer.tier", "gt", 0.0, False),                # not a number: never greater or smaller
    ("customer.tier", "lt", 0.0, False),
    ("customer.tier", "exists", True, True),
    ("customer.name", "exists", True, False),           # empty counts as absent
    ("customer.name", "exists", False, True),
    ("pin", "eq", "2468", True),                        # secrets are usable in conditions
    # A missing variable: only ne, not_in and exists: false are true.
    ("customer.segment", "eq", "x", False),
    ("customer.segment", "in", ("x",), False),
    ("customer.segment", "matches", re.compile(".*"), False),
    ("customer.segment", "gt", -1.0, False),
    ("customer.segment", "lt", 1e9, False),
    ("customer.segment", "ne", "x", True),
    ("customer.segment", "not_in", ("x",), True),
    ("customer.segment", "exists", False, True),
    ("customer.segment", "exists", True, False),
])
def test_compare(variable, op, value, expected):
    assert check(Compare(variable, op, value)) is expected


def test_schedules_and_combinators():
    vip = Compare("customer.tier", "eq", "vip")
    gold = Compare("customer.tier", "eq", "gold")
    assert check(ScheduleIs("office"))
    assert not check(ScheduleIs("office", open=False))
    assert check(ScheduleIs("night", open=False))
    assert check(AllOf((vip, ScheduleIs("office"))))
    assert not check(AllOf((vip, gold)))
    assert check(AnyOf((gold, vip)))
    assert not check(AnyOf((gold, NotOf(vip))))
    assert check(NotOf(AllOf((vip, gold))))


def test_needs_customer_looks_inside_combinators():
    assert needs_customer(NotOf(AnyOf((Compare("caller", "eq", "1"), Compare("customer.tier", "eq", "x")))))
    assert not needs_customer(AllOf((Compare("caller", "eq", "1"), ScheduleIs("office"))))


def test_conditions_never_evaluate_code(drive):
    # A value that looks like Python is only ever compared as text.
    call = drive("""
        flow: t
        entry: route
        nodes:
          route:
            type: branch
            rules:
              - when: {var: customer.note, eq: "__import__('os').system('true')"}
                goto: matched
            default: other
          matched: {type: transfer, destination: matched}
          other: {type: transfer, destination: other}
    """, customer_lookup=False)
    commands = call.start()
    assert commands[-1].destination == "other"
