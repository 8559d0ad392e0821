"""One run, step 1 — "Store the input first." and the turn numbering of the Vocabulary."""

from __future__ import annotations

import grpc
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    Dialogues,
    agent_speaker,
    data_attachment,
    echo,
    log_view,
    rpc_failure,
    said,
    seen_by,
    started,
    system_speaker,
    turns,
    uri_attachment,
    user,
)


def test_bare_text_is_stored_as_the_system_speaker(dialogues: Dialogues) -> None:
    """Rule: One run §1 "Store the input first." — "A bare text prompt becomes a `system`
    speaker message" (named `System`), appended with origin `incoming` and turn N."""
    d = dialogues.create(echo("A"))
    d.stream("hello")
    first = d.messages()[0]
    assert first.seq == 1
    assert first.turn == 1
    assert first.speaker == pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System")
    assert first.content == "hello"
    assert first.origin == pb.MESSAGE_ORIGIN_INCOMING
    assert first.type == pb.MESSAGE_TYPE_CONVERSATIONAL


def test_text_with_a_user_speaker_is_stored_as_that_user(dialogues: Dialogues) -> None:
    """Rule: One run §1 "Store the input first." — a bare text prompt is a system message
    "unless the request names a user speaker"."""
    d = dialogues.create(echo("A"))
    events = d.stream("hi team", speaker=user("Ann", "PM"))
    first = d.messages()[0]
    assert first.speaker == pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Ann", role="PM")
    assert first.origin == pb.MESSAGE_ORIGIN_INCOMING
    assert seen_by(events, "A") == ["[Ann]: hi team"]


def test_input_messages_are_stored_in_order_then_the_text(dialogues: Dialogues) -> None:
    """Rule: One run §1 "Store the input first." — "Each input message is appended with
    origin `incoming` and turn N" in request order; the text prompt comes after them."""
    d = dialogues.create(echo("A"))
    events = d.stream(
        "and now?",
        messages=[
            said(user("Ann"), "first"),
            said(agent_speaker("Outside", "bot"), "second"),
            said(system_speaker(), "third"),
        ],
    )
    log = d.messages()
    assert log_view(log[:4]) == [
        (1, 1, "Ann", "first"),
        (2, 1, "Outside", "second"),
        (3, 1, "System", "third"),
        (4, 1, "System", "and now?"),
    ]
    assert [m.speaker.kind for m in log[:4]] == [
        pb.SPEAKER_KIND_USER,
        pb.SPEAKER_KIND_AGENT,
        pb.SPEAKER_KIND_SYSTEM,
        pb.SPEAKER_KIND_SYSTEM,
    ]
    assert all(m.origin == pb.MESSAGE_ORIGIN_INCOMING for m in log[:4])
    assert list(started(events).input_seqs) == [1, 2, 3, 4]
    assert seen_by(events, "A") == [
        "[Ann]: first",
        "[Outside]: second",
        "[System]: third",
        "[System]: and now?",
    ]


def test_a_system_speaker_is_always_named_system(dialogues: Dialogues) -> None:
    """Rule: Vocabulary — "`speaker` (system — always named `System` —, user{name, role} or
    agent{name, role, icon})"."""
    d = dialogues.create(echo("A"))
    d.stream(messages=[said(pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="Root"), "boot")])
    assert d.messages()[0].speaker.name == "System"


def test_message_type_and_metadata_are_stored(dialogues: Dialogues) -> None:
    """Rule: Vocabulary — a message carries `type` (conversational, notification, system,
    context_info, or a custom string) and free-form metadata, stored with the input."""
    d = dialogues.create(echo("A"))
    custom = pb.InputMessage(
        speaker=user("Ann"),
        content="I vote yes",
        type=pb.MESSAGE_TYPE_CUSTOM,
        custom_type="vote",
        metadata={"ballot": "7"},
    )
    notice = said(system_speaker(), "heads up", type=pb.MESSAGE_TYPE_NOTIFICATION)
    d.stream(messages=[custom, notice])
    first, second = d.messages()[:2]
    assert (first.type, first.custom_type, dict(first.metadata)) == (
        pb.MESSAGE_TYPE_CUSTOM,
        "vote",
        {"ballot": "7"},
    )
    assert second.type == pb.MESSAGE_TYPE_NOTIFICATION


def test_attachments_travel_with_their_message(dialogues: Dialogues) -> None:
    """Rule: One run §1 "Store the input first." — "Attachments travel with the message
    they belong to": an input message's files stay on it, the request's files on the text."""
    d = dialogues.create(echo("A"))
    on_message = data_attachment("notes.txt", b"alpha")
    on_text = uri_attachment("diagram.png", "https://example.test/diagram.png")
    d.stream(
        "see files",
        messages=[said(user("Ann"), "mine", attachments=[on_message])],
        attachments=[on_text],
    )
    first, second = d.messages()[:2]
    assert list(first.attachments) == [on_message]
    assert list(second.attachments) == [on_text]


def test_empty_input_is_invalid_and_nothing_is_stored(dialogues: Dialogues) -> None:
    """Rule: One run §1 "Store the input first." — "An input with no text, no messages and
    no attachments is INVALID_ARGUMENT (nothing is stored)"."""
    d = dialogues.create(echo("A"))
    for call in (lambda: d.stream(), lambda: d.run()):
        failure = rpc_failure(call)
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "text" in failure.violations
    after = d.get()
    assert (after.message_count, after.latest_turn) == (0, 0)
    assert d.messages() == []
    # A refused run opened no turn: the next valid run is turn 1.
    assert d.stream("now")[0].turn == 1


def test_unknown_dialogue_is_not_found_before_anything_runs(dialogues: Dialogues) -> None:
    """Rule: One run §6 "Finish." — "Only a problem with the request or the dialogue itself
    (unknown dialogue, ...) ends the RPC with an error status"."""
    from .harness import Dialogue

    missing = Dialogue(dialogues.stub, dialogues.new_id())
    for call in (lambda: missing.stream("hi"), lambda: missing.run("hi")):
        failure = rpc_failure(call)
        assert failure.code == grpc.StatusCode.NOT_FOUND
        assert failure.reason == "DIALOGUE_NOT_FOUND"


def test_every_run_opens_the_next_turn(dialogues: Dialogues) -> None:
    """Rule: Vocabulary "Turn number" — "every call of RunSession/Run opens turn
    `N = latest turn + 1`; the incoming input and every reply produced for it carry `N`"."""
    d = dialogues.create(echo("A"), echo("B"))
    for n in (1, 3):
        events = d.stream(f"round {n}")
        assert {e.turn for e in events} == {n}
        assert {t.turn for t in turns(events)} == {n}
        if n == 1:  # turn 2 goes through the unary Run
            response = d.run("round 2")
            assert response.turn == 2
            assert {t.turn for t in response.turns} == {2}
    log = d.messages()
    assert [m.turn for m in log] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [m.seq for m in log] == list(range(1, 10))
    dialogue = d.get()
    assert (dialogue.latest_turn, dialogue.message_count) == (3, 9)


def test_a_run_that_does_not_react_still_takes_a_turn(dialogues: Dialogues) -> None:
    """Rule: Vocabulary "Turn number" and One run §2 — a run whose input calls for no
    reaction still opens turn N for its stored input; the next run is N + 1."""
    d = dialogues.create(echo("A"))
    d.stream(messages=[said(system_speaker(), "fyi", type=pb.MESSAGE_TYPE_CONTEXT_INFO)])
    events = d.stream("go")
    assert events[0].turn == 2
    assert [m.turn for m in d.messages()] == [1, 2, 2]
