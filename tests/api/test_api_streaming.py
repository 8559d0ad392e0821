"""Streaming, cancellation and concurrency over grpc.aio (pytest-asyncio).

A "slow" participant sleeps far longer than any test runs (echo `delay_ms`), so while
its call is in flight the test controls every step through stream events and RPCs; no
test waits for it to finish: its run is cancelled instead. Nothing here sleeps to
synchronise or asserts on elapsed time; the only loops are bounded polls for "the
cancelled run has ended on the server".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .support import (
    Stub,
    all_messages,
    all_messages_async,
    assert_cancel_notice,
    assert_failure,
    broadcast,
    echo,
    echo_reply,
    failure_of,
    kinds,
    new_id,
    rpc_failure,
    sequential,
    wait_until_runnable,
    wait_until_runnable_async,
)

if TYPE_CHECKING:
    from .support import AsyncStub

# Never reached: every run with a slow participant is cancelled.
SLOW_MS = 600_000


async def acreate(
    stub: AsyncStub, participants: Sequence[pb.Participant], model: pb.ExecutionModel | None = None
) -> pb.Dialogue:
    return await stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue=pb.Dialogue(participants=list(participants), execution_model=model),
            dialogue_id=new_id("aio"),
        )
    )


async def read_event(
    call: grpc.aio.UnaryStreamCall[pb.RunSessionRequest, pb.SessionEvent],
) -> pb.SessionEvent:
    event = await call.read()
    assert isinstance(event, pb.SessionEvent), f"the stream ended early: {event!r}"
    return event


async def rejected(call: grpc.aio.UnaryStreamCall[pb.RunSessionRequest, pb.SessionEvent]) -> str:
    """The ErrorInfo reason of a stream that must fail before its first event."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    return failure_of(info.value).reason


async def test_turns_stream_while_slower_participants_are_running(
    aio_stub: AsyncStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    dialogue = await acreate(aio_stub, [echo("Slow", delay_ms=SLOW_MS), echo("Fast", delay_ms=0)])
    call = aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="go"))

    started = await read_event(call)
    fast = await read_event(call)

    assert list(started.started.participants) == ["Slow", "Fast"]
    assert fast.HasField("turn_completed"), fast
    assert fast.turn_completed.speaker.name == "Fast"
    assert fast.turn_completed.content == echo_reply("Fast", ("System", "go"))
    # The Fast turn arrived while Slow is still running: Slow's reply is not in the log.
    log = await all_messages_async(aio_stub, dialogue.name)
    assert [(m.seq, m.speaker.name) for m in log] == [(1, "System"), (2, "Fast")]
    assert fast.turn_completed.message_seq == 2

    call.cancel()

    assert await call.code() == grpc.StatusCode.CANCELLED
    probe = await wait_until_runnable_async(aio_stub, dialogue.name)
    assert probe.turn == 2
    log = await all_messages_async(aio_stub, dialogue.name)
    # Turn 1 keeps the input and Fast's reply, never gets Slow's, and is marked cancelled.
    assert [(m.turn, m.speaker.name) for m in log] == [
        (1, "System"),
        (1, "Fast"),
        (1, "System"),
        (2, "Probe"),
    ]
    assert log[1].content == fast.turn_completed.content
    assert_cancel_notice(log[2], turn=1)
    # A client going away is not a server error.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_reply_waiting_for_its_turn_is_already_stored(aio_stub: AsyncStub) -> None:
    # PARTICIPANT_ORDER: Fast's reply waits behind Slow's for emission, but is stored at
    # completion, so cancelling the stream loses no finished work.
    dialogue = await acreate(
        aio_stub,
        [echo("Slow", delay_ms=SLOW_MS), echo("Fast")],
        broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )
    call = aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="order"))
    assert (await read_event(call)).HasField("started")

    fast = None
    for _ in range(400):
        log = await all_messages_async(aio_stub, dialogue.name)
        fast = next((m for m in log if m.speaker.name == "Fast"), None)
        if fast is not None:
            break
        await asyncio.sleep(0.025)
    assert fast is not None, "Fast's reply was never stored"
    call.cancel()

    await wait_until_runnable_async(aio_stub, dialogue.name)
    log = await all_messages_async(aio_stub, dialogue.name)
    assert [m.speaker.name for m in log if m.turn == 1] == ["System", "Fast", "System"]
    assert_cancel_notice(log[2], turn=1)
    assert fast.content == echo_reply("Fast", ("System", "order"))


async def test_a_second_run_while_one_is_in_progress_is_rejected(aio_stub: AsyncStub) -> None:
    dialogue = await acreate(aio_stub, [echo("Slow", delay_ms=SLOW_MS), echo("Fast")])
    first = aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="first"))
    assert (await read_event(first)).HasField("started")
    assert (await read_event(first)).turn_completed.speaker.name == "Fast"

    second = aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="second"))
    assert await rejected(second) == "RUN_IN_PROGRESS"
    assert await second.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aio_stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="third"))
    assert_failure(failure_of(info.value), grpc.StatusCode.FAILED_PRECONDITION, "RUN_IN_PROGRESS")
    # Rejected runs store nothing.
    log = await all_messages_async(aio_stub, dialogue.name)
    assert {m.content for m in log} & {"second", "third"} == set()

    first.cancel()

    # Runnable again once the first run has ended, and the rejected runs used no turn.
    probe = await wait_until_runnable_async(aio_stub, dialogue.name)
    assert probe.turn == 2
    await aio_stub.RemoveParticipant(
        pb.RemoveParticipantRequest(dialogue=dialogue.name, participant_name="Slow")
    )
    again = await aio_stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="again"))
    assert again.turn == 3
    assert [t.speaker.name for t in again.turns] == ["Fast"]
    # Fast catches up on what came after its turn-1 reply: the cancel notice and the probe.
    notice = (await all_messages_async(aio_stub, dialogue.name))[2]
    assert_cancel_notice(notice, turn=1)
    assert again.turns[0].content == echo_reply(
        "Fast", ("System", notice.content), ("Probe", "probe"), ("System", "again")
    )


def test_run_in_progress_through_the_sync_stub(stub: Stub) -> None:
    dialogue = stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue=pb.Dialogue(participants=[echo("Slow", delay_ms=SLOW_MS)]),
            dialogue_id=new_id("sync"),
        )
    )
    first = stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="first"))
    assert next(iter(first)).HasField("started")

    failure = rpc_failure(
        lambda: list(stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="no")))
    )
    assert_failure(failure, grpc.StatusCode.FAILED_PRECONDITION, "RUN_IN_PROGRESS")

    first.cancel()  # type: ignore[no-untyped-call]

    assert wait_until_runnable(stub, dialogue.name).turn == 2
    log = all_messages(stub, dialogue.name)
    assert [(m.turn, m.content) for m in (log[0], log[2])] == [(1, "first"), (2, "probe")]
    assert_cancel_notice(log[1], turn=1)


async def test_concurrent_runs_on_one_dialogue_exactly_one_wins(aio_stub: AsyncStub) -> None:
    dialogue = await acreate(aio_stub, [echo("Slow", delay_ms=SLOW_MS)])
    calls = [
        aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text=f"run {n}"))
        for n in range(5)
    ]

    outcomes = await asyncio.gather(*(call.read() for call in calls), return_exceptions=True)

    winners = [c for c, o in zip(calls, outcomes, strict=True) if isinstance(o, pb.SessionEvent)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 4, outcomes
    assert {failure_of(error).reason for error in losers} == {"RUN_IN_PROGRESS"}
    log = await all_messages_async(aio_stub, dialogue.name)
    assert len(log) == 1  # only the winner's input

    winners[0].cancel()

    assert (await wait_until_runnable_async(aio_stub, dialogue.name)).turn == 2


async def test_runs_on_different_dialogues_do_not_wait_for_each_other(aio_stub: AsyncStub) -> None:
    busy = await acreate(aio_stub, [echo("Slow", delay_ms=SLOW_MS)])
    busy_call = aio_stub.RunSession(pb.RunSessionRequest(dialogue=busy.name, text="busy"))
    assert (await read_event(busy_call)).HasField("started")

    # While `busy` has a call in flight, whole runs of other dialogues complete, concurrently.
    others = [
        await acreate(aio_stub, [echo("A", delay_ms=50), echo("B")], model)
        for model in (None, sequential(), broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER))
        for _ in range(2)
    ]
    responses = await asyncio.gather(
        *(aio_stub.Run(pb.RunSessionRequest(dialogue=d.name, text=d.name)) for d in others)
    )

    for dialogue, response in zip(others, responses, strict=True):
        assert response.completed
        assert response.dialogue == dialogue.name
        assert sorted(t.speaker.name for t in response.turns) == ["A", "B"]
        assert next(t for t in response.turns if t.speaker.name == "A").content == echo_reply(
            "A", ("System", dialogue.name)
        )
    busy_call.cancel()
    await wait_until_runnable_async(aio_stub, busy.name)


async def test_concurrent_streams_each_get_their_own_sequence(aio_stub: AsyncStub) -> None:
    dialogues = [await acreate(aio_stub, [echo("A"), echo("B", delay_ms=20)]) for _ in range(4)]

    async def stream(dialogue: pb.Dialogue) -> list[pb.SessionEvent]:
        call = aio_stub.RunSession(pb.RunSessionRequest(dialogue=dialogue.name, text="hi"))
        return [event async for event in call]

    results = await asyncio.gather(*(stream(d) for d in dialogues))

    for dialogue, events in zip(dialogues, results, strict=True):
        assert kinds(events) == ["started", "turn_completed", "turn_completed", "completed"]
        assert [e.sequence for e in events] == [1, 2, 3, 4]
        assert {e.dialogue for e in events} == {dialogue.name}
        assert [e.turn_completed.speaker.name for e in events[1:3]] == ["A", "B"]


async def test_a_client_deadline_ends_the_run_on_the_server(aio_stub: AsyncStub) -> None:
    dialogue = await acreate(aio_stub, [echo("Slow", delay_ms=SLOW_MS), echo("Fast")])

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await aio_stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="hurry"), timeout=0.5)

    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_until_runnable_async(aio_stub, dialogue.name)
    log = await all_messages_async(aio_stub, dialogue.name)
    assert "Slow" not in {m.speaker.name for m in log}


async def test_concurrent_adds_of_one_name_exactly_one_succeeds(aio_stub: AsyncStub) -> None:
    dialogue = await acreate(aio_stub, [echo("A")])

    outcomes = await asyncio.gather(
        *(
            aio_stub.AddParticipant(
                pb.AddParticipantRequest(
                    dialogue=dialogue.name, participant=echo("Twin", reply=str(n))
                )
            )
            for n in range(8)
        ),
        return_exceptions=True,
    )

    added = [o for o in outcomes if isinstance(o, pb.Dialogue)]
    errors = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(added), len(errors)) == (1, 7), outcomes
    assert {failure_of(e).reason for e in errors} == {"PARTICIPANT_ALREADY_EXISTS"}
    got = await aio_stub.GetDialogue(pb.GetDialogueRequest(name=dialogue.name))
    assert [p.persona.name for p in got.participants] == ["A", "Twin"]


async def test_concurrent_creates(aio_stub: AsyncStub) -> None:
    generated = await asyncio.gather(
        *(
            aio_stub.CreateDialogue(pb.CreateDialogueRequest(dialogue=pb.Dialogue()))
            for _ in range(10)
        )
    )
    taken = new_id("same")
    same = await asyncio.gather(
        *(
            aio_stub.CreateDialogue(
                pb.CreateDialogueRequest(dialogue=pb.Dialogue(), dialogue_id=taken)
            )
            for _ in range(6)
        ),
        return_exceptions=True,
    )

    assert len({d.name for d in generated}) == 10
    created = [o for o in same if isinstance(o, pb.Dialogue)]
    errors = [o for o in same if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(created), len(errors)) == (1, 5), same
    assert {failure_of(e).reason for e in errors} == {"DIALOGUE_ALREADY_EXISTS"}
