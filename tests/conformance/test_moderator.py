"""Execution models — Moderator: JSON decisions, RoutingDecision, fallbacks."""

from __future__ import annotations

import json

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    Dialogues,
    completed,
    echo,
    failures,
    kinds,
    moderated,
    order,
    quoted,
    reply_of,
    rpc_failure,
    seen_by,
    started,
)


def answer(decision: object) -> str:
    return json.dumps(decision)


def test_moderator_decision_is_streamed_before_the_turns(dialogues: Dialogues) -> None:
    """Rule: Moderator — the moderator "answers with a JSON execution model ... Its decision
    is streamed as a `RoutingDecision` event before any turn"; Finish/§8 of the brief:
    SessionStarted lists the participants and model after resolution."""
    raw = answer({"sequential": {"order": ["C", "A"]}})
    d = dialogues.create(echo("A"), echo("B"), echo("C"), model=moderated(raw))
    events = d.stream("who first?")
    assert kinds(events) == [
        "started",
        "routing",
        "turn_completed",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    assert list(started(events).participants) == ["C", "A", "B"]
    assert list(started(events).execution_model.sequential.order) == ["C", "A"]
    routing = events[1].routing
    assert routing.raw_answer == raw
    assert list(routing.execution_model.sequential.order) == ["C", "A"]
    assert order(events) == ["C", "A", "B"]
    assert seen_by(events, "A") == ["[System]: who first?", quoted("C", reply_of(events, "C"))]
    assert (completed(events).turn_count, completed(events).failure_count) == (3, 0)


def test_moderator_can_choose_an_explicit_broadcast(dialogues: Dialogues) -> None:
    """Rule: Moderator — `{"broadcast": {...}}` is a valid decision; the chosen broadcast
    order and names are applied to this run."""
    raw = answer({"broadcast": {"order": "explicit", "explicit_order": ["B"]}})
    d = dialogues.create(echo("A"), echo("B"), model=moderated(raw))
    events = d.stream("go")
    assert started(events).execution_model.broadcast.order == pb.BROADCAST_ORDER_EXPLICIT
    assert order(events) == ["B", "A"]


def test_moderator_can_choose_mentioned(dialogues: Dialogues) -> None:
    """Rule: Moderator — `{"mentioned": {...}}`; SessionStarted lists only the
    participants resolved from the mentions."""
    raw = answer({"mentioned": {"strategy": "exact_word"}})
    d = dialogues.create(echo("A"), echo("B"), echo("C"), model=moderated(raw))
    events = d.stream("@B you decide")
    assert list(started(events).participants) == ["B"]
    assert started(events).execution_model.WhichOneof("mode") == "mentioned"
    assert events[1].routing.execution_model.WhichOneof("mode") == "mentioned"
    assert order(events) == ["B"]


def test_moderator_decision_in_unary_run(dialogues: Dialogues) -> None:
    """Rule: Moderator — "Works in RunSession and Run alike" (llm-toolkit: only `run()`)."""
    raw = answer({"sequential": {"order": ["B"]}})
    d = dialogues.create(echo("A"), echo("B"), model=moderated(raw))
    response = d.run("go")
    assert response.routing.raw_answer == raw
    assert response.routing.execution_model.WhichOneof("mode") == "sequential"
    assert list(response.started.participants) == ["B", "A"]
    assert [t.speaker.name for t in response.turns] == ["B", "A"]
    assert list(response.failures) == []


def test_moderator_is_asked_again_every_run_and_stores_nothing(dialogues: Dialogues) -> None:
    """Rule: Moderator — "before each run, a moderator profile is asked"; its answer is an
    event, not a message: the log holds only input and participants' replies."""
    d = dialogues.create(echo("A"), model=moderated(answer({"broadcast": {}})))
    for text in ("one", "two"):
        events = d.stream(text)
        assert kinds(events)[:2] == ["started", "routing"]
    log = d.messages()
    assert [m.speaker.name for m in log] == ["System", "A", "System", "A"]


BAD_ANSWERS = {
    "not json": "I would let everyone speak.",
    "unknown participant": answer({"sequential": {"order": ["A", "Mallory"]}}),
    "moderator again": answer({"moderator": {"agent": "echo"}}),
    "unknown model": answer({"round_robin": {}}),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_moderator_answer_fails_the_moderator_and_broadcasts(
    dialogues: Dialogues, case: str
) -> None:
    """Rule: Moderator — "An answer that does not parse, names an unknown participant or
    asks for moderator again is a `TurnFailed` for the moderator, and the run falls back
    to broadcast"; the stream still ends OK."""
    d = dialogues.create(echo("A"), echo("B"), model=moderated(BAD_ANSWERS[case]))
    events = d.stream("go")
    assert kinds(events) == [
        "started",
        "turn_failed",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    assert list(started(events).participants) == ["A", "B"]
    assert started(events).execution_model.WhichOneof("mode") == "broadcast"
    failed = failures(events)[0]
    assert failed.participant_index == -1
    assert failed.code
    assert failed.message
    assert order(events) == ["!echo", "A", "B"]
    assert seen_by(events, "A") == ["[System]: go"]
    assert (completed(events).turn_count, completed(events).failure_count) == (2, 1)


def test_failing_moderator_agent_falls_back_to_broadcast(dialogues: Dialogues) -> None:
    """Rule: Moderator — a moderator that gives no usable answer (here its agent fails) is
    a `TurnFailed` for the moderator and the run broadcasts; also in Run."""
    d = dialogues.create(
        echo("A"), echo("B"), model=moderated(answer({"broadcast": {}}), fail="always")
    )
    response = d.run("go")
    assert response.completed
    assert not response.HasField("routing")
    assert [f.participant_index for f in response.failures] == [-1]
    assert [t.speaker.name for t in response.turns] == ["A", "B"]


def test_missing_moderator_profile_is_an_error(dialogues: Dialogues) -> None:
    """Rule: One run §6 "Finish." — "no moderator profile" is a problem with the dialogue
    that ends the RPC with an error status (here already at CreateDialogue)."""
    model = pb.ExecutionModel(moderator=pb.Moderated(agent="no-such-profile"))
    request = dialogues.create_request(echo("A"), model=model)
    failure = rpc_failure(lambda: dialogues.stub.CreateDialogue(request))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dialogue.execution_model.moderator.agent" in failure.violations


def test_moderator_is_not_asked_when_no_reaction_is_due(dialogues: Dialogues) -> None:
    """Rule: One run §2 before §3 — "If no reaction is due, the stream sends
    `SessionStarted` and `SessionCompleted` with zero turns": no routing decision either."""
    d = dialogues.create(
        echo("A"),
        model=moderated(answer({"broadcast": {}})),
        reaction=pb.REACTION_STRATEGY_USER_ONLY,
    )
    assert kinds(d.stream("system only")) == ["started", "completed"]
    assert kinds(d.stream("hi", speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="U")))[:2] == [
        "started",
        "routing",
    ]
