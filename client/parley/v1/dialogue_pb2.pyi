import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpeakerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_KIND_UNSPECIFIED: _ClassVar[SpeakerKind]
    SPEAKER_KIND_SYSTEM: _ClassVar[SpeakerKind]
    SPEAKER_KIND_USER: _ClassVar[SpeakerKind]
    SPEAKER_KIND_AGENT: _ClassVar[SpeakerKind]

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    MESSAGE_TYPE_CONVERSATIONAL: _ClassVar[MessageType]
    MESSAGE_TYPE_NOTIFICATION: _ClassVar[MessageType]
    MESSAGE_TYPE_SYSTEM: _ClassVar[MessageType]
    MESSAGE_TYPE_CONTEXT_INFO: _ClassVar[MessageType]
    MESSAGE_TYPE_CUSTOM: _ClassVar[MessageType]

class MessageOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_ORIGIN_UNSPECIFIED: _ClassVar[MessageOrigin]
    MESSAGE_ORIGIN_INCOMING: _ClassVar[MessageOrigin]
    MESSAGE_ORIGIN_AGENT_GENERATED: _ClassVar[MessageOrigin]

class BroadcastOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BROADCAST_ORDER_UNSPECIFIED: _ClassVar[BroadcastOrder]
    BROADCAST_ORDER_COMPLETION: _ClassVar[BroadcastOrder]
    BROADCAST_ORDER_PARTICIPANT_ORDER: _ClassVar[BroadcastOrder]
    BROADCAST_ORDER_EXPLICIT: _ClassVar[BroadcastOrder]

class MentionMatchStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MENTION_MATCH_STRATEGY_UNSPECIFIED: _ClassVar[MentionMatchStrategy]
    MENTION_MATCH_STRATEGY_EXACT_WORD: _ClassVar[MentionMatchStrategy]
    MENTION_MATCH_STRATEGY_NAME: _ClassVar[MentionMatchStrategy]
    MENTION_MATCH_STRATEGY_PARTIAL: _ClassVar[MentionMatchStrategy]

class ReactionStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REACTION_STRATEGY_UNSPECIFIED: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_ALWAYS: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_USER_ONLY: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_AGENT_ONLY: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_EXCEPT_SYSTEM: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_CONVERSATIONAL: _ClassVar[ReactionStrategy]
    REACTION_STRATEGY_EXCEPT_CONTEXT_INFO: _ClassVar[ReactionStrategy]

class TalkStyle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TALK_STYLE_UNSPECIFIED: _ClassVar[TalkStyle]
    TALK_STYLE_BRAINSTORM: _ClassVar[TalkStyle]
    TALK_STYLE_CASUAL: _ClassVar[TalkStyle]
    TALK_STYLE_DECISION_MAKING: _ClassVar[TalkStyle]
    TALK_STYLE_DEBATE: _ClassVar[TalkStyle]
    TALK_STYLE_PROBLEM_SOLVING: _ClassVar[TalkStyle]
    TALK_STYLE_REVIEW: _ClassVar[TalkStyle]
    TALK_STYLE_PLANNING: _ClassVar[TalkStyle]
    TALK_STYLE_RESEARCH: _ClassVar[TalkStyle]

class IfBusy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IF_BUSY_UNSPECIFIED: _ClassVar[IfBusy]
    IF_BUSY_REJECT: _ClassVar[IfBusy]
    IF_BUSY_QUEUE: _ClassVar[IfBusy]

class HistoryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HISTORY_FORMAT_UNSPECIFIED: _ClassVar[HistoryFormat]
    HISTORY_FORMAT_LLM_TOOLKIT_JSON: _ClassVar[HistoryFormat]
    HISTORY_FORMAT_FULL_JSON: _ClassVar[HistoryFormat]

class ImportMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_MODE_UNSPECIFIED: _ClassVar[ImportMode]
    IMPORT_MODE_AS_MESSAGES: _ClassVar[ImportMode]
    IMPORT_MODE_AS_SYSTEM_PROMPT: _ClassVar[ImportMode]

class CancelMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_MODE_UNSPECIFIED: _ClassVar[CancelMode]
    CANCEL_MODE_IMMEDIATE: _ClassVar[CancelMode]
    CANCEL_MODE_AFTER_TURN: _ClassVar[CancelMode]
SPEAKER_KIND_UNSPECIFIED: SpeakerKind
SPEAKER_KIND_SYSTEM: SpeakerKind
SPEAKER_KIND_USER: SpeakerKind
SPEAKER_KIND_AGENT: SpeakerKind
MESSAGE_TYPE_UNSPECIFIED: MessageType
MESSAGE_TYPE_CONVERSATIONAL: MessageType
MESSAGE_TYPE_NOTIFICATION: MessageType
MESSAGE_TYPE_SYSTEM: MessageType
MESSAGE_TYPE_CONTEXT_INFO: MessageType
MESSAGE_TYPE_CUSTOM: MessageType
MESSAGE_ORIGIN_UNSPECIFIED: MessageOrigin
MESSAGE_ORIGIN_INCOMING: MessageOrigin
MESSAGE_ORIGIN_AGENT_GENERATED: MessageOrigin
BROADCAST_ORDER_UNSPECIFIED: BroadcastOrder
BROADCAST_ORDER_COMPLETION: BroadcastOrder
BROADCAST_ORDER_PARTICIPANT_ORDER: BroadcastOrder
BROADCAST_ORDER_EXPLICIT: BroadcastOrder
MENTION_MATCH_STRATEGY_UNSPECIFIED: MentionMatchStrategy
MENTION_MATCH_STRATEGY_EXACT_WORD: MentionMatchStrategy
MENTION_MATCH_STRATEGY_NAME: MentionMatchStrategy
MENTION_MATCH_STRATEGY_PARTIAL: MentionMatchStrategy
REACTION_STRATEGY_UNSPECIFIED: ReactionStrategy
REACTION_STRATEGY_ALWAYS: ReactionStrategy
REACTION_STRATEGY_USER_ONLY: ReactionStrategy
REACTION_STRATEGY_AGENT_ONLY: ReactionStrategy
REACTION_STRATEGY_EXCEPT_SYSTEM: ReactionStrategy
REACTION_STRATEGY_CONVERSATIONAL: ReactionStrategy
REACTION_STRATEGY_EXCEPT_CONTEXT_INFO: ReactionStrategy
TALK_STYLE_UNSPECIFIED: TalkStyle
TALK_STYLE_BRAINSTORM: TalkStyle
TALK_STYLE_CASUAL: TalkStyle
TALK_STYLE_DECISION_MAKING: TalkStyle
TALK_STYLE_DEBATE: TalkStyle
TALK_STYLE_PROBLEM_SOLVING: TalkStyle
TALK_STYLE_REVIEW: TalkStyle
TALK_STYLE_PLANNING: TalkStyle
TALK_STYLE_RESEARCH: TalkStyle
IF_BUSY_UNSPECIFIED: IfBusy
IF_BUSY_REJECT: IfBusy
IF_BUSY_QUEUE: IfBusy
HISTORY_FORMAT_UNSPECIFIED: HistoryFormat
HISTORY_FORMAT_LLM_TOOLKIT_JSON: HistoryFormat
HISTORY_FORMAT_FULL_JSON: HistoryFormat
IMPORT_MODE_UNSPECIFIED: ImportMode
IMPORT_MODE_AS_MESSAGES: ImportMode
IMPORT_MODE_AS_SYSTEM_PROMPT: ImportMode
CANCEL_MODE_UNSPECIFIED: CancelMode
CANCEL_MODE_IMMEDIATE: CancelMode
CANCEL_MODE_AFTER_TURN: CancelMode

class Dialogue(_message.Message):
    __slots__ = ("name", "display_name", "participants", "execution_model", "context", "reaction_strategy", "latest_turn", "message_count", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REACTION_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    LATEST_TURN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    execution_model: ExecutionModel
    context: DialogueContext
    reaction_strategy: ReactionStrategy
    latest_turn: int
    message_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., execution_model: _Optional[_Union[ExecutionModel, _Mapping]] = ..., context: _Optional[_Union[DialogueContext, _Mapping]] = ..., reaction_strategy: _Optional[_Union[ReactionStrategy, str]] = ..., latest_turn: _Optional[int] = ..., message_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("persona", "agent", "agent_options", "pending", "joining_strategy")
    class AgentOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    JOINING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    persona: Persona
    agent: str
    agent_options: _containers.ScalarMap[str, str]
    pending: bool
    joining_strategy: JoiningStrategy
    def __init__(self, persona: _Optional[_Union[Persona, _Mapping]] = ..., agent: _Optional[str] = ..., agent_options: _Optional[_Mapping[str, str]] = ..., pending: _Optional[bool] = ..., joining_strategy: _Optional[_Union[JoiningStrategy, _Mapping]] = ...) -> None: ...

class Persona(_message.Message):
    __slots__ = ("name", "role", "background", "communication_style", "capabilities", "visual_identity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    COMMUNICATION_STYLE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VISUAL_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    background: str
    communication_style: str
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    visual_identity: VisualIdentity
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., background: _Optional[str] = ..., communication_style: _Optional[str] = ..., capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., visual_identity: _Optional[_Union[VisualIdentity, _Mapping]] = ...) -> None: ...

class Capability(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class VisualIdentity(_message.Message):
    __slots__ = ("icon", "tagline", "color")
    ICON_FIELD_NUMBER: _ClassVar[int]
    TAGLINE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    icon: str
    tagline: str
    color: str
    def __init__(self, icon: _Optional[str] = ..., tagline: _Optional[str] = ..., color: _Optional[str] = ...) -> None: ...

class Speaker(_message.Message):
    __slots__ = ("kind", "name", "role", "icon")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    kind: SpeakerKind
    name: str
    role: str
    icon: str
    def __init__(self, kind: _Optional[_Union[SpeakerKind, str]] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., icon: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("seq", "turn", "speaker", "content", "type", "custom_type", "origin", "attachments", "metadata", "create_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TYPE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    seq: int
    turn: int
    speaker: Speaker
    content: str
    type: MessageType
    custom_type: str
    origin: MessageOrigin
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, seq: _Optional[int] = ..., turn: _Optional[int] = ..., speaker: _Optional[_Union[Speaker, _Mapping]] = ..., content: _Optional[str] = ..., type: _Optional[_Union[MessageType, str]] = ..., custom_type: _Optional[str] = ..., origin: _Optional[_Union[MessageOrigin, str]] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("name", "mime_type", "data", "uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    mime_type: str
    data: bytes
    uri: str
    def __init__(self, name: _Optional[str] = ..., mime_type: _Optional[str] = ..., data: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class ExecutionModel(_message.Message):
    __slots__ = ("broadcast", "sequential", "mentioned", "moderator")
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    SEQUENTIAL_FIELD_NUMBER: _ClassVar[int]
    MENTIONED_FIELD_NUMBER: _ClassVar[int]
    MODERATOR_FIELD_NUMBER: _ClassVar[int]
    broadcast: Broadcast
    sequential: Sequential
    mentioned: Mentioned
    moderator: Moderated
    def __init__(self, broadcast: _Optional[_Union[Broadcast, _Mapping]] = ..., sequential: _Optional[_Union[Sequential, _Mapping]] = ..., mentioned: _Optional[_Union[Mentioned, _Mapping]] = ..., moderator: _Optional[_Union[Moderated, _Mapping]] = ...) -> None: ...

class Broadcast(_message.Message):
    __slots__ = ("order", "explicit_order")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    EXPLICIT_ORDER_FIELD_NUMBER: _ClassVar[int]
    order: BroadcastOrder
    explicit_order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, order: _Optional[_Union[BroadcastOrder, str]] = ..., explicit_order: _Optional[_Iterable[str]] = ...) -> None: ...

class Sequential(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, order: _Optional[_Iterable[str]] = ...) -> None: ...

class Mentioned(_message.Message):
    __slots__ = ("strategy",)
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    strategy: MentionMatchStrategy
    def __init__(self, strategy: _Optional[_Union[MentionMatchStrategy, str]] = ...) -> None: ...

class Moderated(_message.Message):
    __slots__ = ("agent", "agent_options")
    class AgentOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    agent_options: _containers.ScalarMap[str, str]
    def __init__(self, agent: _Optional[str] = ..., agent_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JoiningStrategy(_message.Message):
    __slots__ = ("fresh", "full", "recent", "range")
    class Fresh(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class Full(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class Recent(_message.Message):
        __slots__ = ("turns",)
        TURNS_FIELD_NUMBER: _ClassVar[int]
        turns: int
        def __init__(self, turns: _Optional[int] = ...) -> None: ...
    class Range(_message.Message):
        __slots__ = ("start", "end")
        START_FIELD_NUMBER: _ClassVar[int]
        END_FIELD_NUMBER: _ClassVar[int]
        start: int
        end: int
        def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...
    FRESH_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    fresh: JoiningStrategy.Fresh
    full: JoiningStrategy.Full
    recent: JoiningStrategy.Recent
    range: JoiningStrategy.Range
    def __init__(self, fresh: _Optional[_Union[JoiningStrategy.Fresh, _Mapping]] = ..., full: _Optional[_Union[JoiningStrategy.Full, _Mapping]] = ..., recent: _Optional[_Union[JoiningStrategy.Recent, _Mapping]] = ..., range: _Optional[_Union[JoiningStrategy.Range, _Mapping]] = ...) -> None: ...

class CustomTalkStyle(_message.Message):
    __slots__ = ("name", "description", "guidelines", "expected_behaviors")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    GUIDELINES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_BEHAVIORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    guidelines: _containers.RepeatedScalarFieldContainer[str]
    expected_behaviors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., guidelines: _Optional[_Iterable[str]] = ..., expected_behaviors: _Optional[_Iterable[str]] = ...) -> None: ...

class CapabilityList(_message.Message):
    __slots__ = ("capabilities",)
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class DialogueContext(_message.Message):
    __slots__ = ("talk_style", "custom_talk_style", "environment", "additional_context", "policy")
    class PolicyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CapabilityList
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CapabilityList, _Mapping]] = ...) -> None: ...
    TALK_STYLE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TALK_STYLE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    talk_style: TalkStyle
    custom_talk_style: CustomTalkStyle
    environment: str
    additional_context: _containers.RepeatedScalarFieldContainer[str]
    policy: _containers.MessageMap[str, CapabilityList]
    def __init__(self, talk_style: _Optional[_Union[TalkStyle, str]] = ..., custom_talk_style: _Optional[_Union[CustomTalkStyle, _Mapping]] = ..., environment: _Optional[str] = ..., additional_context: _Optional[_Iterable[str]] = ..., policy: _Optional[_Mapping[str, CapabilityList]] = ...) -> None: ...

class CreateDialogueRequest(_message.Message):
    __slots__ = ("dialogue", "dialogue_id")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_ID_FIELD_NUMBER: _ClassVar[int]
    dialogue: Dialogue
    dialogue_id: str
    def __init__(self, dialogue: _Optional[_Union[Dialogue, _Mapping]] = ..., dialogue_id: _Optional[str] = ...) -> None: ...

class GetDialogueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDialoguesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDialoguesResponse(_message.Message):
    __slots__ = ("dialogues", "next_page_token")
    DIALOGUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dialogues: _containers.RepeatedCompositeFieldContainer[Dialogue]
    next_page_token: str
    def __init__(self, dialogues: _Optional[_Iterable[_Union[Dialogue, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDialogueRequest(_message.Message):
    __slots__ = ("dialogue", "update_mask")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dialogue: Dialogue
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dialogue: _Optional[_Union[Dialogue, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteDialogueRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteDialogueResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddParticipantRequest(_message.Message):
    __slots__ = ("dialogue", "participant", "joining_strategy")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    JOINING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    participant: Participant
    joining_strategy: JoiningStrategy
    def __init__(self, dialogue: _Optional[str] = ..., participant: _Optional[_Union[Participant, _Mapping]] = ..., joining_strategy: _Optional[_Union[JoiningStrategy, _Mapping]] = ...) -> None: ...

class RemoveParticipantRequest(_message.Message):
    __slots__ = ("dialogue", "participant_name")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_NAME_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    participant_name: str
    def __init__(self, dialogue: _Optional[str] = ..., participant_name: _Optional[str] = ...) -> None: ...

class InputMessage(_message.Message):
    __slots__ = ("speaker", "content", "type", "custom_type", "attachments", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    content: str
    type: MessageType
    custom_type: str
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, speaker: _Optional[_Union[Speaker, _Mapping]] = ..., content: _Optional[str] = ..., type: _Optional[_Union[MessageType, str]] = ..., custom_type: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RunSessionRequest(_message.Message):
    __slots__ = ("dialogue", "text", "messages", "attachments", "broadcast_order_override", "speaker", "if_busy", "queue_timeout")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_ORDER_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    IF_BUSY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[InputMessage]
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    broadcast_order_override: Broadcast
    speaker: Speaker
    if_busy: IfBusy
    queue_timeout: _duration_pb2.Duration
    def __init__(self, dialogue: _Optional[str] = ..., text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[InputMessage, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., broadcast_order_override: _Optional[_Union[Broadcast, _Mapping]] = ..., speaker: _Optional[_Union[Speaker, _Mapping]] = ..., if_busy: _Optional[_Union[IfBusy, str]] = ..., queue_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("participants", "execution_model", "input_seqs")
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_SEQS_FIELD_NUMBER: _ClassVar[int]
    participants: _containers.RepeatedScalarFieldContainer[str]
    execution_model: ExecutionModel
    input_seqs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, participants: _Optional[_Iterable[str]] = ..., execution_model: _Optional[_Union[ExecutionModel, _Mapping]] = ..., input_seqs: _Optional[_Iterable[int]] = ...) -> None: ...

class RoutingDecision(_message.Message):
    __slots__ = ("execution_model", "raw_answer")
    EXECUTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    RAW_ANSWER_FIELD_NUMBER: _ClassVar[int]
    execution_model: ExecutionModel
    raw_answer: str
    def __init__(self, execution_model: _Optional[_Union[ExecutionModel, _Mapping]] = ..., raw_answer: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("speaker", "content", "turn", "message_seq", "participant_index", "latency", "usage")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    content: str
    turn: int
    message_seq: int
    participant_index: int
    latency: _duration_pb2.Duration
    usage: Usage
    def __init__(self, speaker: _Optional[_Union[Speaker, _Mapping]] = ..., content: _Optional[str] = ..., turn: _Optional[int] = ..., message_seq: _Optional[int] = ..., participant_index: _Optional[int] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class TurnFailed(_message.Message):
    __slots__ = ("speaker", "participant_index", "code", "message", "retryable", "attempts")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    speaker: Speaker
    participant_index: int
    code: str
    message: str
    retryable: bool
    attempts: int
    def __init__(self, speaker: _Optional[_Union[Speaker, _Mapping]] = ..., participant_index: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., attempts: _Optional[int] = ...) -> None: ...

class SessionCompleted(_message.Message):
    __slots__ = ("turn_count", "failure_count")
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    turn_count: int
    failure_count: int
    def __init__(self, turn_count: _Optional[int] = ..., failure_count: _Optional[int] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("dialogue", "turn", "sequence", "time", "started", "routing", "turn_completed", "turn_failed", "completed")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    TURN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TURN_FAILED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    turn: int
    sequence: int
    time: _timestamp_pb2.Timestamp
    started: SessionStarted
    routing: RoutingDecision
    turn_completed: Turn
    turn_failed: TurnFailed
    completed: SessionCompleted
    def __init__(self, dialogue: _Optional[str] = ..., turn: _Optional[int] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started: _Optional[_Union[SessionStarted, _Mapping]] = ..., routing: _Optional[_Union[RoutingDecision, _Mapping]] = ..., turn_completed: _Optional[_Union[Turn, _Mapping]] = ..., turn_failed: _Optional[_Union[TurnFailed, _Mapping]] = ..., completed: _Optional[_Union[SessionCompleted, _Mapping]] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("dialogue", "turn", "turns", "failures", "completed", "routing", "started")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    turn: int
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    failures: _containers.RepeatedCompositeFieldContainer[TurnFailed]
    completed: bool
    routing: RoutingDecision
    started: SessionStarted
    def __init__(self, dialogue: _Optional[str] = ..., turn: _Optional[int] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., failures: _Optional[_Iterable[_Union[TurnFailed, _Mapping]]] = ..., completed: _Optional[bool] = ..., routing: _Optional[_Union[RoutingDecision, _Mapping]] = ..., started: _Optional[_Union[SessionStarted, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("dialogue", "page_size", "page_token", "after_seq")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    page_size: int
    page_token: str
    after_seq: int
    def __init__(self, dialogue: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportHistoryRequest(_message.Message):
    __slots__ = ("dialogue", "format")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    format: HistoryFormat
    def __init__(self, dialogue: _Optional[str] = ..., format: _Optional[_Union[HistoryFormat, str]] = ...) -> None: ...

class ExportHistoryResponse(_message.Message):
    __slots__ = ("content",)
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    content: str
    def __init__(self, content: _Optional[str] = ...) -> None: ...

class ImportHistoryRequest(_message.Message):
    __slots__ = ("dialogue", "content", "mode")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    content: str
    mode: ImportMode
    def __init__(self, dialogue: _Optional[str] = ..., content: _Optional[str] = ..., mode: _Optional[_Union[ImportMode, str]] = ...) -> None: ...

class WatchDialogueRequest(_message.Message):
    __slots__ = ("dialogue", "after_seq")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    after_seq: int
    def __init__(self, dialogue: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchDialogueResponse(_message.Message):
    __slots__ = ("message", "event")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    message: Message
    event: SessionEvent
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., event: _Optional[_Union[SessionEvent, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("dialogue", "mode")
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    dialogue: str
    mode: CancelMode
    def __init__(self, dialogue: _Optional[str] = ..., mode: _Optional[_Union[CancelMode, str]] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("turn",)
    TURN_FIELD_NUMBER: _ClassVar[int]
    turn: int
    def __init__(self, turn: _Optional[int] = ...) -> None: ...

class ListAgentProfilesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentProfilesResponse(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[AgentProfile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[AgentProfile, _Mapping]]] = ...) -> None: ...

class AgentProfile(_message.Message):
    __slots__ = ("name", "kind", "model", "available", "unavailable_reason", "allowed_options")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    model: str
    available: bool
    unavailable_reason: str
    allowed_options: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., available: _Optional[bool] = ..., unavailable_reason: _Optional[str] = ..., allowed_options: _Optional[_Iterable[str]] = ...) -> None: ...
