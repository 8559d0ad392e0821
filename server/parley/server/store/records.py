"""The relational records the SQL stores share: columns and model <-> row values.

SQLite and PostgreSQL keep the same tables; only how a time is stored differs (epoch
microseconds in SQLite, `timestamptz` in PostgreSQL), so the time conversion is passed
in. Documents (personas, models, contexts, attachments) are codec JSON text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from parley.server.engine.model import (
    Attachment,
    Dialogue,
    Message,
    MessageType,
    Origin,
    Participant,
    Persona,
    ReactionStrategy,
    Speaker,
    SpeakerKind,
)
from parley.server.store import codec

MESSAGE_COLUMNS = """
    seq, turn, speaker_kind, speaker_name, speaker_role, speaker_icon, content, type,
    custom_type, origin, attachments, metadata, delivered_through, create_time
"""

# Who a participant is; SQLite keeps the cursors, which move every run, on the dialogue.
PARTICIPANT_DEFINITION_COLUMNS = "name, persona, agent, agent_options, joining_strategy"
PARTICIPANT_COLUMNS = f"{PARTICIPANT_DEFINITION_COLUMNS}, cursor"

ToDatabaseTime = Callable[[datetime], object]
FromDatabaseTime = Callable[[Any], datetime]


class Row(Protocol):
    """What sqlite3.Row and asyncpg.Record both offer."""

    def __getitem__(self, key: str) -> Any: ...


def dump(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def dump_optional(document: object | None) -> str | None:
    return None if document is None else dump(document)


def load_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# Every message written and read goes through these; most have neither attachments nor
# metadata, and their columns then skip the JSON codec.
NO_ATTACHMENTS = "[]"
NO_METADATA = "{}"


def dump_attachments(attachments: Sequence[Attachment]) -> str:
    return dump(codec.attachments_to_json(attachments)) if attachments else NO_ATTACHMENTS


def load_attachments(text: str) -> tuple[Attachment, ...]:
    return () if text == NO_ATTACHMENTS else codec.attachments_from_json(json.loads(text))


def dump_string_map(values: Mapping[str, str]) -> str:
    return dump(codec.string_map_to_json(values)) if values else NO_METADATA


def load_string_map(text: str) -> dict[str, str]:
    return {} if text == NO_METADATA else codec.string_map_from_json(json.loads(text))


# Each run reads its dialogue twice, and decoding the participants' JSON was most of
# that. Personas are immutable, so one decoded value serves every read of the same
# text; option maps are mutable, so each read gets a copy of the cached one.
@functools.lru_cache(maxsize=4096)
def _persona_from_text(text: str) -> Persona:
    return codec.persona_from_json(json.loads(text))


@functools.lru_cache(maxsize=4096)
def _options_from_text(text: str) -> Mapping[str, str]:
    return load_string_map(text)


# Every message read decodes three enums and a speaker: by dict and by cache, several
# times faster than calling the enum classes and building a new speaker each time.
_SPEAKER_KINDS = {kind.value: kind for kind in SpeakerKind}
_ORIGINS = {origin.value: origin for origin in Origin}
_MESSAGE_TYPES = {kind.value: kind for kind in MessageType}
# And back through `_value_`, the member's own attribute (`.value` is a property, and a
# dict keyed by members hashes each through Python-level `Enum.__hash__`: measured, 1%
# of the server's instructions per run).


@functools.lru_cache(maxsize=4096)
def _speaker(kind: str, name: str, role: str, icon: str) -> Speaker:
    return Speaker(_SPEAKER_KINDS[kind], name, role, icon)


def participant_definition_values(
    dialogue_id: str, position: int, participant: Participant
) -> tuple[object, ...]:
    """Values for `dialogue_id, position, {PARTICIPANT_DEFINITION_COLUMNS}`."""
    return (
        dialogue_id,
        position,
        participant.name,
        dump(codec.persona_to_json(participant.persona)),
        participant.agent,
        dump(codec.string_map_to_json(participant.agent_options)),
        dump_optional(codec.joining_strategy_to_json(participant.joining_strategy)),
    )


def participant_values(
    dialogue_id: str, position: int, participant: Participant
) -> tuple[object, ...]:
    """Values for `dialogue_id, position, {PARTICIPANT_COLUMNS}`."""
    return (*participant_definition_values(dialogue_id, position, participant), participant.cursor)


def participant_from_definition(row: Row, cursor: int | None) -> Participant:
    """The participant of a row's `{PARTICIPANT_DEFINITION_COLUMNS}`, at `cursor`."""
    return Participant(
        persona=_persona_from_text(row["persona"]),
        agent=row["agent"],
        agent_options=dict(_options_from_text(row["agent_options"])),
        joining_strategy=codec.joining_strategy_from_json(load_optional(row["joining_strategy"])),
        cursor=cursor,
    )


def participant_from_row(row: Row) -> Participant:
    """The participant of a row's `{PARTICIPANT_COLUMNS}`."""
    return participant_from_definition(row, row["cursor"])


def dialogue_settings(dialogue: Dialogue) -> tuple[object, ...]:
    """display_name, execution_model, context, reaction_strategy: what updates replace."""
    context = None if dialogue.context is None else codec.context_to_json(dialogue.context)
    return (
        dialogue.display_name,
        dump(codec.execution_model_to_json(dialogue.execution_model)),
        dump_optional(context),
        dialogue.reaction_strategy.value,
    )


def dialogue_from_row(
    row: Row, participants: Sequence[Participant], from_time: FromDatabaseTime
) -> Dialogue:
    context = load_optional(row["context"])
    return Dialogue(
        id=row["id"],
        display_name=row["display_name"],
        participants=tuple(participants),
        execution_model=codec.execution_model_from_json(json.loads(row["execution_model"])),
        context=None if context is None else codec.context_from_json(context),
        reaction_strategy=ReactionStrategy(row["reaction_strategy"]),
        latest_turn=row["latest_turn"],
        message_count=row["message_count"],
        mention_cursor=row["mention_cursor"],
        create_time=from_time(row["create_time"]),
        update_time=from_time(row["update_time"]),
    )


def opened_dialogue(
    dialogue: Dialogue, turn: int, appended: Sequence[Message], now: datetime
) -> Dialogue:
    """`dialogue`, as read under the lease by `begin_run`, as that transaction leaves it:
    turn `turn` open and `appended` (an interrupted notice, the inputs) written at `now`.

    It saves reading the dialogue again after the writes.
    """
    if not appended:
        return replace(dialogue, latest_turn=turn)
    return replace(dialogue, latest_turn=turn, message_count=appended[-1].seq, update_time=now)


def message_values(
    dialogue_id: str, message: Message, to_time: ToDatabaseTime
) -> tuple[object, ...]:
    """Values for `dialogue_id, {MESSAGE_COLUMNS}`."""
    speaker = message.speaker
    return (
        dialogue_id,
        message.seq,
        message.turn,
        speaker.kind._value_,
        speaker.name,
        speaker.role,
        speaker.icon,
        message.content,
        message.type._value_,
        message.custom_type,
        message.origin._value_,
        dump_attachments(message.attachments),
        dump_string_map(message.metadata),
        message.delivered_through,
        to_time(message.create_time),
    )


def message_from_row(row: Row, from_time: FromDatabaseTime) -> Message:
    return Message(
        seq=row["seq"],
        turn=row["turn"],
        speaker=_speaker(
            row["speaker_kind"], row["speaker_name"], row["speaker_role"], row["speaker_icon"]
        ),
        content=row["content"],
        origin=_ORIGINS[row["origin"]],
        create_time=from_time(row["create_time"]),
        type=_MESSAGE_TYPES[row["type"]],
        custom_type=row["custom_type"],
        attachments=load_attachments(row["attachments"]),
        metadata=load_string_map(row["metadata"]),
        delivered_through=row["delivered_through"],
    )
