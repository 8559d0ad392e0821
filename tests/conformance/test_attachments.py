"""Attachments: stored with their message, returned by ListMessages, limited per run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from parley.server.engine.validation import Limits
from parley.v1 import dialogue_pb2 as pb

from tests.servers import sqlite_server

from .harness import (
    Dialogues,
    Stub,
    data_attachment,
    echo,
    rpc_failure,
    said,
    seen_by,
    uri_attachment,
    user,
)

RUN_LIMIT = 1024


@pytest.fixture(scope="module")
def small_dialogues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogues]:
    """A second server whose runs may carry at most RUN_LIMIT attachment bytes."""
    db: Path = tmp_path_factory.mktemp("conformance-limits") / "parley.db"
    server = sqlite_server(db, Limits(max_run_attachment_bytes=RUN_LIMIT))
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield Dialogues(Stub(channel))
    finally:
        server.stop()


def test_attachments_are_stored_and_listed_with_their_message(dialogues: Dialogues) -> None:
    """Rule: One run §1 — "Attachments travel with the message they belong to"; Vocabulary:
    a message carries its attachments, returned by ListMessages (inline bytes or a URI)."""
    d = dialogues.create(echo("A"))
    image = data_attachment("pixel.png", bytes(range(256)), "image/png")
    link = uri_attachment("spec.pdf", "https://example.test/spec.pdf", "application/pdf")
    d.stream("look", attachments=[image, link])
    message = d.messages()[0]
    assert list(message.attachments) == [image, link]
    assert message.attachments[0].WhichOneof("source") == "data"
    assert message.attachments[1].WhichOneof("source") == "uri"


def test_attachments_alone_are_valid_input(dialogues: Dialogues) -> None:
    """Rule: One run §1 — only an input "with no text, no messages and no attachments" is
    invalid: attachments alone make a (System) message that is delivered."""
    d = dialogues.create(echo("A"))
    note = data_attachment("note.txt", b"hi")
    events = d.stream(attachments=[note])
    message = d.messages()[0]
    assert (message.speaker.name, message.content, list(message.attachments)) == (
        "System",
        "",
        [note],
    )
    assert seen_by(events, "A") == ["[System]: "]


def test_agent_replies_carry_no_attachments_of_the_input(dialogues: Dialogues) -> None:
    """Rule: One run §1 — attachments belong to the message they came with: only that
    input message holds them, not the text or the replies."""
    d = dialogues.create(echo("A"))
    photo = data_attachment("photo.jpg", b"\xff\xd8\xff", "image/jpeg")
    d.stream("text", messages=[said(user("Ann"), "with photo", attachments=[photo])])
    assert [len(m.attachments) for m in d.messages()] == [1, 0, 0]


def test_attachments_over_the_run_limit_are_resource_exhausted(
    small_dialogues: Dialogues,
) -> None:
    """Rule: Attachments are size-limited per run (API: RESOURCE_EXHAUSTED for limits,
    before anything is stored): the bytes of every message of the run add up."""
    d = small_dialogues.create(echo("A"))
    half = data_attachment("half.bin", b"x" * (RUN_LIMIT // 2 + 1))
    for call in (
        lambda: d.stream(
            "big", attachments=[half], messages=[said(user("Ann"), "more", attachments=[half])]
        ),
        lambda: d.run("big", attachments=[half, half]),
    ):
        failure = rpc_failure(call)
        assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert failure.reason == "ATTACHMENTS_TOO_LARGE"
    assert d.get().message_count == 0


def test_attachments_at_the_run_limit_are_accepted(small_dialogues: Dialogues) -> None:
    """Rule: Attachments — the per-run limit is inclusive: exactly the limit is stored."""
    d = small_dialogues.create(echo("A"))
    exact = data_attachment("exact.bin", b"y" * RUN_LIMIT)
    d.stream("fits", attachments=[exact])
    assert list(d.messages()[0].attachments) == [exact]


def test_attachments_are_exported_in_full_json(dialogues: Dialogues) -> None:
    """Rule: History — the full export "keeps ... attachments" (inline data in base64)."""
    d = dialogues.create(echo("A"))
    d.stream("f", attachments=[data_attachment("a.txt", b"abc"), uri_attachment("u", "s3://b/k")])
    entry = json.loads(d.export(pb.HISTORY_FORMAT_FULL_JSON))[0]
    assert entry["attachments"] == [
        {"name": "a.txt", "mime_type": "text/plain", "data": "YWJj"},
        {"name": "u", "mime_type": "image/png", "uri": "s3://b/k"},
    ]
