"""The SQLite store keeps recently run dialogues' participants (not their cursors, which
live on the dialogue's row) between runs, by `roster_version`: a run then reads no
participant rows, and moving cursors writes none."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from parley.server.engine.model import (
    Dialogue,
    MessageDraft,
    Origin,
    Participant,
    Persona,
    Speaker,
    SpeakerKind,
)
from parley.server.store import SQLiteStore

TTL = 30.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "parley.db"))
    await store.open()
    yield store
    await store.close()


def _statements(store: SQLiteStore) -> list[str]:
    seen: list[str] = []
    store._database()._conn.set_trace_callback(seen.append)
    return seen


async def _run_once(store: SQLiteStore) -> None:
    start = await store.begin_run("d", owner="test", ttl=TTL)
    reply = MessageDraft(start.lease.turn, Speaker(SpeakerKind.AGENT, "Ada"), "hi", Origin.INCOMING)
    await store.append(start.lease, [reply], {"Ada": 1, "Bo": 1}, end_run=True)


async def test_a_second_run_touches_no_participant_row(store: SQLiteStore) -> None:
    ada, bo = Participant(Persona("Ada"), "echo"), Participant(Persona("Bo"), "echo")
    await store.create_dialogue(Dialogue(id="d", participants=(ada, bo)))
    await _run_once(store)

    seen = _statements(store)
    await _run_once(store)
    start = await store.begin_run("d", owner="test", ttl=TTL)

    assert [(p.name, p.cursor) for p in start.dialogue.participants] == [("Ada", 1), ("Bo", 1)]
    assert [s for s in seen if "participants" in s] == []


async def test_a_roster_changed_elsewhere_is_read_again(store: SQLiteStore, tmp_path: Path) -> None:
    await store.create_dialogue(
        Dialogue(id="d", participants=(Participant(Persona("Ada"), "echo"),))
    )
    await _run_once(store)
    # Another hand rewrites a participant, as every writer must: with a new version.
    with sqlite3.connect(tmp_path / "parley.db") as other:
        other.execute("UPDATE participants SET agent = 'scripted' WHERE name = 'Ada'")
        other.execute("UPDATE dialogues SET roster_version = roster_version + 1")
    other.close()

    start = await store.begin_run("d", owner="test", ttl=TTL)

    assert [(p.name, p.agent) for p in start.dialogue.participants] == [("Ada", "scripted")]
