"""One flow file after the loader's first stage (``ParsedFlow``): what parsed, plus what the validator
(``validate``) needs. Its own module so that the loader and the validator both use it without importing
each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostic
from .model import Node, Prompt, Reference, SourcePos
from .schedule import Schedule


@dataclass
class ParsedFlow:
    """One file after stage 1: the model parts that parsed, plus what the validator needs.

    ``node_pos``/``node_kind`` list every declared node, even one with errors, so that a
    typo inside a node does not also turn every jump to it into an "unknown node" error.
    """

    file: str
    name: str | None = None
    name_pos: SourcePos | None = None
    entry: str | None = None
    language: str = "en"
    node_pos: dict[str, SourcePos] = field(default_factory=dict)
    node_kind: dict[str, str | None] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    schedule_names: set[str] = field(default_factory=set)     # declared, valid or not
    references: list[Reference] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)       # valid top-level values
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

