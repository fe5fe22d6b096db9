"""ivr.flow is a pure core: no asyncio, no network, no other ivr package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ivr.flow

FORBIDDEN = ("asyncio", "aiohttp", "prometheus_client", "threading", "socket", "subprocess")
MODULES = sorted(Path(ivr.flow.__file__).parent.glob("*.py"))


def imported_names(path: Path) -> list[tuple[str, int]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append((node.module or "", node.level))
    return names


def test_all_modules_are_checked():
    assert {p.stem for p in MODULES} >= {"model", "schema", "loader", "validate", "schedule", "conditions",
                                         "engine", "simulate", "cli", "protocol", "template", "diagnostics"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_nothing_impure(path):
    for name, level in imported_names(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if level == 0:
            assert top != "ivr", f"{path.name} imports {name}: use relative imports inside ivr.flow only"
        else:
            assert level == 1, f"{path.name} imports from outside ivr.flow ({'.' * level}{name})"
