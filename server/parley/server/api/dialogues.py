"""The parley.v1.DialogueService servicer: thin handlers over the engine."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage
from parley.server.api import mapping
from parley.server.api.auth import FULL_ACCESS, check_dialogue_allowed, current_grant
from parley.server.api.errors import streaming, unary
from parley.server.api.run_limits import RunLimiter, peer_host
from parley.server.engine import events
from parley.server.engine.engine import Engine
from parley.server.engine.errors import ResourceExhausted
from parley.server.engine.history import HistoryFormat, ImportMode
from parley.server.engine.model import Message
from parley.server.engine.session import Session
from parley.server.engine.validation import DIALOGUE_ID, Violations
from parley.server.store.feed import CancelMode
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
Item = TypeVar("Item")
Proto = TypeVar("Proto", bound=ProtoMessage)

DEFAULT_DIALOGUE_PAGE = 50
DEFAULT_MESSAGE_PAGE = 100
DEADLINE_GRACE_S = 0.5
# Pages stop short of this many bytes (always holding at least one item): gRPC clients
# refuse larger messages unless told otherwise (AIP-158 lets a page be shorter).
MAX_PAGE_BYTES = 4 * 1024 * 1024
# gRPC's cap on one message (Settings.max_message_bytes by default).
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class DialogueService(dialogue_pb2_grpc.DialogueServiceServicer):
    def __init__(
        self, engine: Engine, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    ) -> None:
        self._engine = engine
        self._max_response_bytes = max_response_bytes
        limits = engine.limits
        self._runs = RunLimiter(limits.max_concurrent_runs, limits.max_concurrent_runs_per_client)

    @unary
    async def CreateDialogue(
        self, request: pb.CreateDialogueRequest, context: Context
    ) -> pb.Dialogue:
        out = Violations()
        dialogue_id = request.dialogue_id
        prefix = current_grant.get().dialogue_prefix
        if dialogue_id:
            check_dialogue_allowed(dialogue_id)
        elif prefix:
            dialogue_id = prefix + secrets.token_hex(6)
        dialogue = mapping.dialogue_from_proto(request.dialogue, dialogue_id, "dialogue", out)
        out.raise_if_any()
        return mapping.dialogue_to_proto(await self._engine.create_dialogue(dialogue))

    @unary
    async def GetDialogue(self, request: pb.GetDialogueRequest, context: Context) -> pb.Dialogue:
        dialogue_id = _dialogue_id(request.name, "name")
        return mapping.dialogue_to_proto(await self._engine.get_dialogue(dialogue_id))

    @unary
    async def ListDialogues(
        self, request: pb.ListDialoguesRequest, context: Context
    ) -> pb.ListDialoguesResponse:
        out = Violations()
        limit = mapping.page_size(
            request.page_size,
            DEFAULT_DIALOGUE_PAGE,
            self._engine.limits.max_page_size,
            "page_size",
            out,
        )
        after = mapping.decode_page_token(request.page_token, "after_id", str, "page_token", out)
        out.raise_if_any()
        # Ids are listed in order, so a token's dialogues are one contiguous range that
        # starts right after the prefix minus its last character.
        prefix = current_grant.get().dialogue_prefix
        start = max(after or "", prefix[:-1])
        # One extra row tells whether another page exists without a count query.
        found = await self._engine.list_dialogues(after_id=start, page_size=limit + 1)
        if prefix:
            found = [d for d in found if d.id.startswith(prefix)]
        page, more = _fill_page(found, limit, mapping.dialogue_to_proto)
        token = mapping.encode_page_token(after_id=found[len(page) - 1].id) if more else ""
        return pb.ListDialoguesResponse(dialogues=page, next_page_token=token)

    @unary
    async def UpdateDialogue(
        self, request: pb.UpdateDialogueRequest, context: Context
    ) -> pb.Dialogue:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue.name, "dialogue.name", out)
        changes = mapping.dialogue_from_proto(request.dialogue, dialogue_id, "dialogue", out)
        out.raise_if_any()
        fields = set(request.update_mask.paths)
        return mapping.dialogue_to_proto(
            await self._engine.update_dialogue(dialogue_id, changes, fields)
        )

    @unary
    async def DeleteDialogue(
        self, request: pb.DeleteDialogueRequest, context: Context
    ) -> pb.DeleteDialogueResponse:
        await self._engine.delete_dialogue(_dialogue_id(request.name, "name"))
        return pb.DeleteDialogueResponse()

    @unary
    async def AddParticipant(
        self, request: pb.AddParticipantRequest, context: Context
    ) -> pb.Dialogue:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        participant = mapping.participant_from_proto(request.participant, "participant", out)
        joining = None
        if request.HasField("joining_strategy"):
            joining = mapping.joining_from_proto(request.joining_strategy, "joining_strategy", out)
        out.raise_if_any()
        return mapping.dialogue_to_proto(
            await self._engine.add_participant(dialogue_id, participant, joining)
        )

    @unary
    async def RemoveParticipant(
        self, request: pb.RemoveParticipantRequest, context: Context
    ) -> pb.Dialogue:
        dialogue_id = _dialogue_id(request.dialogue, "dialogue")
        return mapping.dialogue_to_proto(
            await self._engine.remove_participant(dialogue_id, request.participant_name)
        )

    @streaming
    async def RunSession(
        self, request: pb.RunSessionRequest, context: Context
    ) -> AsyncGenerator[pb.SessionEvent, None]:
        # Leaving this block for any reason (done, error, client gone) cancels what is
        # still in flight; completed replies are already stored.
        with self._runs.slot(_client_of(context)):
            async with await self._open_run(request, context) as session:
                async for event in session:
                    yield mapping.session_event_to_proto(event)

    @unary
    async def Run(self, request: pb.RunSessionRequest, context: Context) -> pb.RunResponse:
        with self._runs.slot(_client_of(context)):
            async with await self._open_run(request, context) as session:
                response = _collect(session.dialogue_id, [event async for event in session])
        if response.ByteSize() > self._max_response_bytes:
            raise ResourceExhausted(
                f"turn {response.turn} is over and stored, but its replies hold more than"
                f" {self._max_response_bytes} bytes, more than one gRPC message may: read them"
                " with ListMessages (or run with RunSession, one message per turn)",
                subject="response_bytes",
                reason="RESPONSE_TOO_LARGE",
            )
        return response

    async def _open_run(self, request: pb.RunSessionRequest, context: Context) -> Session:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        run_input = mapping.run_input_from_proto(request, out)
        queue_timeout = mapping.queue_timeout_from_proto(request, out)
        out.raise_if_any()
        # The client's deadline bounds the run (grpc cancels the handler at that moment;
        # knowing it lets each agent call be given only the time that is left).
        remaining = context.time_remaining()
        # A little past the client's deadline: at the deadline grpc itself cancels the
        # run (the client sees DEADLINE_EXCEEDED); agent timeouts racing it to the same
        # instant would sometimes end the stream OK instead.
        deadline = None if remaining is None else time.monotonic() + remaining + DEADLINE_GRACE_S
        return await self._engine.open_run(
            dialogue_id, run_input, deadline=deadline, queue_timeout=queue_timeout
        )

    @streaming
    async def WatchDialogue(
        self, request: pb.WatchDialogueRequest, context: Context
    ) -> AsyncGenerator[pb.WatchDialogueResponse, None]:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        if request.after_seq < 0:
            out.add("after_seq", "must not be negative")
        out.raise_if_any()
        async with contextlib.aclosing(self._engine.watch(dialogue_id, request.after_seq)) as items:
            async for item in items:
                if isinstance(item, Message):
                    yield pb.WatchDialogueResponse(message=mapping.message_to_proto(item))
                else:
                    yield pb.WatchDialogueResponse(event=mapping.session_event_to_proto(item))

    @unary
    async def CancelRun(
        self, request: pb.CancelRunRequest, context: Context
    ) -> pb.CancelRunResponse:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        mode = mapping.enum_from_proto(
            mapping.CANCEL_MODES, request.mode, CancelMode.IMMEDIATE, "mode", out
        )
        out.raise_if_any()
        return pb.CancelRunResponse(turn=await self._engine.cancel_run(dialogue_id, mode))

    @unary
    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        limit = mapping.page_size(
            request.page_size,
            DEFAULT_MESSAGE_PAGE,
            self._engine.limits.max_page_size,
            "page_size",
            out,
        )
        if request.after_seq < 0:
            out.add("after_seq", "must not be negative")
        after = mapping.decode_page_token(request.page_token, "after_seq", int, "page_token", out)
        out.raise_if_any()
        after_seq = max(request.after_seq, after or 0)
        found = await self._engine.list_messages(
            dialogue_id, after_seq=after_seq, page_size=limit + 1
        )
        page, more = _fill_page(found, limit, mapping.message_to_proto)
        token = mapping.encode_page_token(after_seq=found[len(page) - 1].seq) if more else ""
        return pb.ListMessagesResponse(messages=page, next_page_token=token)

    @unary
    async def ExportHistory(
        self, request: pb.ExportHistoryRequest, context: Context
    ) -> pb.ExportHistoryResponse:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        fmt = mapping.enum_from_proto(
            mapping.HISTORY_FORMATS, request.format, HistoryFormat.LLM_TOOLKIT_JSON, "format", out
        )
        out.raise_if_any()
        response = pb.ExportHistoryResponse(
            content=await self._engine.export_history(dialogue_id, fmt)
        )
        if response.ByteSize() > self._max_response_bytes:
            raise ResourceExhausted(
                f"the history is larger than {self._max_response_bytes} bytes, more than one"
                " gRPC message may hold: read the log with ListMessages instead",
                subject="response_bytes",
                reason="RESPONSE_TOO_LARGE",
            )
        return response

    @unary
    async def ImportHistory(
        self, request: pb.ImportHistoryRequest, context: Context
    ) -> pb.Dialogue:
        out = Violations()
        dialogue_id = _dialogue_ref(request.dialogue, "dialogue", out)
        mode = mapping.enum_from_proto(
            mapping.IMPORT_MODES, request.mode, ImportMode.AS_MESSAGES, "mode", out
        )
        out.raise_if_any()
        dialogue = await self._engine.import_history(dialogue_id, request.content, mode)
        return mapping.dialogue_to_proto(dialogue)

    @unary
    async def ListAgentProfiles(
        self, request: pb.ListAgentProfilesRequest, context: Context
    ) -> pb.ListAgentProfilesResponse:
        profiles = sorted(self._engine.agents, key=lambda p: p.name)
        return pb.ListAgentProfilesResponse(
            profiles=[mapping.agent_profile_to_proto(p) for p in profiles]
        )


def _collect(dialogue_id: str, envelopes: list[events.SessionEvent]) -> pb.RunResponse:
    response = pb.RunResponse(dialogue=mapping.dialogue_name(dialogue_id))
    for envelope in envelopes:
        response.turn = envelope.turn
        match envelope.event:
            case events.SessionStarted():
                response.started.CopyFrom(mapping.started_to_proto(envelope.event))
            case events.RoutingDecision():
                response.routing.CopyFrom(mapping.routing_to_proto(envelope.event))
            case events.TurnCompleted():
                response.turns.append(mapping.turn_to_proto(envelope.event))
            case events.TurnFailed():
                response.failures.append(mapping.turn_failed_to_proto(envelope.event))
            case events.SessionCompleted():
                response.completed = True
    return response


def _fill_page(
    items: Sequence[Item], limit: int, to_proto: Callable[[Item], Proto]
) -> tuple[list[Proto], bool]:
    """Up to `limit` items as protos within MAX_PAGE_BYTES (at least one), and whether
    any of `items` is left for another page."""
    page: list[Proto] = []
    size = 0
    for item in items[:limit]:
        proto = to_proto(item)
        size += proto.ByteSize()
        if page and size > MAX_PAGE_BYTES:
            break
        page.append(proto)
    return page, len(items) > len(page)


def _client_of(context: Context) -> str:
    grant = current_grant.get()
    return grant.client if grant is not FULL_ACCESS else peer_host(context.peer())


def _dialogue_ref(name: str, field: str, out: Violations) -> str:
    """The dialogue id a request names, once the caller's token may use it.

    Authorization comes before any lookup, so a denied caller cannot tell whether the
    dialogue exists.
    """
    dialogue_id = mapping.dialogue_id_from_name(name, field, out)
    if DIALOGUE_ID.fullmatch(dialogue_id):
        check_dialogue_allowed(dialogue_id)
    return dialogue_id


def _dialogue_id(name: str, field: str) -> str:
    out = Violations()
    dialogue_id = _dialogue_ref(name, field, out)
    out.raise_if_any()
    return dialogue_id
