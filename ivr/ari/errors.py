"""The one place where HTTP and connection failures of ARI become our own typed exceptions."""

from __future__ import annotations

import json
from typing import Any


class AriError(Exception):
    """An ARI request failed. `status` is the HTTP status (0 when Asterisk could not be reached)."""

    def __init__(self, method: str, path: str, status: int, message: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.method, self.path, self.status, self.message = method, path, status, message


class BadRequest(AriError):
    """400: a parameter was missing or invalid."""


class NotFound(AriError):
    """404: the channel/bridge/playback is gone (often: the caller hung up). Usually not an error."""


class Conflict(AriError):
    """409: wrong state for the operation (e.g. channel not in the Stasis app, id already in use)."""


class Unprocessable(AriError):
    """422: e.g. an endpoint that does not exist in an originate or addChannel."""


class Unavailable(AriError):
    """Asterisk did not answer, or answered 5xx (e.g. originate to an unregistered endpoint: 500)."""


def error_for_status(method: str, path: str, status: int, message: str) -> AriError:
    cls = {400: BadRequest, 404: NotFound, 409: Conflict, 422: Unprocessable}.get(status)
    if cls is None:
        cls = Unavailable if status >= 500 or status == 0 else AriError
    return cls(method, path, status, message)


def response_value(method: str, path: str, status: int, text: str) -> Any:
    """A REST response's value (parsed JSON, the text itself, or None when empty), or its typed error:
    the same for a response over HTTP and over a websocket."""
    if status >= 300:
        message = text
        try:
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            pass
        raise error_for_status(method, path, status, str(message)[:300])
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
