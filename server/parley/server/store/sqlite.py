"""`SQLiteStore`: the embedded default store, one SQLite file served by one process.

The store has one connection, used by one thread at a time. A call runs right on the
event loop when the connection is free: in WAL mode with `synchronous=NORMAL` a commit
writes to the WAL without waiting for the disk, so a turn's statements take tens of
microseconds, while handing them to a thread and back cost several times that (and the
GIL hand-offs slowed the loop besides). What can wait goes to the store's worker thread
instead, so the loop never does: checkpoints (the fsyncs), calls that find the file
locked by another process (the loop's attempts never wait for a lock), calls made while
the worker holds the connection, and calls whose work grows with the data (deleting
dialogues, long reads, large appends), during which SQLite releases the GIL.

A committed transaction survives a crash of the process (not necessarily of the
machine), which is the durability we promise. Because a file belongs to one process,
`open()` releases every lease it finds: they were left by a process that died. Lease
expiry is measured on the wall clock, the only clock two processes would share.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from parley.server.engine import errors
from parley.server.engine.model import (
    Dialogue,
    Message,
    MessageDraft,
    Participant,
    RunEnd,
    run_end_notice,
    utcnow,
)
from parley.server.store import _errors, records
from parley.server.store.feed import CancelMode, LocalFeed, LogGrew
from parley.server.store.protocol import RunLease, RunStart
from parley.server.store.reachability import Reachability

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_MEMORY = ":memory:"

# `dialogues.touched_hour` is `update_time` (epoch microseconds) in whole hours.
_HOUR_MICROS = 3_600_000_000


@dataclass(frozen=True, slots=True)
class WhileColumn:
    """A migration statement that moves `column` out of `table`: it runs only while the
    column is still there, so running the migrations again changes nothing."""

    table: str
    column: str
    statement: str


Statement = str | WhileColumn

# Each entry upgrades the schema by one version; the list only ever grows. Statements are
# idempotent so a half-understood database (say, created by hand) still converges.
MIGRATIONS: tuple[tuple[Statement, ...], ...] = (
    (
        """
        CREATE TABLE IF NOT EXISTS dialogues (
            id                TEXT PRIMARY KEY,
            display_name      TEXT NOT NULL,
            execution_model   TEXT NOT NULL,             -- codec JSON
            context           TEXT,                      -- codec JSON; NULL: no context
            reaction_strategy TEXT NOT NULL,
            latest_turn       INTEGER NOT NULL,
            message_count     INTEGER NOT NULL DEFAULT 0,  -- also the last seq
            mention_cursor    INTEGER NOT NULL DEFAULT 0,  -- replies scanned for @mentions
            next_position     INTEGER NOT NULL DEFAULT 0,  -- positions are never reused
            lease_owner       TEXT,                      -- NULL: no run holds the lease
            lease_token       INTEGER NOT NULL DEFAULT 0,  -- the last token granted here
            lease_expires     REAL,                      -- wall-clock epoch seconds
            cancel_requested  TEXT,                      -- CancelMode value; NULL: none
            create_time       INTEGER NOT NULL,          -- epoch microseconds, UTC
            update_time       INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS participants (
            dialogue_id      TEXT NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            position         INTEGER NOT NULL,
            name             TEXT NOT NULL,
            persona          TEXT NOT NULL,              -- codec JSON
            agent            TEXT NOT NULL,
            agent_options    TEXT NOT NULL,              -- codec JSON
            joining_strategy TEXT,                       -- codec JSON; NULL: founding member
            cursor           INTEGER,                    -- NULL: joined, not yet called
            PRIMARY KEY (dialogue_id, position),
            UNIQUE (dialogue_id, name)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS messages (
            dialogue_id       TEXT NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            seq               INTEGER NOT NULL,
            turn              INTEGER NOT NULL,
            speaker_kind      TEXT NOT NULL,
            speaker_name      TEXT NOT NULL,
            speaker_role      TEXT NOT NULL,
            speaker_icon      TEXT NOT NULL,
            content           TEXT NOT NULL,
            type              TEXT NOT NULL,
            custom_type       TEXT NOT NULL,
            origin            TEXT NOT NULL,
            attachments       TEXT NOT NULL,             -- codec JSON, bytes in base64
            metadata          TEXT NOT NULL,             -- codec JSON
            delivered_through INTEGER,
            create_time       INTEGER NOT NULL,          -- epoch microseconds, UTC
            PRIMARY KEY (dialogue_id, seq)
        )
        """,
        "CREATE INDEX IF NOT EXISTS messages_by_turn ON messages (dialogue_id, turn, seq)",
        # A dialogue's fencing tokens count up from where this store-wide counter stood
        # when it was created, and deleting a dialogue moves the counter past its tokens:
        # a stale lease on a deleted dialogue never matches one on a new dialogue that
        # reuses the id. (Earlier versions drew every lease's token from the counter.)
        """
        CREATE TABLE IF NOT EXISTS lease_counter (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            last_token INTEGER NOT NULL
        )
        """,
        "INSERT OR IGNORE INTO lease_counter (id, last_token) VALUES (1, 0)",
    ),
    # Retention finds old dialogues without reading every one.
    ("CREATE INDEX IF NOT EXISTS dialogues_by_update_time ON dialogues (update_time)",),
    # Bumped by every change to who takes part (not by cursors moving), so that the
    # participants' definitions can be kept between runs: see `_Rosters`.
    ("ALTER TABLE dialogues ADD COLUMN roster_version INTEGER NOT NULL DEFAULT 0",),
    # Three changes that halve the pages a run writes:
    # - Every run moves its participants' cursors. Kept on the dialogue's row, which a run
    #   writes anyway, as one JSON object (name -> cursor; null: joined, not yet called),
    #   a run no longer rewrites each participant's row.
    # - Reads by turn (a joiner's window) start where the lowest turn in bounds starts,
    #   from one small row per turn, instead of an index entry per message.
    # - Retention finds old dialogues by the hour they were last touched, which a run
    #   changes at most once an hour, not by their update time, which it always changes.
    (
        """
        CREATE TABLE IF NOT EXISTS turn_starts (
            dialogue_id TEXT NOT NULL REFERENCES dialogues (id) ON DELETE CASCADE,
            turn        INTEGER NOT NULL,
            first_seq   INTEGER NOT NULL,  -- no message of the turn has a lower seq
            PRIMARY KEY (dialogue_id, turn)
        ) WITHOUT ROWID
        """,
        """
        INSERT OR IGNORE INTO turn_starts (dialogue_id, turn, first_seq)
        SELECT dialogue_id, turn, min(seq) FROM messages GROUP BY dialogue_id, turn
        """,
        "DROP INDEX IF EXISTS messages_by_turn",
        "ALTER TABLE dialogues ADD COLUMN cursors TEXT NOT NULL DEFAULT '{}'",
        WhileColumn(
            "participants",
            "cursor",
            """
            UPDATE dialogues SET cursors = (
                SELECT json_group_object(name, cursor) FROM participants
                WHERE dialogue_id = dialogues.id
            )
            WHERE id IN (SELECT dialogue_id FROM participants)
            """,
        ),
        WhileColumn("participants", "cursor", "ALTER TABLE participants DROP COLUMN cursor"),
        "ALTER TABLE dialogues ADD COLUMN touched_hour INTEGER NOT NULL DEFAULT 0",
        f"UPDATE dialogues SET touched_hour = update_time / {_HOUR_MICROS}",
        "CREATE INDEX IF NOT EXISTS dialogues_by_touched_hour ON dialogues (touched_hour)",
        "DROP INDEX IF EXISTS dialogues_by_update_time",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

_BUSY_TIMEOUT_MS = 5_000
# Calls on the event loop read or append at most this many messages; more go to the
# worker thread.
_INLINE_MESSAGES = 256
# Rows written between two checkpoints (the WAL grows with them).
_CHECKPOINT_EVERY = 1_000
# Dialogues whose participants' definitions are kept between runs (see `_Rosters`).
_KEPT_ROSTERS = 256

# Matches a dialogue row whose lease `token` is current: the dialogue still holds it, so
# it was neither released nor taken over. Expiry alone only makes a takeover possible.
_LEASE_HELD = "id = ? AND lease_token = ? AND lease_owner IS NOT NULL"


# --- values <-> columns ---------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the model's times are UTC; naive means UTC
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def select_messages_sql(
    dialogue_id: str,
    *,
    after_seq: int,
    through_seq: int | None,
    min_turn: int | None,
    max_turn: int | None,
    limit: int | None,
) -> tuple[str, list[object]]:
    """The query for `read_messages`: a walk of the primary key, which costs what lies
    between where it starts and where it stops.

    `after_seq` starts it right where the caller wants. Without it, a lowest turn (a
    joining window) starts it where the lowest turn in bounds starts (`turn_starts`);
    the turn bounds then only filter, so a log whose turns do not follow seq order (the
    store allows it, though the engine never writes one) is still read right.
    """
    clauses = ["dialogue_id = ?"]
    params: list[object] = [dialogue_id]
    if after_seq <= 0 and min_turn is not None:
        starts = "dialogue_id = ? AND turn >= ?" + ("" if max_turn is None else " AND turn <= ?")
        clauses.append(f"seq >= (SELECT min(first_seq) FROM turn_starts WHERE {starts})")
        params.extend(
            (dialogue_id, min_turn) if max_turn is None else (dialogue_id, min_turn, max_turn)
        )
    else:
        clauses.append("seq > ?")
        params.append(after_seq)
    if through_seq is not None:
        clauses.append("seq <= ?")
        params.append(through_seq)
    if min_turn is not None:
        clauses.append("turn >= ?")
        params.append(min_turn)
    if max_turn is not None:
        clauses.append("turn <= ?")
        params.append(max_turn)
    params.append(-1 if limit is None else max(limit, 0))  # LIMIT -1: no limit
    sql = (
        f"SELECT {records.MESSAGE_COLUMNS} FROM messages"
        f" WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
    )
    return sql, params


# --- the database: one connection, the loop's or the worker's in turn -----------------


@contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool = False) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a read-then-write transaction cannot
    # fail half-way with SQLITE_BUSY when another connection touches the file.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # Also when COMMIT itself failed: the call may then be retried from the start.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def apply_statement(conn: sqlite3.Connection, statement: Statement) -> None:
    """Runs one migration statement. A column that is there already counts as added:
    SQLite has no ADD COLUMN IF NOT EXISTS, and migrations must converge. A
    `WhileColumn` runs only while its column is there."""
    if isinstance(statement, WhileColumn):
        if not conn.execute(
            "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", (statement.table, statement.column)
        ).fetchone():
            return
        statement = statement.statement
    try:
        conn.execute(statement)
    except sqlite3.OperationalError as error:
        if "ADD COLUMN" not in statement or "duplicate column name" not in str(error):
            raise


def _load_cursors(text: str) -> dict[str, int | None]:
    cursors: dict[str, int | None] = json.loads(text)
    return cursors


def _dump_cursors(cursors: Mapping[str, int | None]) -> str:
    return records.dump(cursors)


def _moved(text: str, cursors: Mapping[str, int] | None) -> dict[str, object]:
    """The `cursors` column's change after `cursors` moved; names no longer in the
    dialogue are ignored, as promised."""
    if not cursors:
        return {}
    kept = _load_cursors(text)
    for name, cursor in cursors.items():
        if name in kept:
            kept[name] = cursor
    return {"cursors": _dump_cursors(kept)}


# The columns that end a run's lease (`end_run`, or the append that ends the run).
_RELEASED: Mapping[str, object] = {
    "lease_owner": None,
    "lease_expires": None,
    "cancel_requested": None,
}


def _touched(moment: datetime) -> dict[str, object]:
    """A dialogue row's changes when it is touched at `moment`."""
    micros = _to_micros(moment)
    return {"update_time": micros, "touched_hour": micros // _HOUR_MICROS}


def _grown(messages: Sequence[Message], row: sqlite3.Row, now: datetime) -> dict[str, object]:
    """A dialogue's changes after `messages` were inserted at `now`, from its `row`
    (`latest_turn` and `touched_hour` at least): its log head, its latest turn (the log
    never holds a turn the dialogue has not reached) and the time it was touched. The
    hour is written only when it changes, as its index entry moves only then."""
    if not messages:
        return {}
    changes: dict[str, object] = {
        "message_count": messages[-1].seq,
        "latest_turn": max(row["latest_turn"], *(m.turn for m in messages)),
        **_touched(now),
    }
    if changes["touched_hour"] == row["touched_hour"]:
        del changes["touched_hour"]
    return changes


def _is_busy(error: sqlite3.Error) -> bool:
    """The file is locked by another connection (SQLITE_BUSY and its extended codes)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class _Rosters:
    """The participants of recently run dialogues, without their cursors.

    Starting a run reads the dialogue's participants, which rarely change, while only
    their cursors move (and those are on the dialogue's row): kept here by dialogue (id
    and creation time, as an id may be reused) and `roster_version`, a run reads no
    participant row. A bounded LRU.
    """

    def __init__(self, capacity: int = _KEPT_ROSTERS) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[tuple[str, int], tuple[int, list[Participant]]] = OrderedDict()

    def get(self, key: tuple[str, int], version: int) -> list[Participant] | None:
        kept = self._kept.get(key)
        if kept is None or kept[0] != version:
            return None
        self._kept.move_to_end(key)
        return kept[1]

    def put(self, key: tuple[str, int], version: int, participants: list[Participant]) -> None:
        self._kept[key] = (version, participants)
        self._kept.move_to_end(key)
        if len(self._kept) > self._capacity:
            self._kept.popitem(last=False)


class _Database:
    """The synchronous store: one connection, one transaction per method.

    One thread at a time may call it: `SQLiteStore` hands the connection to the event
    loop or to its worker thread, never to both.
    """

    def __init__(self, path: str, clock: Callable[[], float]) -> None:
        if path != _MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        # isolation_level=None: no implicit transactions; _transaction says where they are.
        # check_same_thread=False: the loop and the worker take turns (see SQLiteStore).
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._rosters = _Rosters()
        try:
            self._configure()
            self._migrate()
            self._release_leases()
            # From now on the loop may call, and it must never wait for a lock.
            self.patient(False)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def _configure(self) -> None:
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        # No automatic checkpoints inside commits: they fsync, so the worker runs them.
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self.patient(True)

    def patient(self, wait: bool) -> None:
        """Whether a locked file is waited for (on the worker) or fails at once (on the
        loop, which then hands the call to the worker)."""
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS if wait else 0}")

    def checkpoint(self) -> None:
        """Copies the WAL into the database file; never blocks writers (PASSIVE)."""
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @property
    def changes(self) -> int:
        """Rows inserted, updated or deleted through this connection so far."""
        return self._conn.total_changes

    def _migrate(self) -> None:
        conn = self._conn
        with _transaction(conn, write=True):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row["version"])
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {current}; this server knows up to "
                    f"{SCHEMA_VERSION}"
                )
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    apply_statement(conn, statement)
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )

    def _release_leases(self) -> None:
        """Leases found at start-up belong to a crashed process: one process serves a
        SQLite file. Their turns are marked interrupted in the log."""
        with _transaction(self._conn, write=True):
            rows = self._conn.execute(
                "SELECT id, latest_turn, message_count, touched_hour FROM dialogues"
                " WHERE lease_owner IS NOT NULL"
            ).fetchall()
            for row in rows:
                notice = run_end_notice(row["latest_turn"], RunEnd.INTERRUPTED)
                now = utcnow()
                messages = self._insert(row["id"], [notice], row["message_count"], now, None)
                self._update(row["id"], _grown(messages, row, now), _RELEASED)

    # --- reading dialogues ------------------------------------------------------------

    def _participants(
        self, dialogue_id: str, cursors: Mapping[str, int | None]
    ) -> list[Participant]:
        rows = self._conn.execute(
            f"SELECT {records.PARTICIPANT_DEFINITION_COLUMNS} FROM participants"
            " WHERE dialogue_id = ? ORDER BY position",
            (dialogue_id,),
        )
        return [records.participant_from_definition(row, cursors.get(row["name"])) for row in rows]

    def _load(self, dialogue_id: str) -> Dialogue:
        row = self._conn.execute("SELECT * FROM dialogues WHERE id = ?", (dialogue_id,)).fetchone()
        if row is None:
            raise errors.dialogue_not_found(dialogue_id)
        return self._dialogue(row)

    def _dialogue(self, row: sqlite3.Row) -> Dialogue:
        """The dialogue of a `SELECT *` row of `dialogues`, with its participants."""
        return records.dialogue_from_row(row, self._roster(row), _from_micros)

    def _roster(self, row: sqlite3.Row) -> list[Participant]:
        """The participants of a `SELECT *` row of `dialogues`, with the row's cursors:
        nothing more is read when their definitions are kept from an earlier read."""
        dialogue_id = row["id"]
        cursors = _load_cursors(row["cursors"])
        key, version = (dialogue_id, row["create_time"]), row["roster_version"]
        kept = self._rosters.get(key, version)
        if kept is not None and len(kept) == len(cursors):  # else changed by another hand
            # Positional, in field order (see `model.record`): once per participant a run.
            return [
                Participant(
                    p.persona,
                    p.agent,
                    dict(p.agent_options),
                    p.joining_strategy,
                    cursors.get(p.name),  # cursor
                )
                for p in kept
            ]
        participants = self._participants(dialogue_id, cursors)
        self._rosters.put(key, version, participants)
        return participants

    def _require(self, dialogue_id: str) -> None:
        if self._conn.execute("SELECT 1 FROM dialogues WHERE id = ?", (dialogue_id,)).fetchone():
            return
        raise errors.dialogue_not_found(dialogue_id)

    def _cursors(self, dialogue_id: str) -> dict[str, int | None]:
        row = self._conn.execute(
            "SELECT cursors FROM dialogues WHERE id = ?", (dialogue_id,)
        ).fetchone()
        if row is None:
            raise errors.dialogue_not_found(dialogue_id)
        return _load_cursors(row[0])

    def get_dialogue(self, dialogue_id: str) -> Dialogue:
        with _transaction(self._conn):
            return self._load(dialogue_id)

    def list_dialogues(self, after_id: str, limit: int) -> list[Dialogue]:
        page = "SELECT id FROM dialogues WHERE id > ? ORDER BY id LIMIT ?"
        params = (after_id, max(limit, 0))
        with _transaction(self._conn):
            rows = self._conn.execute(
                f"SELECT * FROM dialogues WHERE id IN ({page}) ORDER BY id", params
            ).fetchall()
            participants: dict[str, list[Participant]] = {row["id"]: [] for row in rows}
            cursors = {row["id"]: _load_cursors(row["cursors"]) for row in rows}
            for row in self._conn.execute(
                f"SELECT dialogue_id, {records.PARTICIPANT_DEFINITION_COLUMNS} FROM participants"
                f" WHERE dialogue_id IN ({page}) ORDER BY dialogue_id, position",
                params,
            ):
                dialogue_id = row["dialogue_id"]
                cursor = cursors[dialogue_id].get(row["name"])
                participants[dialogue_id].append(records.participant_from_definition(row, cursor))
        return [
            records.dialogue_from_row(row, participants[row["id"]], _from_micros) for row in rows
        ]

    # --- writing dialogues ------------------------------------------------------------

    def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        _errors.ensure_unique_names(dialogue.participants)
        conn = self._conn
        with _transaction(conn, write=True):
            if conn.execute("SELECT 1 FROM dialogues WHERE id = ?", (dialogue.id,)).fetchone():
                raise _errors.dialogue_exists(dialogue.id)
            conn.execute(
                """
                INSERT INTO dialogues (
                    display_name, execution_model, context, reaction_strategy,
                    id, latest_turn, next_position, create_time, update_time, touched_hour,
                    cursors, lease_token
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT last_token FROM lease_counter))
                """,
                (
                    *records.dialogue_settings(dialogue),
                    dialogue.id,
                    dialogue.latest_turn,
                    len(dialogue.participants),
                    _to_micros(dialogue.create_time),
                    *_touched(dialogue.update_time).values(),
                    _dump_cursors({p.name: p.cursor for p in dialogue.participants}),
                ),
            )
            conn.executemany(
                "INSERT INTO participants"
                f" (dialogue_id, position, {records.PARTICIPANT_DEFINITION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    records.participant_definition_values(dialogue.id, position, participant)
                    for position, participant in enumerate(dialogue.participants)
                ),
            )
            return self._load(dialogue.id)

    def update_dialogue(self, dialogue: Dialogue) -> Dialogue:
        with _transaction(self._conn, write=True):
            updated = self._conn.execute(
                """
                UPDATE dialogues
                SET display_name = ?, execution_model = ?, context = ?, reaction_strategy = ?,
                    update_time = ?, touched_hour = ?
                WHERE id = ?
                """,
                (*records.dialogue_settings(dialogue), *_touched(utcnow()).values(), dialogue.id),
            )
            if updated.rowcount == 0:
                raise errors.dialogue_not_found(dialogue.id)
            return self._load(dialogue.id)

    def delete_dialogue(self, dialogue_id: str) -> None:
        # Participants and messages go with it: ON DELETE CASCADE.
        with _transaction(self._conn, write=True):
            self._retire_tokens("id = ?", (dialogue_id,))
            deleted = self._conn.execute("DELETE FROM dialogues WHERE id = ?", (dialogue_id,))
            if deleted.rowcount == 0:
                raise errors.dialogue_not_found(dialogue_id)

    def expire_dialogues(self, older_than: datetime) -> int:
        with _transaction(self._conn, write=True):
            micros = _to_micros(older_than)
            # The hour bounds the index walk; the time decides.
            where = ("touched_hour <= ? AND update_time < ?", (micros // _HOUR_MICROS, micros))
            self._retire_tokens(*where)
            deleted = self._conn.execute(f"DELETE FROM dialogues WHERE {where[0]}", where[1])
            return deleted.rowcount

    def _retire_tokens(self, where: str, params: tuple[object, ...]) -> None:
        """Before dialogues are deleted: the store-wide counter passes every token they
        granted, so a dialogue created later with one of their ids starts above them."""
        self._conn.execute(
            "UPDATE lease_counter SET last_token = max(last_token,"
            f" (SELECT coalesce(max(lease_token), 0) FROM dialogues WHERE {where}))",
            params,
        )

    def add_participant(self, dialogue_id: str, participant: Participant) -> Dialogue:
        conn = self._conn
        with _transaction(conn, write=True):
            row = conn.execute(
                "SELECT next_position, cursors FROM dialogues WHERE id = ?", (dialogue_id,)
            ).fetchone()
            if row is None:
                raise errors.dialogue_not_found(dialogue_id)
            if conn.execute(
                "SELECT 1 FROM participants WHERE dialogue_id = ? AND name = ?",
                (dialogue_id, participant.name),
            ).fetchone():
                raise _errors.participant_exists(participant.name)
            conn.execute(
                "INSERT INTO participants"
                f" (dialogue_id, position, {records.PARTICIPANT_DEFINITION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                records.participant_definition_values(
                    dialogue_id, row["next_position"], participant
                ),
            )
            cursors = _load_cursors(row["cursors"])
            cursors[participant.name] = participant.cursor
            conn.execute(
                "UPDATE dialogues SET next_position = next_position + 1,"
                " roster_version = roster_version + 1, update_time = ?, touched_hour = ?,"
                " cursors = ? WHERE id = ?",
                (*_touched(utcnow()).values(), _dump_cursors(cursors), dialogue_id),
            )
            return self._load(dialogue_id)

    def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        conn = self._conn
        with _transaction(conn, write=True):
            cursors = self._cursors(dialogue_id)
            removed = conn.execute(
                "DELETE FROM participants WHERE dialogue_id = ? AND name = ?", (dialogue_id, name)
            )
            if removed.rowcount == 0:
                raise _errors.participant_not_found(dialogue_id, name)
            cursors.pop(name, None)
            conn.execute(
                "UPDATE dialogues SET roster_version = roster_version + 1, update_time = ?,"
                " touched_hour = ?, cursors = ? WHERE id = ?",
                (*_touched(utcnow()).values(), _dump_cursors(cursors), dialogue_id),
            )
            return self._load(dialogue_id)

    # --- runs -------------------------------------------------------------------------

    def begin_run(
        self,
        dialogue_id: str,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft],
        check: Callable[[Dialogue], None] | None,
    ) -> tuple[RunStart, int | None]:
        """The run's start, and the new log head when it stored messages."""
        conn = self._conn
        with _transaction(conn, write=True):
            row = conn.execute("SELECT * FROM dialogues WHERE id = ?", (dialogue_id,)).fetchone()
            if row is None:
                raise errors.dialogue_not_found(dialogue_id)
            now = self._clock()
            held = row["lease_owner"] is not None
            if held and row["lease_expires"] > now:
                raise _errors.run_in_progress(dialogue_id)
            dialogue = self._dialogue(row)
            if check is not None:
                check(dialogue)
            turn = dialogue.latest_turn + 1
            drafts = [replace(draft, turn=turn) for draft in inputs]
            if held:
                # Its holder died mid-run: say so in the log before the next turn.
                drafts.insert(0, run_end_notice(dialogue.latest_turn, RunEnd.INTERRUPTED))
            lease = RunLease(
                dialogue_id=dialogue_id, turn=turn, token=row["lease_token"] + 1, owner=owner
            )
            written = utcnow()
            # Recorded even without inputs: the run's replies come later, with this turn.
            first = dialogue.message_count + 1 + (len(drafts) - len(inputs))
            self._conn.execute(
                "INSERT OR IGNORE INTO turn_starts (dialogue_id, turn, first_seq) VALUES (?, ?, ?)",
                (dialogue_id, turn, first),
            )
            messages = self._insert(dialogue_id, drafts, dialogue.message_count, written, turn)
            self._update(
                dialogue_id,
                _grown(messages, row, written),
                # Last: the new turn, even when only a notice of the last one was written.
                {
                    "latest_turn": turn,
                    "lease_owner": owner,
                    "lease_token": lease.token,
                    "lease_expires": now + ttl,
                    "cancel_requested": None,
                },
            )
        dialogue = records.opened_dialogue(dialogue, turn, messages, written)
        stored = messages[len(messages) - len(inputs) :]
        return RunStart(lease, dialogue, stored), messages[-1].seq if messages else None

    def renew_run(self, lease: RunLease, ttl: float) -> CancelMode | None:
        with _transaction(self._conn, write=True):
            row = self._conn.execute(
                f"UPDATE dialogues SET lease_expires = ? WHERE {_LEASE_HELD}"
                " RETURNING cancel_requested",
                (self._clock() + ttl, lease.dialogue_id, lease.token),
            ).fetchone()
            if row is None:
                raise _errors.lease_lost(lease.dialogue_id)
            return None if row[0] is None else CancelMode(row[0])

    def request_cancel(self, dialogue_id: str, mode: CancelMode) -> int:
        with _transaction(self._conn, write=True):
            row = self._conn.execute(
                "UPDATE dialogues SET cancel_requested = ?"
                " WHERE id = ? AND lease_owner IS NOT NULL RETURNING latest_turn",
                (mode.value, dialogue_id),
            ).fetchone()
            if row is None:
                raise _errors.no_run_in_progress(dialogue_id)
            return int(row[0])

    def end_run(self, lease: RunLease) -> None:
        with _transaction(self._conn, write=True):
            # Only while this lease is current: a stale run must not free its successor.
            released = ", ".join(f"{column} = NULL" for column in _RELEASED)
            self._conn.execute(
                f"UPDATE dialogues SET {released} WHERE {_LEASE_HELD}",
                (lease.dialogue_id, lease.token),
            )

    # --- the log ----------------------------------------------------------------------

    def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None,
        mention_cursor: int | None,
        end_run: bool,
    ) -> list[Message]:
        conn = self._conn
        dialogue_id = lease.dialogue_id
        with _transaction(conn, write=True):
            row = conn.execute(
                "SELECT message_count, latest_turn, touched_hour, cursors FROM dialogues"
                f" WHERE {_LEASE_HELD}",
                (dialogue_id, lease.token),
            ).fetchone()
            if row is None:
                raise _errors.lease_lost(dialogue_id)
            now = utcnow()
            messages = self._insert(dialogue_id, drafts, row["message_count"], now, lease.turn)
            # The lease is held (checked above), so the dialogue row is this run's to set.
            self._update(
                dialogue_id,
                _grown(messages, row, now),
                _moved(row["cursors"], cursors),
                {} if mention_cursor is None else {"mention_cursor": mention_cursor},
                _RELEASED if end_run else {},
            )
        return messages

    def _update(self, dialogue_id: str, *changes: Mapping[str, object]) -> None:
        """Sets columns of a dialogue's row, in one statement however many changes a
        transaction brings (each statement rewrites the row and its index entries)."""
        columns = {column: value for change in changes for column, value in change.items()}
        if columns:
            assignments = ", ".join(f"{column} = ?" for column in columns)
            self._conn.execute(
                f"UPDATE dialogues SET {assignments} WHERE id = ?", (*columns.values(), dialogue_id)
            )

    def _insert(
        self,
        dialogue_id: str,
        drafts: Sequence[MessageDraft],
        message_count: int,
        now: datetime,
        started_turn: int | None,
    ) -> list[Message]:
        """Inserts messages after seq `message_count`, written at `now`, and where their
        turns start unless known already (`started_turn`, opened by `begin_run`); only
        inside a write transaction. The caller records the new head on the dialogue's
        row (see `_grown`)."""
        if not drafts:
            return []
        messages = [
            Message.from_draft(draft, seq, now)
            for seq, draft in enumerate(drafts, start=message_count + 1)
        ]
        starts: dict[int, int] = {}
        for message in messages:
            if message.turn != started_turn:
                starts.setdefault(message.turn, message.seq)
        if starts:
            # A turn seen before keeps its lower start.
            self._conn.executemany(
                "INSERT OR IGNORE INTO turn_starts (dialogue_id, turn, first_seq) VALUES (?, ?, ?)",
                ((dialogue_id, turn, seq) for turn, seq in starts.items()),
            )
        written = _to_micros(now)  # converted once: messages made now (not imported)

        def written_at(moment: datetime) -> int:
            return written if moment is now else _to_micros(moment)

        self._conn.executemany(
            f"INSERT INTO messages (dialogue_id, {records.MESSAGE_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (records.message_values(dialogue_id, message, written_at) for message in messages),
        )
        return messages

    def read_messages(
        self,
        dialogue_id: str,
        after_seq: int,
        through_seq: int | None,
        min_turn: int | None,
        max_turn: int | None,
        limit: int | None,
    ) -> list[Message]:
        sql, params = select_messages_sql(
            dialogue_id,
            after_seq=after_seq,
            through_seq=through_seq,
            min_turn=min_turn,
            max_turn=max_turn,
            limit=limit,
        )
        with _transaction(self._conn):
            self._require(dialogue_id)
            return [
                records.message_from_row(row, _from_micros)
                for row in self._conn.execute(sql, params)
            ]


# --- the worker thread ----------------------------------------------------------------


class _Worker:
    """The store's thread: runs calls in order and hands each result back to the event
    loop that asked. Like a one-thread pool, a call cancelled before it starts is
    skipped; a round trip costs one queue put and one `call_soon_threadsafe`."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[
            tuple[asyncio.AbstractEventLoop | None, asyncio.Future[Any] | None, Callable[[], Any]]
            | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="parley-sqlite", daemon=True)
        self._thread.start()

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, call))
        return await future

    def submit(self, call: Callable[[], object]) -> None:
        """Runs `call` without waiting for it; an error is logged."""
        self._calls.put((None, None, call))

    def stop(self) -> None:
        """Ends the thread once the calls already queued have run."""
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            loop, future, call = item
            if future is None or loop is None:
                try:
                    call()
                except Exception:
                    logger.exception("a background SQLite call failed")
                continue
            if future.cancelled():
                continue
            try:
                result = call()
            except BaseException as error:
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# --- the async store ------------------------------------------------------------------


class SQLiteStore:
    """A `Store` in one SQLite file (or `":memory:"`), for a single server process.

    `clock` gives wall-clock seconds for lease expiry; tests may pass a fake one.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._worker: _Worker | None = None
        self._db: _Database | None = None
        # Held by whichever thread uses the connection: the loop only ever tries it, and
        # waits for `_freed` (set by the worker) when it is taken. The loop also lets a
        # waiting worker go first: it would otherwise get the connection only by luck,
        # and checkpoints falling behind let the WAL grow without bound.
        self._connection = threading.Lock()
        self._worker_waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freed = asyncio.Event()
        self._checkpointed_at = 0
        self._checkpoint_queued = False
        # One process serves a SQLite file, so an in-process feed reaches every watcher.
        self._feed = LocalFeed()
        self._reachability = Reachability("the SQLite store")

    async def _run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on the loop, once the worker is not using the connection."""
        db = self._database()
        while not self._take_connection():
            self._freed.clear()
            if self._take_connection():  # freed in between
                break
            await self._freed.wait()
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            # Locked by another process: the worker waits for it, the loop must not.
        finally:
            self._connection.release()
            self._checkpoint_if_due(db)
        return await self._run_on_worker(fn, *args, **kwargs)

    async def _run_on_worker(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn` on the worker thread: for calls that may take a while."""
        worker, db = self._require_open()
        try:
            return await worker.run(functools.partial(self._patiently, db, fn, *args, **kwargs))
        finally:
            self._checkpoint_if_due(db)

    def _patiently(
        self, db: _Database, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        self._worker_waiting += 1
        try:
            with self._connection:
                self._worker_waiting -= 1
                db.patient(True)
                try:
                    return fn(*args, **kwargs)
                finally:
                    db.patient(False)
        finally:
            if self._loop is not None:  # calls on the loop may be waiting for it
                self._loop.call_soon_threadsafe(self._freed.set)

    def _take_connection(self) -> bool:
        return not self._worker_waiting and self._connection.acquire(blocking=False)

    def _close(self, db: _Database) -> None:
        with self._connection:
            db.close()

    def _checkpoint_if_due(self, db: _Database) -> None:
        worker = self._worker
        if (
            worker is None
            or self._checkpoint_queued
            or db.changes - self._checkpointed_at < _CHECKPOINT_EVERY
        ):
            return
        self._checkpoint_queued = True
        self._checkpointed_at = db.changes
        worker.submit(functools.partial(self._checkpoint, db))

    def _checkpoint(self, db: _Database) -> None:
        try:
            self._patiently(db, db.checkpoint)
        finally:
            self._checkpoint_queued = False

    def _require_open(self) -> tuple[_Worker, _Database]:
        if self._worker is None or self._db is None:
            raise RuntimeError("the SQLite store is not open")
        return self._worker, self._db

    def _database(self) -> _Database:
        if self._db is None:
            raise RuntimeError("the SQLite store is not open")
        return self._db

    async def open(self) -> None:
        if self._worker is not None:
            return
        self._worker = _Worker()
        self._loop = asyncio.get_running_loop()
        try:
            # Opening and migrating touch the disk: on the worker.
            self._db = await self._worker.run(functools.partial(_Database, self._path, self._clock))
        except BaseException:
            self._worker.stop()
            self._worker = None
            raise

    async def close(self) -> None:
        worker, db = self._worker, self._db
        if worker is None:
            return
        try:
            if db is not None:
                # After any checkpoint still queued; the loop cannot be using it meanwhile.
                await worker.run(functools.partial(self._close, db))
        finally:
            self._worker = self._db = self._loop = None
            # The worker is idle once close() ran on it, so this returns at once.
            worker.stop()

    async def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        return await self._run(self._database().create_dialogue, dialogue)

    async def get_dialogue(self, dialogue_id: str) -> Dialogue:
        return await self._run(self._database().get_dialogue, dialogue_id)

    async def list_dialogues(self, *, after_id: str, limit: int) -> list[Dialogue]:
        return await self._run(self._database().list_dialogues, after_id, limit)

    async def update_dialogue(self, dialogue: Dialogue) -> Dialogue:
        return await self._run(self._database().update_dialogue, dialogue)

    async def delete_dialogue(self, dialogue_id: str) -> None:
        await self._run_on_worker(self._database().delete_dialogue, dialogue_id)

    async def expire_dialogues(self, older_than: datetime) -> int:
        return await self._run_on_worker(self._database().expire_dialogues, older_than)

    async def add_participant(self, dialogue_id: str, participant: Participant) -> Dialogue:
        return await self._run(self._database().add_participant, dialogue_id, participant)

    async def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        return await self._run(self._database().remove_participant, dialogue_id, name)

    async def begin_run(
        self,
        dialogue_id: str,
        *,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft] = (),
        check: Callable[[Dialogue], None] | None = None,
    ) -> RunStart:
        # `check` runs inside the transaction, on the loop or the worker thread.
        start, head = await self._run(
            self._database().begin_run, dialogue_id, owner, ttl, inputs, check
        )
        if head is not None:
            await self._feed.publish(LogGrew(dialogue_id, head))
        return start

    @property
    def feed(self) -> LocalFeed:
        return self._feed

    @property
    def reachability(self) -> Reachability:
        return self._reachability  # in the process: never down

    async def renew_run(self, lease: RunLease, *, ttl: float) -> CancelMode | None:
        return await self._run(self._database().renew_run, lease, ttl)

    async def request_cancel(self, dialogue_id: str, mode: CancelMode) -> int:
        return await self._run(self._database().request_cancel, dialogue_id, mode)

    async def end_run(self, lease: RunLease) -> None:
        await self._run(self._database().end_run, lease)

    async def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None = None,
        *,
        mention_cursor: int | None = None,
        end_run: bool = False,
    ) -> list[Message]:
        run = self._run if len(drafts) <= _INLINE_MESSAGES else self._run_on_worker
        messages = await run(
            self._database().append, lease, drafts, cursors, mention_cursor, end_run
        )
        if messages:
            await self._feed.publish(LogGrew(lease.dialogue_id, messages[-1].seq))
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
        bounded = (
            limit
            if limit is not None
            else (None if through_seq is None else through_seq - after_seq)
        )
        long = bounded is None or bounded > _INLINE_MESSAGES
        return await (self._run_on_worker if long else self._run)(
            self._database().read_messages,
            dialogue_id,
            after_seq,
            through_seq,
            min_turn,
            max_turn,
            limit,
        )
