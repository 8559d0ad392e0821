"""Decoding rich statuses from a real server, and explaining them to people."""

from __future__ import annotations

import grpc
import pytest
from parley.client.errors import ErrorDescription, FieldViolation, ParleyRpcError, describe_error
from parley.client.render import error_text
from parley.v1 import dialogue_pb2 as pb
from parley.v1.dialogue_pb2_grpc import DialogueServiceStub


async def test_describe_raw_stub_errors(server: str, unused_address: str) -> None:
    async with grpc.aio.insecure_channel(server) as channel:
        stub = DialogueServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDialogue(pb.GetDialogueRequest(name="dialogues/nope"))
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.CreateDialogue(
                pb.CreateDialogueRequest(
                    dialogue=pb.Dialogue(participants=[pb.Participant()]), dialogue_id="A B"
                )
            )
    async with grpc.aio.insecure_channel(unused_address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unreachable:
            await DialogueServiceStub(channel).GetDialogue(pb.GetDialogueRequest(), timeout=5)

    assert describe_error(missing.value) == ErrorDescription(
        code=grpc.StatusCode.NOT_FOUND,
        message="dialogue dialogues/nope not found",
        reason="DIALOGUE_NOT_FOUND",
        domain="parley.dev",
    )
    described = describe_error(invalid.value)
    assert described.reason == "INVALID_DIALOGUE"
    assert described.field_violations == (
        FieldViolation("dialogue_id", "must match [a-z0-9][a-z0-9-]{0,62}"),
        FieldViolation("dialogue.participants[0].persona.name", "must not be empty"),
    )
    assert str(described) == (
        "INVALID_ARGUMENT: the dialogue is invalid [INVALID_DIALOGUE]\n"
        "  - dialogue_id: must match [a-z0-9][a-z0-9-]{0,62}\n"
        "  - dialogue.participants[0].persona.name: must not be empty"
    )
    bare = describe_error(unreachable.value)
    assert (bare.code, bare.reason, bare.field_violations) == (
        grpc.StatusCode.UNAVAILABLE,
        "",
        (),
    )


def test_describe_blocking_stub_error(server: str) -> None:
    with grpc.insecure_channel(server) as channel, pytest.raises(grpc.RpcError) as caught:
        DialogueServiceStub(channel).DeleteDialogue(pb.DeleteDialogueRequest(name="x"))

    wrapped = ParleyRpcError.from_rpc_error(caught.value)
    assert wrapped.reason == "DIALOGUE_NOT_FOUND"
    assert describe_error(wrapped) is wrapped.description
    assert str(wrapped) == "NOT_FOUND: dialogue x not found [DIALOGUE_NOT_FOUND]"


@pytest.mark.parametrize(
    ("description", "dialogue", "expected"),
    [
        (
            ErrorDescription(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
            None,
            "error: cannot reach a Parley server at 10.0.0.1:7 ",
        ),
        (
            ErrorDescription(grpc.StatusCode.NOT_FOUND, "gone", reason="DIALOGUE_NOT_FOUND"),
            "review",
            "error: dialogue review not found",
        ),
        (
            ErrorDescription(
                grpc.StatusCode.NOT_FOUND, "no participant Zed", "UNKNOWN_PARTICIPANT"
            ),
            "review",
            "error: no participant Zed (NOT_FOUND, UNKNOWN_PARTICIPANT)",
        ),
        (
            ErrorDescription(
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad dialogue",
                field_violations=(FieldViolation("dialogue_id", "too long"),),
            ),
            None,
            "error: invalid request: bad dialogue\n  - dialogue_id: too long",
        ),
        (
            ErrorDescription(
                grpc.StatusCode.INVALID_ARGUMENT,
                "text: give text",
                field_violations=(FieldViolation("text", "give text"),),
            ),
            None,
            "error: invalid request\n  - text: give text",
        ),
        (
            ErrorDescription(grpc.StatusCode.UNAUTHENTICATED, "missing token"),
            None,
            "error: the server wants a token: pass --token or set PARLEY_TOKEN",
        ),
        (
            ErrorDescription(
                grpc.StatusCode.FAILED_PRECONDITION, "a run is in progress", "RUN_IN_PROGRESS"
            ),
            "review",
            "error: a run is in progress (FAILED_PRECONDITION, RUN_IN_PROGRESS)",
        ),
        (
            ErrorDescription(grpc.StatusCode.UNAVAILABLE, "draining", reason="SERVER_DRAINING"),
            None,
            "error: draining (UNAVAILABLE, SERVER_DRAINING)",
        ),
    ],
)
def test_error_text_explains(
    description: ErrorDescription, dialogue: str | None, expected: str
) -> None:
    text = error_text(description, server="10.0.0.1:7", dialogue=dialogue).plain

    assert text.startswith(expected), text
