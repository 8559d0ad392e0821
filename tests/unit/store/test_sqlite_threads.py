"""The SQLite store shares one connection between the event loop and its worker thread:
the loop never waits on the file, and the two never use the connection at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

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


def _dialogue(dialogue_id: str) -> Dialogue:
    return Dialogue(
        id=dialogue_id, participants=(Participant(Persona("Ada", "engineer"), agent="echo"),)
    )


def _size(path: Path) -> int:
    return path.stat().st_size


def _said(text: str) -> MessageDraft:
    return MessageDraft(0, Speaker(SpeakerKind.USER, "Bob"), text, Origin.INCOMING)


async def test_a_file_locked_by_another_process_is_waited_for_off_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "parley.db"
    store = SQLiteStore(str(path))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        create = asyncio.create_task(store.create_dialogue(_dialogue("d1")))
        # Were the call waiting on the loop, these would not come back before it gave
        # up (it waits seconds for a lock): the loop stays free while the worker waits.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not create.done()
        other.execute("COMMIT")
        created = await create
        assert created.id == "d1"
        assert (await store.get_dialogue("d1")).participants[0].name == "Ada"
    finally:
        other.close()
        await store.close()


async def test_calls_on_the_loop_take_turns_with_the_worker(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "parley.db"))
    await store.open()
    try:
        await store.create_dialogue(_dialogue("big"))
        await store.create_dialogue(_dialogue("small"))
        start = await store.begin_run("big", owner="test", ttl=30.0)
        for _ in range(10):
            await store.append(start.lease, [_said(f"m{i}") for i in range(100)])
        await store.end_run(start.lease)
        small = (await store.begin_run("small", owner="test", ttl=30.0)).lease

        # Long reads run on the worker; the appends meanwhile run on the loop.
        reads = [store.read_messages("big") for _ in range(5)]
        appends = [store.append(small, [_said(f"s{i}")]) for i in range(50)]
        results = await asyncio.gather(*reads, *appends)

        for log in results[:5]:
            assert [m.seq for m in log] == list(range(1, 1_001))
        stored = [m.seq for appended in results[5:] for m in appended]
        assert sorted(stored) == list(range(1, 51))
        assert [m.content for m in await store.read_messages("small")] == [
            f"s{i}" for i in range(50)
        ]
    finally:
        await store.close()


async def test_checkpoints_keep_the_wal_from_growing_with_the_log(tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    wal = Path(f"{path}-wal")
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_dialogue(_dialogue("d"))
        lease = (await store.begin_run("d", owner="test", ttl=30.0)).lease
        text = "x" * 1_000

        async def write(rows: int) -> int:
            for _ in range(rows // 20):
                await store.append(lease, [_said(text) for _ in range(20)])
            # A long read waits for any checkpoint queued before it.
            await store.read_messages("d")
            return _size(wal)

        early = await write(2_000)
        late = await write(18_000)
        # 20,000 rows of 1 kB went through. Without checkpoints the WAL would hold them
        # all (ten times the first 2,000); with them it stays the size of the longest
        # stretch between two checkpoints. How long that is depends on when the thread
        # gets the connection (measured: 1.0 to 1.5 times the first stretch), hence the
        # margin.
        assert _size(path) > 20_000_000
        assert late < 3 * early
    finally:
        await store.close()
