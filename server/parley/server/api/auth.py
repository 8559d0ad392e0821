"""Optional bearer-token authentication as a server interceptor.

When tokens are configured every RPC needs `authorization: Bearer <token>`, except the
health and reflection services, which load balancers and tools call anonymously.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from parley.server.api.errors import ERROR_DOMAIN

PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _unauthenticated() -> grpc.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="UNAUTHENTICATED", domain=ERROR_DOMAIN))
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.UNAUTHENTICATED,
            message="a valid 'authorization: Bearer <token>' header is required",
            details=[info],
        )
    )


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    def _authorized(self, metadata: Sequence[tuple[str, str | bytes]]) -> bool:
        presented = next((v for k, v in metadata if k == "authorization"), None)
        if not isinstance(presented, str) or not presented.startswith("Bearer "):
            return False
        candidate = presented.removeprefix("Bearer ").strip().encode()
        # Compare against every token so timing does not reveal which one came close.
        matches = [hmac.compare_digest(candidate, token) for token in self._tokens]
        return any(matches)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        if self._authorized(tuple(handler_call_details.invocation_metadata or ())):
            return handler
        return _denying(handler)


def _denying(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    status = _unauthenticated()

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def deny_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)
        yield  # pragma: no cover - makes this an async generator, as grpc expects

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
