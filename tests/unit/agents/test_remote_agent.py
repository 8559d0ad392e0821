"""The grpc kind against the example agent and against agents that fail on purpose."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from parley.server.agents.profiles import build_registry
from parley.server.agents.protocol import AgentFailure
from parley.server.agents.redaction import Redactor
from parley.server.agents.remote import RemoteAgent
from parley.server.agents.retry import RetryingAgent, RetryPolicy
from parley.server.engine.conversation import ChatMessage, ChatRole
from parley.server.engine.model import Attachment, Persona, Usage
from parley.v1 import agent_pb2, agent_pb2_grpc

from examples.agent.echo_upper import start

from .conftest import Closing
from .support import PROMPT, SYSTEM, RecordedSleep, closed_port, make_call, said

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "agent" / "echo_upper.py"
KEY = "remote-agent-key-0123456789"

Handler = Callable[
    [agent_pb2.ExecuteRequest, grpc.aio.ServicerContext[object, object]],
    Awaitable[agent_pb2.ExecuteResponse],
]


class Scripted(agent_pb2_grpc.AgentServiceServicer):
    """An agent whose behaviour is the test's handler; it records what it received."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[agent_pb2.ExecuteRequest] = []
        self.metadata: list[dict[str, str | bytes]] = []

    async def Execute(  # noqa: N802 - the RPC's name in the contract
        self, request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata() or ()))
        return await self.handler(request, context)


async def serve(servicer: agent_pb2_grpc.AgentServiceServicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def example() -> AsyncIterator[str]:
    server, port = await start("127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    await server.stop(None)


def remote(closing: Closing, target: str, *, timeout: float = 30.0, **kwargs: str) -> RemoteAgent:
    return closing(
        RemoteAgent(target, timeout=timeout, defaults=kwargs, redact=Redactor([KEY]), api_key=KEY)
    )


async def test_the_example_agent_answers_the_new_messages_in_capitals(
    example: str, closing: Closing
) -> None:
    reply = await remote(closing, example).execute(make_call())

    assert reply.content == "Ada: [BOB]: WHAT SHOULD WE BUILD?"
    assert reply.usage == Usage(input_tokens=len(PROMPT.split()), output_tokens=6)


async def test_options_reach_the_remote_agent(example: str, closing: Closing) -> None:
    agent = remote(closing, example, max_tokens="100")

    reply = await agent.execute(make_call(options={"max_tokens": "3"}))

    assert reply.content == "Ada: [BOB]: WHAT"


async def test_the_request_carries_both_prompt_forms_attachments_and_the_key(
    closing: Closing,
) -> None:
    async def answer(
        request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        return agent_pb2.ExecuteResponse(content="ok", input_tokens=5, output_tokens=1)

    agent_service = Scripted(answer)
    server, target = await serve(agent_service)
    history = [ChatMessage(ChatRole.USER, "[Bob]: hi"), ChatMessage(ChatRole.ASSISTANT, "hello")]
    files = [
        Attachment("a.txt", "text/plain", data=b"abc"),
        Attachment("b.png", "image/png", uri="https://example.invalid/b.png"),
    ]
    call = make_call(
        history=history,
        delivered=[said(5, "Bob", "look", files)],
        persona=Persona("Ada", "engineer"),
        options={"temperature": "0.5"},
    )
    try:
        reply = await remote(closing, target, model="m1", temperature="0.1").execute(call)
    finally:
        await server.stop(None)

    assert (reply.content, reply.usage) == ("ok", Usage(5, 1))
    [request] = agent_service.requests
    assert request.participant == agent_pb2.AgentParticipant(
        name="Ada", role="engineer", dialogue="dialogues/d1", turn=3
    )
    assert request.system == SYSTEM
    assert [(m.role, m.content) for m in request.messages] == [
        (agent_pb2.ChatMessage.ROLE_USER, "[Bob]: hi"),
        (agent_pb2.ChatMessage.ROLE_ASSISTANT, "hello"),
        (agent_pb2.ChatMessage.ROLE_USER, "[Bob]: look"),
    ]
    assert [(a.name, a.data, a.uri) for a in request.attachments] == [
        ("a.txt", b"abc", ""),
        ("b.png", b"", "https://example.invalid/b.png"),
    ]
    assert dict(request.options) == {"model": "m1", "temperature": "0.5"}
    assert request.prompt == PROMPT
    assert agent_service.metadata[0]["authorization"] == f"Bearer {KEY}"


async def test_unavailable_agents_are_retried(closing: Closing) -> None:
    server, port = await start("127.0.0.1", 0, fail_first=2)
    sleep = RecordedSleep()
    agent = RetryingAgent(
        remote(closing, f"127.0.0.1:{port}"),
        timeout=30.0,
        policy=RetryPolicy(attempts=3, backoff=0.5),
        sleep=sleep,
    )
    try:
        reply = await agent.execute(make_call())
    finally:
        await server.stop(None)

    assert reply.content.startswith("Ada: ")
    assert len(sleep.waits) == 2


async def test_resource_exhausted_is_retryable_with_the_agents_retry_delay(
    closing: Closing,
) -> None:
    async def busy(
        request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3))
        status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="quota")
        status.details.add().Pack(info)
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, rich.trailing_metadata)

    server, target = await serve(Scripted(busy))
    try:
        with pytest.raises(AgentFailure) as failed:
            await remote(closing, target).execute(make_call())
    finally:
        await server.stop(None)

    failure = failed.value
    assert (failure.code, failure.retryable, failure.retry_after) == ("RATE_LIMITED", True, 3.0)
    assert failure.message == "the remote agent answered RESOURCE_EXHAUSTED: quota"


async def test_a_refused_call_fails_at_once_with_the_reason_redacted(closing: Closing) -> None:
    async def refuse(
        request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no persona; key was {KEY}")

    server, target = await serve(Scripted(refuse))
    try:
        with pytest.raises(AgentFailure) as failed:
            await remote(closing, target).execute(make_call())
    finally:
        await server.stop(None)

    failure = failed.value
    assert (failure.code, failure.retryable) == ("UPSTREAM_REJECTED", False)
    assert failure.message == (
        "the remote agent answered INVALID_ARGUMENT: no persona; key was [redacted]"
    )


async def test_the_deadline_is_the_profile_timeout(closing: Closing) -> None:
    never = asyncio.Event()

    async def stall(
        request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        await never.wait()
        return agent_pb2.ExecuteResponse()

    server, target = await serve(Scripted(stall))
    try:
        with pytest.raises(AgentFailure) as failed:
            await remote(closing, target, timeout=0.3).execute(make_call())
    finally:
        never.set()
        await server.stop(None)

    assert (failed.value.code, failed.value.retryable) == ("AGENT_TIMEOUT", True)


async def test_an_unreachable_agent_is_retryable(closing: Closing) -> None:
    agent = remote(closing, f"127.0.0.1:{closed_port()}")

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    assert (failed.value.code, failed.value.retryable) == ("UPSTREAM_UNAVAILABLE", True)


async def test_a_grpc_profile_calls_the_example_agent(example: str, closing: Closing) -> None:
    tables = {"upper": {"kind": "grpc", "target": example, "defaults": {"max_tokens": 2}}}
    registry = closing(build_registry(tables, {}))

    reply = await registry.agent("upper").execute(make_call())

    assert reply.content == "Ada: [BOB]:"


async def test_the_example_runs_as_a_program_and_prints_its_port(closing: Closing) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        address = line.decode().removeprefix("listening on ").strip()

        reply = await remote(closing, address).execute(make_call())

        assert reply.content == "Ada: [BOB]: WHAT SHOULD WE BUILD?"
    finally:
        process.terminate()
        returncode = await asyncio.wait_for(process.wait(), timeout=60)
    assert returncode == 0
