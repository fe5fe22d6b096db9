"""API errors with stable `error_id`s: clients match on the id, never on the human message."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.details = status, error_id, message, details
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error_id": self.error_id, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return web.json_response(body, status=self.status, headers=self.headers)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "missing or wrong admin token")


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind}-not-found", f"no {kind} {printable(ident)}")


def bad_request(error_id: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, error_id, message, details)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes) -> Any:
    """Strict JSON: NaN/Infinity (which Python's json accepts) and nesting deeper than the decoder's stack
    raise ValueError like any other malformed document."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


async def json_body(request: web.Request, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 with a clear error id.

    With `allowed`, a key outside it is a 400 `invalid-request` (a typo or a field meant for another
    endpoint is refused, not silently ignored)."""
    try:
        data = await request.json(loads=parse_json)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid-json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("invalid-json", "request body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise bad_request("invalid-request", f"unknown field(s) {', '.join(map(printable, unknown))}; "
                                                 f"allowed: {', '.join(sorted(allowed))}")
    return data


def printable(value: object, limit: int = 64) -> str:
    """`value` quoted for an error message or a log line: control characters escaped, length bounded."""
    text = repr(str(value)[:limit])
    return text + ("..." if len(str(value)) > limit else "")
