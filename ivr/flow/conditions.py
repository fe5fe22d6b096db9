"""Branch conditions: plain data evaluated by a small interpreter (never ``eval``).

A condition is one of:

* ``Compare(variable, op, value)``: ``{var: customer.tier, eq: vip}``;
* ``ScheduleIs(schedule, open)``: ``{schedule: business_hours, is: closed}``;
* ``AllOf`` / ``AnyOf`` / ``NotOf``: ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``.

Comparison rules (documented in docs/flows.md):

* values are compared as text (``true``/``false`` for booleans, ``3`` for the number 3);
* ``gt``/``lt``/``ge``/``le`` compare numbers; a value that is not a number is never
  greater or smaller than anything;
* ``matches`` is a regular-expression search (use ``^...$`` to anchor);
* ``exists: true`` means set and not empty;
* a missing variable makes ``eq``, ``in``, ``matches`` and the numeric operators false;
  ``ne`` and ``not_in`` are their exact negations, so they are true for a missing variable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

COMPARE_OPS = ("eq", "ne", "in", "not_in", "matches", "exists", "gt", "lt", "ge", "le")
NUMERIC_OPS = ("gt", "lt", "ge", "le")
CUSTOMER_PREFIX = "customer."


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Compare:
    variable: str
    op: str
    # str for eq/ne, tuple[str, ...] for in/not_in, re.Pattern for matches, bool for exists,
    # float for the numeric operators.
    value: Any


@dataclass(frozen=True)
class ScheduleIs:
    schedule: str
    open: bool = True


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class NotOf:
    condition: Condition


Condition = Compare | ScheduleIs | AllOf | AnyOf | NotOf


def as_text(value: Any) -> str | None:
    """The text a condition compares; None for a missing value."""
    if value is MISSING or value is None:
        return None
    if hasattr(value, "reveal"):          # a Secret from a secure collect
        return value.reveal()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _compare(cond: Compare, actual: Any) -> bool:
    text = as_text(actual)
    op = cond.op
    if op == "exists":
        return bool(text) == cond.value
    if op == "ne":
        return text is None or text != cond.value
    if op == "not_in":
        return text is None or text not in cond.value
    if text is None:
        return False
    if op == "eq":
        return text == cond.value
    if op == "in":
        return text in cond.value
    if op == "matches":
        return cond.value.search(text) is not None
    number = _as_number(text)
    if number is None:
        return False
    if op == "gt":
        return number > cond.value
    if op == "lt":
        return number < cond.value
    if op == "ge":
        return number >= cond.value
    if op == "le":
        return number <= cond.value
    raise ValueError(f"unknown operator {op!r}")


def evaluate(cond: Condition, lookup: Callable[[str], Any], is_open: Callable[[str], bool]) -> bool:
    """Evaluate ``cond``; ``lookup(name)`` returns a value or MISSING, ``is_open(schedule)`` a bool."""
    if isinstance(cond, Compare):
        return _compare(cond, lookup(cond.variable))
    if isinstance(cond, ScheduleIs):
        return is_open(cond.schedule) == cond.open
    if isinstance(cond, AllOf):
        return all(evaluate(c, lookup, is_open) for c in cond.conditions)
    if isinstance(cond, AnyOf):
        return any(evaluate(c, lookup, is_open) for c in cond.conditions)
    if isinstance(cond, NotOf):
        return not evaluate(cond.condition, lookup, is_open)
    raise TypeError(f"not a condition: {cond!r}")


def walk(cond: Condition) -> Iterator[Condition]:
    """``cond`` and every condition nested in it."""
    yield cond
    if isinstance(cond, (AllOf, AnyOf)):
        for child in cond.conditions:
            yield from walk(child)
    elif isinstance(cond, NotOf):
        yield from walk(cond.condition)


def variables_in(cond: Condition) -> tuple[str, ...]:
    return tuple(c.variable for c in walk(cond) if isinstance(c, Compare))


def needs_customer(cond: Condition) -> bool:
    """True when the condition reads ``customer.*`` data (which the CRM may not have sent yet)."""
    return any(name.startswith(CUSTOMER_PREFIX) for name in variables_in(cond))


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile an admin's regex; re.error propagates for the loader to report."""
    return re.compile(pattern)
