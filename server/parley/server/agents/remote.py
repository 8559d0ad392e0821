"""The `grpc` kind: a remote agent implementing parley.v1.AgentService/Execute.

Agents can so be written in any language. A call carries both prompt forms (the system
prompt with the chat conversation, and the single text), the attachments of the new
messages and the resolved options; its deadline is the profile's timeout. UNAVAILABLE,
RESOURCE_EXHAUSTED (with a RetryInfo delay, if the agent sends one) and
DEADLINE_EXCEEDED are retryable; every other status fails the turn at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.redaction import Redactor
from parley.server.agents.upstream import short_reason
from parley.server.engine.conversation import ChatRole, chat_messages
from parley.server.engine.model import Message, Usage
from parley.v1 import agent_pb2, agent_pb2_grpc

_ROLES = {
    ChatRole.SYSTEM: agent_pb2.ChatMessage.ROLE_SYSTEM,
    ChatRole.USER: agent_pb2.ChatMessage.ROLE_USER,
    ChatRole.ASSISTANT: agent_pb2.ChatMessage.ROLE_ASSISTANT,
}
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE: "UPSTREAM_UNAVAILABLE",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMITED",
    grpc.StatusCode.DEADLINE_EXCEEDED: "AGENT_TIMEOUT",
}
# Statuses that say the agent itself broke, rather than that it refused the call.
_BROKEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.CANCELLED,
}
_QUIET = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class RemoteAgent:
    def __init__(
        self,
        target: str,
        *,
        timeout: float,
        defaults: Mapping[str, str],
        redact: Redactor,
        api_key: str = "",
        tls: bool = False,
    ) -> None:
        self._target = target
        self._timeout = timeout
        self._defaults = dict(defaults)
        self._redact = redact
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        self._tls = tls
        # Opened on first use, on the event loop that serves the calls.
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> agent_pb2_grpc.AgentServiceAsyncStub:
        if self._channel is None:
            if self._tls:
                credentials = grpc.ssl_channel_credentials()
                self._channel = grpc.aio.secure_channel(self._target, credentials)
            else:
                self._channel = grpc.aio.insecure_channel(self._target)
        return agent_pb2_grpc.AgentServiceStub(self._channel)

    async def execute(self, call: AgentCall) -> AgentReply:
        request = await self.request_for(call)
        try:
            response = await self._stub().Execute(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            raise self._failure(error) from None
        return AgentReply(response.content, Usage(response.input_tokens, response.output_tokens))

    async def request_for(self, call: AgentCall) -> agent_pb2.ExecuteRequest:
        system, *conversation = chat_messages(call.system, await call.history(), call.delivered)
        return agent_pb2.ExecuteRequest(
            participant=agent_pb2.AgentParticipant(
                name=call.persona.name,
                role=call.persona.role,
                dialogue=f"dialogues/{call.dialogue_id}",
                turn=call.turn,
            ),
            system=system.content,
            messages=[
                agent_pb2.ChatMessage(role=_ROLES[m.role], content=m.content) for m in conversation
            ],
            attachments=_attachments(call.delivered),
            options={**self._defaults, **call.options},
            prompt=call.prompt,
        )

    def _failure(self, error: grpc.aio.AioRpcError) -> AgentFailure:
        code = error.code()
        reason = "" if code in _QUIET else short_reason(error.details() or "", self._redact)
        message = f"the remote agent answered {code.name}" + (f": {reason}" if reason else "")
        if code in _RETRYABLE:
            return AgentFailure(
                _RETRYABLE[code], message, retryable=True, retry_after=_retry_delay(error)
            )
        return AgentFailure("UPSTREAM_ERROR" if code in _BROKEN else "UPSTREAM_REJECTED", message)

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None


def _attachments(delivered: Sequence[Message]) -> list[agent_pb2.AgentAttachment]:
    return [
        agent_pb2.AgentAttachment(name=a.name, mime_type=a.mime_type, data=a.data)
        if a.data is not None
        else agent_pb2.AgentAttachment(name=a.name, mime_type=a.mime_type, uri=a.uri or "")
        for message in delivered
        for a in message.attachments
    ]


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The delay of a google.rpc.RetryInfo in the status details, if the agent sent one."""
    # grpc.aio hands back (key, value) pairs, whatever the stubs say.
    metadata = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    for key, value in metadata:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.ToTimedelta().total_seconds())
    return None
