"""Engine errors -> gRPC statuses with google.rpc details.

Every error carries an ErrorInfo (stable `reason`, domain `parley.dev`); invalid input
adds a BadRequest with its field violations and limits add a QuotaFailure. Anything
unexpected becomes INTERNAL with a generic message: exception texts never reach clients.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from parley.server.engine import errors

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "parley.dev"

CODES: dict[type[errors.ParleyError], int] = {
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.AlreadyExists: code_pb2.ALREADY_EXISTS,
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.PermissionDenied: code_pb2.PERMISSION_DENIED,
}


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _code_for(error: errors.ParleyError) -> int:
    for cls in type(error).__mro__:
        if cls in CODES:
            return int(CODES[cls])
    return int(code_pb2.INTERNAL)


def status_for(error: errors.ParleyError) -> status_pb2.Status:
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, errors.InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, errors.ResourceExhausted):
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.subject, description=error.message
                        )
                    ]
                )
            )
        )
    return status_pb2.Status(code=_code_for(error), message=error.message, details=details)


def internal_status() -> status_pb2.Status:
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error",
        details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
    )


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> NoReturn:
    # abort raises, so the RPC (and any tracing interceptor) ends with it.
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
    raise AssertionError("unreachable: abort raises")


async def abort_for(context: grpc.aio.ServicerContext[Any, Any], error: BaseException) -> NoReturn:
    if isinstance(error, errors.ParleyError):
        await abort(context, status_for(error))
    logger.error("unexpected error in an RPC", exc_info=error)
    await abort(context, internal_status())


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Servicer = TypeVar("Servicer")
Context = grpc.aio.ServicerContext[Any, Any]


def unary(
    method: Callable[[Servicer, Req, Context], Awaitable[Resp]],
) -> Callable[[Servicer, Req, Context], Awaitable[Resp]]:
    """Maps every exception a unary handler raises to a proper status, and answers a
    request that does not parse (see `MalformedRequestInterceptor`)."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Req, context: Context) -> Resp:
        await refuse_undecodable(request, context)
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort_for(context, error)

    _CHECKING_REQUESTS.add(wrapper)
    return wrapper


def streaming(
    method: Callable[[Servicer, Req, Context], AsyncGenerator[Resp, None]],
) -> Callable[[Servicer, Req, Context], AsyncGenerator[Resp, None]]:
    """The same for server-streaming handlers, which stay async generators (yield)."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Req, context: Context) -> AsyncGenerator[Resp, None]:
        await refuse_undecodable(request, context)
        try:
            # aclosing: when the client goes away, the handler's own cleanup runs now,
            # not whenever the garbage collector finalises the generator.
            async with contextlib.aclosing(method(self, request, context)) as items:
                async for item in items:
                    yield item
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort_for(context, error)

    _CHECKING_REQUESTS.add(wrapper)
    return wrapper


# --- requests that do not parse ------------------------------------------------------

# Handlers made by `unary` and `streaming`: they answer an undecodable request
# themselves, so the interceptor only swaps their parser and wraps them in nothing (one
# generator less on every streamed event).
_CHECKING_REQUESTS: weakref.WeakSet[Callable[..., object]] = weakref.WeakSet()


def _checks_requests(behaviour: Callable[..., object]) -> bool:
    return getattr(behaviour, "__func__", behaviour) in _CHECKING_REQUESTS


class _Undecodable:
    """Stands for a request whose bytes are not a valid message of the method's type."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


async def refuse_undecodable(request: object, context: Context) -> None:
    """Aborts with INVALID_ARGUMENT (MALFORMED_REQUEST) when the request did not parse:
    what every handler does first once the interceptor has swapped in its parser."""
    if isinstance(request, _Undecodable):
        await abort(context, _malformed(request))


def _malformed(request: _Undecodable) -> status_pb2.Status:
    return status_for(
        errors.InvalidArgument.single(
            "request",
            f"is not a valid {request.type_name} message (bad wire format or invalid UTF-8)",
            reason="MALFORMED_REQUEST",
        )
    )


def _tolerant_deserializer(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    type_name = getattr(descriptor, "full_name", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError, or whatever a custom deserializer raises
            return _Undecodable(type_name)

    return parse


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """INVALID_ARGUMENT (reason MALFORMED_REQUEST) for a request that does not parse.

    Without it grpc.aio answers UNKNOWN with the parser's own exception text before any
    handler runs. Install it last (innermost), so that interceptors which rebuild
    handlers (authentication, tracing) keep its deserializer. Unary-request methods
    only: streamed requests (reflection) are left as they are. Handlers made by `unary`
    and `streaming` refuse such requests themselves and are not wrapped; the others
    (health) are.
    """

    def __init__(self) -> None:
        # Per method: the handler found and the tolerant one made of it. Methods resolve
        # to the same handler every call, so it is rebuilt only if that ever changes.
        self._tolerant: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or (deserialize := handler.request_deserializer) is None:
            return handler
        method = handler_call_details.method
        known = self._tolerant.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        tolerant = _tolerant_handler(handler, deserialize)
        self._tolerant[method] = (handler, tolerant)
        return tolerant


def _tolerant_handler(
    handler: grpc.RpcMethodHandler[Any, Any], deserialize: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler`, with a request that does not parse answered INVALID_ARGUMENT."""
    parse = _tolerant_deserializer(deserialize)
    kwargs: dict[str, Any] = {
        "request_deserializer": parse,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary_behaviour: Any = handler.unary_unary
        if _checks_requests(unary_behaviour):
            return grpc.unary_unary_rpc_method_handler(unary_behaviour, **kwargs)

        async def unary(request: Any, context: Context) -> Any:
            await refuse_undecodable(request, context)
            return await unary_behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream is not None:
        stream_behaviour: Any = handler.unary_stream
        if _checks_requests(stream_behaviour):
            return grpc.unary_stream_rpc_method_handler(stream_behaviour, **kwargs)
        if not inspect.isasyncgenfunction(stream_behaviour):
            # A handler that writes with context.write (health's Watch).

            async def writer(request: Any, context: Context) -> Any:
                await refuse_undecodable(request, context)
                return await stream_behaviour(request, context)

            return grpc.unary_stream_rpc_method_handler(writer, **kwargs)

        async def stream(request: Any, context: Context) -> AsyncGenerator[Any, None]:
            await refuse_undecodable(request, context)
            async with contextlib.aclosing(stream_behaviour(request, context)) as items:
                async for item in items:
                    yield item

        return grpc.unary_stream_rpc_method_handler(stream, **kwargs)
    return handler
