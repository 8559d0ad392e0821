"""A run starts from what the previous run of its dialogue wrote, kept in memory, and
reads the log only when something else wrote in between."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from parley.server.agents.registry import AgentRegistry
from parley.server.engine.delivery import LogTails, LogWindow
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import SessionEvent, TurnCompleted
from parley.server.engine.model import Message, Origin, Speaker, SpeakerKind, utcnow
from parley.server.store.memory import MemoryStore

from tests.unit.engine.conftest import collect, echo, make

NOW = utcnow()


def said(seq: int, text: str = "x") -> Message:
    return Message(seq, 1, Speaker(SpeakerKind.USER, "Bob"), text, Origin.INCOMING, NOW)


def window(first: int, last: int, text: str = "x") -> LogWindow:
    return LogWindow([said(seq, text) for seq in range(first, last + 1)], last, first - 1)


KEY = ("d", NOW)


def test_a_tail_answers_only_for_the_stretch_it_ends() -> None:
    tails = LogTails()
    tails.put(KEY, window(5, 9))
    assert [m.seq for m in tails.messages(KEY, 6, 9) or []] == [7, 8, 9]
    assert tails.messages(KEY, 4, 9) == [said(seq) for seq in range(5, 10)]
    assert tails.messages(KEY, 3, 9) is None  # starts before what is kept
    assert tails.messages(KEY, 6, 10) is None  # something was written after it
    assert tails.messages(("d", utcnow()), 6, 9) is None  # the dialogue was created again


def test_tails_are_bounded_by_dialogues_messages_and_characters() -> None:
    tails = LogTails(max_dialogues=2, max_messages=3, max_chars=10)
    tails.put(("a", NOW), window(1, 9, "y"))
    assert tails.messages(("a", NOW), 6, 9) == [said(seq, "y") for seq in (7, 8, 9)]
    assert tails.messages(("a", NOW), 5, 9) is None  # only the last three are kept
    tails.put(("b", NOW), window(1, 1, "y"))
    tails.put(("c", NOW), window(1, 1, "y"))
    assert tails.messages(("a", NOW), 8, 9) is None  # least recently run went first
    tails.put(("d", NOW), window(1, 1, "z" * 11))  # larger than the whole budget
    assert tails.messages(("d", NOW), 0, 1) is None
    assert tails.messages(("c", NOW), 0, 1) is not None


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_messages(self, dialogue_id: str, **bounds: int | None) -> list[Message]:
        self.reads += 1
        return await super().read_messages(dialogue_id, **bounds)  # type: ignore[arg-type]


@pytest.fixture
async def counting() -> AsyncIterator[CountingStore]:
    store = CountingStore()
    await store.open()
    yield store
    await store.close()


def contents(events: list[SessionEvent]) -> dict[str, str]:
    return {
        e.event.speaker.name: e.event.content for e in events if isinstance(e.event, TurnCompleted)
    }


async def test_the_next_run_reads_nothing_back_and_still_sees_every_reply(
    counting: CountingStore,
) -> None:
    engine = Engine(counting, AgentRegistry.with_builtin())
    await make(engine, echo("A"), echo("B"))
    await collect(engine, "d", RunInput(text="one"))
    counting.reads = 0
    second = await collect(engine, "d", RunInput(text="two"))
    assert counting.reads == 0
    assert contents(second)["A"] == "A:\n[B]: B:\\n[System]: one\n[System]: two"


async def test_a_run_reads_the_log_when_another_replica_wrote_in_between(
    counting: CountingStore,
) -> None:
    engine = Engine(counting, AgentRegistry.with_builtin())
    other = Engine(counting, AgentRegistry.with_builtin())  # another replica, same store
    await make(engine, echo("A"), echo("B"))
    await collect(engine, "d", RunInput(text="one"))
    await collect(other, "d", RunInput(text="two"))
    counting.reads = 0
    third = await collect(engine, "d", RunInput(text="three"))
    assert counting.reads == 1
    # B's reply of the other replica's turn, which this engine never held.
    assert (
        contents(third)["A"]
        == "A:\n[B]: B:\\n[A]: A:\\n[System]: one\\n[System]: two\n[System]: three"
    )
