"""Concurrent-run limits per server and per client, over real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from parley.server.agents.registry import AgentRegistry
from parley.server.api.run_limits import peer_host
from parley.server.api.server import ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.server.engine.validation import Limits
from parley.server.store.memory import MemoryStore
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

if TYPE_CHECKING:
    from parley.v1.dialogue_pb2_grpc import DialogueServiceAsyncStub


@pytest.fixture
async def stub() -> AsyncIterator[DialogueServiceAsyncStub]:
    store = MemoryStore()
    await store.open()
    limits = Limits(max_concurrent_runs=2, max_concurrent_runs_per_client=1)
    settings = Settings(address="127.0.0.1:0", limits=limits)
    server = ParleyServer(Engine(store, AgentRegistry.with_builtin(), limits), settings)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield dialogue_pb2_grpc.DialogueServiceStub(channel)
    finally:
        await server.stop(0)
        await store.close()


async def create(stub: DialogueServiceAsyncStub, dialogue_id: str) -> None:
    slow = pb.Participant(
        persona=pb.Persona(name="Slow"), agent="echo", agent_options={"delay_ms": "60000"}
    )
    await stub.CreateDialogue(
        pb.CreateDialogueRequest(dialogue_id=dialogue_id, dialogue=pb.Dialogue(participants=[slow]))
    )


async def test_a_client_over_its_run_limit_is_refused_with_a_quota_failure(
    stub: DialogueServiceAsyncStub,
) -> None:
    await create(stub, "one")
    await create(stub, "two")
    first = stub.RunSession(pb.RunSessionRequest(dialogue="dialogues/one", text="go"))
    started = await first.read()
    assert isinstance(started, pb.SessionEvent)
    assert started.HasField("started")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Run(pb.RunSessionRequest(dialogue="dialogues/two", text="go"))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    quota = error_details_pb2.QuotaFailure()
    assert any(d.Unpack(quota) for d in status.details)
    assert quota.violations[0].subject == "concurrent_runs_per_client"
    first.cancel()
    # Nothing was stored for the refused run.
    log = await stub.ListMessages(pb.ListMessagesRequest(dialogue="dialogues/two"))
    assert list(log.messages) == []


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:5555", "ipv4:127.0.0.1"),
        ("ipv6:[::1]:5555", "ipv6:[::1]"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_peer_host_drops_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host
