"""A real Parley server for tests: the production `ParleyServer` on port 0, served by
an event loop in a background thread, so synchronous stubs (pytest-grpc) and grpc.aio
channels on the test's own loop both talk to it over TCP."""

from __future__ import annotations

import asyncio
import os
import threading

import grpc
from parley.server.agents.registry import AgentRegistry
from parley.server.api.server import ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.server.engine.validation import Limits
from parley.server.store import MemoryStore, SQLiteStore, Store

# Bounds every wait on the server thread: a hang fails the test instead of the run.
THREAD_TIMEOUT_S = 30.0


class BackgroundServer:
    """A real `ParleyServer` on port 0, served by an event loop in a background thread.

    `start` returns once the server listens (the bound port is in `port`); `stop`
    stops gRPC, closes the store and joins the thread.
    """

    def __init__(self, store: Store, limits: Limits | None = None) -> None:
        self.store = store
        self.settings = Settings(address="127.0.0.1:0", limits=limits or Limits())
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: ParleyServer | None = None
        self._thread = threading.Thread(target=self._main, name="parley-test-server", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def grpc_server(self) -> grpc.aio.Server:
        assert self._server is not None, "server not started"
        return self._server.grpc

    def start(self) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(THREAD_TIMEOUT_S):
            raise TimeoutError("the test server did not start")
        if self._error is not None:
            raise RuntimeError("the test server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(THREAD_TIMEOUT_S)
        if self._thread.is_alive():
            raise TimeoutError("the test server did not stop")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the thread that called start()
            self._error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.store.open()
        try:
            engine = Engine(self.store, AgentRegistry.with_builtin(), self.settings.limits)
            self._server = ParleyServer(engine, self.settings)
            self.port = await self._server.start()
            self._ready.set()
            await self._stop.wait()
            # No grace: tests that leave a stream open must not slow the teardown.
            await self._server.stop(0)
        finally:
            await self.store.close()


def sqlite_server(path: os.PathLike[str] | str, limits: Limits | None = None) -> BackgroundServer:
    return BackgroundServer(SQLiteStore(str(path)), limits).start()


def memory_server(limits: Limits | None = None) -> BackgroundServer:
    return BackgroundServer(MemoryStore(), limits).start()
