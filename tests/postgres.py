"""Real PostgreSQL for tests: a fresh schema per test, dropped afterwards.

The server is the project machine's (127.0.0.1:5432, trust auth, database `test`), or the
one PARLEY_TEST_POSTGRES_URL names. Tests skip only when it cannot be reached at all.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit

import asyncpg
import pytest

BASE_URL = os.environ.get("PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONNECT_TIMEOUT_S = 10.0


def schema_url(schema: str, *, via: str | None = None) -> str:
    """The base URL with `schema` first on the search path, the way a deployment names
    its schema; `via` (HOST:PORT) in place of the server's address, as for a proxy in
    between (user and password kept)."""
    base = BASE_URL
    if via is not None:
        parts = urlsplit(base)
        userinfo = parts.netloc.rpartition("@")[0]
        base = parts._replace(netloc=f"{userinfo}@{via}" if userinfo else via).geturl()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


def server_address() -> str:
    """HOST:PORT of the PostgreSQL server the base URL names."""
    parts = urlsplit(BASE_URL)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"


async def connect() -> asyncpg.Connection[asyncpg.Record]:
    """An admin connection; skips the test when no PostgreSQL server answers."""
    try:
        return await asyncpg.connect(BASE_URL, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as error:
        pytest.skip(f"PostgreSQL is not reachable at {BASE_URL}: {error!r}")


async def drop_schema(schema: str) -> None:
    conn = await connect()
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def new_schema(prefix: str = "parley_test") -> str:
    """The name of a schema no one uses yet: the stores create it on open. Skips the
    test when no PostgreSQL server answers, before anything exists."""
    conn = await connect()
    await conn.close()
    return f"{prefix}_{secrets.token_hex(6)}"


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A new schema's name, the schema dropped on exit."""
    schema = await new_schema()
    try:
        yield schema
    finally:
        await drop_schema(schema)
