"""What the blocking and the asyncio clients share, so both send identical requests."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import grpc
from google.protobuf import field_mask_pb2
from opentelemetry import propagate
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
CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
)
# How long a client that lost a RunSession stream waits for the server to answer again
# before giving up on resuming (seconds), and how many times it resumes one run.
DEFAULT_RESUME_TIMEOUT = 30.0
DEFAULT_MAX_RESUMES = 3


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the channel: which CA to trust and, for mutual TLS, the client's own pair.

    ``TlsConfig()`` trusts the system's roots; ``TlsConfig.from_files("ca.pem")`` a
    private CA (the usual case for a self-hosted Parley). ``server_name`` checks the
    certificate against another name than the target's host (for example when dialing
    an IP address).
    """

    root_certificates: bytes | None = None
    """PEM of the CA(s) to trust; ``None`` uses the system's."""
    certificate_chain: bytes | None = None
    """PEM of the client certificate, for servers that require mutual TLS."""
    private_key: bytes | None = None
    """PEM of the client certificate's key."""
    server_name: str | None = None
    """The name the server's certificate must carry, when it is not the target's host."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    @classmethod
    def from_files(
        cls,
        root_certificates: str | os.PathLike[str] | None = None,
        certificate_chain: str | os.PathLike[str] | None = None,
        private_key: str | os.PathLike[str] | None = None,
        *,
        server_name: str | None = None,
    ) -> TlsConfig:
        """Read the PEM files; an unreadable file is a ``ValueError`` naming it."""

        def read(path: str | os.PathLike[str] | None) -> bytes | None:
            if path is None or str(path) == "":
                return None
            try:
                return Path(path).read_bytes()
            except OSError as error:
                raise ValueError(f"cannot read {path}: {error.strerror or error}") from error

        return cls(read(root_certificates), read(certificate_chain), read(private_key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def channel_options(self) -> tuple[tuple[str, int | str], ...]:
        if self.server_name:
            return (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", self.server_name))
        return CHANNEL_OPTIONS


def tls_config(tls: TlsConfig | bool | None) -> TlsConfig | None:
    """``True`` means TLS with the system's roots; ``False``/``None`` plaintext."""
    if tls is True:
        return TlsConfig()
    if tls is False or tls is None:
        return None
    return tls


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
    """Settings shared by both clients: deadline, metadata, token, trace propagation,
    and how a lost RunSession stream is resumed."""

    def __init__(
        self,
        target: str,
        *,
        metadata: Iterable[tuple[str, str | bytes]],
        timeout: float | None,
        token: str | None = None,
        propagate_trace: bool = True,
        resume: bool = True,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
        max_resumes: int = DEFAULT_MAX_RESUMES,
    ) -> None:
        self.target = target
        metadata = tuple(metadata)
        if token:
            metadata = (*metadata, ("authorization", f"Bearer {token}"))
        self.metadata: Metadata = metadata
        self.timeout = timeout
        self.propagate_trace = propagate_trace
        self.resume = resume
        self.resume_timeout = resume_timeout
        self.max_resumes = max_resumes

    def _call_options(self, options: CallOptions) -> tuple[float | None, Metadata]:
        """This call's deadline and metadata: per-call values over the client's defaults,
        plus the current OpenTelemetry context (W3C ``traceparent``) unless the caller
        sent one itself."""
        timeout = options.get("timeout")
        metadata: Metadata = (*self.metadata, *options.get("metadata", ()))
        if self.propagate_trace and not any(key == "traceparent" for key, _ in metadata):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata = (*metadata, *((key.lower(), value) for key, value in carrier.items()))
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
    queue: float | bool = False,
) -> pb.RunSessionRequest:
    """The request behind ``run_session`` and ``run``.

    ``speaker`` given as a string is a user of that name; ``order`` as a string is
    parsed by :func:`parley.client.builders.broadcast_order`. ``queue`` waits for a run
    already in progress to end instead of failing with RUN_IN_PROGRESS: ``True`` for
    the server's default wait, or the longest wait in seconds.
    """
    if isinstance(speaker, str):
        speaker = pb.Speaker(kind=pb.SPEAKER_KIND_USER, name=speaker)
    request = pb.RunSessionRequest(
        dialogue=dialogue_name(dialogue),
        text=text,
        messages=list(messages),
        attachments=list(attachments),
        speaker=speaker,
        broadcast_order_override=broadcast_order(order) if order is not None else None,
    )
    if queue is not False:
        request.if_busy = pb.IF_BUSY_QUEUE
        if queue is not True:
            request.queue_timeout.FromMilliseconds(round(float(queue) * 1000))
    return request


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


def cancel_request(dialogue: str, mode: pb.CancelMode | str) -> pb.CancelRunRequest:
    return pb.CancelRunRequest(
        dialogue=dialogue_name(dialogue),
        mode=_enum_name(pb.CancelMode, "CANCEL_MODE_", mode, "cancel mode"),
    )


def import_request(
    dialogue: str, content: str, mode: pb.ImportMode | str
) -> pb.ImportHistoryRequest:
    return pb.ImportHistoryRequest(
        dialogue=dialogue_name(dialogue),
        content=content,
        mode=_enum_name(pb.ImportMode, "IMPORT_MODE_", mode, "import mode"),
    )
