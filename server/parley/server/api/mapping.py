"""protobuf <-> engine model: the only place that knows both.

`*_from_proto` functions collect shape problems (unknown enum values, malformed names,
missing oneofs) into a `Violations` so one error lists them all; the engine checks the
domain rules afterwards.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from parley.server.agents.registry import AgentProfile
from parley.server.engine import events
from parley.server.engine.engine import RunInput
from parley.server.engine.history import HistoryFormat, ImportMode
from parley.server.engine.model import (
    DEFAULT_RECENT_TURNS,
    Attachment,
    Broadcast,
    BroadcastOrder,
    Capability,
    CustomTalkStyle,
    Dialogue,
    DialogueContext,
    ExecutionModel,
    Fresh,
    Full,
    InputMessage,
    JoiningStrategy,
    Mentioned,
    MentionMatchStrategy,
    Message,
    MessageType,
    Moderated,
    Origin,
    Participant,
    Persona,
    Range,
    ReactionStrategy,
    Recent,
    Sequential,
    Speaker,
    SpeakerKind,
    TalkStyle,
    Usage,
    VisualIdentity,
)
from parley.server.engine.validation import DIALOGUE_ID, Violations
from parley.server.store.feed import CancelMode
from parley.v1 import dialogue_pb2 as pb

RESOURCE_PREFIX = "dialogues/"

E = TypeVar("E", bound=Enum)
K = TypeVar("K")
T = TypeVar("T", str, int)

SPEAKER_KINDS = {
    pb.SPEAKER_KIND_SYSTEM: SpeakerKind.SYSTEM,
    pb.SPEAKER_KIND_USER: SpeakerKind.USER,
    pb.SPEAKER_KIND_AGENT: SpeakerKind.AGENT,
}
MESSAGE_TYPES = {
    pb.MESSAGE_TYPE_CONVERSATIONAL: MessageType.CONVERSATIONAL,
    pb.MESSAGE_TYPE_NOTIFICATION: MessageType.NOTIFICATION,
    pb.MESSAGE_TYPE_SYSTEM: MessageType.SYSTEM,
    pb.MESSAGE_TYPE_CONTEXT_INFO: MessageType.CONTEXT_INFO,
    pb.MESSAGE_TYPE_CUSTOM: MessageType.CUSTOM,
}
ORIGINS = {
    pb.MESSAGE_ORIGIN_INCOMING: Origin.INCOMING,
    pb.MESSAGE_ORIGIN_AGENT_GENERATED: Origin.AGENT_GENERATED,
}
BROADCAST_ORDERS = {
    pb.BROADCAST_ORDER_COMPLETION: BroadcastOrder.COMPLETION,
    pb.BROADCAST_ORDER_PARTICIPANT_ORDER: BroadcastOrder.PARTICIPANT_ORDER,
    pb.BROADCAST_ORDER_EXPLICIT: BroadcastOrder.EXPLICIT,
}
MENTION_STRATEGIES = {
    pb.MENTION_MATCH_STRATEGY_EXACT_WORD: MentionMatchStrategy.EXACT_WORD,
    pb.MENTION_MATCH_STRATEGY_NAME: MentionMatchStrategy.NAME,
    pb.MENTION_MATCH_STRATEGY_PARTIAL: MentionMatchStrategy.PARTIAL,
}
REACTION_STRATEGIES = {
    pb.REACTION_STRATEGY_ALWAYS: ReactionStrategy.ALWAYS,
    pb.REACTION_STRATEGY_USER_ONLY: ReactionStrategy.USER_ONLY,
    pb.REACTION_STRATEGY_AGENT_ONLY: ReactionStrategy.AGENT_ONLY,
    pb.REACTION_STRATEGY_EXCEPT_SYSTEM: ReactionStrategy.EXCEPT_SYSTEM,
    pb.REACTION_STRATEGY_CONVERSATIONAL: ReactionStrategy.CONVERSATIONAL,
    pb.REACTION_STRATEGY_EXCEPT_CONTEXT_INFO: ReactionStrategy.EXCEPT_CONTEXT_INFO,
}
TALK_STYLES = {
    pb.TALK_STYLE_BRAINSTORM: TalkStyle.BRAINSTORM,
    pb.TALK_STYLE_CASUAL: TalkStyle.CASUAL,
    pb.TALK_STYLE_DECISION_MAKING: TalkStyle.DECISION_MAKING,
    pb.TALK_STYLE_DEBATE: TalkStyle.DEBATE,
    pb.TALK_STYLE_PROBLEM_SOLVING: TalkStyle.PROBLEM_SOLVING,
    pb.TALK_STYLE_REVIEW: TalkStyle.REVIEW,
    pb.TALK_STYLE_PLANNING: TalkStyle.PLANNING,
    pb.TALK_STYLE_RESEARCH: TalkStyle.RESEARCH,
}

HISTORY_FORMATS = {
    pb.HISTORY_FORMAT_LLM_TOOLKIT_JSON: HistoryFormat.LLM_TOOLKIT_JSON,
    pb.HISTORY_FORMAT_FULL_JSON: HistoryFormat.FULL_JSON,
}
IMPORT_MODES = {
    pb.IMPORT_MODE_AS_MESSAGES: ImportMode.AS_MESSAGES,
    pb.IMPORT_MODE_AS_SYSTEM_PROMPT: ImportMode.AS_SYSTEM_PROMPT,
}

CANCEL_MODES = {
    pb.CANCEL_MODE_IMMEDIATE: CancelMode.IMMEDIATE,
    pb.CANCEL_MODE_AFTER_TURN: CancelMode.AFTER_TURN,
}
DEFAULT_QUEUE_TIMEOUT_S = 30.0
NANOS_PER_SECOND = 1_000_000_000
MAX_INT64 = 2**63 - 1
MAX_QUEUE_TIMEOUT_S = 3600.0


def _inverse(table: Mapping[K, E]) -> dict[E, K]:
    return {value: key for key, value in table.items()}


SPEAKER_KINDS_PB = _inverse(SPEAKER_KINDS)
# By the members' values: a lookup keyed by an enum member hashes it in Python
# (`Enum.__hash__`), once per streamed turn.
_SPEAKER_KIND_VALUES_PB = {kind._value_: number for kind, number in SPEAKER_KINDS_PB.items()}
MESSAGE_TYPES_PB = _inverse(MESSAGE_TYPES)
ORIGINS_PB = _inverse(ORIGINS)
BROADCAST_ORDERS_PB = _inverse(BROADCAST_ORDERS)
MENTION_STRATEGIES_PB = _inverse(MENTION_STRATEGIES)
REACTION_STRATEGIES_PB = _inverse(REACTION_STRATEGIES)
TALK_STYLES_PB = _inverse(TALK_STYLES)


def enum_from_proto(
    table: Mapping[Any, E], value: int, default: E, field: str, out: Violations
) -> E:
    """UNSPECIFIED (0) means the documented default; unknown numbers are violations."""
    if value == 0:
        return default
    if value not in table:
        out.add(field, f"unknown enum value {value}")
        return default
    return table[value]


# --- names and pages ---------------------------------------------------------------


def dialogue_id_from_name(name: str, field: str, out: Violations) -> str:
    """Accepts `dialogues/{id}` or a bare id."""
    dialogue_id = name.removeprefix(RESOURCE_PREFIX)
    if not name:
        out.add(field, "is required (dialogues/{dialogue_id})")
    elif not DIALOGUE_ID.fullmatch(dialogue_id):
        out.add(
            field, "must be dialogues/{dialogue_id} with an id matching [a-z0-9][a-z0-9-]{0,62}"
        )
    return dialogue_id


def dialogue_name(dialogue_id: str) -> str:
    return RESOURCE_PREFIX + dialogue_id


def encode_page_token(**position: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_page_token(token: str, key: str, kind: type[T], field: str, out: Violations) -> T | None:
    """The position stored in a token made by `encode_page_token`, or None when empty."""
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))[key]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, kind) or isinstance(value, bool) or not _storable(value):
        out.add(field, "is not a page token issued by this server")
        return None
    return value


def _storable(value: str | int) -> bool:
    """What a store can take: an int64 that is not negative, text without lone surrogates
    (a token's JSON may spell them as \\ud800 escapes)."""
    if isinstance(value, int):
        return 0 <= value <= MAX_INT64
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def page_size(value: int, default: int, maximum: int, field: str, out: Violations) -> int:
    if value < 0:
        out.add(field, "must not be negative")
        return default
    return min(value or default, maximum)


# --- times ---------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    set_timestamp(stamp, value)
    return stamp


def set_timestamp(stamp: Timestamp, value: datetime) -> None:
    """`stamp.FromDatetime(value)`; UTC times (all the model makes) take a path several
    times faster, which counts once per streamed event."""
    if value.tzinfo is not UTC:
        stamp.FromDatetime(value)
        return
    since = value - _EPOCH
    stamp.seconds = since.days * 86_400 + since.seconds
    stamp.nanos = since.microseconds * 1_000


def duration(value: timedelta) -> Duration:
    result = Duration()
    set_duration(result, value)
    return result


def set_duration(result: Duration, value: timedelta) -> None:
    """`result.FromTimedelta(value)`, a few times faster: once per streamed turn. The
    Duration is set (present) even when zero."""
    if value.days >= 0:  # a latency: seconds and nanos both non-negative as they are
        seconds = value.days * 86_400 + value.seconds
        if seconds:
            result.seconds = seconds
        if value.microseconds or not seconds:
            result.nanos = value.microseconds * 1_000
        return
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    seconds, remainder = divmod(abs(micros), 1_000_000)
    # Seconds and nanos carry the same sign, as Duration requires.
    sign = -1 if micros < 0 else 1
    result.seconds = sign * seconds
    result.nanos = sign * remainder * 1_000


# --- dialogue, participants ----------------------------------------------------------


def persona_from_proto(persona: pb.Persona) -> Persona:
    return Persona(
        name=persona.name,
        role=persona.role,
        background=persona.background,
        communication_style=persona.communication_style,
        capabilities=tuple(Capability(c.name, c.description) for c in persona.capabilities),
        visual_identity=VisualIdentity(
            icon=persona.visual_identity.icon,
            tagline=persona.visual_identity.tagline,
            color=persona.visual_identity.color,
        ),
    )


def persona_to_proto(persona: Persona) -> pb.Persona:
    identity = persona.visual_identity
    return pb.Persona(
        name=persona.name,
        role=persona.role,
        background=persona.background,
        communication_style=persona.communication_style,
        capabilities=[
            pb.Capability(name=c.name, description=c.description) for c in persona.capabilities
        ],
        visual_identity=pb.VisualIdentity(
            icon=identity.icon, tagline=identity.tagline, color=identity.color
        ),
    )


def joining_from_proto(
    strategy: pb.JoiningStrategy, field: str, out: Violations
) -> JoiningStrategy | None:
    match strategy.WhichOneof("strategy"):
        case "fresh":
            return Fresh()
        case "full":
            return Full()
        case "recent":
            return Recent(strategy.recent.turns or DEFAULT_RECENT_TURNS)
        case "range":
            end = strategy.range.end if strategy.range.HasField("end") else None
            return Range(strategy.range.start, end)
    return None


def joining_to_proto(strategy: JoiningStrategy | None) -> pb.JoiningStrategy | None:
    match strategy:
        case Fresh():
            return pb.JoiningStrategy(fresh=pb.JoiningStrategy.Fresh())
        case Full():
            return pb.JoiningStrategy(full=pb.JoiningStrategy.Full())
        case Recent(turns=turns):
            return pb.JoiningStrategy(recent=pb.JoiningStrategy.Recent(turns=turns))
        case Range(start=start, end=end):
            return pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=start, end=end))
    return None


def participant_from_proto(participant: pb.Participant, field: str, out: Violations) -> Participant:
    joining = None
    if participant.HasField("joining_strategy"):
        joining = joining_from_proto(participant.joining_strategy, f"{field}.joining_strategy", out)
    return Participant(
        persona=persona_from_proto(participant.persona),
        agent=participant.agent,
        agent_options=dict(participant.agent_options),
        joining_strategy=joining,
    )


def participant_to_proto(participant: Participant) -> pb.Participant:
    return pb.Participant(
        persona=persona_to_proto(participant.persona),
        agent=participant.agent,
        agent_options=dict(participant.agent_options),
        pending=participant.pending,
        joining_strategy=joining_to_proto(participant.joining_strategy),
    )


def broadcast_from_proto(broadcast: pb.Broadcast, field: str, out: Violations) -> Broadcast:
    order = enum_from_proto(
        BROADCAST_ORDERS, broadcast.order, BroadcastOrder.COMPLETION, f"{field}.order", out
    )
    return Broadcast(order, tuple(broadcast.explicit_order))


def broadcast_to_proto(broadcast: Broadcast) -> pb.Broadcast:
    return pb.Broadcast(
        order=BROADCAST_ORDERS_PB[broadcast.order], explicit_order=list(broadcast.explicit_order)
    )


def execution_model_from_proto(
    model: pb.ExecutionModel, field: str, out: Violations
) -> ExecutionModel:
    match model.WhichOneof("mode"):
        case "sequential":
            return Sequential(tuple(model.sequential.order))
        case "mentioned":
            strategy = enum_from_proto(
                MENTION_STRATEGIES,
                model.mentioned.strategy,
                MentionMatchStrategy.EXACT_WORD,
                f"{field}.mentioned.strategy",
                out,
            )
            return Mentioned(strategy)
        case "moderator":
            return Moderated(model.moderator.agent, dict(model.moderator.agent_options))
        case "broadcast":
            return broadcast_from_proto(model.broadcast, f"{field}.broadcast", out)
    return Broadcast()


def execution_model_to_proto(model: ExecutionModel) -> pb.ExecutionModel:
    match model:
        case Broadcast():
            return pb.ExecutionModel(broadcast=broadcast_to_proto(model))
        case Sequential(order=order):
            return pb.ExecutionModel(sequential=pb.Sequential(order=list(order)))
        case Mentioned(strategy=strategy):
            return pb.ExecutionModel(
                mentioned=pb.Mentioned(strategy=MENTION_STRATEGIES_PB[strategy])
            )
        case Moderated(agent=agent, agent_options=options):
            return pb.ExecutionModel(
                moderator=pb.Moderated(agent=agent, agent_options=dict(options))
            )


def context_from_proto(context: pb.DialogueContext, field: str, out: Violations) -> DialogueContext:
    style: TalkStyle | CustomTalkStyle | None = None
    match context.WhichOneof("style"):
        case "talk_style":
            if context.talk_style != pb.TALK_STYLE_UNSPECIFIED:
                style = enum_from_proto(
                    TALK_STYLES, context.talk_style, TalkStyle.CASUAL, f"{field}.talk_style", out
                )
        case "custom_talk_style":
            custom = context.custom_talk_style
            style = CustomTalkStyle(
                custom.name,
                custom.description,
                tuple(custom.guidelines),
                tuple(custom.expected_behaviors),
            )
    return DialogueContext(
        talk_style=style,
        environment=context.environment,
        additional_context=tuple(context.additional_context),
        policy={name: tuple(allowed.capabilities) for name, allowed in context.policy.items()},
    )


def context_to_proto(context: DialogueContext | None) -> pb.DialogueContext | None:
    if context is None:
        return None
    result = pb.DialogueContext(
        environment=context.environment,
        additional_context=list(context.additional_context),
        policy={
            name: pb.CapabilityList(capabilities=list(allowed))
            for name, allowed in context.policy.items()
        },
    )
    if isinstance(context.talk_style, TalkStyle):
        result.talk_style = TALK_STYLES_PB[context.talk_style]
    elif isinstance(context.talk_style, CustomTalkStyle):
        custom = context.talk_style
        result.custom_talk_style.CopyFrom(
            pb.CustomTalkStyle(
                name=custom.name,
                description=custom.description,
                guidelines=list(custom.guidelines),
                expected_behaviors=list(custom.expected_behaviors),
            )
        )
    return result


def dialogue_from_proto(
    dialogue: pb.Dialogue, dialogue_id: str, field: str, out: Violations
) -> Dialogue:
    return Dialogue(
        id=dialogue_id,
        display_name=dialogue.display_name,
        participants=tuple(
            participant_from_proto(p, f"{field}.participants[{i}]", out)
            for i, p in enumerate(dialogue.participants)
        ),
        execution_model=execution_model_from_proto(
            dialogue.execution_model, f"{field}.execution_model", out
        ),
        context=(
            context_from_proto(dialogue.context, f"{field}.context", out)
            if dialogue.HasField("context")
            else None
        ),
        reaction_strategy=enum_from_proto(
            REACTION_STRATEGIES,
            dialogue.reaction_strategy,
            ReactionStrategy.ALWAYS,
            f"{field}.reaction_strategy",
            out,
        ),
    )


def dialogue_to_proto(dialogue: Dialogue) -> pb.Dialogue:
    return pb.Dialogue(
        name=dialogue_name(dialogue.id),
        display_name=dialogue.display_name,
        participants=[participant_to_proto(p) for p in dialogue.participants],
        execution_model=execution_model_to_proto(dialogue.execution_model),
        context=context_to_proto(dialogue.context),
        reaction_strategy=REACTION_STRATEGIES_PB[dialogue.reaction_strategy],
        latest_turn=dialogue.latest_turn,
        message_count=dialogue.message_count,
        create_time=timestamp(dialogue.create_time),
        update_time=timestamp(dialogue.update_time),
    )


# --- messages ------------------------------------------------------------------------


def speaker_from_proto(speaker: pb.Speaker, field: str, out: Violations) -> Speaker:
    kind = enum_from_proto(SPEAKER_KINDS, speaker.kind, SpeakerKind.USER, f"{field}.kind", out)
    return Speaker(kind, speaker.name, speaker.role, speaker.icon)


def speaker_to_proto(speaker: Speaker) -> pb.Speaker:
    result = pb.Speaker()
    _fill_speaker(result, speaker)
    return result


def attachment_from_proto(attachment: pb.Attachment, field: str, out: Violations) -> Attachment:
    source = attachment.WhichOneof("source")
    return Attachment(
        name=attachment.name,
        mime_type=attachment.mime_type,
        data=attachment.data if source == "data" else None,
        uri=attachment.uri if source == "uri" else None,
    )


def attachment_to_proto(attachment: Attachment) -> pb.Attachment:
    result = pb.Attachment(name=attachment.name, mime_type=attachment.mime_type)
    if attachment.data is not None:
        result.data = attachment.data
    elif attachment.uri is not None:
        result.uri = attachment.uri
    return result


def message_to_proto(message: Message) -> pb.Message:
    return pb.Message(
        seq=message.seq,
        turn=message.turn,
        speaker=speaker_to_proto(message.speaker),
        content=message.content,
        type=MESSAGE_TYPES_PB[message.type],
        custom_type=message.custom_type,
        origin=ORIGINS_PB[message.origin],
        attachments=[attachment_to_proto(a) for a in message.attachments],
        metadata=dict(message.metadata),
        create_time=timestamp(message.create_time),
    )


def input_message_from_proto(message: pb.InputMessage, field: str, out: Violations) -> InputMessage:
    return InputMessage(
        speaker=speaker_from_proto(message.speaker, f"{field}.speaker", out),
        content=message.content,
        type=enum_from_proto(
            MESSAGE_TYPES, message.type, MessageType.CONVERSATIONAL, f"{field}.type", out
        ),
        custom_type=message.custom_type,
        attachments=tuple(
            attachment_from_proto(a, f"{field}.attachments[{i}]", out)
            for i, a in enumerate(message.attachments)
        ),
        metadata=dict(message.metadata),
    )


def run_input_from_proto(request: pb.RunSessionRequest, out: Violations) -> RunInput:
    speaker = None
    if request.HasField("speaker"):
        speaker = speaker_from_proto(request.speaker, "speaker", out)
    override = None
    if request.HasField("broadcast_order_override"):
        override = broadcast_from_proto(
            request.broadcast_order_override, "broadcast_order_override", out
        )
    return RunInput(
        text=request.text,
        messages=tuple(
            input_message_from_proto(m, f"messages[{i}]", out)
            for i, m in enumerate(request.messages)
        ),
        attachments=tuple(
            attachment_from_proto(a, f"attachments[{i}]", out)
            for i, a in enumerate(request.attachments)
        ),
        speaker=speaker,
        broadcast_override=override,
    )


# --- events --------------------------------------------------------------------------


# Streamed events are filled in place: a sub-message passed to a constructor or to
# CopyFrom is copied, which doubled the cost of every event on the stream.


def usage_to_proto(usage: Usage) -> pb.Usage:
    result = pb.Usage()
    _fill_usage(result, usage)
    return result


def _fill_usage(result: pb.Usage, usage: Usage) -> None:
    """Sets `result` (present, even when every count is zero) to `usage`."""
    # Each field set is a lookup by name in upb: fields at their default are left out,
    # which proto3 encodes the same (streamed turns mostly carry zeros or a name only).
    if usage.input_tokens:
        result.input_tokens = usage.input_tokens
    if usage.output_tokens:
        result.output_tokens = usage.output_tokens
    if not (usage.input_tokens or usage.output_tokens):
        result.SetInParent()


def _fill_speaker(result: pb.Speaker, speaker: Speaker) -> None:
    result.kind = _SPEAKER_KIND_VALUES_PB[speaker.kind._value_]  # never 0: present
    result.name = speaker.name
    if speaker.role:
        result.role = speaker.role
    if speaker.icon:
        result.icon = speaker.icon


def turn_to_proto(turn: events.TurnCompleted) -> pb.Turn:
    result = pb.Turn()
    _fill_turn(result, turn)
    return result


def _fill_turn(result: pb.Turn, turn: events.TurnCompleted) -> None:
    _fill_speaker(result.speaker, turn.speaker)
    result.content = turn.content
    result.turn = turn.turn
    result.message_seq = turn.message_seq
    result.participant_index = turn.participant_index
    set_duration(result.latency, turn.latency)
    _fill_usage(result.usage, turn.usage)


def turn_failed_to_proto(failed: events.TurnFailed) -> pb.TurnFailed:
    result = pb.TurnFailed()
    _fill_turn_failed(result, failed)
    return result


def _fill_turn_failed(result: pb.TurnFailed, failed: events.TurnFailed) -> None:
    _fill_speaker(result.speaker, failed.speaker)
    result.participant_index = failed.participant_index
    result.code = failed.code
    result.message = failed.message
    result.retryable = failed.retryable
    result.attempts = failed.attempts


def started_to_proto(started: events.SessionStarted) -> pb.SessionStarted:
    return pb.SessionStarted(
        participants=list(started.participants),
        execution_model=execution_model_to_proto(started.execution_model),
        input_seqs=list(started.input_seqs),
    )


def routing_to_proto(routing: events.RoutingDecision) -> pb.RoutingDecision:
    return pb.RoutingDecision(
        execution_model=execution_model_to_proto(routing.execution_model),
        raw_answer=routing.raw_answer,
    )


def session_event_to_proto(envelope: events.SessionEvent) -> pb.SessionEvent:
    # Fields set one by one: keywords to a message's constructor go through a dict.
    result = pb.SessionEvent()
    result.dialogue = dialogue_name(envelope.dialogue_id)
    result.turn = envelope.turn
    result.sequence = envelope.sequence
    set_timestamp(result.time, envelope.time)
    event = envelope.event
    if isinstance(event, events.TurnCompleted):  # all but two events of a run: first
        _fill_turn(result.turn_completed, event)
        return result
    match event:
        case events.SessionStarted():
            result.started.CopyFrom(started_to_proto(event))
        case events.RoutingDecision():
            result.routing.CopyFrom(routing_to_proto(event))
        case events.TurnFailed():
            _fill_turn_failed(result.turn_failed, event)
        case events.SessionCompleted(turn_count=turns, failure_count=failures):
            result.completed.turn_count = turns
            result.completed.failure_count = failures
    return result


# --- agent profiles ------------------------------------------------------------------


def agent_profile_to_proto(profile: AgentProfile) -> pb.AgentProfile:
    return pb.AgentProfile(
        name=profile.name,
        kind=profile.kind,
        model=profile.model,
        available=profile.available,
        unavailable_reason=profile.unavailable_reason,
        allowed_options=sorted(profile.allowed_options),
    )


def queue_timeout_from_proto(request: pb.RunSessionRequest, out: Violations) -> float | None:
    """None: reject when busy; otherwise how long to wait for the other run."""
    if request.if_busy == pb.IF_BUSY_UNSPECIFIED or request.if_busy == pb.IF_BUSY_REJECT:
        if request.HasField("queue_timeout"):
            out.add("queue_timeout", "is only allowed with IF_BUSY_QUEUE")
        return None
    if request.if_busy != pb.IF_BUSY_QUEUE:
        out.add("if_busy", f"unknown enum value {request.if_busy}")
        return None
    if not request.HasField("queue_timeout"):
        return DEFAULT_QUEUE_TIMEOUT_S
    # Not ToTimedelta(): it overflows on int64 seconds outside timedelta's range.
    timeout = request.queue_timeout
    seconds = timeout.seconds + timeout.nanos / 1e9
    if not -NANOS_PER_SECOND < timeout.nanos < NANOS_PER_SECOND:
        out.add("queue_timeout", "is not a valid Duration (nanos out of range)")
        return None
    if not 0 <= seconds <= MAX_QUEUE_TIMEOUT_S:
        out.add("queue_timeout", f"must be between 0 and {MAX_QUEUE_TIMEOUT_S:g} seconds")
        return None
    return seconds
