"""The text a backend receives, rendered from persona, context, participants and messages.

Two forms share these pieces: the single-text form (`render_prompt`, for command and
completion backends) and the chat form (`render_system` as the system message, with the
participant's private conversation as user/assistant turns).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from parley.server.engine.model import (
    CustomTalkStyle,
    Dialogue,
    DialogueContext,
    Message,
    Participant,
    Persona,
    TalkStyle,
)

TALK_STYLE_GUIDANCE: dict[TalkStyle, str] = {
    TalkStyle.BRAINSTORM: (
        "Brainstorm: offer many ideas, build on what others suggest, and hold back "
        "criticism until the ideas are on the table."
    ),
    TalkStyle.CASUAL: "Casual conversation: keep it relaxed, friendly and short.",
    TalkStyle.DECISION_MAKING: (
        "Decision making: lay out the options with their trade-offs and work towards "
        "a clear decision."
    ),
    TalkStyle.DEBATE: (
        "Debate: take a position, argue it with evidence, and answer the strongest "
        "points of the others."
    ),
    TalkStyle.PROBLEM_SOLVING: (
        "Problem solving: pin down the problem, find its causes, and propose concrete "
        "steps to solve it."
    ),
    TalkStyle.REVIEW: (
        "Review: examine the work critically but constructively; name what is good, "
        "what is wrong and how to fix it."
    ),
    TalkStyle.PLANNING: (
        "Planning: break the goal into steps with owners, order and rough timing."
    ),
    TalkStyle.RESEARCH: (
        "Research: investigate the question, share findings and say how sure you are "
        "and where each finding comes from."
    ),
}


def speaker_label(message: Message) -> str:
    speaker = message.speaker
    return f"{speaker.name} ({speaker.role})" if speaker.role else speaker.name


def render_messages(messages: Iterable[Message]) -> str:
    """One `[Name (Role)]: content` line per message, in log order."""
    return "\n".join(f"[{speaker_label(m)}]: {m.content}" for m in messages)


def render_system(dialogue: Dialogue, participant: Participant) -> str:
    """Who the participant is, the setting, and who else takes part."""
    sections = [_render_persona(participant.persona)]
    if dialogue.context is not None:
        context = _render_context(dialogue.context)
        if context:
            sections.append(context)
    sections.append(_render_participants(dialogue, participant.name))
    sections.append(
        f"Answer as {participant.name} only, in your own voice. Do not write lines for "
        "other participants."
    )
    return "\n\n".join(sections)


def render_prompt(
    dialogue: Dialogue, participant: Participant, delivered: Sequence[Message]
) -> str:
    """The single-text form: the system part followed by the new messages."""
    new = render_messages(delivered) if delivered else "(no new messages)"
    return f"{render_system(dialogue, participant)}\n\n# New messages\n{new}"


def _render_persona(persona: Persona) -> str:
    lines = [f"# You are {persona.name}" + (f", {persona.role}" if persona.role else "")]
    if persona.background:
        lines.append(f"Background: {persona.background}")
    if persona.communication_style:
        lines.append(f"How you speak: {persona.communication_style}")
    if persona.capabilities:
        lines.append("What you can do:")
        lines.extend(
            f"- {c.name}: {c.description}" if c.description else f"- {c.name}"
            for c in persona.capabilities
        )
    return "\n".join(lines)


def _render_context(context: DialogueContext) -> str:
    lines: list[str] = []
    style = context.talk_style
    if isinstance(style, TalkStyle):
        lines.append(f"Style of this dialogue: {TALK_STYLE_GUIDANCE[style]}")
    elif isinstance(style, CustomTalkStyle):
        lines.append(
            f"Style of this dialogue: {style.name}"
            + (f". {style.description}" if style.description else "")
        )
        lines.extend(f"- Guideline: {g}" for g in style.guidelines)
        lines.extend(f"- Expected: {b}" for b in style.expected_behaviors)
    if context.environment:
        lines.append(f"Setting: {context.environment}")
    lines.extend(f"Note: {text}" for text in context.additional_context)
    return "# Context\n" + "\n".join(lines) if lines else ""


def _render_participants(dialogue: Dialogue, you: str) -> str:
    policy = dialogue.context.policy if dialogue.context is not None else {}
    lines = ["# Participants"]
    for participant in dialogue.participants:
        persona = participant.persona
        entry = f"- {persona.name}" + (f" ({persona.role})" if persona.role else "")
        if persona.name == you:
            entry += " - this is you"
        if persona.background:
            entry += f": {persona.background}"
        allowed = policy.get(persona.name)
        shown = [c.name for c in persona.capabilities if allowed is None or c.name in allowed]
        if shown:
            entry += f" [capabilities: {', '.join(shown)}]"
        lines.append(entry)
    return "\n".join(lines)
