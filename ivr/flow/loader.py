"""Load flow files: YAML text -> checked model, with a position for every problem.

Two stages:

1. ``parse_flow_text`` composes the YAML (``yaml.compose``, so every key and value keeps
   its line and column), walks it with the tables of ``schema.py`` and builds the model
   objects. It reports YAML syntax errors, duplicate keys (PyYAML's constructor would
   silently keep the last one, so mapping nodes are checked here), unknown keys, wrong
   types, missing keys, bad regexes, bad schedules and bad templates, and records every
   name used (targets, queues, sounds, ...) as a ``Reference`` for stage 2.
2. ``validate.validate_flows`` checks what needs the whole file or set of files: targets
   that do not exist, unreachable nodes, loops without input, unknown queues/sounds/flows.

The public ``load_*`` functions run both and build a ``Flow``/``FlowSet`` only when there
is no error (warnings do not block). They never raise for a bad file: everything is a
``Diagnostic``. Nothing here evaluates YAML tags beyond the safe scalar types.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from . import schema
from .conditions import COMPARE_OPS, NUMERIC_OPS, AllOf, AnyOf, Compare, NotOf, ScheduleIs
from .diagnostics import Diagnostic
from .model import (
    ANY_LANGUAGE,
    DTMF_KEYS,
    NODE_CLASSES,
    RESERVED_VARIABLES,
    CollectNode,
    Destinations,
    Flow,
    FlowSet,
    Prompt,
    Reference,
    Rule,
    SourcePos,
)
from .parsed import ParsedFlow
from .schedule import (
    WEEKDAYS,
    Holiday,
    Schedule,
    ScheduleError,
    TimeRange,
    parse_days,
    parse_holiday_date,
    parse_ranges,
    zone,
)
from .template import TemplateError, template_names
from .validate import validate_flows

#: Proficiency scale of required skills: the ACD's (``ivr.acd.agent.SKILL_MIN``/``SKILL_MAX``, agents' and
#: queues' levels too); ivr.flow imports nothing outside itself, a unit test checks they agree.
SKILL_MIN, SKILL_MAX = 1, 5

FLOW_FILE_SUFFIXES = (".yaml", ".yml")

# Limits on what a flow file may be, checked before it is composed, so that a hostile or broken file
# (a huge file, "billion laughs" aliases, thousands of nested brackets) is a located error in bounded
# time instead of a hang or a RecursionError. Real flows are a few KiB, a dozen levels deep.
MAX_FLOW_FILE_BYTES = 256 * 1024
MAX_YAML_DEPTH = 40            # nested mappings/lists
MAX_YAML_NODES = 50_000        # YAML nodes once every alias is expanded
_SHOWN_VALUE = 60              # characters of a bad value quoted in a message

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VARIABLE_REF_RE = re.compile(r"(?:customer(?:\.[A-Za-z0-9_]+)+|[A-Za-z_][A-Za-z0-9_]*)\Z")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?\Z")
_DESTINATION_RE = re.compile(r"[A-Za-z0-9_/@.+:-]+\Z")
_PHONE_NUMBER_RE = re.compile(r"\+?[0-9]{3,20}\Z")
_SOUND_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
_STATIC_MEDIA_RE = {
    "digits": (re.compile(r"[0-9*#]+\Z"), "digits 0-9, * and #"),
    "number": (re.compile(r"-?[0-9]+\Z"), "a whole number"),
    "characters": (re.compile(r"[A-Za-z0-9]+\Z"), "letters and digits"),
}

_TAG = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _MERGE = (_TAG + t for t in ("null", "bool", "int", "float", "merge"))


class _Invalid:
    """Marks a value that was reported as an error (so the node is not built)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


def _default_of(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Reader:
    """Walks one composed YAML document; collects diagnostics instead of raising."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.parsed = ParsedFlow(file=file)
        self._constructor = SafeConstructor()
        self._owner: str | None = None      # the node being read, for Reference.owner

    # -- reporting -------------------------------------------------------------------

    def pos(self, node: YamlNode | SourcePos) -> SourcePos:
        if isinstance(node, SourcePos):
            return node
        mark = node.start_mark
        return SourcePos(self.file, mark.line + 1, mark.column + 1)

    def error(self, where: YamlNode | SourcePos, message: str) -> Any:
        p = self.pos(where)
        self.parsed.diagnostics.append(Diagnostic(p.file, p.line, p.col, message))
        return INVALID

    def ref(self, kind: str, name: str, where: YamlNode) -> None:
        self.parsed.references.append(Reference(kind, name, self.pos(where), self._owner))

    @staticmethod
    def describe(node: YamlNode) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list" if node.value else "an empty list"
        if node.tag == _NULL:
            return "nothing"
        value = node.value if len(node.value) <= _SHOWN_VALUE else node.value[:_SHOWN_VALUE] + "..."
        return f"'{value}'"

    # -- generic shapes --------------------------------------------------------------

    def items(self, node: YamlNode, what: str) -> list[tuple[str, YamlNode, YamlNode]] | None:
        """The (key, key node, value node) of a mapping, reporting duplicate keys."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping, got {self.describe(node)}")
            return None
        first_seen: dict[str, YamlNode] = {}
        out = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, f"keys in {what} must be plain names, got {self.describe(key_node)}")
                continue
            if key_node.tag == _MERGE:
                self.error(key_node, "YAML merge keys ('<<') are not supported")
                continue
            key = key_node.value
            if key in first_seen:
                line = first_seen[key].start_mark.line + 1
                self.error(key_node, f"duplicate key '{key}' (first defined at line {line})")
                continue
            first_seen[key] = key_node
            out.append((key, key_node, value_node))
        return out

    def fields(
        self,
        items: list[tuple[str, YamlNode, YamlNode]],
        specs: Mapping[str, schema.FieldSpec],
        what: str,
        anchor: YamlNode | SourcePos,
    ) -> tuple[dict[str, Any], bool]:
        """Read the keys of a mapping per ``specs``; returns (valid values, everything valid)."""
        values: dict[str, Any] = {}
        complete = True
        present = set()
        for key, key_node, value_node in items:
            spec = specs.get(key)
            if spec is None:
                self.error(key_node, f"unknown key '{key}' in {what}{_suggest(key, specs)}")
                complete = False
                continue
            present.add(key)
            value = self.read(spec.kind, value_node, key)
            if value is INVALID:
                complete = False
            else:
                values[key] = value
        for key, spec in specs.items():
            if spec.required and key not in present:
                self.error(anchor, f"{what} is missing required key '{key}'")
                complete = False
        return values, complete

    def read(self, kind: str, node: YamlNode, key: str) -> Any:
        reader: Callable[[YamlNode, str], Any] = getattr(self, f"kind_{kind}")
        return reader(node, key)

    def scalar(self, node: YamlNode) -> Any:
        """The Python value of a scalar (safe types only), or INVALID for collections."""
        if not isinstance(node, ScalarNode):
            return INVALID
        return self._constructor.construct_object(node)

    # -- scalar kinds ----------------------------------------------------------------

    def kind_text(self, node: YamlNode, key: str) -> Any:
        # The raw text, not the YAML 1.1 value: `language: no` is Norwegian, not False.
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            return self.error(node, f"'{key}' must be text, got {self.describe(node)}")
        return node.value

    def kind_name(self, node: YamlNode, key: str) -> Any:
        if not isinstance(node, ScalarNode) or node.tag == _NULL or not _NAME_RE.match(node.value):
            return self.error(node, f"'{key}' must be a name (letters, digits, '_' and '-'), "
                                    f"got {self.describe(node)}")
        return node.value

    def _named_ref(self, kind: str, node: YamlNode, key: str) -> Any:
        name = self.kind_name(node, key)
        if name is not INVALID:
            self.ref(kind, name, node)
        return name

    def kind_node_ref(self, node: YamlNode, key: str) -> Any:
        return self._named_ref("node", node, key)

    def kind_flow_ref(self, node: YamlNode, key: str) -> Any:
        return self._named_ref("flow", node, key)

    def kind_queue_ref(self, node: YamlNode, key: str) -> Any:
        return self._named_ref("queue", node, key)

    def kind_schedule_ref(self, node: YamlNode, key: str) -> Any:
        return self._named_ref("schedule", node, key)

    def kind_node_type(self, node: YamlNode, key: str) -> Any:
        return self.kind_text(node, key)   # checked by read_node before the fields

    def kind_language(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is not INVALID and not _LANGUAGE_RE.match(text):
            return self.error(node, f"'{key}' must be a language code such as 'en' or 'fr_CA', got '{text}'")
        return text

    def kind_bool(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return self.scalar(node)
        return self.error(node, f"'{key}' must be true or false, got {self.describe(node)}")

    def _number(self, node: YamlNode, key: str, *, whole: bool, minimum: float, strict: bool,
                expected: str) -> Any:
        ok_tags = (_INT,) if whole else (_INT, _FLOAT)
        if isinstance(node, ScalarNode) and node.tag in ok_tags:
            try:      # an int of thousands of digits: ValueError (str->int limit) or OverflowError (float)
                value = self.scalar(node)
                ok = math.isfinite(float(value)) and (value > minimum if strict else value >= minimum)
            except (ValueError, OverflowError):
                ok = False
            if ok:
                return value
        return self.error(node, f"'{key}' must be {expected}, got {self.describe(node)}")

    def kind_int(self, node: YamlNode, key: str) -> Any:
        return self._number(node, key, whole=True, minimum=float("-inf"), strict=False,
                            expected="a whole number")

    def kind_count(self, node: YamlNode, key: str) -> Any:
        return self._number(node, key, whole=True, minimum=1, strict=False,
                            expected="a whole number of at least 1")

    def kind_count_or_zero(self, node: YamlNode, key: str) -> Any:
        return self._number(node, key, whole=True, minimum=0, strict=False,
                            expected="a whole number of at least 0")

    def kind_seconds(self, node: YamlNode, key: str) -> Any:
        value = self._number(node, key, whole=False, minimum=0, strict=True,
                             expected="a positive number of seconds")
        return value if value is INVALID else float(value)

    def kind_seconds_or_zero(self, node: YamlNode, key: str) -> Any:
        value = self._number(node, key, whole=False, minimum=0, strict=False,
                             expected="a number of seconds (0 or more)")
        return value if value is INVALID else float(value)

    def kind_timezone(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        try:
            zone(text)
        except ScheduleError as e:
            return self.error(node, str(e))
        return text

    def kind_regex(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        try:
            return re.compile(text)
        except re.error as e:
            return self.error(node, f"bad regular expression in '{key}': {e}")

    def kind_terminator(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, ScalarNode) and (node.tag == _NULL or node.value.lower() == "none"):
            return None
        if isinstance(node, ScalarNode) and len(node.value) == 1 and node.value in DTMF_KEYS:
            return node.value
        return self.error(node, f"'{key}' must be one DTMF key (0-9, *, #, A-D) or none, "
                                f"got {self.describe(node)}")

    def kind_destination(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is not INVALID and not _DESTINATION_RE.match(text):
            return self.error(node, f"'{key}' must be an extension or endpoint such as 'PJSIP/1000', "
                                    f"got '{text}'")
        if text is not INVALID:
            self.ref("extension", text, node)
        return text

    def kind_phone_number(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is not INVALID and not _PHONE_NUMBER_RE.match(text):
            return self.error(node, f"'{key}' must be a phone number: 3 to 20 digits with an optional leading "
                                    f"'+', no spaces (quote it: \"+442071234567\"), got '{text}'")
        return text

    def kind_trunk_ref(self, node: YamlNode, key: str) -> Any:
        return self._named_ref("trunk", node, key)

    def kind_hangup_reason(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is not INVALID and text not in schema.HANGUP_REASONS:
            return self.error(node, f"'{key}' must be one of {', '.join(schema.HANGUP_REASONS)}, got '{text}'")
        return text

    def kind_open_closed(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is not INVALID and text not in ("open", "closed"):
            return self.error(node, f"'{key}' must be 'open' or 'closed', got '{text}'")
        return text if text is INVALID else text == "open"

    def kind_variable(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        if not _VARIABLE_RE.match(text):
            return self.error(node, f"'{key}' must be a variable name (letters, digits and '_'), got '{text}'")
        self.ref("template_var", text, node)   # its value leaves the engine, like a template's
        return text

    def kind_new_variable(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        if not _VARIABLE_RE.match(text):
            return self.error(node, f"'{key}' must be a variable name (letters, digits and '_'), got '{text}'")
        if text in RESERVED_VARIABLES:
            return self.error(node, f"'{text}' is a reserved variable name")
        return text

    # -- prompts ---------------------------------------------------------------------

    def media(self, node: YamlNode, key: str) -> Any:
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            return self.error(node, f"'{key}' must be a media URI such as 'sound:hello-world', "
                                    f"got {self.describe(node)}")
        text = node.value.strip()
        scheme, sep, rest = text.partition(":")
        if not sep or scheme not in schema.MEDIA_SCHEMES:
            schemes = ", ".join(s + ":" for s in schema.MEDIA_SCHEMES)
            return self.error(node, f"bad media URI '{text}' (expected one of {schemes})")
        if not rest:
            return self.error(node, f"media URI '{text}' has nothing after '{scheme}:'")
        try:
            names = template_names(text)
        except TemplateError as e:
            return self.error(node, f"bad template in '{text}': {e}")
        for name in names:
            if not _VARIABLE_REF_RE.match(name):
                return self.error(node, f"bad variable '{name}' in '{text}'")
            self.ref("template_var", name, node)
        if names:
            return text
        if scheme in _STATIC_MEDIA_RE:
            pattern, expected = _STATIC_MEDIA_RE[scheme]
            if not pattern.match(rest):
                return self.error(node, f"'{text}': {scheme}: takes {expected}")
        elif scheme in ("sound", "recording"):
            if not _SOUND_NAME_RE.match(rest) or ".." in rest:
                return self.error(node, f"'{text}': bad {scheme} name")
            if scheme == "sound":
                self.ref("sound", rest, node)
        return text

    def prompt(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, MappingNode):
            items = self.items(node, f"'{key}'")
            if items is None:
                return INVALID
            if not items:
                return self.error(node, f"'{key}' must name at least one language")
            variants = []
            ok = True
            for lang, lang_node, media_node in items:
                if not _LANGUAGE_RE.match(lang):
                    self.error(lang_node, f"'{lang}' is not a language code such as 'en' or 'fr_CA'")
                    ok = False
                    continue
                media = self.media(media_node, key)
                if media is INVALID:
                    ok = False
                else:
                    variants.append((lang, media))
            if not ok:
                return INVALID
            prompt = Prompt(tuple(variants), self.pos(node))
        elif isinstance(node, ScalarNode) and node.tag != _NULL:
            media = self.media(node, key)
            if media is INVALID:
                return INVALID
            prompt = Prompt(((ANY_LANGUAGE, media),), self.pos(node))
        else:
            return self.error(node, f"'{key}' must be a media URI such as 'sound:hello-world', a list of them "
                                    f"or a mapping of language to URI, got {self.describe(node)}")
        self.parsed.prompts.append(prompt)
        return prompt

    def kind_prompts(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, SequenceNode):
            if not node.value:
                return self.error(node, f"'{key}' must not be empty")
            prompts = [self.prompt(item, key) for item in node.value]
            return INVALID if INVALID in prompts else tuple(prompts)
        prompt = self.prompt(node, key)
        return INVALID if prompt is INVALID else (prompt,)

    # -- node-specific collections ---------------------------------------------------

    def kind_options(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        if not items:
            return self.error(node, f"'{key}' must have at least one key")
        options = []
        ok = True
        for digit, digit_node, target_node in items:
            if len(digit) != 1 or digit not in DTMF_KEYS:
                self.error(digit_node, f"menu key '{digit}' is not a DTMF key (0-9, *, #, A-D)")
                ok = False
                continue
            target = self.kind_node_ref(target_node, f"{key} {digit}")
            if target is INVALID:
                ok = False
            else:
                options.append((digit, target))
        return tuple(options) if ok else INVALID

    def kind_skills(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        skills = []
        ok = True
        for skill, skill_node, level_node in items:
            if not _NAME_RE.match(skill):
                self.error(skill_node, f"'{skill}' is not a skill name (letters, digits, '_' and '-')")
                ok = False
                continue
            level = self.scalar(level_node)
            if key == "optional_skills":
                # optional skills are weights (fit = weight x agent's level), not levels
                if level_node.tag != _INT or not 0 <= level <= 100:
                    self.error(level_node, f"weight of optional skill '{skill}' must be a whole number from "
                                           f"0 to 100, got {self.describe(level_node)}")
                    ok = False
                    continue
            elif level_node.tag != _INT or not SKILL_MIN <= level <= SKILL_MAX:
                # required skills are proficiency levels on the ACD's scale (agents' and queues' too)
                self.error(level_node, f"level of required skill '{skill}' must be a whole number from "
                                       f"{SKILL_MIN} to {SKILL_MAX} (the ACD's proficiency scale), "
                                       f"got {self.describe(level_node)}")
                ok = False
                continue
            skills.append((skill, level))
        return tuple(skills) if ok else INVALID

    def kind_assignments(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        if not items:
            return self.error(node, f"'{key}' must set at least one variable")
        assignments = []
        ok = True
        for name, name_node, value_node in items:
            if not _VARIABLE_RE.match(name):
                self.error(name_node, f"'{name}' is not a variable name (letters, digits and '_')")
                ok = False
                continue
            if name in RESERVED_VARIABLES and name != "language":
                self.error(name_node, f"'{name}' is a reserved variable name")
                ok = False
                continue
            value = self.kind_text(value_node, name)
            if value is INVALID:
                ok = False
                continue
            try:
                names = template_names(value)
            except TemplateError as e:
                self.error(value_node, f"bad template in '{value}': {e}")
                ok = False
                continue
            for used in names:
                self.ref("template_var", used, value_node)
            if name == "language" and not names and not _LANGUAGE_RE.match(value):
                self.error(value_node, f"'language' must be a language code such as 'en' or 'fr_CA', "
                                       f"got '{value}'")
                ok = False
                continue
            assignments.append((name, value))
        return tuple(assignments) if ok else INVALID

    def kind_rules(self, node: YamlNode, key: str) -> Any:
        if not isinstance(node, SequenceNode):
            return self.error(node, f"'{key}' must be a list of rules ('when' and 'goto'), "
                                    f"got {self.describe(node)}")
        if not node.value:
            return self.error(node, f"'{key}' must have at least one rule")
        rules = []
        ok = True
        for rule_node in node.value:
            items = self.items(rule_node, "a rule")
            if items is None:
                ok = False
                continue
            values, complete = self.fields(items, schema.RULE_FIELDS, "rule", rule_node)
            if complete:
                rules.append(Rule(values["when"], values["goto"]))
            else:
                ok = False
        return tuple(rules) if ok else INVALID

    # -- conditions ------------------------------------------------------------------

    def kind_condition(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, "a condition")
        if items is None:
            return INVALID
        keys = [k for k, _, _ in items]
        if "var" in keys:
            return self.compare(node, items)
        if "schedule" in keys:
            values, complete = self.fields(items, schema.SCHEDULE_CONDITION_FIELDS, "schedule condition", node)
            return ScheduleIs(values["schedule"], values.get("is", True)) if complete else INVALID
        if len(items) == 1 and keys[0] in ("all", "any", "not"):
            form, _, value_node = items[0]
            if form == "not":
                inner = self.kind_condition(value_node, "not")
                return INVALID if inner is INVALID else NotOf(inner)
            if not isinstance(value_node, SequenceNode) or not value_node.value:
                return self.error(value_node, f"'{form}' must be a non-empty list of conditions, "
                                              f"got {self.describe(value_node)}")
            inner_conditions = [self.kind_condition(child, form) for child in value_node.value]
            if INVALID in inner_conditions:
                return INVALID
            return (AllOf if form == "all" else AnyOf)(tuple(inner_conditions))
        found = ", ".join(f"'{k}'" for k in keys) or "nothing"
        return self.error(node, f"a condition needs one of 'var', 'schedule', 'all', 'any' or 'not', got {found}")

    def compare(self, node: YamlNode, items: list[tuple[str, YamlNode, YamlNode]]) -> Any:
        variable: Any = INVALID
        ops: list[tuple[str, YamlNode]] = []
        ok = True
        for key, key_node, value_node in items:
            if key == "var":
                variable = self.kind_text(value_node, key)
                if variable is not INVALID and not _VARIABLE_REF_RE.match(variable):
                    variable = self.error(value_node, f"'{variable}' is not a variable name "
                                                      "(such as caller, did, account or customer.tier)")
            elif key in COMPARE_OPS:
                ops.append((key, value_node))
            else:
                self.error(key_node, f"unknown key '{key}' in condition{_suggest(key, COMPARE_OPS)}")
                ok = False
        if not ops and not ok:
            return INVALID          # the unknown key was probably meant as the operator
        if len(ops) != 1:
            shown = variable if variable is not INVALID else "?"
            return self.error(node, f"condition on '{shown}' needs exactly one operator "
                                    f"({', '.join(COMPARE_OPS)})")
        op, value_node = ops[0]
        value = self.operand(op, value_node)
        if variable is INVALID or value is INVALID or not ok:
            return INVALID
        return Compare(variable, op, value)

    def operand(self, op: str, node: YamlNode) -> Any:
        if op in ("eq", "ne"):
            return self.kind_text(node, op)
        if op in ("in", "not_in"):
            if not isinstance(node, SequenceNode) or not node.value:
                return self.error(node, f"'{op}' must be a non-empty list, got {self.describe(node)}")
            texts = [self.kind_text(item, op) for item in node.value]
            return INVALID if INVALID in texts else tuple(texts)
        if op == "matches":
            return self.kind_regex(node, op)
        if op == "exists":
            return self.kind_bool(node, op)
        assert op in NUMERIC_OPS
        value = self._number(node, op, whole=False, minimum=float("-inf"), strict=False, expected="a number")
        return value if value is INVALID else float(value)

    # -- schedules -------------------------------------------------------------------

    def kind_time_ranges(self, node: YamlNode, key: str) -> Any:
        if isinstance(node, SequenceNode):
            parts = [self.kind_text(item, key) for item in node.value]
            if INVALID in parts:
                return INVALID
            text = ", ".join(parts)
        else:
            text = self.kind_text(node, key)
            if text is INVALID:
                return text
        try:
            return parse_ranges(text)
        except ScheduleError as e:
            return self.error(node, str(e))

    def kind_weekly_hours(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        week: list[tuple[TimeRange, ...]] = [()] * 7
        set_by: dict[int, str] = {}
        ok = True
        for days_text, days_node, ranges_node in items:
            try:
                days = parse_days(days_text)
            except ScheduleError as e:
                self.error(days_node, str(e))
                ok = False
                continue
            ranges = self.kind_time_ranges(ranges_node, days_text)
            if ranges is INVALID:
                ok = False
                continue
            for day in days:
                if day in set_by:
                    self.error(days_node, f"{WEEKDAYS[day]} already has hours from '{set_by[day]}'")
                    ok = False
                    break
                set_by[day] = days_text
                week[day] = ranges
        return tuple(week) if ok else INVALID

    def kind_date(self, node: YamlNode, key: str) -> Any:
        text = self.kind_text(node, key)
        if text is INVALID:
            return text
        try:
            return parse_holiday_date(text)
        except ScheduleError as e:
            return self.error(node, str(e))

    def kind_holidays(self, node: YamlNode, key: str) -> Any:
        if not isinstance(node, SequenceNode):
            return self.error(node, f"'{key}' must be a list of dates, got {self.describe(node)}")
        holidays = []
        seen: dict[tuple[int | None, int, int], int] = {}
        ok = True
        for item in node.value:
            if isinstance(item, MappingNode):
                items = self.items(item, "a holiday")
                values, complete = self.fields(items or [], schema.HOLIDAY_FIELDS, "holiday", item)
                if items is None or not complete:
                    ok = False
                    continue
                when, hours, name = values["date"], values.get("hours", ()), values.get("name", "")
            else:
                when = self.kind_date(item, "holidays")
                if when is INVALID:
                    ok = False
                    continue
                hours, name = (), ""
            line = item.start_mark.line + 1
            if when in seen:
                self.error(item, f"holiday date is listed twice (first at line {seen[when]})")
                ok = False
                continue
            seen[when] = line
            year, month, day = when
            holidays.append(Holiday(month=month, day=day, year=year, hours=hours, name=name))
        return tuple(holidays) if ok else INVALID

    def kind_schedules(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        schedules = {}
        ok = True
        for name, name_node, schedule_node in items:
            if not _NAME_RE.match(name):
                self.error(name_node, f"'{name}' is not a schedule name (letters, digits, '_' and '-')")
                ok = False
                continue
            self.parsed.schedule_names.add(name)
            fields_ = self.items(schedule_node, f"schedule '{name}'")
            if fields_ is None:
                ok = False
                continue
            values, complete = self.fields(fields_, schema.SCHEDULE_FIELDS, f"schedule '{name}'", name_node)
            if not complete:
                ok = False
                continue
            schedules[name] = Schedule(name=name, timezone=values["timezone"], weekly=values["hours"],
                                       holidays=values.get("holidays", ()))
        self.parsed.schedules = schedules
        return schedules if ok else INVALID

    # -- nodes -----------------------------------------------------------------------

    def kind_nodes(self, node: YamlNode, key: str) -> Any:
        items = self.items(node, f"'{key}'")
        if items is None:
            return INVALID
        if not items:
            return self.error(node, f"'{key}' must define at least one node")
        for name, name_node, body in items:
            if not _NAME_RE.match(name):
                self.error(name_node, f"'{name}' is not a node name (letters, digits, '_' and '-')")
                continue
            self.parsed.node_pos[name] = self.pos(name_node)
            self.parsed.node_kind[name] = None
            self._owner = name
            try:
                self.read_node(name, name_node, body)
            finally:
                self._owner = None
        return dict(self.parsed.nodes)

    def read_node(self, name: str, name_node: YamlNode, body: YamlNode) -> None:
        items = self.items(body, f"node '{name}'")
        if items is None:
            return
        type_nodes = [value for key, _, value in items if key == "type"]
        kinds = ", ".join(schema.NODE_FIELDS)
        if not type_nodes:
            self.error(name_node, f"node '{name}' is missing required key 'type' (one of: {kinds})")
            return
        kind = self.kind_text(type_nodes[0], "type")
        if kind is INVALID:
            return
        if kind not in schema.NODE_FIELDS:
            hint = _suggest(kind, schema.NODE_FIELDS) or f" (one of: {kinds})"
            self.error(type_nodes[0], f"unknown node type '{kind}'{hint}")
            return
        self.parsed.node_kind[name] = kind
        specs = {**schema.NODE_COMMON_FIELDS, **schema.NODE_FIELDS[kind]}
        values, complete = self.fields(items, specs, f"{kind} node '{name}'", name_node)
        values.pop("type", None)
        value_nodes = {key: value for key, _, value in items}
        check = getattr(self, f"check_{kind}", None)
        if check is not None and not check(name, name_node, values, value_nodes):
            complete = False
        if complete:
            self.parsed.nodes[name] = NODE_CLASSES[kind](name=name, pos=self.pos(name_node), **values)

    # Cross-field checks, run after a node's fields were read; return False on error.

    def check_collect(self, name: str, name_node: YamlNode, values: dict, nodes: dict) -> bool:
        ok = True
        low = values.get("min_length", _default_of(CollectNode, "min_length"))
        high = values.get("max_length", _default_of(CollectNode, "max_length"))
        if low > high:
            where = nodes.get("min_length") or nodes.get("max_length")
            self.error(where, f"'min_length' ({low}) is greater than 'max_length' ({high})")
            ok = False
        if values.get("secure") and "variable" in values:
            self.ref("secure_var", values["variable"], nodes["variable"])
        return ok

    def check_goto(self, name: str, name_node: YamlNode, values: dict, nodes: dict) -> bool:
        given = [key for key in ("target", "flow") if key in nodes]
        if len(given) != 1:
            self.error(name_node, f"goto node '{name}' needs exactly one of 'target' or 'flow'")
            return False
        return True

    def check_transfer(self, name: str, name_node: YamlNode, values: dict, nodes: dict) -> bool:
        given = [key for key in ("destination", "number") if key in nodes]
        if len(given) != 1:
            self.error(name_node, f"transfer node '{name}' needs exactly one of 'destination' (an internal "
                                  "extension) or 'number' (an outside number, through a trunk); to transfer to "
                                  "a queue, use a queue node")
            return False
        if "trunk" in nodes and "number" not in nodes:
            self.error(nodes["trunk"], "'trunk' goes with 'number' (an outside number), not 'destination'")
            return False
        if "number" in nodes and "trunk" not in nodes:
            self.ref("trunk", "", nodes["number"])      # the default trunk: there must be exactly one
        return True

    def check_queue(self, name: str, name_node: YamlNode, values: dict, nodes: dict) -> bool:
        required = dict(values.get("required_skills", ()))
        ok = True
        for skill, _ in values.get("optional_skills", ()):
            if skill in required:
                self.error(nodes["optional_skills"], f"skill '{skill}' is both required and optional")
                ok = False
        return ok

    # -- document --------------------------------------------------------------------

    def check_limits(self, text: str) -> bool:
        """Size, nesting and alias expansion, from the parser's event stream (no recursion, no node
        graph built). False (and an error with its position) when the file is over a limit."""
        if len(text) > MAX_FLOW_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FLOW_FILE_BYTES:
            self.error(SourcePos(self.file, 1, 1),
                       f"flow file too large ({len(text.encode('utf-8', 'surrogatepass'))} bytes; "
                       f"at most {MAX_FLOW_FILE_BYTES})")
            return False
        sizes: dict[str, int] = {}          # anchor -> nodes it stands for, aliases expanded
        open_: list[list[Any]] = []         # per open collection: [expanded size so far, anchor]
        total = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, CollectionEndEvent):
                size, anchor = open_.pop()
                if anchor is not None:
                    sizes[anchor] = size
                if open_:
                    open_[-1][0] += size
                continue
            if isinstance(event, AliasEvent):
                if any(anchor == event.anchor for _, anchor in open_):
                    self.error(self._mark(event), f"alias '*{event.anchor}' refers to a mapping or list "
                                                  "that contains it (a recursive alias)")
                    return False
                size = sizes.get(event.anchor, 1)
            elif isinstance(event, (ScalarEvent, CollectionStartEvent)):
                size = 1
            else:
                continue
            total += size
            if total > MAX_YAML_NODES:
                self.error(self._mark(event), f"flow file too complex: more than {MAX_YAML_NODES} YAML values "
                                              "once aliases are expanded")
                return False
            if isinstance(event, CollectionStartEvent):
                if len(open_) >= MAX_YAML_DEPTH:
                    self.error(self._mark(event), f"nested too deeply (more than {MAX_YAML_DEPTH} levels)")
                    return False
                open_.append([1, event.anchor])
            elif isinstance(event, ScalarEvent) and event.anchor is not None:
                sizes[event.anchor] = 1
            if open_ and not isinstance(event, CollectionStartEvent):
                open_[-1][0] += size
        return True

    def _mark(self, event: Any) -> SourcePos:
        mark = event.start_mark
        return SourcePos(self.file, mark.line + 1, mark.column + 1)

    def read_document(self, text: str) -> ParsedFlow:
        try:
            if not self.check_limits(text):
                return self.parsed
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            message = f"YAML syntax error: {e.problem or e.context}"
            if "alias" in f"{e.problem} {e.context}":
                message += " (quote menu keys '*' and '#': \"*\": target)"
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self.parsed.diagnostics.append(Diagnostic(self.file, line, col, message))
            return self.parsed
        except yaml.reader.ReaderError as e:
            # a control character, or bytes that are not text: say where (line:col), and which
            line = text.count("\n", 0, e.position) + 1
            col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
            what = f"character #x{e.character:04x}" if isinstance(e.character, int) else "byte"
            self.parsed.diagnostics.append(Diagnostic(self.file, line, col, f"YAML error: unacceptable {what} "
                                                      "(flow files are plain UTF-8 text)"))
            return self.parsed
        except yaml.YAMLError as e:
            self.parsed.diagnostics.append(Diagnostic(self.file, 1, 1, f"YAML error: {e}"))
            return self.parsed
        except RecursionError:      # belt and braces: check_limits bounds the depth well below this
            self.parsed.diagnostics.append(Diagnostic(self.file, 1, 1, "nested too deeply"))
            return self.parsed
        if root is None:
            self.error(SourcePos(self.file, 1, 1), "empty flow file (expected a mapping with 'entry' and 'nodes')")
            return self.parsed
        items = self.items(root, "a flow file")
        if items is None:
            return self.parsed
        values, _ = self.fields(items, schema.FLOW_FIELDS, "flow file", SourcePos(self.file, 1, 1))
        parsed = self.parsed
        parsed.values = values
        parsed.entry = values.get("entry")
        parsed.language = values.get("language", "en")
        name_node = next((value for key, _, value in items if key == "flow"), None)
        if name_node is not None:
            parsed.name, parsed.name_pos = values.get("flow"), self.pos(name_node)
        else:
            stem = Path(self.file).stem
            parsed.name_pos = SourcePos(self.file, 1, 1)
            if _NAME_RE.match(stem):
                parsed.name = stem
            else:
                self.error(parsed.name_pos, f"no 'flow' name and the file name '{stem}' is not a valid name")
        return parsed


def parse_flow_text(text: str, file: str = "<string>") -> ParsedFlow:
    """Stage 1 only: parse and check one file's text (no cross-reference checks)."""
    return _Reader(file).read_document(text)


def build_flow(parsed: ParsedFlow) -> Flow:
    """The ``Flow`` of a file that parsed and validated without errors."""
    assert parsed.ok and parsed.name and parsed.entry, "build_flow needs an error-free ParsedFlow"
    optional = {key: parsed.values[key] for key in ("customer_wait", "goodbye_prompt", "description")
                if key in parsed.values}
    return Flow(name=parsed.name, entry=parsed.entry, nodes=parsed.nodes, language=parsed.language,
                schedules=parsed.schedules, file=parsed.file, **optional)


def _sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diagnostics))


def load_flow_sources(
    sources: Iterable[tuple[str, str]],
    *,
    known_queues: Collection[str] | None = None,
    known_sounds: Collection[str] | None = None,
    known_destinations: Destinations | None = None,
) -> tuple[FlowSet | None, list[Diagnostic]]:
    """Load (file name, text) pairs as one FlowSet; None when any file has an error."""

    sources = list(sources)
    parsed = [parse_flow_text(text, file) for file, text in sources]
    diagnostics = [d for p in parsed for d in p.diagnostics]
    diagnostics += validate_flows(parsed, known_queues=known_queues, known_sounds=known_sounds,
                                  known_destinations=known_destinations)
    diagnostics = _sorted_unique(diagnostics)
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    digest = hashlib.sha256()
    for file, text in sorted(sources):
        digest.update(f"{file}\0{text}\0".encode())
    flows = {p.name: build_flow(p) for p in parsed}
    return FlowSet(flows, version=digest.hexdigest()[:12]), diagnostics


def load_flow_text(
    text: str,
    file: str = "<string>",
    *,
    known_queues: Collection[str] | None = None,
    known_sounds: Collection[str] | None = None,
    known_destinations: Destinations | None = None,
) -> tuple[Flow | None, list[Diagnostic]]:
    """Load one flow from text. ``goto`` to other flows is not checked (there are none)."""

    parsed = parse_flow_text(text, file)
    diagnostics = parsed.diagnostics + validate_flows(
        [parsed], known_queues=known_queues, known_sounds=known_sounds, check_flow_refs=False,
        known_destinations=known_destinations)
    diagnostics = _sorted_unique(diagnostics)
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    return build_flow(parsed), diagnostics


def _read_text(path: Path) -> tuple[str | None, Diagnostic | None]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FLOW_FILE_BYTES + 1)     # never more than the limit in memory
    except OSError as e:
        return None, Diagnostic(str(path), 1, 1, f"cannot read file: {e.strerror or e}")
    if len(data) > MAX_FLOW_FILE_BYTES:
        return None, Diagnostic(str(path), 1, 1, f"flow file too large (more than {MAX_FLOW_FILE_BYTES} bytes)")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return None, Diagnostic(str(path), line, col, f"not UTF-8 text: {e.reason} at byte {e.start}")


def load_flow_file(
    path: str | Path,
    *,
    known_queues: Collection[str] | None = None,
    known_sounds: Collection[str] | None = None,
) -> tuple[Flow | None, list[Diagnostic]]:
    """Load and validate one flow file on its own."""
    text, problem = _read_text(Path(path))
    if text is None:
        return None, [problem]
    return load_flow_text(text, str(path), known_queues=known_queues, known_sounds=known_sounds)


def flow_files(paths: str | Path | Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand files and directories (their ``*.yaml``/``*.yml``, not recursive) to flow files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in FLOW_FILE_SUFFIXES and p.is_file())
            if not found:
                problems.append(Diagnostic(str(path), 1, 1, "no flow files (*.yaml, *.yml) in this directory"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, problems


def load_flow_dir(
    paths: str | Path | Iterable[str | Path],
    known_queues: Collection[str] | None = None,
    known_sounds: Collection[str] | None = None,
    known_destinations: Destinations | None = None,
) -> tuple[FlowSet | None, list[Diagnostic]]:
    """Load every flow file of ``paths`` (files or directories) as one FlowSet.

    Returns (None, diagnostics) when anything is wrong: a server should then keep serving
    its previous FlowSet. Warnings alone do not prevent loading.
    """
    files, problems = flow_files(paths)
    sources = []
    for path in files:
        text, problem = _read_text(path)
        if problem is not None:
            problems.append(problem)
        else:
            sources.append((str(path), text))
    flowset, diagnostics = load_flow_sources(sources, known_queues=known_queues, known_sounds=known_sounds,
                                             known_destinations=known_destinations)
    if problems:
        return None, _sorted_unique(diagnostics + problems)
    return flowset, diagnostics
