"""The flow reader's structured value kinds: media and prompts, menu options, skills, assignments, rules and
conditions."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from . import schema
from .conditions import COMPARE_OPS, NUMERIC_OPS, AllOf, AnyOf, Compare, NotOf, ScheduleIs
from .model import (
    ANY_LANGUAGE,
    DTMF_KEYS,
    RESERVED_VARIABLES,
    Prompt,
    Rule,
)
from .read_values import ValueKinds
from .reader_base import (
    _INT,
    _LANGUAGE_RE,
    _NAME_RE,
    _NULL,
    _SOUND_NAME_RE,
    _STATIC_MEDIA_RE,
    _VARIABLE_RE,
    _VARIABLE_REF_RE,
    INVALID,
    SKILL_MAX,
    SKILL_MIN,
    _suggest,
)
from .template import TemplateError, template_names


class StructKinds(ValueKinds):
    """Structured kinds (``kind_*``)."""

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

