"""ListMessages over gRPC: the log page by page, `after_seq`, and its errors."""

from __future__ import annotations

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .support import Stub, all_messages, assert_failure, create, echo, name_of, new_id, rpc_failure


def dialogue_with_log(stub: Stub, runs: int = 3) -> pb.Dialogue:
    """Two echo participants and `runs` runs: 3 messages per run (input + 2 replies)."""
    dialogue = create(stub, [echo("A", icon="🦊"), echo("B")])
    for n in range(1, runs + 1):
        stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text=f"run {n}"))
    return dialogue


def page(
    stub: Stub, dialogue: str, *, size: int = 0, token: str = "", after: int = 0
) -> pb.ListMessagesResponse:
    return stub.ListMessages(
        pb.ListMessagesRequest(dialogue=dialogue, page_size=size, page_token=token, after_seq=after)
    )


def seqs(response: pb.ListMessagesResponse) -> list[int]:
    return [m.seq for m in response.messages]


def test_list_messages_in_pages(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub)

    first = page(stub, dialogue.name, size=4)
    second = page(stub, dialogue.name, size=4, token=first.next_page_token)
    third = page(stub, dialogue.name, size=4, token=second.next_page_token)

    assert (seqs(first), seqs(second), seqs(third)) == ([1, 2, 3, 4], [5, 6, 7, 8], [9])
    assert first.next_page_token
    assert second.next_page_token
    assert third.next_page_token == ""


def test_a_page_that_ends_exactly_at_the_end_of_the_log(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub, runs=2)

    first = page(stub, dialogue.name, size=3)
    second = page(stub, dialogue.name, size=3, token=first.next_page_token)

    assert (seqs(first), seqs(second)) == ([1, 2, 3], [4, 5, 6])
    assert second.next_page_token == ""


def test_default_page_size_returns_the_whole_small_log(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub)

    response = page(stub, dialogue.name)

    assert seqs(response) == list(range(1, 10))
    assert response.next_page_token == ""
    assert [m.turn for m in response.messages] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    origins = [m.origin for m in response.messages]
    assert origins[0::3] == [pb.MESSAGE_ORIGIN_INCOMING] * 3
    assert set(origins[1::3] + origins[2::3]) == {pb.MESSAGE_ORIGIN_AGENT_GENERATED}
    assert all(m.create_time.seconds > 0 for m in response.messages)
    assert {m.speaker.icon for m in response.messages if m.speaker.name == "A"} == {"🦊"}


def test_after_seq(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub)

    assert seqs(page(stub, dialogue.name, after=5)) == [6, 7, 8, 9]
    assert seqs(page(stub, dialogue.name, after=9)) == []
    assert seqs(page(stub, dialogue.name, after=1000)) == []
    # after_seq and pages combine: the token carries on from where the page ended.
    first = page(stub, dialogue.name, size=2, after=5)
    assert seqs(first) == [6, 7]
    second = page(stub, dialogue.name, size=2, after=5, token=first.next_page_token)
    assert seqs(second) == [8, 9]
    assert second.next_page_token == ""


def test_all_pages_add_up_to_the_log(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub)
    whole = all_messages(stub, dialogue.name)

    for size in (1, 2, 5, 9, 10):
        assert all_messages(stub, dialogue.name, page_size=size) == whole


def test_empty_log(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    response = page(stub, dialogue.name)
    assert list(response.messages) == []
    assert response.next_page_token == ""


def test_list_messages_of_an_unknown_dialogue(stub: Stub) -> None:
    failure = rpc_failure(lambda: page(stub, name_of(new_id("missing"))))
    assert_failure(failure, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


@pytest.mark.parametrize(
    ("size", "token", "after", "violations"),
    [
        pytest.param(-1, "", 0, ["page_size"], id="negative-page-size"),
        pytest.param(0, "not-a-token", 0, ["page_token"], id="garbage-token"),
        pytest.param(0, "", -3, ["after_seq"], id="negative-after-seq"),
        pytest.param(-5, "%%%", -1, ["page_size", "page_token", "after_seq"], id="all-at-once"),
    ],
)
def test_list_messages_invalid_argument(
    stub: Stub, size: int, token: str, after: int, violations: list[str]
) -> None:
    dialogue = dialogue_with_log(stub, runs=1)

    failure = rpc_failure(lambda: page(stub, dialogue.name, size=size, token=token, after=after))

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations)


def test_a_token_from_another_listing_is_rejected(stub: Stub) -> None:
    dialogue = dialogue_with_log(stub, runs=1)
    create(stub, [])  # at least two dialogues: the first page of one has a next page
    token = stub.ListDialogues(pb.ListDialoguesRequest(page_size=1)).next_page_token
    assert token

    failure = rpc_failure(lambda: page(stub, dialogue.name, token=token))

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["page_token"])


def test_list_messages_malformed_dialogue(stub: Stub) -> None:
    failure = rpc_failure(lambda: page(stub, "dialogues/Bad Name"))
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["dialogue"])
