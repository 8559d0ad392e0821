"""The conformance harness: a real Parley server over gRPC, and a small client vocabulary.

The server is the production `ParleyServer` (grpc.aio, SQLite file store, only the
built-in `echo` profile) served by an event loop on a background thread; scenarios
talk to it through the generated synchronous stub over TCP, exactly as any client does.

The echo agent is the instrument: its reply lists what its participant was delivered
(`{name}:` then one `[{speaker}]: {content}` line per message, newlines inside a content
written as `\\n`). `seen()` reads those lines back, `quoted()` writes the line another
participant sees for an echo reply.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

Stub = dialogue_pb2_grpc.DialogueServiceStub

# Every RPC and every wait on the server thread is bounded: a hang fails a scenario.
RPC_TIMEOUT_S = 30.0
# The delay that makes one echo participant reliably finish after the undelayed ones.
SLOW_MS = 400
ERROR_DOMAIN = "parley.dev"


# --- the server ----------------------------------------------------------------------


# --- building requests ---------------------------------------------------------------


def echo(
    name: str,
    *,
    role: str = "",
    icon: str = "",
    delay_ms: int | None = None,
    fail: str | None = None,
    reply: str | None = None,
    capabilities: Sequence[str] = (),
    joining: pb.JoiningStrategy | None = None,
) -> pb.Participant:
    """A participant on the built-in echo profile with the given test options."""
    options: dict[str, str] = {}
    if delay_ms is not None:
        options["delay_ms"] = str(delay_ms)
    if fail is not None:
        options["fail"] = fail
    if reply is not None:
        options["reply"] = reply
    participant = pb.Participant(
        persona=pb.Persona(
            name=name,
            role=role,
            capabilities=[pb.Capability(name=c, description=f"can {c}") for c in capabilities],
            visual_identity=pb.VisualIdentity(icon=icon),
        ),
        agent="echo",
        agent_options=options,
    )
    if joining is not None:
        participant.joining_strategy.CopyFrom(joining)
    return participant


def user(name: str, role: str = "") -> pb.Speaker:
    return pb.Speaker(kind=pb.SPEAKER_KIND_USER, name=name, role=role)


def agent_speaker(name: str, role: str = "") -> pb.Speaker:
    return pb.Speaker(kind=pb.SPEAKER_KIND_AGENT, name=name, role=role)


def system_speaker() -> pb.Speaker:
    return pb.Speaker(kind=pb.SPEAKER_KIND_SYSTEM, name="System")


def said(
    speaker: pb.Speaker,
    content: str,
    *,
    type: pb.MessageType = pb.MESSAGE_TYPE_CONVERSATIONAL,
    attachments: Sequence[pb.Attachment] = (),
) -> pb.InputMessage:
    """One input message."""
    return pb.InputMessage(speaker=speaker, content=content, type=type, attachments=attachments)


def context_info(content: str, speaker: pb.Speaker | None = None) -> pb.InputMessage:
    return said(speaker or system_speaker(), content, type=pb.MESSAGE_TYPE_CONTEXT_INFO)


def broadcast(
    order: pb.BroadcastOrder = pb.BROADCAST_ORDER_COMPLETION,
    explicit: Sequence[str] = (),
) -> pb.ExecutionModel:
    return pb.ExecutionModel(broadcast=pb.Broadcast(order=order, explicit_order=explicit))


def sequential(*order: str) -> pb.ExecutionModel:
    return pb.ExecutionModel(sequential=pb.Sequential(order=order))


def mentioned(
    strategy: pb.MentionMatchStrategy = pb.MENTION_MATCH_STRATEGY_EXACT_WORD,
) -> pb.ExecutionModel:
    return pb.ExecutionModel(mentioned=pb.Mentioned(strategy=strategy))


def moderated(answer: str, **options: str) -> pb.ExecutionModel:
    """A moderator on the echo profile that answers `answer` (its `reply` option)."""
    return pb.ExecutionModel(
        moderator=pb.Moderated(agent="echo", agent_options={"reply": answer, **options})
    )


def fresh() -> pb.JoiningStrategy:
    return pb.JoiningStrategy(fresh=pb.JoiningStrategy.Fresh())


def full() -> pb.JoiningStrategy:
    return pb.JoiningStrategy(full=pb.JoiningStrategy.Full())


def recent(turns: int = 0) -> pb.JoiningStrategy:
    return pb.JoiningStrategy(recent=pb.JoiningStrategy.Recent(turns=turns))


def turn_range(start: int, end: int | None = None) -> pb.JoiningStrategy:
    return pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=start, end=end))


def data_attachment(name: str, data: bytes, mime_type: str = "text/plain") -> pb.Attachment:
    return pb.Attachment(name=name, mime_type=mime_type, data=data)


def uri_attachment(name: str, uri: str, mime_type: str = "image/png") -> pb.Attachment:
    return pb.Attachment(name=name, mime_type=mime_type, uri=uri)


# --- a dialogue, seen from a client ----------------------------------------------------

_ids = itertools.count(1)


class Dialogue:
    """One scenario's dialogue on the server: the RPCs a scenario needs, with its name."""

    def __init__(self, stub: Stub, dialogue_id: str) -> None:
        self.stub = stub
        self.id = dialogue_id
        self.name = f"dialogues/{dialogue_id}"

    def request(
        self,
        text: str = "",
        *,
        messages: Sequence[pb.InputMessage] = (),
        speaker: pb.Speaker | None = None,
        attachments: Sequence[pb.Attachment] = (),
        override: pb.Broadcast | None = None,
    ) -> pb.RunSessionRequest:
        request = pb.RunSessionRequest(
            dialogue=self.name, text=text, messages=messages, attachments=attachments
        )
        if speaker is not None:
            request.speaker.CopyFrom(speaker)
        if override is not None:
            request.broadcast_order_override.CopyFrom(override)
        return request

    def stream(
        self,
        text: str = "",
        *,
        messages: Sequence[pb.InputMessage] = (),
        speaker: pb.Speaker | None = None,
        attachments: Sequence[pb.Attachment] = (),
        override: pb.Broadcast | None = None,
    ) -> list[pb.SessionEvent]:
        """One RunSession, read to its end (the stream must end with status OK)."""
        request = self.request(
            text, messages=messages, speaker=speaker, attachments=attachments, override=override
        )
        events = list(self.stub.RunSession(request, timeout=RPC_TIMEOUT_S))
        check_envelope(events, self.name)
        return events

    def events(self, request: pb.RunSessionRequest) -> grpc.CallIterator[pb.SessionEvent]:
        """A RunSession read lazily (and cancellable), for scenarios that act while the run
        goes on."""
        return self.stub.RunSession(request, timeout=RPC_TIMEOUT_S)

    def run(
        self,
        text: str = "",
        *,
        messages: Sequence[pb.InputMessage] = (),
        speaker: pb.Speaker | None = None,
        attachments: Sequence[pb.Attachment] = (),
        override: pb.Broadcast | None = None,
    ) -> pb.RunResponse:
        """One unary Run."""
        request = self.request(
            text, messages=messages, speaker=speaker, attachments=attachments, override=override
        )
        return self.stub.Run(request, timeout=RPC_TIMEOUT_S)

    def get(self) -> pb.Dialogue:
        return self.stub.GetDialogue(pb.GetDialogueRequest(name=self.name), timeout=RPC_TIMEOUT_S)

    def messages(self) -> list[pb.Message]:
        """The whole log, through every page."""
        found: list[pb.Message] = []
        token = ""
        while True:
            page = self.stub.ListMessages(
                pb.ListMessagesRequest(dialogue=self.name, page_token=token),
                timeout=RPC_TIMEOUT_S,
            )
            found.extend(page.messages)
            token = page.next_page_token
            if not token:
                return found

    def add(
        self, participant: pb.Participant, joining: pb.JoiningStrategy | None = None
    ) -> pb.Dialogue:
        request = pb.AddParticipantRequest(dialogue=self.name, participant=participant)
        if joining is not None:
            request.joining_strategy.CopyFrom(joining)
        return self.stub.AddParticipant(request, timeout=RPC_TIMEOUT_S)

    def remove(self, name: str) -> pb.Dialogue:
        return self.stub.RemoveParticipant(
            pb.RemoveParticipantRequest(dialogue=self.name, participant_name=name),
            timeout=RPC_TIMEOUT_S,
        )

    def update(self, changes: pb.Dialogue, *paths: str) -> pb.Dialogue:
        changes.name = self.name
        return self.stub.UpdateDialogue(
            pb.UpdateDialogueRequest(
                dialogue=changes, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
            timeout=RPC_TIMEOUT_S,
        )

    def export(self, fmt: pb.HistoryFormat = pb.HISTORY_FORMAT_LLM_TOOLKIT_JSON) -> str:
        response = self.stub.ExportHistory(
            pb.ExportHistoryRequest(dialogue=self.name, format=fmt), timeout=RPC_TIMEOUT_S
        )
        return response.content

    def import_history(
        self, content: str, mode: pb.ImportMode = pb.IMPORT_MODE_AS_MESSAGES
    ) -> pb.Dialogue:
        return self.stub.ImportHistory(
            pb.ImportHistoryRequest(dialogue=self.name, content=content, mode=mode),
            timeout=RPC_TIMEOUT_S,
        )


class Dialogues:
    """Creates each scenario's dialogues, every one under an id of its own."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub

    def new_id(self) -> str:
        return f"conf-{next(_ids)}"

    def create(
        self,
        *participants: pb.Participant,
        model: pb.ExecutionModel | None = None,
        reaction: pb.ReactionStrategy = pb.REACTION_STRATEGY_UNSPECIFIED,
        context: pb.DialogueContext | None = None,
    ) -> Dialogue:
        dialogue = pb.Dialogue(participants=participants, reaction_strategy=reaction)
        if model is not None:
            dialogue.execution_model.CopyFrom(model)
        if context is not None:
            dialogue.context.CopyFrom(context)
        dialogue_id = self.new_id()
        self.stub.CreateDialogue(
            pb.CreateDialogueRequest(dialogue=dialogue, dialogue_id=dialogue_id),
            timeout=RPC_TIMEOUT_S,
        )
        return Dialogue(self.stub, dialogue_id)

    def create_request(
        self, *participants: pb.Participant, model: pb.ExecutionModel | None = None
    ) -> pb.CreateDialogueRequest:
        """A CreateDialogueRequest not yet sent, for scenarios expecting an error."""
        dialogue = pb.Dialogue(participants=participants)
        if model is not None:
            dialogue.execution_model.CopyFrom(model)
        return pb.CreateDialogueRequest(dialogue=dialogue, dialogue_id=self.new_id())


# --- reading events ------------------------------------------------------------------


def check_envelope(events: Sequence[pb.SessionEvent], name: str) -> None:
    """Every stream: SessionStarted first, SessionCompleted last, sequence 1.., one turn."""
    assert events, "a run streams at least SessionStarted and SessionCompleted"
    assert events[0].WhichOneof("event") == "started", kinds(events)
    assert events[-1].WhichOneof("event") == "completed", kinds(events)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert {e.dialogue for e in events} == {name}
    assert len({e.turn for e in events}) == 1


def kinds(events: Iterable[pb.SessionEvent]) -> list[str]:
    """The oneof case of each event: started, routing, turn_completed, turn_failed, completed."""
    return [event.WhichOneof("event") or "" for event in events]


def started(events: Sequence[pb.SessionEvent]) -> pb.SessionStarted:
    return events[0].started


def completed(events: Sequence[pb.SessionEvent]) -> pb.SessionCompleted:
    return events[-1].completed


def turns(events: Iterable[pb.SessionEvent]) -> list[pb.Turn]:
    return [e.turn_completed for e in events if e.HasField("turn_completed")]


def failures(events: Iterable[pb.SessionEvent]) -> list[pb.TurnFailed]:
    return [e.turn_failed for e in events if e.HasField("turn_failed")]


def order(events: Iterable[pb.SessionEvent]) -> list[str]:
    """Speaker names of Turn and TurnFailed events in emission order (failures marked !)."""
    names: list[str] = []
    for event in events:
        if event.HasField("turn_completed"):
            names.append(event.turn_completed.speaker.name)
        elif event.HasField("turn_failed"):
            names.append(f"!{event.turn_failed.speaker.name}")
    return names


def reply_of(events: Iterable[pb.SessionEvent] | pb.RunResponse, name: str) -> str:
    """The content of `name`'s reply in a run."""
    found = events.turns if isinstance(events, pb.RunResponse) else turns(events)
    matches = [t.content for t in found if t.speaker.name == name]
    assert len(matches) == 1, f"{name} replied {len(matches)} times"
    return matches[0]


def seen(content: str) -> list[str]:
    """The `[Speaker]: content` lines of an echo reply (empty for `(nothing new)`)."""
    head, *lines = content.split("\n")
    if head.endswith(": (nothing new)"):
        assert not lines, content
        return []
    assert head.endswith(":"), f"not an echo reply: {content!r}"
    return lines


def seen_by(events: Iterable[pb.SessionEvent] | pb.RunResponse, name: str) -> list[str]:
    """What participant `name` was delivered in this run, read from its echo reply."""
    return seen(reply_of(events, name))


def quoted(speaker: str, content: str) -> str:
    """The line an echo participant writes for a delivered message."""
    return f"[{speaker}]: " + content.replace("\n", "\\n")


def echo_reply(name: str, *lines: str) -> str:
    """The exact reply of echo participant `name` that was delivered `lines`."""
    return "\n".join([f"{name}:", *lines]) if lines else f"{name}: (nothing new)"


def log_view(messages: Iterable[pb.Message]) -> list[tuple[int, int, str, str]]:
    """(seq, turn, speaker name, content) per message: the shape of a log at a glance."""
    return [(m.seq, m.turn, m.speaker.name, m.content) for m in messages]


def pretty(entries: object) -> str:
    """A pretty-printed JSON document as llm-toolkit's save_history writes it."""
    return json.dumps(entries, indent=2, ensure_ascii=False)


# --- errors --------------------------------------------------------------------------


@dataclass
class RpcFailure:
    """A failed call's status with its google.rpc details unpacked."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    violations: dict[str, str] = field(default_factory=dict)


def rpc_failure(call: Callable[[], object]) -> RpcFailure:
    """Runs a call that must fail (a unary call, or a stream read to its end)."""
    caught: grpc.RpcError | None = None
    try:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    except grpc.RpcError as error:
        caught = error
    if caught is None:
        raise AssertionError("the call succeeded; an error status was expected")
    assert isinstance(caught, grpc.Call), caught
    status = rpc_status.from_call(caught)
    assert status is not None, f"no google.rpc.Status details in {caught!r}"
    failure = RpcFailure(code=caught.code(), message=status.message)
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            failure.reason, failure.domain = info.reason, info.domain
        elif detail.Unpack(bad_request):
            failure.violations.update(
                (v.field, v.description) for v in bad_request.field_violations
            )
    return failure
