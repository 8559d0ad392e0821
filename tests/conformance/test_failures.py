"""One run, steps 5 and 6 — failure isolation, counts, and Run as RunSession collected."""

from __future__ import annotations

from parley.v1 import dialogue_pb2 as pb

from .harness import (
    SLOW_MS,
    Dialogues,
    broadcast,
    completed,
    echo,
    failures,
    kinds,
    log_view,
    order,
    sequential,
    started,
    turns,
)


def test_failed_call_is_a_turn_failed_and_the_run_goes_on(dialogues: Dialogues) -> None:
    """Rule: One run §5 — "A failed call stores nothing and becomes a `TurnFailed` event;
    the run goes on with the other participants"; §6: the stream "ends with status OK,
    even when some participants failed"."""
    d = dialogues.create(echo("A"), echo("B", role="critic", icon="🦉", fail="always"), echo("C"))
    events = d.stream("go")
    assert order(events) == ["A", "!B", "C"]
    failed = failures(events)[0]
    assert failed.speaker == pb.Speaker(
        kind=pb.SPEAKER_KIND_AGENT, name="B", role="critic", icon="🦉"
    )
    assert failed.participant_index == 1
    assert failed.code == "AGENT_ERROR"
    assert failed.message
    assert failed.attempts >= 1
    assert [m.speaker.name for m in d.messages()] == ["System", "A", "C"]


def test_session_completed_counts_turns_and_failures(dialogues: Dialogues) -> None:
    """Rule: One run §6 "Finish." — "`SessionCompleted` carries the counts of turns and
    failures"."""
    d = dialogues.create(echo("A", fail="always"), echo("B"), echo("C", fail="always"), echo("D"))
    events = d.stream("go")
    assert (completed(events).turn_count, completed(events).failure_count) == (2, 2)
    assert len(turns(events)) == 2
    assert len(failures(events)) == 2


def test_everyone_failing_still_ends_ok(dialogues: Dialogues) -> None:
    """Rule: One run §6 "Finish." — the stream ends with status OK even when every
    participant failed; every participant ends as a turn or a failure."""
    d = dialogues.create(echo("A", fail="always"), echo("B", fail="always"))
    events = d.stream("go")
    assert kinds(events) == ["started", "turn_failed", "turn_failed", "completed"]
    assert (completed(events).turn_count, completed(events).failure_count) == (0, 2)
    assert [m.speaker.name for m in d.messages()] == ["System"]


def test_unary_run_reports_failures_without_an_error(dialogues: Dialogues) -> None:
    """Rule: One run §6 + "Run, which is RunSession collected" — Run returns the failures
    beside the turns and `completed`, with status OK."""
    d = dialogues.create(echo("A"), echo("B", fail="always"))
    response = d.run("go")
    assert response.completed
    assert [t.speaker.name for t in response.turns] == ["A"]
    assert [(f.speaker.name, f.participant_index) for f in response.failures] == [("B", 1)]


def test_fail_n_recovers_after_n_calls(dialogues: Dialogues) -> None:
    """Rule: One run §5 — a failure is per call: a participant whose first two calls fail
    replies on the third, and each run reports exactly what happened."""
    d = dialogues.create(echo("A"), echo("B", fail="2"))
    assert order(d.stream("1")) == ["A", "!B"]
    assert order(d.stream("2")) == ["A", "!B"]
    assert order(d.stream("3")) == ["A", "B"]


def run_both_ways(dialogues: Dialogues, model: pb.ExecutionModel | None) -> None:
    participants = (
        echo("A", delay_ms=SLOW_MS, icon="🅰"),
        echo("B", fail="1"),
        echo("C", role="scribe"),
    )
    streamed = dialogues.create(*participants, model=model)
    collected = dialogues.create(*participants, model=model)
    for text in ("one", "two"):
        events = streamed.stream(text)
        response = collected.run(text)
        assert response.completed
        assert response.turn == events[0].turn
        assert response.started == started(events)
        assert [
            (t.speaker, t.content, t.turn, t.message_seq, t.participant_index)
            for t in response.turns
        ] == [
            (t.speaker, t.content, t.turn, t.message_seq, t.participant_index)
            for t in turns(events)
        ]
        assert [(f.speaker, f.participant_index, f.code) for f in response.failures] == [
            (f.speaker, f.participant_index, f.code) for f in failures(events)
        ]
    assert log_view(collected.messages()) == log_view(streamed.messages())
    assert [m.speaker for m in collected.messages()] == [m.speaker for m in streamed.messages()]


def test_run_equals_run_session_collected_broadcast(dialogues: Dialogues) -> None:
    """Rule: "One run of the dialogue (RunSession, and Run, which is RunSession
    collected)"; Deliberate differences: "Run is RunSession collected: one engine" — same
    turns, same order, same failures, same log (broadcast in completion order)."""
    run_both_ways(dialogues, None)


def test_run_equals_run_session_collected_participant_order(dialogues: Dialogues) -> None:
    """Rule: Run is RunSession collected — also for PARTICIPANT_ORDER broadcast, where
    emission order differs from storing order."""
    run_both_ways(dialogues, broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER))


def test_run_equals_run_session_collected_sequential(dialogues: Dialogues) -> None:
    """Rule: Run is RunSession collected — also for Sequential, with a failed step."""
    run_both_ways(dialogues, sequential("C"))
