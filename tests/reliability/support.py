"""Helpers for the reliability tests: a real Parley server on the test's own event loop.

Unlike `tests.api.support.BackgroundServer` (a server on a thread of its own), the
`LiveServer` here runs the production `ParleyServer` and `Engine` (with its cancel
follower started, as `parley-server` does) on the loop of the test, so a test can count
the server's asyncio tasks before and after a run and can hold agent calls open with a
`GateAgent` that the test itself opens: in-flight calls without any timing guess.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from parley.server.agents.protocol import AgentCall, AgentReply
from parley.server.agents.registry import AgentProfile, AgentRegistry
from parley.server.api.server import ParleyServer
from parley.server.config import Settings
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.session import Session
from parley.server.engine.validation import Limits
from parley.server.store import MemoryStore, Store
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from tests.api.support import echo, failure_of, new_id

if TYPE_CHECKING:
    from tests.api.support import AsyncStub

GATE_PROFILE = "gate"
# Bounds every wait of a test on the server: a hang fails the test, never the suite.
WAIT_S = 30.0
# Loopback only: a proxy from the environment must never see test traffic.
CHANNEL_OPTIONS: list[tuple[str, int]] = [("grpc.enable_http_proxy", 0)]
RUN_END_KEY = "parley.run_end"


class GateAgent:
    """An agent profile whose calls wait until the test opens the caller's gate.

    Gates are per participant name. `entered(name)` waits until that participant's call
    is in flight; `cancelled` lists the calls that were cancelled while waiting.
    """

    def __init__(self) -> None:
        self._entered: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(
            asyncio.Event
        )
        self._opened: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(
            asyncio.Event
        )
        self.cancelled: list[str] = []
        self.finished: list[str] = []

    @staticmethod
    def reply_of(name: str) -> str:
        return f"{name}: through the gate"

    def open(self, name: str) -> None:
        self._opened[name].set()

    async def entered(self, name: str) -> None:
        async with asyncio.timeout(WAIT_S):
            await self._entered[name].wait()

    async def execute(self, call: AgentCall) -> AgentReply:
        name = call.persona.name
        self._entered[name].set()
        try:
            await self._opened[name].wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        self.finished.append(name)
        return AgentReply(self.reply_of(name))


class RecordingEngine(Engine):
    """The production engine, remembering every run it opened (latest per dialogue), so
    a test can look at a run's internals after it left the engine's own registry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: dict[str, Session] = {}

    async def open_run(
        self,
        dialogue_id: str,
        run_input: RunInput,
        *,
        deadline: float | None = None,
        queue_timeout: float | None = None,
    ) -> Session:
        session = await super().open_run(
            dialogue_id, run_input, deadline=deadline, queue_timeout=queue_timeout
        )
        self.sessions[dialogue_id] = session
        return session


def _no_options(options: Mapping[str, str]) -> dict[str, str]:
    return dict.fromkeys(options, "the gate profile takes no options")


def gated(name: str) -> pb.Participant:
    """A participant on the gate profile: its call waits for `GateAgent.open(name)`."""
    return pb.Participant(persona=pb.Persona(name=name), agent=GATE_PROFILE)


@dataclass
class LiveServer:
    address: str
    engine: RecordingEngine
    store: Store
    gate: GateAgent
    settings: Settings
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def channel(self) -> grpc.aio.Channel:
        """A new connection (its own subchannel); closed by `live_server` at the end."""
        options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        channel = grpc.aio.insecure_channel(self.address, options=options)
        self.channels.append(channel)
        return channel

    def connect(self) -> tuple[grpc.aio.Channel, AsyncStub]:
        channel = self.channel()
        return channel, dialogue_pb2_grpc.DialogueServiceStub(channel)

    def stub(self) -> AsyncStub:
        return self.connect()[1]

    async def close_channels(self) -> None:
        for channel in self.channels:
            await channel.close(None)


@contextlib.asynccontextmanager
async def live_server(
    *,
    limits: Limits | None = None,
    store: Store | None = None,
    auth_tokens: Sequence[str] = (),
) -> AsyncIterator[LiveServer]:
    """The production server (echo and gate profiles) on 127.0.0.1:0 on this loop."""
    store = store if store is not None else MemoryStore()
    limits = limits or Limits()
    await store.open()
    registry = AgentRegistry.with_builtin()
    gate = GateAgent()
    registry.register(AgentProfile(GATE_PROFILE, "gate", timeout=3600.0), gate, _no_options)
    engine = RecordingEngine(store, registry, limits)
    await engine.start()
    settings = Settings(address="127.0.0.1:0", limits=limits, auth_tokens=tuple(auth_tokens))
    server = ParleyServer(engine, settings)
    try:
        port = await server.start()
        live = LiveServer(f"127.0.0.1:{port}", engine, store, gate, settings)
        try:
            yield live
        finally:
            await live.close_channels()
            # No grace: a failed test may leave a stream open.
            await server.stop(0)
    finally:
        await engine.close()
        await store.close()


# --- tasks ---------------------------------------------------------------------------


def task_census() -> collections.Counter[str]:
    """The live tasks of this loop by coroutine name, the calling task left out.

    grpc's server replaces its request-waiting tasks as calls come in, so tasks are
    compared by what they run, not by identity.
    """
    current = asyncio.current_task()
    return collections.Counter(
        getattr(task.get_coro(), "__qualname__", repr(task.get_coro()))
        for task in asyncio.all_tasks()
        if task is not current and not task.done()
    )


async def assert_no_task_leaked(before: collections.Counter[str]) -> None:
    """Polls (bounded) until the loop runs the same tasks as before: handlers that have
    sent their status may need a few loop turns to finish."""
    now = task_census()
    for _ in range(400):
        if now == before:
            return
        await asyncio.sleep(0.01)
        now = task_census()
    raise AssertionError(f"tasks leaked: {now - before}; gone: {before - now}")


# --- dialogues and streams -----------------------------------------------------------


async def create_dialogue(
    stub: AsyncStub,
    participants: Iterable[pb.Participant],
    *,
    model: pb.ExecutionModel | None = None,
    prefix: str = "r",
) -> str:
    """Creates a dialogue with a fresh id; returns its resource name."""
    dialogue = await stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue_id=new_id(prefix),
            dialogue=pb.Dialogue(participants=list(participants), execution_model=model),
        )
    )
    return dialogue.name


async def next_event(call: object) -> pb.SessionEvent:
    """The next event of a RunSession stream (bounded wait); fails at the stream's end."""
    assert isinstance(call, grpc.aio.UnaryStreamCall)
    async with asyncio.timeout(WAIT_S):
        event = await call.read()
    assert isinstance(event, pb.SessionEvent), f"the stream ended early: {event!r}"
    return event


async def rest_of(call: object) -> list[pb.SessionEvent]:
    """The remaining events of a stream that must end with status OK."""
    assert isinstance(call, grpc.aio.UnaryStreamCall)
    events: list[pb.SessionEvent] = []
    async with asyncio.timeout(WAIT_S):
        while True:
            event = await call.read()
            if not isinstance(event, pb.SessionEvent):
                break
            events.append(event)
        assert await call.code() == grpc.StatusCode.OK
    return events


def run_end_notices(messages: Iterable[pb.Message]) -> list[pb.Message]:
    return [m for m in messages if RUN_END_KEY in m.metadata]


def is_cancelled_notice(message: pb.Message, turn: int) -> bool:
    return (
        message.speaker.kind == pb.SPEAKER_KIND_SYSTEM
        and message.type == pb.MESSAGE_TYPE_NOTIFICATION
        and message.metadata.get(RUN_END_KEY) == "cancelled"
        and message.turn == turn
    )


__all__ = [
    "GATE_PROFILE",
    "WAIT_S",
    "GateAgent",
    "LiveServer",
    "assert_no_task_leaked",
    "create_dialogue",
    "echo",
    "failure_of",
    "gated",
    "is_cancelled_notice",
    "live_server",
    "next_event",
    "rest_of",
    "run_end_notices",
    "task_census",
]
