"""A `parley-server` process exports its traces and metrics over OTLP gRPC, configured only
by OTEL_* variables, to a real OTLP receiver this test runs on loopback.

The receiver serves the collector's TraceService and MetricsService (opentelemetry-proto)
and keeps every request; the test waits, boundedly, for the spans of one traced run.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

from tests.e2e.harness import ServerLauncher

pytestmark = pytest.mark.e2e

RPC_TIMEOUT_S = 30.0
# Export batches every 100 ms; this only bounds a broken export.
ARRIVAL_TIMEOUT_S = 30.0
CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"


@dataclass
class Received:
    """What the receiver was sent: resource -> spans, and metric names."""

    spans: list[tuple[dict[str, Any], Span]] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        with self.changed:
            while not condition():
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{what} did not arrive within {ARRIVAL_TIMEOUT_S}s"
                self.changed.wait(remaining)

    def named(self, name: str) -> list[Span]:
        with self.changed:
            return [span for _, span in self.spans if span.name == name]


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def as_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in attributes}


def export_service(
    name: str,
    export: Callable[[Any, grpc.ServicerContext], Message],
    request: type[Message],
) -> grpc.GenericRpcHandler[Any, Any]:
    """A collector service: its one method, Export, handed to `export`."""
    handler = grpc.unary_unary_rpc_method_handler(
        export,
        request_deserializer=request.FromString,
        response_serializer=lambda response: response.SerializeToString(),
    )
    return grpc.method_handlers_generic_handler(name, {"Export": handler})


@pytest.fixture
def receiver() -> Iterator[tuple[int, Received]]:
    """An OTLP/gRPC receiver on a free loopback port."""
    received = Received()

    def export_traces(
        request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with received.changed:
            for resource_spans in request.resource_spans:
                resource = as_dict(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    received.spans.extend((resource, span) for span in scope_spans.spans)
            received.changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def export_metrics(
        request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        with received.changed:
            received.metric_names.update(
                metric.name
                for resource_metrics in request.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
            )
            received.changed.notify_all()
        return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (
            export_service(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                export_traces,
                trace_service_pb2.ExportTraceServiceRequest,
            ),
            export_service(
                "opentelemetry.proto.collector.metrics.v1.MetricsService",
                export_metrics,
                metrics_service_pb2.ExportMetricsServiceRequest,
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, received
    finally:
        server.stop(0).wait(RPC_TIMEOUT_S)


def test_a_traced_run_arrives_at_the_otlp_receiver(
    launcher: ServerLauncher, receiver: tuple[int, Received]
) -> None:
    port, received = receiver
    server = launcher.start(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        # Loopback only: a proxy from the environment must never see the export.
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
    )
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT_S).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        stub = pb_grpc.DialogueServiceStub(channel)
        participants = [
            pb.Participant(
                persona=pb.Persona(name=name, role="reviewer"),
                agent="echo",
                agent_options={"delay_ms": "50"},
            )
            for name in ("Ada", "Brian")
        ]
        stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="traced",
                dialogue=pb.Dialogue(display_name="Traced review", participants=participants),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        metadata = (("traceparent", f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"),)
        events = list(
            stub.RunSession(
                pb.RunSessionRequest(dialogue="traced", text="Review this."),
                metadata=metadata,
                timeout=RPC_TIMEOUT_S,
            )
        )
        assert events[-1].completed.turn_count == 2

    rpc_name = "/parley.v1.DialogueService/RunSession"
    expected = {rpc_name, "invoke_workflow Traced review", "invoke_agent Ada", "invoke_agent Brian"}
    received.wait_until(
        lambda: expected <= {span.name for _, span in received.spans}, "the spans of the run"
    )
    (rpc,) = received.named(rpc_name)
    (run,) = received.named("invoke_workflow Traced review")
    turns = received.named("invoke_agent Ada") + received.named("invoke_agent Brian")

    # The client's trace continues through the RPC, the run and every turn.
    for span in (rpc, run, *turns):
        assert span.trace_id.hex() == CLIENT_TRACE_ID, span.name
    assert rpc.parent_span_id.hex() == CLIENT_SPAN_ID
    assert rpc.kind == Span.SPAN_KIND_SERVER
    assert run.parent_span_id == rpc.span_id
    assert run.kind == Span.SPAN_KIND_INTERNAL
    assert as_dict(run.attributes)["parley.turn_count"] == 2
    for turn in turns:
        assert turn.parent_span_id == run.span_id
        assert as_dict(turn.attributes)["gen_ai.operation.name"] == "invoke_agent"
    # Broadcast: the two turns overlap.
    assert max(t.start_time_unix_nano for t in turns) < min(t.end_time_unix_nano for t in turns)
    with received.changed:
        resources = [resource for resource, _ in received.spans]
        names = [span.name for _, span in received.spans]
    assert {resource["service.name"] for resource in resources} == {"parley"}
    assert not [name for name in names if "grpc.health" in name]

    received.wait_until(
        lambda: (
            {"gen_ai.client.operation.duration", "rpc.server.call.duration"}
            <= received.metric_names
        ),
        "the metrics",
    )

    server.signal(signal.SIGTERM)
    assert server.wait() == 0
