"""One run, step 4 — "Deliver." (per-participant cursors) and step 5 — "Call, store, emit."."""

from __future__ import annotations

from parley.v1 import dialogue_pb2 as pb

from .harness import (
    SLOW_MS,
    Dialogues,
    broadcast,
    echo,
    echo_reply,
    failures,
    order,
    quoted,
    reply_of,
    seen_by,
    turns,
    user,
)


def test_first_run_delivers_the_input_to_everyone(dialogues: Dialogues) -> None:
    """Rule: One run §4 "Deliver." — a called participant "receives, in log order, every
    message it has not yet received"; broadcast calls are concurrent, so nobody sees a
    reply of the same run."""
    d = dialogues.create(echo("A"), echo("B"), echo("C"))
    events = d.stream("kick-off")
    for name in ("A", "B", "C"):
        assert reply_of(events, name) == echo_reply(name, "[System]: kick-off")


def test_each_message_is_delivered_once_and_never_the_own_reply(dialogues: Dialogues) -> None:
    """Rule: One run §4 "Deliver." — every message the participant "has not yet received,
    except its own replies; then its cursor moves to the end of what it was given"."""
    d = dialogues.create(echo("A"), echo("B"))
    first = d.stream("one")
    second = d.stream("two")
    assert seen_by(second, "A") == [quoted("B", reply_of(first, "B")), "[System]: two"]
    assert seen_by(second, "B") == [quoted("A", reply_of(first, "A")), "[System]: two"]
    third = d.stream("three")
    assert seen_by(third, "A") == [quoted("B", reply_of(second, "B")), "[System]: three"]


def test_newlines_inside_delivered_content_are_escaped_by_echo(dialogues: Dialogues) -> None:
    """Rule: One run §4 "Deliver." — messages arrive whole and in log order; the echo
    instrument writes a newline inside a content as the two characters `\\n`."""
    d = dialogues.create(echo("A"))
    events = d.stream("line one\nline two", speaker=user("Ann"))
    assert reply_of(events, "A") == "A:\n[Ann]: line one\\nline two"


def test_failed_participant_catches_up_on_its_next_call(dialogues: Dialogues) -> None:
    """Rule: One run §4 "Deliver." + §5 — "A failed call stores nothing": its cursor does
    not move, so its next call receives everything it missed."""
    d = dialogues.create(echo("A"), echo("B", fail="1"))
    first = d.stream("one")
    assert order(first) == ["A", "!B"]
    second = d.stream("two")
    assert seen_by(second, "B") == [
        "[System]: one",
        quoted("A", reply_of(first, "A")),
        "[System]: two",
    ]
    assert seen_by(second, "A") == ["[System]: two"]


def test_a_participant_receives_each_message_once_across_failures(dialogues: Dialogues) -> None:
    """Rule: One run §4 "Deliver." — after catching up, the cursor is at the end of what
    was given: the run after the catch-up delivers only what is new."""
    d = dialogues.create(echo("A"), echo("B", fail="2"))
    d.stream("one")
    d.stream("two")
    third = d.stream("three")
    assert [line.split("]")[0] for line in seen_by(third, "B")] == [
        "[System",
        "[A",
        "[System",
        "[A",
        "[System",
    ]
    fourth = d.stream("four")
    assert seen_by(fourth, "B") == [quoted("A", reply_of(third, "A")), "[System]: four"]


def test_reply_is_stored_before_it_is_emitted(dialogues: Dialogues) -> None:
    """Rule: One run §5 "Call, store, emit." — "Each reply is appended to the log ... the
    moment it completes, exactly once, before it is emitted": when the client holds the
    Turn event, ListMessages already returns it (while another call is still running)."""
    d = dialogues.create(echo("Slow", delay_ms=SLOW_MS), echo("Fast"))
    stream = d.events(d.request("go"))
    for event in stream:
        if event.HasField("turn_completed"):
            turn = event.turn_completed
            assert turn.speaker.name == "Fast"
            log = {m.seq: m for m in d.messages()}
            assert turn.message_seq in log
            assert log[turn.message_seq].content == turn.content
            break
    rest = list(stream)
    assert order(rest) == ["Slow"]


def test_turn_event_matches_the_stored_message(dialogues: Dialogues) -> None:
    """Rule: One run §5 "Call, store, emit." — each reply is appended "(origin
    agent_generated, the speaker's icon included)"; the Turn's message_seq names it."""
    d = dialogues.create(
        echo("Ada", role="Engineer", icon="🦊"), echo("Bo", role="Designer", icon="🐙")
    )
    events = d.stream("hello")
    log = {m.seq: m for m in d.messages()}
    for index, turn in enumerate(sorted(turns(events), key=lambda t: t.participant_index)):
        message = log[turn.message_seq]
        assert message.content == turn.content
        assert message.turn == turn.turn == 1
        assert message.speaker == turn.speaker
        assert message.origin == pb.MESSAGE_ORIGIN_AGENT_GENERATED
        assert message.type == pb.MESSAGE_TYPE_CONVERSATIONAL
        assert turn.participant_index == index
    speakers = {t.speaker.name: t.speaker for t in turns(events)}
    assert speakers["Ada"] == pb.Speaker(
        kind=pb.SPEAKER_KIND_AGENT, name="Ada", role="Engineer", icon="🦊"
    )
    assert speakers["Bo"].icon == "🐙"


def test_each_reply_is_stored_exactly_once(dialogues: Dialogues) -> None:
    """Rule: One run §5 — each reply is appended "exactly once" (llm-toolkit stored
    EXPLICIT-order replies twice; Deliberate differences: "honours names; stores once")."""
    d = dialogues.create(
        echo("A", delay_ms=SLOW_MS),
        echo("B"),
        echo("C"),
        model=pb.ExecutionModel(
            broadcast=pb.Broadcast(order=pb.BROADCAST_ORDER_EXPLICIT, explicit_order=["C", "A"])
        ),
    )
    events = d.stream("count me")
    log = d.messages()
    assert len(log) == 4
    assert sorted(m.seq for m in log if m.origin == pb.MESSAGE_ORIGIN_AGENT_GENERATED) == sorted(
        t.message_seq for t in turns(events)
    )
    assert failures(events) == []


def test_finished_replies_survive_a_dropped_stream(dialogues: Dialogues) -> None:
    """Rule: One run §5 — replies are stored "the moment it completes ... before it is
    emitted"; Deliberate differences: "always stored at completion, emitted later" (in
    llm-toolkit a dropped PARTICIPANT_ORDER stream lost finished replies). `Last` finished
    with `First` but waits behind `Slow`; the client drops the stream after `First`."""
    d = dialogues.create(
        echo("First"),
        echo("Slow", delay_ms=10 * SLOW_MS),
        echo("Last"),
        model=broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )
    call = d.events(d.request("go"))
    for event in call:
        if event.HasField("turn_completed"):
            assert event.turn_completed.speaker.name == "First"
            break
    call.cancel()  # type: ignore[no-untyped-call]
    # The log may go on with a notice that turn 1 was cut short; the replies are there.
    log = d.messages()
    assert [m.speaker.name for m in log[:3]] == ["System", "First", "Last"]
    assert log[2].content == echo_reply("Last", "[System]: go")
    assert log[2].origin == pb.MESSAGE_ORIGIN_AGENT_GENERATED
