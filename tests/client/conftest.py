"""A tiny in-process DialogueService for testing the client side only.

The fake keeps dialogues in a dict and answers runs with canned, echo-like events; it
knows nothing of the real engine's rules. What it does exercise for real is the wire:
a grpc.aio server on a loopback port, rich ``google.rpc.Status`` errors in trailing
metadata, server streaming and paging.

The server runs its own event loop in a background thread, so blocking clients (and
the CLI) can call it from a test's thread, and asyncio clients from pytest's loop.
"""

# The servicer's methods must carry the RPC names gRPC dispatches on.
# ruff: noqa: N802

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, NoReturn

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


async def abort(
    context: Context,
    code: grpc.StatusCode,
    message: str,
    reason: str,
    violations: Sequence[tuple[str, str]] = (),
) -> NoReturn:
    """End the call with a rich status, as the real server does."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="parley.dev"))
    details = [info]
    if violations:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
                    for field, text in violations
                ]
            )
        )
        details.append(bad_request)
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=details)
    )
    # Same as aio's abort_with_status(status), which grpc-stubs does not declare.
    await context.abort(status.code, status.details, status.trailing_metadata)


class FakeDialogueService(pb_grpc.DialogueServiceServicer):
    """Canned answers plus a record of every request and its metadata."""

    def __init__(self) -> None:
        self.dialogues: dict[str, pb.Dialogue] = {}
        self.logs: dict[str, list[pb.Message]] = {}
        self.requests: list[tuple[str, ProtoMessage]] = []
        self.metadata: list[dict[str, str]] = []
        # When set, RunSession pauses after its first turn until the test releases it:
        # proof that the client hands over events before the stream ends.
        self.hold_after_first_turn: threading.Event | None = None
        # Live events WatchDialogue sends after its replay; dialogues "running" a run.
        self.watch_events: list[pb.SessionEvent] = []
        self.running: set[str] = set()

    def _record(self, method: str, request: ProtoMessage, context: Context) -> None:
        self.requests.append((method, request))
        self.metadata.append(
            {key: str(value) for key, value in (context.invocation_metadata() or ())}
        )

    async def _dialogue(self, name: str, context: Context) -> pb.Dialogue:
        if name not in self.dialogues:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"dialogue {name} not found",
                "DIALOGUE_NOT_FOUND",
            )
        return self.dialogues[name]

    async def CreateDialogue(
        self, request: pb.CreateDialogueRequest, context: Context
    ) -> pb.Dialogue:
        self._record("CreateDialogue", request, context)
        violations = []
        if request.dialogue_id and not _ID.fullmatch(request.dialogue_id):
            violations.append(("dialogue_id", "must match [a-z0-9][a-z0-9-]{0,62}"))
        for index, participant in enumerate(request.dialogue.participants):
            if not participant.persona.name:
                violations.append(
                    (f"dialogue.participants[{index}].persona.name", "must not be empty")
                )
        if violations:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the dialogue is invalid",
                "INVALID_DIALOGUE",
                violations,
            )
        name = f"dialogues/{request.dialogue_id or f'gen-{len(self.dialogues) + 1}'}"
        if name in self.dialogues:
            await abort(
                context, grpc.StatusCode.ALREADY_EXISTS, f"{name} exists", "DIALOGUE_EXISTS"
            )
        dialogue = pb.Dialogue()
        dialogue.CopyFrom(request.dialogue)
        dialogue.name = name
        dialogue.display_name = dialogue.display_name or name.removeprefix("dialogues/")
        self.dialogues[name] = dialogue
        self.logs[name] = []
        return dialogue

    async def GetDialogue(self, request: pb.GetDialogueRequest, context: Context) -> pb.Dialogue:
        self._record("GetDialogue", request, context)
        return await self._dialogue(request.name, context)

    async def ListDialogues(
        self, request: pb.ListDialoguesRequest, context: Context
    ) -> pb.ListDialoguesResponse:
        self._record("ListDialogues", request, context)
        start = int(request.page_token or 0)
        end = start + (request.page_size or 50)
        names = sorted(self.dialogues)
        return pb.ListDialoguesResponse(
            dialogues=[self.dialogues[name] for name in names[start:end]],
            next_page_token=str(end) if end < len(names) else "",
        )

    async def UpdateDialogue(
        self, request: pb.UpdateDialogueRequest, context: Context
    ) -> pb.Dialogue:
        self._record("UpdateDialogue", request, context)
        dialogue = await self._dialogue(request.dialogue.name, context)
        if "display_name" in request.update_mask.paths:
            dialogue.display_name = request.dialogue.display_name
        return dialogue

    async def DeleteDialogue(
        self, request: pb.DeleteDialogueRequest, context: Context
    ) -> pb.DeleteDialogueResponse:
        self._record("DeleteDialogue", request, context)
        await self._dialogue(request.name, context)
        del self.dialogues[request.name]
        return pb.DeleteDialogueResponse()

    async def AddParticipant(
        self, request: pb.AddParticipantRequest, context: Context
    ) -> pb.Dialogue:
        self._record("AddParticipant", request, context)
        dialogue = await self._dialogue(request.dialogue, context)
        added = dialogue.participants.add()
        added.CopyFrom(request.participant)
        if request.HasField("joining_strategy"):
            added.joining_strategy.CopyFrom(request.joining_strategy)
            added.pending = True
        return dialogue

    async def RemoveParticipant(
        self, request: pb.RemoveParticipantRequest, context: Context
    ) -> pb.Dialogue:
        self._record("RemoveParticipant", request, context)
        dialogue = await self._dialogue(request.dialogue, context)
        kept = [p for p in dialogue.participants if p.persona.name != request.participant_name]
        if len(kept) == len(dialogue.participants):
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"no participant {request.participant_name}",
                "UNKNOWN_PARTICIPANT",
            )
        del dialogue.participants[:]
        dialogue.participants.extend(kept)
        return dialogue

    def _append(self, name: str, turn: int, speaker: pb.Speaker, content: str) -> int:
        log = self.logs[name]
        seq = len(log) + 1
        log.append(pb.Message(seq=seq, turn=turn, speaker=speaker, content=content))
        return seq

    async def _events(
        self, request: pb.RunSessionRequest, context: Context
    ) -> AsyncIterator[pb.SessionEvent]:
        """Echo-like events: each participant quotes the prompt; `fail` makes it fail."""
        dialogue = await self._dialogue(request.dialogue, context)
        if not request.text and not request.messages:
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "a run needs text or messages",
                "EMPTY_INPUT",
                [("text", "give text or messages")],
            )
        turn = dialogue.latest_turn + 1
        dialogue.latest_turn = turn
        prompt_speaker = request.speaker if request.HasField("speaker") else None
        speaker = prompt_speaker or pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System")
        self._append(dialogue.name, turn, speaker, request.text)
        sequence = 0

        def event(**fields: Any) -> pb.SessionEvent:
            nonlocal sequence
            sequence += 1
            return pb.SessionEvent(dialogue=dialogue.name, turn=turn, sequence=sequence, **fields)

        names = [p.persona.name for p in dialogue.participants]
        model = dialogue.execution_model
        if request.HasField("broadcast_order_override"):
            model = pb.ExecutionModel(broadcast=request.broadcast_order_override)
        yield event(started=pb.SessionStarted(participants=names, execution_model=model))
        failures = 0
        for index, participant in enumerate(dialogue.participants):
            persona = participant.persona
            agent = pb.Speaker(
                kind=pb.SPEAKER_KIND_AGENT,
                name=persona.name,
                role=persona.role,
                icon=persona.visual_identity.icon,
            )
            if participant.agent_options.get("fail"):
                failures += 1
                yield event(
                    turn_failed=pb.TurnFailed(
                        speaker=agent,
                        participant_index=index,
                        code="AGENT_ERROR",
                        message="the agent gave up",
                        retryable=True,
                        attempts=3,
                    )
                )
                continue
            content = f"{persona.name}:\n[{speaker.name}]: {request.text}"
            seq = self._append(dialogue.name, turn, agent, content)
            yield event(
                turn_completed=pb.Turn(
                    speaker=agent,
                    content=content,
                    turn=turn,
                    message_seq=seq,
                    participant_index=index,
                    latency=duration_pb2.Duration(nanos=12_000_000 * (index + 1)),
                    usage=pb.Usage(input_tokens=30, output_tokens=7) if index == 1 else None,
                )
            )
            if index == 0 and self.hold_after_first_turn is not None:
                released = await asyncio.to_thread(self.hold_after_first_turn.wait, 10)
                assert released, "the client never read the first turn"
        yield event(
            completed=pb.SessionCompleted(turn_count=len(names) - failures, failure_count=failures)
        )

    async def RunSession(
        self, request: pb.RunSessionRequest, context: Context
    ) -> AsyncIterator[pb.SessionEvent]:
        self._record("RunSession", request, context)
        async for item in self._events(request, context):
            yield item

    async def Run(self, request: pb.RunSessionRequest, context: Context) -> pb.RunResponse:
        self._record("Run", request, context)
        response = pb.RunResponse(dialogue=request.dialogue)
        async for item in self._events(request, context):
            response.turn = item.turn
            kind = item.WhichOneof("event")
            if kind == "started":
                response.started.CopyFrom(item.started)
            elif kind == "turn_completed":
                response.turns.append(item.turn_completed)
            elif kind == "turn_failed":
                response.failures.append(item.turn_failed)
            elif kind == "completed":
                response.completed = True
        return response

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: Context
    ) -> pb.ListMessagesResponse:
        self._record("ListMessages", request, context)
        await self._dialogue(request.dialogue, context)
        after = [m for m in self.logs[request.dialogue] if m.seq > request.after_seq]
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        return pb.ListMessagesResponse(
            messages=after[start:end], next_page_token=str(end) if end < len(after) else ""
        )

    async def ExportHistory(
        self, request: pb.ExportHistoryRequest, context: Context
    ) -> pb.ExportHistoryResponse:
        self._record("ExportHistory", request, context)
        await self._dialogue(request.dialogue, context)
        entries = [
            {"speaker": {"name": m.speaker.name}, "content": m.content}
            for m in self.logs[request.dialogue]
        ]
        return pb.ExportHistoryResponse(content=json.dumps(entries))

    async def WatchDialogue(
        self, request: pb.WatchDialogueRequest, context: Context
    ) -> AsyncIterator[pb.WatchDialogueResponse]:
        """The log after `after_seq`, then `watch_events`; then the stream ends (a real
        server would go on following)."""
        self._record("WatchDialogue", request, context)
        await self._dialogue(request.dialogue, context)
        for message in self.logs[request.dialogue]:
            if message.seq > request.after_seq:
                yield pb.WatchDialogueResponse(message=message)
        for event in self.watch_events:
            yield pb.WatchDialogueResponse(event=event)

    async def CancelRun(
        self, request: pb.CancelRunRequest, context: Context
    ) -> pb.CancelRunResponse:
        self._record("CancelRun", request, context)
        dialogue = await self._dialogue(request.dialogue, context)
        if request.dialogue not in self.running:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"no run is in progress on {request.dialogue}",
                "NO_RUN_IN_PROGRESS",
            )
        return pb.CancelRunResponse(turn=dialogue.latest_turn)

    async def ListAgentProfiles(
        self, request: pb.ListAgentProfilesRequest, context: Context
    ) -> pb.ListAgentProfilesResponse:
        self._record("ListAgentProfiles", request, context)
        return pb.ListAgentProfilesResponse(
            profiles=[
                pb.AgentProfile(
                    name="claude",
                    kind="anthropic",
                    model="claude-sonnet-4-5",
                    unavailable_reason="ANTHROPIC_API_KEY is not set",
                    allowed_options=["model", "max_tokens"],
                ),
                pb.AgentProfile(
                    name="echo",
                    kind="echo",
                    available=True,
                    allowed_options=["delay_ms", "fail", "reply"],
                ),
            ]
        )

    async def ImportHistory(
        self, request: pb.ImportHistoryRequest, context: Context
    ) -> pb.Dialogue:
        self._record("ImportHistory", request, context)
        dialogue = await self._dialogue(request.dialogue, context)
        if self.logs[dialogue.name]:
            await abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "the log is not empty",
                "LOG_NOT_EMPTY",
            )
        for entry in json.loads(request.content):
            speaker = pb.Speaker(kind=pb.SPEAKER_KIND_USER, name=entry["speaker"]["name"])
            self._append(dialogue.name, 0, speaker, entry["content"])
        dialogue.message_count = len(self.logs[dialogue.name])
        return dialogue

    def calls(self, method: str) -> list[ProtoMessage]:
        """The requests received by one RPC, in order."""
        return [request for name, request in self.requests if name == method]


class FakeServer:
    """A grpc.aio server for ``service`` on 127.0.0.1, port chosen by the OS."""

    def __init__(
        self,
        service: FakeDialogueService,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self._service = service
        self._credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None
        self.address = ""

    async def _start(self) -> int:
        self._server = grpc.aio.server()
        pb_grpc.add_DialogueServiceServicer_to_server(self._service, self._server)
        if self._credentials is None:
            port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            port = self._server.add_secure_port("127.0.0.1:0", self._credentials)
        await self._server.start()
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._service.hold_after_first_turn is not None:
            self._service.hold_after_first_turn.set()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def demo_participants() -> list[pb.Participant]:
    """Three participants the way tests usually need them: the last one fails."""
    return [
        pb.Participant(
            persona=pb.Persona(
                name="Ada", role="Architect", visual_identity=pb.VisualIdentity(icon="🧭")
            ),
            agent="echo",
        ),
        pb.Participant(
            persona=pb.Persona(
                name="Basil", role="Product", visual_identity=pb.VisualIdentity(icon="📋")
            ),
            agent="echo",
        ),
        pb.Participant(
            persona=pb.Persona(name="Cleo", role="Security"),
            agent="echo",
            agent_options={"fail": "always"},
        ),
    ]


@pytest.fixture
def service() -> FakeDialogueService:
    return FakeDialogueService()


@pytest.fixture
def server(service: FakeDialogueService) -> Iterator[str]:
    """The fake server's address, for the duration of one test."""
    with FakeServer(service) as running:
        yield running.address


@pytest.fixture
def unused_address() -> str:
    """A loopback address nobody listens on: the port was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def review(service: FakeDialogueService) -> pb.Dialogue:
    """A stored dialogue `dialogues/review` with Ada, Basil and (failing) Cleo."""
    dialogue = pb.Dialogue(
        name="dialogues/review", display_name="Review", participants=demo_participants()
    )
    service.dialogues[dialogue.name] = dialogue
    service.logs[dialogue.name] = []
    return dialogue
