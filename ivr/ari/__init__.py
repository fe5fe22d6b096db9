"""Typed ARI client: REST (`AriClient`), events websocket (`EventStream`), per-channel dispatch."""

from .client import AriClient
from .dispatch import Dispatcher, dispatch_key
from .errors import AriError, BadRequest, Conflict, NotFound, Unavailable, Unprocessable
from .events import EventStream, backoff_delay
from .models import *  # noqa: F401,F403 - the event and resource types are part of the public surface
from .operations import OPERATIONS, Operation

__all__ = ["AriClient", "Dispatcher", "dispatch_key", "AriError", "BadRequest", "Conflict", "NotFound",
           "Unavailable", "Unprocessable", "EventStream", "backoff_delay", "OPERATIONS", "Operation"]
