"""A loopback TCP proxy that a test can cut: every connection through it is closed and new ones are
refused for a while (a real network outage between the app and Asterisk's ARI, REST and websocket)."""

from __future__ import annotations

import asyncio
import contextlib
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
        """For `seconds`, an HTTP request starting with `request_prefix` (e.g. b"DELETE /ari/bridges/") is
        swallowed: never forwarded, never answered (the client sees its request time out). Other traffic,
        the events websocket included, flows as usual."""
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
            await asyncio.gather(self._pipe(reader, uw, self._swallow), self._pipe(ur, writer))
        finally:
            self._conns -= {writer, uw}
            for w in (writer, uw):
                w.transport.abort()

    def _swallow(self, data: bytes) -> bool:
        if self._stall is None or time.monotonic() > self._stall[1] or not data.startswith(self._stall[0]):
            return False
        self.stalled += 1
        return True

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, swallow=None) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if swallow is not None and swallow(data):
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
