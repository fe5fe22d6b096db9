"""The pure CRM modules stay pure: no asyncio, aiohttp or sqlite3 imports (static check)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CRM = Path(__file__).resolve().parents[2] / "ivr" / "crm"
PURE = [
    "errors.py",
    "phone.py",
    "rules.py",
    "breaker.py",
    "cache.py",
    "mapping.py",
    "model.py",
    "importer.py",
]
FORBIDDEN = {"asyncio", "aiohttp", "sqlite3"}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports(module: str) -> None:
    tree = ast.parse((CRM / module).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{module} imports {imported & FORBIDDEN}"
    assert ast.get_docstring(tree), f"{module} needs a module docstring"
