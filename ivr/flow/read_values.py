"""The flow reader's scalar value kinds: text, names, references, numbers, seconds, time zones, regexes,
destinations, phone numbers, variables."""

from __future__ import annotations

import math
import re
from typing import Any

from yaml.nodes import Node as YamlNode
from yaml.nodes import ScalarNode

from . import schema
from .model import (
    DTMF_KEYS,
    RESERVED_VARIABLES,
)
from .reader_base import (
    _BOOL,
    _DESTINATION_RE,
    _FLOAT,
    _INT,
    _LANGUAGE_RE,
    _NAME_RE,
    _NULL,
    _PHONE_NUMBER_RE,
    _VARIABLE_RE,
    INVALID,
    ReaderBase,
)
from .schedule import (
    ScheduleError,
    zone,
)


class ValueKinds(ReaderBase):
    """Scalar kinds (``kind_*``)."""

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

