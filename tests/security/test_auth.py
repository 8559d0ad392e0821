"""Bearer-token authentication and per-token authorization over real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from parley.server.agents.registry import AgentRegistry
from parley.server.api.auth import parse_tokens_file
from parley.server.api.server import ParleyServer
from parley.server.config import ConfigError, Settings
from parley.server.engine.engine import Engine
from parley.server.store.memory import MemoryStore
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

ADMIN = "admin-secret-token"
TEAM = "team-a-token"
READER = "reader-token"

Stub = dialogue_pb2_grpc.DialogueServiceStub


@pytest.fixture
async def address(tmp_path: Path) -> AsyncIterator[str]:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"# team tokens\n{TEAM} prefix=team-a-\n{READER} read-only  # auditors\n",
        encoding="utf-8",
    )
    store = MemoryStore()
    await store.open()
    settings = Settings(address="127.0.0.1:0", auth_tokens=(ADMIN,), auth_tokens_file=str(tokens))
    server = ParleyServer(Engine(store, AgentRegistry.with_builtin()), settings)
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await store.close()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def dialogue(dialogue_id: str = "") -> pb.CreateDialogueRequest:
    participant = pb.Participant(persona=pb.Persona(name="A"), agent="echo")
    return pb.CreateDialogueRequest(
        dialogue_id=dialogue_id, dialogue=pb.Dialogue(participants=[participant])
    )


async def reason_of(call_error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(call_error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo")


async def test_missing_or_wrong_token_is_unauthenticated(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        for metadata in ((), bearer("nope"), (("authorization", ADMIN),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListDialogues(pb.ListDialoguesRequest(), metadata=metadata)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert await reason_of(caught.value) == "UNAUTHENTICATED"


async def test_streaming_rpcs_are_refused_too(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = Stub(channel).RunSession(pb.RunSessionRequest(dialogue="dialogues/x", text="hi"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_stay_public(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_valid_token_runs_a_dialogue(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        await stub.CreateDialogue(dialogue("open"), metadata=bearer(ADMIN))
        response = await stub.Run(
            pb.RunSessionRequest(dialogue="dialogues/open", text="hi"), metadata=bearer(ADMIN)
        )
        assert response.completed
        assert response.turns[0].content == "A:\n[System]: hi"


async def test_prefix_token_is_confined_without_learning_what_exists(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        await stub.CreateDialogue(dialogue("secret-plans"), metadata=bearer(ADMIN))
        mine = await stub.CreateDialogue(dialogue(), metadata=bearer(TEAM))
        assert mine.name.startswith("dialogues/team-a-")
        await stub.CreateDialogue(dialogue("team-a-x"), metadata=bearer(TEAM))
        for name in ("dialogues/secret-plans", "dialogues/does-not-exist"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetDialogue(pb.GetDialogueRequest(name=name), metadata=bearer(TEAM))
            # The same answer whether or not the dialogue exists.
            assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert await reason_of(caught.value) == "DIALOGUE_NOT_ALLOWED"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateDialogue(dialogue("elsewhere"), metadata=bearer(TEAM))
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        listed = await stub.ListDialogues(pb.ListDialoguesRequest(), metadata=bearer(TEAM))
        assert sorted(d.name for d in listed.dialogues) == sorted([mine.name, "dialogues/team-a-x"])


async def test_read_only_token_reads_but_cannot_change_or_run(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = Stub(channel)
        await stub.CreateDialogue(dialogue("shared"), metadata=bearer(ADMIN))
        got = await stub.GetDialogue(
            pb.GetDialogueRequest(name="dialogues/shared"), metadata=bearer(READER)
        )
        assert got.name == "dialogues/shared"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Run(
                pb.RunSessionRequest(dialogue="dialogues/shared", text="x"),
                metadata=bearer(READER),
            )
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert await reason_of(caught.value) == "READ_ONLY_TOKEN"
        messages = await stub.ListMessages(
            pb.ListMessagesRequest(dialogue="dialogues/shared"), metadata=bearer(READER)
        )
        assert list(messages.messages) == []


def test_tokens_file_syntax_errors_name_the_line() -> None:
    with pytest.raises(ValueError, match=r"tokens:2: unknown flag 'admin'"):
        parse_tokens_file("good\nbad admin\n", "tokens")


async def test_auth_with_an_unreadable_tokens_file_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(auth_tokens_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="auth tokens"):
        ParleyServer(Engine(MemoryStore(), AgentRegistry.with_builtin()), settings)
