"""A real Parley server with an openai profile pointed at the fake endpoint.

The server (grpc.aio, memory store) and the fake run on the test's event loop; the
client talks to the server over loopback gRPC like any other client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from parley.server.agents.profiles import build_registry
from parley.server.api.server import ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.server.store import MemoryStore
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from .support import FakeAPI, openai_completion

KEY = "sk-e2e-0123456789abcdef"


@dataclass
class Running:
    stub: dialogue_pb2_grpc.DialogueServiceAsyncStub
    api: FakeAPI


@pytest.fixture
async def running(openai_api: FakeAPI) -> AsyncIterator[Running]:
    tables: dict[str, dict[str, Any]] = {
        "gpt": {
            "kind": "openai",
            "model": "test-model",
            "base_url": f"{openai_api.base_url}/v1",
            "api_key_env": "PARLEY_E2E_KEY",
            "defaults": {"max_tokens": 256},
        },
        "claude": {"kind": "anthropic", "model": "claude-test", "api_key_env": "PARLEY_E2E_NONE"},
    }
    registry = build_registry(tables, {"PARLEY_E2E_KEY": KEY})
    store = MemoryStore()
    await store.open()
    engine = Engine(store, registry)
    await engine.start()
    server = ParleyServer(engine, Settings(address="127.0.0.1:0"))
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Running(dialogue_pb2_grpc.DialogueServiceStub(channel), openai_api)
    finally:
        await server.stop(0)
        await engine.close()
        await registry.aclose()
        await store.close()


def participant(name: str, **options: str) -> pb.Participant:
    return pb.Participant(
        persona=pb.Persona(name=name, role="analyst"), agent="gpt", agent_options=options
    )


async def run(stub: dialogue_pb2_grpc.DialogueServiceAsyncStub, text: str) -> list[pb.SessionEvent]:
    request = pb.RunSessionRequest(dialogue="dialogues/e2e", text=text)
    return [event async for event in stub.RunSession(request)]


async def test_a_run_streams_the_models_reply_with_its_usage(running: Running) -> None:
    await running.stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue_id="e2e",
            dialogue=pb.Dialogue(participants=[participant("Ada", temperature="0.4")]),
        )
    )

    events = await run(running.stub, "What should we build?")

    [turn] = [e.turn_completed for e in events if e.HasField("turn_completed")]
    assert turn.content == "Hello from the fake."
    assert turn.speaker.name == "Ada"
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (11, 7)
    [sent] = running.api.received
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert (sent.json["model"], sent.json["temperature"], sent.json["max_tokens"]) == (
        "test-model",
        0.4,
        256,
    )
    system, new = sent.json["messages"]
    assert system["role"] == "system"
    assert "# You are Ada, analyst" in system["content"]
    assert new == {"role": "user", "content": "[System]: What should we build?"}


async def test_the_next_run_sends_the_participants_private_conversation(
    running: Running,
) -> None:
    api = running.api
    api.success = lambda request: openai_completion(f"reply {len(api.received)}")
    await running.stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue_id="e2e", dialogue=pb.Dialogue(participants=[participant("Ada")])
        )
    )

    await run(running.stub, "first")
    await run(running.stub, "second")

    messages = running.api.received[1].json["messages"]
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "[System]: first"),
        ("assistant", "reply 1"),
        ("user", "[System]: second"),
    ]


async def test_options_outside_the_allow_list_are_invalid_arguments(running: Running) -> None:
    request = pb.CreateDialogueRequest(
        dialogue_id="e2e-bad",
        dialogue=pb.Dialogue(participants=[participant("Ada", base_url="http://elsewhere")]),
    )

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await running.stub.CreateDialogue(request)

    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "base_url" in (error.value.details() or "")


async def test_profiles_are_listed_with_their_availability(running: Running) -> None:
    response = await running.stub.ListAgentProfiles(pb.ListAgentProfilesRequest())

    profiles = {p.name: p for p in response.profiles}
    assert (profiles["gpt"].kind, profiles["gpt"].model, profiles["gpt"].available) == (
        "openai",
        "test-model",
        True,
    )
    assert not profiles["claude"].available
    assert profiles["claude"].unavailable_reason == (
        "environment variable PARLEY_E2E_NONE is not set"
    )
