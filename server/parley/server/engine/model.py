"""The dialogue data model: plain dataclasses shared by the engine, stores and agents.

Nothing here knows about protobuf or SQL; the api layer maps these to parley.v1 messages
and each store maps them to its own rows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar, dataclass_transform

SYSTEM_SPEAKER_NAME = "System"

_Record = TypeVar("_Record")


@dataclass_transform(frozen_default=True)
def record(cls: type[_Record]) -> type[_Record]:
    """A value made many times per run: a slotted dataclass, read-only to type checkers.

    Not `frozen=True` at run time: a frozen dataclass sets every field through
    `object.__setattr__`, five times slower than plain slots (1.5 against 0.3 us for
    eleven fields), and a run of sixteen participants makes a few hundred such values
    (measured: a tenth of the engine's time per run, and then 3.5% of the server's
    instructions per run for participants, speakers, dialogues and usages alone). mypy
    (strict, `make lint`) still rejects any assignment to their fields. They compare
    and hash by their fields, as frozen dataclasses do.

    Where a run makes them (once per reply or participant), they are called with
    positional arguments: calling a class with keywords builds a dict of them, which
    its `__init__` unpacks again (0.6 against 1.1 us for eleven fields; a few percent
    of the server's instructions per run). Named constructors (`Message.from_draft`,
    `MessageDraft.agent_reply`) keep those call sites readable.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


def utcnow() -> datetime:
    return datetime.now(UTC)


class SpeakerKind(enum.Enum):
    SYSTEM = "system"
    USER = "user"
    AGENT = "agent"


@record
class Speaker:
    kind: SpeakerKind
    name: str
    role: str = ""
    icon: str = ""

    @classmethod
    def system(cls) -> Speaker:
        return cls(SpeakerKind.SYSTEM, SYSTEM_SPEAKER_NAME)


class MessageType(enum.Enum):
    CONVERSATIONAL = "conversational"
    NOTIFICATION = "notification"
    SYSTEM = "system"
    CONTEXT_INFO = "context_info"
    CUSTOM = "custom"


class Origin(enum.Enum):
    INCOMING = "incoming"
    AGENT_GENERATED = "agent_generated"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file travelling with a message: inline `data` or a `uri`, never both."""

    name: str
    mime_type: str
    data: bytes | None = None
    uri: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0


@dataclass(frozen=True, slots=True)
class InputMessage:
    """One message of a run's input, as a client sends it."""

    speaker: Speaker
    content: str
    type: MessageType = MessageType.CONVERSATIONAL
    custom_type: str = ""
    attachments: tuple[Attachment, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


@record
class MessageDraft:
    """A message before the store gives it a `seq` and a create time."""

    turn: int
    speaker: Speaker
    content: str
    origin: Origin
    type: MessageType = MessageType.CONVERSATIONAL
    custom_type: str = ""
    attachments: tuple[Attachment, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    # For agent replies: the highest seq delivered to the author in the call that
    # produced this reply. It lets a participant's private conversation be rebuilt
    # from the log alone (see engine.delivery).
    delivered_through: int | None = None
    # Set only by imports that keep the original times; otherwise the store's clock.
    create_time: datetime | None = None

    @classmethod
    def agent_reply(
        cls, turn: int, speaker: Speaker, content: str, delivered_through: int
    ) -> MessageDraft:
        """An agent's reply, as a run stores it."""
        # Positional, in field order (see `record`).
        return cls(
            turn,
            speaker,
            content,
            Origin.AGENT_GENERATED,
            MessageType.CONVERSATIONAL,
            "",
            (),
            {},
            delivered_through,
        )


@record
class Message:
    """One entry of a dialogue's append-only log."""

    seq: int
    turn: int
    speaker: Speaker
    content: str
    origin: Origin
    create_time: datetime
    type: MessageType = MessageType.CONVERSATIONAL
    custom_type: str = ""
    attachments: tuple[Attachment, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    delivered_through: int | None = None

    @classmethod
    def from_draft(cls, draft: MessageDraft, seq: int, create_time: datetime) -> Message:
        """The stored message; its metadata is a copy, not the draft's mapping."""
        # Positional, in field order (see `record`).
        return cls(
            seq,
            draft.turn,
            draft.speaker,
            draft.content,
            draft.origin,
            draft.create_time or create_time,
            draft.type,
            draft.custom_type,
            draft.attachments,
            dict(draft.metadata),
            draft.delivered_through,
        )


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class VisualIdentity:
    icon: str = ""
    tagline: str = ""
    color: str = ""


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    role: str = ""
    background: str = ""
    communication_style: str = ""
    capabilities: tuple[Capability, ...] = ()
    visual_identity: VisualIdentity = VisualIdentity()

    def speaker(self) -> Speaker:
        return Speaker(SpeakerKind.AGENT, self.name, self.role, self.visual_identity.icon)


# --- joining in progress -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fresh:
    """Nothing from the past: only the current turn."""


@dataclass(frozen=True, slots=True)
class Full:
    """Everything in the log."""


DEFAULT_RECENT_TURNS = 5


@dataclass(frozen=True, slots=True)
class Recent:
    """The last `turns` turns before the current one, plus the current turn."""

    turns: int = DEFAULT_RECENT_TURNS


@dataclass(frozen=True, slots=True)
class Range:
    """Turns `start..end` inclusive (end None: up to the current turn), plus the current."""

    start: int
    end: int | None = None


JoiningStrategy = Fresh | Full | Recent | Range


@record
class Participant:
    persona: Persona
    agent: str
    agent_options: Mapping[str, str] = field(default_factory=dict)
    joining_strategy: JoiningStrategy | None = None
    # Delivery cursor: every message with seq <= cursor has been handled for this
    # participant. None means it joined in progress and has not replied yet (pending):
    # its first call receives the window of its joining strategy instead.
    cursor: int | None = 0

    @property
    def name(self) -> str:
        return self.persona.name

    @property
    def pending(self) -> bool:
        return self.cursor is None


# --- execution models ----------------------------------------------------------------


class BroadcastOrder(enum.Enum):
    COMPLETION = "completion"
    PARTICIPANT_ORDER = "participant_order"
    EXPLICIT = "explicit"


@dataclass(frozen=True, slots=True)
class Broadcast:
    order: BroadcastOrder = BroadcastOrder.COMPLETION
    explicit_order: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sequential:
    order: tuple[str, ...] = ()


class MentionMatchStrategy(enum.Enum):
    EXACT_WORD = "exact_word"
    NAME = "name"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class Mentioned:
    strategy: MentionMatchStrategy = MentionMatchStrategy.EXACT_WORD


@dataclass(frozen=True, slots=True)
class Moderated:
    agent: str
    agent_options: Mapping[str, str] = field(default_factory=dict)


ExecutionModel = Broadcast | Sequential | Mentioned | Moderated


class ReactionStrategy(enum.Enum):
    ALWAYS = "always"
    USER_ONLY = "user_only"
    AGENT_ONLY = "agent_only"
    EXCEPT_SYSTEM = "except_system"
    CONVERSATIONAL = "conversational"
    EXCEPT_CONTEXT_INFO = "except_context_info"


# --- context -------------------------------------------------------------------------


class TalkStyle(enum.Enum):
    BRAINSTORM = "brainstorm"
    CASUAL = "casual"
    DECISION_MAKING = "decision_making"
    DEBATE = "debate"
    PROBLEM_SOLVING = "problem_solving"
    REVIEW = "review"
    PLANNING = "planning"
    RESEARCH = "research"


@dataclass(frozen=True, slots=True)
class CustomTalkStyle:
    name: str
    description: str = ""
    guidelines: tuple[str, ...] = ()
    expected_behaviors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DialogueContext:
    talk_style: TalkStyle | CustomTalkStyle | None = None
    environment: str = ""
    additional_context: tuple[str, ...] = ()
    # Participant name -> the capability names the others may see.
    policy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# --- the dialogue --------------------------------------------------------------------


@record
class Dialogue:
    id: str
    display_name: str = ""
    participants: tuple[Participant, ...] = ()
    execution_model: ExecutionModel = Broadcast()
    context: DialogueContext | None = None
    reaction_strategy: ReactionStrategy = ReactionStrategy.ALWAYS
    latest_turn: int = 0
    message_count: int = 0
    # Agent replies with seq <= mention_cursor have been scanned for @mentions (the
    # Mentioned model calls whoever later replies mention, once).
    mention_cursor: int = 0
    create_time: datetime = field(default_factory=utcnow)
    update_time: datetime = field(default_factory=utcnow)

    def participant(self, name: str) -> Participant | None:
        return next((p for p in self.participants if p.name == name), None)

    def index_of(self, name: str) -> int:
        return next(i for i, p in enumerate(self.participants) if p.name == name)


@record
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


# The usage of a reply that reports none: one shared value (records are read-only), not
# a new one per reply.
NO_USAGE = Usage()


class RunEnd(enum.Enum):
    """How a run ended, when not normally: recorded in the log for every reader."""

    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


RUN_END_METADATA_KEY = "parley.run_end"


def run_end_notice(turn: int, end: RunEnd) -> MessageDraft:
    """The System notification that marks turn `turn` as having ended abnormally."""
    return MessageDraft(
        turn=turn,
        speaker=Speaker.system(),
        content=f"Turn {turn} was {end.value} before every participant replied.",
        origin=Origin.INCOMING,
        type=MessageType.NOTIFICATION,
        metadata={RUN_END_METADATA_KEY: end.value},
    )
