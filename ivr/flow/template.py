"""Safe string templates for prompts and ``set`` values: ``digits:{customer.account_id}``.

Only ``{name}`` and ``{dotted.name}`` placeholders exist; ``{{`` and ``}}`` are literal braces.
There is no expression language and nothing is evaluated: a placeholder is looked up by
name and replaced by the text of its value.

When a template is rendered into a media URI (``safe=True``), a value that is missing,
empty, secret, longer than 64 characters or contains anything but ``A-Z a-z 0-9 _ . + -``
makes the whole prompt unplayable (``render`` returns None and the engine skips that
prompt): a CRM field must never be able to inject ``,sound:...`` or ``../`` into what
Asterisk plays, nor keep a caller listening to 10,000 digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_NAME_RE = re.compile(NAME_PATTERN + r"\Z")
_SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_.+-]{1,64}\Z")      # a 10,000-digit CRM field is not a prompt


class TemplateError(ValueError):
    """A template that cannot be parsed; the message says why."""


@dataclass(frozen=True)
class Placeholder:
    name: str


Part = str | Placeholder


@lru_cache(maxsize=4096)
def parse_template(text: str) -> tuple[Part, ...]:
    """Split ``text`` into literal strings and placeholders; raise TemplateError on bad syntax."""
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' at position {i + 1}")
            name = text[i + 1 : end].strip()
            if not _NAME_RE.match(name):
                raise TemplateError(f"bad placeholder '{{{text[i + 1:end]}}}' (expected a variable name)")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(name))
            i = end + 1
        elif ch == "}":
            raise TemplateError(f"unmatched '}}' at position {i + 1} (write '}}}}' for a literal brace)")
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def template_names(text: str) -> tuple[str, ...]:
    """Variable names a (valid) template refers to."""
    return tuple(p.name for p in parse_template(text) if isinstance(p, Placeholder))


def is_static(text: str) -> bool:
    return not template_names(text)


def render(text: str, lookup: Callable[[str], str | None], *, safe: bool = True) -> str | None:
    """Fill the placeholders of ``text``.

    ``lookup(name)`` returns the value's text or None when the variable is missing (or
    must not be shown). With ``safe`` a missing or unsafe value returns None for the whole
    template; without it a missing value renders as an empty string.
    """
    out: list[str] = []
    for part in parse_template(text):
        if isinstance(part, str):
            out.append(part)
            continue
        value = lookup(part.name)
        if safe and (value is None or not _SAFE_VALUE_RE.match(value)):
            return None
        out.append(value or "")
    return "".join(out)
