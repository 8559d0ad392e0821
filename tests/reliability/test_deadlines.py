"""Deadlines: the client's deadline bounds the run; the server bounds every run too.

Slow participants are echo agents with a delay far beyond any deadline here, so which
call misses its deadline never depends on the machine's speed; the deadlines are a few
seconds long so that the fast calls before them always make it, even on a loaded box.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from parley.server.engine.validation import Limits
from parley.v1 import dialogue_pb2 as pb

from tests.api.support import (
    all_messages_async,
    echo_reply,
    kinds,
    sequential,
    wait_until_runnable_async,
)

from .support import (
    WAIT_S,
    LiveServer,
    assert_no_task_leaked,
    create_dialogue,
    echo,
    is_cancelled_notice,
    live_server,
    task_census,
)

FOREVER_MS = 3_600_000
CLIENT_DEADLINE_S = 2.0
MAX_RUN_SECONDS = 2


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server() as live:
        yield live


async def run_with_deadline(
    server: LiveServer, rpc: str, request: pb.RunSessionRequest, deadline_s: float
) -> tuple[grpc.StatusCode, list[pb.SessionEvent | pb.RunResponse]]:
    """The status the client saw and what it received before it."""
    runner = server.stub()
    received: list[pb.SessionEvent | pb.RunResponse] = []
    try:
        if rpc == "RunSession":
            async for event in runner.RunSession(request, timeout=deadline_s):
                received.append(event)
        else:
            received.append(await runner.Run(request, timeout=deadline_s))
    except grpc.aio.AioRpcError as error:
        return error.code(), received
    return grpc.StatusCode.OK, received


def failure_codes(received: list[pb.SessionEvent | pb.RunResponse]) -> dict[str, str]:
    codes: dict[str, str] = {}
    for item in received:
        failures = [item.turn_failed] if isinstance(item, pb.SessionEvent) else list(item.failures)
        codes.update((f.speaker.name, f.code) for f in failures if f.code)
    return codes


@pytest.mark.parametrize("rpc", ["RunSession", "Run"])
async def test_the_client_deadline_ends_a_run_whose_participant_is_too_slow(
    server: LiveServer, rpc: str
) -> None:
    before = task_census()
    admin = server.stub()
    name = await create_dialogue(
        admin,
        [echo("Fast"), echo("Slow", delay_ms=FOREVER_MS), echo("Never")],
        model=sequential(["Fast", "Slow", "Never"]),
    )
    request = pb.RunSessionRequest(dialogue=name, text="hurry")
    code, received = await run_with_deadline(server, rpc, request, CLIENT_DEADLINE_S)

    # The server bounds Slow's call by the client's deadline, so either the client's
    # deadline passes first (DEADLINE_EXCEEDED) or, a few milliseconds earlier, the
    # server's own measure of it does and the run ends with RUN_DEADLINE_EXCEEDED
    # failures. Both are correct; an hour-long wait for Slow is not.
    assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK)
    if code == grpc.StatusCode.OK:
        assert failure_codes(received) == {
            "Slow": "RUN_DEADLINE_EXCEEDED",
            "Never": "RUN_DEADLINE_EXCEEDED",
        }
    if rpc == "RunSession":
        assert kinds(e for e in received if isinstance(e, pb.SessionEvent))[:2] == [
            "started",
            "turn_completed",
        ]

    # The run let go of the dialogue, and what finished before the deadline is kept.
    await wait_until_runnable_async(admin, name)
    log = await all_messages_async(admin, name)
    turn_one = [m for m in log if m.turn == 1]
    assert [m.content for m in turn_one[:2]] == [
        "hurry",
        echo_reply("Fast", ("System", "hurry")),
    ]
    # If the client went first the turn is marked cancelled; otherwise the run ended on
    # its own terms and there is nothing more to record.
    assert len(turn_one) in (2, 3)
    if len(turn_one) == 3:
        assert is_cancelled_notice(turn_one[2], turn=1)
    assert not any(m.speaker.name in ("Slow", "Never") for m in log)
    await server.close_channels()
    await assert_no_task_leaked(before)


async def test_the_server_side_maximum_run_time_fails_late_calls_but_completes_the_stream() -> None:
    async with live_server(limits=Limits(max_run_seconds=MAX_RUN_SECONDS)) as server:
        admin = server.stub()
        name = await create_dialogue(
            admin,
            [echo("Fast"), echo("Slow", delay_ms=FOREVER_MS), echo("Late")],
            model=sequential(["Fast", "Slow", "Late"]),
        )
        # The client sets no deadline (and, to be sure, one far beyond the server's).
        events = [
            event
            async for event in server.stub().RunSession(
                pb.RunSessionRequest(dialogue=name, text="go"), timeout=WAIT_S
            )
        ]
        assert kinds(events) == [
            "started",
            "turn_completed",
            "turn_failed",
            "turn_failed",
            "completed",
        ]
        assert events[1].turn_completed.speaker.name == "Fast"
        slow, late = events[2].turn_failed, events[3].turn_failed
        assert (slow.speaker.name, slow.code) == ("Slow", "RUN_DEADLINE_EXCEEDED")
        assert "during this call" in slow.message
        assert (late.speaker.name, late.code) == ("Late", "RUN_DEADLINE_EXCEEDED")
        assert "before this call" in late.message
        assert events[-1].completed == pb.SessionCompleted(turn_count=1, failure_count=2)

        # Failed calls leave nothing in the log; the run ended on its own terms.
        log = await all_messages_async(admin, name)
        assert [m.speaker.name for m in log] == ["System", "Fast"]
        await wait_until_runnable_async(admin, name)


async def test_a_client_deadline_shorter_than_the_server_maximum_wins(server: LiveServer) -> None:
    """Each agent call gets min(profile timeout, time left): the call in flight when the
    client's deadline comes is cut, on the server, at that deadline."""
    admin = server.stub()
    name = await create_dialogue(admin, [echo("Slow", delay_ms=FOREVER_MS)])
    request = pb.RunSessionRequest(dialogue=name, text="x")
    code, received = await run_with_deadline(server, "Run", request, 1.0)
    assert code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.OK)
    if code == grpc.StatusCode.OK:
        assert failure_codes(received) == {"Slow": "RUN_DEADLINE_EXCEEDED"}
    # Runnable again long before the echo's hour-long delay would have ended.
    await wait_until_runnable_async(admin, name)
    assert server.engine._running == {}
