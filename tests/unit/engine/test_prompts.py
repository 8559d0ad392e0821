"""Prompt rendering: the single-text form and the chat form (SEMANTICS.md, Context and prompts)."""

from __future__ import annotations

from datetime import UTC, datetime

from parley.server.engine.conversation import (
    ChatMessage,
    ChatRole,
    chat_messages,
    private_conversation,
)
from parley.server.engine.model import (
    Capability,
    CustomTalkStyle,
    Dialogue,
    DialogueContext,
    Fresh,
    Message,
    Origin,
    Participant,
    Persona,
    Speaker,
    SpeakerKind,
    TalkStyle,
)
from parley.server.engine.prompts import render_prompt, render_system

NOW = datetime(2026, 1, 1, tzinfo=UTC)

ANN = Participant(
    Persona(
        "Ann",
        "Architect",
        background="Designs systems",
        communication_style="terse",
        capabilities=(Capability("diagrams", "draws diagrams"), Capability("secrets")),
    ),
    "echo",
)
BOB = Participant(Persona("Bob", "Tester", capabilities=(Capability("fuzzing"),)), "echo")


def message(seq: int, turn: int, name: str, content: str, *, through: int | None = None) -> Message:
    kind = SpeakerKind.SYSTEM if name == "System" else SpeakerKind.AGENT
    origin = Origin.INCOMING if kind is SpeakerKind.SYSTEM else Origin.AGENT_GENERATED
    return Message(seq, turn, Speaker(kind, name), content, origin, NOW, delivered_through=through)


def test_system_prompt_has_persona_context_and_participants_marking_you() -> None:
    context = DialogueContext(
        talk_style=TalkStyle.DEBATE,
        environment="a design review",
        additional_context=("deadline is Friday",),
        policy={"Ann": ("diagrams",)},
    )
    dialogue = Dialogue(id="d", participants=(ANN, BOB), context=context)
    system = render_system(dialogue, BOB)
    assert system.startswith("# You are Bob, Tester")
    assert "Debate:" in system
    assert "Setting: a design review" in system
    assert "Note: deadline is Friday" in system
    assert "- Ann (Architect): Designs systems [capabilities: diagrams]" in system
    assert "secrets" not in system  # the policy hides it from the others
    assert "- Bob (Tester) - this is you [capabilities: fuzzing]" in system
    assert "Answer as Bob only" in system


def test_own_persona_section_lists_background_style_and_capabilities() -> None:
    system = render_system(Dialogue(id="d", participants=(ANN,)), ANN)
    assert "Background: Designs systems" in system
    assert "How you speak: terse" in system
    assert "- diagrams: draws diagrams" in system


def test_custom_talk_style_is_rendered() -> None:
    style = CustomTalkStyle("Retro", "look back", ("be kind",), ("name one win",))
    dialogue = Dialogue(id="d", participants=(ANN,), context=DialogueContext(talk_style=style))
    system = render_system(dialogue, ANN)
    assert "Style of this dialogue: Retro. look back" in system
    assert "- Guideline: be kind" in system
    assert "- Expected: name one win" in system


def test_single_text_form_ends_with_delivered_messages() -> None:
    dialogue = Dialogue(id="d", participants=(ANN, BOB))
    delivered = [message(1, 1, "System", "Plan the release"), message(2, 1, "Bob", "ok")]
    prompt = render_prompt(dialogue, ANN, delivered)
    assert prompt.endswith("# New messages\n[System]: Plan the release\n[Bob]: ok")
    assert render_prompt(dialogue, ANN, []).endswith("(no new messages)")


def test_private_conversation_rebuilds_exchanges_from_delivery_records() -> None:
    log = [
        message(1, 1, "System", "one"),
        message(2, 1, "Bob", "bob-1", through=1),
        message(3, 1, "Ann", "ann-1", through=1),
        message(4, 2, "System", "two"),
        message(5, 2, "Ann", "ann-2", through=4),
    ]
    assert private_conversation(log, "Ann", None) == [
        ChatMessage(ChatRole.USER, "[System]: one"),
        ChatMessage(ChatRole.ASSISTANT, "ann-1"),
        ChatMessage(ChatRole.USER, "[Bob]: bob-1\n[System]: two"),
        ChatMessage(ChatRole.ASSISTANT, "ann-2"),
    ]


def test_a_joiners_first_exchange_is_its_joining_window() -> None:
    log = [
        message(1, 1, "System", "old"),
        message(2, 2, "System", "new"),
        message(3, 2, "Ann", "ann", through=2),
    ]
    assert private_conversation(log, "Ann", Fresh())[0] == ChatMessage(
        ChatRole.USER, "[System]: new"
    )


def test_chat_form_is_system_history_then_the_new_messages() -> None:
    history = [ChatMessage(ChatRole.USER, "u"), ChatMessage(ChatRole.ASSISTANT, "a")]
    messages = chat_messages("sys", history, [message(9, 3, "System", "now")])
    assert [m.role for m in messages] == [
        ChatRole.SYSTEM,
        ChatRole.USER,
        ChatRole.ASSISTANT,
        ChatRole.USER,
    ]
    assert messages[-1].content == "[System]: now"
