"""One run, step 2 — "Decide whether to react" (ReactionStrategy)."""

from __future__ import annotations

import pytest
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    Dialogues,
    agent_speaker,
    completed,
    context_info,
    echo,
    kinds,
    said,
    seen_by,
    started,
    system_speaker,
    user,
)

STRATEGIES = {
    "ALWAYS": pb.REACTION_STRATEGY_ALWAYS,
    "USER_ONLY": pb.REACTION_STRATEGY_USER_ONLY,
    "AGENT_ONLY": pb.REACTION_STRATEGY_AGENT_ONLY,
    "EXCEPT_SYSTEM": pb.REACTION_STRATEGY_EXCEPT_SYSTEM,
    "CONVERSATIONAL": pb.REACTION_STRATEGY_CONVERSATIONAL,
    "EXCEPT_CONTEXT_INFO": pb.REACTION_STRATEGY_EXCEPT_CONTEXT_INFO,
    "UNSPECIFIED": pb.REACTION_STRATEGY_UNSPECIFIED,
}
SPEAKERS = {
    "system": system_speaker(),
    "user": user("Ann"),
    "agent": agent_speaker("Outsider"),
}
# Who a strategy reacts to, among non-context_info input messages.
REACTS_TO = {
    "ALWAYS": {"system", "user", "agent"},
    "USER_ONLY": {"user"},
    "AGENT_ONLY": {"agent"},
    "EXCEPT_SYSTEM": {"user", "agent"},
    "CONVERSATIONAL": {"user", "agent"},
    "EXCEPT_CONTEXT_INFO": {"system", "user", "agent"},
    "UNSPECIFIED": {"system", "user", "agent"},
}


def assert_no_reaction(events: list[pb.SessionEvent]) -> None:
    """SessionStarted naming nobody, then SessionCompleted(0, 0), nothing else."""
    assert kinds(events) == ["started", "completed"]
    assert list(started(events).participants) == []
    assert (completed(events).turn_count, completed(events).failure_count) == (0, 0)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("speaker", sorted(SPEAKERS))
def test_strategy_reacts_to_speaker_kinds(
    dialogues: Dialogues, strategy: str, speaker: str
) -> None:
    """Rule: One run §2 "Decide whether to react" — `ALWAYS` (default) reacts unless every
    input is context_info; `USER_ONLY` / `AGENT_ONLY` react only to a user / agent
    speaker; `EXCEPT_SYSTEM` and `CONVERSATIONAL` to a user or an agent;
    `EXCEPT_CONTEXT_INFO` is ALWAYS. Either way the input is stored."""
    d = dialogues.create(echo("A"), echo("B"), reaction=STRATEGIES[strategy])
    events = d.stream(messages=[said(SPEAKERS[speaker], "hello")])
    if speaker in REACTS_TO[strategy]:
        assert list(started(events).participants) == ["A", "B"]
        assert completed(events).turn_count == 2
        assert len(d.messages()) == 3
    else:
        assert_no_reaction(events)
        assert [m.content for m in d.messages()] == ["hello"]


def test_bare_text_counts_as_system(dialogues: Dialogues) -> None:
    """Rule: One run §2 — "`USER_ONLY` / `AGENT_ONLY`: react only if some non-context_info
    input message has a user / agent speaker (a bare text prompt counts as system)"."""
    d = dialogues.create(echo("A"), reaction=pb.REACTION_STRATEGY_USER_ONLY)
    assert_no_reaction(d.stream("status report"))
    events = d.stream("and you?", speaker=user("Ann"))
    assert seen_by(events, "A") == ["[System]: status report", "[Ann]: and you?"]


@pytest.mark.parametrize("strategy", ["ALWAYS", "EXCEPT_CONTEXT_INFO", "UNSPECIFIED"])
def test_context_info_only_input_is_stored_without_reaction(
    dialogues: Dialogues, strategy: str
) -> None:
    """Rule: One run §2 — `ALWAYS`: "react unless every input message is `context_info`";
    "If no reaction is due, the stream sends `SessionStarted` and `SessionCompleted` with
    zero turns; the input stays stored"."""
    d = dialogues.create(echo("A"), echo("B"), reaction=STRATEGIES[strategy])
    events = d.stream(messages=[context_info("the build is green"), context_info("ci: 4 min")])
    assert_no_reaction(events)
    log = d.messages()
    assert [(m.content, m.type, m.turn) for m in log] == [
        ("the build is green", pb.MESSAGE_TYPE_CONTEXT_INFO, 1),
        ("ci: 4 min", pb.MESSAGE_TYPE_CONTEXT_INFO, 1),
    ]
    assert list(started(events).input_seqs) == [1, 2]


def test_context_info_is_delivered_with_the_next_reacting_run(dialogues: Dialogues) -> None:
    """Rule: One run §2 — input of a run with no reaction "stays stored and is delivered
    with the next reacting run"."""
    d = dialogues.create(echo("A"), echo("B"))
    d.stream(messages=[context_info("budget is 10k")])
    d.stream(messages=[context_info("deadline friday", user("Ann"))])
    events = d.stream("plan it")
    expected = ["[System]: budget is 10k", "[Ann]: deadline friday", "[System]: plan it"]
    assert seen_by(events, "A") == expected
    assert seen_by(events, "B") == expected


def test_context_info_alongside_a_reacting_message_reacts(dialogues: Dialogues) -> None:
    """Rule: One run §2 — `ALWAYS` reacts "unless every input message is `context_info`":
    one conversational message is enough, and the context_info is delivered with it."""
    d = dialogues.create(echo("A"))
    events = d.stream("question?", messages=[context_info("background")])
    assert seen_by(events, "A") == ["[System]: background", "[System]: question?"]


def test_user_context_info_does_not_satisfy_user_only(dialogues: Dialogues) -> None:
    """Rule: One run §2 — USER_ONLY reacts "only if some non-context_info input message has
    a user speaker": a user's context_info alone does not count."""
    d = dialogues.create(echo("A"), reaction=pb.REACTION_STRATEGY_USER_ONLY)
    events = d.stream(messages=[context_info("fyi", user("Ann")), said(system_speaker(), "go")])
    assert_no_reaction(events)


def test_agent_only_reacts_to_agent_input_and_delivers_the_backlog(dialogues: Dialogues) -> None:
    """Rule: One run §2 — AGENT_ONLY reacts only to an agent speaker; the user and system
    input of the runs before is delivered with that reacting run."""
    d = dialogues.create(echo("A"), reaction=pb.REACTION_STRATEGY_AGENT_ONLY)
    assert_no_reaction(d.stream("from system"))
    assert_no_reaction(d.stream("from user", speaker=user("Ann")))
    events = d.stream(messages=[said(agent_speaker("Bot"), "from agent")])
    assert seen_by(events, "A") == [
        "[System]: from system",
        "[Ann]: from user",
        "[Bot]: from agent",
    ]
    assert events[0].turn == 3


def test_except_system_mixed_input_reacts(dialogues: Dialogues) -> None:
    """Rule: One run §2 — "`EXCEPT_SYSTEM` and `CONVERSATIONAL`: react if some
    non-context_info message is from a user or an agent" (some, not all)."""
    for strategy in (pb.REACTION_STRATEGY_EXCEPT_SYSTEM, pb.REACTION_STRATEGY_CONVERSATIONAL):
        d = dialogues.create(echo("A"), reaction=strategy)
        events = d.stream("system says", messages=[said(user("Ann"), "user says")])
        assert seen_by(events, "A") == ["[Ann]: user says", "[System]: system says"]


def test_no_reaction_in_unary_run(dialogues: Dialogues) -> None:
    """Rule: One run §2 with "Run, which is RunSession collected" — a run with no reaction
    completes with no turns and no failures, its participants list empty."""
    d = dialogues.create(echo("A"), reaction=pb.REACTION_STRATEGY_USER_ONLY)
    response = d.run("nobody answers this")
    assert response.completed
    assert list(response.turns) == []
    assert list(response.failures) == []
    assert list(response.started.participants) == []
