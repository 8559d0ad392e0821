from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentParticipant(_message.Message):
    __slots__ = ("name", "role", "dialogue", "turn")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    dialogue: str
    turn: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., dialogue: _Optional[str] = ..., turn: _Optional[int] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ROLE_UNSPECIFIED: _ClassVar[ChatMessage.Role]
        ROLE_SYSTEM: _ClassVar[ChatMessage.Role]
        ROLE_USER: _ClassVar[ChatMessage.Role]
        ROLE_ASSISTANT: _ClassVar[ChatMessage.Role]
    ROLE_UNSPECIFIED: ChatMessage.Role
    ROLE_SYSTEM: ChatMessage.Role
    ROLE_USER: ChatMessage.Role
    ROLE_ASSISTANT: ChatMessage.Role
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: ChatMessage.Role
    content: str
    def __init__(self, role: _Optional[_Union[ChatMessage.Role, str]] = ..., content: _Optional[str] = ...) -> None: ...

class AgentAttachment(_message.Message):
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

class ExecuteRequest(_message.Message):
    __slots__ = ("participant", "system", "messages", "attachments", "options", "prompt")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    participant: AgentParticipant
    system: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    attachments: _containers.RepeatedCompositeFieldContainer[AgentAttachment]
    options: _containers.ScalarMap[str, str]
    prompt: str
    def __init__(self, participant: _Optional[_Union[AgentParticipant, _Mapping]] = ..., system: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[AgentAttachment, _Mapping]]] = ..., options: _Optional[_Mapping[str, str]] = ..., prompt: _Optional[str] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("content", "input_tokens", "output_tokens")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    content: str
    input_tokens: int
    output_tokens: int
    def __init__(self, content: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...
