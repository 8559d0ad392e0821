"""RunTracker: how a run whose stream broke is finished from WatchDialogue items.

Pure logic, no server: the end-to-end behaviour (a proxy cutting the stream, a server
restarted mid-run) is in tests/e2e/test_client_resume.py.
"""

from __future__ import annotations

import grpc
from parley.client._runs import RunTracker, stream_lost
from parley.client.errors import ErrorDescription, ParleyRpcError
from parley.v1 import dialogue_pb2 as pb

PARTICIPANTS = [
    pb.Participant(
        persona=pb.Persona(name="Ann", role="host", visual_identity=pb.VisualIdentity(icon="🦊"))
    ),
    pb.Participant(persona=pb.Persona(name="Bob", role="guest")),
    pb.Participant(persona=pb.Persona(name="Cy")),
]
DIALOGUE = "dialogues/tea"


def agent(name: str) -> pb.Speaker:
    return pb.Speaker(kind=pb.SPEAKER_KIND_AGENT, name=name)


def event(sequence: int, turn: int = 2, **fields: object) -> pb.SessionEvent:
    return pb.SessionEvent(dialogue=DIALOGUE, turn=turn, sequence=sequence, **fields)  # type: ignore[arg-type]


def reply(seq: int, name: str, turn: int = 2) -> pb.WatchDialogueResponse:
    return pb.WatchDialogueResponse(
        message=pb.Message(
            seq=seq,
            turn=turn,
            speaker=agent(name),
            content=f"{name}: hello",
            origin=pb.MESSAGE_ORIGIN_AGENT_GENERATED,
            type=pb.MESSAGE_TYPE_CONVERSATIONAL,
        )
    )


def started_tracker() -> RunTracker:
    """A run of turn 2 (input at seq 5) whose stream delivered `started` and Bob's reply."""
    tracker = RunTracker()
    tracker.observe(
        event(1, started=pb.SessionStarted(participants=["Ann", "Bob", "Cy"], input_seqs=[5]))
    )
    tracker.observe(
        event(
            2,
            turn_completed=pb.Turn(
                speaker=agent("Bob"), content="Bob: hello", turn=2, message_seq=6
            ),
        )
    )
    return tracker


def kinds(events: list[pb.SessionEvent]) -> list[str | None]:
    return [e.WhichOneof("event") for e in events]


def test_resumable_only_between_started_and_completed() -> None:
    tracker = RunTracker()
    assert not tracker.resumable
    tracker = started_tracker()
    assert tracker.resumable
    assert tracker.resume_after == 5
    assert tracker.owed == ["Ann", "Cy"]
    tracker.observe(event(3, completed=pb.SessionCompleted(turn_count=3)))
    assert not tracker.resumable


def test_replies_from_the_log_become_turns_and_the_run_completes() -> None:
    tracker = started_tracker()
    replayed = [
        # Bob's reply again (already delivered by the stream), then Cy's and Ann's.
        tracker.resume_events(reply(6, "Bob"), PARTICIPANTS),
        tracker.resume_events(reply(7, "Cy"), PARTICIPANTS),
        tracker.resume_events(reply(8, "Ann"), PARTICIPANTS),
    ]
    assert replayed[0] == []
    cy, ann_and_end = replayed[1], replayed[2]
    assert kinds(cy) == ["turn_completed"]
    assert cy[0].turn_completed.message_seq == 7
    assert cy[0].turn_completed.participant_index == 2
    assert kinds(ann_and_end) == ["turn_completed", "completed"]
    assert ann_and_end[1].completed == pb.SessionCompleted(turn_count=3, failure_count=0)
    assert [e.sequence for e in (*cy, *ann_and_end)] == [3, 4, 5]
    assert {e.turn for e in (*cy, *ann_and_end)} == {2}
    assert {e.dialogue for e in (*cy, *ann_and_end)} == {DIALOGUE}
    assert tracker.completed is not None
    # Once complete, later items mean nothing to this run.
    assert tracker.resume_events(reply(9, "Ann", turn=3), PARTICIPANTS) == []


def test_live_failures_and_the_servers_completion_pass_through() -> None:
    tracker = started_tracker()
    failed = pb.TurnFailed(speaker=agent("Cy"), participant_index=2, code="AGENT_TIMEOUT")
    first = tracker.resume_events(
        pb.WatchDialogueResponse(event=event(3, turn_failed=failed)), PARTICIPANTS
    )
    # Events of other turns, and `started` again, are not this run's news.
    assert (
        tracker.resume_events(
            pb.WatchDialogueResponse(event=event(1, turn=1, started=pb.SessionStarted())),
            PARTICIPANTS,
        )
        == []
    )
    server_count = pb.SessionCompleted(turn_count=2, failure_count=2)
    last = tracker.resume_events(
        pb.WatchDialogueResponse(event=event(9, completed=server_count)), PARTICIPANTS
    )
    assert kinds(first) == ["turn_failed"]
    assert first[0].turn_failed.code == "AGENT_TIMEOUT"
    assert kinds(last) == ["completed"]
    assert last[0].completed == server_count  # the server's counts win
    assert last[0].sequence == 4


def test_a_cancel_notice_ends_the_run_with_the_owed_participants_failed() -> None:
    tracker = started_tracker()
    notice = pb.WatchDialogueResponse(
        message=pb.Message(
            seq=7,
            turn=2,
            speaker=pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System"),
            type=pb.MESSAGE_TYPE_NOTIFICATION,
            origin=pb.MESSAGE_ORIGIN_INCOMING,
            content="Turn 2 was cancelled before every participant replied.",
            metadata={"parley.run_end": "cancelled"},
        )
    )
    events = tracker.resume_events(notice, PARTICIPANTS)
    assert kinds(events) == ["turn_failed", "turn_failed", "completed"]
    ann, cy = (e.turn_failed for e in events[:2])
    assert (ann.speaker.name, ann.speaker.icon, ann.speaker.role) == ("Ann", "🦊", "host")
    assert (ann.code, ann.participant_index, ann.retryable) == ("RUN_CANCELLED", 0, True)
    assert (cy.speaker.name, cy.participant_index) == ("Cy", 2)
    assert events[2].completed == pb.SessionCompleted(turn_count=1, failure_count=2)


def test_a_later_turn_means_the_run_was_interrupted() -> None:
    tracker = started_tracker()
    events = tracker.resume_events(reply(9, "Ann", turn=3), PARTICIPANTS)
    assert kinds(events) == ["turn_failed", "turn_failed", "completed"]
    assert {e.turn_failed.code for e in events[:2]} == {"RUN_INTERRUPTED"}


def test_other_messages_of_the_turn_are_ignored() -> None:
    tracker = started_tracker()
    user = pb.WatchDialogueResponse(
        message=pb.Message(
            seq=7, turn=2, speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Ann"), content="x"
        )
    )
    stranger = reply(8, "Zed")  # not called in this run
    assert tracker.resume_events(user, PARTICIPANTS) == []
    assert tracker.resume_events(stranger, PARTICIPANTS) == []
    assert tracker.owed == ["Ann", "Cy"]


def test_a_removed_participant_gets_index_minus_one() -> None:
    tracker = started_tracker()
    (turn,) = tracker.resume_events(reply(7, "Cy"), PARTICIPANTS[:2])
    assert turn.turn_completed.participant_index == -1


def test_only_unavailable_counts_as_a_lost_stream() -> None:
    def error(code: grpc.StatusCode) -> ParleyRpcError:
        return ParleyRpcError(ErrorDescription(code=code, message="x"))

    assert stream_lost(error(grpc.StatusCode.UNAVAILABLE))
    assert not stream_lost(error(grpc.StatusCode.CANCELLED))
    assert not stream_lost(error(grpc.StatusCode.NOT_FOUND))
