"""Every store honours the same `Store` contract; SQLite also keeps it across restarts.

The `postgres` stores run on the real PostgreSQL server, each test in a fresh schema.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from parley.server.engine.errors import AlreadyExists, LeaseLost, NotFound, RunInProgress
from parley.server.engine.model import (
    RUN_END_METADATA_KEY,
    Attachment,
    Capability,
    CustomTalkStyle,
    Dialogue,
    DialogueContext,
    Fresh,
    Message,
    MessageDraft,
    MessageType,
    Moderated,
    Origin,
    Participant,
    Persona,
    Range,
    ReactionStrategy,
    Recent,
    Sequential,
    Speaker,
    SpeakerKind,
    VisualIdentity,
)
from parley.server.store import MemoryStore, RunLease, RunStart, SQLiteStore, Store, records
from parley.server.store.feed import CancelMode, LogGrew
from parley.server.store.postgres import PostgresStore
from parley.server.store.sqlite import (
    MIGRATIONS,
    SCHEMA_VERSION,
    apply_statement,
    select_messages_sql,
)

from tests.postgres import fresh_schema, schema_url

TTL = 30.0


class FakeClock:
    """A lease clock tests move by hand, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clocked(clock: FakeClock | None) -> dict[str, FakeClock]:
    """Constructor arguments: the fake clock, or none for the store's real default."""
    return {} if clock is None else {"clock": clock}


MakeStore = Callable[[FakeClock | None], Store]

FACTORIES: dict[str, Callable[[Path, FakeClock | None], Store]] = {
    "memory": lambda _dir, clock: MemoryStore(**clocked(clock)),
    "sqlite-memory": lambda _dir, clock: SQLiteStore(":memory:", **clocked(clock)),
    "sqlite-file": lambda dir, clock: SQLiteStore(str(dir / "parley.db"), **clocked(clock)),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_schema() as schema:
        yield schema_url(schema)


@pytest.fixture(params=[*sorted(FACTORIES), "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return lambda clock: PostgresStore(url, **clocked(clock))
    factory = FACTORIES[request.param]
    return lambda clock: factory(tmp_path, clock)


@pytest.fixture
async def store(make_store: MakeStore, clock: FakeClock) -> AsyncIterator[Store]:
    opened = make_store(clock)
    await opened.open()
    yield opened
    await opened.close()


# --- sample values --------------------------------------------------------------------


def participant(name: str, **changes: object) -> Participant:
    persona = Persona(
        name=name,
        role=f"{name}'s role",
        background="grew up in the test suite",
        communication_style="terse",
        capabilities=(Capability("search", "finds things"), Capability("sum")),
        visual_identity=VisualIdentity(icon="🦉", tagline="wise", color="#112233"),
    )
    return replace(Participant(persona=persona, agent="echo"), **changes)  # type: ignore[arg-type]


def rich_dialogue(dialogue_id: str = "d1") -> Dialogue:
    """A dialogue using a value of every kind the store keeps."""
    return Dialogue(
        id=dialogue_id,
        display_name="Planning meeting",
        participants=(
            participant("Alice", agent_options={"temperature": "0.2"}),
            participant("Bob", joining_strategy=Recent(3), cursor=None),
            participant("太郎", joining_strategy=Range(2), cursor=7),
        ),
        execution_model=Moderated(agent="moderator", agent_options={"model": "small"}),
        context=DialogueContext(
            talk_style=CustomTalkStyle("standup", "short", ("be brief",), ("report blockers",)),
            environment="a test",
            additional_context=("first", "second"),
            policy={"Alice": ("search",), "Bob": ()},
        ),
        reaction_strategy=ReactionStrategy.USER_ONLY,
        latest_turn=0,
    )


def draft(turn: int, content: str = "hello", **changes: object) -> MessageDraft:
    base = MessageDraft(
        turn=turn,
        speaker=Speaker(SpeakerKind.USER, "Carol", "lead"),
        content=content,
        origin=Origin.INCOMING,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def begin(store: Store, dialogue_id: str, *, owner: str, ttl: float) -> RunLease:
    """Begins a run without input; only its lease."""
    return (await store.begin_run(dialogue_id, owner=owner, ttl=ttl)).lease


async def run_turn(store: Store, dialogue_id: str, count: int) -> RunLease:
    """Opens a turn, appends `count` messages to it and releases the lease."""
    lease = await begin(store, dialogue_id, owner="test", ttl=TTL)
    await store.append(lease, [draft(lease.turn, f"t{lease.turn}m{i}") for i in range(count)])
    await store.end_run(lease)
    return lease


# --- dialogues ------------------------------------------------------------------------


async def test_create_then_get_returns_the_same_dialogue(store: Store) -> None:
    dialogue = rich_dialogue()

    created = await store.create_dialogue(dialogue)

    assert created == dialogue
    assert await store.get_dialogue("d1") == dialogue
    assert created.create_time.tzinfo is not None


async def test_create_starts_with_an_empty_log(store: Store) -> None:
    created = await store.create_dialogue(replace(rich_dialogue(), message_count=12))

    assert created.message_count == 0
    assert await store.read_messages("d1") == []


async def test_create_twice_is_already_exists(store: Store) -> None:
    await store.create_dialogue(rich_dialogue())

    with pytest.raises(AlreadyExists) as raised:
        await store.create_dialogue(rich_dialogue())
    assert raised.value.reason == "DIALOGUE_ALREADY_EXISTS"


async def test_create_with_duplicate_participant_names_is_refused(store: Store) -> None:
    dialogue = Dialogue(id="d1", participants=(participant("Alice"), participant("Alice")))

    with pytest.raises(AlreadyExists) as raised:
        await store.create_dialogue(dialogue)
    assert raised.value.reason == "PARTICIPANT_ALREADY_EXISTS"
    with pytest.raises(NotFound):
        await store.get_dialogue("d1")


async def test_get_unknown_dialogue_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as raised:
        await store.get_dialogue("nope")
    assert raised.value.reason == "DIALOGUE_NOT_FOUND"


async def test_list_pages_through_dialogues_in_id_order(store: Store) -> None:
    for dialogue_id in ["c", "a", "d", "b"]:
        await store.create_dialogue(rich_dialogue(dialogue_id))

    first = await store.list_dialogues(after_id="", limit=3)
    second = await store.list_dialogues(after_id=first[-1].id, limit=3)

    assert [d.id for d in first] == ["a", "b", "c"]
    assert [d.id for d in second] == ["d"]
    assert await store.list_dialogues(after_id="d", limit=3) == []
    assert first[1] == await store.get_dialogue("b")


async def test_update_replaces_settings_only(store: Store) -> None:
    original = await store.create_dialogue(rich_dialogue())
    await run_turn(store, "d1", 2)
    changed = replace(
        original,
        display_name="renamed",
        execution_model=Sequential(("Bob", "Alice")),
        context=None,
        reaction_strategy=ReactionStrategy.ALWAYS,
        participants=(),
        latest_turn=99,
    )

    updated = await store.update_dialogue(changed)

    assert updated.display_name == "renamed"
    assert updated.execution_model == Sequential(("Bob", "Alice"))
    assert updated.context is None
    assert updated.reaction_strategy is ReactionStrategy.ALWAYS
    assert updated.participants == original.participants
    assert (updated.latest_turn, updated.message_count) == (1, 2)
    assert updated.update_time >= original.update_time
    assert await store.get_dialogue("d1") == updated


async def test_update_unknown_dialogue_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_dialogue(rich_dialogue())


async def test_delete_removes_the_dialogue_and_its_log(store: Store) -> None:
    await store.create_dialogue(rich_dialogue())
    await run_turn(store, "d1", 3)

    await store.delete_dialogue("d1")

    with pytest.raises(NotFound):
        await store.get_dialogue("d1")
    with pytest.raises(NotFound):
        await store.read_messages("d1")
    recreated = await store.create_dialogue(rich_dialogue())
    assert recreated.message_count == 0
    assert await store.read_messages("d1") == []


async def test_delete_unknown_dialogue_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as raised:
        await store.delete_dialogue("nope")
    assert raised.value.reason == "DIALOGUE_NOT_FOUND"


async def test_expiry_deletes_the_dialogues_untouched_since(store: Store) -> None:
    old = datetime(2000, 1, 1, tzinfo=UTC)
    for dialogue_id in ("old", "old-but-active", "old-but-renamed"):
        await store.create_dialogue(replace(rich_dialogue(dialogue_id), update_time=old))
    await run_turn(store, "old", 2)
    await store.delete_dialogue("old")
    await store.create_dialogue(replace(rich_dialogue("old"), update_time=old))
    await run_turn(store, "old-but-active", 1)  # an append touches the dialogue
    renamed = await store.get_dialogue("old-but-renamed")
    await store.update_dialogue(replace(renamed, display_name="renamed"))
    await store.create_dialogue(rich_dialogue("new"))

    assert await store.expire_dialogues(datetime(2001, 1, 1, tzinfo=UTC)) == 1

    remaining = await store.list_dialogues(after_id="", limit=10)
    assert [d.id for d in remaining] == ["new", "old-but-active", "old-but-renamed"]
    with pytest.raises(NotFound):
        await store.read_messages("old")
    assert await store.expire_dialogues(datetime(2001, 1, 1, tzinfo=UTC)) == 0


async def test_expiry_takes_its_whole_log_with_a_dialogue(store: Store) -> None:
    await store.create_dialogue(rich_dialogue())
    await run_turn(store, "d1", 3)

    assert await store.expire_dialogues(datetime.now(UTC) + timedelta(days=1)) == 1

    with pytest.raises(NotFound):
        await store.get_dialogue("d1")
    recreated = await store.create_dialogue(rich_dialogue())
    assert await store.read_messages("d1") == []
    assert recreated.message_count == 0


# --- participants ---------------------------------------------------------------------


async def test_participants_keep_their_added_order(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))

    await store.add_participant("d1", participant("B"))
    dialogue = await store.add_participant("d1", participant("C", joining_strategy=Fresh()))

    assert [p.name for p in dialogue.participants] == ["A", "B", "C"]
    assert dialogue.participants[2].joining_strategy == Fresh()
    assert await store.get_dialogue("d1") == dialogue


async def test_removing_keeps_the_others_in_order_and_a_readded_name_goes_last(
    store: Store,
) -> None:
    names = ("A", "B", "C")
    await store.create_dialogue(Dialogue(id="d1", participants=tuple(map(participant, names))))

    removed = await store.remove_participant("d1", "C")
    await store.add_participant("d1", participant("D"))
    readded = await store.add_participant("d1", participant("C"))
    after_b = await store.remove_participant("d1", "B")

    assert [p.name for p in removed.participants] == ["A", "B"]
    assert [p.name for p in readded.participants] == ["A", "B", "D", "C"]
    assert [p.name for p in after_b.participants] == ["A", "D", "C"]


async def test_adding_a_present_name_is_already_exists(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))

    with pytest.raises(AlreadyExists) as raised:
        await store.add_participant("d1", participant("A"))
    assert raised.value.reason == "PARTICIPANT_ALREADY_EXISTS"


async def test_names_are_case_sensitive(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("ann"),)))

    dialogue = await store.add_participant("d1", participant("Ann"))

    assert [p.name for p in dialogue.participants] == ["ann", "Ann"]


async def test_removing_an_absent_name_is_not_found(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))

    with pytest.raises(NotFound) as raised:
        await store.remove_participant("d1", "ghost")
    assert raised.value.reason == "PARTICIPANT_NOT_FOUND"


async def test_participant_changes_on_an_unknown_dialogue_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as added:
        await store.add_participant("nope", participant("A"))
    with pytest.raises(NotFound) as removed:
        await store.remove_participant("nope", "A")
    assert added.value.reason == removed.value.reason == "DIALOGUE_NOT_FOUND"


async def test_removing_a_participant_keeps_its_messages(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    lease = await begin(store, "d1", owner="test", ttl=TTL)
    await store.append(lease, [draft(1, speaker=participant("A").persona.speaker())])

    await store.remove_participant("d1", "A")

    [message] = await store.read_messages("d1")
    assert message.speaker.name == "A"


# --- runs and leases ------------------------------------------------------------------


async def test_begin_run_opens_the_next_turn(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))

    first = await begin(store, "d1", owner="me", ttl=TTL)
    await store.end_run(first)
    second = await begin(store, "d1", owner="me", ttl=TTL)

    assert (first.turn, second.turn) == (1, 2)
    assert second.token > first.token
    assert (second.dialogue_id, second.owner) == ("d1", "me")
    assert (await store.get_dialogue("d1")).latest_turn == 2


async def test_begin_run_sees_the_participants_as_they_are_now(store: Store) -> None:
    # Stores may keep participants between runs; what begin_run returns is current all
    # the same: moved cursors, added and removed participants, a dialogue made anew.
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("Alice"),)))
    lease = await begin(store, "d1", owner="test", ttl=TTL)
    await store.append(lease, [draft(lease.turn)], {"Alice": 1}, end_run=True)
    start = await store.begin_run("d1", owner="test", ttl=TTL)
    assert [(p.name, p.cursor) for p in start.dialogue.participants] == [("Alice", 1)]
    await store.end_run(start.lease)

    await store.add_participant("d1", participant("Bob", cursor=None))
    start = await store.begin_run("d1", owner="test", ttl=TTL)
    assert [(p.name, p.cursor) for p in start.dialogue.participants] == [
        ("Alice", 1),
        ("Bob", None),
    ]
    await store.end_run(start.lease)

    # As many participants as before, not the same ones.
    await store.remove_participant("d1", "Alice")
    await store.add_participant("d1", participant("Carol", agent_options={"k": "v"}))
    start = await store.begin_run("d1", owner="test", ttl=TTL)
    assert [(p.name, p.agent_options) for p in start.dialogue.participants] == [
        ("Bob", {}),
        ("Carol", {"k": "v"}),
    ]
    await store.end_run(start.lease)

    await store.delete_dialogue("d1")
    await store.create_dialogue(rich_dialogue("d1"))
    start = await store.begin_run("d1", owner="test", ttl=TTL)
    assert start.dialogue.participants == rich_dialogue("d1").participants
    await store.end_run(start.lease)


async def test_begin_run_on_an_unknown_dialogue_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await begin(store, "nope", owner="me", ttl=TTL)


async def test_a_second_run_is_refused_while_the_lease_is_held(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    await begin(store, "d1", owner="first", ttl=TTL)

    with pytest.raises(RunInProgress) as raised:
        await begin(store, "d1", owner="second", ttl=TTL)
    assert raised.value.reason == "RUN_IN_PROGRESS"
    assert "d1" in raised.value.message
    assert (await store.get_dialogue("d1")).latest_turn == 1


async def test_only_one_of_many_concurrent_runs_begins(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))

    results = await asyncio.gather(
        *(store.begin_run("d1", owner=f"o{i}", ttl=TTL) for i in range(8)),
        return_exceptions=True,
    )

    assert sum(isinstance(r, RunStart) for r in results) == 1
    assert sum(isinstance(r, RunInProgress) for r in results) == 7


async def test_an_expired_lease_is_taken_over_and_fenced_off(
    store: Store, clock: FakeClock
) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    stale = await begin(store, "d1", owner="slow", ttl=TTL)
    clock.advance(TTL + 1)

    fresh = await begin(store, "d1", owner="fast", ttl=TTL)

    assert fresh.turn == stale.turn + 1
    assert fresh.token > stale.token
    with pytest.raises(LeaseLost) as raised:
        await store.append(stale, [draft(stale.turn)], {"A": 1})
    assert raised.value.reason == "LEASE_LOST"
    with pytest.raises(LeaseLost):
        await store.renew_run(stale, ttl=TTL)
    await store.end_run(stale)  # a no-op: it must not release the new lease
    with pytest.raises(RunInProgress):
        await begin(store, "d1", owner="third", ttl=TTL)
    dialogue = await store.get_dialogue("d1")
    assert dialogue.participants[0].cursor == 0
    assert dialogue.latest_turn == fresh.turn
    # The takeover marks the dead holder's turn as interrupted, in the log.
    (notice,) = await store.read_messages("d1")
    assert (notice.turn, notice.type, notice.speaker) == (
        stale.turn,
        MessageType.NOTIFICATION,
        Speaker.system(),
    )
    assert notice.metadata == {RUN_END_METADATA_KEY: "interrupted"}


async def test_cancel_requests_reach_the_lease_holder_and_end_with_the_run(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    with pytest.raises(NotFound) as raised:
        await store.request_cancel("d1", CancelMode.IMMEDIATE)
    assert raised.value.reason == "NO_RUN_IN_PROGRESS"
    lease = await begin(store, "d1", owner="o", ttl=TTL)
    assert await store.renew_run(lease, ttl=TTL) is None
    assert await store.request_cancel("d1", CancelMode.AFTER_TURN) == lease.turn
    assert await store.renew_run(lease, ttl=TTL) is CancelMode.AFTER_TURN
    await store.end_run(lease)
    second = await begin(store, "d1", owner="o", ttl=TTL)
    assert await store.renew_run(second, ttl=TTL) is None


async def test_appends_announce_the_new_head_on_the_feed(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="o", ttl=TTL)
    async with store.feed.subscribe("d1") as subscription:
        await store.append(lease, [draft(lease.turn), draft(lease.turn)])
        items = aiter(subscription)
        assert await anext(items) == LogGrew("d1", 2)


async def test_an_expired_lease_not_taken_over_still_appends(
    store: Store, clock: FakeClock
) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="slow", ttl=TTL)
    clock.advance(TTL + 1)

    await store.renew_run(lease, ttl=TTL)
    [message] = await store.append(lease, [draft(lease.turn)])

    assert message.seq == 1


async def test_renewing_pushes_the_expiry_back(store: Store, clock: FakeClock) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    clock.advance(TTL - 1)

    await store.renew_run(lease, ttl=TTL)
    clock.advance(TTL - 1)

    with pytest.raises(RunInProgress):
        await begin(store, "d1", owner="other", ttl=TTL)
    clock.advance(2)
    assert (await begin(store, "d1", owner="other", ttl=TTL)).turn == 2


async def test_expiry_on_the_real_clock(make_store: MakeStore) -> None:
    store = make_store(None)
    await store.open()
    try:
        await store.create_dialogue(Dialogue(id="d1"))
        await begin(store, "d1", owner="short", ttl=0.05)
        with pytest.raises(RunInProgress):
            await begin(store, "d1", owner="next", ttl=TTL)
        await asyncio.sleep(0.2)  # four times the ttl: surely expired

        lease = await begin(store, "d1", owner="next", ttl=TTL)

        assert lease.turn == 2
    finally:
        await store.close()


async def test_a_released_lease_cannot_append_or_renew(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    await store.end_run(lease)

    with pytest.raises(LeaseLost):
        await store.append(lease, [draft(lease.turn)])
    with pytest.raises(LeaseLost):
        await store.renew_run(lease, ttl=TTL)
    await store.end_run(lease)  # releasing twice is harmless


async def test_the_last_append_of_a_run_may_release_its_lease(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    appended = await store.append(lease, [draft(lease.turn, "last")], {"A": 1}, end_run=True)

    assert [m.content for m in await store.read_messages("d1")] == ["last"]
    assert appended[0].seq == 1
    assert (await store.get_dialogue("d1")).participants[0].cursor == 1
    with pytest.raises(LeaseLost):
        await store.append(lease, [draft(lease.turn)])
    with pytest.raises(LeaseLost):
        await store.renew_run(lease, ttl=TTL)
    with pytest.raises(NotFound):  # no run holds the dialogue any more
        await store.request_cancel("d1", CancelMode.IMMEDIATE)
    await store.end_run(lease)  # and releasing again is harmless
    following = await begin(store, "d1", owner="other", ttl=TTL)
    assert following.turn == lease.turn + 1


async def test_a_lease_on_a_deleted_dialogue_is_lost(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    await store.delete_dialogue("d1")

    with pytest.raises(LeaseLost):
        await store.append(lease, [draft(lease.turn)])
    await store.end_run(lease)


async def test_a_stale_lease_never_matches_a_recreated_dialogue(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    stale = await begin(store, "d1", owner="old", ttl=TTL)
    await store.delete_dialogue("d1")
    await store.create_dialogue(Dialogue(id="d1"))

    current = await begin(store, "d1", owner="new", ttl=TTL)

    assert current.token != stale.token
    with pytest.raises(LeaseLost):
        await store.append(stale, [draft(stale.turn)])
    await store.end_run(stale)
    with pytest.raises(RunInProgress):
        await begin(store, "d1", owner="third", ttl=TTL)


@pytest.mark.parametrize("removal", ["delete", "expire"])
async def test_no_lease_of_a_recreated_dialogue_repeats_a_token_of_the_old_one(
    store: Store, removal: str
) -> None:
    # Also when the old dialogue granted more leases than the new one has so far, and
    # when other dialogues come and go in between.
    await store.create_dialogue(Dialogue(id="d1"))
    await store.create_dialogue(Dialogue(id="other"))
    old = [await run_turn(store, "d1", 1) for _ in range(3)]
    await run_turn(store, "other", 1)
    if removal == "delete":
        await store.delete_dialogue("d1")
    else:
        assert await store.expire_dialogues(datetime.now(UTC) + timedelta(days=1)) == 2
    await store.create_dialogue(Dialogue(id="d1"))

    new = [await run_turn(store, "d1", 1) for _ in range(4)]

    assert not {lease.token for lease in old} & {lease.token for lease in new}
    assert [lease.token for lease in new] == sorted({lease.token for lease in new})


# --- beginning a run with its input ---------------------------------------------------


async def test_begin_run_stores_the_inputs_as_the_new_turn(store: Store) -> None:
    participants = (participant("A"), participant("B", cursor=None), participant("C"))
    await store.create_dialogue(Dialogue(id="d1", participants=participants))
    await run_turn(store, "d1", 2)
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    await store.append(lease, [], {"A": 2})
    await store.end_run(lease)
    inputs = [draft(0, "first"), draft(99, "second", metadata={"k": "v"})]

    start = await store.begin_run("d1", owner="me", ttl=TTL, inputs=inputs)

    assert (start.lease.dialogue_id, start.lease.turn, start.lease.owner) == ("d1", 3, "me")
    assert start.lease.token > lease.token
    assert [(m.seq, m.turn, m.content) for m in start.inputs] == [
        (3, 3, "first"),
        (4, 3, "second"),
    ]
    assert start.inputs[1].metadata == {"k": "v"}
    assert (await store.read_messages("d1"))[2:] == start.inputs
    assert (start.dialogue.latest_turn, start.dialogue.message_count) == (3, 4)
    assert [(p.name, p.cursor) for p in start.dialogue.participants] == [
        ("A", 2),
        ("B", None),
        ("C", 0),
    ]
    assert start.dialogue == await store.get_dialogue("d1")
    assert start.dialogue.update_time == start.inputs[-1].create_time
    # The lease fences appends as one from a plain begin_run does.
    [reply] = await store.append(start.lease, [draft(start.lease.turn, "reply")])
    assert reply.seq == 5


async def test_begin_run_without_inputs_returns_the_dialogue_of_the_new_turn(
    store: Store,
) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    await run_turn(store, "d1", 1)

    start = await store.begin_run("d1", owner="me", ttl=TTL)

    assert start.inputs == []
    assert (start.lease.turn, start.dialogue.latest_turn, start.dialogue.message_count) == (
        2,
        2,
        1,
    )
    assert start.dialogue == await store.get_dialogue("d1")


async def test_a_check_receives_the_dialogue_and_its_error_begins_nothing(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    await run_turn(store, "d1", 2)
    before = await store.get_dialogue("d1")
    seen: list[Dialogue] = []
    # An OSError, which a store could take for a failed connection: it still comes out
    # as it went in.
    refusal = OSError("refused by the check")

    def refuse(dialogue: Dialogue) -> None:
        seen.append(dialogue)
        raise refusal

    async with store.feed.subscribe("d1") as subscription:
        with pytest.raises(OSError, match="refused by the check") as raised:
            await store.begin_run("d1", owner="me", ttl=TTL, inputs=[draft(0)], check=refuse)
        assert raised.value is refusal
        assert seen == [before]
        assert await store.get_dialogue("d1") == before
        assert len(await store.read_messages("d1")) == 2

        # No lease was taken and no turn used: the next run begins at once.
        start = await store.begin_run("d1", owner="other", ttl=TTL, inputs=[draft(0, "x")])
        assert start.lease.turn == before.latest_turn + 1
        assert [m.seq for m in start.inputs] == [3]
        # Nothing was announced for the refused call.
        assert await anext(aiter(subscription)) == LogGrew("d1", 3)


async def test_a_check_that_passes_lets_the_run_begin(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    seen: list[Dialogue] = []

    start = await store.begin_run("d1", owner="me", ttl=TTL, inputs=[draft(0)], check=seen.append)

    assert [d.latest_turn for d in seen] == [0]
    assert [p.name for p in seen[0].participants] == ["A"]
    assert [(m.seq, m.turn) for m in start.inputs] == [(1, 1)]


async def test_begin_run_announces_its_inputs_on_the_feed(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    async with store.feed.subscribe("d1") as subscription:
        await store.begin_run("d1", owner="me", ttl=TTL, inputs=[draft(0), draft(0)])
        assert await anext(aiter(subscription)) == LogGrew("d1", 2)


async def test_a_takeover_with_inputs_stores_the_notice_then_the_inputs(
    store: Store, clock: FakeClock
) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    stale = await begin(store, "d1", owner="slow", ttl=TTL)
    await store.append(stale, [draft(stale.turn, "before")])
    clock.advance(TTL + 1)
    seen: list[Dialogue] = []

    async with store.feed.subscribe("d1") as subscription:
        start = await store.begin_run(
            "d1", owner="fast", ttl=TTL, inputs=[draft(0, "input")], check=seen.append
        )
        assert await anext(aiter(subscription)) == LogGrew("d1", 3)

    # The check ran before anything was written.
    assert [(d.latest_turn, d.message_count) for d in seen] == [(1, 1)]
    before, notice, stored = await store.read_messages("d1")
    assert before.content == "before"
    assert (notice.seq, notice.turn, notice.metadata) == (
        2,
        stale.turn,
        {RUN_END_METADATA_KEY: "interrupted"},
    )
    assert start.inputs == [stored]
    assert (stored.seq, stored.turn, stored.content) == (3, 2, "input")
    assert (start.lease.turn, start.dialogue.latest_turn, start.dialogue.message_count) == (
        2,
        2,
        3,
    )
    assert start.dialogue == await store.get_dialogue("d1")
    with pytest.raises(LeaseLost):
        await store.append(stale, [draft(stale.turn)])


async def test_a_refused_takeover_leaves_the_expired_lease_to_its_holder(
    store: Store, clock: FakeClock
) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    stale = await begin(store, "d1", owner="slow", ttl=TTL)
    clock.advance(TTL + 1)

    def refuse(_dialogue: Dialogue) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.begin_run("d1", owner="fast", ttl=TTL, inputs=[draft(0)], check=refuse)

    # No notice, no new turn: the slow holder still holds its lease.
    [message] = await store.append(stale, [draft(stale.turn)])
    assert message.seq == 1
    assert (await store.get_dialogue("d1")).latest_turn == 1


# --- appending ------------------------------------------------------------------------


async def test_seqs_are_consecutive_across_appends(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    first = await store.append(lease, [draft(1, "a"), draft(1, "b")])
    none = await store.append(lease, [])
    second = await store.append(lease, [draft(1, "c")])
    await store.end_run(lease)
    third = (await run_turn(store, "d1", 2)).turn

    assert [m.seq for m in first + second] == [1, 2, 3]
    assert none == []
    log = await store.read_messages("d1")
    assert [(m.seq, m.turn) for m in log] == [(1, 1), (2, 1), (3, 1), (4, third), (5, third)]
    assert [m.content for m in log[:3]] == ["a", "b", "c"]
    assert (await store.get_dialogue("d1")).message_count == 5


async def test_append_moves_the_dialogue_update_time(store: Store) -> None:
    created = await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    [message] = await store.append(lease, [draft(1)])

    dialogue = await store.get_dialogue("d1")
    assert dialogue.update_time == message.create_time
    assert dialogue.update_time >= created.update_time


async def test_cursors_move_with_the_append(store: Store) -> None:
    participants = (participant("A"), participant("B", cursor=None), participant("C"))
    await store.create_dialogue(Dialogue(id="d1", participants=participants))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    await store.append(lease, [draft(1), draft(1)], {"A": 2, "B": 1, "gone": 5})

    cursors = [p.cursor for p in (await store.get_dialogue("d1")).participants]
    assert cursors == [2, 1, 0]


async def test_cursors_can_move_without_messages(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1", participants=(participant("A"),)))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    assert await store.append(lease, [], {"A": 0}) == []
    await store.append(lease, [draft(1)])
    await store.append(lease, [], {"A": 1})

    assert (await store.get_dialogue("d1")).participants[0].cursor == 1


async def test_appended_turns_never_pass_the_dialogue_turn(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)

    await store.append(lease, [draft(1), draft(2), draft(3)])
    await store.end_run(lease)

    assert (await store.get_dialogue("d1")).latest_turn == 3
    assert (await begin(store, "d1", owner="me", ttl=TTL)).turn == 4


async def test_message_fields_round_trip(store: Store) -> None:
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    drafts = [
        draft(
            1,
            "look at these",
            attachments=(
                Attachment("plan.bin", "application/octet-stream", data=b"\x00\xffbytes"),
                Attachment("empty.txt", "text/plain", data=b""),
                Attachment("remote.png", "image/png", uri="https://example.com/r.png"),
            ),
            metadata={"trace": "abc", "ünï": "cödé"},
        ),
        MessageDraft(
            turn=1,
            speaker=Speaker(SpeakerKind.AGENT, "Alice", "planner", "🦉"),
            content="a reply\nwith two lines",
            origin=Origin.AGENT_GENERATED,
            type=MessageType.CUSTOM,
            custom_type="vote",
            delivered_through=1,
        ),
        MessageDraft(
            turn=1,
            speaker=Speaker.system(),
            content="",
            origin=Origin.INCOMING,
            type=MessageType.CONTEXT_INFO,
        ),
    ]

    appended = await store.append(lease, drafts)
    read = await store.read_messages("d1")

    assert read == appended
    for message, sent in zip(read, drafts, strict=True):
        assert (message.speaker, message.content, message.type) == (
            sent.speaker,
            sent.content,
            sent.type,
        )
        assert (message.custom_type, message.origin, message.attachments) == (
            sent.custom_type,
            sent.origin,
            sent.attachments,
        )
        assert (message.metadata, message.delivered_through) == (
            sent.metadata,
            sent.delivered_through,
        )
        assert message.create_time.tzinfo is not None
        assert message.create_time.utcoffset() == UTC.utcoffset(None)
        assert abs(datetime.now(UTC) - message.create_time).total_seconds() < 60


# --- reading --------------------------------------------------------------------------


@pytest.fixture
async def three_turns(store: Store) -> Store:
    """Turns 1, 2, 3 holding seqs 1-2, 3-5 and 6 respectively."""
    await store.create_dialogue(Dialogue(id="d1"))
    for count in (2, 3, 1):
        await run_turn(store, "d1", count)
    return store


@pytest.mark.parametrize(
    ("bounds", "seqs"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"after_seq": 2}, [3, 4, 5, 6]),
        ({"after_seq": 6}, []),
        ({"through_seq": 4}, [1, 2, 3, 4]),
        ({"after_seq": 1, "through_seq": 3}, [2, 3]),
        ({"through_seq": 0}, []),
        ({"min_turn": 2}, [3, 4, 5, 6]),
        ({"max_turn": 2}, [1, 2, 3, 4, 5]),
        ({"min_turn": 2, "max_turn": 2}, [3, 4, 5]),
        ({"min_turn": 4}, []),
        ({"after_seq": 3, "min_turn": 2, "max_turn": 2}, [4, 5]),
        ({"after_seq": 1, "max_turn": 1}, [2]),
        ({"limit": 2}, [1, 2]),
        ({"limit": 0}, []),
        ({"after_seq": 2, "limit": 2}, [3, 4]),
        ({"min_turn": 2, "limit": 1}, [3]),
        ({"after_seq": 1, "through_seq": 5, "min_turn": 2, "limit": 2}, [3, 4]),
    ],
)
async def test_read_messages_bounds(
    three_turns: Store, bounds: dict[str, int], seqs: list[int]
) -> None:
    messages = await three_turns.read_messages("d1", **bounds)

    assert [m.seq for m in messages] == seqs


async def test_turn_bounds_hold_when_turns_do_not_follow_seq_order(store: Store) -> None:
    # A log whose turns go 1, 1, 5, 2, 2, 5 (seqs 1-6), as appends of older turns make.
    await store.create_dialogue(Dialogue(id="d1"))
    lease = await begin(store, "d1", owner="test", ttl=TTL)
    await store.append(lease, [draft(turn) for turn in (1, 1, 5, 2, 2, 5)], end_run=True)

    async def seqs(**bounds: int) -> list[int]:
        return [m.seq for m in await store.read_messages("d1", **bounds)]

    assert await seqs(min_turn=2) == [3, 4, 5, 6]
    assert await seqs(min_turn=2, max_turn=2) == [4, 5]
    assert await seqs(min_turn=5) == [3, 6]
    assert await seqs(min_turn=3, max_turn=4) == []
    assert await seqs(max_turn=1) == [1, 2]
    assert await seqs(min_turn=2, through_seq=4) == [3, 4]
    assert await seqs(min_turn=6) == []


async def test_read_messages_of_an_unknown_dialogue_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.read_messages("nope")


# --- isolation from callers -----------------------------------------------------------


async def test_callers_cannot_reach_the_stored_values(store: Store) -> None:
    options = {"temperature": "0.2"}
    metadata = {"k": "v"}
    await store.create_dialogue(
        Dialogue(id="d1", participants=(participant("A", agent_options=options),))
    )
    lease = await begin(store, "d1", owner="me", ttl=TTL)
    [appended] = await store.append(lease, [draft(1, metadata=metadata)])

    options["temperature"] = "9"
    metadata["k"] = "changed by the caller"
    returned = await store.get_dialogue("d1")
    returned.participants[0].agent_options["injected"] = "x"  # type: ignore[index]
    appended.metadata["injected"] = "x"  # type: ignore[index]
    (await store.read_messages("d1"))[0].metadata["injected"] = "x"  # type: ignore[index]

    assert (await store.get_dialogue("d1")).participants[0].agent_options == {"temperature": "0.2"}
    assert (await store.read_messages("d1"))[0].metadata == {"k": "v"}


# --- SQLite across restarts -----------------------------------------------------------


async def test_sqlite_keeps_everything_across_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "nested" / "dir" / "parley.db")
    first = SQLiteStore(path, clock=clock)
    await first.open()
    await first.create_dialogue(rich_dialogue())
    await run_turn(first, "d1", 2)
    held = await begin(first, "d1", owner="crashed", ttl=TTL)
    written = await first.append(held, [draft(held.turn)], {"Alice": 3})
    before = await first.get_dialogue("d1")
    await first.close()

    second = SQLiteStore(path, clock=clock)
    await second.open()
    try:
        # Everything survives; the lease the first process held is released and its
        # turn marked interrupted, in the log.
        after = await second.get_dialogue("d1")
        assert after.participants == before.participants
        assert after.message_count == before.message_count + 1
        *log, notice = await second.read_messages("d1")
        assert log[-1] == written[0]
        assert (notice.turn, notice.metadata) == (held.turn, {RUN_END_METADATA_KEY: "interrupted"})
        with pytest.raises(LeaseLost):
            await second.append(held, [draft(held.turn)])
        lease = await begin(second, "d1", owner="new", ttl=TTL)
        assert lease.turn == held.turn + 1
        assert lease.token > held.token
    finally:
        await second.close()


async def test_sqlite_survives_a_killed_process(tmp_path: Path) -> None:
    path = str(tmp_path / "parley.db")
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from parley.server.engine.model import Dialogue, MessageDraft, Origin, Speaker
        from parley.server.store.sqlite import SQLiteStore

        async def main() -> None:
            store = SQLiteStore(sys.argv[1])
            await store.open()
            await store.create_dialogue(Dialogue(id="d1"))
            lease = (await store.begin_run("d1", owner="doomed", ttl=3600)).lease
            for i in range(5):
                draft = MessageDraft(lease.turn, Speaker.system(), f"m{i}", Origin.INCOMING)
                await store.append(lease, [draft])
            os._exit(0)  # no close(), no checkpoint: as if the process were killed

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, path)
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0

    store = SQLiteStore(path)
    await store.open()
    try:
        *log, notice = await store.read_messages("d1")
        assert [m.content for m in log] == [f"m{i}" for i in range(5)]
        assert notice.metadata == {RUN_END_METADATA_KEY: "interrupted"}
        assert (await store.get_dialogue("d1")).message_count == 6
        assert (await begin(store, "d1", owner="heir", ttl=TTL)).turn == 2
    finally:
        await store.close()


async def test_sqlite_migrations_are_recorded_and_reapplied_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    for _ in range(2):
        store = SQLiteStore(str(path))
        await store.open()
        await store.close()

    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert versions == [(SCHEMA_VERSION,)]
    assert journal == ("wal",)


async def test_sqlite_upgrades_a_database_of_every_earlier_version(tmp_path: Path) -> None:
    for version in range(1, SCHEMA_VERSION):
        path = tmp_path / f"v{version}.db"
        with sqlite3.connect(path) as conn:
            for statements in MIGRATIONS[:version]:
                for statement in statements:
                    apply_statement(conn, statement)
            conn.execute(
                "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
                " version INTEGER NOT NULL)"
            )
            conn.execute("INSERT INTO schema_version (id, version) VALUES (1, ?)", (version,))
        conn.close()
        store = SQLiteStore(str(path))
        await store.open()
        try:
            await store.create_dialogue(rich_dialogue("d1"))
            await run_turn(store, "d1", 2)
            await store.add_participant("d1", participant("Carol"))
            start = await store.begin_run("d1", owner="test", ttl=TTL)
            assert [p.name for p in start.dialogue.participants][-1] == "Carol"
            await store.end_run(start.lease)
        finally:
            await store.close()


async def test_sqlite_schema_4_moves_the_cursors_onto_the_dialogue(tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.create_dialogue(rich_dialogue("d1"))
    await store.close()
    # Back to schema 3, where each participant's row held its cursor (one pending).
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE participants ADD COLUMN cursor INTEGER")
        conn.execute("UPDATE participants SET cursor = 4 WHERE name = 'Alice'")
        conn.execute("UPDATE participants SET cursor = 7 WHERE name = '太郎'")
        conn.execute("UPDATE dialogues SET cursors = '{}'")
        conn.execute("UPDATE schema_version SET version = 3")
    conn.close()

    for _ in range(2):  # upgraded once; opening again changes nothing
        store = SQLiteStore(str(path))
        await store.open()
        try:
            dialogue = await store.get_dialogue("d1")
        finally:
            await store.close()
        assert [(p.name, p.cursor) for p in dialogue.participants] == [
            ("Alice", 4),
            ("Bob", None),
            ("太郎", 7),
        ]
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(participants)")]
    conn.close()
    assert "cursor" not in columns


async def test_sqlite_schema_4_keeps_everything_of_a_version_3_file(tmp_path: Path) -> None:
    # Written as a version 3 server wrote it: cursors on the participants' rows, turns
    # found through an index of the messages, retention through one of update times.
    path = tmp_path / "v3.db"
    logs = {"a": [1, 1, 2, 2, 2, 3], "b": [1, 2]}  # the turn of each seq
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[:3]:
            for statement in statements:
                apply_statement(conn, statement)
        conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.execute("INSERT INTO schema_version VALUES (1, 3)")
        for dialogue_id, turns in logs.items():
            conn.execute(
                "INSERT INTO dialogues (display_name, execution_model, context,"
                " reaction_strategy, id, latest_turn, message_count, next_position,"
                " create_time, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (
                    *records.dialogue_settings(Dialogue(id=dialogue_id)),
                    dialogue_id,
                    turns[-1],
                    len(turns),
                    *[int(old.timestamp() * 1_000_000)] * 2,
                ),
            )
            conn.execute(
                "INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                records.participant_values(dialogue_id, 0, replace(participant("A"), cursor=2)),
            )
            for seq, turn in enumerate(turns, start=1):
                message = Message.from_draft(draft(turn, f"{dialogue_id}{seq}"), seq, old)
                conn.execute(
                    f"INSERT INTO messages (dialogue_id, {records.MESSAGE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    records.message_values(dialogue_id, message, lambda _: 0),
                )
    conn.close()

    store = SQLiteStore(str(path))
    await store.open()
    try:
        for dialogue_id, turns in logs.items():
            log = await store.read_messages(dialogue_id)
            assert [(m.seq, m.turn, m.content) for m in log] == [
                (seq, turn, f"{dialogue_id}{seq}") for seq, turn in enumerate(turns, start=1)
            ]
            dialogue = await store.get_dialogue(dialogue_id)
            assert [p.cursor for p in dialogue.participants] == [2]
        assert [m.seq for m in await store.read_messages("a", min_turn=2, max_turn=2)] == [3, 4, 5]
        assert [m.seq for m in await store.read_messages("a", min_turn=3)] == [6]
        lease = await run_turn(store, "a", 2)
        assert lease.turn == 4
        assert [m.seq for m in await store.read_messages("a", min_turn=4)] == [7, 8]
        # "b" was last touched in 2020, "a" just now.
        assert await store.expire_dialogues(datetime(2021, 1, 1, tzinfo=UTC)) == 1
        assert [d.id for d in await store.list_dialogues(after_id="", limit=10)] == ["a"]
    finally:
        await store.close()


async def test_sqlite_migrations_converge_on_a_schema_made_by_hand(tmp_path: Path) -> None:
    # Every table and column there already, but no record of the version.
    path = tmp_path / "parley.db"
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS:
            for statement in statements:
                apply_statement(conn, statement)
    conn.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_dialogue(rich_dialogue("d1"))
        assert (await store.get_dialogue("d1")).participants == rich_dialogue("d1").participants
    finally:
        await store.close()


async def test_sqlite_runs_move_the_touched_hour_only_when_it_changes(tmp_path: Path) -> None:
    # Retention's index is on the hour a dialogue was last touched: a run rewrites that
    # entry only when the hour changed, however often its update time does.
    path = tmp_path / "parley.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_dialogue(Dialogue(id="d1"))
        seen: list[str] = []
        store._database()._conn.set_trace_callback(seen.append)
        for _ in range(3):
            await run_turn(store, "d1", 2)
        # Six writes of the row; at most one of them in a new hour (the clock may pass one).
        assert len([s for s in seen if "touched_hour =" in s]) <= 1
        seen.clear()

        with sqlite3.connect(path) as other:
            other.execute("UPDATE dialogues SET touched_hour = 0")
        other.close()
        await run_turn(store, "d1", 2)
        assert [s for s in seen if "touched_hour =" in s]
        assert await store.expire_dialogues(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        hour, micros = conn.execute("SELECT touched_hour, update_time FROM dialogues").fetchone()
        plan = conn.execute(
            "EXPLAIN QUERY PLAN DELETE FROM dialogues WHERE touched_hour <= ? AND update_time < ?",
            (0, 0),
        ).fetchall()
    conn.close()
    assert hour == micros // 3_600_000_000
    assert "USING INDEX dialogues_by_touched_hour" in plan[0][3]


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "parley.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    conn.close()

    with pytest.raises(RuntimeError, match="schema version"):
        await SQLiteStore(str(path)).open()


async def test_sqlite_store_must_be_opened(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "parley.db"))

    with pytest.raises(RuntimeError, match="not open"):
        await store.get_dialogue("d1")
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_dialogue("d1")


BY_SEQ = "SEARCH messages USING INDEX sqlite_autoindex_messages_1 (dialogue_id=? AND seq>?"
# A joining window's walk starts where its lowest turn starts: one row per turn.
TURN_START = "SEARCH turn_starts USING PRIMARY KEY (dialogue_id=? AND turn>?"


@pytest.mark.parametrize(
    ("bounds", "steps"),
    [
        ({}, [BY_SEQ]),
        ({"after_seq": 10}, [BY_SEQ]),
        ({"after_seq": 10, "through_seq": 20}, [BY_SEQ]),
        ({"through_seq": 20}, [BY_SEQ]),
        ({"after_seq": 10, "min_turn": 3}, [BY_SEQ]),
        ({"max_turn": 3}, [BY_SEQ]),
        ({"min_turn": 3}, [BY_SEQ, TURN_START]),
        ({"min_turn": 3, "max_turn": 4}, [BY_SEQ, TURN_START]),
        ({"through_seq": 10, "min_turn": 3, "max_turn": 4}, [BY_SEQ, TURN_START]),
    ],
)
def test_sqlite_reads_walk_an_index_never_the_table(
    bounds: dict[str, int], steps: list[str]
) -> None:
    conn = sqlite3.connect(":memory:")
    for statements in MIGRATIONS:
        for statement in statements:
            apply_statement(conn, statement)
    sql, params = select_messages_sql(
        "d1",
        after_seq=bounds.get("after_seq", 0),
        through_seq=bounds.get("through_seq"),
        min_turn=bounds.get("min_turn"),
        max_turn=bounds.get("max_turn"),
        limit=50,
    )

    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    conn.close()

    searches = [step for step in plan if step.startswith("SEARCH") or step.startswith("SCAN")]
    assert len(searches) == len(steps), plan
    for search, step in zip(searches, steps, strict=True):
        assert search.startswith(step), plan
