"""Typed ARI client: REST (`AriClient`), events websocket (`EventStream`), per-channel dispatch."""

from .client import BULK_LISTS, AriClient
from .rest_socket import RestSockets
from .dispatch import Dispatcher, dispatch_key
from .errors import AriError, BadRequest, Conflict, NotFound, Unavailable, Unprocessable
from .events import EventStream, backoff_delay
from .models import *
from .operations import OPERATIONS, Operation

__all__ = [
           "BULK_LISTS",
           "OPERATIONS",
           "AriClient",
           "AriError",
           "BadRequest",
           "Conflict",
           "Dispatcher",
           "EventStream",
           "NotFound",
           "Operation",
           "RestSockets",
           "Unavailable",
           "Unprocessable",
           "backoff_delay",
           "dispatch_key",
]
