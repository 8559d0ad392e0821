"""Durable dialogue storage: the `Store` protocol, its implementations, and `open_store`."""

from __future__ import annotations

from parley.server.store.memory import MemoryStore
from parley.server.store.protocol import RunLease, RunStart, Store
from parley.server.store.sqlite import SQLiteStore

__all__ = ["MemoryStore", "RunLease", "RunStart", "SQLiteStore", "Store", "open_store"]

_SQLITE_PREFIX = "sqlite://"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str) -> Store:
    """The store a URL names, not yet opened: the caller awaits `open()` (and `close()`).

    - `memory://`: a `MemoryStore`;
    - `sqlite://:memory:`: an SQLite database in memory;
    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: an SQLite file (the
      path is everything after the third slash, as in SQLAlchemy URLs);
    - `postgresql://...` or `postgres://...`: a `PostgresStore` (a libpq URL, as asyncpg
      reads it), which needs the `postgres` extra.

    Anything else raises `ValueError`.
    """
    if url == "memory://":
        return MemoryStore()
    if url == f"{_SQLITE_PREFIX}:memory:":
        return SQLiteStore(":memory:")
    if url.startswith(f"{_SQLITE_PREFIX}/") and len(url) > len(_SQLITE_PREFIX) + 1:
        return SQLiteStore(url.removeprefix(f"{_SQLITE_PREFIX}/"))
    if url.startswith(_POSTGRES_SCHEMES):
        # Imported here: only PostgreSQL users install asyncpg.
        try:
            from parley.server.store.postgres import PostgresStore
        except ModuleNotFoundError as missing:
            raise ValueError(
                "PostgreSQL store URLs need the postgres extra: pip install 'parley[postgres]'"
            ) from missing
        return PostgresStore(url)
    # Only the scheme is echoed: other URLs (postgresql://user:password@...) hold secrets.
    scheme = url.partition("://")[0] if "://" in url else ""
    raise ValueError(
        f"unsupported store URL (scheme {scheme!r}): expected memory://, sqlite://:memory:,"
        " sqlite:///path/to/file.db or postgresql://..."
    )
