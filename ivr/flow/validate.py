"""Checks that need a whole file or a whole set of files (stage 2 of loading).

Runs on ``ParsedFlow`` objects, which exist even for files with errors, so that one run
reports everything: unknown targets, schedules, queues, sounds and flows; unreachable
nodes; loops in which nothing waits for the caller; secure variables used where their
digits would leave the engine; and the warnings (which do not block loading).
"""

from __future__ import annotations

import difflib
from collections import defaultdict, deque
from collections.abc import Collection, Hashable, Iterable, Sequence
from typing import TypeVar

from .diagnostics import Diagnostic, Severity
from .model import ANY_LANGUAGE, NODE_CLASSES, Destinations, MenuNode, SourcePos
from .parsed import ParsedFlow

# Node kinds that move on without waiting for the caller or an outside result.
PASS_THROUGH_KINDS = frozenset(kind for kind, cls in NODE_CLASSES.items() if not cls.waits_for_caller)

K = TypeVar("K", bound=Hashable)


def _diag(pos: SourcePos, message: str, severity: Severity = "error") -> Diagnostic:
    return Diagnostic(pos.file, pos.line, pos.col, message, severity)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate_flows(
    parsed: Sequence[ParsedFlow],
    *,
    known_queues: Collection[str] | None = None,
    known_sounds: Collection[str] | None = None,
    check_flow_refs: bool = True,
    known_destinations: Destinations | None = None,
) -> list[Diagnostic]:
    """Cross-reference checks over files that were parsed together.

    ``known_queues``/``known_sounds``: when given, queue and ``sound:`` names must be in
    them. ``check_flow_refs``: report ``goto flow:`` to flows not in ``parsed``.
    ``known_destinations``: when given, a transfer's ``destination`` and ``trunk`` must be in it.
    """
    out: list[Diagnostic] = []
    by_name: dict[str, ParsedFlow] = {}
    for flow in parsed:
        if flow.name is None:
            continue
        if flow.name in by_name:
            out.append(_diag(flow.name_pos, f"flow '{flow.name}' is already defined in {by_name[flow.name].file}"))
        else:
            by_name[flow.name] = flow
    sounds = None if known_sounds is None else {s.removeprefix("sound:") for s in known_sounds}
    secure = {ref.name for flow in parsed for ref in flow.references if ref.kind == "secure_var"}
    for flow in parsed:
        out += _check_references(flow, by_name if check_flow_refs else None, known_queues, sounds, secure)
        if known_destinations is not None:
            out += _check_destinations(flow, known_destinations)
        out += _check_reachable(flow)
        out += _warnings(flow)
    out += _check_loops(parsed, by_name)
    return out


def _check_references(
    flow: ParsedFlow,
    flows: dict[str, ParsedFlow] | None,
    known_queues: Collection[str] | None,
    known_sounds: set[str] | None,
    secure: set[str],
) -> list[Diagnostic]:
    out = []
    for ref in flow.references:
        name = ref.name
        if ref.kind == "node" and name not in flow.node_pos:
            out.append(_diag(ref.pos, f"unknown node '{name}'{_suggest(name, flow.node_pos)}"))
        elif ref.kind == "schedule" and name not in flow.schedule_names:
            out.append(_diag(ref.pos, f"unknown schedule '{name}'{_suggest(name, flow.schedule_names)}"))
        elif ref.kind == "queue" and known_queues is not None and name not in known_queues:
            known = ", ".join(sorted(known_queues)) or "none configured"
            out.append(_diag(ref.pos, f"unknown queue '{name}' (known queues: {known})"))
        elif ref.kind == "sound" and known_sounds is not None and name not in known_sounds:
            out.append(_diag(ref.pos, f"unknown sound '{name}'{_suggest(name, known_sounds)}"))
        elif ref.kind == "flow" and flows is not None and name not in flows:
            out.append(_diag(ref.pos, f"unknown flow '{name}'{_suggest(name, flows)}"))
        elif ref.kind == "template_var" and name in secure:
            out.append(_diag(ref.pos, f"secure variable '{name}' cannot be used in a prompt, "
                                      "a set value or a callback"))
    return out


def _check_destinations(flow: ParsedFlow, known: Destinations) -> list[Diagnostic]:
    out = []
    for ref in flow.references:
        if ref.kind == "extension" and ref.name not in known.internal:
            names = ", ".join(sorted(known.internal)) or "none configured"
            out.append(_diag(ref.pos, f"unknown transfer destination '{ref.name}'"
                                      f"{_suggest(ref.name, known.internal) or f' (known: {names})'}"))
        elif ref.kind == "trunk" and ref.name and ref.name not in known.trunks:
            names = ", ".join(sorted(known.trunks)) or "none configured"
            out.append(_diag(ref.pos, f"unknown trunk '{ref.name}' (known trunks: {names})"))
        elif ref.kind == "trunk" and not ref.name and len(known.trunks) != 1:
            why = "no trunk is configured" if not known.trunks else \
                f"several trunks are configured ({', '.join(sorted(known.trunks))}): name one with 'trunk'"
            out.append(_diag(ref.pos, f"an outside number needs a trunk: {why}"))
    return out


def _node_edges(flow: ParsedFlow) -> dict[str, list[str]]:
    edges: dict[str, list[str]] = defaultdict(list)
    for ref in flow.references:
        if ref.kind == "node" and ref.owner is not None and ref.name in flow.node_pos:
            edges[ref.owner].append(ref.name)
    return edges


def _check_reachable(flow: ParsedFlow) -> list[Diagnostic]:
    # A node whose type is missing or unknown was not read, so its jumps are unknown:
    # reporting what looks unreachable would only repeat that error.
    if flow.entry not in flow.node_pos or None in flow.node_kind.values():
        return []
    edges = _node_edges(flow)
    seen = {flow.entry}
    todo = deque([flow.entry])
    while todo:
        for target in edges.get(todo.popleft(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return [_diag(pos, f"node '{name}' is unreachable from entry '{flow.entry}'")
            for name, pos in flow.node_pos.items() if name not in seen]


def _warnings(flow: ParsedFlow) -> list[Diagnostic]:
    out = []
    for node in flow.nodes.values():
        if isinstance(node, MenuNode) and node.on_timeout is None:
            out.append(_diag(node.pos, f"menu '{node.name}' has no 'on_timeout': callers who press nothing "
                                       f"are hung up after {node.max_attempts} attempts", "warning"))
    for prompt in flow.prompts:
        languages = dict(prompt.variants)
        if ANY_LANGUAGE not in languages and flow.language not in languages:
            out.append(_diag(prompt.pos, f"prompt has no '{flow.language}' variant (the flow's default "
                                         "language)", "warning"))
    return out


def _check_loops(parsed: Sequence[ParsedFlow], flows: dict[str, ParsedFlow]) -> list[Diagnostic]:
    """Report cycles made only of nodes that do not wait (play, branch, set, goto, callback)."""
    Key = tuple[str, str]
    graph: dict[Key, list[Key]] = {}
    positions: dict[Key, SourcePos] = {}
    for flow in parsed:
        if flow.name is None or flows.get(flow.name) is not flow:
            continue
        for name, kind in flow.node_kind.items():
            if kind in PASS_THROUGH_KINDS:
                graph[(flow.name, name)] = []
                positions[(flow.name, name)] = flow.node_pos[name]
    for flow in parsed:
        if flow.name is None or flows.get(flow.name) is not flow:
            continue
        for ref in flow.references:
            source = (flow.name, ref.owner or "")
            if source not in graph:
                continue
            target: tuple[str, str] | None = None
            if ref.kind == "node":
                target = (flow.name, ref.name)
            elif ref.kind == "flow" and ref.name in flows and flows[ref.name].entry is not None:
                target = (ref.name, flows[ref.name].entry)
            if target in graph:
                graph[source].append(target)
    out = []
    for component in _strongly_connected(graph):
        start = min(component, key=lambda key: (positions[key].file, positions[key].line, positions[key].col))
        if len(component) == 1 and start not in graph[start]:
            continue
        cycle = _cycle_through(start, graph, set(component))
        names = " -> ".join(name if f == start[0] else f"{f}:{name}" for f, name in cycle)
        out.append(_diag(positions[start], f"loop without caller input: {names} "
                                           "(a caller would be stuck; add a menu or collect)"))
    return out


def _cycle_through(start: K, graph: dict[K, list[K]], allowed: set[K]) -> list[K]:
    """A shortest path start -> ... -> start inside ``allowed``."""
    parents: dict[K, K] = {}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        for child in graph[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if child in allowed and child not in parents:
                parents[child] = node
                todo.append(child)
    raise ValueError("no cycle through start")


def _strongly_connected(graph: dict[K, list[K]]) -> list[list[K]]:
    """Tarjan's algorithm, iterative (flows can be long chains)."""
    index: dict[K, int] = {}
    low: dict[K, int] = {}
    stack: list[K] = []
    on_stack: set[K] = set()
    components: list[list[K]] = []

    def visit(node: K) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root, root_children in graph.items():
        if root in index:
            continue
        visit(root)
        work = [(root, iter(root_children))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components
