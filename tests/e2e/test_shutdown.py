"""SIGTERM drains: a stream in flight completes, health turns NOT_SERVING, new RPCs are
refused, and the process exits 0.

Nothing here waits on the clock for correctness. The test sends SIGTERM only once the
run has visibly started, and keeps a health Watch open across the drain: the server
cannot finish stopping while that call is in flight, so "still draining" is a fact the
test controls, not a race it hopes to win.
"""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

from tests.e2e.harness import ServerLauncher, ServerProcess

pytestmark = pytest.mark.e2e

SERVICE = "parley.v1.DialogueService"
RPC_TIMEOUT_S = 30.0
STREAM_TIMEOUT_S = 120.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def participant(name: str, delay_ms: int) -> pb.Participant:
    return pb.Participant(
        persona=pb.Persona(name=name), agent="echo", agent_options={"delay_ms": str(delay_ms)}
    )


def first_refusal(server: ServerProcess, deadline_s: float = 60.0) -> grpc.StatusCode:
    """The status of the first new RPC the draining server turns away.

    SIGTERM reports NOT_SERVING a moment before the server stops taking calls, so a
    call or two may still be served in between: poll, bounded, until one is refused.
    """
    deadline = time.monotonic() + deadline_s
    with server.channel() as channel:
        stub = pb_grpc.DialogueServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.ListDialogues(pb.ListDialoguesRequest(), timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                return code
            time.sleep(0.05)
    pytest.fail(f"new RPCs were still served {deadline_s}s after SIGTERM")


def test_sigterm_lets_an_in_flight_stream_finish(launcher: ServerLauncher) -> None:
    # A long grace period: the drain must end because the calls ended, not by timeout.
    server = launcher.start(PARLEY_GRACE_PERIOD="120")
    with server.channel() as channel:
        stub = pb_grpc.DialogueServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="drain",
                dialogue=pb.Dialogue(
                    participants=[
                        participant("Quick", 0),
                        participant("Slow", 1000),
                        participant("Slower", 1500),
                    ]
                ),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=120)
        assert next(watch).status == SERVING

        stream = stub.RunSession(
            pb.RunSessionRequest(dialogue="dialogues/drain", text="before the signal"),
            timeout=STREAM_TIMEOUT_S,
        )
        # grpc-stubs types the call as iterable only; the call object is its own iterator.
        incoming = iter(stream)
        events = [next(incoming)]
        assert events[0].WhichOneof("event") == "started"
        server.signal(signal.SIGTERM)

        assert next(watch).status == NOT_SERVING
        assert first_refusal(server) == grpc.StatusCode.UNAVAILABLE

        events.extend(incoming)
        assert stream.code() == grpc.StatusCode.OK
        kinds = [event.WhichOneof("event") for event in events]
        assert kinds == ["started"] + ["turn_completed"] * 3 + ["completed"]
        assert [event.sequence for event in events] == [1, 2, 3, 4, 5]
        turns = {e.turn_completed.speaker.name: e.turn_completed for e in events[1:4]}
        for name in ("Quick", "Slow", "Slower"):
            assert turns[name].content == f"{name}:\n[System]: before the signal"
        assert events[-1].completed.turn_count == 3
        assert events[-1].completed.failure_count == 0

        # The open Watch still holds the drain: the server is alive until it ends.
        assert server.process.poll() is None
        watch.cancel()

    assert server.wait() == 0, server.output.text
    assert "shutting down" in server.output.text


def test_sigterm_on_an_idle_server_exits_zero(parley_server: ServerProcess) -> None:
    parley_server.signal(signal.SIGTERM)
    assert parley_server.wait() == 0, parley_server.output.text
