"""API errors with stable `error_id`s: clients match on the id, never on the human message."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.details = status, error_id, message, details

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error_id": self.error_id, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return web.json_response(body, status=self.status)


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "missing or wrong admin token")


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind}-not-found", f"no {kind} {ident!r}")


def bad_request(error_id: str, message: str, details: Any = None) -> ApiError:
    return ApiError(400, error_id, message, details)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 with a clear error id."""
    try:
        data = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid-json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("invalid-json", "request body must be a JSON object")
    return data
