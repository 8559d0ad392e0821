"""Whether a run's input calls for replies (ReactionStrategy)."""

from __future__ import annotations

from collections.abc import Iterable

from parley.server.engine.model import MessageDraft, MessageType, ReactionStrategy, SpeakerKind


def should_react(strategy: ReactionStrategy, inputs: Iterable[MessageDraft]) -> bool:
    """Context-info input never triggers a reaction by itself; it waits for the next run."""
    kinds = {m.speaker.kind for m in inputs if m.type is not MessageType.CONTEXT_INFO}
    match strategy:
        case ReactionStrategy.ALWAYS | ReactionStrategy.EXCEPT_CONTEXT_INFO:
            return bool(kinds)
        case ReactionStrategy.USER_ONLY:
            return SpeakerKind.USER in kinds
        case ReactionStrategy.AGENT_ONLY:
            return SpeakerKind.AGENT in kinds
        case ReactionStrategy.EXCEPT_SYSTEM | ReactionStrategy.CONVERSATIONAL:
            return bool(kinds & {SpeakerKind.USER, SpeakerKind.AGENT})
