"""Contract: every ARI call the client can make exists in the swagger served by the real Asterisk, with the
same HTTP method, path and parameter names (a typo like `digits` for `dtmf` fails here)."""

from __future__ import annotations

import inspect
import re

import pytest

from ivr.ari import OPERATIONS, AriClient
from tests.support.stack import ari_client

pytestmark = pytest.mark.e2e


async def _swagger(ari: AriClient) -> dict[tuple[str, str], dict[str, str]]:
    """(METHOD, path) -> {param name: paramType} from /ari/api-docs/."""
    index = await ari._request("GET", "/api-docs/resources.json", [], None)
    ops: dict[tuple[str, str], dict[str, str]] = {}
    for api in index["apis"]:
        name = api["path"].rsplit("/", 1)[-1].replace("{format}", "json")
        decl = await ari._request("GET", f"/api-docs/{name}", [], None)
        for a in decl["apis"]:
            for op in a["operations"]:
                ops[(op["httpMethod"], a["path"])] = {p["name"]: p["paramType"] for p in op.get("parameters", [])}
    return ops


async def test_every_client_operation_matches_the_served_swagger(cfg):
    async with ari_client(cfg) as ari:
        swagger = await _swagger(ari)
    assert len(swagger) > 80   # Asterisk 22 serves ~109 operations
    problems = []
    for name, op in OPERATIONS.items():
        params = swagger.get((op.method, op.path))
        if params is None:
            problems.append(f"{name}: {op.method} {op.path} not in swagger")
            continue
        for p in op.path_params:
            if params.get(p) != "path":
                problems.append(f"{name}: path parameter {p} is {params.get(p)}")
        for p in op.query:
            if params.get(p) != "query":
                problems.append(f"{name}: query parameter {p} is {params.get(p)}")
        for p in op.body:
            if params.get(p) != "body":
                problems.append(f"{name}: body parameter {p} is {params.get(p)}")
    assert not problems, "\n".join(problems)


def test_every_client_method_goes_through_a_declared_operation():
    """The client has no side door: each REST method names an operation from the table."""
    used = set()
    for _, fn in inspect.getmembers(AriClient, inspect.iscoroutinefunction):
        used.update(re.findall(r'_op\(\s*"([\w.]+)"', inspect.getsource(fn)))
    assert used <= set(OPERATIONS), used - set(OPERATIONS)
    assert set(OPERATIONS) - used == set(), f"operations no method uses: {set(OPERATIONS) - used}"
