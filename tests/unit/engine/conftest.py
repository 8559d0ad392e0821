"""Engine fixtures: a memory store, the echo profile, and a gated agent tests release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pytest
from parley.server.agents.protocol import AgentCall, AgentReply
from parley.server.agents.registry import AgentProfile, AgentRegistry
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import SessionEvent
from parley.server.engine.model import Dialogue, Participant, Persona, VisualIdentity
from parley.server.store.memory import MemoryStore


@dataclass
class GatedAgent:
    """Replies only when the test opens the participant's gate; records cancellations."""

    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def started(self, name: str) -> asyncio.Event:
        return self.waiting.setdefault(name, asyncio.Event())

    async def execute(self, call: AgentCall) -> AgentReply:
        name = call.persona.name
        self.started(name).set()
        try:
            await self.gate(name).wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        return AgentReply(f"{name} saw {[m.content for m in call.delivered]}")


def no_options(options: Mapping[str, str]) -> dict[str, str]:
    return {}


@pytest.fixture
def gated() -> GatedAgent:
    return GatedAgent()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def engine(store: MemoryStore, gated: GatedAgent) -> Engine:
    registry = AgentRegistry.with_builtin()
    registry.register(AgentProfile("gated", "test"), gated, no_options)
    registry.register(AgentProfile("impatient", "test", timeout=0.05), gated, no_options)
    return Engine(store, registry)


def echo(name: str, icon: str = "", **options: str) -> Participant:
    return Participant(
        Persona(name, role=f"{name} role", visual_identity=VisualIdentity(icon=icon)),
        "echo",
        options,
    )


def gated_participant(name: str) -> Participant:
    return Participant(Persona(name), "gated")


async def collect(engine: Engine, dialogue_id: str, run_input: RunInput) -> list[SessionEvent]:
    async with await engine.open_run(dialogue_id, run_input) as run:
        return [event async for event in run]


async def make(engine: Engine, *participants: Participant, **settings: object) -> Dialogue:
    return await engine.create_dialogue(
        Dialogue(id="d", participants=tuple(participants), **settings)  # type: ignore[arg-type]
    )
