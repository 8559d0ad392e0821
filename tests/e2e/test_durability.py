"""SIGKILL after some turns were streamed: every streamed turn is in the log after a restart
on the same SQLite file, and the dialogue runs again (the dead run's lease is released).
"""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

from tests.e2e.harness import ServerLauncher

pytestmark = pytest.mark.e2e

RPC_TIMEOUT_S = 30.0
DIALOGUE = "dialogues/durable"


def participant(name: str, delay_ms: int, icon: str = "") -> pb.Participant:
    return pb.Participant(
        persona=pb.Persona(name=name, visual_identity=pb.VisualIdentity(icon=icon)),
        agent="echo",
        agent_options={"delay_ms": str(delay_ms)},
    )


def whole_log(stub: pb_grpc.DialogueServiceStub, dialogue: str) -> list[pb.Message]:
    messages: list[pb.Message] = []
    token = ""
    while True:
        page = stub.ListMessages(
            pb.ListMessagesRequest(dialogue=dialogue, page_token=token), timeout=RPC_TIMEOUT_S
        )
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


def escaped(content: str) -> str:
    return content.replace("\n", "\\n")


def test_streamed_turns_survive_sigkill(launcher: ServerLauncher, tmp_path: Path) -> None:
    store = tmp_path / "durable.db"
    doomed = launcher.start(store)
    with doomed.channel() as channel:
        stub = pb_grpc.DialogueServiceStub(channel)
        stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="durable",
                dialogue=pb.Dialogue(
                    participants=[
                        participant("Ann", 0, icon="🦊"),
                        participant("Bob", 0),
                        # Still thinking when the server dies.
                        participant("Cy", 30_000),
                    ]
                ),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        stream = stub.RunSession(
            pb.RunSessionRequest(dialogue=DIALOGUE, text="before the crash"), timeout=120
        )
        streamed: list[pb.Turn] = []
        for event in stream:
            assert event.WhichOneof("event") in {"started", "turn_completed"}
            if event.HasField("turn_completed"):
                streamed.append(event.turn_completed)
            if len(streamed) == 2:
                break
        assert len(streamed) == 2, "the run ended before the fast participants replied"
        doomed.signal(signal.SIGKILL)
        assert doomed.wait() == -signal.SIGKILL
        with pytest.raises(grpc.RpcError) as broken:
            list(stream)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE

    revived = launcher.start(store)
    with revived.channel() as channel:
        stub = pb_grpc.DialogueServiceStub(channel)
        log = whole_log(stub, DIALOGUE)
        # The prompt, the two streamed replies, and the notice the restarted store adds
        # for the run that died: nothing else, Cy never finished.
        assert [m.seq for m in log] == [1, 2, 3, 4], log
        prompt, notice = log[0], log[3]
        assert (prompt.speaker.name, prompt.content, prompt.turn) == (
            "System",
            "before the crash",
            1,
        )
        by_seq = {message.seq: message for message in log}
        for turn in streamed:
            stored = by_seq[turn.message_seq]
            assert stored.content == turn.content
            assert stored.turn == turn.turn == 1
            assert stored.speaker.name == turn.speaker.name
            assert stored.speaker.icon == turn.speaker.icon
            assert stored.origin == pb.MESSAGE_ORIGIN_AGENT_GENERATED
        assert {turn.speaker.name for turn in streamed} == {"Ann", "Bob"}
        assert (notice.speaker.kind, notice.turn, notice.type) == (
            pb.SPEAKER_KIND_SYSTEM,
            1,
            pb.MESSAGE_TYPE_NOTIFICATION,
        )
        assert notice.metadata["parley.run_end"] == "interrupted"

        dialogue = stub.GetDialogue(pb.GetDialogueRequest(name=DIALOGUE), timeout=RPC_TIMEOUT_S)
        assert (dialogue.latest_turn, dialogue.message_count) == (1, 4)

        # Cy's run died with the first process; without its lease released this would be
        # FAILED_PRECONDITION (RUN_IN_PROGRESS). Cy leaves so the run is quick.
        stub.RemoveParticipant(
            pb.RemoveParticipantRequest(dialogue=DIALOGUE, participant_name="Cy"),
            timeout=RPC_TIMEOUT_S,
        )
        run = stub.Run(
            pb.RunSessionRequest(dialogue=DIALOGUE, text="after the restart"),
            timeout=RPC_TIMEOUT_S,
        )
        assert run.completed
        assert run.turn == 2
        replies = {turn.speaker.name: turn.content for turn in run.turns}
        before = {turn.speaker.name: turn.content for turn in streamed}
        # Delivery cursors survived too: each hears the other's turn 1 reply, the notice
        # and the new prompt, and nothing it had already received.
        news = f"[System]: {escaped(notice.content)}\n[System]: after the restart"
        assert replies == {
            "Ann": f"Ann:\n[Bob]: {escaped(before['Bob'])}\n{news}",
            "Bob": f"Bob:\n[Ann]: {escaped(before['Ann'])}\n{news}",
        }
