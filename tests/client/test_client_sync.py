"""ParleyClient (blocking) against the fake service, plus the package's public surface."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import grpc
import pytest
from parley.client import builders as b
from parley.client.errors import ParleyRpcError
from parley.client.sync import ParleyClient
from parley.v1 import dialogue_pb2 as pb

if TYPE_CHECKING:
    from tests.client.conftest import FakeDialogueService


def test_package_exports_the_clients() -> None:
    import parley.client

    assert parley.client.__file__ is not None, (
        "parley.client resolves as a namespace package: the editable install predates "
        "client/parley/client/__init__.py; reinstall with .venv/bin/pip install -e ."
    )
    assert parley.client.ParleyClient is ParleyClient
    assert parley.client.ParleyRpcError is ParleyRpcError
    assert parley.client.dialogue_name("x") == "dialogues/x"


def test_dialogue_lifecycle(server: str, service: FakeDialogueService) -> None:
    with ParleyClient(server, timeout=5) as client:
        created = client.create_dialogue(b.dialogue("Review", [b.participant("Ada")]), "review")
        renamed = client.update_dialogue(
            pb.Dialogue(name="review", display_name="Renamed"), ["display_name"]
        )
        grown = client.add_participant("review", b.participant("Bo"))
        shrunk = client.remove_participant("review", "Ada")
        listed = [d.name for d in client.list_dialogues(page_size=1)]
        page = client.list_dialogues_page()
        client.delete_dialogue("dialogues/review")

    assert created.name == "dialogues/review"
    assert renamed.display_name == "Renamed"
    assert [p.persona.name for p in grown.participants] == ["Ada", "Bo"]
    assert not grown.participants[1].pending
    assert [p.persona.name for p in shrunk.participants] == ["Bo"]
    assert listed == ["dialogues/review"]
    assert [d.name for d in page.dialogues] == ["dialogues/review"]
    assert service.dialogues == {}
    assert service.calls("DeleteDialogue") == [pb.DeleteDialogueRequest(name="dialogues/review")]


def test_run_session_is_a_live_iterator(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    service.hold_after_first_turn = threading.Event()
    kinds: list[str | None] = []
    with ParleyClient(server, timeout=10) as client:
        for event in client.run_session("review", "Ready?", order="participant"):
            kinds.append(event.WhichOneof("event"))
            if event.HasField("turn_completed"):
                service.hold_after_first_turn.set()

    assert kinds == ["started", "turn_completed", "turn_completed", "turn_failed", "completed"]
    request = service.calls("RunSession")[0]
    assert isinstance(request, pb.RunSessionRequest)
    assert request.broadcast_order_override.order == pb.BROADCAST_ORDER_PARTICIPANT_ORDER


def test_run_and_history(server: str, review: pb.Dialogue) -> None:
    with ParleyClient(server) as client:
        response = client.run("review", "First")
        later = [m.seq for m in client.list_messages("review", after_seq=1, page_size=1)]
        page = client.list_messages_page("review", page_size=2)

    assert response.completed
    assert response.turn == 1
    assert [f.speaker.name for f in response.failures] == ["Cleo"]
    assert later == [2, 3]
    assert [m.seq for m in page.messages] == [1, 2]


def test_metadata_and_errors(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    with ParleyClient(server, metadata=[("authorization", "Bearer t")]) as client:
        with pytest.raises(ParleyRpcError) as missing:
            client.get_dialogue("nope", metadata=[("x-trace", "1")])
        with pytest.raises(ParleyRpcError) as empty_run:
            list(client.run_session("review"))
        with pytest.raises(ParleyRpcError) as exists:
            client.create_dialogue(b.dialogue("x", []), "review")

    assert (service.metadata[0]["authorization"], service.metadata[0]["x-trace"]) == (
        "Bearer t",
        "1",
    )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "dialogue dialogues/nope not found"
    assert isinstance(missing.value, grpc.RpcError), "existing `except grpc.RpcError` still works"
    assert empty_run.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [str(v) for v in empty_run.value.field_violations] == ["text: give text or messages"]
    assert exists.value.reason == "DIALOGUE_EXISTS"


def test_unreachable_server_is_unavailable(unused_address: str) -> None:
    with ParleyClient(unused_address, timeout=5) as client, pytest.raises(ParleyRpcError) as caught:
        client.get_dialogue("x")

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason == ""


def test_empty_dialogue_id_is_refused_locally() -> None:
    with ParleyClient("127.0.0.1:1") as client, pytest.raises(ValueError, match="required"):
        client.get_dialogue("  ")


def test_import_into_a_used_log_fails(server: str, review: pb.Dialogue) -> None:
    with ParleyClient(server) as client:
        client.run("review", "hello")
        exported = client.export_history("review")
        with pytest.raises(ParleyRpcError) as caught:
            client.import_history("review", exported, mode="as_system_prompt")
        with pytest.raises(ValueError, match="unknown import mode 'sideways'"):
            client.import_history("review", exported, mode="sideways")

    assert json.loads(exported)[0] == {"speaker": {"name": "System"}, "content": "hello"}
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "LOG_NOT_EMPTY"
