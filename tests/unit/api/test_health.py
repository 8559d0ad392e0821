"""The server's gRPC health follows its store: `parley.v1.DialogueService` is NOT_SERVING
while the store's database cannot be reached, the whole server (`""`) stays SERVING, and
a draining server is NOT_SERVING whatever the store says.

A real `ParleyServer` on loopback; the store is a memory store whose reachability the
test sets, as the PostgreSQL store's feed does (the end-to-end test cuts a real
PostgreSQL connection: tests/e2e/test_store_health.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from parley.server.agents.registry import AgentRegistry
from parley.server.api.server import DIALOGUE_SERVICE, ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.server.store import MemoryStore

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WATCH_TIMEOUT_S = 30.0
# Loop iterations: a follower wakes, sets the status and takes the servicer's lock in a few.
SETTLE_STEPS = 50


@dataclass
class Running:
    server: ParleyServer
    store: MemoryStore
    health: health_pb2_grpc.HealthStub

    async def status(self, service: str) -> int:
        response = await self.health.Check(health_pb2.HealthCheckRequest(service=service))
        return int(response.status)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    store = MemoryStore()
    await store.open()
    engine = Engine(store, AgentRegistry.with_builtin())
    await engine.start()
    server = ParleyServer(engine, Settings(address="127.0.0.1:0"))
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Running(server, store, health_pb2_grpc.HealthStub(channel))
    finally:
        await server.stop(0)
        await engine.close()
        await store.close()


async def test_the_dialogue_service_follows_the_store(running: Running) -> None:
    watch = running.health.Watch(
        health_pb2.HealthCheckRequest(service=DIALOGUE_SERVICE), timeout=WATCH_TIMEOUT_S
    )
    statuses = aiter(watch)
    assert (await anext(statuses)).status == SERVING

    running.store.reachability.set(False)
    assert (await anext(statuses)).status == NOT_SERVING
    assert await running.status("") == SERVING  # the process is alive: no restart

    running.store.reachability.set(True)
    assert (await anext(statuses)).status == SERVING
    watch.cancel()


async def test_a_draining_server_stays_not_serving_when_the_store_comes_back(
    running: Running,
) -> None:
    running.store.reachability.set(False)
    await running.server.stop(0)

    running.store.reachability.set(True)
    for _ in range(SETTLE_STEPS):  # time for a follower still running to act on it
        await asyncio.sleep(0)

    # The health servicer still answers in-process after the port closed.
    for service in ("", DIALOGUE_SERVICE):
        response = await running.server.health.Check(
            health_pb2.HealthCheckRequest(service=service), None
        )
        assert response.status == NOT_SERVING
