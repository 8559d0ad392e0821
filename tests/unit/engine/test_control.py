"""Stopping, queueing and watching runs (issues: reliability, scale-out)."""

from __future__ import annotations

import asyncio

import pytest
from parley.server.engine import errors
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import (
    SessionCompleted,
    SessionEvent,
    TurnCompleted,
    TurnFailed,
)
from parley.server.engine.model import RUN_END_METADATA_KEY, Message, Sequential
from parley.server.store.feed import CancelMode
from parley.server.store.memory import MemoryStore

from .conftest import GatedAgent, collect, echo, gated_participant, make


async def test_cancel_immediate_fails_in_flight_calls_and_completes_the_stream(
    engine: Engine, gated: GatedAgent, store: MemoryStore
) -> None:
    await engine.start()
    try:
        await make(engine, gated_participant("A"), gated_participant("B"))
        async with await engine.open_run("d", RunInput(text="go")) as run:
            events = aiter(run)
            await anext(events)
            gated.gate("A").set()
            assert isinstance((await anext(events)).event, TurnCompleted)
            await gated.started("B").wait()
            assert await engine.cancel_run("d", CancelMode.IMMEDIATE) == 1
            rest = [e.event async for e in events]
    finally:
        await engine.close()
    assert isinstance(rest[0], TurnFailed)
    assert (rest[0].speaker.name, rest[0].code) == ("B", "RUN_CANCELLED")
    assert rest[-1] == SessionCompleted(1, 1)
    assert gated.cancelled == ["B"]
    log = await store.read_messages("d")
    assert log[-1].metadata == {RUN_END_METADATA_KEY: "cancelled"}
    # The dialogue is free again.
    gated.gate("B").set()
    assert (await collect(engine, "d", RunInput(text="again")))[-1].event == SessionCompleted(2, 0)


async def test_cancel_immediate_before_the_calls_start_makes_none_of_them(
    engine: Engine, gated: GatedAgent, store: MemoryStore
) -> None:
    await make(engine, gated_participant("A"), gated_participant("B"))
    async with await engine.open_run("d", RunInput(text="go")) as run:
        events = aiter(run)
        await anext(events)  # started: the calls' tasks exist, none has run yet
        run.request_stop(CancelMode.IMMEDIATE)
        rest = [e.event async for e in events]

    assert [(e.speaker.name, e.code) for e in rest if isinstance(e, TurnFailed)] == [
        ("A", "RUN_CANCELLED"),
        ("B", "RUN_CANCELLED"),
    ]
    assert rest[-1] == SessionCompleted(0, 2)
    assert not gated.started("A").is_set()
    assert not gated.started("B").is_set()
    log = await store.read_messages("d")
    assert log[-1].metadata == {RUN_END_METADATA_KEY: "cancelled"}


async def test_cancel_after_turn_lets_the_current_call_finish_and_starts_no_more(
    engine: Engine, gated: GatedAgent
) -> None:
    await engine.start()
    try:
        await make(
            engine,
            gated_participant("A"),
            gated_participant("B"),
            execution_model=Sequential(),
        )
        async with await engine.open_run("d", RunInput(text="go")) as run:
            events = aiter(run)
            await anext(events)
            await gated.started("A").wait()
            await engine.cancel_run("d", CancelMode.AFTER_TURN)
            gated.gate("A").set()
            rest = [e.event async for e in events]
    finally:
        await engine.close()
    assert isinstance(rest[0], TurnCompleted)
    assert isinstance(rest[1], TurnFailed)
    assert (rest[1].speaker.name, rest[1].code, rest[1].attempts) == ("B", "RUN_CANCELLED", 0)
    assert rest[-1] == SessionCompleted(1, 1)
    assert gated.cancelled == []


async def test_cancel_without_a_run_is_not_found(engine: Engine) -> None:
    await make(engine, echo("A"))
    with pytest.raises(errors.NotFound) as caught:
        await engine.cancel_run("d", CancelMode.IMMEDIATE)
    assert caught.value.reason == "NO_RUN_IN_PROGRESS"


async def test_a_queued_run_waits_for_the_busy_dialogue(engine: Engine, gated: GatedAgent) -> None:
    await make(engine, gated_participant("A"))
    first = await engine.open_run("d", RunInput(text="one"))
    async with first:
        queued = asyncio.create_task(engine.open_run("d", RunInput(text="two"), queue_timeout=60))
        await gated.started("A").wait()
        assert not queued.done()
        gated.gate("A").set()
        _ = [e async for e in first]
    async with await queued as second:
        events = [e.event async for e in second]
    assert events[-1] == SessionCompleted(1, 0)


async def test_a_queued_run_gives_up_after_its_timeout(engine: Engine, gated: GatedAgent) -> None:
    await make(engine, gated_participant("A"))
    async with await engine.open_run("d", RunInput(text="one")):
        with pytest.raises(errors.RunInProgress):
            await engine.open_run("d", RunInput(text="two"), queue_timeout=0)
        gated.gate("A").set()


async def test_a_passed_deadline_fails_calls_instead_of_making_them(engine: Engine) -> None:
    await make(engine, echo("A"))
    async with await engine.open_run("d", RunInput(text="go"), deadline=0.0) as run:
        events = [e.event async for e in run]
    failure = next(e for e in events if isinstance(e, TurnFailed))
    assert failure.code == "RUN_DEADLINE_EXCEEDED"


async def test_watch_replays_then_follows_live_without_gap_or_duplicate(
    engine: Engine, gated: GatedAgent
) -> None:
    await make(engine, echo("E"), gated_participant("G"))
    gated.gate("G").set()
    await collect(engine, "d", RunInput(text="one"))  # seqs 1-3
    gated.gates.clear()
    seen: list[Message | SessionEvent] = []
    watcher = engine.watch("d", after_seq=1)
    # The watcher collects into a queue so the test can run a turn while it follows.
    watched = asyncio.Queue[Message | SessionEvent]()

    async def follow() -> None:
        async for item in watcher:
            await watched.put(item)

    task = asyncio.create_task(follow())
    try:
        for _ in range(2):
            seen.append(await watched.get())
        async with await engine.open_run("d", RunInput(text="two")) as run:
            await gated.started("G").wait()
            gated.gate("G").set()
            _ = [e async for e in run]
        while not (
            isinstance(seen[-1], SessionEvent) and isinstance(seen[-1].event, SessionCompleted)
        ):
            seen.append(await watched.get())
    finally:
        task.cancel()
    order = [f"m{i.seq}" if isinstance(i, Message) else type(i.event).__name__ for i in seen]
    # Replay (2, 3), then live: the stored input, the start, both replies, the end. The
    # run's last reply is announced before its completion.
    assert order == ["m2", "m3", "m4", "SessionStarted", "m5", "m6", "SessionCompleted"]


async def test_watch_of_unknown_dialogue_is_not_found(engine: Engine) -> None:
    with pytest.raises(errors.NotFound):
        await anext(engine.watch("nope", after_seq=0))
