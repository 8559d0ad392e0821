"""What the blocking and the asyncio clients share, so both send identical requests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypedDict

import grpc
from google.protobuf import field_mask_pb2
from parley.client.builders import _enum_name, broadcast_order
from parley.client.errors import ParleyRpcError
from parley.v1 import dialogue_pb2 as pb

DEFAULT_TARGET = "127.0.0.1:50051"
DIALOGUE_PREFIX = "dialogues/"

Metadata = tuple[tuple[str, str | bytes], ...]
"""Call metadata as gRPC takes it: (key, value) pairs, keys lower-case."""


class CallOptions(TypedDict, total=False):
    """Per-call settings every client method takes as keyword arguments."""

    timeout: float | None
    """Deadline in seconds for this call; ``None`` keeps the client's default."""
    metadata: Sequence[tuple[str, str | bytes]]
    """Extra metadata for this call, sent after the client's own."""


# The server allows messages up to gRPC's 16 MiB cap (1 MiB texts, 8 MiB of
# attachments, 1,000-item pages); the client's default 4 MiB receive limit would
# refuse pages the server is entitled to send.
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
)


def dialogue_name(name_or_id: str) -> str:
    """``dialogues/{id}`` for a bare id or a full name.

    The server accepts both, but sending the canonical name keeps server logs, traces
    and error messages in one spelling.
    """
    name = name_or_id.strip()
    if not name or name == DIALOGUE_PREFIX:
        raise ValueError("a dialogue name or id is required")
    return name if name.startswith(DIALOGUE_PREFIX) else DIALOGUE_PREFIX + name


def dialogue_id(name_or_id: str) -> str:
    """The bare id of ``dialogues/{id}`` (or of an id, which is returned as is)."""
    return name_or_id.strip().removeprefix(DIALOGUE_PREFIX)


@contextmanager
def parley_errors() -> Iterator[None]:
    """Re-raise raw stub errors as :class:`ParleyRpcError`, keeping the original as cause."""
    try:
        yield
    except ParleyRpcError:
        raise
    except grpc.RpcError as error:
        raise ParleyRpcError.from_rpc_error(error) from error


class ClientBase:
    """Settings shared by both clients: default timeout and metadata sent on every call."""

    def __init__(
        self,
        target: str,
        *,
        metadata: Iterable[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> None:
        self.target = target
        self.metadata: Metadata = tuple(metadata)
        self.timeout = timeout

    def _call_options(self, options: CallOptions) -> tuple[float | None, Metadata]:
        """This call's deadline and metadata: per-call values over the client's defaults."""
        timeout = options.get("timeout")
        metadata = (*self.metadata, *options.get("metadata", ()))
        return (self.timeout if timeout is None else timeout), metadata


def create_request(dialogue: pb.Dialogue, dialogue_id_: str) -> pb.CreateDialogueRequest:
    return pb.CreateDialogueRequest(
        dialogue=dialogue, dialogue_id=dialogue_id(dialogue_id_) if dialogue_id_ else ""
    )


def update_request(dialogue: pb.Dialogue, paths: Iterable[str]) -> pb.UpdateDialogueRequest:
    request = pb.UpdateDialogueRequest(
        dialogue=dialogue, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
    )
    # The constructor copied the dialogue, so the caller's message stays untouched.
    request.dialogue.name = dialogue_name(dialogue.name)
    return request


def add_participant_request(
    dialogue: str,
    participant: pb.Participant,
    joining_strategy: pb.JoiningStrategy | None,
) -> pb.AddParticipantRequest:
    return pb.AddParticipantRequest(
        dialogue=dialogue_name(dialogue),
        participant=participant,
        joining_strategy=joining_strategy,
    )


def run_request(
    dialogue: str,
    text: str,
    *,
    messages: Iterable[pb.InputMessage],
    attachments: Iterable[pb.Attachment],
    speaker: pb.Speaker | str | None,
    order: pb.Broadcast | str | None,
) -> pb.RunSessionRequest:
    """The request behind ``run_session`` and ``run``.

    ``speaker`` given as a string is a user of that name; ``order`` as a string is
    parsed by :func:`parley.client.builders.broadcast_order`.
    """
    if isinstance(speaker, str):
        speaker = pb.Speaker(kind=pb.SPEAKER_KIND_USER, name=speaker)
    return pb.RunSessionRequest(
        dialogue=dialogue_name(dialogue),
        text=text,
        messages=list(messages),
        attachments=list(attachments),
        speaker=speaker,
        broadcast_order_override=broadcast_order(order) if order is not None else None,
    )


def list_messages_request(
    dialogue: str, after_seq: int, page_size: int, page_token: str
) -> pb.ListMessagesRequest:
    return pb.ListMessagesRequest(
        dialogue=dialogue_name(dialogue),
        after_seq=after_seq,
        page_size=page_size,
        page_token=page_token,
    )


def export_request(dialogue: str, format: pb.HistoryFormat | str) -> pb.ExportHistoryRequest:
    return pb.ExportHistoryRequest(
        dialogue=dialogue_name(dialogue),
        format=_enum_name(pb.HistoryFormat, "HISTORY_FORMAT_", format, "history format"),
    )


def import_request(
    dialogue: str, content: str, mode: pb.ImportMode | str
) -> pb.ImportHistoryRequest:
    return pb.ImportHistoryRequest(
        dialogue=dialogue_name(dialogue),
        content=content,
        mode=_enum_name(pb.ImportMode, "IMPORT_MODE_", mode, "import mode"),
    )
