"""Execution models — Broadcast: COMPLETION, PARTICIPANT_ORDER, EXPLICIT, and overrides."""

from __future__ import annotations

import grpc
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    SLOW_MS,
    Dialogues,
    broadcast,
    echo,
    order,
    rpc_failure,
    seen_by,
    sequential,
    started,
    turns,
)

COMPLETION = pb.BROADCAST_ORDER_COMPLETION
PARTICIPANT_ORDER = pb.BROADCAST_ORDER_PARTICIPANT_ORDER
EXPLICIT = pb.BROADCAST_ORDER_EXPLICIT


def seq_of(events: list[pb.SessionEvent], name: str) -> int:
    return next(t.message_seq for t in turns(events) if t.speaker.name == name)


def test_completion_emits_the_fastest_first(dialogues: Dialogues) -> None:
    """Rule: Broadcast — "`COMPLETION` order (default): turns are emitted as they finish"."""
    d = dialogues.create(echo("Slow", delay_ms=SLOW_MS), echo("Fast"), model=broadcast(COMPLETION))
    events = d.stream("race")
    assert order(events) == ["Fast", "Slow"]
    assert seq_of(events, "Fast") < seq_of(events, "Slow")


def test_completion_is_the_default_model(dialogues: Dialogues) -> None:
    """Rule: Broadcast — COMPLETION is the default: a dialogue created without an execution
    model broadcasts to everyone and emits in completion order."""
    d = dialogues.create(echo("Slow", delay_ms=SLOW_MS), echo("Fast"))
    events = d.stream("race")
    assert list(started(events).participants) == ["Slow", "Fast"]
    assert started(events).execution_model.WhichOneof("mode") == "broadcast"
    assert order(events) == ["Fast", "Slow"]


def test_completion_ties_go_out_in_participant_order(dialogues: Dialogues) -> None:
    """Rule: Broadcast COMPLETION — "When several are ready at the same moment they go out
    in participant order" (added order, not by name)."""
    d = dialogues.create(echo("Zed"), echo("Yan"), echo("Xi"), echo("Wu"))
    events = d.stream("together")
    assert order(events) == ["Zed", "Yan", "Xi", "Wu"]
    assert [t.participant_index for t in turns(events)] == [0, 1, 2, 3]
    assert [t.message_seq for t in turns(events)] == [2, 3, 4, 5]


def test_participant_order_waits_for_earlier_participants(dialogues: Dialogues) -> None:
    """Rule: Broadcast — "`PARTICIPANT_ORDER`: turns are emitted in the order participants
    were added; a finished reply waits (already stored) until everyone before it has been
    emitted"; Deliberate differences: "always stored at completion, emitted later"."""
    d = dialogues.create(
        echo("Slow", delay_ms=SLOW_MS), echo("Fast"), model=broadcast(PARTICIPANT_ORDER)
    )
    events = d.stream("in order")
    assert order(events) == ["Slow", "Fast"]
    # Fast finished first, so it was stored first, though emitted second.
    assert seq_of(events, "Fast") < seq_of(events, "Slow")


def test_participant_order_does_not_wait_for_a_failed_participant(dialogues: Dialogues) -> None:
    """Rule: Broadcast PARTICIPANT_ORDER — a reply waits "until everyone before it has been
    emitted or has failed": the failure is emitted in its place."""
    d = dialogues.create(
        echo("Broken", delay_ms=SLOW_MS, fail="always"),
        echo("Fine"),
        model=broadcast(PARTICIPANT_ORDER),
    )
    events = d.stream("go")
    assert order(events) == ["!Broken", "Fine"]


def test_explicit_order_honours_the_names_then_the_rest(dialogues: Dialogues) -> None:
    """Rule: Broadcast — "`EXPLICIT`: like PARTICIPANT_ORDER, but in the order of the given
    names; participants not named follow in their added order" (llm-toolkit ignored them)."""
    d = dialogues.create(
        echo("A"),
        echo("B"),
        echo("C", delay_ms=SLOW_MS),
        echo("D"),
        model=broadcast(EXPLICIT, ["C", "A"]),
    )
    events = d.stream("explicit")
    assert order(events) == ["C", "A", "B", "D"]
    assert list(started(events).participants) == ["A", "B", "C", "D"]
    for name in "ABCD":
        assert seen_by(events, name) == ["[System]: explicit"]


def test_explicit_order_with_an_unknown_name_is_rejected_at_create(dialogues: Dialogues) -> None:
    """Rule: Broadcast EXPLICIT — "A name that is not a participant is INVALID_ARGUMENT"."""
    request = dialogues.create_request(echo("A"), model=broadcast(EXPLICIT, ["A", "Nobody"]))
    failure = rpc_failure(lambda: dialogues.stub.CreateDialogue(request))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dialogue.execution_model.broadcast.explicit_order[1]" in failure.violations
    missing = rpc_failure(
        lambda: dialogues.stub.GetDialogue(pb.GetDialogueRequest(name=request.dialogue_id))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND


def test_explicit_order_with_an_unknown_name_is_rejected_at_update(dialogues: Dialogues) -> None:
    """Rule: Broadcast EXPLICIT — "A name that is not a participant is INVALID_ARGUMENT",
    also when UpdateDialogue sets the model; the stored model stays as it was."""
    d = dialogues.create(echo("A"), echo("B"))
    failure = rpc_failure(
        lambda: d.update(
            pb.Dialogue(execution_model=broadcast(EXPLICIT, ["B", "Ghost"])), "execution_model"
        )
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert any("explicit_order" in f for f in failure.violations)
    kept = d.get().execution_model
    assert kept.WhichOneof("mode") == "broadcast"
    assert kept.broadcast.order == COMPLETION
    assert list(kept.broadcast.explicit_order) == []


def test_explicit_order_set_by_update_is_used(dialogues: Dialogues) -> None:
    """Rule: Broadcast EXPLICIT — the names given (here through UpdateDialogue) decide the
    emission order of the following runs."""
    d = dialogues.create(echo("A"), echo("B"), echo("C"))
    d.update(pb.Dialogue(execution_model=broadcast(EXPLICIT, ["B"])), "execution_model")
    assert order(d.stream("go")) == ["B", "A", "C"]


def test_override_with_an_unknown_name_is_rejected_before_storing(dialogues: Dialogues) -> None:
    """Rule: Broadcast EXPLICIT + One run §6 — an order naming an unknown participant ends
    the RPC with INVALID_ARGUMENT "before any agent is called"; nothing is stored."""
    d = dialogues.create(echo("A"), echo("B"))
    override = pb.Broadcast(order=EXPLICIT, explicit_order=["Ghost"])
    for call in (lambda: d.stream("x", override=override), lambda: d.run("x", override=override)):
        failure = rpc_failure(call)
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "broadcast_order_override.explicit_order[0]" in failure.violations
    assert d.get().message_count == 0


def test_override_lasts_one_run(dialogues: Dialogues) -> None:
    """Rule: Broadcast — "A request may override the broadcast order for that one run
    only; the dialogue's stored execution model does not change" (llm-toolkit changed it
    for good)."""
    d = dialogues.create(echo("Slow", delay_ms=SLOW_MS), echo("Fast"), model=broadcast(COMPLETION))
    overridden = d.stream("first", override=pb.Broadcast(order=PARTICIPANT_ORDER))
    assert order(overridden) == ["Slow", "Fast"]
    assert started(overridden).execution_model.broadcast.order == PARTICIPANT_ORDER
    assert d.get().execution_model.broadcast.order == COMPLETION
    plain = d.stream("second")
    assert order(plain) == ["Fast", "Slow"]
    assert started(plain).execution_model.broadcast.order == COMPLETION


def test_explicit_override_in_unary_run(dialogues: Dialogues) -> None:
    """Rule: Broadcast — the per-run override works in Run like in RunSession ("Run is
    RunSession collected"), with EXPLICIT names and the rest after them."""
    d = dialogues.create(echo("A"), echo("B"), echo("C"))
    response = d.run("go", override=pb.Broadcast(order=EXPLICIT, explicit_order=["C"]))
    assert [t.speaker.name for t in response.turns] == ["C", "A", "B"]
    assert list(response.started.execution_model.broadcast.explicit_order) == ["C"]
    again = d.run("again")
    assert [t.speaker.name for t in again.turns] == ["A", "B", "C"]


def test_override_is_ignored_unless_the_run_broadcasts(dialogues: Dialogues) -> None:
    """Rule: Broadcast — the request overrides "the broadcast order" (API: "Ignored unless
    the run broadcasts"): a sequential dialogue stays sequential."""
    d = dialogues.create(echo("A"), echo("B"), model=sequential())
    events = d.stream("go", override=pb.Broadcast(order=EXPLICIT, explicit_order=["B"]))
    assert started(events).execution_model.WhichOneof("mode") == "sequential"
    assert order(events) == ["A", "B"]
    assert seen_by(events, "B")[-1].startswith("[A]: ")
