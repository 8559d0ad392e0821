"""Helpers for the API tests: a real server on a background thread, builders, error details.

The server under test is the production `ParleyServer` (grpc.aio, real port, real store)
running on its own event loop in a background thread, so the synchronous stubs of
pytest-grpc and the grpc.aio channels of pytest-asyncio tests both talk to it over TCP.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from tests.servers import BackgroundServer, memory_server, sqlite_server

ERROR_DOMAIN = "parley.dev"

Stub = dialogue_pb2_grpc.DialogueServiceStub
if TYPE_CHECKING:
    from typing import TypeAlias

    from parley.v1.dialogue_pb2_grpc import DialogueServiceAsyncStub

    # Exists for type checkers only: what `Stub(aio_channel)` returns.
    AsyncStub: TypeAlias = DialogueServiceAsyncStub


# --- the server under test: tests/servers.py ------------------------------------------

__all__ = ["BackgroundServer", "memory_server", "sqlite_server"]


# --- builders ------------------------------------------------------------------------

_ids = itertools.count(1)


def new_id(prefix: str = "t") -> str:
    """A dialogue id no other test of this process uses (servers are shared)."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def name_of(dialogue_id: str) -> str:
    return f"dialogues/{dialogue_id}"


def echo(
    name: str, *, role: str = "", icon: str = "", delay_ms: int | None = None, **options: str
) -> pb.Participant:
    """A participant on the built-in echo profile."""
    if delay_ms is not None:
        options["delay_ms"] = str(delay_ms)
    return pb.Participant(
        persona=pb.Persona(name=name, role=role, visual_identity=pb.VisualIdentity(icon=icon)),
        agent="echo",
        agent_options=options,
    )


def broadcast(
    order: pb.BroadcastOrder = pb.BROADCAST_ORDER_UNSPECIFIED,
    explicit: Sequence[str] = (),
) -> pb.ExecutionModel:
    return pb.ExecutionModel(broadcast=pb.Broadcast(order=order, explicit_order=list(explicit)))


def sequential(order: Sequence[str] = ()) -> pb.ExecutionModel:
    return pb.ExecutionModel(sequential=pb.Sequential(order=list(order)))


def create(
    stub: Stub,
    participants: Iterable[pb.Participant] = (),
    *,
    model: pb.ExecutionModel | None = None,
    dialogue_id: str | None = None,
    display_name: str = "",
    context: pb.DialogueContext | None = None,
    reaction_strategy: pb.ReactionStrategy = pb.REACTION_STRATEGY_UNSPECIFIED,
) -> pb.Dialogue:
    """Creates a dialogue with a fresh id (unless given) and returns it."""
    dialogue = pb.Dialogue(
        participants=list(participants),
        execution_model=model,
        display_name=display_name,
        context=context,
        reaction_strategy=reaction_strategy,
    )
    return stub.CreateDialogue(
        pb.CreateDialogueRequest(dialogue=dialogue, dialogue_id=dialogue_id or new_id())
    )


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def echo_reply(author: str, *delivered: tuple[str, str]) -> str:
    """What the echo agent `author` answers when given (speaker, content) pairs."""
    if not delivered:
        return f"{author}: (nothing new)"
    lines = [f"{author}:"]
    lines.extend(
        f"[{speaker}]: {content.replace(chr(10), chr(92) + 'n')}" for speaker, content in delivered
    )
    return "\n".join(lines)


def probe_request(dialogue: str) -> pb.RunSessionRequest:
    """A run that calls no agent (context_info input is never reacted to by itself).

    It still takes the run lease, so it tells whether the dialogue is runnable without
    waiting for any participant.
    """
    return pb.RunSessionRequest(
        dialogue=dialogue,
        messages=[
            pb.InputMessage(
                speaker=pb.Speaker(name="Probe"), content="probe", type=pb.MESSAGE_TYPE_CONTEXT_INFO
            )
        ],
    )


# Polling bounds for "the run ended on the server": at most ~10 s, usually one attempt.
POLL_ATTEMPTS = 400
POLL_INTERVAL_S = 0.025


def wait_until_runnable(stub: Stub, dialogue: str) -> pb.RunResponse:
    """Polls with probe runs until one is not rejected with RUN_IN_PROGRESS."""
    for _ in range(POLL_ATTEMPTS):
        try:
            response = stub.Run(probe_request(dialogue))
        except grpc.RpcError as error:
            if failure_of(error).reason != "RUN_IN_PROGRESS":
                raise
            time.sleep(POLL_INTERVAL_S)
            continue
        assert response.completed
        assert list(response.turns) == []
        return response
    raise AssertionError(f"{dialogue} still has a run in progress")


async def wait_until_runnable_async(stub: AsyncStub, dialogue: str) -> pb.RunResponse:
    for _ in range(POLL_ATTEMPTS):
        try:
            response = await stub.Run(probe_request(dialogue))
        except grpc.aio.AioRpcError as error:
            if failure_of(error).reason != "RUN_IN_PROGRESS":
                raise
            await asyncio.sleep(POLL_INTERVAL_S)
            continue
        assert response.completed
        assert list(response.turns) == []
        return response
    raise AssertionError(f"{dialogue} still has a run in progress")


RUN_END_METADATA_KEY = "parley.run_end"


def assert_cancel_notice(message: pb.Message, turn: int) -> None:
    """The System notification a cancelled run leaves in the log for every reader."""
    assert message.turn == turn, message
    assert message.speaker == pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System"), message
    assert message.type == pb.MESSAGE_TYPE_NOTIFICATION, message
    assert message.origin == pb.MESSAGE_ORIGIN_INCOMING, message
    assert message.metadata == {RUN_END_METADATA_KEY: "cancelled"}, message
    assert f"Turn {turn}" in message.content, message


# --- reading results -----------------------------------------------------------------


def all_messages(stub: Stub, dialogue: str, *, page_size: int = 0) -> list[pb.Message]:
    """The whole log, page by page."""
    messages: list[pb.Message] = []
    token = ""
    while True:
        page = stub.ListMessages(
            pb.ListMessagesRequest(dialogue=dialogue, page_size=page_size, page_token=token)
        )
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


async def all_messages_async(stub: AsyncStub, dialogue: str) -> list[pb.Message]:
    messages: list[pb.Message] = []
    token = ""
    while True:
        page = await stub.ListMessages(pb.ListMessagesRequest(dialogue=dialogue, page_token=token))
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


def kinds(events: Iterable[pb.SessionEvent]) -> list[str]:
    """The oneof case of each event: started, turn_completed, turn_failed, completed."""
    return [event.WhichOneof("event") or "" for event in events]


def turn_speakers(events: Iterable[pb.SessionEvent]) -> list[str]:
    """Speaker names of Turn and TurnFailed events, in emission order."""
    names: list[str] = []
    for event in events:
        if event.HasField("turn_completed"):
            names.append(event.turn_completed.speaker.name)
        elif event.HasField("turn_failed"):
            names.append(event.turn_failed.speaker.name)
    return names


def replies(events: Iterable[pb.SessionEvent]) -> dict[str, pb.Turn]:
    """Turn events by speaker name."""
    return {
        event.turn_completed.speaker.name: event.turn_completed
        for event in events
        if event.HasField("turn_completed")
    }


@dataclass
class RpcFailure:
    """A failed call's status with its google.rpc details unpacked."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)
    quota_subjects: list[str] = field(default_factory=list)


def failure_of(error: grpc.RpcError) -> RpcFailure:
    """Reads the rich status (grpcio-status) of a failed sync or aio call."""
    assert isinstance(error, grpc.Call | grpc.aio.AioRpcError), error
    # AioRpcError has the same sync accessors (code, details, trailing_metadata).
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, f"no google.rpc.Status details in {error!r}"
    failure = RpcFailure(code=error.code(), message=status.message)
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        quota = error_details_pb2.QuotaFailure()
        if detail.Unpack(info):
            failure.reason, failure.domain = info.reason, info.domain
        elif detail.Unpack(bad_request):
            failure.violations.update(
                (v.field, v.description) for v in bad_request.field_violations
            )
        elif detail.Unpack(quota):
            failure.quota_subjects.extend(v.subject for v in quota.violations)
    return failure


def rpc_failure(call: Callable[[], object]) -> RpcFailure:
    """Runs a sync call that must fail and returns its unpacked status."""
    try:
        call()
    except grpc.RpcError as error:
        return failure_of(error)
    raise AssertionError("the call succeeded; an error status was expected")


def assert_failure(
    failure: RpcFailure,
    code: grpc.StatusCode,
    reason: str,
    violations: Iterable[str] = (),
) -> None:
    """Code, ErrorInfo (reason, domain) and, for INVALID_ARGUMENT, the violated fields."""
    assert failure.code == code, failure
    assert failure.reason == reason, failure
    assert failure.domain == ERROR_DOMAIN, failure
    expected = set(violations)
    if expected or code == grpc.StatusCode.INVALID_ARGUMENT:
        assert set(failure.violations) == expected, failure
        assert all(failure.violations.values()), "every violation needs a description"
