"""The flow reader's base (see loader.py): reporting with positions, reading mappings against the schema
tables (``schema.py``), scalars, and the limits checked before a document is composed."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from . import schema
from .diagnostics import Diagnostic
from .model import (
    Reference,
    SourcePos,
)
from .parsed import ParsedFlow

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



class ReaderBase:
    """Walks one composed YAML document; collects diagnostics instead of raising. The base: positions,
    errors, references, mappings against the schema tables, the document's size limits. The value kinds
    (``kind_*``) are added by the subclasses, one module per family."""

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

