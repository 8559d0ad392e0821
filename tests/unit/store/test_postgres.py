"""What only PostgreSQL does: several replicas (here: several stores in one process) on
one schema, the feed between them, retried appends, concurrent migrations, NOTIFY limits.

The conformance suite covers the `Store` contract itself; these tests run on the real
server, each in a fresh schema.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from parley.server.agents.registry import AgentRegistry
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.errors import RunInProgress, Unavailable
from parley.server.engine.events import (
    Event,
    RoutingDecision,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    TurnCompleted,
    TurnFailed,
)
from parley.server.engine.model import (
    RUN_END_METADATA_KEY,
    Dialogue,
    Message,
    MessageDraft,
    Moderated,
    Origin,
    Participant,
    Persona,
    Sequential,
    Speaker,
    SpeakerKind,
    Usage,
)
from parley.server.store import RunLease, RunStart, Store
from parley.server.store.feed import CancelMode, CancelRequested, FeedItem, LogGrew, RunEvent
from parley.server.store.postgres import (
    MAX_IDENTIFIER_BYTES,
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    TRUNCATED,
    PostgresStore,
    channel_for,
    feed_item,
    feed_payload,
    first_schema,
)

from tests.postgres import connect, fresh_schema, schema_url

T = TypeVar("T")
TTL = 30.0
# Bounds every wait for something another connection causes; never reached when it works.
WAIT_S = 30.0

Replicas = Callable[[], Awaitable[PostgresStore]]


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


@pytest.fixture
async def replica(schema: str) -> AsyncIterator[Replicas]:
    """Opens another store on the test's schema: another replica, as far as the database
    can tell. All are closed at teardown."""
    opened: list[PostgresStore] = []

    async def open_replica() -> PostgresStore:
        store = PostgresStore(schema_url(schema))
        await store.open()
        opened.append(store)
        return store

    yield open_replica
    for store in opened:
        await store.close()


def draft(turn: int, content: str = "hello") -> MessageDraft:
    return MessageDraft(turn, Speaker(SpeakerKind.USER, "Carol"), content, Origin.INCOMING)


async def begin(store: Store, dialogue_id: str, *, owner: str, ttl: float) -> RunLease:
    """Begins a run without input; only its lease."""
    return (await store.begin_run(dialogue_id, owner=owner, ttl=ttl)).lease


def echo(name: str, delay_ms: int = 0) -> Participant:
    return Participant(Persona(name), agent="echo", agent_options={"delay_ms": str(delay_ms)})


async def within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(WAIT_S):
        return await awaitable


async def eventually(condition: Callable[[], bool]) -> None:
    """Polls `condition` until it holds, for at most WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - the state is another object's, unannounced
            await asyncio.sleep(0.05)


async def next_item(items: AsyncIterator[FeedItem], kind: type[T]) -> T:
    """The next feed item of `kind`, skipping others."""
    while True:
        item = await within(anext(items))
        if isinstance(item, kind):
            return item


# --- replicas sharing one schema ------------------------------------------------------


async def test_replicas_opening_together_migrate_once(schema: str, replica: Replicas) -> None:
    await asyncio.gather(*(replica() for _ in range(3)))

    conn = await connect()
    try:
        versions = await conn.fetch(f'SELECT version FROM "{schema}".schema_version')
    finally:
        await conn.close()
    assert [row["version"] for row in versions] == [SCHEMA_VERSION]
    # And once more, on a database already up to date.
    await replica()


async def test_a_newer_schema_is_refused(schema: str, replica: Replicas) -> None:
    await replica()
    conn = await connect()
    try:
        await conn.execute(f'UPDATE "{schema}".schema_version SET version = version + 1')
    finally:
        await conn.close()

    store = PostgresStore(schema_url(schema))
    with pytest.raises(RuntimeError, match="schema version"):
        await store.open()


async def test_exactly_one_replica_begins_a_run(replica: Replicas) -> None:
    first, second = await replica(), await replica()
    await first.create_dialogue(Dialogue(id="d1"))

    results = await asyncio.gather(
        *(
            store.begin_run("d1", owner=f"{name}{i}", ttl=TTL)
            for i in range(4)
            for name, store in (("a", first), ("b", second))
        ),
        return_exceptions=True,
    )

    leases = [r.lease for r in results if isinstance(r, RunStart)]
    assert len(leases) == 1
    assert sum(isinstance(r, RunInProgress) for r in results) == 7
    # The winner's appends are fenced by its token on either replica.
    [message] = await second.append(leases[0], [draft(leases[0].turn)])
    assert message.seq == 1


async def test_an_expired_lease_passes_to_another_replica(replica: Replicas) -> None:
    first, second = await replica(), await replica()
    await first.create_dialogue(Dialogue(id="d1"))
    held = await begin(first, "d1", owner="a", ttl=0.2)

    lease = None
    async with asyncio.timeout(WAIT_S):
        while lease is None:
            try:
                lease = await begin(second, "d1", owner="b", ttl=TTL)
            except RunInProgress:
                await asyncio.sleep(0.05)

    assert lease.turn == held.turn + 1
    [notice] = await second.read_messages("d1")
    assert notice.metadata == {RUN_END_METADATA_KEY: "interrupted"}


async def test_concurrent_appends_from_replicas_keep_seqs_gap_free(replica: Replicas) -> None:
    stores = [await replica(), await replica()]
    ids = [f"d{i}" for i in range(10)]
    for dialogue_id in ids:
        await stores[0].create_dialogue(Dialogue(id=dialogue_id))

    async def run_turns(index: int, dialogue_id: str) -> None:
        for turn in range(3):
            store = stores[(index + turn) % 2]
            lease = await begin(store, dialogue_id, owner=f"r{turn % 2}", ttl=TTL)
            for i in range(3):
                await store.append(lease, [draft(lease.turn, f"m{i}"), draft(lease.turn)])
            await store.end_run(lease)

    await asyncio.gather(*(run_turns(i, d) for i, d in enumerate(ids)))

    for dialogue_id in ids:
        log = await stores[1].read_messages(dialogue_id)
        assert [m.seq for m in log] == list(range(1, 19))
        assert [m.turn for m in log] == [1] * 6 + [2] * 6 + [3] * 6


# --- the feed across replicas ---------------------------------------------------------


async def test_log_hints_cross_replicas(replica: Replicas) -> None:
    watcher, writer = await replica(), await replica()
    await writer.create_dialogue(Dialogue(id="d1"))
    lease = await begin(writer, "d1", owner="w", ttl=TTL)

    async with watcher.feed.subscribe("d1") as subscription:
        items = aiter(subscription)
        await writer.append(lease, [draft(lease.turn), draft(lease.turn)])
        assert await next_item(items, LogGrew) == LogGrew("d1", 2)
        await writer.append(lease, [draft(lease.turn)])
        assert await next_item(items, LogGrew) == LogGrew("d1", 3)


async def test_run_events_and_cancellations_cross_replicas_once(replica: Replicas) -> None:
    here, there = await replica(), await replica()
    started = SessionEvent(
        "d1",
        1,
        1,
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        SessionStarted(("A",), Sequential(), (1,)),
    )
    completed = replace(started, sequence=2, event=SessionCompleted(1, 0))
    cancel = CancelRequested("d1", 1, CancelMode.AFTER_TURN)

    async with here.feed.subscribe("d1") as one, here.feed.subscribe(None) as cancels:
        one_items, cancel_items = aiter(one), aiter(cancels)
        # Published here: heard here at once, and its echo from the channel is skipped,
        # so the item published there next is the very next one heard.
        await here.feed.publish(RunEvent(started))
        await there.feed.publish(RunEvent(completed))
        await there.feed.publish(cancel)

        assert [await within(anext(one_items)) for _ in range(3)] == [
            RunEvent(started),
            RunEvent(completed),
            cancel,
        ]
        # Every dialogue's cancel requests, and nothing else.
        assert await within(anext(cancel_items)) == cancel


async def test_a_dropped_feed_connection_reconnects_and_catches_up(replica: Replicas) -> None:
    watcher, writer = await replica(), await replica()
    await writer.create_dialogue(Dialogue(id="d1"))
    lease = await begin(writer, "d1", owner="w", ttl=TTL)
    listener = watcher.feed._listener
    assert listener is not None
    old_pid = listener.get_server_pid()

    async with watcher.feed.subscribe("d1") as subscription:
        items = aiter(subscription)
        conn = await connect()
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await conn.close()
        # Appended while the watcher may not be listening: the catch-up announces it.
        await writer.append(lease, [draft(lease.turn)])
        assert await next_item(items, LogGrew) == LogGrew("d1", 1)

        await eventually(
            lambda: (
                (current := watcher.feed._listener) is not None
                and not current.is_closed()
                and current.get_server_pid() != old_pid
            )
        )
        await writer.append(lease, [draft(lease.turn)])
        assert await next_item(items, LogGrew) == LogGrew("d1", 2)


async def test_engines_on_two_replicas_watch_and_cancel_each_others_runs(
    replica: Replicas,
) -> None:
    engines = [Engine(await replica(), AgentRegistry.with_builtin(), lease_ttl=TTL) for _ in "ab"]
    here, there = engines
    for engine in engines:
        await engine.start()
    try:
        await here.create_dialogue(
            Dialogue(id="d1", participants=(echo("Ann"), echo("Slow", delay_ms=600_000)))
        )
        user_text = RunInput(text="hi", speaker=Speaker(SpeakerKind.USER, "Carol"))
        watch = here.watch("d1", after_seq=0)
        try:
            async with await there.open_run("d1", user_text) as session:
                seen: list[Message | SessionEvent] = []
                while not any(isinstance(i, Message) and i.speaker.name == "Ann" for i in seen):
                    seen.append(await within(anext(watch)))
                # Ann's reply came from the other replica's run, live; now stop it from here.
                assert await here.cancel_run("d1", CancelMode.IMMEDIATE) == session.turn
                async with asyncio.timeout(WAIT_S):
                    events = [envelope.event async for envelope in session]
                assert isinstance(events[-1], SessionCompleted)
            while not any(
                isinstance(i, SessionEvent) and isinstance(i.event, SessionCompleted) for i in seen
            ):
                seen.append(await within(anext(watch)))
        finally:
            await watch.aclose()
        log = await here.store.read_messages("d1")
        assert [m.seq for m in log] == list(range(1, len(log) + 1))
        assert log[-1].metadata == {RUN_END_METADATA_KEY: "cancelled"}
        assert isinstance(seen[0], Message)
        assert seen[0].content == "hi"
    finally:
        for engine in engines:
            await engine.close()


# --- retries ----------------------------------------------------------------------------


def fail_once(store: PostgresStore, *, after_commit: bool) -> list[int]:
    """Makes the store's next attempt fail as a dropped connection would: before the
    work ran, or after it committed (the reply was lost). Returns the attempt counter."""
    original = store._once
    calls: list[int] = []

    async def flaky(work: Any, isolation: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            if after_commit:
                await original(work, isolation)
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection lost")
        return await original(work, isolation)

    store._once = flaky  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("after_commit", [False, True], ids=["before", "after-commit"])
async def test_a_retried_append_is_stored_once(replica: Replicas, after_commit: bool) -> None:
    store = await replica()
    await store.create_dialogue(Dialogue(id="d1", participants=(echo("A"),)))
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    await store.append(lease, [draft(lease.turn, "first")])
    calls = fail_once(store, after_commit=after_commit)

    appended = await store.append(lease, [draft(lease.turn, "x"), draft(lease.turn, "y")], {"A": 3})

    assert len(calls) == 2
    log = await store.read_messages("d1")
    assert [m.content for m in log] == ["first", "x", "y"]
    assert appended == log[1:]
    dialogue = await store.get_dialogue("d1")
    assert (dialogue.message_count, dialogue.participants[0].cursor) == (3, 3)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before", "after-commit"])
async def test_a_retried_append_that_releases_the_lease_is_stored_once(
    replica: Replicas, after_commit: bool
) -> None:
    store = await replica()
    await store.create_dialogue(Dialogue(id="d1", participants=(echo("A"),)))
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    calls = fail_once(store, after_commit=after_commit)

    appended = await store.append(lease, [draft(lease.turn, "x")], {"A": 1}, end_run=True)

    assert len(calls) == 2
    log = await store.read_messages("d1")
    assert [m.content for m in log] == ["x"]
    assert appended == log
    assert (await begin(store, "d1", owner="next", ttl=TTL)).turn == lease.turn + 1


async def test_an_operation_unsafe_to_repeat_fails_unavailable(replica: Replicas) -> None:
    store = await replica()
    calls = fail_once(store, after_commit=True)

    with pytest.raises(Unavailable) as raised:
        await store.create_dialogue(Dialogue(id="d1"))

    assert raised.value.reason == "STORE_UNAVAILABLE"
    assert len(calls) == 1
    # It did commit: the client's retry learns so.
    assert (await store.get_dialogue("d1")).id == "d1"


async def test_an_unreachable_database_fails_to_open() -> None:
    # Port 1 on loopback: nothing listens there.
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")

    with pytest.raises(ConnectionRefusedError):
        await store.open()


async def test_a_closed_store_refuses_work(replica: Replicas) -> None:
    store = await replica()
    await store.close()

    with pytest.raises(RuntimeError, match="not open"):
        await store.get_dialogue("d1")


# --- retention --------------------------------------------------------------------------


async def test_expiry_works_through_a_large_backlog(replica: Replicas) -> None:
    store = await replica()
    old = datetime(2000, 1, 1, tzinfo=UTC)
    for i in range(250):
        await store.create_dialogue(Dialogue(id=f"old{i:03}", create_time=old, update_time=old))
    await store.create_dialogue(Dialogue(id="recent"))

    assert await store.expire_dialogues(old + timedelta(days=1)) == 250

    assert [d.id for d in await store.list_dialogues(after_id="", limit=10)] == ["recent"]


# --- schemas and channels ------------------------------------------------------------


@pytest.mark.parametrize(
    ("search_path", "schema"),
    [
        ("parley", "parley"),
        ("Parley_X, public", "parley_x"),
        ('"Mixed ""Case""", public', 'Mixed "Case"'),
        ('"$user", public', None),
        ("  tenant_1 ,public", "tenant_1"),
        ("", None),
    ],
)
def test_first_schema_reads_search_path_like_postgresql(
    search_path: str, schema: str | None
) -> None:
    assert first_schema(search_path) == schema


def test_channels_are_per_schema_and_fit_an_identifier() -> None:
    long = "s" * 200
    assert channel_for("a") != channel_for("b")
    assert channel_for(long) != channel_for(long + "t")
    assert len(channel_for(long).encode()) <= MAX_IDENTIFIER_BYTES


# --- NOTIFY payloads --------------------------------------------------------------------

SPEAKER = Speaker(SpeakerKind.AGENT, "Ann", "planner", "🦊")
EVENTS: list[Event] = [
    SessionStarted(("Ann", "Bob"), Moderated("mod", {"k": "v"}), (3, 4)),
    RoutingDecision(Sequential(("Bob", "Ann")), '{"sequential": ...}'),
    TurnCompleted(SPEAKER, "a reply ✓", 2, 7, 0, timedelta(milliseconds=1234), Usage(5, 9)),
    TurnFailed(SPEAKER, 1, "AGENT_TIMEOUT", "no reply within 1 s", True, 3),
    SessionCompleted(2, 1),
]


def envelope(event: Event) -> SessionEvent:
    return SessionEvent("d1", 2, 5, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), event)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_run_events_cross_as_they_were(event: Event) -> None:
    item = RunEvent(envelope(event))
    payload = feed_payload(item, "there")
    assert payload is not None

    assert feed_item(payload, "here") == item
    assert feed_item(payload, "there") is None  # a replica skips its own


@pytest.mark.parametrize(
    "item", [LogGrew("d1", 42), CancelRequested("d1", 3, CancelMode.IMMEDIATE)], ids=repr
)
def test_log_hints_and_cancellations_cross_as_they_were(item: FeedItem) -> None:
    payload = feed_payload(item, "there")
    assert payload is not None

    assert feed_item(payload, "here") == item


@pytest.mark.parametrize("text", ["x" * 20_000, "é" * 9_000, "\x01" * 5_000, "🦊" * 3_000])
def test_long_event_texts_are_cut_to_fit_notify(text: str) -> None:
    failed = TurnFailed(SPEAKER, 0, "AGENT_ERROR", text, False, 1)

    payload = feed_payload(RunEvent(envelope(failed)), "there")

    assert payload is not None
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    item = feed_item(payload, "here")
    assert isinstance(item, RunEvent)
    assert isinstance(item.event.event, TurnFailed)
    message = item.event.event.message
    assert message.endswith(TRUNCATED)
    assert text.startswith(message.removesuffix(TRUNCATED))
    assert len(message) > 1_000


def test_an_event_that_cannot_fit_is_not_sent() -> None:
    started = SessionStarted(tuple(f"participant-{i}" for i in range(2_000)), Sequential(), ())

    assert feed_payload(RunEvent(envelope(started)), "there") is None


def test_an_unreadable_payload_is_an_error_not_an_item() -> None:
    with pytest.raises(ValueError, match="unknown feed item"):
        feed_item(json.dumps({"origin": "x", "gossip": {}}), "here")
