"""Per-channel ordered dispatch: events of one call run in order, calls run concurrently.

Each key (a channel id, or a non-channel key such as an endpoint) has at most one worker task draining
its queue; a handler that raises is logged and the next event still runs, and other keys never notice.
A worker exits when its queue is empty, so finished calls leave nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .models import BridgeEvent, ContactStatusChange, DeviceStateChanged, EndpointStateChange, Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


def dispatch_key(ev: Event) -> str:
    cid = ev.channel_id
    if cid:
        return cid
    if isinstance(ev, (EndpointStateChange, ContactStatusChange)):
        return "endpoint:" + ev.endpoint.name
    if isinstance(ev, DeviceStateChanged):
        return "device:" + ev.device_state.name
    if isinstance(ev, BridgeEvent):
        return "bridge:" + ev.bridge.id
    return "_app"


class Dispatcher:
    def __init__(self, handler: Handler, on_lag: Callable[[float], None] | None = None,
                 slow_handler_warning: float = 1.0) -> None:
        self._handler = handler
        self._queues: dict[str, deque[tuple[float, Event]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._on_lag = on_lag
        self._slow = slow_handler_warning
        self.handler_errors = 0

    def submit(self, ev: Event) -> None:
        key = dispatch_key(ev)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        q.append((time.monotonic(), ev))
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._drain(key), name=f"ari:{key}")

    async def _drain(self, key: str) -> None:
        q = self._queues[key]
        try:
            while q:
                received, ev = q.popleft()
                start = time.monotonic()
                if self._on_lag is not None:
                    self._on_lag(start - received)
                try:
                    await self._handler(ev)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.handler_errors += 1
                    log.exception("handler failed on %s for %s (other calls unaffected)", ev.type, key)
                took = time.monotonic() - start
                if took > self._slow:
                    log.warning("handler for %s on %s took %.2fs", ev.type, key, took)
        finally:
            # no await between the emptiness check and the removal: submit() cannot interleave
            self._workers.pop(key, None)
            if not q:
                self._queues.pop(key, None)

    def busy(self, key: str) -> bool:
        """Events of this key are queued or being handled."""
        return key in self._workers

    @property
    def active_keys(self) -> int:
        return len(self._workers)

    async def join(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been handled (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._workers and time.monotonic() < deadline:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self) -> None:
        for t in list(self._workers.values()):
            t.cancel()
        await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
