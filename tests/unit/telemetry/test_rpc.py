"""RPC spans and metrics on a real in-process grpc.aio server: RPC -> run -> turn parentage,
a client's traceparent continued, health checks untraced, statuses from context.abort."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from parley.server.api.server import ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.server.telemetry import Telemetry
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from .conftest import GatedAgent, Recorded, attributes, labels

TOKEN = "s3cret-token-value"
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
# Spans end on the server after the client has its answer: wait for them, boundedly.
SPAN_WAIT_S = 5.0


@pytest.fixture
def settings() -> Settings:
    return Settings(address="127.0.0.1:0")


@pytest.fixture
async def channel(
    engine: Engine, settings: Settings, telemetry: Telemetry
) -> AsyncIterator[grpc.aio.Channel]:
    server = ParleyServer(engine, settings, telemetry=telemetry)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]
        ) as channel:
            yield channel
    finally:
        await server.stop(0)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> dialogue_pb2_grpc.DialogueServiceAsyncStub:
    return dialogue_pb2_grpc.DialogueServiceStub(channel)


def rpc_spans(recorded: Recorded, method: str) -> list[ReadableSpan]:
    return [s for s in recorded.finished() if s.name == f"/parley.v1.DialogueService/{method}"]


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SPAN_WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the spans did not arrive in time"
        await asyncio.sleep(0.01)


async def create(stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, dialogue_id: str) -> None:
    participants = [
        pb.Participant(persona=pb.Persona(name=name, role="critic"), agent="echo")
        for name in ("A", "B")
    ]
    await stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue_id=dialogue_id,
            dialogue=pb.Dialogue(display_name="Traced", participants=participants),
        )
    )


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def parent_of(span: ReadableSpan) -> int | None:
    return int(span.parent.span_id) if span.parent is not None else None


async def test_streaming_run_nests_rpc_run_and_turns(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
) -> None:
    await create(stub, "d")
    events = [e async for e in stub.RunSession(pb.RunSessionRequest(dialogue="d", text="hi"))]
    assert events[-1].HasField("completed")
    await wait_for(lambda: bool(rpc_spans(recorded, "RunSession")))

    (rpc,) = rpc_spans(recorded, "RunSession")
    assert rpc.kind is SpanKind.SERVER
    assert attributes(rpc)["rpc.system"] == "grpc"
    assert attributes(rpc)["rpc.service"] == "parley.v1.DialogueService"
    assert attributes(rpc)["rpc.method"] == "RunSession"
    assert attributes(rpc)["rpc.grpc.status_code"] == 0
    run = recorded.run_span()
    assert run.name == "invoke_workflow Traced"
    assert parent_of(run) == span_id(rpc)
    turns = recorded.turn_spans()
    assert sorted(turns) == ["A", "B"]
    assert {parent_of(t) for t in turns.values()} == {span_id(run)}
    # The run (and its turns) happen inside the RPC.
    assert (rpc.start_time or 0) <= (run.start_time or 0)
    assert (run.end_time or 0) <= (rpc.end_time or 0)
    trace_ids = {s.context.trace_id for s in (rpc, run, *turns.values()) if s.context}
    assert len(trace_ids) == 1


async def test_unary_run_nests_the_run_under_the_rpc(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
) -> None:
    await create(stub, "d")
    response = await stub.Run(pb.RunSessionRequest(dialogue="d", text="hi"))
    assert len(response.turns) == 2
    await wait_for(lambda: bool(rpc_spans(recorded, "Run")))
    (rpc,) = rpc_spans(recorded, "Run")
    assert parent_of(recorded.run_span()) == span_id(rpc)


async def test_client_traceparent_is_the_trace_of_every_span(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
) -> None:
    await create(stub, "d")
    recorded.spans.clear()
    metadata = (("traceparent", f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"),)
    call = stub.RunSession(pb.RunSessionRequest(dialogue="d", text="hi"), metadata=metadata)
    assert [e async for e in call]
    await wait_for(lambda: bool(rpc_spans(recorded, "RunSession")))

    spans = recorded.finished()
    assert {s.name for s in spans} == {
        "/parley.v1.DialogueService/RunSession",
        "invoke_workflow Traced",
        "invoke_agent A",
        "invoke_agent B",
    }
    assert {f"{s.context.trace_id:032x}" for s in spans if s.context} == {CLIENT_TRACE_ID}
    (rpc,) = rpc_spans(recorded, "RunSession")
    assert rpc.parent is not None
    assert rpc.parent.is_remote
    assert f"{rpc.parent.span_id:016x}" == CLIENT_SPAN_ID


async def test_health_checks_produce_no_spans_or_rpc_metrics(
    channel: grpc.aio.Channel,
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub,
    recorded: Recorded,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "parley.v1.DialogueService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await anext(aiter(watch))).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    # A traced call after them: once its span is in, theirs would have been too.
    await stub.ListDialogues(pb.ListDialoguesRequest())
    await wait_for(lambda: bool(rpc_spans(recorded, "ListDialogues")))

    assert [s.name for s in recorded.finished()] == ["/parley.v1.DialogueService/ListDialogues"]
    services = {labels(p)["rpc.service"] for p in recorded.histogram("rpc.server.call.duration")}
    assert services == {"parley.v1.DialogueService"}


async def test_errors_raised_through_abort_set_the_rpc_status(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetDialogue(pb.GetDialogueRequest(name="dialogues/missing"))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    await wait_for(lambda: bool(rpc_spans(recorded, "GetDialogue")))

    (rpc,) = rpc_spans(recorded, "GetDialogue")
    assert attributes(rpc)["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    # A client's mistake is not the server's error (OpenTelemetry RPC conventions).
    assert rpc.status.status_code is StatusCode.UNSET
    (point,) = [
        p
        for p in recorded.histogram("rpc.server.call.duration")
        if labels(p)["rpc.method"] == "GetDialogue"
    ]
    assert labels(point)["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert point.count == 1


async def test_rpc_duration_is_recorded_per_method_and_code(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
) -> None:
    await create(stub, "d")
    assert [e async for e in stub.RunSession(pb.RunSessionRequest(dialogue="d", text="hi"))]
    await wait_for(
        lambda: any(
            labels(p)["rpc.method"] == "RunSession"
            for p in recorded.histogram("rpc.server.call.duration")
        )
    )
    points = {
        (labels(p)["rpc.method"], labels(p)["rpc.grpc.status_code"]): p.count
        for p in recorded.histogram("rpc.server.call.duration")
    }
    assert points == {("CreateDialogue", 0): 1, ("RunSession", 0): 1}


class TestWithAuth:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(address="127.0.0.1:0", auth_tokens=(TOKEN,))

    @pytest.fixture
    def capture_content(self) -> bool:
        return True

    async def test_rejected_calls_are_traced_with_their_status(
        self, stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListDialogues(pb.ListDialoguesRequest())
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        await wait_for(lambda: bool(rpc_spans(recorded, "ListDialogues")))
        (rpc,) = rpc_spans(recorded, "ListDialogues")
        assert attributes(rpc)["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]

    async def test_the_bearer_token_never_reaches_a_span(
        self, stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, recorded: Recorded
    ) -> None:
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        participants = [pb.Participant(persona=pb.Persona(name="A"), agent="echo")]
        await stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="d", dialogue=pb.Dialogue(participants=participants)
            ),
            metadata=metadata,
        )
        request = pb.RunSessionRequest(dialogue="d", text="hi")
        assert [e async for e in stub.RunSession(request, metadata=metadata)]
        await wait_for(lambda: bool(rpc_spans(recorded, "RunSession")))
        assert recorded.turn_spans()
        for span in recorded.finished():
            assert TOKEN not in span.to_json()


async def test_client_going_away_ends_rpc_run_and_turn_spans(
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub,
    recorded: Recorded,
    gated: GatedAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    participants = [pb.Participant(persona=pb.Persona(name="G"), agent="gated")]
    await stub.CreateDialogue(
        pb.CreateDialogueRequest(dialogue_id="d", dialogue=pb.Dialogue(participants=participants))
    )
    call = stub.RunSession(pb.RunSessionRequest(dialogue="d", text="hi"))
    first = await anext(aiter(call))
    assert first.HasField("started")
    await asyncio.wait_for(gated.started.wait(), SPAN_WAIT_S)
    call.cancel()
    await wait_for(lambda: bool(rpc_spans(recorded, "RunSession")))

    run = recorded.run_span()
    assert attributes(run)["parley.cancelled"] is True
    assert attributes(recorded.turn_spans()["G"])["error.type"] == "RUN_CANCELLED"
    (rpc,) = rpc_spans(recorded, "RunSession")
    assert parent_of(run) == span_id(rpc)
    # Leaving a span's context from the wrong task would be logged by the API.
    assert "Failed to detach context" not in caplog.text
