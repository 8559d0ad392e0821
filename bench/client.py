"""The gRPC figures' client side: benchmark dialogues and timed streams, Parley and bare."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from bench import bare
from bench.common import PROMPT, REPLY, USER

if TYPE_CHECKING:
    from typing import TypeAlias

    from parley.v1.dialogue_pb2_grpc import DialogueServiceAsyncStub

    # What the generated stub is on a grpc.aio channel; exists for type checkers only.
    AsyncStub: TypeAlias = DialogueServiceAsyncStub

BareCall = grpc.aio.UnaryStreamMultiCallable[bytes, pb.SessionEvent]


def connect(channel: grpc.aio.Channel) -> AsyncStub:
    return dialogue_pb2_grpc.DialogueServiceStub(channel)


@dataclass(frozen=True, slots=True)
class Timing:
    """One stream, seen by the client: seconds from the call to the first Turn, to the
    last event and to the stream's end (status received); items and their bytes."""

    first_turn: float
    last_event: float
    ended: float
    items: int
    size: int


def participants(names: Sequence[str], delays_ms: Sequence[int] = ()) -> list[pb.Participant]:
    result = []
    for index, name in enumerate(names):
        options = {"reply": REPLY}
        if delays_ms:
            options["delay_ms"] = str(delays_ms[index])
        result.append(
            pb.Participant(
                persona=pb.Persona(name=name, role="engineer"), agent="echo", agent_options=options
            )
        )
    return result


def model(name: str) -> pb.ExecutionModel:
    if name == "sequential":
        return pb.ExecutionModel(sequential=pb.Sequential())
    return pb.ExecutionModel(broadcast=pb.Broadcast())


async def create(
    stub: AsyncStub,
    dialogue_id: str,
    names: Sequence[str],
    execution_model: str,
    delays_ms: Sequence[int] = (),
) -> str:
    dialogue = pb.Dialogue(
        participants=participants(names, delays_ms), execution_model=model(execution_model)
    )
    created = await stub.CreateDialogue(
        pb.CreateDialogueRequest(dialogue=dialogue, dialogue_id=dialogue_id)
    )
    return created.name


def run_request(name: str) -> pb.RunSessionRequest:
    return pb.RunSessionRequest(
        dialogue=name,
        text=PROMPT,
        speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name=USER.name),
    )


async def timed(start: Callable[[], grpc.aio.UnaryStreamCall[Any, pb.SessionEvent]]) -> Timing:
    """Starts a stream and reads it to its end."""
    started = time.perf_counter()
    call = start()
    first_turn = last_event = 0.0
    items = size = 0
    async for event in call:
        last_event = time.perf_counter() - started
        items += 1
        size += event.ByteSize()
        if not first_turn and event.HasField("turn_completed"):
            first_turn = last_event
    return Timing(first_turn, last_event, time.perf_counter() - started, items, size)


async def parley_run(stub: AsyncStub, name: str) -> Timing:
    request = run_request(name)
    return await timed(lambda: stub.RunSession(request))


async def bare_run(
    call: BareCall,
    participants: int,
    delays_ms: Sequence[int] = (),
) -> Timing:
    request = bare.request(participants, delays_ms)
    return await timed(lambda: call(request))
