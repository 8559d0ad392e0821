"""Cancellation over real gRPC: client disconnects, CancelRun in both modes, no run.

The server runs on the test's loop (`support.live_server`), so each test can check that
a cancelled run leaves no asyncio task behind, and gate-profile participants stay in
flight until the test opens their gate: no test depends on how fast anything runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from parley.server.store import MemoryStore, SQLiteStore
from parley.v1 import dialogue_pb2 as pb

from tests.api.support import (
    all_messages_async,
    assert_failure,
    broadcast,
    echo_reply,
    kinds,
    sequential,
    wait_until_runnable_async,
)

from .support import (
    GateAgent,
    LiveServer,
    assert_no_task_leaked,
    create_dialogue,
    echo,
    failure_of,
    gated,
    is_cancelled_notice,
    live_server,
    next_event,
    rest_of,
    run_end_notices,
    task_census,
)

# Never answers within a test: only cancellation ends such a call.
FOREVER_MS = 3_600_000


@pytest.fixture(params=["memory", "sqlite"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The server, on each store: SQLite's work happens on a thread, so its cleanup after
    a cancellation really waits."""
    store = MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "p.db"))
    async with live_server(store=store) as live:
        yield live


def failures_by_speaker(events: list[pb.SessionEvent]) -> dict[str, pb.TurnFailed]:
    return {e.turn_failed.speaker.name: e.turn_failed for e in events if e.HasField("turn_failed")}


def speakers_of_turn(log: list[pb.Message], turn: int) -> list[str]:
    return [m.speaker.name for m in log if m.turn == turn]


@pytest.mark.parametrize("how", ["cancel-call", "close-channel"])
async def test_a_client_disconnecting_mid_run_cancels_in_flight_calls_and_keeps_replies(
    server: LiveServer, how: str
) -> None:
    before = task_census()
    admin = server.stub()
    name = await create_dialogue(
        admin,
        [echo("Fast"), echo("Slow", delay_ms=FOREVER_MS), gated("Held")],
        model=broadcast(pb.BROADCAST_ORDER_COMPLETION),
    )
    runner_channel, runner = server.connect()
    call = runner.RunSession(pb.RunSessionRequest(dialogue=name, text="hello"))
    assert (await next_event(call)).HasField("started")
    fast = await next_event(call)
    assert fast.turn_completed.speaker.name == "Fast"
    await server.gate.entered("Held")

    if how == "cancel-call":
        call.cancel()
    else:
        await runner_channel.close(None)

    # The dialogue takes runs again once the cancelled run has let go of it.
    await wait_until_runnable_async(admin, name)
    assert server.gate.cancelled == ["Held"]
    assert server.gate.finished == []
    log = await all_messages_async(admin, name)
    turn_one = [m for m in log if m.turn == 1]
    assert [m.speaker.name for m in turn_one] == ["System", "Fast", "System"]
    assert turn_one[0].content == "hello"
    assert turn_one[1].content == echo_reply("Fast", ("System", "hello"))
    assert turn_one[1].seq == fast.turn_completed.message_seq
    assert is_cancelled_notice(turn_one[2], turn=1)
    # Nothing of the cancelled calls reached the log.
    assert not any(m.speaker.name in ("Slow", "Held") for m in log)
    dialogue = await admin.GetDialogue(pb.GetDialogueRequest(name=name))
    assert dialogue.message_count == len(log)
    assert server.engine._running == {}

    await server.close_channels()
    await assert_no_task_leaked(before)


@pytest.mark.parametrize("model", ["broadcast", "sequential"])
async def test_cancel_run_immediate_stops_the_run_another_client_is_streaming(
    server: LiveServer, model: str
) -> None:
    before = task_census()
    admin = server.stub()
    execution = (
        broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER)
        if model == "broadcast"
        else sequential(["Fast", "Held", "Later"])
    )
    name = await create_dialogue(
        admin, [echo("Fast"), gated("Held"), echo("Later", delay_ms=FOREVER_MS)], model=execution
    )
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text="go"))
    assert (await next_event(call)).HasField("started")
    assert (await next_event(call)).turn_completed.speaker.name == "Fast"
    await server.gate.entered("Held")

    response = await admin.CancelRun(
        pb.CancelRunRequest(dialogue=name, mode=pb.CANCEL_MODE_IMMEDIATE)
    )
    assert response.turn == 1

    # The stream that was cut short still ends properly, with status OK.
    rest = await rest_of(call)
    assert kinds(rest) == ["turn_failed", "turn_failed", "completed"]
    failed = failures_by_speaker(rest)
    assert set(failed) == {"Held", "Later"}
    assert all(f.code == "RUN_CANCELLED" for f in failed.values())
    assert failed["Held"].attempts == 1  # cancelled during its call
    # Broadcast had Later in flight too; sequential never called it.
    assert failed["Later"].attempts == (1 if model == "broadcast" else 0)
    assert rest[-1].completed == pb.SessionCompleted(turn_count=1, failure_count=2)
    assert server.gate.cancelled == ["Held"]

    await wait_until_runnable_async(admin, name)
    log = await all_messages_async(admin, name)
    assert speakers_of_turn(log, 1) == ["System", "Fast", "System"]
    assert is_cancelled_notice(log[2], turn=1)
    await server.close_channels()
    await assert_no_task_leaked(before)


async def test_cancel_run_after_turn_lets_a_broadcast_finish_its_calls(
    server: LiveServer,
) -> None:
    admin = server.stub()
    name = await create_dialogue(
        admin, [echo("Fast"), gated("Held")], model=broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER)
    )
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text="go"))
    assert (await next_event(call)).HasField("started")
    assert (await next_event(call)).turn_completed.speaker.name == "Fast"
    await server.gate.entered("Held")

    response = await admin.CancelRun(
        pb.CancelRunRequest(dialogue=name, mode=pb.CANCEL_MODE_AFTER_TURN)
    )
    assert response.turn == 1
    # Every call of a broadcast is already in flight: AFTER_TURN lets each one finish.
    server.gate.open("Held")
    rest = await rest_of(call)
    assert kinds(rest) == ["turn_completed", "completed"]
    assert rest[0].turn_completed.content == GateAgent.reply_of("Held")
    assert rest[-1].completed == pb.SessionCompleted(turn_count=2, failure_count=0)
    assert server.gate.cancelled == []

    await wait_until_runnable_async(admin, name)
    log = await all_messages_async(admin, name)
    assert speakers_of_turn(log, 1) == ["System", "Fast", "Held"]
    assert run_end_notices(log) == []


async def test_cancel_run_after_turn_lets_the_current_sequential_call_finish_and_starts_none(
    server: LiveServer,
) -> None:
    before = task_census()
    admin = server.stub()
    name = await create_dialogue(
        admin,
        [gated("Held"), echo("Second"), echo("Third")],
        model=sequential(["Held", "Second", "Third"]),
    )
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text="go"))
    assert (await next_event(call)).HasField("started")
    await server.gate.entered("Held")

    await admin.CancelRun(pb.CancelRunRequest(dialogue=name, mode=pb.CANCEL_MODE_AFTER_TURN))
    # The CancelRun reply comes after the request reached the run; now let Held answer.
    server.gate.open("Held")
    rest = await rest_of(call)
    assert kinds(rest) == ["turn_completed", "turn_failed", "turn_failed", "completed"]
    assert rest[0].turn_completed.speaker.name == "Held"
    failed = failures_by_speaker(rest)
    assert list(failed) == ["Second", "Third"]
    assert all(f.code == "RUN_CANCELLED" and f.attempts == 0 for f in failed.values())
    assert rest[-1].completed == pb.SessionCompleted(turn_count=1, failure_count=2)
    assert server.gate.finished == ["Held"]

    await wait_until_runnable_async(admin, name)
    log = await all_messages_async(admin, name)
    assert speakers_of_turn(log, 1) == ["System", "Held", "System"]
    assert log[1].content == GateAgent.reply_of("Held")
    assert is_cancelled_notice(log[2], turn=1)
    await server.close_channels()
    await assert_no_task_leaked(before)


async def test_cancel_run_immediate_after_after_turn_cuts_the_call_in_flight(
    server: LiveServer,
) -> None:
    """A stop button pressed twice: the second, IMMEDIATE, wins over AFTER_TURN."""
    admin = server.stub()
    name = await create_dialogue(
        admin, [gated("Held"), echo("Second")], model=sequential(["Held", "Second"])
    )
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text="go"))
    assert (await next_event(call)).HasField("started")
    await server.gate.entered("Held")
    for mode in (pb.CANCEL_MODE_AFTER_TURN, pb.CANCEL_MODE_IMMEDIATE):
        await admin.CancelRun(pb.CancelRunRequest(dialogue=name, mode=mode))
    rest = await rest_of(call)
    failed = failures_by_speaker(rest)
    assert [(n, f.code, f.attempts) for n, f in failed.items()] == [
        ("Held", "RUN_CANCELLED", 1),
        ("Second", "RUN_CANCELLED", 0),
    ]
    assert server.gate.cancelled == ["Held"]
    await wait_until_runnable_async(admin, name)


async def test_cancel_run_unspecified_mode_means_immediate(server: LiveServer) -> None:
    admin = server.stub()
    name = await create_dialogue(admin, [gated("Held")])
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text="go"))
    assert (await next_event(call)).HasField("started")
    await server.gate.entered("Held")
    await admin.CancelRun(pb.CancelRunRequest(dialogue=name))
    rest = await rest_of(call)
    assert kinds(rest) == ["turn_failed", "completed"]
    assert rest[0].turn_failed.code == "RUN_CANCELLED"
    assert server.gate.cancelled == ["Held"]


async def test_cancel_run_with_no_run_in_progress_is_not_found(server: LiveServer) -> None:
    admin = server.stub()
    name = await create_dialogue(admin, [echo("Alice")])
    for mode in (pb.CANCEL_MODE_UNSPECIFIED, pb.CANCEL_MODE_IMMEDIATE, pb.CANCEL_MODE_AFTER_TURN):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.CancelRun(pb.CancelRunRequest(dialogue=name, mode=mode))
        assert_failure(failure_of(caught.value), grpc.StatusCode.NOT_FOUND, "NO_RUN_IN_PROGRESS")

    # After a run has ended there is again nothing to cancel.
    await admin.Run(pb.RunSessionRequest(dialogue=name, text="hi"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.CancelRun(pb.CancelRunRequest(dialogue=name))
    assert_failure(failure_of(caught.value), grpc.StatusCode.NOT_FOUND, "NO_RUN_IN_PROGRESS")
    assert run_end_notices(await all_messages_async(admin, name)) == []


async def test_cancel_run_rejects_bad_requests(server: LiveServer) -> None:
    admin = server.stub()
    name = await create_dialogue(admin, [echo("Alice")])
    cases: list[tuple[pb.CancelRunRequest, grpc.StatusCode, str, set[str]]] = [
        (pb.CancelRunRequest(), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"dialogue"}),
        (
            pb.CancelRunRequest(dialogue="dialogues/Not An Id"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            {"dialogue"},
        ),
        (
            pb.CancelRunRequest(dialogue=name, mode=99),  # type: ignore[arg-type]
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            {"mode"},
        ),
        (
            pb.CancelRunRequest(dialogue="dialogues/no-such-dialogue"),
            grpc.StatusCode.NOT_FOUND,
            "DIALOGUE_NOT_FOUND",
            set(),
        ),
    ]
    for request, code, reason, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.CancelRun(request)
        assert_failure(failure_of(caught.value), code, reason, fields)
