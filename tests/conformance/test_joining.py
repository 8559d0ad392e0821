"""Participants joining in progress (JoiningStrategy windows, `pending`) and leaving."""

from __future__ import annotations

import grpc
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    Dialogue,
    Dialogues,
    broadcast,
    echo,
    fresh,
    full,
    order,
    quoted,
    recent,
    reply_of,
    rpc_failure,
    seen_by,
    sequential,
    started,
    turn_range,
)


def history(dialogues: Dialogues, turns: int, model: pb.ExecutionModel | None = None) -> Dialogue:
    """A dialogue with founder A after `turns` runs "t1", "t2", ...: the log holds, per
    turn N, "[System]: tN" then A's reply, so turn N is seqs 2N-1 and 2N."""
    d = dialogues.create(echo("A", reply="ok"), model=model)
    for n in range(1, turns + 1):
        d.stream(f"t{n}")
    return d


def turn_lines(*numbers: int) -> list[str]:
    """What a joiner sees of past turns `numbers` of `history()`."""
    lines: list[str] = []
    for n in numbers:
        lines += [f"[System]: t{n}", "[A]: ok"]
    return lines


def pending(d: Dialogue, name: str) -> bool:
    return next(p.pending for p in d.get().participants if p.persona.name == name)


def test_fresh_joiner_sees_only_the_current_turn(dialogues: Dialogues) -> None:
    """Rule: Joining — "`FRESH`: nothing from the past, only the current turn's input and
    replies" (broadcast: the current input)."""
    d = history(dialogues, 3)
    d.add(echo("J"), fresh())
    events = d.stream("t4")
    assert seen_by(events, "J") == ["[System]: t4"]


def test_fresh_joiner_sees_current_turn_replies_before_it(dialogues: Dialogues) -> None:
    """Rule: Joining — FRESH receives "the current turn's input and replies": in a
    sequential run it sees the replies given before it in this turn."""
    d = history(dialogues, 2, model=sequential())
    d.add(echo("J"), fresh())
    events = d.stream("t3")
    assert order(events) == ["A", "J"]
    assert seen_by(events, "J") == ["[System]: t3", "[A]: ok"]


def test_full_joiner_sees_the_whole_log(dialogues: Dialogues) -> None:
    """Rule: Joining — "`FULL`: everything in the log"."""
    d = history(dialogues, 3)
    d.add(echo("J"), full())
    events = d.stream("t4")
    assert seen_by(events, "J") == [*turn_lines(1, 2, 3), "[System]: t4"]


def test_recent_joiner_sees_the_last_turns(dialogues: Dialogues) -> None:
    """Rule: Joining — "`RECENT{turns}`: messages of the last `turns` turns before the
    current one, plus the current turn"."""
    d = history(dialogues, 4)
    d.add(echo("J1"), recent(1))
    d.add(echo("J2"), recent(2))
    events = d.stream("t5")
    assert seen_by(events, "J1") == [*turn_lines(4), "[System]: t5"]
    assert seen_by(events, "J2") == [*turn_lines(3, 4), "[System]: t5"]


def test_recent_default_is_five_turns(dialogues: Dialogues) -> None:
    """Rule: Joining — "`RECENT{turns}` (default 5)": turns 0 in the request means 5."""
    d = history(dialogues, 7)
    d.add(echo("J"), recent())
    events = d.stream("t8")
    assert seen_by(events, "J") == [*turn_lines(3, 4, 5, 6, 7), "[System]: t8"]


def test_recent_window_larger_than_the_log(dialogues: Dialogues) -> None:
    """Rule: Joining — RECENT with more turns than exist is the whole log plus the current
    turn."""
    d = history(dialogues, 2)
    d.add(echo("J"), recent(10))
    events = d.stream("t3")
    assert seen_by(events, "J") == [*turn_lines(1, 2), "[System]: t3"]


def test_range_is_inclusive_at_both_ends(dialogues: Dialogues) -> None:
    """Rule: Joining — "`RANGE{start, end}`: messages with `start <= turn <= end`
    (inclusive both ends ...), plus the current turn" (llm-toolkit's code: end exclusive)."""
    d = history(dialogues, 4)
    d.add(echo("J"), turn_range(2, 3))
    events = d.stream("t5")
    assert seen_by(events, "J") == [*turn_lines(2, 3), "[System]: t5"]


def test_range_of_one_turn(dialogues: Dialogues) -> None:
    """Rule: Joining — RANGE{start, end} with start == end is that one turn, plus the
    current turn."""
    d = history(dialogues, 3)
    d.add(echo("J"), turn_range(2, 2))
    events = d.stream("t4")
    assert seen_by(events, "J") == [*turn_lines(2), "[System]: t4"]


def test_range_with_open_end_reaches_the_current_turn(dialogues: Dialogues) -> None:
    """Rule: Joining — RANGE "a missing end means up to the current turn"."""
    d = history(dialogues, 4)
    d.add(echo("J"), turn_range(3))
    events = d.stream("t5")
    assert seen_by(events, "J") == [*turn_lines(3, 4), "[System]: t5"]


def test_pending_until_the_first_call(dialogues: Dialogues) -> None:
    """Rule: Joining (API: `pending` true until a join-in-progress participant's first
    call) — visible in AddParticipant's answer and in GetDialogue, false afterwards."""
    d = history(dialogues, 1)
    added = d.add(echo("J"), full())
    assert [(p.persona.name, p.pending) for p in added.participants] == [("A", False), ("J", True)]
    assert pending(d, "J")
    assert added.participants[1].joining_strategy.WhichOneof("strategy") == "full"
    d.stream("t2")
    assert not pending(d, "J")


def test_joiner_appears_in_every_participant_list_at_once(dialogues: Dialogues) -> None:
    """Rule: Joining — a joiner "appears in every participant list at once": the dialogue
    and the very next run's SessionStarted."""
    d = history(dialogues, 1)
    d.add(echo("J"), fresh())
    assert [p.persona.name for p in d.get().participants] == ["A", "J"]
    assert list(started(d.stream("t2")).participants) == ["A", "J"]


def test_joiner_continues_by_cursor_after_its_first_call(dialogues: Dialogues) -> None:
    """Rule: Joining + One run §4 "Deliver." — the window applies to the first call only;
    afterwards the joiner receives what is new, like everyone."""
    d = history(dialogues, 2)
    d.add(echo("J"), full())
    d.stream("t3")
    events = d.stream("t4")
    assert seen_by(events, "J") == ["[A]: ok", "[System]: t4"]


def test_joining_never_changes_what_others_receive(dialogues: Dialogues) -> None:
    """Rule: Joining — "Joining never changes what the other participants receive"
    (llm-toolkit hid the current prompt from everyone the turn someone joined)."""
    d = dialogues.create(echo("A"), echo("B"))
    first = d.stream("t1")
    d.add(echo("J"), full())
    events = d.stream("t2")
    assert seen_by(events, "A") == [quoted("B", reply_of(first, "B")), "[System]: t2"]
    assert seen_by(events, "B") == [quoted("A", reply_of(first, "A")), "[System]: t2"]
    third = d.stream("t3")
    assert quoted("J", reply_of(events, "J")) in seen_by(third, "A")


def test_joiner_window_in_a_unary_run(dialogues: Dialogues) -> None:
    """Rule: Joining — the window is the same in Run ("Run is RunSession collected")."""
    d = history(dialogues, 3)
    d.add(echo("J"), turn_range(1, 1))
    response = d.run("t4")
    assert seen_by(response, "J") == [*turn_lines(1), "[System]: t4"]


def test_joining_strategy_on_the_participant_is_honoured(dialogues: Dialogues) -> None:
    """Rule: Joining — a JoiningStrategy given on the participant itself makes it a joiner
    in progress just like the request field."""
    d = history(dialogues, 2)
    d.add(echo("J", joining=fresh()))
    assert pending(d, "J")
    assert seen_by(d.stream("t3"), "J") == ["[System]: t3"]


def test_founding_member_starts_at_the_beginning(dialogues: Dialogues) -> None:
    """Rule: Joining — "Adding a participant with no joining strategy before the first run:
    a founding member; its cursor starts at the beginning"."""
    d = dialogues.create(echo("A"))
    added = d.add(echo("B"))
    assert not added.participants[1].pending
    events = d.stream("t1")
    assert seen_by(events, "B") == ["[System]: t1"]
    assert order(events) == ["A", "B"]


def test_removed_participant_keeps_its_messages(dialogues: Dialogues) -> None:
    """Rule: Leaving — "Removing a participant keeps its messages in the log"; it is no
    longer called, and the others still receive its last reply."""
    d = dialogues.create(echo("A"), echo("B"), model=sequential())
    first = d.stream("t1")
    d.remove("B")
    assert [m.speaker.name for m in d.messages()] == ["System", "A", "B"]
    events = d.stream("t2")
    assert list(started(events).participants) == ["A"]
    assert seen_by(events, "A") == [quoted("B", reply_of(first, "B")), "[System]: t2"]


def test_a_name_is_reusable_only_after_removal(dialogues: Dialogues) -> None:
    """Rule: Leaving — "a later participant may reuse the name only after removal"; while
    present a duplicate is ALREADY_EXISTS (Deliberate differences: "names unique")."""
    d = dialogues.create(echo("A"), echo("B"))
    failure = rpc_failure(lambda: d.add(echo("B")))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS
    d.remove("B")
    added = d.add(echo("B", role="returning"))
    assert [p.persona.name for p in added.participants] == ["A", "B"]
    assert added.participants[1].persona.role == "returning"


def test_names_are_case_sensitive(dialogues: Dialogues) -> None:
    """Rule: Vocabulary — "Names are unique within a dialogue and are case-sensitive":
    `bob` may join beside `Bob`, both are called."""
    d = dialogues.create(echo("Bob"))
    d.add(echo("bob"))
    assert order(d.stream("hi")) == ["Bob", "bob"]


def test_duplicate_names_at_create_are_rejected(dialogues: Dialogues) -> None:
    """Rule: Vocabulary — "Names are unique within a dialogue": a CreateDialogue naming a
    participant twice is rejected (INVALID_ARGUMENT on the duplicate's name) and creates
    nothing."""
    request = dialogues.create_request(echo("A"), echo("A"))
    failure = rpc_failure(lambda: dialogues.stub.CreateDialogue(request))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dialogue.participants[1].persona.name" in failure.violations


def test_removing_a_participant_named_in_the_order_keeps_runs_working(
    dialogues: Dialogues,
) -> None:
    """Rule: Leaving — "Removing a participant keeps its messages in the log" and the
    dialogue goes on: with the removed participant named in a sequential or EXPLICIT
    order, the next run calls the others (One run §6: no error status for a valid request
    on a valid dialogue; an unexpected failure would be INTERNAL after storing input)."""
    for model in (sequential("B", "A"), broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["B", "A"])):
        d = dialogues.create(echo("A"), echo("B"), echo("C"), model=model)
        d.remove("B")
        events = d.stream("go on")
        assert order(events) == ["A", "C"]


def test_removing_a_participant_named_in_the_order_keeps_the_dialogue_valid(
    dialogues: Dialogues,
) -> None:
    """Rule: Leaving + Sequential/EXPLICIT ("names must be participants") — after the
    removal the stored model names only participants, so an unrelated UpdateDialogue
    (display_name) still succeeds."""
    d = dialogues.create(echo("A"), echo("B"), model=sequential("B", "A"))
    d.remove("B")
    assert list(d.get().execution_model.sequential.order) == ["A"]
    assert d.update(pb.Dialogue(display_name="renamed"), "display_name").display_name == "renamed"
