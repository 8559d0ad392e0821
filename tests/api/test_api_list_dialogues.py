"""ListDialogues over gRPC, on a server of this module's own (MemoryStore) so pages are exact.

Only `test_pages_in_name_order` leaves dialogues behind; the other tests delete what they
create, so its expectations hold whatever order the tests run in.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .support import BackgroundServer, Stub, assert_failure, create, memory_server, rpc_failure


@pytest.fixture(scope="module")
def parley_server() -> Iterator[BackgroundServer]:
    """Overrides conftest's server: an empty in-memory one for this module only."""
    server = memory_server()
    yield server
    server.stop()


def listing(stub: Stub, size: int = 0, token: str = "") -> pb.ListDialoguesResponse:
    return stub.ListDialogues(pb.ListDialoguesRequest(page_size=size, page_token=token))


def names(response: pb.ListDialoguesResponse) -> list[str]:
    return [d.name for d in response.dialogues]


def test_pages_in_name_order(stub: Stub) -> None:
    assert names(listing(stub)) == []
    ids = ["d-3", "d-1", "d-5", "d-2", "d-4"]
    created = {d.name: d for d in (create(stub, [], dialogue_id=i) for i in ids)}

    first = listing(stub, 2)
    second = listing(stub, 2, first.next_page_token)
    third = listing(stub, 2, second.next_page_token)

    assert names(first) == ["dialogues/d-1", "dialogues/d-2"]
    assert names(second) == ["dialogues/d-3", "dialogues/d-4"]
    assert names(third) == ["dialogues/d-5"]
    assert first.next_page_token
    assert second.next_page_token
    assert third.next_page_token == ""
    # Listed dialogues are complete resources.
    for response in (first, second, third):
        for dialogue in response.dialogues:
            assert dialogue == created[dialogue.name]

    # 0 means the default page size; a page ending at the last dialogue has no token.
    everything = listing(stub)
    assert names(everything) == [f"dialogues/d-{n}" for n in range(1, 6)]
    assert everything.next_page_token == ""
    exact = listing(stub, 5)
    assert len(exact.dialogues) == 5
    assert exact.next_page_token == ""

    # A deleted dialogue disappears; a token stays valid across changes.
    token = listing(stub, 1).next_page_token
    stub.DeleteDialogue(pb.DeleteDialogueRequest(name="dialogues/d-2"))
    assert names(listing(stub, 2, token)) == ["dialogues/d-3", "dialogues/d-4"]
    assert "dialogues/d-2" not in names(listing(stub))


@pytest.mark.parametrize(
    ("size", "token", "violations"),
    [
        pytest.param(-1, "", ["page_size"], id="negative-page-size"),
        pytest.param(0, "garbage", ["page_token"], id="garbage-token"),
        pytest.param(0, "bm90IGpzb24=", ["page_token"], id="base64-not-json"),
        pytest.param(-2, "garbage", ["page_size", "page_token"], id="both"),
    ],
)
def test_list_dialogues_invalid_argument(
    stub: Stub, size: int, token: str, violations: list[str]
) -> None:
    failure = rpc_failure(lambda: listing(stub, size, token))
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations)


def test_a_list_messages_token_is_rejected(stub: Stub) -> None:
    dialogue = create(stub, [], dialogue_id="zz-messages-token")
    try:
        for n in range(2):
            stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text=f"m{n}"))
        token = stub.ListMessages(
            pb.ListMessagesRequest(dialogue=dialogue.name, page_size=1)
        ).next_page_token
        assert token

        failure = rpc_failure(lambda: listing(stub, token=token))

        assert_failure(
            failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["page_token"]
        )
    finally:
        stub.DeleteDialogue(pb.DeleteDialogueRequest(name=dialogue.name))
