"""Bad input never hurts: random and malformed requests to every DialogueService RPC.

Hypothesis builds requests field by field (huge and negative numbers, unknown enum
numbers, odd unicode, empty and oversized names, bad page tokens, random update masks,
joining strategies and execution models naming unknown participants), and also sends raw
bytes through a generic bytes-in/bytes-out method, so the server parses them as the
request type. Every answer must be OK or a documented client error, never INTERNAL or
UNKNOWN; afterwards the server must still be SERVING and every dialogue's log
consistent.

The server is the production one with an SQLite store (tests.api.support), shared by
the whole module: requests land on a pool of existing dialogues (and on names that do
not exist), so they meet real state. Examples are derandomized (the same run every
time) and bounded so the module stays well under a minute on two cores.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from parley.server.agents.registry import AgentRegistry
from parley.server.api.auth import BearerTokenInterceptor, Credential, Grant
from parley.server.api.dialogues import DialogueService
from parley.server.api.errors import MalformedRequestInterceptor
from parley.server.engine.engine import Engine
from parley.server.store import MemoryStore
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

from tests.api.support import BackgroundServer, sqlite_server

ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
SERVICE = "/parley.v1.DialogueService/"
# Generous: no request here may take long; only WatchDialogue is cut by its deadline.
CALL_TIMEOUT_S = 30.0
# A valid watch replays the log and then follows it forever: it is read for this long.
WATCH_TIMEOUT_S = 0.1
WATCH_ITEMS = 3
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]

# Dialogues that exist for the whole module (never deleted: DeleteDialogue draws from
# DELETABLE), and the names their participants have.
POOL = [f"fz-{i}" for i in range(6)]
DELETABLE = [f"fz-del-{i}" for i in range(4)]
PERSONAS = ["Alice", "Bob", "Carol"]
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the server and how to call it ---------------------------------------------------


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = dialogue_pb2_grpc.DialogueServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def raw_unary(self, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
        return self.channel.unary_unary(SERVICE + method, None, None)

    def raw_stream(self, method: str) -> grpc.UnaryStreamMultiCallable[bytes, bytes]:
        return self.channel.unary_stream(SERVICE + method, None, None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    server = sqlite_server(Path(tmp_path_factory.mktemp("fuzz")) / "parley.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Iterator[Client]:
    client = Client(server.address)
    models = [
        pb.ExecutionModel(broadcast=pb.Broadcast()),
        pb.ExecutionModel(
            broadcast=pb.Broadcast(
                order=pb.BROADCAST_ORDER_EXPLICIT, explicit_order=["Carol", "Alice"]
            )
        ),
        pb.ExecutionModel(sequential=pb.Sequential(order=["Bob"])),
        pb.ExecutionModel(mentioned=pb.Mentioned(strategy=pb.MENTION_MATCH_STRATEGY_NAME)),
        pb.ExecutionModel(moderator=pb.Moderated(agent="echo")),
        pb.ExecutionModel(broadcast=pb.Broadcast(order=pb.BROADCAST_ORDER_PARTICIPANT_ORDER)),
    ]
    for dialogue_id, model in zip(POOL, models, strict=True):
        participants = [
            # Fixed replies: echoing everything delivered would grow the log
            # exponentially over thousands of runs.
            pb.Participant(
                persona=pb.Persona(name=name), agent="echo", agent_options={"reply": f"hi {name}"}
            )
            for name in PERSONAS
        ]
        client.stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id=dialogue_id,
                dialogue=pb.Dialogue(participants=participants, execution_model=model),
            )
        )
        client.stub.Run(pb.RunSessionRequest(dialogue=f"dialogues/{dialogue_id}", text="hello"))
    yield client
    client.channel.close()


_fresh_ids = itertools.count(1)
# (rpc, status) -> how often: printed at the end, to see where the requests got.
OUTCOMES: collections.Counter[tuple[str, str]] = collections.Counter()


def check_error(rpc: str, error: grpc.RpcError, extra: frozenset[grpc.StatusCode]) -> None:
    assert isinstance(error, grpc.Call)
    code = error.code()
    OUTCOMES[rpc, code.name] += 1
    assert code in ALLOWED | extra, f"{rpc} answered {code}: {error.details()!r}"
    if code in extra:
        return
    # Parley's own errors carry google.rpc details with a stable reason.
    status = rpc_status.from_call(error)
    assert status is not None, f"{rpc}: {code} without google.rpc.Status details"
    assert "Traceback" not in (error.details() or "")


def call(client: Client, rpc: str, request: Message) -> None:
    """Sends `request` to `rpc` and checks the answer, whatever it is."""
    if isinstance(request, pb.ImportHistoryRequest) and request.dialogue == FRESH:
        request.dialogue = client.stub.CreateDialogue(
            pb.CreateDialogueRequest(dialogue_id=f"fz-import-{next(_fresh_ids)}"), timeout=10
        ).name
    note(f"{rpc}({type(request).__name__}): {request!r}"[:4000])
    method = getattr(client.stub, rpc)
    try:
        if rpc == "RunSession":
            events = list(method(request, timeout=CALL_TIMEOUT_S))
            check_run_stream(events)
        elif rpc == "WatchDialogue":
            watch(method, request)
        else:
            method(request, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        check_error(rpc, error, frozenset())
    else:
        OUTCOMES[rpc, "OK"] += 1


def watch(method: Callable[..., Any], request: Message) -> None:
    stream = method(request, timeout=WATCH_TIMEOUT_S)
    try:
        for seen, _ in enumerate(stream, start=1):
            if seen >= WATCH_ITEMS:
                break
    except grpc.RpcError as error:
        # A valid watch outlives its short deadline by design.
        check_error("WatchDialogue", error, frozenset({grpc.StatusCode.DEADLINE_EXCEEDED}))
    finally:
        stream.cancel()


def check_run_stream(events: list[pb.SessionEvent]) -> None:
    """A stream that ended OK is a whole run: sequences 1..n, started first, completed last."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].HasField("started")
    assert events[-1].HasField("completed")
    assert sum(e.HasField("completed") for e in events) == 1
    counted = events[-1].completed
    assert counted.turn_count == sum(e.HasField("turn_completed") for e in events)
    assert counted.failure_count == sum(e.HasField("turn_failed") for e in events)


# --- strategies ----------------------------------------------------------------------
#
# Most random requests fail at their first bad field. So each example first draws how
# odd it is (ODDNESS, shared by all its fields): in most examples a field is odd only
# now and then, so requests get deep into the server, where a bad value meets the
# store, the engine and the agents; in the rest every field is a coin toss.

ODDNESS = st.shared(st.sampled_from([2, 8, 8, 40]), key="oddness")  # percent per field


@st.composite
def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    if draw(st.integers(0, 99)) < draw(ODDNESS):
        return draw(odd)
    return draw(valid)


ODD_TEXT = [
    "",
    " ",
    "  padded  ",
    "\x00",
    "\x7f",
    "a\nb",
    "@Alice",
    "Alice Bob",
    "\u202eevil",
    "\ufeff",
    "\u200b",
    "e\u0301",
    "😀" * 3,
    "x" * 129,
    "y" * 1025,
    "€" * 400,
    "Ⅻ",
    "\uff44\uff49\uff41\uff4c\uff4f\uff47\uff55\uff45",  # fullwidth "dialogue"
    "dialogues/",
    "dialogues/fz-0",
    "../../etc/passwd",
    "' OR 1=1 --",
    '{"a": 1}',
    "%s%n",
]

any_text = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
)
NEW_NAMES = ["Dave", "Eve", "Zoë", "Agent 7", "Frank", "Grace", "Heidi", "李雷"]
person_names = mostly(
    st.sampled_from([*PERSONAS, *NEW_NAMES]) | st.from_regex(r"[A-Z][a-z]{2,8}", fullmatch=True),
    any_text,
)
texts = mostly(
    st.text(string.ascii_letters + " .,!?@", min_size=1, max_size=30) | st.sampled_from(PERSONAS),
    any_text,
)
short_lists = st.lists(texts, max_size=3)


def ints(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    return st.one_of(
        st.integers(-3, 10), st.sampled_from([low, high, low + 1, -1]), st.integers(low, high)
    )


def small(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    """A count or position: usually small and sensible, sometimes anything."""
    return mostly(st.integers(0, 5), ints(bounds))


def enum_values(valid: int) -> st.SearchStrategy[int]:
    """An enum field: 0 (UNSPECIFIED) to `valid`, or an unknown number."""
    return mostly(st.integers(0, valid), st.sampled_from([-1, valid + 1, 99, *INT32]))


dialogue_ids = st.one_of(
    st.sampled_from(POOL + DELETABLE),
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
    any_text,
    st.sampled_from(["A", "-a", "a" * 63, "a" * 64, "fz-0 ", "fz_0", "ÿ"]),
)


@st.composite
def odd_dialogue_names(draw: st.DrawFn) -> str:
    dialogue_id = draw(dialogue_ids)
    prefix = draw(st.sampled_from(["dialogues/", "dialogues/", "", "dialogue/", "dialogues//"]))
    return prefix + dialogue_id


dialogue_names = mostly(st.sampled_from([f"dialogues/{d}" for d in POOL]), odd_dialogue_names())

# What a moderator (an echo with a fixed reply) may answer: its decision is untrusted.
MODERATOR_ANSWERS = [
    '{"broadcast": {}}',
    '{"broadcast": null}',
    '{"broadcast": {"order": "explicit", "explicit_order": ["Bob", "Alice"]}}',
    '{"broadcast": {"order": "explicit", "explicit_order": ["Bob", "Bob", "Zed"]}}',
    '{"broadcast": {"order": 7}}',
    '{"sequential": {"order": ["Carol"]}}',
    '{"sequential": {"order": "Carol"}}',
    '{"sequential": {"order": [1, null]}}',
    '{"mentioned": {"strategy": "partial"}}',
    '{"moderator": {}}',
    '{"sequential": {}, "broadcast": {}}',
    "[]",
    "not json",
    '```json\n{"sequential": {"order": ["Alice"]}}\n```',
]


def option_values(key: str) -> st.SearchStrategy[str]:
    match key:
        # Valid delays stay tiny: a run must never be slow.
        case "delay_ms":
            return mostly(
                st.sampled_from(["0", "1"]),
                st.sampled_from(["-1", "x", "", "3600001", "9" * 30, "٣", " 1"]),
            )
        case "fail":
            return mostly(
                st.sampled_from(["always", "1", "0"]),
                st.sampled_from(["1000001", "-1", "never", ""]),
            )
        case "reply":
            return st.one_of(texts, st.sampled_from(MODERATOR_ANSWERS), st.just("z" * 4097))
        case _:
            return texts


@st.composite
def agent_options(draw: st.DrawFn) -> dict[str, str]:
    keys = draw(
        st.lists(
            mostly(st.sampled_from(["delay_ms", "fail"]), st.sampled_from(["model", "url", ""])),
            max_size=2,
            unique=True,
        )
    )
    options = {key: draw(option_values(key)) for key in keys}
    # Always a fixed reply: echoes of echoes would grow the log exponentially.
    options["reply"] = draw(option_values("reply"))
    return options


agents = mostly(st.just("echo"), st.sampled_from(["", "openai", "nope", "ECHO", "echo "]))


@st.composite
def personas(draw: st.DrawFn) -> pb.Persona:
    return pb.Persona(
        name=draw(person_names),
        role=draw(mostly(st.just(""), texts)),
        background=draw(mostly(st.just(""), texts)),
        communication_style=draw(mostly(st.just(""), texts)),
        capabilities=[
            pb.Capability(name=draw(texts), description=draw(texts))
            for _ in range(draw(st.integers(0, 2)))
        ],
        visual_identity=pb.VisualIdentity(
            icon=draw(mostly(st.sampled_from(["", "🦊", "A"]), st.just("i" * 65))),
            tagline=draw(mostly(st.just(""), texts)),
            color=draw(mostly(st.just(""), texts)),
        ),
    )


@st.composite
def joining_strategies(draw: st.DrawFn) -> pb.JoiningStrategy:
    match draw(st.sampled_from(["fresh", "full", "recent", "range", "none"])):
        case "fresh":
            return pb.JoiningStrategy(fresh=pb.JoiningStrategy.Fresh())
        case "full":
            return pb.JoiningStrategy(full=pb.JoiningStrategy.Full())
        case "recent":
            return pb.JoiningStrategy(recent=pb.JoiningStrategy.Recent(turns=draw(small(INT32))))
        case "range":
            strategy = pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=draw(small(INT64))))
            if draw(st.booleans()):
                strategy.range.end = draw(small(INT64))
            return strategy
    return pb.JoiningStrategy()


@st.composite
def participants(draw: st.DrawFn) -> pb.Participant:
    participant = pb.Participant(
        persona=draw(personas()),
        agent=draw(agents),
        agent_options=draw(agent_options()),
        pending=draw(st.booleans()),
    )
    if draw(st.booleans()):
        participant.joining_strategy.CopyFrom(draw(joining_strategies()))
    return participant


def orders(names: list[str]) -> st.SearchStrategy[list[str]]:
    """Participant names in some order: `names` (a dialogue's), or unknown and odd ones."""
    known = (
        st.lists(st.sampled_from(names), unique=True, max_size=len(names)) if names else st.just([])
    )
    return mostly(known, st.lists(st.sampled_from([*names, "Dave", ""]) | texts, max_size=4))


@st.composite
def broadcasts(draw: st.DrawFn, names: list[str]) -> pb.Broadcast:
    order = draw(enum_values(3))
    explicit = draw(orders(names)) if order == 3 else draw(mostly(st.just([]), orders(names)))
    return pb.Broadcast(order=order, explicit_order=explicit)  # type: ignore[arg-type]


@st.composite
def execution_models(draw: st.DrawFn, names: list[str]) -> pb.ExecutionModel:
    match draw(st.sampled_from(["broadcast", "sequential", "mentioned", "moderator", "none"])):
        case "broadcast":
            return pb.ExecutionModel(broadcast=draw(broadcasts(names)))
        case "sequential":
            return pb.ExecutionModel(sequential=pb.Sequential(order=draw(orders(names))))
        case "mentioned":
            strategy = draw(enum_values(3))
            return pb.ExecutionModel(mentioned=pb.Mentioned(strategy=strategy))  # type: ignore[arg-type]
        case "moderator":
            return pb.ExecutionModel(
                moderator=pb.Moderated(agent=draw(agents), agent_options=draw(agent_options()))
            )
    return pb.ExecutionModel()


@st.composite
def contexts(draw: st.DrawFn) -> pb.DialogueContext:
    context = pb.DialogueContext(
        environment=draw(texts),
        additional_context=draw(short_lists),
        policy={
            draw(person_names): pb.CapabilityList(capabilities=draw(short_lists))
            for _ in range(draw(st.integers(0, 2)))
        },
    )
    match draw(st.sampled_from(["talk_style", "custom", "none"])):
        case "talk_style":
            context.talk_style = draw(enum_values(8))  # type: ignore[assignment]
        case "custom":
            context.custom_talk_style.CopyFrom(
                pb.CustomTalkStyle(
                    name=draw(texts),
                    description=draw(texts),
                    guidelines=draw(short_lists),
                    expected_behaviors=draw(short_lists),
                )
            )
    return context


timestamps = st.builds(timestamp_pb2.Timestamp, seconds=ints(INT64), nanos=ints(INT32))


@st.composite
def dialogues(draw: st.DrawFn, names: list[str] | None = None) -> pb.Dialogue:
    """A dialogue; `names` are the participants its execution model may name (None:
    its own participants, as in CreateDialogue)."""
    members = draw(
        mostly(
            st.lists(participants(), max_size=4, unique_by=lambda p: p.persona.name),
            st.lists(participants(), max_size=4),
        )
    )
    dialogue = pb.Dialogue(
        display_name=draw(mostly(texts, st.just("d" * 1025))),
        participants=members,
        reaction_strategy=draw(enum_values(6)),  # type: ignore[arg-type]
    )
    if names is None:
        names = [p.persona.name for p in members]
    if draw(st.booleans()):
        dialogue.execution_model.CopyFrom(draw(execution_models(names)))
    if draw(st.booleans()):
        dialogue.context.CopyFrom(draw(contexts()))
    # Output-only fields: the server must ignore them.
    if draw(st.integers(0, 3)) == 0:
        dialogue.name = draw(dialogue_names)
        dialogue.latest_turn = draw(ints(INT64))
        dialogue.message_count = draw(ints(INT64))
        dialogue.create_time.CopyFrom(draw(timestamps))
    return dialogue


# Odd JSON values: beyond int64, lone surrogates (json.dumps escapes them), wrong types.
ODD_JSON: list[object] = [
    *(None, True, -1, 0, 1.5, 2**63, 10**30, -(10**30)),
    *("", "\ud800", "é", [], {}),
]
odd_json = st.sampled_from(ODD_JSON)
# Values of the right type that validation may let through to the store.
odd_ints = st.sampled_from([2**53, 2**63 - 1, 2**63, 10**30])
odd_strings = st.sampled_from(["\ud800", "a\udfffb", "é", "\x00"])


def token(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | odd_json,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@st.composite
def page_tokens(draw: st.DrawFn) -> str:
    match draw(st.sampled_from(["empty", "seq", "id", "json", "text", "b64"])):
        case "empty":
            return ""
        case "seq":
            return token({"after_seq": draw(st.integers(0, 20) | odd_json | odd_ints)})
        case "id":
            return token({"after_id": draw(st.sampled_from(POOL) | odd_json | odd_strings)})
        case "json":
            return token(draw(json_values))
        case "text":
            return draw(any_text)
    return base64.urlsafe_b64encode(draw(st.binary(max_size=30))).decode()


@st.composite
def attachments(draw: st.DrawFn) -> pb.Attachment:
    attachment = pb.Attachment(
        name=draw(texts), mime_type=draw(mostly(st.just("text/plain"), texts))
    )
    match draw(mostly(st.sampled_from(["data", "uri"]), st.just("none"))):
        case "data":
            attachment.data = draw(st.binary(max_size=64))
        case "uri":
            attachment.uri = draw(texts)
    return attachment


@st.composite
def speakers(draw: st.DrawFn) -> pb.Speaker:
    return pb.Speaker(
        kind=draw(enum_values(3)),  # type: ignore[arg-type]
        name=draw(person_names),
        role=draw(mostly(st.just(""), texts)),
        icon=draw(mostly(st.just(""), texts)),
    )


@st.composite
def input_messages(draw: st.DrawFn) -> pb.InputMessage:
    return pb.InputMessage(
        speaker=draw(speakers()),
        content=draw(texts),
        type=draw(enum_values(5)),  # type: ignore[arg-type]
        custom_type=draw(mostly(st.just(""), texts)),
        attachments=draw(st.lists(attachments(), max_size=2)),
        metadata=draw(st.dictionaries(texts, texts, max_size=2)),
    )


@st.composite
def durations(draw: st.DrawFn) -> duration_pb2.Duration:
    # Durations are odd half the time: they are the only field where a number's range is
    # checked after it was turned into something else.
    seconds = st.integers(0, 2) | st.sampled_from([-1, 3600, 3601, 2**40, *INT64])
    nanos = st.integers(0, 999_999_999) | st.sampled_from([-1, 10**9, *INT32])
    return duration_pb2.Duration(seconds=draw(seconds), nanos=draw(nanos))


@st.composite
def run_requests(draw: st.DrawFn) -> pb.RunSessionRequest:
    request = pb.RunSessionRequest(
        dialogue=draw(dialogue_names),
        text=draw(texts),
        messages=draw(st.lists(input_messages(), max_size=3)),
        attachments=draw(st.lists(attachments(), max_size=2)),
        if_busy=draw(enum_values(2)),  # type: ignore[arg-type]
    )
    if draw(st.integers(0, 3)) == 0:
        request.broadcast_order_override.CopyFrom(draw(broadcasts(PERSONAS)))
    if draw(st.booleans()):
        request.speaker.CopyFrom(draw(speakers()))
    if draw(mostly(st.just(request.if_busy == pb.IF_BUSY_QUEUE), st.booleans())):
        request.queue_timeout.CopyFrom(draw(durations()))
    return request


mask_paths = mostly(
    st.sampled_from(["display_name", "execution_model", "context", "reaction_strategy"]),
    st.sampled_from(["participants", "name", "latest_turn", "", "display_name.x", "*"]) | texts,
)


@st.composite
def update_requests(draw: st.DrawFn) -> pb.UpdateDialogueRequest:
    dialogue = draw(dialogues(PERSONAS))
    dialogue.name = draw(dialogue_names)
    return pb.UpdateDialogueRequest(
        dialogue=dialogue,
        update_mask=field_mask_pb2.FieldMask(
            paths=draw(st.lists(mask_paths, min_size=1, max_size=3))
        ),
    )


@st.composite
def add_participant_requests(draw: st.DrawFn) -> pb.AddParticipantRequest:
    request = pb.AddParticipantRequest(
        dialogue=draw(dialogue_names), participant=draw(participants())
    )
    if draw(st.booleans()):
        request.joining_strategy.CopyFrom(draw(joining_strategies()))
    return request


def json_field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return mostly(valid, odd_json)


def json_text(valid: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return mostly(valid, odd_json | odd_strings)


def json_int(valid: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return mostly(valid, odd_json | odd_ints)


@st.composite
def history_speakers(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["system", "user", "agent"]))
    speaker: dict[str, Any] = {"type": draw(json_field(st.just(kind)))}
    if kind != "system" or draw(st.booleans()):
        speaker["name"] = draw(json_text(person_names))
        speaker["role"] = draw(json_text(texts))
    if draw(st.booleans()):
        speaker["icon"] = draw(json_text(texts))
    return draw(json_field(st.just(speaker)))


@st.composite
def history_entries(draw: st.DrawFn, full: bool, seq: int) -> Any:
    entry: dict[str, Any] = {
        "speaker": draw(history_speakers()),
        "content": draw(json_text(texts)),
    }
    if not full:
        return entry
    attachment = st.fixed_dictionaries(
        {"name": json_text(texts), "mime_type": json_text(st.just("text/plain"))},
        optional={
            "data": json_text(st.sampled_from(["aGk=", "", "!!", "aGk", "é"])),
            "uri": json_text(texts),
        },
    )
    types = ["conversational", "notification", "system", "context_info", "custom"]
    entry.update(
        seq=seq,
        turn=draw(json_int(st.integers(1, 3))),
        type=draw(json_field(st.sampled_from(types))),
        custom_type=draw(json_text(texts)),
        origin=draw(json_field(st.sampled_from(["incoming", "agent_generated"]))),
        attachments=draw(json_field(st.lists(json_field(attachment), max_size=2))),
        metadata=draw(json_field(st.dictionaries(texts, json_text(texts), max_size=2))),
        create_time=draw(
            json_field(st.sampled_from(["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00"]))
        ),
    )
    return entry


@st.composite
def history_contents(draw: st.DrawFn) -> str:
    match draw(mostly(st.sampled_from(["toolkit", "full"]), st.just("odd"))):
        case "odd":
            return draw(
                any_text | st.sampled_from(["[", "{}", "null", "[1, 2]", "[{}]", '["\\ud800"]'])
            )
        case kind:
            count = draw(st.integers(0, 4))
            entries = [draw(history_entries(kind == "full", i + 1)) for i in range(count)]
            # Full entries keep their turns: sorted, as an export writes them.
            if kind == "full" and all(isinstance(e.get("turn"), int) for e in entries):
                turns = sorted(e["turn"] for e in entries)
                for entry, turn in zip(entries, turns, strict=True):
                    entry["turn"] = turn
            return json.dumps(entries)


# ImportHistory needs a dialogue with an empty log: this name stands for a new one.
FRESH = "dialogues/fz-fresh"

RPC_REQUESTS: dict[str, st.SearchStrategy[Message]] = {
    "CreateDialogue": st.builds(
        pb.CreateDialogueRequest,
        dialogue=dialogues(),
        dialogue_id=mostly(
            st.sampled_from([*DELETABLE, *POOL, ""])
            | st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
            dialogue_ids,
        ),
    ),
    "GetDialogue": st.builds(pb.GetDialogueRequest, name=dialogue_names),
    "ListDialogues": st.builds(
        pb.ListDialoguesRequest, page_size=small(INT32), page_token=page_tokens()
    ),
    "UpdateDialogue": update_requests(),
    "DeleteDialogue": st.builds(
        pb.DeleteDialogueRequest,
        name=mostly(st.sampled_from([f"dialogues/{d}" for d in DELETABLE]), odd_dialogue_names()),
    ).filter(lambda r: r.name.removeprefix("dialogues/") not in POOL),
    "AddParticipant": add_participant_requests(),
    "RemoveParticipant": st.builds(
        pb.RemoveParticipantRequest, dialogue=dialogue_names, participant_name=person_names
    ),
    "RunSession": run_requests(),
    "Run": run_requests(),
    "ListMessages": st.builds(
        pb.ListMessagesRequest,
        dialogue=dialogue_names,
        page_size=small(INT32),
        page_token=page_tokens(),
        after_seq=small(INT64),
    ),
    "ExportHistory": st.builds(
        pb.ExportHistoryRequest, dialogue=dialogue_names, format=enum_values(2)
    ),
    "ImportHistory": st.builds(
        pb.ImportHistoryRequest,
        dialogue=mostly(st.just(FRESH), dialogue_names),
        content=history_contents(),
        mode=enum_values(2),
    ),
    "WatchDialogue": st.builds(
        pb.WatchDialogueRequest, dialogue=dialogue_names, after_seq=small(INT64)
    ),
    "CancelRun": st.builds(pb.CancelRunRequest, dialogue=dialogue_names, mode=enum_values(2)),
    "ListAgentProfiles": st.just(pb.ListAgentProfilesRequest()),
}
REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateDialogue": pb.CreateDialogueRequest,
    "GetDialogue": pb.GetDialogueRequest,
    "ListDialogues": pb.ListDialoguesRequest,
    "UpdateDialogue": pb.UpdateDialogueRequest,
    "DeleteDialogue": pb.DeleteDialogueRequest,
    "AddParticipant": pb.AddParticipantRequest,
    "RemoveParticipant": pb.RemoveParticipantRequest,
    "RunSession": pb.RunSessionRequest,
    "Run": pb.RunSessionRequest,
    "ListMessages": pb.ListMessagesRequest,
    "ExportHistory": pb.ExportHistoryRequest,
    "ImportHistory": pb.ImportHistoryRequest,
    "WatchDialogue": pb.WatchDialogueRequest,
    "CancelRun": pb.CancelRunRequest,
    "ListAgentProfiles": pb.ListAgentProfilesRequest,
}
STREAMING = frozenset({"RunSession", "WatchDialogue"})
EXAMPLES = {
    "WatchDialogue": 50,
    "ListAgentProfiles": 1,
    "ImportHistory": 300,
    "ListMessages": 250,
    "ListDialogues": 250,
}
DEFAULT_EXAMPLES = 120
# Raw bytes: only those that parse are sent. Building import contents is slow.
RAW_EXAMPLES = {"WatchDialogue": 40, "ListAgentProfiles": 40, "ImportHistory": 30}
DEFAULT_RAW_EXAMPLES = 60


def test_every_rpc_of_the_service_is_fuzzed() -> None:
    service = pb.DESCRIPTOR.services_by_name["DialogueService"]
    assert set(RPC_REQUESTS) == set(REQUEST_TYPES) == {m.name for m in service.methods}
    for method in service.methods:
        assert REQUEST_TYPES[method.name].DESCRIPTOR is method.input_type
        assert (method.name in STREAMING) == method.server_streaming


# --- the fuzz ------------------------------------------------------------------------


def fuzz_rpc(rpc: str) -> Callable[[Client], None]:
    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES.get(rpc, DEFAULT_EXAMPLES))
    @given(request=RPC_REQUESTS[rpc])
    def run(client: Client, request: Message) -> None:
        call(client, rpc, request)

    return run


@pytest.mark.parametrize("rpc", sorted(RPC_REQUESTS))
def test_random_requests_get_ok_or_a_client_error(client: Client, rpc: str) -> None:
    fuzz_rpc(rpc)(client)


# Raw bytes: random ones, and valid requests with bytes flipped, cut or appended.


@st.composite
def raw_payloads(draw: st.DrawFn, rpc: str) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "mutated", "valid"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    data = bytearray(draw(RPC_REQUESTS[rpc]).SerializeToString())
    if kind == "mutated" and data:
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(data) - 1))
            match draw(st.sampled_from(["flip", "cut", "insert"])):
                case "flip":
                    data[position] ^= draw(st.integers(1, 255))
                case "cut":
                    del data[position:]
                case "insert":
                    data[position:position] = draw(st.binary(min_size=1, max_size=4))
            if not data:
                break
    return bytes(data)


def send_raw(client: Client, rpc: str, payload: bytes) -> None:
    try:
        if rpc in STREAMING:
            timeout = WATCH_TIMEOUT_S if rpc == "WatchDialogue" else CALL_TIMEOUT_S
            stream: Any = client.raw_stream(rpc)(payload, timeout=timeout)
            try:
                for seen, _ in enumerate(stream, start=1):
                    if rpc == "WatchDialogue" and seen >= WATCH_ITEMS:
                        break
            finally:
                stream.cancel()
        else:
            client.raw_unary(rpc)(payload, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        extra = (
            frozenset({grpc.StatusCode.DEADLINE_EXCEEDED})
            if rpc == "WatchDialogue"
            else frozenset()
        )
        check_error(rpc, error, extra)


def parses(rpc: str, payload: bytes) -> bool:
    try:
        REQUEST_TYPES[rpc].FromString(payload)
    except DecodeError:
        return False
    return True


def fuzz_raw(rpc: str) -> Callable[[Client], None]:
    @settings(FUZZ_SETTINGS, max_examples=RAW_EXAMPLES.get(rpc, DEFAULT_RAW_EXAMPLES))
    @given(payload=raw_payloads(rpc))
    def run(client: Client, payload: bytes) -> None:
        note(f"{rpc} <- {payload!r}")
        if parses(rpc, payload):
            send_raw(client, rpc, payload)

    return run


@pytest.mark.parametrize("rpc", sorted(RPC_REQUESTS))
def test_random_bytes_that_parse_as_the_request_get_ok_or_a_client_error(
    client: Client, rpc: str
) -> None:
    fuzz_raw(rpc)(client)


# Bytes that are not a valid protobuf message at all, or that hold invalid UTF-8 in a
# string field (the only way to send a lone surrogate: protobuf refuses to encode one).
UNDECODABLE = [
    b"\xff",
    b"\x0a\x05ab",  # a string field cut short
    b"\x0a\x03\xed\xa0\x80",  # field 1 = UTF-8-encoded lone surrogate U+D800
    b"\x0a\x02\xc3\x28",  # field 1 = invalid 2-byte UTF-8 sequence
    b"\x0f",  # wire type 7 does not exist
]


@pytest.mark.parametrize("rpc", sorted(RPC_REQUESTS))
def test_undecodable_requests_are_invalid_argument(client: Client, rpc: str) -> None:
    payloads = [p for p in UNDECODABLE if not parses(rpc, p)]
    assert payloads
    for payload in payloads:
        send_raw(client, rpc, payload)


async def test_the_malformed_request_interceptor_answers_invalid_argument() -> None:
    """What api.errors.MalformedRequestInterceptor does once installed: checked on a grpc
    server built like ParleyServer's, with that interceptor innermost (after auth)."""
    store = MemoryStore()
    await store.open()
    engine = Engine(store, AgentRegistry.with_builtin())
    auth = BearerTokenInterceptor([Credential(b"secret", Grant("tester"))])
    server = grpc.aio.server(interceptors=[auth, MalformedRequestInterceptor()])
    dialogue_pb2_grpc.add_DialogueServiceServicer_to_server(DialogueService(engine), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    metadata = (("authorization", "Bearer secret"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as ch:
            for rpc in sorted(REQUEST_TYPES):
                for payload in (p for p in UNDECODABLE if not parses(rpc, p)):
                    sent: Any = (
                        ch.unary_stream(SERVICE + rpc, None, None)
                        if rpc in STREAMING
                        else ch.unary_unary(SERVICE + rpc, None, None)
                    )(payload, metadata=metadata, timeout=10)
                    code = await sent.code()
                    assert code == grpc.StatusCode.INVALID_ARGUMENT, (rpc, payload, code)
                    status = await rpc_status.aio.from_call(sent)  # type: ignore[attr-defined]
                    assert status is not None
                    info = error_details_pb2.ErrorInfo()
                    assert status.details[0].Unpack(info)
                    assert info.reason == "MALFORMED_REQUEST"
                    assert "DecodeError" not in status.message
                # Without a token it is still UNAUTHENTICATED first.
                if rpc not in STREAMING:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await ch.unary_unary(SERVICE + rpc, None, None)(UNDECODABLE[0], timeout=10)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # Requests that parse are served as before.
            stub = dialogue_pb2_grpc.DialogueServiceStub(ch)
            profiles = await stub.ListAgentProfiles(
                pb.ListAgentProfilesRequest(), metadata=metadata
            )
            assert [p.name for p in profiles.profiles] == ["echo"]
            watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest())
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
            health_watch = ch.unary_stream("/grpc.health.v1.Health/Watch", None, None)
            bad_watch = health_watch(b"\xff", timeout=10)
            assert await bad_watch.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
        await store.close()


# --- afterwards ----------------------------------------------------------------------


def test_afterwards_the_server_is_serving_and_every_log_is_consistent(client: Client) -> None:
    for service in ("", "parley.v1.DialogueService"):
        health = client.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

    dialogues_seen = 0
    token = ""
    while True:
        page = client.stub.ListDialogues(pb.ListDialoguesRequest(page_token=token), timeout=10)
        for dialogue in page.dialogues:
            dialogues_seen += 1
            check_log(client, dialogue)
        token = page.next_page_token
        if not token:
            break
    assert dialogues_seen >= len(POOL)
    print("outcomes:", *sorted(OUTCOMES.items()), sep="\n  ")


def check_log(client: Client, dialogue: pb.Dialogue) -> None:
    messages: list[pb.Message] = []
    token = ""
    while True:
        page = client.stub.ListMessages(
            pb.ListMessagesRequest(dialogue=dialogue.name, page_token=token, page_size=1000),
            timeout=10,
        )
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            break
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1)), dialogue.name
    assert dialogue.message_count == len(messages), dialogue.name
    assert dialogue.latest_turn >= max((m.turn for m in messages), default=0), dialogue.name
    assert all(m.turn >= 1 for m in messages), dialogue.name
    # Whatever the log holds can be exported.
    for fmt in (pb.HISTORY_FORMAT_LLM_TOOLKIT_JSON, pb.HISTORY_FORMAT_FULL_JSON):
        client.stub.ExportHistory(
            pb.ExportHistoryRequest(dialogue=dialogue.name, format=fmt), timeout=10
        )
