"""AsyncParleyClient against a real grpc.aio server running the fake service."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import grpc
import pytest
from parley.client import builders as b
from parley.client.aio import AsyncParleyClient
from parley.client.errors import ParleyRpcError
from parley.v1 import dialogue_pb2 as pb

if TYPE_CHECKING:
    from tests.client.conftest import FakeDialogueService


async def test_dialogue_lifecycle_uses_canonical_names(
    server: str, service: FakeDialogueService
) -> None:
    async with AsyncParleyClient(server) as client:
        created = await client.create_dialogue(
            b.dialogue("Review", [b.participant("Ada")]), "dialogues/review"
        )
        fetched = await client.get_dialogue("review")
        renamed = await client.update_dialogue(
            pb.Dialogue(name="review", display_name="Design review"), ["display_name"]
        )
        grown = await client.add_participant(
            "review", b.participant("Bo"), pb.JoiningStrategy(full=pb.JoiningStrategy.Full())
        )
        shrunk = await client.remove_participant("dialogues/review", "Ada")
        await client.delete_dialogue("review")

    assert created.name == fetched.name == "dialogues/review"
    assert renamed.display_name == "Design review"
    assert [p.persona.name for p in grown.participants] == ["Ada", "Bo"]
    assert grown.participants[1].pending
    assert [p.persona.name for p in shrunk.participants] == ["Bo"]
    assert service.dialogues == {}
    create, get = service.calls("CreateDialogue")[0], service.calls("GetDialogue")[0]
    assert isinstance(create, pb.CreateDialogueRequest)
    assert create.dialogue_id == "review"
    assert get == pb.GetDialogueRequest(name="dialogues/review")
    update = service.calls("UpdateDialogue")[0]
    assert isinstance(update, pb.UpdateDialogueRequest)
    assert update.dialogue.name == "dialogues/review"
    assert list(update.update_mask.paths) == ["display_name"]


async def test_list_dialogues_walks_every_page(server: str, service: FakeDialogueService) -> None:
    async with AsyncParleyClient(server) as client:
        for index in range(5):
            await client.create_dialogue(b.dialogue("x", []), f"d{index}")
        names = [d.name async for d in client.list_dialogues(page_size=2)]
        first = await client.list_dialogues_page(page_size=2)

    assert names == [f"dialogues/d{index}" for index in range(5)]
    assert len(service.calls("ListDialogues")) == 3 + 1
    assert first.next_page_token == "2"


async def test_run_session_streams_events_in_order(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    async with AsyncParleyClient(server) as client:
        events = [event async for event in client.run_session("review", "Ship it?")]

    kinds = [event.WhichOneof("event") for event in events]
    assert kinds == ["started", "turn_completed", "turn_completed", "turn_failed", "completed"]
    assert [event.sequence for event in events] == [1, 2, 3, 4, 5]
    assert events[1].turn_completed.content == "Ada:\n[System]: Ship it?"
    assert events[3].turn_failed.code == "AGENT_ERROR"
    assert events[4].completed == pb.SessionCompleted(turn_count=2, failure_count=1)
    request = service.calls("RunSession")[0]
    assert request == pb.RunSessionRequest(dialogue="dialogues/review", text="Ship it?")


async def test_run_session_yields_each_turn_before_the_stream_ends(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    # The server withholds everything after Ada's turn until the test has seen it:
    # a client that buffered the stream would never get here.
    service.hold_after_first_turn = threading.Event()
    seen: list[str] = []
    async with AsyncParleyClient(server, timeout=10) as client:
        async for event in client.run_session("review", "Live?"):
            if event.HasField("turn_completed"):
                seen.append(event.turn_completed.speaker.name)
                service.hold_after_first_turn.set()

    assert seen == ["Ada", "Basil"]


async def test_run_sends_speaker_order_and_messages(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    async with AsyncParleyClient(server) as client:
        response = await client.run(
            "review",
            "Go",
            speaker="Dana",
            order="explicit:Basil,Ada",
            messages=[b.input_message("Background", message_type="context_info")],
        )

    assert response.completed
    assert [turn.speaker.name for turn in response.turns] == ["Ada", "Basil"]
    assert response.turns[0].content == "Ada:\n[Dana]: Go"
    request = service.calls("Run")[0]
    assert isinstance(request, pb.RunSessionRequest)
    assert request.speaker == pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Dana")
    assert request.broadcast_order_override == pb.Broadcast(
        order=pb.BROADCAST_ORDER_EXPLICIT, explicit_order=["Basil", "Ada"]
    )
    assert request.messages[0].type == pb.MESSAGE_TYPE_CONTEXT_INFO


async def test_list_messages_after_seq_across_pages(server: str, review: pb.Dialogue) -> None:
    async with AsyncParleyClient(server) as client:
        await client.run("review", "one")
        await client.run("review", "two")
        seqs = [m.seq async for m in client.list_messages("review", after_seq=2, page_size=2)]
        page = await client.list_messages_page("review", page_size=4)

    assert seqs == [3, 4, 5, 6]
    assert [m.seq for m in page.messages] == [1, 2, 3, 4]
    assert page.next_page_token


async def test_metadata_from_client_and_call(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    async with AsyncParleyClient(
        server, metadata=[("authorization", "Bearer s3cret")], timeout=5
    ) as client:
        await client.get_dialogue("review", metadata=[("x-request-id", "r-1")], timeout=2)
        _ = [event async for event in client.run_session("review", "hi")]

    assert service.metadata[0]["authorization"] == "Bearer s3cret"
    assert service.metadata[0]["x-request-id"] == "r-1"
    assert service.metadata[1]["authorization"] == "Bearer s3cret"


async def test_errors_carry_reason_and_violations(server: str, review: pb.Dialogue) -> None:
    async with AsyncParleyClient(server) as client:
        with pytest.raises(ParleyRpcError) as missing:
            await client.get_dialogue("nope")
        with pytest.raises(ParleyRpcError) as invalid:
            await client.create_dialogue(b.dialogue("x", [b.participant("")]), "Bad_Id")
        with pytest.raises(ParleyRpcError) as stream_missing:
            _ = [event async for event in client.run_session("nope", "hi")]

    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.reason == "DIALOGUE_NOT_FOUND"
    assert isinstance(missing.value.__cause__, grpc.aio.AioRpcError)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in invalid.value.field_violations] == [
        "dialogue_id",
        "dialogue.participants[0].persona.name",
    ]
    assert stream_missing.value.reason == "DIALOGUE_NOT_FOUND"


async def test_passed_channel_stays_open(server: str, review: pb.Dialogue) -> None:
    async with grpc.aio.insecure_channel(server) as channel:
        async with AsyncParleyClient(channel=channel) as client:
            await client.get_dialogue("review")
        again = await AsyncParleyClient(channel=channel).get_dialogue("review")

    assert again.name == "dialogues/review"


async def test_breaking_out_of_a_run_cancels_it(server: str, review: pb.Dialogue) -> None:
    async with AsyncParleyClient(server) as client:
        events = client.run_session("review", "hi")
        async for event in events:
            assert event.HasField("started")
            break
        await events.aclose()  # type: ignore[attr-defined]
        # The channel is still usable afterwards.
        assert (await client.get_dialogue("review")).name == "dialogues/review"


async def test_export_then_import_history(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    async with AsyncParleyClient(server) as client:
        await client.run("review", "hello")
        exported = await client.export_history("review", "full_json")
        await client.create_dialogue(b.dialogue("Copy", []), "copy")
        imported = await client.import_history("copy", exported)

    assert imported.message_count == 3
    assert service.logs["dialogues/copy"][0].content == "hello"
    assert service.calls("ExportHistory") == [
        pb.ExportHistoryRequest(dialogue="dialogues/review", format=pb.HISTORY_FORMAT_FULL_JSON)
    ]
    assert service.calls("ImportHistory")[0] == pb.ImportHistoryRequest(
        dialogue="dialogues/copy", content=exported, mode=pb.IMPORT_MODE_AS_MESSAGES
    )
