"""`open_store` maps a store URL to an unopened store."""

from __future__ import annotations

from pathlib import Path

import pytest
from parley.server.engine.model import Dialogue
from parley.server.store import MemoryStore, SQLiteStore, open_store
from parley.server.store.postgres import PostgresStore


def test_memory_url_is_a_memory_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
async def test_sqlite_memory_url(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        await store.create_dialogue(Dialogue(id="d1"))
    finally:
        await store.close()


async def test_sqlite_absolute_path_takes_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "data" / "parley.db"

    store = open_store(f"sqlite:///{path}")
    await store.open()
    await store.close()

    assert str(path).startswith("/")
    assert path.exists()


async def test_sqlite_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_store("sqlite:///data/parley.db")
    await store.open()
    await store.close()

    assert (tmp_path / "data" / "parley.db").exists()


@pytest.mark.parametrize(
    "url", ["postgresql://user:secret@localhost/test", "postgres://localhost/test?options=x"]
)
def test_postgres_urls_are_postgres_stores(url: str) -> None:
    # Nothing connects until open().
    assert isinstance(open_store(url), PostgresStore)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user:secret@localhost/test",
        "sqlite://",
        "sqlite:///",
        "sqlite://relative.db",
        "memory",
        "",
    ],
)
def test_other_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported store URL") as raised:
        open_store(url)
    assert "secret" not in str(raised.value)
