"""Parsing the moderator's decision (SEMANTICS.md, Execution models: Moderator)."""

from __future__ import annotations

import pytest
from parley.server.engine.model import (
    Broadcast,
    BroadcastOrder,
    Dialogue,
    Mentioned,
    MentionMatchStrategy,
    Participant,
    Persona,
    Sequential,
)
from parley.server.engine.moderation import (
    ModerationError,
    parse_decision,
    render_moderator_prompt,
)

DIALOGUE = Dialogue(
    id="d", participants=tuple(Participant(Persona(n, f"{n} role"), "echo") for n in "ABC")
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"broadcast": {}}', Broadcast()),
        (
            '{"broadcast": {"order": "participant_order"}}',
            Broadcast(BroadcastOrder.PARTICIPANT_ORDER),
        ),
        (
            '{"broadcast": {"order": "explicit", "explicit_order": ["C"]}}',
            Broadcast(BroadcastOrder.EXPLICIT, ("C",)),
        ),
        ('{"sequential": {"order": ["B", "A"]}}', Sequential(("B", "A"))),
        ('{"sequential": null}', Sequential()),
        ('{"mentioned": {"strategy": "NAME"}}', Mentioned(MentionMatchStrategy.NAME)),
        ('Sure! ```json\n{"sequential": {"order": ["C"]}}\n```', Sequential(("C",))),
    ],
)
def test_valid_decisions(answer: str, expected: object) -> None:
    assert parse_decision(answer, DIALOGUE) == expected


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("no json here", "no JSON object"),
        ('{"sequential": {"order": ["Z"]}}', "unknown participants"),
        ('{"sequential": {"order": ["A", "A"]}}', "twice"),
        ('{"moderator": {}}', "cannot hand the decision"),
        ('{"broadcast": {}, "sequential": {}}', "exactly one"),
        ('{"broadcast": {"order": "sideways"}}', "broadcast.order"),
        ('{"roundrobin": {}}', "unknown execution model"),
        ('{"broadcast": ', "not valid JSON"),
        ('{"sequential": ["A"]}', "must map to an object"),
    ],
)
def test_rejected_decisions(answer: str, problem: str) -> None:
    with pytest.raises(ModerationError, match=problem):
        parse_decision(answer, DIALOGUE)


def test_prompt_lists_participants_recent_log_and_input() -> None:
    prompt = render_moderator_prompt(DIALOGUE, [], [])
    assert "- A (A role)" in prompt
    assert "(none)" in prompt
    assert '{"sequential": {"order": ["Name", ...]}}' in prompt
