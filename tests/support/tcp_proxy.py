"""A loopback TCP proxy that a test can cut: every connection through it is closed and new ones are
refused for a while (a real network outage between the app and Asterisk's ARI, REST and websocket).
It can also swallow chosen REST requests, sent over HTTP or as `RESTRequest` websocket messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time

from ivr.sim.ports import free_tcp_port


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_tcp_port()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0
        self.refused = 0
        self._stall: tuple[bytes, float] | None = None
        self.stalled = 0
        self.stalled_ws = 0         # of which websocket RESTRequest messages

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.close()

    def cut(self, seconds: float) -> None:
        """Drop every open connection now and refuse new ones for `seconds`."""
        self._down_until = time.monotonic() + seconds
        for w in list(self._conns):
            w.transport.abort()

    def stall(self, request_prefix: bytes, seconds: float) -> None:
        """For `seconds`, a REST request starting with `request_prefix` (e.g. b"DELETE /ari/bridges/") is
        swallowed: never forwarded, never answered (the client sees its request time out). Over HTTP the
        request's first bytes are matched; a websocket's `RESTRequest` message is matched as
        `<method> /ari/<uri>`. Other traffic, events included, flows as usual."""
        self._stall = (request_prefix, time.monotonic() + seconds)

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            ur, uw = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._conns |= {writer, uw}
        try:
            await asyncio.gather(self._client_to_server(reader, uw), self._pipe(ur, writer))
        finally:
            self._conns -= {writer, uw}
            for w in (writer, uw):
                w.transport.abort()

    def _swallow(self, data: bytes) -> bool:
        if self._stall is None or time.monotonic() > self._stall[1] or not data.startswith(self._stall[0]):
            return False
        self.stalled += 1
        return True

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP requests pass chunk by chunk; after a websocket upgrade, the client's frames one by one."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self._swallow(data):
                    continue
                writer.write(data)
                await writer.drain()
                if data.startswith(b"GET /ari/events") and b"upgrade: websocket" in data.lower():
                    while True:
                        frame = await _read_frame(reader)      # at EOF: IncompleteReadError, suppressed
                        if not self._swallow_message(frame[1]):
                            writer.write(frame[0])
                            await writer.drain()
        writer.transport.abort()

    def _swallow_message(self, payload: bytes) -> bool:
        try:
            msg = json.loads(payload)
            line = f"{msg['method']} /ari/{msg['uri']}".encode() if msg.get("type") == "RESTRequest" else b""
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
        if line and self._swallow(line):
            self.stalled_ws += 1
            return True
        return False

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One client websocket frame (RFC 6455, always masked): (its bytes as sent, its unmasked payload)."""
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    ext = b""
    if n == 126:
        ext = await reader.readexactly(2)
        n = struct.unpack("!H", ext)[0]
    elif n == 127:
        ext = await reader.readexactly(8)
        n = struct.unpack("!Q", ext)[0]
    key = await reader.readexactly(4) if head[1] & 0x80 else b""
    body = await reader.readexactly(n)
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(body)) if key else body
    return head + ext + key + body, payload
