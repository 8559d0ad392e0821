"""RunSession and Run over gRPC: ordering, failures, counts, numbering, delivery cursors.

Every timing difference comes from echo `delay_ms`; every assertion is about order and
content, never about elapsed time.
"""

from __future__ import annotations

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .support import (
    Stub,
    all_messages,
    assert_failure,
    broadcast,
    create,
    echo,
    echo_reply,
    kinds,
    name_of,
    new_id,
    replies,
    rpc_failure,
    sequential,
    turn_speakers,
)

# Long enough that a delay-0 participant always finishes first, short enough to wait for.
SLOW_MS = 300
SLOWER_MS = 600


def run_session(stub: Stub, dialogue: str, text: str, **fields: object) -> list[pb.SessionEvent]:
    request = pb.RunSessionRequest(dialogue=dialogue, text=text, **fields)  # type: ignore[arg-type]
    return list(stub.RunSession(request))


def order_override(order: pb.BroadcastOrder, explicit: list[str] | None = None) -> pb.Broadcast:
    return pb.Broadcast(order=order, explicit_order=explicit or [])


# --- the shape of a run --------------------------------------------------------------


def test_run_session_streams_started_turns_completed(stub: Stub) -> None:
    dialogue = create(stub, [echo("Ada", role="Engineer", icon="🦊"), echo("Bob")])

    events = run_session(stub, dialogue.name, "hello")

    assert kinds(events) == ["started", "turn_completed", "turn_completed", "completed"]
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert {e.turn for e in events} == {1}
    assert {e.dialogue for e in events} == {dialogue.name}
    assert all(e.time.seconds > 0 for e in events)
    started = events[0].started
    assert list(started.participants) == ["Ada", "Bob"]
    assert started.execution_model == broadcast(pb.BROADCAST_ORDER_COMPLETION)
    assert list(started.input_seqs) == [1]
    by_name = replies(events)
    assert by_name["Ada"].content == echo_reply("Ada", ("System", "hello"))
    assert by_name["Bob"].content == echo_reply("Bob", ("System", "hello"))
    ada = by_name["Ada"]
    assert ada.speaker == pb.Speaker(
        kind=pb.SPEAKER_KIND_AGENT, name="Ada", role="Engineer", icon="🦊"
    )
    assert (ada.turn, ada.participant_index, by_name["Bob"].participant_index) == (1, 0, 1)
    assert ada.latency.ToTimedelta().total_seconds() >= 0
    assert events[-1].completed == pb.SessionCompleted(turn_count=2, failure_count=0)


def test_run_is_run_session_collected(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B", fail="always"), echo("C")])

    response = stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="collect"))

    assert response.dialogue == dialogue.name
    assert response.turn == 1
    assert response.completed
    assert list(response.started.participants) == ["A", "B", "C"]
    assert list(response.started.input_seqs) == [1]
    assert [t.speaker.name for t in response.turns] == ["A", "C"]
    assert [f.speaker.name for f in response.failures] == ["B"]
    assert response.turns[1].content == echo_reply("C", ("System", "collect"))
    assert not response.HasField("routing")
    log = all_messages(stub, dialogue.name)
    assert [m.seq for m in log] == [1, *(t.message_seq for t in response.turns)]


def test_session_event_sequence_and_turn_numbers_across_runs(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B"), echo("C", fail="always")])

    first = run_session(stub, dialogue.name, "one")
    second = run_session(stub, dialogue.name, "two")
    third = stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="three"))

    for events in (first, second):
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert {e.turn for e in first} == {1}
    assert {e.turn for e in second} == {2}
    assert {t.turn for t in replies(second).values()} == {2}
    assert third.turn == 3
    assert {t.turn for t in third.turns} == {3}
    got = stub.GetDialogue(pb.GetDialogueRequest(name=dialogue.name))
    assert got.latest_turn == 3
    assert got.message_count == 9  # 3 runs x (1 input + 2 replies; C stores nothing)
    assert [m.turn for m in all_messages(stub, dialogue.name)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_turn_message_seq_matches_the_log(stub: Stub) -> None:
    dialogue = create(
        stub,
        [echo("Ada", role="Engineer", icon="🦊"), echo("Bob", icon="🐻", delay_ms=SLOW_MS)],
    )

    events = run_session(stub, dialogue.name, "what is stored?")

    log = {m.seq: m for m in all_messages(stub, dialogue.name)}
    assert len(log) == 3
    incoming = log[events[0].started.input_seqs[0]]
    assert incoming.origin == pb.MESSAGE_ORIGIN_INCOMING
    assert incoming.speaker == pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System")
    assert (incoming.content, incoming.turn) == ("what is stored?", 1)
    for turn in replies(events).values():
        message = log[turn.message_seq]
        assert message.content == turn.content
        assert message.speaker == turn.speaker
        assert message.turn == turn.turn == 1
        assert message.origin == pb.MESSAGE_ORIGIN_AGENT_GENERATED
        assert message.type == pb.MESSAGE_TYPE_CONVERSATIONAL
    # The speaker's icon (and role) is kept on the stored messages.
    assert log[replies(events)["Ada"].message_seq].speaker.icon == "🦊"
    assert log[replies(events)["Ada"].message_seq].speaker.role == "Engineer"
    assert log[replies(events)["Bob"].message_seq].speaker.icon == "🐻"


def test_input_messages_and_user_speaker_are_stored_first(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    request = pb.RunSessionRequest(
        dialogue=dialogue.name,
        messages=[
            pb.InputMessage(
                speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Ana", role="PM"),
                content="line one\nline two",
                metadata={"source": "test"},
            ),
            pb.InputMessage(
                speaker=pb.Speaker(name="Ben"),  # UNSPECIFIED kind: a user
                content="background",
                type=pb.MESSAGE_TYPE_CONTEXT_INFO,
            ),
        ],
        text="and the prompt",
        speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Ana"),
    )

    response = stub.Run(request)

    assert list(response.started.input_seqs) == [1, 2, 3]
    log = all_messages(stub, dialogue.name)
    assert [(m.speaker.kind, m.speaker.name) for m in log[:3]] == [
        (pb.SPEAKER_KIND_USER, "Ana"),
        (pb.SPEAKER_KIND_USER, "Ben"),
        (pb.SPEAKER_KIND_USER, "Ana"),
    ]
    assert log[0].metadata == {"source": "test"}
    assert log[1].type == pb.MESSAGE_TYPE_CONTEXT_INFO
    assert all(m.origin == pb.MESSAGE_ORIGIN_INCOMING for m in log[:3])
    # Newlines inside a delivered content are echoed as the two characters \n.
    assert response.turns[0].content == echo_reply(
        "A", ("Ana", "line one\nline two"), ("Ben", "background"), ("Ana", "and the prompt")
    )
    assert "line one\\nline two" in response.turns[0].content


def test_input_that_calls_for_no_reaction_is_delivered_with_the_next_run(stub: Stub) -> None:
    dialogue = create(stub, [echo("A")])
    context_only = pb.RunSessionRequest(
        dialogue=dialogue.name,
        messages=[
            pb.InputMessage(
                speaker=pb.Speaker(name="Ops"), content="fyi", type=pb.MESSAGE_TYPE_CONTEXT_INFO
            )
        ],
    )

    quiet = list(stub.RunSession(context_only))

    assert kinds(quiet) == ["started", "completed"]
    assert list(quiet[0].started.participants) == []
    assert quiet[-1].completed == pb.SessionCompleted()
    reacting = stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="now react"))
    assert reacting.turn == 2
    assert reacting.turns[0].content == echo_reply("A", ("Ops", "fyi"), ("System", "now react"))


# --- broadcast ordering --------------------------------------------------------------


def test_completion_order_emits_the_fastest_first(stub: Stub) -> None:
    dialogue = create(
        stub,
        # Fast is added last and emitted first. Slow and Slower are added in their
        # completion order, so even a loop stalled past both delays (a tie, broken by
        # participant order) cannot change the expected result.
        [echo("Slow", delay_ms=SLOW_MS), echo("Slower", delay_ms=SLOWER_MS), echo("Fast")],
        model=broadcast(pb.BROADCAST_ORDER_COMPLETION),
    )

    events = run_session(stub, dialogue.name, "race")

    assert turn_speakers(events) == ["Fast", "Slow", "Slower"]
    # Stored as they completed: the log has the same order.
    assert [m.speaker.name for m in all_messages(stub, dialogue.name)[1:]] == [
        "Fast",
        "Slow",
        "Slower",
    ]


def test_completion_order_ties_go_out_in_participant_order(stub: Stub) -> None:
    names = ["Zoe", "Adam", "Mia", "Bo", "Eve"]
    dialogue = create(stub, [echo(name) for name in names])

    for text in ("first", "second"):
        events = run_session(stub, dialogue.name, text)
        assert turn_speakers(events) == names
        assert [replies(events)[n].participant_index for n in names] == [0, 1, 2, 3, 4]


def test_participant_order_waits_for_earlier_participants(stub: Stub) -> None:
    dialogue = create(
        stub,
        [echo("A", delay_ms=SLOW_MS), echo("B"), echo("C", delay_ms=SLOW_MS // 2)],
        model=broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )

    events = run_session(stub, dialogue.name, "in order")

    assert turn_speakers(events) == ["A", "B", "C"]
    # Each reply was stored when it completed, before it was emitted: B (no delay) first.
    seqs = {name: turn.message_seq for name, turn in replies(events).items()}
    assert seqs["B"] < seqs["A"]
    assert seqs["B"] < seqs["C"]


def test_participant_order_with_a_failure_in_front(stub: Stub) -> None:
    dialogue = create(
        stub,
        [echo("A", delay_ms=SLOW_MS, fail="always"), echo("B"), echo("C")],
        model=broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )

    events = run_session(stub, dialogue.name, "x")

    assert kinds(events) == [
        "started",
        "turn_failed",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    assert turn_speakers(events) == ["A", "B", "C"]


def test_explicit_order_names_first_then_the_rest_in_added_order(stub: Stub) -> None:
    dialogue = create(
        stub,
        [
            echo("A"),
            echo("B", delay_ms=SLOW_MS),
            echo("C", delay_ms=SLOW_MS // 2),
            echo("D"),
            echo("E", delay_ms=SLOW_MS // 3),
        ],
        model=broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["D", "B"]),
    )

    events = run_session(stub, dialogue.name, "explicit")

    assert turn_speakers(events) == ["D", "B", "A", "C", "E"]
    # Every participant is called, each reply stored exactly once.
    log = all_messages(stub, dialogue.name)
    assert sorted(m.speaker.name for m in log[1:]) == ["A", "B", "C", "D", "E"]
    assert events[0].started.execution_model == broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["D", "B"])


def test_order_override_lasts_one_run(stub: Stub) -> None:
    dialogue = create(stub, [echo("Slow", delay_ms=SLOW_MS), echo("Fast"), echo("Mid")])

    overridden = run_session(
        stub,
        dialogue.name,
        "override",
        broadcast_order_override=order_override(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )
    explicit = run_session(
        stub,
        dialogue.name,
        "explicit override",
        broadcast_order_override=order_override(pb.BROADCAST_ORDER_EXPLICIT, ["Mid"]),
    )
    plain = run_session(stub, dialogue.name, "plain")

    assert turn_speakers(overridden) == ["Slow", "Fast", "Mid"]
    assert overridden[0].started.execution_model == broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER)
    assert turn_speakers(explicit) == ["Mid", "Slow", "Fast"]
    assert turn_speakers(plain) == ["Fast", "Mid", "Slow"]
    assert plain[0].started.execution_model == broadcast(pb.BROADCAST_ORDER_COMPLETION)
    stored = stub.GetDialogue(pb.GetDialogueRequest(name=dialogue.name))
    assert stored.execution_model == dialogue.execution_model


def test_order_override_is_ignored_by_sequential(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B")], model=sequential(["B"]))

    events = run_session(
        stub,
        dialogue.name,
        "go",
        broadcast_order_override=order_override(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
    )

    assert turn_speakers(events) == ["B", "A"]
    assert events[0].started.execution_model == sequential(["B"])


# --- sequential ----------------------------------------------------------------------


def test_sequential_in_added_order_each_step_sees_the_previous_replies(stub: Stub) -> None:
    # Delays must not matter: the chain waits for each step.
    dialogue = create(
        stub,
        [echo("A", delay_ms=SLOW_MS // 3), echo("B"), echo("C", delay_ms=SLOW_MS // 3)],
        model=sequential(),
    )

    events = run_session(stub, dialogue.name, "chain")

    assert turn_speakers(events) == ["A", "B", "C"]
    assert list(events[0].started.participants) == ["A", "B", "C"]
    got = replies(events)
    a = echo_reply("A", ("System", "chain"))
    b = echo_reply("B", ("System", "chain"), ("A", a))
    c = echo_reply("C", ("System", "chain"), ("A", a), ("B", b))
    assert (got["A"].content, got["B"].content, got["C"].content) == (a, b, c)
    assert got["A"].message_seq < got["B"].message_seq < got["C"].message_seq


def test_sequential_in_explicit_order(stub: Stub) -> None:
    dialogue = create(
        stub, [echo("A"), echo("B"), echo("C"), echo("D")], model=sequential(["C", "A"])
    )

    events = run_session(stub, dialogue.name, "who first?")

    assert turn_speakers(events) == ["C", "A", "B", "D"]
    assert list(events[0].started.participants) == ["C", "A", "B", "D"]
    got = replies(events)
    c = echo_reply("C", ("System", "who first?"))
    a = echo_reply("A", ("System", "who first?"), ("C", c))
    assert (got["C"].content, got["A"].content) == (c, a)
    assert got["D"].content == echo_reply(
        "D", ("System", "who first?"), ("C", c), ("A", a), ("B", got["B"].content)
    )


def test_sequential_failed_step_is_reported_and_the_chain_goes_on(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B", fail="always"), echo("C")], model=sequential())

    events = run_session(stub, dialogue.name, "go")

    assert kinds(events) == [
        "started",
        "turn_completed",
        "turn_failed",
        "turn_completed",
        "completed",
    ]
    a = echo_reply("A", ("System", "go"))
    # C sees A's reply and nothing from B.
    assert replies(events)["C"].content == echo_reply("C", ("System", "go"), ("A", a))
    assert events[-1].completed == pb.SessionCompleted(turn_count=2, failure_count=1)


# --- failures ------------------------------------------------------------------------


def test_a_failing_participant_becomes_turn_failed_and_the_run_continues(stub: Stub) -> None:
    dialogue = create(
        stub,
        [echo("Ok", delay_ms=SLOW_MS), echo("Broken", icon="💥", fail="always"), echo("Fine")],
    )

    events = run_session(stub, dialogue.name, "try")

    assert kinds(events) == [
        "started",
        "turn_failed",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    failed = events[1].turn_failed
    assert failed.speaker.name == "Broken"
    assert failed.speaker.kind == pb.SPEAKER_KIND_AGENT
    assert failed.speaker.icon == "💥"
    assert failed.participant_index == 1
    assert failed.code == "AGENT_ERROR"
    assert failed.message
    assert "Traceback" not in failed.message
    assert failed.retryable
    assert turn_speakers(events) == ["Broken", "Fine", "Ok"]
    assert events[-1].completed == pb.SessionCompleted(turn_count=2, failure_count=1)
    # A failed call stores nothing.
    log = all_messages(stub, dialogue.name)
    assert sorted(m.speaker.name for m in log) == ["Fine", "Ok", "System"]


def test_every_participant_failing_still_completes_with_status_ok(stub: Stub) -> None:
    dialogue = create(stub, [echo("A", fail="always"), echo("B", fail="always")])

    events = run_session(stub, dialogue.name, "doomed")
    response = stub.Run(pb.RunSessionRequest(dialogue=dialogue.name, text="again"))

    assert kinds(events) == ["started", "turn_failed", "turn_failed", "completed"]
    assert events[-1].completed == pb.SessionCompleted(turn_count=0, failure_count=2)
    assert response.completed
    assert [f.speaker.name for f in response.failures] == ["A", "B"]
    assert list(response.turns) == []


def test_run_without_participants(stub: Stub) -> None:
    dialogue = create(stub, [])

    events = run_session(stub, dialogue.name, "anyone?")

    assert kinds(events) == ["started", "completed"]
    assert events[-1].completed == pb.SessionCompleted()
    assert [m.content for m in all_messages(stub, dialogue.name)] == ["anyone?"]


# --- delivery cursors ----------------------------------------------------------------


def test_a_participant_that_failed_catches_up_on_everything_it_missed(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B", fail="1"), echo("C", delay_ms=SLOW_MS)])

    first = run_session(stub, dialogue.name, "one")
    second = run_session(stub, dialogue.name, "two")

    assert turn_speakers(first) == ["A", "B", "C"]
    assert first[2].turn_failed.speaker.name == "B"
    a1 = replies(first)["A"].content
    c1 = replies(first)["C"].content
    got = replies(second)
    # B missed run 1: it now receives run 1's input, A's and C's replies, and run 2's input.
    assert got["B"].content == echo_reply(
        "B", ("System", "one"), ("A", a1), ("C", c1), ("System", "two")
    )
    # A and C received run 1's input already; they get the other replies and the new input,
    # never their own reply.
    assert got["A"].content == echo_reply("A", ("C", c1), ("System", "two"))
    assert got["C"].content == echo_reply("C", ("A", a1), ("System", "two"))


def test_replies_are_never_delivered_back_to_their_author(stub: Stub) -> None:
    dialogue = create(stub, [echo("A"), echo("B")], model=sequential())

    runs = [run_session(stub, dialogue.name, f"run {n}") for n in range(1, 4)]

    for events in runs:
        for name, turn in replies(events).items():
            # One line per delivered message: none of them is the author's own.
            speakers = [line.partition("]:")[0] for line in turn.content.splitlines()[1:]]
            assert f"[{name}" not in speakers, turn.content
    # Run 3: A receives B's run-2 reply and the new input; B receives A's run-3 reply too.
    b2 = replies(runs[1])["B"].content
    a3 = replies(runs[2])["A"].content
    assert a3 == echo_reply("A", ("B", b2), ("System", "run 3"))
    assert replies(runs[2])["B"].content == echo_reply("B", ("System", "run 3"), ("A", a3))


# --- request errors ------------------------------------------------------------------


@pytest.mark.parametrize("rpc", ["RunSession", "Run"])
def test_run_unknown_dialogue(stub: Stub, rpc: str) -> None:
    request = pb.RunSessionRequest(dialogue=name_of(new_id("missing")), text="hello?")
    failure = rpc_failure(lambda: _call(stub, rpc, request))
    assert_failure(failure, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


@pytest.mark.parametrize("rpc", ["RunSession", "Run"])
@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        pytest.param({}, ["text"], id="empty-input"),
        pytest.param(
            {
                "text": "x",
                "broadcast_order_override": order_override(pb.BROADCAST_ORDER_EXPLICIT, ["Ghost"]),
            },
            ["broadcast_order_override.explicit_order[0]"],
            id="override-names-unknown-participant",
        ),
        pytest.param(
            {"text": "x", "broadcast_order_override": pb.Broadcast(order=9)},  # type: ignore[arg-type]
            ["broadcast_order_override.order"],
            id="unknown-override-order-number",
        ),
        pytest.param(
            {"messages": [pb.InputMessage(speaker=pb.Speaker(name="U"), content="x", type=77)]},  # type: ignore[arg-type]
            ["messages[0].type"],
            id="unknown-message-type-number",
        ),
        pytest.param(
            {"messages": [pb.InputMessage(speaker=pb.Speaker(kind=5, name="U"), content="x")]},  # type: ignore[arg-type]
            ["messages[0].speaker.kind"],
            id="unknown-speaker-kind-number",
        ),
        pytest.param(
            {"text": "x", "attachments": [pb.Attachment(name="a.txt", data=b"hi")]},
            ["attachments[0].mime_type"],
            id="attachment-without-mime-type",
        ),
    ],
)
def test_run_invalid_argument_stores_nothing(
    stub: Stub, rpc: str, fields: dict[str, object], violations: list[str]
) -> None:
    dialogue = create(stub, [echo("A")])
    request = pb.RunSessionRequest(dialogue=dialogue.name, **fields)  # type: ignore[arg-type]

    failure = rpc_failure(lambda: _call(stub, rpc, request))

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations)
    assert all_messages(stub, dialogue.name) == []
    assert stub.GetDialogue(pb.GetDialogueRequest(name=dialogue.name)).latest_turn == 0


@pytest.mark.parametrize("dialogue", ["", "Not An Id", "dialogues/UPPER"])
def test_run_malformed_dialogue_name(stub: Stub, dialogue: str) -> None:
    failure = rpc_failure(lambda: stub.Run(pb.RunSessionRequest(dialogue=dialogue, text="x")))
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["dialogue"])


def _call(stub: Stub, rpc: str, request: pb.RunSessionRequest) -> object:
    if rpc == "Run":
        return stub.Run(request)
    return list(stub.RunSession(request))
