"""The run: who is called, in which order turns are emitted, what is stored and delivered."""

from __future__ import annotations

import asyncio

import pytest
from parley.server.engine import errors
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import (
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    TurnCompleted,
    TurnFailed,
)
from parley.server.engine.model import (
    RUN_END_METADATA_KEY,
    Broadcast,
    BroadcastOrder,
    InputMessage,
    MessageType,
    Origin,
    Participant,
    Persona,
    Sequential,
    Speaker,
    SpeakerKind,
)
from parley.server.store.memory import MemoryStore

from .conftest import GatedAgent, collect, echo, gated_participant, make


def emitted(events: list[SessionEvent]) -> list[str]:
    """Speaker names of the turn and failure events, in stream order."""
    return [e.event.speaker.name for e in events if isinstance(e.event, TurnCompleted | TurnFailed)]


def turns(events: list[SessionEvent]) -> dict[str, TurnCompleted]:
    return {e.event.speaker.name: e.event for e in events if isinstance(e.event, TurnCompleted)}


async def test_stream_shape_started_turns_completed(engine: Engine) -> None:
    """SessionStarted first, one event per participant, SessionCompleted last, seq 1..n."""
    await make(engine, echo("A"), echo("B"))
    events = await collect(engine, "d", RunInput(text="hello"))
    assert isinstance(events[0].event, SessionStarted)
    assert events[0].event.participants == ("A", "B")
    assert events[0].event.input_seqs == (1,)
    assert isinstance(events[-1].event, SessionCompleted)
    assert events[-1].event == SessionCompleted(turn_count=2, failure_count=0)
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert {e.turn for e in events} == {1}
    assert turns(events)["A"].content == "A:\n[System]: hello"


async def test_completion_order_emits_as_replies_finish(engine: Engine, gated: GatedAgent) -> None:
    """COMPLETION: turns are emitted as they finish, not in participant order."""
    await make(engine, gated_participant("A"), gated_participant("B"))
    async with await engine.open_run("d", RunInput(text="go")) as run:
        events = aiter(run)
        assert isinstance((await anext(events)).event, SessionStarted)
        await gated.started("B").wait()
        gated.gate("B").set()
        assert (await anext(events)).event.speaker.name == "B"  # type: ignore[union-attr]
        gated.gate("A").set()
        assert (await anext(events)).event.speaker.name == "A"  # type: ignore[union-attr]


async def test_completion_ties_go_out_in_participant_order(
    engine: Engine, gated: GatedAgent
) -> None:
    """Replies ready at the same moment are emitted in participant order."""
    await make(engine, gated_participant("A"), gated_participant("B"), gated_participant("C"))
    async with await engine.open_run("d", RunInput(text="go")) as run:
        events = aiter(run)
        await anext(events)
        for name in "ABC":
            await gated.started(name).wait()
        # Open the gates in reverse within one step: all finish in the same loop pass.
        for name in "CBA":
            gated.gate(name).set()
        rest = [e async for e in events]
    assert emitted(rest) == ["A", "B", "C"]
    assert [turns(rest)[n].message_seq for n in "ABC"] == [2, 3, 4]


async def test_participant_order_waits_for_earlier_participants_but_stores_at_once(
    engine: Engine, gated: GatedAgent, store: MemoryStore
) -> None:
    """PARTICIPANT_ORDER: a finished reply waits, already stored, for those before it."""
    await make(
        engine,
        gated_participant("A"),
        gated_participant("B"),
        execution_model=Broadcast(BroadcastOrder.PARTICIPANT_ORDER),
    )
    async with await engine.open_run("d", RunInput(text="go")) as run:
        events = aiter(run)
        await anext(events)
        await gated.started("B").wait()
        gated.gate("B").set()
        for _ in range(100):  # until B's reply is stored; bounded
            if len(await store.read_messages("d")) == 2:
                break
            await asyncio.sleep(0)
        stored = await store.read_messages("d")
        assert [m.speaker.name for m in stored] == ["System", "B"]
        gated.gate("A").set()
        rest = [e async for e in events]
    assert emitted(rest) == ["A", "B"]


async def test_explicit_order_names_first_then_the_rest(engine: Engine) -> None:
    """EXPLICIT: the named participants in the given order, the others in added order."""
    await make(
        engine,
        echo("A"),
        echo("B"),
        echo("C"),
        echo("D"),
        execution_model=Broadcast(BroadcastOrder.EXPLICIT, ("C", "A")),
    )
    events = await collect(engine, "d", RunInput(text="go"))
    assert emitted(events) == ["C", "A", "B", "D"]


async def test_explicit_order_stores_each_reply_once(engine: Engine, store: MemoryStore) -> None:
    """Unlike the reference, EXPLICIT stores every reply exactly once."""
    await make(
        engine, echo("A"), echo("B"), execution_model=Broadcast(BroadcastOrder.EXPLICIT, ("B",))
    )
    await collect(engine, "d", RunInput(text="go"))
    assert [m.speaker.name for m in await store.read_messages("d")] == ["System", "A", "B"]


async def test_order_override_lasts_one_run(engine: Engine) -> None:
    """broadcast_order_override changes this run only; the stored model is unchanged."""
    await make(engine, echo("A", delay_ms="30"), echo("B"))
    override = Broadcast(BroadcastOrder.EXPLICIT, ("A",))
    first = await collect(engine, "d", RunInput(text="one", broadcast_override=override))
    assert emitted(first) == ["A", "B"]
    assert first[0].event.execution_model == override  # type: ignore[union-attr]
    second = await collect(engine, "d", RunInput(text="two"))
    assert emitted(second) == ["B", "A"]
    assert (await engine.get_dialogue("d")).execution_model == Broadcast()


async def test_override_naming_unknown_participant_is_invalid(
    engine: Engine, store: MemoryStore
) -> None:
    await make(engine, echo("A"))
    with pytest.raises(errors.InvalidArgument) as caught:
        await engine.open_run(
            "d",
            RunInput(text="x", broadcast_override=Broadcast(BroadcastOrder.EXPLICIT, ("Zed",))),
        )
    assert caught.value.violations[0].field == "broadcast_order_override.explicit_order[0]"
    assert await store.read_messages("d") == []


async def test_sequential_each_step_sees_the_previous_replies(engine: Engine) -> None:
    """Sequential: one after another, in added order, each seeing what came before."""
    await make(engine, echo("A"), echo("B"), echo("C"), execution_model=Sequential())
    events = await collect(engine, "d", RunInput(text="start"))
    assert emitted(events) == ["A", "B", "C"]
    by_name = turns(events)
    assert by_name["A"].content == "A:\n[System]: start"
    assert by_name["B"].content == "B:\n[System]: start\n[A]: A:\\n[System]: start"
    assert by_name["C"].content.splitlines()[1:] == [
        "[System]: start",
        "[A]: A:\\n[System]: start",
        "[B]: B:\\n[System]: start\\n[A]: A:\\n[System]: start",
    ]


async def test_sequential_explicit_order(engine: Engine) -> None:
    await make(engine, echo("A"), echo("B"), echo("C"), execution_model=Sequential(("C", "A")))
    events = await collect(engine, "d", RunInput(text="go"))
    assert emitted(events) == ["C", "A", "B"]
    assert "[C]:" in turns(events)["A"].content


async def test_sequential_failed_step_is_emitted_and_the_chain_goes_on(engine: Engine) -> None:
    """A failed step is a TurnFailed; the next participant sees no reply from it."""
    await make(engine, echo("A"), echo("B", fail="always"), echo("C"), execution_model=Sequential())
    events = await collect(engine, "d", RunInput(text="go"))
    assert emitted(events) == ["A", "B", "C"]
    failed = [e.event for e in events if isinstance(e.event, TurnFailed)]
    assert [(f.speaker.name, f.code, f.participant_index) for f in failed] == [
        ("B", "AGENT_ERROR", 1)
    ]
    assert "[B]" not in turns(events)["C"].content
    assert events[-1].event == SessionCompleted(turn_count=2, failure_count=1)


async def test_broadcast_failure_is_isolated(engine: Engine, store: MemoryStore) -> None:
    """A failed participant stores nothing; the others still reply."""
    await make(engine, echo("A", fail="always"), echo("B"))
    events = await collect(engine, "d", RunInput(text="go"))
    assert emitted(events) == ["A", "B"]
    assert events[-1].event == SessionCompleted(turn_count=1, failure_count=1)
    assert [m.speaker.name for m in await store.read_messages("d")] == ["System", "B"]


async def test_agent_timeout_becomes_a_retryable_failure(engine: Engine) -> None:
    await make(engine, echo("A"), Participant(Persona("Slow"), "impatient"))
    events = await collect(engine, "d", RunInput(text="go"))
    failure = next(e.event for e in events if isinstance(e.event, TurnFailed))
    assert (failure.code, failure.retryable) == ("AGENT_TIMEOUT", True)


async def test_replies_are_stored_with_speaker_icon_origin_and_turn(
    engine: Engine, store: MemoryStore
) -> None:
    await make(engine, echo("A", icon="🦊"))
    await collect(engine, "d", RunInput(text="one"))
    events = await collect(engine, "d", RunInput(text="two"))
    assert {e.turn for e in events} == {2}
    log = await store.read_messages("d")
    assert [(m.seq, m.turn, m.origin) for m in log] == [
        (1, 1, Origin.INCOMING),
        (2, 1, Origin.AGENT_GENERATED),
        (3, 2, Origin.INCOMING),
        (4, 2, Origin.AGENT_GENERATED),
    ]
    assert log[1].speaker == Speaker(SpeakerKind.AGENT, "A", "A role", "🦊")
    assert log[0].speaker == Speaker.system()


async def test_cursors_deliver_each_message_once_and_never_the_own_reply(engine: Engine) -> None:
    await make(engine, echo("A"), echo("B"))
    await collect(engine, "d", RunInput(text="one"))
    events = await collect(engine, "d", RunInput(text="two"))
    assert turns(events)["A"].content == "A:\n[B]: B:\\n[System]: one\n[System]: two"


async def test_a_failed_participant_catches_up_next_run(engine: Engine) -> None:
    """A failed call delivers nothing: the next call receives everything it missed."""
    await make(engine, echo("A", fail="1"), echo("B"))
    await collect(engine, "d", RunInput(text="one"))
    events = await collect(engine, "d", RunInput(text="two"))
    assert turns(events)["A"].content.splitlines()[1:] == [
        "[System]: one",
        "[B]: B:\\n[System]: one",
        "[System]: two",
    ]


async def test_user_speaker_and_input_messages_are_stored_in_order(
    engine: Engine, store: MemoryStore
) -> None:
    await make(engine, echo("A"))
    run_input = RunInput(
        text="and the prompt",
        speaker=Speaker(SpeakerKind.USER, "Kim"),
        messages=(InputMessage(Speaker(SpeakerKind.USER, ""), "first"),),
    )
    events = await collect(engine, "d", run_input)
    assert turns(events)["A"].content == "A:\n[User]: first\n[Kim]: and the prompt"
    assert [m.speaker.name for m in await store.read_messages("d")][:2] == ["User", "Kim"]


async def test_context_info_alone_is_stored_not_reacted_to_then_delivered(
    engine: Engine, store: MemoryStore
) -> None:
    await make(engine, echo("A"))
    info = InputMessage(Speaker(SpeakerKind.USER, "Ops"), "fyi", MessageType.CONTEXT_INFO)
    quiet = await collect(engine, "d", RunInput(messages=(info,)))
    assert [type(e.event) for e in quiet] == [SessionStarted, SessionCompleted]
    assert quiet[0].event.participants == ()  # type: ignore[union-attr]
    events = await collect(engine, "d", RunInput(text="now"))
    assert turns(events)["A"].content == "A:\n[Ops]: fyi\n[System]: now"


async def test_empty_input_is_invalid_and_stores_nothing(
    engine: Engine, store: MemoryStore
) -> None:
    await make(engine, echo("A"))
    with pytest.raises(errors.InvalidArgument):
        await engine.open_run("d", RunInput())
    assert await store.read_messages("d") == []
    assert (await engine.get_dialogue("d")).latest_turn == 0


async def test_unknown_dialogue_is_not_found(engine: Engine) -> None:
    with pytest.raises(errors.NotFound) as caught:
        await engine.open_run("nope", RunInput(text="x"))
    assert caught.value.reason == "DIALOGUE_NOT_FOUND"


async def test_second_concurrent_run_is_rejected_then_allowed(
    engine: Engine, gated: GatedAgent
) -> None:
    await make(engine, gated_participant("A"))
    async with await engine.open_run("d", RunInput(text="one")) as run:
        with pytest.raises(errors.RunInProgress) as caught:
            await engine.open_run("d", RunInput(text="two"))
        assert caught.value.reason == "RUN_IN_PROGRESS"
        gated.gate("A").set()
        _ = [e async for e in run]
    events = await collect(engine, "d", RunInput(text="three"))
    assert events[-1].event == SessionCompleted(1, 0)


async def test_cancelling_a_run_cancels_calls_keeps_finished_replies_and_frees_the_dialogue(
    engine: Engine, gated: GatedAgent, store: MemoryStore
) -> None:
    await make(engine, gated_participant("Fast"), gated_participant("Slow"))
    async with await engine.open_run("d", RunInput(text="go")) as run:
        events = aiter(run)
        await anext(events)
        gated.gate("Fast").set()
        assert (await anext(events)).event.speaker.name == "Fast"  # type: ignore[union-attr]
        await gated.started("Slow").wait()
    # Leaving the block without reading on is what a client disconnect does.
    assert gated.cancelled == ["Slow"]
    log = await store.read_messages("d")
    assert [m.speaker.name for m in log] == ["System", "Fast", "System"]
    assert log[-1].type is MessageType.NOTIFICATION
    assert log[-1].metadata == {RUN_END_METADATA_KEY: "cancelled"}
    gated.gate("Slow").set()
    events_after = await collect(engine, "d", RunInput(text="again"))
    assert events_after[-1].event == SessionCompleted(2, 0)
