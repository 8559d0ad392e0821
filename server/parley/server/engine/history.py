"""Exporting a dialogue's log and importing one into a new dialogue.

Two formats:

- LLM_TOOLKIT_JSON: the pretty JSON array of `{"speaker": {...}, "content": ...}` that
  llm-toolkit's `Dialogue::save_history` writes and `load_history` reads. Its speakers
  are `{"type": "system"}`, `{"type": "user", "name", "role"}` and
  `{"type": "agent", "name", "role", "icon"?}`.
- FULL_JSON: every field of every message (seq, turn, type, origin, attachments with
  base64 data, metadata, create time), for backups and moves between servers.
"""

from __future__ import annotations

import base64
import enum
import itertools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from parley.server.engine.errors import FieldViolation, InvalidArgument
from parley.server.engine.model import (
    Attachment,
    Message,
    MessageDraft,
    MessageType,
    Origin,
    Speaker,
    SpeakerKind,
)
from parley.server.engine.prompts import render_messages


class HistoryFormat(enum.Enum):
    LLM_TOOLKIT_JSON = "llm_toolkit_json"
    FULL_JSON = "full_json"


class ImportMode(enum.Enum):
    AS_MESSAGES = "as_messages"
    AS_SYSTEM_PROMPT = "as_system_prompt"


SYSTEM_PROMPT_PREFACE = "Conversation so far (imported history):"
# Turns are int64 in the store and every later run adds one: imported turns stay far
# below that (2^53 - 1 is also the largest integer every JSON reader keeps exactly).
MAX_IMPORTED_TURN = 2**53 - 1


def _speaker_to_json(speaker: Speaker) -> dict[str, str]:
    if speaker.kind is SpeakerKind.SYSTEM:
        return {"type": "system"}
    entry = {"type": speaker.kind.value, "name": speaker.name, "role": speaker.role}
    if speaker.kind is SpeakerKind.AGENT and speaker.icon:
        entry["icon"] = speaker.icon
    return entry


def _attachment_to_json(attachment: Attachment) -> dict[str, str]:
    entry = {"name": attachment.name, "mime_type": attachment.mime_type}
    if attachment.data is not None:
        entry["data"] = base64.b64encode(attachment.data).decode()
    elif attachment.uri is not None:
        entry["uri"] = attachment.uri
    return entry


def export_history(log: Sequence[Message], fmt: HistoryFormat) -> str:
    if fmt is HistoryFormat.LLM_TOOLKIT_JSON:
        entries: list[dict[str, Any]] = [
            {"speaker": _speaker_to_json(m.speaker), "content": m.content} for m in log
        ]
    else:
        entries = [
            {
                "seq": m.seq,
                "turn": m.turn,
                "speaker": _speaker_to_json(m.speaker),
                "content": m.content,
                "type": m.type.value,
                "custom_type": m.custom_type,
                "origin": m.origin.value,
                "attachments": [_attachment_to_json(a) for a in m.attachments],
                "metadata": dict(m.metadata),
                "create_time": m.create_time.isoformat(),
            }
            for m in log
        ]
    return json.dumps(entries, indent=2, ensure_ascii=False)


class _Reader:
    """Parses imported entries, collecting every problem with its place in the file."""

    def __init__(self) -> None:
        self.problems: list[FieldViolation] = []

    def fail(self, where: str, description: str) -> None:
        self.problems.append(FieldViolation(f"content{where}", description))

    def text(self, entry: dict[str, Any], key: str, where: str, default: str = "") -> str:
        value = entry.get(key, default)
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", "must be a string")
            return default
        return value

    def speaker(self, value: Any, where: str) -> Speaker:
        if not isinstance(value, dict):
            self.fail(where, "must be an object with a type")
            return Speaker.system()
        kind = value.get("type")
        if kind == "system":
            return Speaker.system()
        if kind not in ("user", "agent"):
            self.fail(f"{where}.type", "must be system, user or agent")
            return Speaker.system()
        name = self.text(value, "name", where)
        if not name:
            self.fail(f"{where}.name", "is required for user and agent speakers")
        icon = self.text(value, "icon", where) if value.get("icon") is not None else ""
        return Speaker(SpeakerKind(kind), name, self.text(value, "role", where), icon)

    def attachment(self, value: Any, where: str) -> Attachment | None:
        if not isinstance(value, dict):
            self.fail(where, "must be an object")
            return None
        data = None
        if "data" in value:
            try:
                data = base64.b64decode(self.text(value, "data", where), validate=True)
            except ValueError:  # binascii.Error, or a non-ASCII string
                self.fail(f"{where}.data", "must be base64")
        uri = self.text(value, "uri", where) if "uri" in value else None
        return Attachment(
            self.text(value, "name", where), self.text(value, "mime_type", where), data, uri
        )


def _enum_value(reader: _Reader, entry: dict[str, Any], key: str, where: str, kind: Any) -> Any:
    raw = reader.text(entry, key, where)
    try:
        return kind(raw)
    except ValueError:
        reader.fail(f"{where}.{key}", f"must be one of {[k.value for k in kind]}")
        return None


def parse_history(content: str, first_turn: int = 1) -> list[MessageDraft]:
    """Drafts for an import AS_MESSAGES, in file order, with their turns.

    LLM-toolkit files carry no turns: a system or user message opens a new turn and the
    replies after it share that turn. FULL_JSON files keep their own turns.
    """
    try:
        entries = json.loads(content)
    except json.JSONDecodeError as error:
        raise InvalidArgument.single(
            "content", f"is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(entries, list):
        raise InvalidArgument.single("content", "must be a JSON array of messages")
    try:
        # JSON may spell lone surrogates (\ud800), which are not text: no store takes them.
        json.dumps(entries, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise InvalidArgument.single(
            "content", "holds a lone surrogate escape (\\ud800-\\udfff), which is not text"
        ) from None
    reader = _Reader()
    drafts: list[MessageDraft] = []
    turn = first_turn - 1
    for i, entry in enumerate(entries):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            reader.fail(where, "must be an object with speaker and content")
            continue
        speaker = reader.speaker(entry.get("speaker"), f"{where}.speaker")
        content_text = reader.text(entry, "content", where)
        if "seq" in entry:  # FULL_JSON
            drafts.append(_full_draft(reader, entry, where, speaker, content_text))
            continue
        if speaker.kind is not SpeakerKind.AGENT or turn < first_turn:
            turn += 1
        origin = Origin.AGENT_GENERATED if speaker.kind is SpeakerKind.AGENT else Origin.INCOMING
        drafts.append(MessageDraft(turn, speaker, content_text, origin))
    if reader.problems:
        raise InvalidArgument(reader.problems)
    if any(b.turn < a.turn for a, b in itertools.pairwise(drafts)):
        raise InvalidArgument.single("content", "turns must not decrease along the file")
    return drafts


def _full_draft(
    reader: _Reader, entry: dict[str, Any], where: str, speaker: Speaker, content: str
) -> MessageDraft:
    turn = entry.get("turn")
    if not isinstance(turn, int) or isinstance(turn, bool) or not 1 <= turn <= MAX_IMPORTED_TURN:
        reader.fail(f"{where}.turn", f"must be an integer from 1 to {MAX_IMPORTED_TURN}")
        turn = 1
    kind = _enum_value(reader, entry, "type", where, MessageType) or MessageType.CONVERSATIONAL
    origin = _enum_value(reader, entry, "origin", where, Origin) or Origin.INCOMING
    raw_attachments = entry.get("attachments", [])
    attachments = [
        reader.attachment(a, f"{where}.attachments[{j}]")
        for j, a in enumerate(raw_attachments if isinstance(raw_attachments, list) else [])
    ]
    metadata = entry.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        reader.fail(f"{where}.metadata", "must map strings to strings")
        metadata = {}
    return MessageDraft(
        turn=turn,
        speaker=speaker,
        content=content,
        origin=origin,
        create_time=_time(reader, entry, where),
        type=kind,
        custom_type=reader.text(entry, "custom_type", where),
        attachments=tuple(a for a in attachments if a is not None),
        metadata=metadata,
    )


def _time(reader: _Reader, entry: dict[str, Any], where: str) -> datetime | None:
    raw = entry.get("create_time")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        reader.fail(f"{where}.create_time", "must be an ISO-8601 time with a UTC offset")
        return None
    return value


def render_history_preface(drafts: Sequence[MessageDraft], now: datetime) -> str:
    """The AS_SYSTEM_PROMPT form: the imported conversation as one context text."""
    messages = [Message.from_draft(d, i, now) for i, d in enumerate(drafts, start=1)]
    return f"{SYSTEM_PROMPT_PREFACE}\n{render_messages(messages)}"
