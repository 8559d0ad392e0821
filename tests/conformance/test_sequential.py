"""Execution models — Sequential."""

from __future__ import annotations

import grpc

from .harness import (
    SLOW_MS,
    Dialogues,
    completed,
    echo,
    failures,
    order,
    quoted,
    reply_of,
    rpc_failure,
    seen_by,
    sequential,
    started,
    turns,
)


def test_sequential_calls_in_added_order_each_seeing_the_previous(dialogues: Dialogues) -> None:
    """Rule: Sequential — "participants are called one after another, in added order ...
    Each sees what came before it in this run, because the previous replies are newer than
    its cursor. Every step is emitted." (A is slow: order is the chain, not completion.)"""
    d = dialogues.create(echo("A", delay_ms=SLOW_MS // 2), echo("B"), echo("C"), model=sequential())
    events = d.stream("begin")
    assert order(events) == ["A", "B", "C"]
    a, b = reply_of(events, "A"), reply_of(events, "B")
    assert seen_by(events, "A") == ["[System]: begin"]
    assert seen_by(events, "B") == ["[System]: begin", quoted("A", a)]
    assert seen_by(events, "C") == ["[System]: begin", quoted("A", a), quoted("B", b)]
    assert [t.message_seq for t in turns(events)] == [2, 3, 4]


def test_sequential_explicit_order_then_the_rest(dialogues: Dialogues) -> None:
    """Rule: Sequential — "in added order or in an explicit order (names first, the rest
    after ...)"; SessionStarted lists the participants in call order."""
    d = dialogues.create(echo("A"), echo("B"), echo("C"), echo("D"), model=sequential("C", "A"))
    events = d.stream("begin")
    assert list(started(events).participants) == ["C", "A", "B", "D"]
    assert order(events) == ["C", "A", "B", "D"]
    # participant_index is the place in the dialogue, not in the call order.
    assert [t.participant_index for t in turns(events)] == [2, 0, 1, 3]
    assert seen_by(events, "C") == ["[System]: begin"]
    assert seen_by(events, "A") == ["[System]: begin", quoted("C", reply_of(events, "C"))]


def test_sequential_unknown_name_is_invalid(dialogues: Dialogues) -> None:
    """Rule: Sequential — explicit order with an "unknown name = INVALID_ARGUMENT"."""
    request = dialogues.create_request(echo("A"), echo("B"), model=sequential("B", "Zoe"))
    failure = rpc_failure(lambda: dialogues.stub.CreateDialogue(request))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dialogue.execution_model.sequential.order[1]" in failure.violations


def test_failed_step_is_emitted_and_the_chain_goes_on(dialogues: Dialogues) -> None:
    """Rule: Sequential — "A failed step is emitted as `TurnFailed`; the chain goes on with
    the next participant, which then sees no reply from the failed one"."""
    d = dialogues.create(echo("A"), echo("B", fail="always"), echo("C"), model=sequential())
    events = d.stream("begin")
    assert order(events) == ["A", "!B", "C"]
    assert seen_by(events, "C") == ["[System]: begin", quoted("A", reply_of(events, "A"))]
    assert failures(events)[0].participant_index == 1
    assert (completed(events).turn_count, completed(events).failure_count) == (2, 1)


def test_sequential_next_run_catches_up_on_later_replies(dialogues: Dialogues) -> None:
    """Rule: Sequential + One run §4 "Deliver." — in the next run the first speaker
    receives the replies given after its own in the previous run, then the new input."""
    d = dialogues.create(echo("A"), echo("B"), model=sequential())
    first = d.stream("one")
    second = d.stream("two")
    assert seen_by(second, "A") == [quoted("B", reply_of(first, "B")), "[System]: two"]
    assert seen_by(second, "B") == ["[System]: two", quoted("A", reply_of(second, "A"))]


def test_sequential_failed_first_step_catches_up_later(dialogues: Dialogues) -> None:
    """Rule: Sequential + One run §4 — a step that failed delivered nothing, so when it is
    next called it receives what it missed, including the replies after it."""
    d = dialogues.create(echo("A", fail="1"), echo("B"), model=sequential())
    first = d.stream("one")
    assert order(first) == ["!A", "B"]
    assert seen_by(first, "B") == ["[System]: one"]
    second = d.stream("two")
    assert seen_by(second, "A") == [
        "[System]: one",
        quoted("B", reply_of(first, "B")),
        "[System]: two",
    ]
