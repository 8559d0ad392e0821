"""JSON documents for the model values a store keeps whole rather than in columns.

Every store (SQLite, PostgreSQL) uses these functions, so one dialogue written by either
backend has the same documents; the PostgreSQL feed also carries run events between
replicas in this form. Variants are tagged objects with a single key
(`{"broadcast": {...}}`, `{"recent": {"turns": 5}}`), the form the moderator answers in.
Decoders fill absent fields with the model's defaults, so a document written before a
field existed still reads; an unknown tag raises `ValueError` rather than guessing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, assert_never

from parley.server.engine.events import (
    Event,
    RoutingDecision,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    TurnCompleted,
    TurnFailed,
)
from parley.server.engine.model import (
    Attachment,
    Broadcast,
    BroadcastOrder,
    Capability,
    CustomTalkStyle,
    DialogueContext,
    ExecutionModel,
    Fresh,
    Full,
    JoiningStrategy,
    Mentioned,
    MentionMatchStrategy,
    Moderated,
    Persona,
    Range,
    Recent,
    Sequential,
    Speaker,
    SpeakerKind,
    TalkStyle,
    Usage,
    VisualIdentity,
)

JSONObject = dict[str, Any]


def _tagged(data: Mapping[str, Any], what: str) -> tuple[str, Mapping[str, Any]]:
    """Splits a `{tag: body}` document into its tag and body."""
    if len(data) != 1:
        raise ValueError(f"a {what} document has exactly one key, got {sorted(data)}")
    ((tag, body),) = data.items()
    return tag, body


# --- string maps (agent options, metadata) --------------------------------------------


def string_map_to_json(values: Mapping[str, str]) -> dict[str, str]:
    return dict(values)


def string_map_from_json(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in data.items()}


# --- execution models -----------------------------------------------------------------


def execution_model_to_json(model: ExecutionModel) -> JSONObject:
    match model:
        case Broadcast(order=order, explicit_order=explicit_order):
            return {"broadcast": {"order": order.value, "explicit_order": list(explicit_order)}}
        case Sequential(order=order):
            return {"sequential": {"order": list(order)}}
        case Mentioned(strategy=strategy):
            return {"mentioned": {"strategy": strategy.value}}
        case Moderated(agent=agent, agent_options=options):
            return {"moderated": {"agent": agent, "agent_options": string_map_to_json(options)}}
        case _:
            assert_never(model)


def execution_model_from_json(data: Mapping[str, Any]) -> ExecutionModel:
    tag, body = _tagged(data, "execution model")
    if tag == "broadcast":
        return Broadcast(
            order=BroadcastOrder(body.get("order", BroadcastOrder.COMPLETION.value)),
            explicit_order=tuple(body.get("explicit_order", ())),
        )
    if tag == "sequential":
        return Sequential(order=tuple(body.get("order", ())))
    if tag == "mentioned":
        return Mentioned(
            strategy=MentionMatchStrategy(
                body.get("strategy", MentionMatchStrategy.EXACT_WORD.value)
            )
        )
    if tag == "moderated":
        return Moderated(
            agent=body["agent"],
            agent_options=string_map_from_json(body.get("agent_options", {})),
        )
    raise ValueError(f"unknown execution model {tag!r}")


# --- context --------------------------------------------------------------------------


def talk_style_to_json(style: TalkStyle | CustomTalkStyle | None) -> JSONObject | None:
    match style:
        case None:
            return None
        case TalkStyle():
            return {"preset": style.value}
        case CustomTalkStyle():
            return {
                "custom": {
                    "name": style.name,
                    "description": style.description,
                    "guidelines": list(style.guidelines),
                    "expected_behaviors": list(style.expected_behaviors),
                }
            }
        case _:
            assert_never(style)


def talk_style_from_json(data: Mapping[str, Any] | None) -> TalkStyle | CustomTalkStyle | None:
    if data is None:
        return None
    tag, body = _tagged(data, "talk style")
    if tag == "preset":
        # The body of a preset is its enum value, not an object.
        return TalkStyle(body)
    if tag == "custom":
        return CustomTalkStyle(
            name=body["name"],
            description=body.get("description", ""),
            guidelines=tuple(body.get("guidelines", ())),
            expected_behaviors=tuple(body.get("expected_behaviors", ())),
        )
    raise ValueError(f"unknown talk style {tag!r}")


def context_to_json(context: DialogueContext) -> JSONObject:
    return {
        "talk_style": talk_style_to_json(context.talk_style),
        "environment": context.environment,
        "additional_context": list(context.additional_context),
        "policy": {name: list(caps) for name, caps in context.policy.items()},
    }


def context_from_json(data: Mapping[str, Any]) -> DialogueContext:
    return DialogueContext(
        talk_style=talk_style_from_json(data.get("talk_style")),
        environment=data.get("environment", ""),
        additional_context=tuple(data.get("additional_context", ())),
        policy={name: tuple(caps) for name, caps in data.get("policy", {}).items()},
    )


# --- participants ---------------------------------------------------------------------


def joining_strategy_to_json(strategy: JoiningStrategy | None) -> JSONObject | None:
    match strategy:
        case None:
            return None
        case Fresh():
            return {"fresh": {}}
        case Full():
            return {"full": {}}
        case Recent(turns=turns):
            return {"recent": {"turns": turns}}
        case Range(start=start, end=end):
            return {"range": {"start": start, "end": end}}
        case _:
            assert_never(strategy)


def joining_strategy_from_json(data: Mapping[str, Any] | None) -> JoiningStrategy | None:
    if data is None:
        return None
    tag, body = _tagged(data, "joining strategy")
    if tag == "fresh":
        return Fresh()
    if tag == "full":
        return Full()
    if tag == "recent":
        return Recent(turns=body.get("turns", Recent().turns))
    if tag == "range":
        return Range(start=body["start"], end=body.get("end"))
    raise ValueError(f"unknown joining strategy {tag!r}")


def persona_to_json(persona: Persona) -> JSONObject:
    identity = persona.visual_identity
    return {
        "name": persona.name,
        "role": persona.role,
        "background": persona.background,
        "communication_style": persona.communication_style,
        "capabilities": [
            {"name": c.name, "description": c.description} for c in persona.capabilities
        ],
        "visual_identity": {
            "icon": identity.icon,
            "tagline": identity.tagline,
            "color": identity.color,
        },
    }


def persona_from_json(data: Mapping[str, Any]) -> Persona:
    identity = data.get("visual_identity", {})
    return Persona(
        name=data["name"],
        role=data.get("role", ""),
        background=data.get("background", ""),
        communication_style=data.get("communication_style", ""),
        capabilities=tuple(
            Capability(name=c["name"], description=c.get("description", ""))
            for c in data.get("capabilities", ())
        ),
        visual_identity=VisualIdentity(
            icon=identity.get("icon", ""),
            tagline=identity.get("tagline", ""),
            color=identity.get("color", ""),
        ),
    )


# --- messages -------------------------------------------------------------------------


def speaker_to_json(speaker: Speaker) -> JSONObject:
    return {
        "kind": speaker.kind.value,
        "name": speaker.name,
        "role": speaker.role,
        "icon": speaker.icon,
    }


def speaker_from_json(data: Mapping[str, Any]) -> Speaker:
    return Speaker(
        kind=SpeakerKind(data["kind"]),
        name=data["name"],
        role=data.get("role", ""),
        icon=data.get("icon", ""),
    )


def attachment_to_json(attachment: Attachment) -> JSONObject:
    document: JSONObject = {"name": attachment.name, "mime_type": attachment.mime_type}
    # Absent rather than null, so "inline data" and "by reference" stay distinguishable
    # from an attachment that legitimately carries empty bytes.
    if attachment.data is not None:
        document["data"] = base64.b64encode(attachment.data).decode("ascii")
    if attachment.uri is not None:
        document["uri"] = attachment.uri
    return document


def attachment_from_json(data: Mapping[str, Any]) -> Attachment:
    encoded = data.get("data")
    return Attachment(
        name=data["name"],
        mime_type=data["mime_type"],
        data=None if encoded is None else base64.b64decode(encoded),
        uri=data.get("uri"),
    )


def attachments_to_json(attachments: Sequence[Attachment]) -> list[JSONObject]:
    return [attachment_to_json(a) for a in attachments]


def attachments_from_json(data: Sequence[Mapping[str, Any]]) -> tuple[Attachment, ...]:
    return tuple(attachment_from_json(a) for a in data)


# --- run events (the PostgreSQL feed carries them between replicas) -------------------

_MICROSECOND = timedelta(microseconds=1)


def usage_to_json(usage: Usage) -> JSONObject:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def usage_from_json(data: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=data.get("input_tokens", 0), output_tokens=data.get("output_tokens", 0)
    )


def event_to_json(event: Event) -> JSONObject:
    match event:
        case SessionStarted():
            return {
                "started": {
                    "participants": list(event.participants),
                    "execution_model": execution_model_to_json(event.execution_model),
                    "input_seqs": list(event.input_seqs),
                }
            }
        case RoutingDecision():
            return {
                "routing": {
                    "execution_model": execution_model_to_json(event.execution_model),
                    "raw_answer": event.raw_answer,
                }
            }
        case TurnCompleted():
            return {
                "turn_completed": {
                    "speaker": speaker_to_json(event.speaker),
                    "content": event.content,
                    "turn": event.turn,
                    "message_seq": event.message_seq,
                    "participant_index": event.participant_index,
                    "latency_us": event.latency // _MICROSECOND,
                    "usage": usage_to_json(event.usage),
                }
            }
        case TurnFailed():
            return {
                "turn_failed": {
                    "speaker": speaker_to_json(event.speaker),
                    "participant_index": event.participant_index,
                    "code": event.code,
                    "message": event.message,
                    "retryable": event.retryable,
                    "attempts": event.attempts,
                }
            }
        case SessionCompleted():
            return {
                "completed": {
                    "turn_count": event.turn_count,
                    "failure_count": event.failure_count,
                }
            }
        case _:
            assert_never(event)


def event_from_json(data: Mapping[str, Any]) -> Event:
    tag, body = _tagged(data, "run event")
    if tag == "started":
        return SessionStarted(
            participants=tuple(body.get("participants", ())),
            execution_model=execution_model_from_json(body["execution_model"]),
            input_seqs=tuple(body.get("input_seqs", ())),
        )
    if tag == "routing":
        return RoutingDecision(
            execution_model=execution_model_from_json(body["execution_model"]),
            raw_answer=body.get("raw_answer", ""),
        )
    if tag == "turn_completed":
        return TurnCompleted(
            speaker=speaker_from_json(body["speaker"]),
            content=body.get("content", ""),
            turn=body["turn"],
            message_seq=body["message_seq"],
            participant_index=body["participant_index"],
            latency=body.get("latency_us", 0) * _MICROSECOND,
            usage=usage_from_json(body.get("usage", {})),
        )
    if tag == "turn_failed":
        return TurnFailed(
            speaker=speaker_from_json(body["speaker"]),
            participant_index=body["participant_index"],
            code=body["code"],
            message=body.get("message", ""),
            retryable=body.get("retryable", False),
            attempts=body.get("attempts", 0),
        )
    if tag == "completed":
        return SessionCompleted(
            turn_count=body.get("turn_count", 0), failure_count=body.get("failure_count", 0)
        )
    raise ValueError(f"unknown run event {tag!r}")


def session_event_to_json(envelope: SessionEvent) -> JSONObject:
    return {
        "dialogue_id": envelope.dialogue_id,
        "turn": envelope.turn,
        "sequence": envelope.sequence,
        "time": envelope.time.isoformat(),
        "event": event_to_json(envelope.event),
    }


def session_event_from_json(data: Mapping[str, Any]) -> SessionEvent:
    return SessionEvent(
        dialogue_id=data["dialogue_id"],
        turn=data["turn"],
        sequence=data["sequence"],
        time=datetime.fromisoformat(data["time"]),
        event=event_from_json(data["event"]),
    )
