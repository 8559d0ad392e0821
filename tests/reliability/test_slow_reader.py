"""A client that reads slowly never makes the server buffer without bound.

What bounds the server, by construction (engine/session.py, store/feed.py):

- a run's events wait in an outbox of at most participants + 4 items (a run emits at most
  one event per participant, one for the moderator, SessionStarted, SessionCompleted and
  an end marker), and the run is stored and its lease released whatever the reader's
  pace: storing never waits for the reader;
- grpc's flow control holds the handler back once the client stops reading;
- a watcher's feed subscription keeps at most MAX_PENDING_EVENTS items (the oldest run
  events are dropped); messages are read from the log by seq, so none is ever lost.

The tests pause a reader (the test itself is the gate: it reads one event at a time, and
only after checking the server's buffers), with runs large enough (megabytes) to fill
grpc's windows, then check each bound and that the reader eventually receives it all.
(Measured with grpcio 1.85: of the paused run's 52 items, 28 were still queued on the
server, the handler held back by flow control; the paused watcher's backlog sat at its
cap of 256 while old run events were dropped.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from parley.server.store.feed import MAX_PENDING_EVENTS, LocalFeed, Subscription
from parley.v1 import dialogue_pb2 as pb

from tests.api.support import echo_reply, kinds, wait_until_runnable_async

from .support import (
    WAIT_S,
    LiveServer,
    assert_no_task_leaked,
    create_dialogue,
    echo,
    live_server,
    next_event,
    task_census,
)

PARTICIPANTS = 48
# Each echo reply repeats the input: 48 replies of 256 KiB make a 12 MiB stream.
INPUT_BYTES = 256 * 1024
WATCHED_RUNS = 120
WATCHED_INPUT_BYTES = 64 * 1024


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server() as live:
        yield live


async def test_a_paused_run_reader_holds_back_nothing_but_its_own_run(server: LiveServer) -> None:
    before = task_census()
    admin = server.stub()
    names = [f"P{i:02d}" for i in range(PARTICIPANTS)]
    name = await create_dialogue(admin, [echo(n) for n in names])
    text = "x" * INPUT_BYTES
    call = server.stub().RunSession(pb.RunSessionRequest(dialogue=name, text=text))
    started = await next_event(call)
    assert started.HasField("started")
    session = server.engine.sessions[name.removeprefix("dialogues/")]
    outbox = session._outbox
    # At most one event per participant, one for a moderator, started, completed, end.
    bound = PARTICIPANTS + 4

    # The reader reads nothing more. The run goes on regardless: every reply is stored
    # and the dialogue is released while the stream is still unread.
    await wait_until_runnable_async(admin, name)
    dialogue = await admin.GetDialogue(pb.GetDialogueRequest(name=name))
    # The input, a reply from everyone, and the probe's own input.
    assert dialogue.message_count == 1 + PARTICIPANTS + 1
    assert len(outbox) <= bound

    # Now read, one event at a time, checking the bound before each read.
    events = [started]
    while True:
        assert len(outbox) <= bound
        event = await next_or_end(call)
        if event is None:
            break
        events.append(event)
    assert await call.code() == grpc.StatusCode.OK
    assert kinds(events) == ["started", *["turn_completed"] * PARTICIPANTS, "completed"]
    expected = echo_reply("X", ("System", text)).removeprefix("X:")
    for event in events[1:-1]:
        turn = event.turn_completed
        assert turn.content == f"{turn.speaker.name}:{expected}"
    assert sorted(e.turn_completed.speaker.name for e in events[1:-1]) == names
    assert events[-1].completed.turn_count == PARTICIPANTS
    assert len(outbox) == 0

    await server.close_channels()
    await assert_no_task_leaked(before)


async def next_or_end(call: object) -> pb.SessionEvent | None:
    assert isinstance(call, grpc.aio.UnaryStreamCall)
    async with asyncio.timeout(WAIT_S):
        event = await call.read()
    # Anything else is grpc.aio.EOF: the stream has ended.
    return event if isinstance(event, pb.SessionEvent) else None


def subscriptions(feed: LocalFeed, dialogue_id: str) -> list[Subscription]:
    return list(feed._subscriptions.get(dialogue_id, ()))


async def test_a_paused_watcher_loses_no_message_and_its_backlog_stays_bounded(
    server: LiveServer,
) -> None:
    admin = server.stub()
    name = await create_dialogue(admin, [echo("Echo")])
    dialogue_id = name.removeprefix("dialogues/")
    feed = server.store.feed
    assert isinstance(feed, LocalFeed)

    watch = server.stub().WatchDialogue(pb.WatchDialogueRequest(dialogue=name))
    # Run once and read that first item, so the watch is known to be subscribed.
    await admin.Run(pb.RunSessionRequest(dialogue=name, text="first"))
    first = await next_watch_item(watch)
    assert first.message.seq == 1
    [subscription] = subscriptions(feed, dialogue_id)

    # The watcher stops reading while many large runs go by.
    for i in range(WATCHED_RUNS):
        text = f"{i}:" + "w" * WATCHED_INPUT_BYTES
        response = await admin.Run(pb.RunSessionRequest(dialogue=name, text=text))
        assert response.completed
        assert len(subscription._items) <= MAX_PENDING_EVENTS
    total = (await admin.GetDialogue(pb.GetDialogueRequest(name=name))).message_count
    assert total == 2 * (WATCHED_RUNS + 1)

    # Reading again, it gets every message, in order, without a gap: run events may
    # have been dropped for it, the log never is.
    seqs = [first.message.seq]
    while seqs[-1] < total:
        item = await next_watch_item(watch)
        assert len(subscription._items) <= MAX_PENDING_EVENTS
        if item.HasField("message"):
            seqs.append(item.message.seq)
    assert seqs == list(range(1, total + 1))
    watch.cancel()


async def next_watch_item(call: object) -> pb.WatchDialogueResponse:
    assert isinstance(call, grpc.aio.UnaryStreamCall)
    async with asyncio.timeout(WAIT_S):
        item = await call.read()
    assert isinstance(item, pb.WatchDialogueResponse), item
    return item
