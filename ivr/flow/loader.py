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

The reader is split by family of values: ``reader_base`` (reporting, mappings, limits), ``read_values``
(scalars), ``read_structs`` (prompts, options, rules...), ``read_schedules``; here the nodes and the document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node as YamlNode

from . import schema
from .diagnostics import Diagnostic
from .model import (
    NODE_CLASSES,
    CollectNode,
    Destinations,
    Flow,
    FlowSet,
    SourcePos,
)
from .parsed import ParsedFlow
from .read_schedules import ScheduleKinds
from .reader_base import (  # noqa: F401  (MAX_*, SKILL_*: re-exported, tests and the ACD read them here)
    _NAME_RE,
    FLOW_FILE_SUFFIXES,
    INVALID,
    MAX_FLOW_FILE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    SKILL_MAX,
    SKILL_MIN,
    _default_of,
    _suggest,
)
from .validate import validate_flows


class _Reader(ScheduleKinds):
    """Walks one composed YAML document; collects diagnostics instead of raising."""

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

