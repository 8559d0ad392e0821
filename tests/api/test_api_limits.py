"""RESOURCE_EXHAUSTED and page-size ceilings, on a server of this module's own with small Limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from parley.server.engine.validation import Limits
from parley.v1 import dialogue_pb2 as pb

from .support import (
    BackgroundServer,
    Stub,
    all_messages,
    assert_failure,
    create,
    echo,
    memory_server,
    new_id,
    rpc_failure,
)

LIMITS = Limits(
    max_participants=2,
    max_message_bytes=64,
    max_run_attachment_bytes=100,
    max_input_messages=3,
    max_page_size=3,
)


@pytest.fixture(scope="module")
def parley_server() -> Iterator[BackgroundServer]:
    """Overrides conftest's server: same server code, small limits, in-memory store."""
    server = memory_server(LIMITS)
    yield server
    server.stop()


def assert_exhausted(call: Callable[[], object], reason: str, subject: str) -> None:
    failure = rpc_failure(call)
    assert_failure(failure, grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
    assert failure.quota_subjects == [subject], failure
    assert failure.message


def test_too_many_participants_on_create(stub: Stub) -> None:
    dialogue_id = new_id("crowd")
    assert_exhausted(
        lambda: create(stub, [echo("A"), echo("B"), echo("C")], dialogue_id=dialogue_id),
        "TOO_MANY_PARTICIPANTS",
        "participants_per_dialogue",
    )
    failure = rpc_failure(lambda: stub.GetDialogue(pb.GetDialogueRequest(name=dialogue_id)))
    assert failure.code == grpc.StatusCode.NOT_FOUND


def test_too_many_participants_on_add(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B")])

    assert_exhausted(
        lambda: stub.AddParticipant(
            pb.AddParticipantRequest(dialogue=dialogue.name, participant=echo("C"))
        ),
        "TOO_MANY_PARTICIPANTS",
        "participants_per_dialogue",
    )
    assert len(stub.GetDialogue(pb.GetDialogueRequest(name=dialogue.name)).participants) == 2


def test_message_size_is_counted_in_bytes(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    at_limit = "é" * 32  # 64 bytes in UTF-8
    over_limit = "é" * 33  # 33 characters, 66 bytes

    assert stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text=at_limit)).completed
    assert_exhausted(
        lambda: stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text=over_limit)),
        "MESSAGE_TOO_LARGE",
        "message_bytes",
    )
    assert_exhausted(
        lambda: list(
            stub.RunSession(
                pb.RunSessionRequest(
                    dialogue=dialogue.name,
                    messages=[pb.InputMessage(speaker=pb.Speaker(name="U"), content=over_limit)],
                )
            )
        ),
        "MESSAGE_TOO_LARGE",
        "message_bytes",
    )
    # Nothing of the rejected runs was stored.
    assert [m.content for m in all_messages(stub, dialogue.name) if m.speaker.name != "A"] == [
        at_limit
    ]


def test_attachments_per_run(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    half = pb.Attachment(name="half.bin", mime_type="application/octet-stream", data=b"x" * 50)
    extra = pb.Attachment(name="one.bin", mime_type="application/octet-stream", data=b"x")

    fits = stub.Run(
        pb.RunSessionRequest(dialogue=dialogue.name, text="two halves", attachments=[half, half])
    )
    assert fits.completed
    # The ceiling is per run: attachments of the prompt and of input messages add up.
    assert_exhausted(
        lambda: stub.Run(
            pb.RunSessionRequest(
                dialogue=dialogue.name,
                messages=[
                    pb.InputMessage(
                        speaker=pb.Speaker(name="U"), content="one more", attachments=[extra]
                    )
                ],
                text="too much",
                attachments=[half, half],
            )
        ),
        "ATTACHMENTS_TOO_LARGE",
        "attachment_bytes_per_run",
    )
    log = all_messages(stub, dialogue.name)
    assert [m.content for m in log] == ["two halves", fits.turns[0].content]
    assert [a.data for a in log[0].attachments] == [b"x" * 50, b"x" * 50]


def test_too_many_input_messages(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    message = pb.InputMessage(speaker=pb.Speaker(name="U"), content="m")

    failure = rpc_failure(
        lambda: stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, messages=[message] * 4))
    )

    assert_failure(failure, grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_INPUT_MESSAGES")
    assert failure.quota_subjects == ["input_messages_per_run"]
    assert all_messages(stub, dialogue.name) == []


def test_page_sizes_are_capped_not_rejected(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B")])
    for n in range(2):
        stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text=f"run {n}"))
    for _ in range(3):
        create(stub, [])

    messages = stub.ListMessages(pb.ListMessagesRequest(dialogue=dialogue.name, page_size=1000))
    dialogues = stub.ListDialogues(pb.ListDialoguesRequest(page_size=1000))

    assert [m.seq for m in messages.messages] == [1, 2, 3]
    assert messages.next_page_token
    assert len(dialogues.dialogues) == 3
    assert dialogues.next_page_token
    assert len(all_messages(stub, dialogue.name, page_size=1000)) == 6
