"""A loopback TCP proxy that can cut its clients off while the server keeps going.

`sever()` resets every client-side connection but leaves the server-side ones open and
drained, so the server never notices: its streams go on to their end. That is a lost
connection as a client sees it when a network path or a load balancer in between fails,
and exactly the case a client should resume from (the run is still going).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from types import TracebackType

READ_SIZE = 65536
TIMEOUT_S = 10.0


@dataclass
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    severed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SeveringProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` (HOST:PORT)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: list[_Connection] = []
        self.address = ""

    def __enter__(self) -> SeveringProxy:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(TIMEOUT_S)
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        self._loop.close()

    @property
    def connections(self) -> int:
        """How many client connections the proxy has accepted so far."""
        return len(self._connections)

    def sever(self) -> None:
        """Reset every client connection now; the server side stays open and drained."""
        asyncio.run_coroutine_threadsafe(self._sever(), self._loop).result(TIMEOUT_S)

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        connection = _Connection(writer, up_writer)
        self._connections.append(connection)
        connection.tasks = [
            asyncio.create_task(self._to_server(reader, connection)),
            asyncio.create_task(self._to_client(up_reader, connection)),
        ]

    @staticmethod
    async def _to_server(reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(READ_SIZE):
                connection.upstream.write(data)
                await connection.upstream.drain()
        if not connection.severed:
            connection.upstream.close()

    @staticmethod
    async def _to_client(reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(READ_SIZE):
                if connection.severed:
                    continue  # the server goes on writing; nobody reads it any more
                connection.client.write(data)
                await connection.client.drain()
        if not connection.severed:
            connection.client.close()

    async def _sever(self) -> None:
        for connection in self._connections:
            if not connection.severed:
                connection.severed = True
                connection.client.transport.abort()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            connection.client.transport.abort()
            connection.upstream.transport.abort()
            for task in connection.tasks:
                task.cancel()
        for connection in self._connections:
            for task in connection.tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
        if self._server is not None:
            await self._server.wait_closed()
