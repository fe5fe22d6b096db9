"""ARI REST requests over websockets (Asterisk 22.4+: `RESTRequest` / `RESTResponse` messages).

An HTTP round trip costs the app about twice the CPU of a websocket message (aiohttp builds a URL, headers
and a response object per request); Asterisk pays about the same either way (`bench/ari_transport.py`,
figures in `bench/README.md`).

Asterisk handles the requests of one websocket one at a time (its reader thread runs each to the end), so
`RestSockets` keeps a small pool, each socket its own Stasis application (``<app>-rest<N>``, subscribed to
nothing: no event ever arrives on it), and sends each request on the socket with the fewest requests in
flight. While no socket is connected (start-up, Asterisk restarting, a cut network) `pick()` returns
None and the client uses HTTP: a request never waits for a socket.

A socket that closes fails its requests in flight with `Unavailable` (status 0), like a broken HTTP
connection: whether Asterisk executed them is unknown, as with an HTTP timeout.

A socket is used only once Asterisk has answered a `GET /asterisk/ping` sent over it (`probe`): an older
Asterisk accepts the websocket but ignores requests on it, and then every request goes over HTTP (logged
once as a warning) instead of timing out.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .backoff import backoff_delay, wait_unless
from .errors import Unavailable, response_value

log = logging.getLogger(__name__)


class RestSocket:
    """One websocket: requests out, `RESTResponse`s matched to them by `request_id`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pending: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._ids = itertools.count(1)

    @property
    def up(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def request(self, method: str, path: str, query: list[tuple[str, str]],
                      body: dict[str, Any] | None, timeout: float) -> Any:
        ws = self.ws
        if ws is None or ws.closed:
            raise Unavailable(method, path, 0, "REST websocket closed")
        rid = str(next(self._ids))
        msg: dict[str, Any] = {"type": "RESTRequest", "request_id": rid, "method": method, "uri": path[1:]}
        if query:
            msg["query_strings"] = [{"name": k, "value": v} for k, v in query]
        if body is not None:
            msg["content_type"] = "application/json"
            msg["message_body"] = json.dumps(body)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, str]] = loop.create_future()
        self.pending[rid] = fut
        # a timer on the future itself: asyncio.wait_for would wrap it in another future per request
        timer = loop.call_later(timeout, _expire, fut)
        try:
            await ws.send_str(json.dumps(msg))
            status, text = await fut
        except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError) as e:
            raise Unavailable(method, path, 0, type(e).__name__ + (f": {e}" if str(e) else "")) from None
        finally:
            timer.cancel()
            self.pending.pop(rid, None)
        return response_value(method, path, status, text)

    def received(self, data: str) -> None:
        try:
            msg = json.loads(data)
            if msg.get("type") != "RESTResponse":
                return                  # e.g. ApplicationReplaced: this socket's app gets no events
            fut = self.pending.get(str(msg.get("request_id")))
            status = int(msg.get("status_code", 0))
            body = msg.get("message_body") or ""
        except (ValueError, AttributeError, TypeError):
            log.warning("ARI sent a malformed message on a REST websocket (%d bytes); ignored", len(data))
            return
        if fut is not None and not fut.done():
            fut.set_result((status, body))

    def closed(self, reason: str) -> None:
        self.ws = None
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
        self.pending.clear()


def _expire(fut: asyncio.Future[tuple[int, str]]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


PROBE_SECONDS = 5.0


async def probe(ws: aiohttp.ClientWebSocketResponse, timeout: float = PROBE_SECONDS) -> bool | None:
    """Does Asterisk answer REST requests on this websocket? True; False when no answer came within
    `timeout` (an Asterisk before 22.4 / 21.9 / 20.14); None when the socket closed meanwhile."""
    await ws.send_str(json.dumps({"type": "RESTRequest", "request_id": "probe", "method": "GET",
                                  "uri": "asterisk/ping"}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            return None
        if msg.type == aiohttp.WSMsgType.TEXT:
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("type") == "RESTResponse" \
                    and data.get("request_id") == "probe":
                return True
    return False


class RestSockets:
    """A pool of `RestSocket`s kept connected (reconnect with backoff) while `run()` runs."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession], base_url: str, app: str, count: int,
                 *, reconnect_min: float = 0.2, reconnect_max: float = 5.0) -> None:
        base = base_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        # credentials travel in the session's Authorization header, never in this URL
        self.sockets = [RestSocket(f"{base}/ari/events?app={app}-rest{i}&subscribeAll=false")
                        for i in range(1, count + 1)]
        self._session = session
        self._min, self._max = reconnect_min, reconnect_max
        self._stop = asyncio.Event()
        self.requests = 0
        #: Asterisk ignored a probe: it takes no REST over websockets, everything goes over HTTP
        self.unsupported = False
        self._worked = False        # some socket's probe was answered once: this Asterisk has them

    def pick(self) -> RestSocket | None:
        """The connected socket with the fewest requests in flight; None while none is connected."""
        best: RestSocket | None = None
        for s in self.sockets:
            if s.up and (best is None or len(s.pending) < len(best.pending)):
                best = s
        if best is not None:
            self.requests += 1
        return best

    @property
    def connected(self) -> int:
        return sum(1 for s in self.sockets if s.up)

    async def run(self) -> None:
        await asyncio.gather(*(self._keep(s) for s in self.sockets))

    def stop(self) -> None:
        self._stop.set()
        for s in self.sockets:
            if s.ws is not None:
                asyncio.ensure_future(s.ws.close())

    async def _keep(self, sock: RestSocket) -> None:
        attempt = 0
        while not self._stop.is_set():
            reason = "closed by Asterisk"
            try:
                async with self._session().ws_connect(sock.url, heartbeat=10.0,
                                                      timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:
                    answered = await probe(ws)
                    if answered is False and not self._worked:
                        if not self.unsupported:
                            self.unsupported = True
                            log.warning("Asterisk does not answer ARI REST requests over websockets (needs "
                                        "22.4, 21.9 or 20.14 or later): REST goes over HTTP")
                        return
                    if answered:            # else: closed, or a slow answer from an Asterisk that has them
                        self._worked = True
                        sock.ws = ws
                        attempt = 0
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                sock.received(msg.data)
                            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                                break
                    else:
                        reason = "no answer to the probe" if answered is False else "closed during the probe"
            except asyncio.CancelledError:
                sock.closed("stopped")
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                reason = f"{type(e).__name__}: {e}"
            sock.closed(reason)
            if self._stop.is_set():
                break
            if attempt % 10 == 0:
                log.info("ARI REST websocket %s down (%s); HTTP meanwhile", sock.url.split("app=")[1], reason)
            await wait_unless(self._stop, backoff_delay(attempt, self._min, self._max))
            attempt += 1
