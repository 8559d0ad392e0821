"""A run gives its lease back with its last reply, in the same store write, unless it
was cut short; then, and when nothing was written, it releases the lease on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import pytest
from parley.server.agents.registry import AgentProfile, AgentRegistry
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import SessionCompleted
from parley.server.engine.model import Message, MessageDraft, Sequential
from parley.server.store.feed import CancelMode
from parley.server.store.memory import MemoryStore
from parley.server.store.protocol import RunLease

from tests.unit.engine.conftest import (
    GatedAgent,
    collect,
    echo,
    gated_participant,
    make,
    no_options,
)


class ReleaseCountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.ended_alone = 0
        self.ended_with_append = 0

    async def end_run(self, lease: RunLease) -> None:
        self.ended_alone += 1
        await super().end_run(lease)

    async def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None = None,
        *,
        mention_cursor: int | None = None,
        end_run: bool = False,
    ) -> list[Message]:
        self.ended_with_append += end_run
        return await super().append(
            lease, drafts, cursors, mention_cursor=mention_cursor, end_run=end_run
        )


@pytest.fixture
async def counting() -> AsyncIterator[ReleaseCountingStore]:
    store = ReleaseCountingStore()
    await store.open()
    yield store
    await store.close()


@pytest.mark.parametrize("sequential", [False, True], ids=["broadcast", "sequential"])
async def test_the_last_reply_gives_the_lease_back(
    counting: ReleaseCountingStore, sequential: bool
) -> None:
    engine = Engine(counting, AgentRegistry.with_builtin())
    model = {"execution_model": Sequential()} if sequential else {}
    await make(engine, echo("A"), echo("B"), **model)

    await collect(engine, "d", RunInput(text="one"))

    assert (counting.ended_with_append, counting.ended_alone) == (1, 0)
    await collect(engine, "d", RunInput(text="two"))  # the dialogue is free again
    assert [m.content.split(":")[0] for m in await counting.read_messages("d")][-3:] == [
        "two",
        "A",
        "B",
    ]


async def test_a_run_with_no_reply_releases_the_lease_on_its_own(
    counting: ReleaseCountingStore,
) -> None:
    engine = Engine(counting, AgentRegistry.with_builtin())
    await make(engine, echo("A", fail="always"))

    await collect(engine, "d", RunInput(text="one"))

    assert (counting.ended_with_append, counting.ended_alone) == (0, 1)


async def test_a_run_cut_short_records_it_then_releases_the_lease(
    counting: ReleaseCountingStore, gated: GatedAgent
) -> None:
    registry = AgentRegistry.with_builtin()
    registry.register(AgentProfile("gated", "test"), gated, no_options)
    engine = Engine(counting, registry)
    await make(engine, echo("A"), gated_participant("G"))

    async with await engine.open_run("d", RunInput(text="one")) as run:
        events = aiter(run)
        await anext(events)  # started
        await gated.started("G").wait()
        run.request_stop(CancelMode.IMMEDIATE)
        rest = [event async for event in events]

    assert isinstance(rest[-1].event, SessionCompleted)
    assert (counting.ended_with_append, counting.ended_alone) == (0, 1)
    log = await counting.read_messages("d")
    assert log[-1].metadata  # the run-end notice, written before the release
    gated.gate("G").set()
    await collect(engine, "d", RunInput(text="two"))  # the dialogue is free again
