"""Fixtures: a real grpc.aio Parley server on port 0, reached through pytest-grpc and grpc.aio.

pytest-grpc 0.8.0 builds a synchronous `grpc.server` (or, with `--grpc-fake-server`, a fake
that breaks with current stubs). We keep its client side - `grpc_channel`, `grpc_stub` -
and override its server side: `grpc_server` is our production `ParleyServer` (grpc.aio,
SQLite store) running on an event loop in a background thread, and `grpc_addr` is the
address it really bound. pytest-grpc's fixtures are module-scoped, so every test uses
its own dialogue ids (`support.new_id`). A test module may override `parley_server` to
get a server of its own (other limits, another store).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import grpc
import pytest

from .support import BackgroundServer, Stub, sqlite_server

if TYPE_CHECKING:
    from .support import AsyncStub


@pytest.fixture(scope="module")
def parley_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    server = sqlite_server(tmp_path_factory.mktemp("parley-api") / "parley.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def grpc_server(parley_server: BackgroundServer) -> grpc.aio.Server:
    """Overrides pytest-grpc's server: ours is already started by `parley_server`."""
    return parley_server.grpc_server


@pytest.fixture(scope="module")
def grpc_addr(parley_server: BackgroundServer) -> str:
    """Overrides pytest-grpc's address (a port it picked itself) with the bound one."""
    return parley_server.address


@pytest.fixture(scope="module")
def grpc_stub_cls() -> type[Stub]:
    return Stub


@pytest.fixture(scope="module")
def stub(grpc_stub: Stub) -> Stub:
    """pytest-grpc's synchronous stub, typed."""
    return grpc_stub


@pytest.fixture
async def aio_stub(grpc_addr: str) -> AsyncIterator[AsyncStub]:
    """A grpc.aio stub on this test's event loop (the server runs on its own)."""
    async with grpc.aio.insecure_channel(grpc_addr) as channel:
        yield Stub(channel)
