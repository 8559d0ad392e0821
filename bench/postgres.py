"""PostgreSQL for the concurrency figure, when there is one: a fresh schema, dropped after.

The server is the one PARLEY_BENCH_PG_URL names, else the project machine's
(127.0.0.1:5432, trust auth, database `test`). Nothing is measured, and the figure says
why, when it cannot be reached or this checkout has no PostgreSQL store.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

URL_ENV = "PARLEY_BENCH_PG_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Database:
    """`url` names a fresh schema when the database is usable; else `why_not` says why."""

    url: str | None
    why_not: str = ""


def _with_schema(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[Database]:
    if importlib.util.find_spec("parley.server.store.postgres") is None:
        yield Database(None, "this checkout has no PostgreSQL store")
        return
    try:
        import asyncpg
    except ModuleNotFoundError:
        yield Database(None, "asyncpg is not installed (the postgres extra)")
        return
    base = os.environ.get(URL_ENV, DEFAULT_URL)
    try:
        admin = await asyncpg.connect(base, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        yield Database(None, f"PostgreSQL is not reachable ({type(error).__name__})")
        return
    schema = f"parley_bench_{secrets.token_hex(6)}"
    try:
        yield Database(_with_schema(base, schema))
    finally:
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
