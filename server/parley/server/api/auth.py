"""Optional bearer-token authentication and per-token authorization.

When tokens are configured every RPC needs `authorization: Bearer <token>`; health and
reflection stay public unless configured otherwise (load balancers and tools call them
anonymously). A token may be limited to dialogues whose id starts with a prefix, and may
be read-only. Tokens are compared in constant time; what a token may do travels with
the RPC in a context variable that the servicer consults before touching any dialogue,
so a denied client never learns whether a dialogue exists.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status
from parley.server.api.errors import status_for
from parley.server.config import ConfigError, Settings
from parley.server.engine.errors import ParleyError, PermissionDenied, Unauthenticated

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."

# RPCs a read-only token may call.
READ_ONLY_METHODS = frozenset(
    f"/parley.v1.DialogueService/{name}"
    for name in (
        "GetDialogue",
        "ListDialogues",
        "ListMessages",
        "ExportHistory",
        "WatchDialogue",
        "ListAgentProfiles",
    )
)


@dataclass(frozen=True, slots=True)
class Grant:
    """What one token allows. `client` names the holder in logs and per-client limits
    without revealing the token."""

    client: str
    dialogue_prefix: str = ""
    read_only: bool = False

    def allows_dialogue(self, dialogue_id: str) -> bool:
        return dialogue_id.startswith(self.dialogue_prefix)


# No grant: authentication is off, everything is allowed.
FULL_ACCESS = Grant(client="anonymous")
current_grant: contextvars.ContextVar[Grant] = contextvars.ContextVar(
    "parley_grant", default=FULL_ACCESS
)


def check_dialogue_allowed(dialogue_id: str) -> None:
    """PERMISSION_DENIED for dialogues outside the caller's prefix, before any lookup."""
    if not current_grant.get().allows_dialogue(dialogue_id):
        raise PermissionDenied(
            "this token may not use that dialogue", reason="DIALOGUE_NOT_ALLOWED"
        )


def client_id(token: str) -> str:
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Credential:
    token: bytes
    grant: Grant


def parse_tokens_file(text: str, source: str) -> list[Credential]:
    """Lines of `TOKEN [prefix=PREFIX] [read-only]`; `#` starts a comment."""
    credentials = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        token, *flags = line.split()
        prefix, read_only = "", False
        for flag in flags:
            if flag.startswith("prefix="):
                prefix = flag.removeprefix("prefix=")
            elif flag == "read-only":
                read_only = True
            else:
                raise ValueError(f"{source}:{number}: unknown flag {flag!r}")
        credentials.append(Credential(token.encode(), Grant(client_id(token), prefix, read_only)))
    return credentials


def load_credentials(tokens: Iterable[str], tokens_file: str) -> list[Credential]:
    credentials = [Credential(t.encode(), Grant(client_id(t))) for t in tokens]
    if tokens_file:
        path = Path(tokens_file)
        credentials.extend(parse_tokens_file(path.read_text(encoding="utf-8"), str(path)))
    return credentials


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        credentials: Sequence[Credential],
        *,
        public_health: bool = True,
        public_reflection: bool = True,
    ) -> None:
        self._credentials = list(credentials)
        self._public = tuple(
            prefix
            for prefix, public in (
                (HEALTH_PREFIX, public_health),
                (REFLECTION_PREFIX, public_reflection),
            )
            if public
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BearerTokenInterceptor:
        try:
            credentials = load_credentials(settings.auth_tokens, settings.auth_tokens_file)
        except (OSError, ValueError) as error:
            raise ConfigError(f"auth tokens: {error}") from None
        if not credentials:
            raise ConfigError("auth is on but no token is configured")
        return cls(
            credentials,
            public_health=settings.public_health,
            public_reflection=settings.public_reflection,
        )

    def _grant_for(self, metadata: Sequence[tuple[str, str | bytes]]) -> Grant | None:
        presented = next((v for k, v in metadata if k == "authorization"), None)
        if not isinstance(presented, str) or not presented.startswith("Bearer "):
            return None
        candidate = presented.removeprefix("Bearer ").strip().encode()
        found = None
        # Compare against every token so timing does not reveal which one came close.
        for credential in self._credentials:
            if hmac.compare_digest(candidate, credential.token):
                found = credential.grant
        return found

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self._public):
            return handler
        grant = self._grant_for(tuple(handler_call_details.invocation_metadata or ()))
        if grant is None:
            return _refusing(
                handler,
                Unauthenticated("a valid 'authorization: Bearer <token>' header is required"),
            )
        if grant.read_only and method not in READ_ONLY_METHODS:
            return _refusing(
                handler, PermissionDenied("this token is read-only", reason="READ_ONLY_TOKEN")
            )
        return _with_grant(handler, grant)


def _handler_kwargs(handler: grpc.RpcMethodHandler[Any, Any]) -> dict[str, Any]:
    return {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }


def _with_grant(
    handler: grpc.RpcMethodHandler[Any, Any], grant: Grant
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, run with `grant` as the current grant."""
    if handler.unary_unary:
        behaviour = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            current_grant.set(grant)
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **_handler_kwargs(handler))
    if handler.unary_stream:
        stream_behaviour: Any = handler.unary_stream

        async def stream(request: Any, context: Any) -> Any:
            current_grant.set(grant)
            async for item in stream_behaviour(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, **_handler_kwargs(handler))
    return handler  # Parley has no client-streaming RPCs


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], error: ParleyError
) -> grpc.RpcMethodHandler[Any, Any]:
    status = rpc_status.to_status(status_for(error))

    async def refuse(request: Any, context: Any) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def refuse_stream(request: Any, context: Any) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)
        yield  # pragma: no cover - makes this an async generator, as grpc expects

    if handler.unary_stream or handler.stream_stream:
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(refuse_stream, **_handler_kwargs(handler))
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **_handler_kwargs(handler))
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **_handler_kwargs(handler))
    return grpc.unary_unary_rpc_method_handler(refuse, **_handler_kwargs(handler))
