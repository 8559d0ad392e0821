"""The text a backend receives, rendered from persona, context, participants and messages.

Two forms share these pieces: the single-text form (`render_prompt`, for command and
completion backends) and the chat form (`render_system` as the system message, with the
participant's private conversation as user/assistant turns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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
    return _shared(dialogue).system(participant)


def render_prompt(
    dialogue: Dialogue, participant: Participant, delivered: Sequence[Message]
) -> str:
    """The single-text form: the system part followed by the new messages."""
    new = render_messages(delivered) if delivered else "(no new messages)"
    return f"{render_system(dialogue, participant)}\n\n# New messages\n{new}"


class _Shared:
    """What every participant's system text shares within one dialogue value.

    A run renders the system text of each participant it calls, twice (alone and in
    the single-text prompt); rendering the participant list anew each time would cost
    O(participants) per call. The list entries are rendered once per dialogue value, and
    each participant's whole text once.
    """

    __slots__ = ("context", "context_text", "entries", "participants", "systems")

    def __init__(self, dialogue: Dialogue) -> None:
        # Kept to recognise the same value again (by identity: they are immutable).
        self.participants = dialogue.participants
        self.context = dialogue.context
        self.context_text = (
            _render_context(dialogue.context) if dialogue.context is not None else ""
        )
        policy = dialogue.context.policy if dialogue.context is not None else {}
        # Per participant: (name, the entry before the "this is you" mark, after it).
        self.entries = [_participant_entry(p.persona, policy) for p in dialogue.participants]
        self.systems: dict[str, tuple[Participant, str]] = {}

    def system(self, participant: Participant) -> str:
        cached = self.systems.get(participant.name)
        if cached is not None and cached[0] is participant:
            return cached[1]
        sections = [_render_persona(participant.persona)]
        if self.context_text:
            sections.append(self.context_text)
        sections.append(self._participants(participant.name))
        sections.append(
            f"Answer as {participant.name} only, in your own voice. Do not write lines for "
            "other participants."
        )
        text = "\n\n".join(sections)
        self.systems[participant.name] = (participant, text)
        return text

    def _participants(self, you: str) -> str:
        lines = ["# Participants"]
        lines.extend(
            f"{head} - this is you{tail}" if name == you else head + tail
            for name, head, tail in self.entries
        )
        return "\n".join(lines)


# Bounded: a value not seen for a while is simply rendered again. Keyed by the identity
# of the participants tuple, checked on every hit, so a key is never confused with
# another dialogue's (the entry holds the tuple, so its id cannot be reused meanwhile).
_SHARED_MAX = 256
_shared_by_id: dict[int, _Shared] = {}


def _shared(dialogue: Dialogue) -> _Shared:
    key = id(dialogue.participants)
    found = _shared_by_id.get(key)
    if (
        found is not None
        and found.participants is dialogue.participants
        and found.context is dialogue.context
    ):
        return found
    if len(_shared_by_id) >= _SHARED_MAX:
        _shared_by_id.clear()
    shared = _shared_by_id[key] = _Shared(dialogue)
    return shared


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


def _participant_entry(
    persona: Persona, policy: Mapping[str, tuple[str, ...]]
) -> tuple[str, str, str]:
    head = f"- {persona.name}" + (f" ({persona.role})" if persona.role else "")
    tail = f": {persona.background}" if persona.background else ""
    allowed = policy.get(persona.name)
    shown = [c.name for c in persona.capabilities if allowed is None or c.name in allowed]
    if shown:
        tail += f" [capabilities: {', '.join(shown)}]"
    return persona.name, head, tail
