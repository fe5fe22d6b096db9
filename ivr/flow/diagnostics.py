"""Diagnostics: one problem found in a flow file, with the place it was found.

Every loader and validator function returns a list of these instead of raising, so an
admin sees every problem in one run. ``str(d)`` is the compiler-style
``file:line:col: message`` (line and column are 1-based) that editors can jump to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    # Field order is the sort order: by file, then position, then text.
    file: str
    line: int
    col: int
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def format(self) -> str:
        """Like ``str()`` but warnings say so: ``file:line:col: warning: message``."""
        if self.is_error:
            return str(self)
        return f"{self.location}: warning: {self.message}"


def errors_in(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.is_error]


def warnings_in(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if not d.is_error]
