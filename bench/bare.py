"""The floor: a bare grpc.aio server-streaming service that does nothing per item.

It streams the same `parley.v1.SessionEvent` messages a Parley run of the same shape
sends (built by Parley's own mapping, prebuilt once per shape), after the same agent
delays, so what Parley adds on top of gRPC is the difference. Run it as a process of
its own, like the Parley server it is compared with::

    python -m bench.bare            # prints "bare listening on 127.0.0.1:PORT"

The request is a small JSON document: `{"participants": N, "delays_ms": [...]}`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from functools import cache
from typing import Any

import grpc
from parley.server.api import mapping
from parley.server.engine.events import (
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    TurnCompleted,
)
from parley.server.engine.model import Sequential, Speaker, SpeakerKind, Usage, utcnow
from parley.v1 import dialogue_pb2 as pb

from bench.common import REPLY, participant_names

SERVICE = "parley.bench.Bare"
METHOD = f"/{SERVICE}/Stream"
DIALOGUE_ID = "bench-bare-0000"


@cache
def shaped_events(participants: int) -> tuple[pb.SessionEvent, ...]:
    """SessionStarted, one Turn per participant, SessionCompleted: a whole run's events."""
    names = participant_names(participants)
    events: list[SessionStarted | TurnCompleted | SessionCompleted] = [
        SessionStarted(tuple(names), Sequential(), (1_000,))
    ]
    events.extend(
        TurnCompleted(
            speaker=Speaker(SpeakerKind.AGENT, name, "engineer"),
            content=REPLY,
            turn=200,
            message_seq=1_001 + index,
            participant_index=index,
            latency=timedelta(microseconds=1_234),
            usage=Usage(),
        )
        for index, name in enumerate(names)
    )
    events.append(SessionCompleted(participants, 0))
    return tuple(
        mapping.session_event_to_proto(SessionEvent(DIALOGUE_ID, 200, sequence, utcnow(), event))
        for sequence, event in enumerate(events, start=1)
    )


def request(participants: int, delays_ms: Sequence[int] = ()) -> bytes:
    return json.dumps({"participants": participants, "delays_ms": list(delays_ms)}).encode()


async def stream(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
    spec = json.loads(raw)
    events = shaped_events(int(spec["participants"]))
    delays = sorted(spec["delays_ms"])
    if not delays:
        for event in events:
            yield event
        return
    # Like a broadcast run: each turn when its agent is done, in completion order.
    loop = asyncio.get_running_loop()
    started = loop.time()
    yield events[0]
    for event, delay_ms in zip(events[1:-1], delays, strict=True):
        await asyncio.sleep(max(0.0, started + delay_ms / 1000 - loop.time()))
        yield event
    yield events[-1]


def _identity(raw: bytes) -> bytes:
    return raw


async def serve(address: str) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=_identity,
                response_serializer=pb.SessionEvent.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    await server.stop(0)


def stub(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable[bytes, pb.SessionEvent]:
    return channel.unary_stream(
        METHOD, request_serializer=_identity, response_deserializer=pb.SessionEvent.FromString
    )


if __name__ == "__main__":
    asyncio.run(serve("127.0.0.1:0"))
