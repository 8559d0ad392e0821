"""Server interceptors: one SERVER span and one duration measurement per RPC.

Spans come from opentelemetry-instrumentation-grpc's aio interceptor, which continues a
client's W3C `traceparent` (extracted from the call metadata) and sees statuses because
every error leaves a handler through `context.abort`. Health checks are excluded: load
balancers call them every few seconds and a trace of each would drown the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_name
from parley.server.telemetry.runs import INSTRUMENTATION_NAME

HEALTH_SERVICE: Final = "grpc.health.v1.Health"

if TYPE_CHECKING:  # generic only in grpc-stubs
    from typing import TypeAlias

    Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    UnaryBehavior: TypeAlias = Callable[[Any, Context], Awaitable[Any]]
    StreamBehavior: TypeAlias = Callable[[Any, Context], AsyncIterator[Any]]


def server_interceptors(
    tracer_provider: trace.TracerProvider,
    meter_provider: metrics.MeterProvider,
    excluded_services: Collection[str] = (),
) -> list[Interceptor]:
    """The interceptors to put first on a server; the health service is always excluded."""
    excluded = frozenset({HEALTH_SERVICE, *excluded_services})
    traced = negate(any_of(*(service_name(name) for name in sorted(excluded))))
    # The instrumentation is untyped; its factory returns a grpc.aio.ServerInterceptor.
    make_tracing = cast("Callable[..., Interceptor]", aio_server_interceptor)
    tracing = make_tracing(tracer_provider=tracer_provider, filter_=traced)
    meter = meter_provider.get_meter(INSTRUMENTATION_NAME)
    return [tracing, RpcMetricsInterceptor(meter, excluded)]


def _service_and_method(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Records `rpc.server.call.duration` per service, method and status code."""

    def __init__(self, meter: metrics.Meter, excluded_services: Collection[str]) -> None:
        self._excluded = frozenset(excluded_services)
        self._duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Duration of an incoming RPC, until its status is sent.",
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        service, method = _service_and_method(handler_call_details.method)
        if handler is None or service in self._excluded:
            return handler
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        # grpc-stubs type the behaviors for the synchronous server; under grpc.aio they
        # are coroutine functions and async generator functions.
        if handler.response_streaming:
            streaming = self._timed_stream(
                cast("StreamBehavior", handler.unary_stream or handler.stream_stream), attributes
            )
            if handler.request_streaming:
                return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
            return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
        unary = self._timed(
            cast("UnaryBehavior", handler.unary_unary or handler.stream_unary), attributes
        )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)

    def _record(self, started: float, code: grpc.StatusCode, attributes: dict[str, str]) -> None:
        self._duration.record(
            time.perf_counter() - started, {**attributes, "rpc.grpc.status_code": code.value[0]}
        )

    def _timed(self, behavior: UnaryBehavior, attributes: dict[str, str]) -> UnaryBehavior:
        async def timed(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                self._record(started, _final_code(context, error), attributes)

        return timed

    def _timed_stream(self, behavior: StreamBehavior, attributes: dict[str, str]) -> StreamBehavior:
        async def timed(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                self._record(started, _final_code(context, error), attributes)

        return timed


def _final_code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status an RPC ends with, as far as its handler can tell.

    grpc.aio reports a code through `context.code()` only once `abort` or `set_code`
    set it: otherwise a handler that returns is OK, one that raises is UNKNOWN, and one
    the client abandoned is CANCELLED.
    """
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN
