"""Two `parley-server` processes sharing one PostgreSQL schema, as replicas behind a load
balancer would: a dialogue created on one runs on the other, is watched live from
either, runs on one replica at a time, is cancelled from anywhere, survives the death of
the replica running it, and keeps a gap-free log under concurrent load.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

from tests.api.support import failure_of
from tests.e2e.harness import ServerLauncher, ServerProcess
from tests.postgres import drop_schema, new_schema, schema_url

pytestmark = pytest.mark.e2e

T = TypeVar("T")
RPC_TIMEOUT_S = 60.0
# Short, so a dead replica's lease expires soon; the runs renew it every TTL / 3.
LEASE_TTL_S = "2"
# Bounds every poll; never reached when things work.
POLL_LIMIT_S = 60.0
FOREVER_MS = 3_600_000  # an echo delay no test waits out
QUEUED_WAIT_S = 2.5


@dataclass
class Replica:
    server: ServerProcess
    channel: grpc.Channel

    @property
    def stub(self) -> pb_grpc.DialogueServiceStub:
        return pb_grpc.DialogueServiceStub(self.channel)


@pytest.fixture
def shared_schema(launcher: ServerLauncher) -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema (the first server creates it); dropped after
    every server of the test stopped."""
    schema = asyncio.run(new_schema("parley_e2e"))
    try:
        yield schema_url(schema)
    finally:
        launcher.stop_all()
        asyncio.run(drop_schema(schema))


@pytest.fixture
def replicas(launcher: ServerLauncher, shared_schema: str) -> Iterator[tuple[Replica, Replica]]:
    started = [
        launcher.start(PARLEY_STORE_URL=shared_schema, PARLEY_LEASE_TTL=LEASE_TTL_S) for _ in "ab"
    ]
    channels = [server.channel() for server in started]
    try:
        first, second = (
            Replica(server, channel) for server, channel in zip(started, channels, strict=True)
        )
        yield first, second
    finally:
        for channel in channels:
            channel.close()


def echo(name: str, delay_ms: int = 0) -> pb.Participant:
    return pb.Participant(
        persona=pb.Persona(name=name), agent="echo", agent_options={"delay_ms": str(delay_ms)}
    )


def create(
    replica: Replica, dialogue_id: str, *participants: pb.Participant, mentioned: bool = False
) -> str:
    model = pb.ExecutionModel(mentioned=pb.Mentioned()) if mentioned else pb.ExecutionModel()
    replica.stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue_id=dialogue_id,
            dialogue=pb.Dialogue(participants=participants, execution_model=model),
        ),
        timeout=RPC_TIMEOUT_S,
    )
    return f"dialogues/{dialogue_id}"


def run(replica: Replica, dialogue: str, text: str, **options: object) -> pb.RunResponse:
    request = pb.RunSessionRequest(dialogue=dialogue, text=text, **options)  # type: ignore[arg-type]
    return replica.stub.Run(request, timeout=RPC_TIMEOUT_S)


def whole_log(replica: Replica, dialogue: str) -> list[pb.Message]:
    messages: list[pb.Message] = []
    token = ""
    while True:
        page = replica.stub.ListMessages(
            pb.ListMessagesRequest(dialogue=dialogue, page_token=token), timeout=RPC_TIMEOUT_S
        )
        messages.extend(page.messages)
        token = page.next_page_token
        if not token:
            return messages


def rejected_reason(call: Callable[[], object]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        failure = failure_of(error)
        assert failure.code == grpc.StatusCode.FAILED_PRECONDITION, failure
        return failure.reason
    raise AssertionError("the call succeeded; RUN_IN_PROGRESS was expected")


def first_event(stream: Iterable[pb.SessionEvent]) -> pb.SessionEvent:
    # A call's iterator is itself: the rest of the stream is still there to read.
    event = next(iter(stream))
    assert event.WhichOneof("event") == "started", event
    return event


def until_completed(stream: Iterable[pb.SessionEvent]) -> list[pb.SessionEvent]:
    events = list(stream)
    assert events, "the stream ended without an event"
    assert events[-1].WhichOneof("event") == "completed", events[-1]
    return events


def in_thread(pool: ThreadPoolExecutor, work: Callable[[], T]) -> Future[T]:
    return pool.submit(work)


def test_created_on_one_run_on_the_other_watched_live_from_the_first(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    dialogue = create(a, "live", echo("Ann"), echo("Bob", delay_ms=200))
    first = run(b, dialogue, "first")
    assert [t.speaker.name for t in first.turns] == ["Ann", "Bob"]

    watch = a.stub.WatchDialogue(
        pb.WatchDialogueRequest(dialogue=dialogue, after_seq=0), timeout=RPC_TIMEOUT_S
    )
    try:
        # The replay: A subscribed to the feed before it read these.
        incoming = iter(watch)  # the call is its own iterator
        replayed = [next(incoming).message for _ in range(3)]
        assert [m.seq for m in replayed] == [1, 2, 3]
        with ThreadPoolExecutor(max_workers=1) as pool:
            second = in_thread(pool, lambda: run(b, dialogue, "second"))
            live: list[pb.WatchDialogueResponse] = []
            for item in incoming:
                live.append(item)
                if item.HasField("event") and item.event.HasField("completed"):
                    break
            assert second.result(RPC_TIMEOUT_S).completed
    finally:
        watch.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    messages = [i.message for i in live if i.HasField("message")]
    events = [i.event for i in live if i.HasField("event")]
    assert [m.seq for m in messages] == [4, 5, 6]
    assert messages[0].content == "second"
    # Run events are never stored: these came live, from B, through PostgreSQL.
    assert [e.WhichOneof("event") for e in events] == ["started", "completed"]
    assert {e.turn for e in events} == {2}


def test_one_run_at_a_time_across_replicas_and_queued_runs_wait(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    dialogue = create(a, "busy", echo("Ann"), echo("Slow", FOREVER_MS), mentioned=True)
    streams = {
        name: replica.stub.RunSession(
            pb.RunSessionRequest(dialogue=dialogue, text="@Slow take your time"),
            timeout=RPC_TIMEOUT_S,
        )
        for name, replica in (("a", a), ("b", b))
    }
    ready = threading.Barrier(2)

    def start(stream: Iterable[pb.SessionEvent]) -> pb.SessionEvent | str:
        ready.wait(RPC_TIMEOUT_S)
        try:
            return first_event(stream)
        except grpc.RpcError as error:
            return failure_of(error).reason

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(zip(streams, pool.map(start, streams.values()), strict=True))
    winners = [name for name, outcome in outcomes.items() if isinstance(outcome, pb.SessionEvent)]
    losers = [outcome for outcome in outcomes.values() if isinstance(outcome, str)]
    assert len(winners) == 1, outcomes
    assert losers == ["RUN_IN_PROGRESS"]
    winner = streams[winners[0]]
    running_turn = outcomes[winners[0]].turn  # type: ignore[union-attr]
    queued_on = b if winners[0] == "a" else a

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            queued = in_thread(
                pool,
                lambda: run(
                    queued_on,
                    dialogue,
                    "@Ann after you",
                    if_busy=pb.IF_BUSY_QUEUE,
                    queue_timeout=Duration(seconds=50),
                ),
            )
            # Still waiting, where a rejected request would have failed at once; the
            # wait outlives several of the queue's one-second polls.
            time.sleep(QUEUED_WAIT_S)
            assert not queued.done()
            cancelled = queued_on.stub.CancelRun(
                pb.CancelRunRequest(dialogue=dialogue), timeout=RPC_TIMEOUT_S
            )
            assert cancelled.turn == running_turn
            result = queued.result(RPC_TIMEOUT_S)
    finally:
        winner.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    assert result.turn == running_turn + 1
    assert [t.speaker.name for t in result.turns] == ["Ann"]
    log = whole_log(a, dialogue)
    assert [m.seq for m in log] == list(range(1, len(log) + 1))
    notices = [m for m in log if "parley.run_end" in m.metadata]
    assert [(m.turn, m.metadata["parley.run_end"]) for m in notices] == [
        (running_turn, "cancelled")
    ]


def test_cancel_sent_to_one_replica_stops_the_run_on_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    dialogue = create(a, "stoppable", echo("Ann"), echo("Slow", FOREVER_MS), mentioned=True)
    stream = b.stub.RunSession(
        pb.RunSessionRequest(dialogue=dialogue, text="@Slow go"), timeout=RPC_TIMEOUT_S
    )
    started = first_event(stream)

    cancelled = a.stub.CancelRun(pb.CancelRunRequest(dialogue=dialogue), timeout=RPC_TIMEOUT_S)

    assert cancelled.turn == started.turn
    events = until_completed(stream)
    assert "turn_failed" in [e.WhichOneof("event") for e in events]
    log = whole_log(a, dialogue)
    assert log[-1].metadata["parley.run_end"] == "cancelled"
    # The dialogue is free again, on either replica.
    assert run(a, dialogue, "@Ann again").turn == started.turn + 1


def test_a_replica_killed_mid_run_loses_nothing_and_frees_the_dialogue(
    replicas: tuple[Replica, Replica],
) -> None:
    doomed, heir = replicas
    dialogue = create(doomed, "durable", echo("Ann"), echo("Bob"), echo("Cy", FOREVER_MS))
    stream = doomed.stub.RunSession(
        pb.RunSessionRequest(dialogue=dialogue, text="before the crash"), timeout=RPC_TIMEOUT_S
    )
    streamed: list[pb.Turn] = []
    for event in stream:
        if event.HasField("turn_completed"):
            streamed.append(event.turn_completed)
        if len(streamed) == 2:
            break
    assert len(streamed) == 2, "the run ended before the fast participants replied"

    doomed.server.signal(signal.SIGKILL)
    assert doomed.server.wait() == -signal.SIGKILL
    # Cy would keep the next run waiting too.
    heir.stub.RemoveParticipant(
        pb.RemoveParticipantRequest(dialogue=dialogue, participant_name="Cy"),
        timeout=RPC_TIMEOUT_S,
    )
    # The dead replica's lease runs out LEASE_TTL_S after its last renewal.
    after = None
    deadline = time.monotonic() + POLL_LIMIT_S
    while after is None:
        try:
            after = run(heir, dialogue, "after the crash")
        except grpc.RpcError as error:
            reason = failure_of(error).reason
            if reason != "RUN_IN_PROGRESS" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)

    log = whole_log(heir, dialogue)
    assert [m.seq for m in log] == list(range(1, len(log) + 1))
    first_turn = [m for m in log if m.turn == streamed[0].turn]
    assert first_turn[0].content == "before the crash"
    replies = {(m.seq, m.content) for m in first_turn if m.speaker.name in {"Ann", "Bob"}}
    assert {(t.message_seq, t.content) for t in streamed} <= replies
    assert "Cy" not in {m.speaker.name for m in first_turn}
    notice = first_turn[-1]
    assert notice.metadata["parley.run_end"] == "interrupted"
    assert after.turn == streamed[0].turn + 1
    assert after.completed
    assert [t.speaker.name for t in after.turns] == ["Ann", "Bob"]


@pytest.mark.timeout(300)
def test_fifty_dialogues_at_once_across_both_replicas_keep_complete_logs(
    replicas: tuple[Replica, Replica],
) -> None:
    count = 50

    def converse(index: int) -> str:
        # Created on one replica; turns alternate between the two.
        here, there = replicas[index % 2], replicas[(index + 1) % 2]
        dialogue = create(here, f"load-{index}", echo("Ann"), echo("Bob", delay_ms=index % 7))
        for turn, replica in enumerate((there, here, there), start=1):
            result = run(replica, dialogue, f"prompt {turn}")
            assert (result.turn, result.completed, len(result.turns)) == (turn, True, 2)
        return dialogue

    with ThreadPoolExecutor(max_workers=count) as pool:
        dialogues = list(pool.map(converse, range(count)))

    for index, dialogue in enumerate(dialogues):
        log = whole_log(replicas[index % 2], dialogue)
        assert [m.seq for m in log] == list(range(1, 10)), dialogue
        assert [m.turn for m in log] == [1, 1, 1, 2, 2, 2, 3, 3, 3], dialogue
        assert [m.content for m in log[::3]] == ["prompt 1", "prompt 2", "prompt 3"]
        assert not [m for m in log if "parley.run_end" in m.metadata]
