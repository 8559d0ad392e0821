"""Loopback TCP proxies that fail the way networks and databases do, for e2e tests.

- `SeveringProxy.sever()` resets every client-side connection but leaves the server-side
  ones open and drained, so the server never notices: its streams go on to their end.
  That is a lost connection as a client sees it when a network path or a load balancer
  in between fails, and exactly the case a client should resume from (the run is still
  going).
- `OutageProxy.down()` stops listening and resets every connection through it, both
  sides; `up()` listens again on the same port. That is an outage of a database as a
  replica sees it, while the real database (shared by every test) stays untouched.

Each runs its own event loop on a daemon thread: the tests around them are synchronous.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

READ_SIZE = 65536
TIMEOUT_S = 10.0


@dataclass
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    severed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class _OwnLoop(abc.ABC):
    """A proxy's event loop on a thread of its own, started by `with`, and its upstream."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self: P) -> P:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        self._loop.close()

    def _call(self, work: Coroutine[object, object, None]) -> None:
        """Runs `work` on the proxy's loop and waits for it."""
        asyncio.run_coroutine_threadsafe(work, self._loop).result(TIMEOUT_S)

    @abc.abstractmethod
    async def _start(self) -> None:
        """Starts listening (on the proxy's loop)."""

    @abc.abstractmethod
    async def _stop(self) -> None:
        """Stops listening and drops every connection (on the proxy's loop)."""


P = TypeVar("P", bound=_OwnLoop)


class SeveringProxy(_OwnLoop):
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` (HOST:PORT)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._server: asyncio.Server | None = None
        self._connections: list[_Connection] = []
        self.address = ""

    @property
    def connections(self) -> int:
        """How many client connections the proxy has accepted so far."""
        return len(self._connections)

    def sever(self) -> None:
        """Reset every client connection now; the server side stays open and drained."""
        self._call(self._sever())

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

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


class OutageProxy(_OwnLoop):
    """Listens on 127.0.0.1 (a free port, kept across outages) and forwards to
    `upstream` (HOST:PORT); `down()` and `up()` make and end an outage."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listens again, on the same port."""
        self._call(self._start())

    def down(self) -> None:
        """Stops listening and resets every connection, client and upstream side."""
        self._call(self._stop())

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(READ_SIZE):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
