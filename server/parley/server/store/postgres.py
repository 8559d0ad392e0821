"""`PostgresStore`: the store several replicas share, on PostgreSQL through asyncpg.

Every replica opens the same database, in the schema the URL's search_path names (for
example `?options=-csearch_path%3Dparley`; created if missing), and applies the same
migrations at start-up, one replica at a time under an advisory lock. The database
arbitrates everything the replicas must agree on:

- seqs: an append locks its dialogue's row and numbers its messages after the last one,
  so seqs are consecutive and unique per dialogue whichever replica writes;
- run leases: expiry is measured on the database's clock, the one clock every replica
  shares; fencing tokens come from one sequence, and every append checks its token under
  that row lock;
- retries: an append whose connection fails may or may not have committed. It is retried
  under the key its first attempt recorded with the messages, so a retry returns what an
  earlier attempt stored instead of storing it twice.

The feed travels by LISTEN/NOTIFY on one channel per schema. Each replica listens on a
connection of its own, reconnecting with backoff when it drops and then re-announcing the
log heads of the dialogues it watches (hints sent meanwhile were lost). An append
notifies inside its transaction, so its hint goes out exactly when the messages become
visible. A replica hears its own items at once, in process, and skips their echo.

Every wait is bounded: connecting, taking a pooled connection, and each query.
PostgreSQL text cannot hold NUL characters: message contents store them as U+FFFD.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, TypeVar

import asyncpg
from parley.server.engine import errors
from parley.server.engine.events import RoutingDecision, SessionEvent, TurnCompleted, TurnFailed
from parley.server.engine.model import (
    Dialogue,
    Message,
    MessageDraft,
    Participant,
    RunEnd,
    run_end_notice,
)
from parley.server.store import _errors, codec, records
from parley.server.store.feed import (
    CancelMode,
    CancelRequested,
    FeedItem,
    LocalFeed,
    LogGrew,
    RunEvent,
)
from parley.server.store.protocol import RunLease, RunStart
from parley.server.store.reachability import Reachability

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

logger = logging.getLogger(__name__)

T = TypeVar("T")
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
Isolation: TypeAlias = Literal["read_committed", "repeatable_read"]
ListenConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

POOL_SIZE: Final = 10
CONNECT_TIMEOUT_S: Final = 10.0
ACQUIRE_TIMEOUT_S: Final = 10.0
QUERY_TIMEOUT_S: Final = 30.0
# Replicas starting together wait for each other's migrations.
MIGRATION_TIMEOUT_S: Final = 120.0
CLOSE_TIMEOUT_S: Final = 10.0
# A transaction a client left open (it hung or vanished) releases its row locks then.
IDLE_IN_TRANSACTION_TIMEOUT_MS: Final = 60_000
# An operation safe to repeat is tried this often when its connection fails.
ATTEMPTS: Final = 3
RETRY_DELAY_S: Final = 0.2
# How often the feed connection proves it is alive, and how long it may take to.
KEEPALIVE_S: Final = 15.0
KEEPALIVE_TIMEOUT_S: Final = 5.0
RECONNECT_MIN_S: Final = 0.1
RECONNECT_MAX_S: Final = 5.0
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES: Final = 7_900
TRUNCATED: Final = "…"
EXPIRE_BATCH: Final = 100
# pg_advisory_xact_lock key ("parley" in ASCII) serialising migrations across replicas.
MIGRATION_LOCK: Final = 0x7061726C6579
MAX_IDENTIFIER_BYTES: Final = 63

# Each entry upgrades the schema by one version; the list only ever grows. Statements are
# idempotent so a half-understood database (say, created by hand) still converges. JSON
# documents are `json`, not `jsonb`: it keeps the codec's text as written, NUL escapes
# included.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS dialogues (
            id                text PRIMARY KEY,
            display_name      text NOT NULL,
            execution_model   json NOT NULL,
            context           json,                        -- NULL: no context
            reaction_strategy text NOT NULL,
            latest_turn       bigint NOT NULL,
            message_count     bigint NOT NULL DEFAULT 0,   -- also the last seq
            mention_cursor    bigint NOT NULL DEFAULT 0,   -- replies scanned for @mentions
            next_position     integer NOT NULL DEFAULT 0,  -- positions are never reused
            lease_owner       text,                        -- NULL: no run holds the lease
            lease_token       bigint NOT NULL DEFAULT 0,   -- the last token granted here
            lease_expires     timestamptz,                 -- on the database's clock
            cancel_requested  text,                        -- CancelMode value; NULL: none
            create_time       timestamptz NOT NULL,
            update_time       timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS dialogues_by_update_time ON dialogues (update_time)",
        """
        CREATE TABLE IF NOT EXISTS participants (
            dialogue_id      text NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            position         integer NOT NULL,
            name             text NOT NULL,
            persona          json NOT NULL,
            agent            text NOT NULL,
            agent_options    json NOT NULL,
            joining_strategy json,                         -- NULL: founding member
            cursor           bigint,                       -- NULL: joined, not yet called
            PRIMARY KEY (dialogue_id, position),
            UNIQUE (dialogue_id, name)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS messages (
            dialogue_id       text NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            seq               bigint NOT NULL,
            turn              bigint NOT NULL,
            speaker_kind      text NOT NULL,
            speaker_name      text NOT NULL,
            speaker_role      text NOT NULL,
            speaker_icon      text NOT NULL,
            content           text NOT NULL,
            type              text NOT NULL,
            custom_type       text NOT NULL,
            origin            text NOT NULL,
            attachments       json NOT NULL,               -- bytes in base64
            metadata          json NOT NULL,
            delivered_through bigint,
            create_time       timestamptz NOT NULL,
            PRIMARY KEY (dialogue_id, seq)
        )
        """,
        "CREATE INDEX IF NOT EXISTS messages_by_turn ON messages (dialogue_id, turn, seq)",
        # Fencing tokens come from one store-wide counter, so a stale lease on a deleted
        # dialogue never matches a lease on a new dialogue that reuses the id.
        "CREATE SEQUENCE IF NOT EXISTS lease_tokens",
        # The keys of the appends of runs in progress: what a retried append looks up.
        """
        CREATE TABLE IF NOT EXISTS append_keys (
            dialogue_id text NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            key         uuid NOT NULL,
            first_seq   bigint NOT NULL,
            last_seq    bigint NOT NULL,
            PRIMARY KEY (dialogue_id, key)
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

# Matches a dialogue row ($1) whose lease token ($2) is current: the dialogue still holds
# it, so it was neither released nor taken over. Expiry alone only makes a takeover
# possible.
_LEASE_HELD = "id = $1 AND lease_token = $2 AND lease_owner IS NOT NULL"

# The transaction surely rolled back: any operation may run again.
_ROLLED_BACK = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
# The connection failed: whether the last statement took effect is unknown.
_CONNECTION_FAILED = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _now(param: int) -> str:
    """The lease clock in SQL: the database's, unless a test fixed it in `$param`."""
    return f"coalesce(to_timestamp(${param}::float8), clock_timestamp())"


class _Refused(Exception):
    """Carries what a caller's `check` raised past the retries (which would take an
    OSError or a TimeoutError for a failed connection) to be raised as it was."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _unavailable() -> errors.Unavailable:
    return errors.Unavailable(
        "the dialogue store is unavailable; try again", reason="STORE_UNAVAILABLE"
    )


def _row_count(status: str) -> int:
    """The row count of a command status such as `UPDATE 1`."""
    return int(status.rpartition(" ")[2])


# --- values <-> columns ---------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    # The model's times are UTC; naive means UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _storable(draft: MessageDraft) -> MessageDraft:
    return replace(draft, content=draft.content.replace("\x00", "\ufffd"))


def select_messages_sql(
    dialogue_id: str,
    *,
    after_seq: int,
    through_seq: int | None,
    min_turn: int | None,
    max_turn: int | None,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The query for `read_messages`: the primary key or `messages_by_turn` bound it."""
    params: list[object] = [dialogue_id]

    def bind(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    clauses = ["dialogue_id = $1"]
    if after_seq > 0:
        clauses.append(f"seq > {bind(after_seq)}")
    if through_seq is not None:
        clauses.append(f"seq <= {bind(through_seq)}")
    if min_turn is not None:
        clauses.append(f"turn >= {bind(min_turn)}")
    if max_turn is not None:
        clauses.append(f"turn <= {bind(max_turn)}")
    # LIMIT NULL: no limit.
    count = bind(None if limit is None else max(limit, 0))
    sql = (
        f"SELECT {records.MESSAGE_COLUMNS} FROM messages"
        f" WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT {count}"
    )
    return sql, params


# --- schema ---------------------------------------------------------------------------

_FIRST_SCHEMA = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^,\s]+))')


def first_schema(search_path: str) -> str | None:
    """The schema a search_path setting names first, as PostgreSQL reads it (quoted names
    verbatim, others lower-cased); None for `$user`, which the server resolves."""
    match = _FIRST_SCHEMA.match(search_path)
    if match is None:
        return None
    quoted, plain = match.groups()
    name = quoted.replace('""', '"') if quoted is not None else plain.lower()
    return None if name == "$user" else name


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def channel_for(schema: str) -> str:
    """The NOTIFY channel of a schema: replicas sharing a schema share a feed, and
    stores in other schemas of the same database hear nothing of it."""
    channel = f"parley:{schema}"
    if len(channel.encode()) > MAX_IDENTIFIER_BYTES:
        channel = f"parley:{hashlib.sha256(schema.encode()).hexdigest()[:32]}"
    return channel


async def _migrate(conn: Connection) -> str:
    """Brings the schema up to date and returns its name."""
    async with conn.transaction():
        # Held to the end of the transaction: replicas starting together take turns.
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT_S
        )
        wanted = first_schema(await conn.fetchval("SELECT current_setting('search_path')"))
        # Asked first: a role that may not create schemas may still own an existing one.
        if wanted is not None and not await conn.fetchval(
            "SELECT true FROM pg_namespace WHERE nspname = $1", wanted
        ):
            await conn.execute(f"CREATE SCHEMA {quote_identifier(wanted)}")
        schema: str | None = await conn.fetchval("SELECT current_schema()")
        if schema is None:
            raise RuntimeError(
                "no schema to create Parley's tables in: name one in the store URL, e.g."
                " ?options=-csearch_path%3Dparley"
            )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL)"
        )
        current = await conn.fetchval("SELECT version FROM schema_version") or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {current}; this server knows up to "
                f"{SCHEMA_VERSION}"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (id, version) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            SCHEMA_VERSION,
        )
    return schema


# --- the feed -------------------------------------------------------------------------


def _text_of(event: SessionEvent) -> str | None:
    """The free text of a run event: the part that may be long."""
    match event.event:
        case RoutingDecision(raw_answer=text) | TurnFailed(message=text):
            return text
        case TurnCompleted(content=text):
            return text
        case _:
            return None


def _with_text(envelope: SessionEvent, text: str) -> SessionEvent:
    match envelope.event:
        case RoutingDecision():
            return replace(envelope, event=replace(envelope.event, raw_answer=text))
        case TurnFailed():
            return replace(envelope, event=replace(envelope.event, message=text))
        case TurnCompleted():
            return replace(envelope, event=replace(envelope.event, content=text))
        case _:
            return envelope


def feed_payload(item: FeedItem, origin: str) -> str | None:
    """The NOTIFY payload for `item`, sent by the replica `origin`.

    A run event too long for NOTIFY loses the end of its text (marked with an ellipsis;
    replies reach watchers whole from the log); None if even that cannot make it fit.
    """
    match item:
        case LogGrew(dialogue_id=dialogue_id, head=head):
            return records.dump(
                {"origin": origin, "log_grew": {"dialogue_id": dialogue_id, "head": head}}
            )
        case CancelRequested(dialogue_id=dialogue_id, turn=turn, mode=mode):
            body = {"dialogue_id": dialogue_id, "turn": turn, "mode": mode.value}
            return records.dump({"origin": origin, "cancel_requested": body})
        case RunEvent(event=envelope):
            payload = _run_event_payload(envelope, origin)
            if len(payload.encode()) <= MAX_PAYLOAD_BYTES:
                return payload
            text = _text_of(envelope)
            if not text:
                return None
            # The longest prefix that fits, found by bisection (the size grows with it).
            fits, too_long = -1, len(text)
            while too_long - fits > 1:
                middle = (fits + too_long) // 2
                shortened = _with_text(envelope, text[:middle] + TRUNCATED)
                if len(_run_event_payload(shortened, origin).encode()) <= MAX_PAYLOAD_BYTES:
                    fits = middle
                else:
                    too_long = middle
            if fits < 0:
                return None
            return _run_event_payload(_with_text(envelope, text[:fits] + TRUNCATED), origin)


def _run_event_payload(envelope: SessionEvent, origin: str) -> str:
    return records.dump({"origin": origin, "run_event": codec.session_event_to_json(envelope)})


def feed_item(payload: str, origin: str) -> FeedItem | None:
    """The item a NOTIFY payload carries; None when replica `origin` (this one) sent it.

    Raises ValueError (KeyError, TypeError) for a payload this version cannot read.
    """
    document = json.loads(payload)
    if document["origin"] == origin:
        return None
    if "log_grew" in document:
        body = document["log_grew"]
        return LogGrew(body["dialogue_id"], int(body["head"]))
    if "cancel_requested" in document:
        body = document["cancel_requested"]
        return CancelRequested(body["dialogue_id"], int(body["turn"]), CancelMode(body["mode"]))
    if "run_event" in document:
        return RunEvent(codec.session_event_from_json(document["run_event"]))
    raise ValueError(f"unknown feed item in {sorted(document)}")


class PostgresFeed(LocalFeed):
    """The feed replicas share: NOTIFY out, LISTEN in, dispatched to this process.

    Items published here reach this process's listeners at once; the other replicas get
    them from the channel. Hints are best-effort by design: a watcher reads messages by
    seq, and a run learns of a cancel request at its next lease renewal anyway.
    """

    def __init__(self, connect: Callable[[], Awaitable[ListenConnection]]) -> None:
        super().__init__()
        self._connect = connect
        # Marks this replica's own notifications, which it has dispatched already.
        self.origin = secrets.token_hex(8)
        self.channel = ""
        self._pool: Pool | None = None
        self._listener: ListenConnection | None = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        # The listening connection doubles as the store's watchdog: it is always open,
        # pinged while quiet, and told at once when the server ends it.
        self.reachability = Reachability("PostgreSQL")

    async def start(self, pool: Pool, channel: str) -> None:
        """Listens on `channel`; raises if it cannot, since a replica that hears nothing
        would miss other replicas' runs."""
        self._pool, self.channel = pool, channel
        await self._listen()
        self._supervisor = asyncio.create_task(self._stay_connected())

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            # wait() collects the supervisor's cancellation without swallowing ours.
            await asyncio.wait({supervisor})
        await self._drop_listener()

    async def publish(self, item: FeedItem) -> None:
        self.dispatch(item)
        payload = feed_payload(item, self.origin)
        if payload is None:
            logger.warning("a run event of %s is too long to tell other replicas", item.dialogue_id)
            return
        if self._pool is None:
            return
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)
        except (*_CONNECTION_FAILED, asyncpg.PostgresError):
            logger.warning(
                "could not tell other replicas about %s", item.dialogue_id, exc_info=True
            )

    async def _listen(self) -> None:
        connection = await self._connect()
        try:
            self._lost = lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self.channel, self._on_notification)
        except BaseException:
            connection.terminate()
            raise
        self._listener = connection

    async def _drop_listener(self) -> None:
        connection, self._listener = self._listener, None
        if connection is None or connection.is_closed():
            return
        try:
            await connection.close(timeout=CLOSE_TIMEOUT_S)
        except (*_CONNECTION_FAILED, asyncpg.PostgresError):
            connection.terminate()

    async def _stay_connected(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            await self._until_lost()
            logger.warning("lost the feed connection to PostgreSQL; reconnecting")
            await self._drop_listener()
            while True:
                try:
                    await self._listen()
                    break
                except Exception as error:  # whatever it is, the next try may succeed
                    # Down only once a new connection fails too: a server that ended
                    # just this connection (a restarted pooler, an idle timeout) is up.
                    self.reachability.set(False)
                    logger.warning(
                        "could not reconnect the feed (%s); next try in %.1fs", error, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
            delay = RECONNECT_MIN_S
            self.reachability.set(True)
            logger.info("feed connection to PostgreSQL restored")
            await self._catch_up()

    async def _until_lost(self) -> None:
        """Returns once the listening connection is gone, pinging it while it is quiet:
        a connection whose peer vanished without a word would otherwise look alive."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), KEEPALIVE_S)
                return
            except TimeoutError:
                pass
            listener = self._listener
            if listener is None:
                return
            try:
                await listener.execute("SELECT 1", timeout=KEEPALIVE_TIMEOUT_S)
            except (*_CONNECTION_FAILED, asyncpg.PostgresError):
                return

    async def _catch_up(self) -> None:
        """Re-announces the heads of the dialogues watched here: their hints may have
        been sent while no connection listened."""
        watched = [key for key in self._subscriptions if key is not None]
        if not watched or self._pool is None:
            return
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                rows = await conn.fetch(
                    "SELECT id, message_count FROM dialogues WHERE id = any($1::text[])", watched
                )
        except (*_CONNECTION_FAILED, asyncpg.PostgresError):
            logger.warning("could not catch up on the watched dialogues", exc_info=True)
            return
        for row in rows:
            self.dispatch(LogGrew(row["id"], row["message_count"]))

    def _on_notification(self, connection: object, pid: int, channel: str, payload: object) -> None:
        try:
            item = feed_item(str(payload), self.origin)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable feed notification", exc_info=True)
            return
        if item is not None:
            self.dispatch(item)


# --- the store ------------------------------------------------------------------------


class PostgresStore:
    """A `Store` on PostgreSQL that any number of server processes share.

    `clock` (epoch seconds) replaces the database's clock for lease expiry; tests pass
    a fake one to expire leases without sleeping. Replicas must never: only the
    database's clock is the same for all of them.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        self._url = url
        self._clock = clock
        self._pool: Pool | None = None
        self._feed = PostgresFeed(self._connect_listener)

    @property
    def feed(self) -> PostgresFeed:
        return self._feed

    @property
    def reachability(self) -> Reachability:
        return self._feed.reachability

    def _lease_clock(self) -> float | None:
        return None if self._clock is None else self._clock()

    def _settings(self, application: str) -> dict[str, str]:
        return {
            "application_name": application,
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
        }

    async def _connect_listener(self) -> ListenConnection:
        return await asyncpg.connect(
            self._url,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=QUERY_TIMEOUT_S,
            server_settings=self._settings("parley-feed"),
        )

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=QUERY_TIMEOUT_S,
            server_settings=self._settings("parley"),
        )
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                schema = await _migrate(conn)
            await self._feed.start(pool, channel_for(schema))
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await self._feed.stop()
        finally:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()

    def _open_pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool

    async def _once(
        self, work: Callable[[Connection], Awaitable[T]], isolation: Isolation | None
    ) -> T:
        """One attempt at `work`: in a transaction unless `isolation` is None (a single
        statement, or reads that need not agree with each other)."""
        async with self._open_pool().acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            if isolation is None:
                return await work(conn)
            readonly = isolation == "repeatable_read"
            async with conn.transaction(isolation=isolation, readonly=readonly):
                return await work(conn)

    async def _attempt(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        repeatable: bool,
        isolation: Isolation | None = "read_committed",
    ) -> T:
        """Runs `work`, again if that surely or harmlessly helps.

        Work that surely rolled back (deadlock, serialisation failure) runs again; work
        whose connection failed runs again only if `repeatable` (running it twice does
        no harm). A failure that remains is `Unavailable`.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._once(work, isolation)
            except _ROLLED_BACK as error:
                failure: BaseException = error
            except _CONNECTION_FAILED as error:
                if not repeatable:
                    raise _unavailable() from error
                failure = error
            if attempt == ATTEMPTS:
                raise _unavailable() from failure
            logger.warning("retrying a store operation after: %r", failure)
            await asyncio.sleep(RETRY_DELAY_S * attempt)
        raise AssertionError("unreachable")

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Reads that must agree with each other: one snapshot."""
        return await self._attempt(work, repeatable=True, isolation="repeatable_read")

    # --- reading dialogues ------------------------------------------------------------

    @classmethod
    async def _load(cls, conn: Connection, dialogue_id: str) -> Dialogue:
        row = await conn.fetchrow("SELECT * FROM dialogues WHERE id = $1", dialogue_id)
        if row is None:
            raise errors.dialogue_not_found(dialogue_id)
        return await cls._dialogue(conn, row)

    @staticmethod
    async def _dialogue(conn: Connection, row: asyncpg.Record) -> Dialogue:
        """The dialogue of a `SELECT *` row of `dialogues`, with its participants."""
        participants = await conn.fetch(
            f"SELECT {records.PARTICIPANT_COLUMNS} FROM participants"
            " WHERE dialogue_id = $1 ORDER BY position",
            row["id"],
        )
        return records.dialogue_from_row(
            row, [records.participant_from_row(p) for p in participants], _aware
        )

    async def get_dialogue(self, dialogue_id: str) -> Dialogue:
        return await self._read(lambda conn: self._load(conn, dialogue_id))

    async def list_dialogues(self, *, after_id: str, limit: int) -> list[Dialogue]:
        async def page(conn: Connection) -> list[Dialogue]:
            rows = await conn.fetch(
                "SELECT * FROM dialogues WHERE id > $1 ORDER BY id LIMIT $2",
                after_id,
                max(limit, 0),
            )
            participants: dict[str, list[Participant]] = {row["id"]: [] for row in rows}
            for row in await conn.fetch(
                f"SELECT dialogue_id, {records.PARTICIPANT_COLUMNS} FROM participants"
                " WHERE dialogue_id = any($1::text[]) ORDER BY dialogue_id, position",
                list(participants),
            ):
                participants[row["dialogue_id"]].append(records.participant_from_row(row))
            return [records.dialogue_from_row(row, participants[row["id"]], _aware) for row in rows]

        return await self._read(page)

    # --- writing dialogues ------------------------------------------------------------
    # Every write locks its dialogue's row first, so writers queue on that one lock and
    # never deadlock.

    async def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        _errors.ensure_unique_names(dialogue.participants)

        async def create(conn: Connection) -> Dialogue:
            created = await conn.fetchval(
                """
                INSERT INTO dialogues (
                    display_name, execution_model, context, reaction_strategy,
                    id, latest_turn, next_position, create_time, update_time
                ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (id) DO NOTHING
                RETURNING true
                """,
                *records.dialogue_settings(dialogue),
                dialogue.id,
                dialogue.latest_turn,
                len(dialogue.participants),
                _aware(dialogue.create_time),
                _aware(dialogue.update_time),
            )
            if created is None:
                raise _errors.dialogue_exists(dialogue.id)
            await conn.executemany(
                f"INSERT INTO participants (dialogue_id, position, {records.PARTICIPANT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    records.participant_values(dialogue.id, position, participant)
                    for position, participant in enumerate(dialogue.participants)
                ],
            )
            return await self._load(conn, dialogue.id)

        return await self._attempt(create, repeatable=False)

    async def update_dialogue(self, dialogue: Dialogue) -> Dialogue:
        async def update(conn: Connection) -> Dialogue:
            status = await conn.execute(
                """
                UPDATE dialogues
                SET display_name = $1, execution_model = $2, context = $3,
                    reaction_strategy = $4, update_time = clock_timestamp()
                WHERE id = $5
                """,
                *records.dialogue_settings(dialogue),
                dialogue.id,
            )
            if _row_count(status) == 0:
                raise errors.dialogue_not_found(dialogue.id)
            return await self._load(conn, dialogue.id)

        return await self._attempt(update, repeatable=True)

    async def delete_dialogue(self, dialogue_id: str) -> None:
        async def delete(conn: Connection) -> None:
            # Participants, messages and append keys go with it: ON DELETE CASCADE.
            status = await conn.execute("DELETE FROM dialogues WHERE id = $1", dialogue_id)
            if _row_count(status) == 0:
                raise errors.dialogue_not_found(dialogue_id)

        await self._attempt(delete, repeatable=False, isolation=None)

    async def expire_dialogues(self, older_than: datetime) -> int:
        async def batch(conn: Connection) -> int:
            # SKIP LOCKED: a dialogue being written to is not old, and replicas sweeping
            # at the same moment share the work instead of queueing.
            deleted = await conn.fetch(
                """
                DELETE FROM dialogues WHERE id IN (
                    SELECT id FROM dialogues WHERE update_time < $1
                    ORDER BY update_time LIMIT $2 FOR UPDATE SKIP LOCKED
                ) RETURNING id
                """,
                _aware(older_than),
                EXPIRE_BATCH,
            )
            return len(deleted)

        # Batches keep each transaction short on a large backlog.
        total = 0
        while True:
            count = await self._attempt(batch, repeatable=True, isolation=None)
            total += count
            if count < EXPIRE_BATCH:
                return total

    async def add_participant(self, dialogue_id: str, participant: Participant) -> Dialogue:
        async def add(conn: Connection) -> Dialogue:
            position = await conn.fetchval(
                "SELECT next_position FROM dialogues WHERE id = $1 FOR UPDATE", dialogue_id
            )
            if position is None:
                raise errors.dialogue_not_found(dialogue_id)
            added = await conn.fetchval(
                f"INSERT INTO participants (dialogue_id, position, {records.PARTICIPANT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (dialogue_id, name) DO NOTHING RETURNING true",
                *records.participant_values(dialogue_id, position, participant),
            )
            if added is None:
                raise _errors.participant_exists(participant.name)
            await conn.execute(
                "UPDATE dialogues SET next_position = next_position + 1,"
                " update_time = clock_timestamp() WHERE id = $1",
                dialogue_id,
            )
            return await self._load(conn, dialogue_id)

        return await self._attempt(add, repeatable=False)

    async def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        async def remove(conn: Connection) -> Dialogue:
            found = await conn.fetchval(
                "SELECT true FROM dialogues WHERE id = $1 FOR UPDATE", dialogue_id
            )
            if found is None:
                raise errors.dialogue_not_found(dialogue_id)
            status = await conn.execute(
                "DELETE FROM participants WHERE dialogue_id = $1 AND name = $2", dialogue_id, name
            )
            if _row_count(status) == 0:
                raise _errors.participant_not_found(dialogue_id, name)
            await conn.execute(
                "UPDATE dialogues SET update_time = clock_timestamp() WHERE id = $1", dialogue_id
            )
            return await self._load(conn, dialogue_id)

        return await self._attempt(remove, repeatable=False)

    # --- runs -------------------------------------------------------------------------

    async def begin_run(
        self,
        dialogue_id: str,
        *,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft] = (),
        check: Callable[[Dialogue], None] | None = None,
    ) -> RunStart:
        notified: list[LogGrew] = []

        async def begin(conn: Connection) -> RunStart:
            notified.clear()
            row = await conn.fetchrow(
                "SELECT *, clock_timestamp() AS now, lease_owner IS NOT NULL AS held,"
                f" lease_expires > {_now(2)} AS live FROM dialogues WHERE id = $1 FOR UPDATE",
                dialogue_id,
                self._lease_clock(),
            )
            if row is None:
                raise errors.dialogue_not_found(dialogue_id)
            if row["held"] and row["live"]:
                raise _errors.run_in_progress(dialogue_id)
            dialogue = await self._dialogue(conn, row)
            if check is not None:
                try:
                    check(dialogue)
                except Exception as error:
                    raise _Refused(error) from None
            turn = dialogue.latest_turn + 1
            drafts = [replace(draft, turn=turn) for draft in inputs]
            if row["held"]:
                # Its holder died mid-run: say so in the log before the next turn. The
                # keys of its appends go: no retry of them can come any more. The
                # messages stored here need none, since begin_run is never retried
                # after a failed connection.
                drafts.insert(0, run_end_notice(dialogue.latest_turn, RunEnd.INTERRUPTED))
                await conn.execute("DELETE FROM append_keys WHERE dialogue_id = $1", dialogue_id)
            token = await conn.fetchval(
                f"""
                UPDATE dialogues
                SET latest_turn = $2, lease_owner = $3,
                    lease_token = nextval('lease_tokens'),
                    lease_expires = {_now(4)} + make_interval(secs => $5),
                    cancel_requested = NULL
                WHERE id = $1
                RETURNING lease_token
                """,
                dialogue_id,
                turn,
                owner,
                self._lease_clock(),
                ttl,
            )
            assert token is not None  # the row is locked
            messages = await self._insert(
                conn, dialogue_id, drafts, dialogue.message_count, row["now"]
            )
            if messages:
                notified.append(LogGrew(dialogue_id, messages[-1].seq))
            return RunStart(
                lease=RunLease(dialogue_id=dialogue_id, turn=turn, token=token, owner=owner),
                dialogue=records.opened_dialogue(dialogue, turn, messages, row["now"]),
                inputs=messages[len(messages) - len(inputs) :],
            )

        try:
            start = await self._attempt(begin, repeatable=False)
        except _Refused as refused:
            error = refused.error
        else:
            for item in notified:
                self._feed.dispatch(item)
            return start
        # Raised outside the handler, so the caller's exception reaches it untouched.
        raise error

    async def renew_run(self, lease: RunLease, *, ttl: float) -> CancelMode | None:
        async def renew(conn: Connection) -> CancelMode | None:
            row = await conn.fetchrow(
                f"UPDATE dialogues SET lease_expires = {_now(3)} + make_interval(secs => $4)"
                f" WHERE {_LEASE_HELD} RETURNING cancel_requested",
                lease.dialogue_id,
                lease.token,
                self._lease_clock(),
                ttl,
            )
            if row is None:
                raise _errors.lease_lost(lease.dialogue_id)
            mode: str | None = row["cancel_requested"]
            return None if mode is None else CancelMode(mode)

        return await self._attempt(renew, repeatable=True, isolation=None)

    async def request_cancel(self, dialogue_id: str, mode: CancelMode) -> int:
        async def request(conn: Connection) -> int:
            turn: int | None = await conn.fetchval(
                "UPDATE dialogues SET cancel_requested = $2"
                " WHERE id = $1 AND lease_owner IS NOT NULL RETURNING latest_turn",
                dialogue_id,
                mode.value,
            )
            if turn is not None:
                return turn
            if await conn.fetchval("SELECT true FROM dialogues WHERE id = $1", dialogue_id):
                raise _errors.no_run_in_progress(dialogue_id)
            raise errors.dialogue_not_found(dialogue_id)

        return await self._attempt(request, repeatable=True, isolation=None)

    async def end_run(self, lease: RunLease) -> None:
        async def end(conn: Connection) -> None:
            await conn.execute(
                f"""
                WITH released AS (
                    UPDATE dialogues
                    SET lease_owner = NULL, lease_expires = NULL, cancel_requested = NULL
                    WHERE {_LEASE_HELD}
                    RETURNING id
                )
                DELETE FROM append_keys WHERE dialogue_id IN (SELECT id FROM released)
                """,
                lease.dialogue_id,
                lease.token,
            )

        await self._attempt(end, repeatable=True, isolation=None)

    # --- the log ----------------------------------------------------------------------

    async def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None = None,
        *,
        mention_cursor: int | None = None,
        end_run: bool = False,
    ) -> list[Message]:
        dialogue_id = lease.dialogue_id
        # Recorded with the messages: a retry finds what an earlier attempt stored.
        key = uuid.uuid4()
        attempts = 0

        async def append(conn: Connection) -> list[Message]:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and drafts:
                stored = await conn.fetchrow(
                    "SELECT first_seq, last_seq FROM append_keys"
                    " WHERE dialogue_id = $1 AND key = $2",
                    dialogue_id,
                    key,
                )
                if stored is not None:
                    rows = await conn.fetch(
                        f"SELECT {records.MESSAGE_COLUMNS} FROM messages WHERE dialogue_id = $1"
                        " AND seq BETWEEN $2 AND $3 ORDER BY seq",
                        dialogue_id,
                        stored["first_seq"],
                        stored["last_seq"],
                    )
                    return [records.message_from_row(row, _aware) for row in rows]
            row = await conn.fetchrow(
                "SELECT message_count, clock_timestamp() AS now"
                f" FROM dialogues WHERE {_LEASE_HELD} FOR UPDATE",
                dialogue_id,
                lease.token,
            )
            if row is None:
                raise _errors.lease_lost(dialogue_id)
            messages = await self._insert(
                conn, dialogue_id, drafts, row["message_count"], row["now"]
            )
            if messages:
                await conn.execute(
                    "INSERT INTO append_keys (dialogue_id, key, first_seq, last_seq)"
                    " VALUES ($1, $2, $3, $4)",
                    dialogue_id,
                    key,
                    messages[0].seq,
                    messages[-1].seq,
                )
            if cursors:
                # Names no longer in the dialogue match no row: ignored, as promised.
                await conn.execute(
                    """
                    UPDATE participants AS p SET cursor = c.cursor
                    FROM unnest($2::text[], $3::bigint[]) AS c (name, cursor)
                    WHERE p.dialogue_id = $1 AND p.name = c.name
                    """,
                    dialogue_id,
                    list(cursors),
                    list(cursors.values()),
                )
            if mention_cursor is not None:
                await conn.execute(
                    "UPDATE dialogues SET mention_cursor = $2 WHERE id = $1",
                    dialogue_id,
                    mention_cursor,
                )
            if end_run:
                # This append's key stays, for a retry that lost the reply; earlier
                # ones may go (end_run deletes them all).
                await conn.execute(
                    """
                    WITH released AS (
                        UPDATE dialogues
                        SET lease_owner = NULL, lease_expires = NULL, cancel_requested = NULL
                        WHERE id = $1
                        RETURNING id
                    )
                    DELETE FROM append_keys
                    WHERE dialogue_id IN (SELECT id FROM released) AND key <> $2
                    """,
                    dialogue_id,
                    key,
                )
            return messages

        messages = await self._attempt(append, repeatable=True)
        if messages:
            self._feed.dispatch(LogGrew(dialogue_id, messages[-1].seq))
        return messages

    async def _insert(
        self,
        conn: Connection,
        dialogue_id: str,
        drafts: Sequence[MessageDraft],
        message_count: int,
        now: datetime,
    ) -> list[Message]:
        """Inserts messages after seq `message_count` and tells every replica, on commit;
        only under the dialogue's row lock."""
        if not drafts:
            return []
        messages = [
            Message.from_draft(_storable(draft), seq, now)
            for seq, draft in enumerate(drafts, start=message_count + 1)
        ]
        await conn.executemany(
            f"INSERT INTO messages (dialogue_id, {records.MESSAGE_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            [records.message_values(dialogue_id, message, _aware) for message in messages],
        )
        head = messages[-1].seq
        await conn.execute(
            # The log never holds a turn the dialogue has not reached yet.
            "UPDATE dialogues SET message_count = $2, latest_turn = greatest(latest_turn, $3),"
            " update_time = $4 WHERE id = $1",
            dialogue_id,
            head,
            max(m.turn for m in messages),
            now,
        )
        # NOTIFY is transactional: other replicas hear of the messages when they exist.
        await conn.execute(
            "SELECT pg_notify($1, $2)",
            self._feed.channel,
            feed_payload(LogGrew(dialogue_id, head), self._feed.origin),
        )
        return messages

    async def read_messages(
        self,
        dialogue_id: str,
        *,
        after_seq: int = 0,
        through_seq: int | None = None,
        min_turn: int | None = None,
        max_turn: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        sql, params = select_messages_sql(
            dialogue_id,
            after_seq=after_seq,
            through_seq=through_seq,
            min_turn=min_turn,
            max_turn=max_turn,
            limit=limit,
        )

        async def read(conn: Connection) -> list[Message]:
            rows = await conn.fetch(sql, *params)
            # Messages exist only in a dialogue that does; only an empty page needs to ask.
            if not rows and not await conn.fetchval(
                "SELECT true FROM dialogues WHERE id = $1", dialogue_id
            ):
                raise errors.dialogue_not_found(dialogue_id)
            return [records.message_from_row(row, _aware) for row in rows]

        return await self._attempt(read, repeatable=True, isolation=None)
