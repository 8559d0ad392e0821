"""Every limit of `Limits` over gRPC, gRPC's own message cap, and queued runs.

What the server answers, checked here (and written in the report):

- participants per dialogue, bytes of one message, attachment bytes per run, input
  messages per run, concurrent runs per server and per client: RESOURCE_EXHAUSTED with a
  QuotaFailure naming the limit (and an ErrorInfo reason);
- an agent's reply over the bytes of one message: its turn fails (TurnFailed
  REPLY_TOO_LARGE), the run goes on;
- page size: not an error: larger pages are cut to the maximum (AIP-158), negative ones
  are INVALID_ARGUMENT;
- a request over gRPC's 16 MiB cap: RESOURCE_EXHAUSTED from grpc itself (no details);
- max_run_seconds: see test_deadlines.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
import pytest
from google.protobuf import duration_pb2
from parley.server.engine.errors import RunInProgress
from parley.server.engine.model import Dialogue, MessageDraft
from parley.server.engine.validation import Limits
from parley.server.store import MemoryStore
from parley.server.store.protocol import RunStart
from parley.v1 import dialogue_pb2 as pb

from tests.api.support import (
    all_messages_async,
    assert_failure,
    wait_until_runnable_async,
)

from .support import (
    WAIT_S,
    LiveServer,
    create_dialogue,
    echo,
    failure_of,
    gated,
    live_server,
    next_event,
    rest_of,
)

LIMITS = Limits(
    max_participants=3,
    max_message_bytes=1024,
    max_run_attachment_bytes=4096,
    max_input_messages=3,
    max_page_size=5,
)
GRPC_CAP = 16 * 1024 * 1024


class WatchedStore(MemoryStore):
    """A memory store that tells the test when a run was refused the lease: the moment
    a queued run is known to be waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = asyncio.Event()

    async def begin_run(
        self,
        dialogue_id: str,
        *,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft] = (),
        check: Callable[[Dialogue], None] | None = None,
    ) -> RunStart:
        try:
            return await super().begin_run(
                dialogue_id, owner=owner, ttl=ttl, inputs=inputs, check=check
            )
        except RunInProgress:
            self.refused.set()
            raise


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(limits=LIMITS, store=WatchedStore()) as live:
        yield live


async def refusal(call: object) -> grpc.aio.AioRpcError:
    """Awaits a unary call (or reads a stream) that must fail; returns its error."""
    try:
        if isinstance(call, grpc.aio.UnaryStreamCall):
            async with asyncio.timeout(WAIT_S):
                async for _ in call:
                    pass
        else:
            assert isinstance(call, grpc.aio.UnaryUnaryCall)
            async with asyncio.timeout(WAIT_S):
                await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded; it had to be refused")


def assert_quota(error: grpc.aio.AioRpcError, reason: str, subject: str) -> None:
    failure = failure_of(error)
    assert_failure(failure, grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
    assert failure.quota_subjects == [subject], failure


def participants(count: int) -> list[pb.Participant]:
    return [echo(f"P{i}") for i in range(count)]


# --- per dialogue, per message, per run ---------------------------------------------


async def test_participants_per_dialogue(server: LiveServer) -> None:
    stub = server.stub()
    error = await refusal(
        stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="too-many", dialogue=pb.Dialogue(participants=participants(4))
            )
        )
    )
    assert_quota(error, "TOO_MANY_PARTICIPANTS", "participants_per_dialogue")

    name = await create_dialogue(stub, participants(3))  # exactly at the limit
    error = await refusal(
        stub.AddParticipant(pb.AddParticipantRequest(dialogue=name, participant=echo("P3")))
    )
    assert_quota(error, "TOO_MANY_PARTICIPANTS", "participants_per_dialogue")
    dialogue = await stub.GetDialogue(pb.GetDialogueRequest(name=name))
    assert len(dialogue.participants) == 3


async def test_bytes_of_one_message_count_utf8_bytes_not_characters(server: LiveServer) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [echo("Alice")])
    too_big = [
        pb.RunSessionRequest(dialogue=name, text="x" * 1025),
        # 342 characters, 1026 bytes.
        pb.RunSessionRequest(dialogue=name, text="€" * 342),
        pb.RunSessionRequest(
            dialogue=name,
            messages=[
                pb.InputMessage(speaker=pb.Speaker(name="Bob"), content="ok"),
                pb.InputMessage(speaker=pb.Speaker(name="Bob"), content="y" * 1025),
            ],
        ),
    ]
    for request in too_big:
        assert_quota(await refusal(stub.Run(request)), "MESSAGE_TOO_LARGE", "message_bytes")
        assert_quota(await refusal(stub.RunSession(request)), "MESSAGE_TOO_LARGE", "message_bytes")
    # Refused before anything was stored.
    assert await all_messages_async(stub, name) == []
    at_limit = await stub.Run(pb.RunSessionRequest(dialogue=name, text="€" * 341 + "x"))
    assert at_limit.completed


async def test_an_agent_reply_over_the_message_limit_fails_its_turn(server: LiveServer) -> None:
    """Agents are held to the limit clients are: a reply is a message of the log."""
    stub = server.stub()
    name = await create_dialogue(
        stub, [echo("Fixed", reply="z" * 1025), echo("Echo"), echo("Short", reply="ok")]
    )
    # Two inputs under the limit each, echoed together: over it.
    request = pb.RunSessionRequest(
        dialogue=name,
        messages=[
            pb.InputMessage(speaker=pb.Speaker(name="Bob"), content="a" * 600),
            pb.InputMessage(speaker=pb.Speaker(name="Bob"), content="b" * 600),
        ],
    )
    response = await stub.Run(request)
    assert response.completed
    assert [t.speaker.name for t in response.turns] == ["Short"]
    assert {f.speaker.name: f.code for f in response.failures} == {
        "Fixed": "REPLY_TOO_LARGE",
        "Echo": "REPLY_TOO_LARGE",
    }
    log = await all_messages_async(stub, name)
    assert [m.speaker.name for m in log] == ["Bob", "Bob", "Short"]


async def test_echoes_of_echoes_stop_growing_at_the_message_limit(server: LiveServer) -> None:
    """Echo agents answer with all they were delivered, the others' last replies too, so
    their replies triple every run; without a cap on replies the log (and the server's
    memory) grows without bound."""
    stub = server.stub()
    name = await create_dialogue(stub, [echo(f"E{i}") for i in range(3)])
    failures: list[str] = []
    for i in range(12):
        response = await stub.Run(pb.RunSessionRequest(dialogue=name, text=f"round {i}"))
        assert response.completed
        failures.extend(f.code for f in response.failures)
    assert set(failures) == {"REPLY_TOO_LARGE"}
    log = await all_messages_async(stub, name)
    assert max(len(m.content.encode()) for m in log) <= LIMITS.max_message_bytes


async def test_attachment_bytes_per_run_add_up_across_the_request(server: LiveServer) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [echo("Alice")])

    def request(on_request: int, on_message: int) -> pb.RunSessionRequest:
        return pb.RunSessionRequest(
            dialogue=name,
            text="see attached",
            attachments=[pb.Attachment(name="a", mime_type="x/y", data=b"a" * on_request)],
            messages=[
                pb.InputMessage(
                    speaker=pb.Speaker(name="Bob"),
                    content="and this",
                    attachments=[
                        pb.Attachment(name="b", mime_type="x/y", data=b"b" * on_message),
                        # A link costs nothing.
                        pb.Attachment(name="c", mime_type="x/y", uri="https://example.invalid/c"),
                    ],
                )
            ],
        )

    error = await refusal(stub.Run(request(2048, 2049)))
    assert_quota(error, "ATTACHMENTS_TOO_LARGE", "attachment_bytes_per_run")
    assert await all_messages_async(stub, name) == []
    assert (await stub.Run(request(2048, 2048))).completed


async def test_input_messages_per_run(server: LiveServer) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [echo("Alice")])

    def request(count: int) -> pb.RunSessionRequest:
        return pb.RunSessionRequest(
            dialogue=name,
            messages=[
                pb.InputMessage(speaker=pb.Speaker(name="Bob"), content=str(i))
                for i in range(count)
            ],
        )

    error = await refusal(stub.Run(request(4)))
    assert_quota(error, "TOO_MANY_INPUT_MESSAGES", "input_messages_per_run")
    assert (await stub.Run(request(3))).completed


async def test_page_sizes_are_capped_and_negative_ones_refused(server: LiveServer) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [echo("Alice")])
    for i in range(3):
        await stub.Run(pb.RunSessionRequest(dialogue=name, text=f"m{i}"))  # 2 messages each
    for _ in range(5):
        await create_dialogue(stub, [echo("Alice")])

    messages = await stub.ListMessages(pb.ListMessagesRequest(dialogue=name, page_size=2**31 - 1))
    assert len(messages.messages) == 5
    assert messages.next_page_token
    dialogues = await stub.ListDialogues(pb.ListDialoguesRequest(page_size=1000))
    assert len(dialogues.dialogues) == 5
    assert dialogues.next_page_token

    for call in (
        stub.ListMessages(pb.ListMessagesRequest(dialogue=name, page_size=-1)),
        stub.ListDialogues(pb.ListDialoguesRequest(page_size=-(2**31))),
    ):
        failure = failure_of(await refusal(call))
        assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"page_size"})


# --- gRPC's own cap ------------------------------------------------------------------


async def test_a_request_over_grpcs_16_mib_cap_is_refused_by_grpc() -> None:
    async with live_server() as server:  # default limits: 1 MiB of text per message
        stub = server.stub()
        name = await create_dialogue(stub, [echo("Alice")])
        huge = pb.RunSessionRequest(dialogue=name, text="x" * (GRPC_CAP + 1))
        for call in (stub.Run(huge), stub.RunSession(huge)):
            error = await refusal(call)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in (error.details() or "")
        # Under the cap, Parley's own limit answers, with its details.
        big = pb.RunSessionRequest(dialogue=name, text="x" * (2 * 1024 * 1024))
        assert_quota(await refusal(stub.Run(big)), "MESSAGE_TOO_LARGE", "message_bytes")
        # The server is unharmed.
        assert (await stub.Run(pb.RunSessionRequest(dialogue=name, text="hi"))).completed
        assert await all_messages_async(stub, name) != []


async def test_responses_stay_within_grpcs_message_cap() -> None:
    """A run of many big replies is fine on RunSession (one message per turn); its log
    pages stop short of 4 MiB (a gRPC client's default receive limit); what cannot be
    split (Run's collected reply, an export) is refused with a quota, not grpc's
    generic 'Sent message larger than max' after the fact."""
    participants = 20
    async with live_server() as server:  # default limits: 1 MiB per message
        stub = server.stub()
        name = await create_dialogue(stub, [echo(f"P{i:02d}") for i in range(participants)])
        text = "x" * (1024 * 1024 - 64)
        events = [
            e
            async for e in stub.RunSession(
                pb.RunSessionRequest(dialogue=name, text=text), timeout=WAIT_S
            )
        ]
        assert events[-1].completed.turn_count == participants

        # The same run, collected in one response (on a dialogue of its own: a second run
        # would have echoes carry the other replies along, and fail REPLY_TOO_LARGE).
        other = await create_dialogue(stub, [echo(f"P{i:02d}") for i in range(participants)])
        error = await refusal(stub.Run(pb.RunSessionRequest(dialogue=other, text=text)))
        assert_quota(error, "RESPONSE_TOO_LARGE", "response_bytes")
        assert len(await all_messages_async(stub, other)) == 1 + participants
        error = await refusal(stub.ExportHistory(pb.ExportHistoryRequest(dialogue=name)))
        assert_quota(error, "RESPONSE_TOO_LARGE", "response_bytes")

        # 21 messages of about 1 MiB, read in pages under 4 MiB each.
        seqs: list[int] = []
        token = ""
        pages = 0
        while True:
            page = await stub.ListMessages(
                pb.ListMessagesRequest(dialogue=name, page_size=1000, page_token=token)
            )
            assert page.messages
            assert page.ByteSize() <= 4 * 1024 * 1024
            seqs.extend(m.seq for m in page.messages)
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seqs == list(range(1, participants + 2))
        assert pages >= (participants + 1) // 4


# --- concurrent runs -----------------------------------------------------------------


async def test_concurrent_runs_per_client_and_per_server() -> None:
    """Clients are told apart by their tokens (by peer address without authentication,
    and every loopback test client shares 127.0.0.1)."""
    limits = Limits(max_concurrent_runs=2, max_concurrent_runs_per_client=1)
    async with live_server(limits=limits, auth_tokens=("ann", "bob", "cat")) as server:
        stub = server.stub()

        def auth(token: str) -> tuple[tuple[str, str]]:
            return (("authorization", f"Bearer {token}"),)

        names = []
        for _ in range(4):
            dialogue = await stub.CreateDialogue(
                pb.CreateDialogueRequest(dialogue=pb.Dialogue(participants=[gated("Held")])),
                metadata=auth("ann"),
            )
            names.append(dialogue.name)

        def run(
            token: str, name: str
        ) -> grpc.aio.UnaryStreamCall[pb.RunSessionRequest, pb.SessionEvent]:
            request = pb.RunSessionRequest(dialogue=name, text="go")
            return stub.RunSession(request, metadata=auth(token))

        ann = run("ann", names[0])
        assert (await next_event(ann)).HasField("started")
        error = await refusal(run("ann", names[1]))
        assert_quota(error, "TOO_MANY_RUNS_PER_CLIENT", "concurrent_runs_per_client")

        bob = run("bob", names[1])
        assert (await next_event(bob)).HasField("started")
        error = await refusal(run("cat", names[2]))
        assert_quota(error, "TOO_MANY_RUNS", "concurrent_runs_per_server")
        # A refused run stored nothing.
        log = await stub.ListMessages(
            pb.ListMessagesRequest(dialogue=names[2]), metadata=auth("cat")
        )
        assert list(log.messages) == []

        # Slots come back when runs end.
        server.gate.open("Held")
        await rest_of(ann)
        await rest_of(bob)
        cat = run("cat", names[2])
        assert (await next_event(cat)).HasField("started")
        await rest_of(cat)


# --- if_busy QUEUE -------------------------------------------------------------------


def queue_for(seconds: float) -> duration_pb2.Duration:
    timeout = duration_pb2.Duration()
    timeout.FromNanoseconds(int(seconds * 1e9))
    return timeout


async def test_a_queued_run_waits_for_the_run_in_progress_then_runs(server: LiveServer) -> None:
    stub = server.stub()
    store = server.store
    assert isinstance(store, WatchedStore)
    name = await create_dialogue(stub, [gated("Held")])
    first = stub.RunSession(pb.RunSessionRequest(dialogue=name, text="first"))
    assert (await next_event(first)).HasField("started")
    await server.gate.entered("Held")

    second = server.stub().RunSession(
        pb.RunSessionRequest(
            dialogue=name, text="second", if_busy=pb.IF_BUSY_QUEUE, queue_timeout=queue_for(WAIT_S)
        )
    )
    second_started = asyncio.create_task(next_event(second))
    # The second run has asked for the dialogue and was told to wait: it is queued.
    async with asyncio.timeout(WAIT_S):
        await store.refused.wait()
    assert not second_started.done()

    server.gate.open("Held")
    first_rest = await rest_of(first)
    assert first_rest[-1].completed.turn_count == 1
    started = await second_started
    assert started.HasField("started")
    assert started.turn == 2
    second_rest = await rest_of(second)
    assert second_rest[-1].completed.turn_count == 1

    log = await all_messages_async(stub, name)
    assert [(m.turn, m.content) for m in log if m.speaker.name == "System"] == [
        (1, "first"),
        (2, "second"),
    ]


async def test_a_queued_run_gives_up_after_its_queue_timeout(server: LiveServer) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [gated("Held")])
    first = stub.RunSession(pb.RunSessionRequest(dialogue=name, text="first"))
    assert (await next_event(first)).HasField("started")

    for seconds in (0.0, 0.2):
        queued = pb.RunSessionRequest(
            dialogue=name, text="second", if_busy=pb.IF_BUSY_QUEUE, queue_timeout=queue_for(seconds)
        )
        for call in (stub.Run(queued), stub.RunSession(queued)):
            failure = failure_of(await refusal(call))
            assert_failure(failure, grpc.StatusCode.FAILED_PRECONDITION, "RUN_IN_PROGRESS")
    # Rejecting (the default) needs no queue at all.
    failure = failure_of(await refusal(stub.Run(pb.RunSessionRequest(dialogue=name, text="x"))))
    assert_failure(failure, grpc.StatusCode.FAILED_PRECONDITION, "RUN_IN_PROGRESS")

    server.gate.open("Held")
    await rest_of(first)
    await wait_until_runnable_async(stub, name)
    log = await all_messages_async(stub, name)
    assert "second" not in [m.content for m in log]


@pytest.mark.parametrize(
    ("if_busy", "queue_timeout", "field"),
    [
        (pb.IF_BUSY_REJECT, 1.0, "queue_timeout"),
        (pb.IF_BUSY_UNSPECIFIED, 1.0, "queue_timeout"),
        (pb.IF_BUSY_QUEUE, -1.0, "queue_timeout"),
        (pb.IF_BUSY_QUEUE, 3601.0, "queue_timeout"),
        (7, None, "if_busy"),
    ],
)
async def test_bad_queue_settings_are_refused(
    server: LiveServer, if_busy: int, queue_timeout: float | None, field: str
) -> None:
    stub = server.stub()
    name = await create_dialogue(stub, [echo("Alice")])
    request = pb.RunSessionRequest(dialogue=name, text="x", if_busy=if_busy)  # type: ignore[arg-type]
    if queue_timeout is not None:
        request.queue_timeout.CopyFrom(queue_for(queue_timeout))
    failure = failure_of(await refusal(stub.Run(request)))
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {field})
