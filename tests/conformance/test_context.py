"""Context and prompts: a dialogue's context never blocks a call."""

from __future__ import annotations

import pytest
from parley.v1 import dialogue_pb2 as pb

from .harness import Dialogues, echo, order, seen_by

TALK_STYLES: list[pb.TalkStyle] = [
    pb.TALK_STYLE_BRAINSTORM,
    pb.TALK_STYLE_CASUAL,
    pb.TALK_STYLE_DECISION_MAKING,
    pb.TALK_STYLE_DEBATE,
    pb.TALK_STYLE_PROBLEM_SOLVING,
    pb.TALK_STYLE_REVIEW,
    pb.TALK_STYLE_PLANNING,
    pb.TALK_STYLE_RESEARCH,
]


def test_capability_policy_never_blocks_a_call(dialogues: Dialogues) -> None:
    """Rule: Context and prompts — "The policy filters the capabilities shown for each
    participant in the participant list; it never blocks a call": participants whose
    policy allows nothing (or names a capability they lack) still reply."""
    context = pb.DialogueContext(
        policy={
            "A": pb.CapabilityList(capabilities=[]),
            "B": pb.CapabilityList(capabilities=["teleport"]),
        }
    )
    d = dialogues.create(
        echo("A", capabilities=["search", "code"]),
        echo("B", capabilities=["search"]),
        echo("C"),
        context=context,
    )
    events = d.stream("go")
    assert order(events) == ["A", "B", "C"]
    for name in "ABC":
        assert seen_by(events, name) == ["[System]: go"]


@pytest.mark.parametrize("style", TALK_STYLES)
def test_every_talk_style_is_kept_and_runs(dialogues: Dialogues, style: pb.TalkStyle) -> None:
    """Rule: Context and prompts — "a talk style (brainstorm, casual, decision_making,
    debate, problem_solving, review, planning, research ...)" is part of the dialogue and
    rendered into every call's prompt; every one of them runs."""
    context = pb.DialogueContext(
        talk_style=style, environment="a video call", additional_context=["Q3 budget"]
    )
    d = dialogues.create(echo("A"), context=context)
    kept = d.get().context
    assert (kept.talk_style, kept.environment, list(kept.additional_context)) == (
        style,
        "a video call",
        ["Q3 budget"],
    )
    assert seen_by(d.stream("go"), "A") == ["[System]: go"]


def test_custom_talk_style_and_context_update(dialogues: Dialogues) -> None:
    """Rule: Context and prompts — "or a custom template with description, guidelines and
    expected behaviours"; a context set later by UpdateDialogue is kept and runs."""
    d = dialogues.create(echo("A"), echo("B"))
    custom = pb.CustomTalkStyle(
        name="retro",
        description="Look back at the sprint",
        guidelines=["be kind"],
        expected_behaviors=["name one win"],
    )
    d.update(
        pb.Dialogue(context=pb.DialogueContext(custom_talk_style=custom, environment="office")),
        "context",
    )
    kept = d.get().context
    assert kept.custom_talk_style == custom
    assert kept.environment == "office"
    assert order(d.stream("go")) == ["A", "B"]
