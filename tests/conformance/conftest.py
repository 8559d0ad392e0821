"""One real Parley server for the whole conformance suite, and a stub to reach it."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.servers import BackgroundServer, sqlite_server

from .harness import Dialogues, Stub


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    thread = sqlite_server(tmp_path_factory.mktemp("conformance") / "parley.db")
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def stub(server: BackgroundServer) -> Iterator[Stub]:
    with grpc.insecure_channel(server.address) as channel:
        yield Stub(channel)


@pytest.fixture
def dialogues(stub: Stub) -> Dialogues:
    """Creates this scenario's dialogues (each under its own id)."""
    return Dialogues(stub)
