"""`MemoryStore`: the whole store in process memory, for unit tests and benchmarks.

It honours the full `Store` contract within one event loop: every method runs without
awaiting, so each one is atomic with respect to the others. It is not thread-safe and
keeps nothing across restarts.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from parley.server.engine import errors
from parley.server.engine.model import (
    Dialogue,
    DialogueContext,
    ExecutionModel,
    Message,
    MessageDraft,
    Moderated,
    Participant,
    RunEnd,
    run_end_notice,
    utcnow,
)
from parley.server.store import _errors
from parley.server.store.feed import CancelMode, LocalFeed, LogGrew
from parley.server.store.protocol import RunLease, RunStart
from parley.server.store.reachability import Reachability

# The model's mappings are plain dicts: the store copies every value on the way in and
# on the way out, so neither the caller's later edits nor edits to what it returned can
# reach the store's state. Everything else in the model is immutable already.


def _copy_execution_model(model: ExecutionModel) -> ExecutionModel:
    if isinstance(model, Moderated):
        return replace(model, agent_options=dict(model.agent_options))
    return model


def _copy_context(context: DialogueContext | None) -> DialogueContext | None:
    if context is None:
        return None
    return replace(context, policy={name: tuple(caps) for name, caps in context.policy.items()})


# Messages and participants are copied on every append and read: built directly, which
# costs a fraction of `dataclasses.replace`.


def _copy_participant(participant: Participant, cursor: int | None = None) -> Participant:
    """A copy of `participant`, with its cursor moved to `cursor` when given."""
    return Participant(
        persona=participant.persona,
        agent=participant.agent,
        agent_options=dict(participant.agent_options),
        joining_strategy=participant.joining_strategy,
        cursor=participant.cursor if cursor is None else cursor,
    )


def _copy_dialogue(dialogue: Dialogue) -> Dialogue:
    return replace(
        dialogue,
        participants=tuple(_copy_participant(p) for p in dialogue.participants),
        execution_model=_copy_execution_model(dialogue.execution_model),
        context=_copy_context(dialogue.context),
    )


def _copy_message(message: Message) -> Message:
    return Message(
        seq=message.seq,
        turn=message.turn,
        speaker=message.speaker,
        content=message.content,
        origin=message.origin,
        create_time=message.create_time,
        type=message.type,
        custom_type=message.custom_type,
        attachments=tuple(message.attachments),
        metadata=dict(message.metadata),
        delivered_through=message.delivered_through,
    )


@dataclass(slots=True)
class _Lease:
    owner: str
    token: int
    expires: float
    cancel_requested: CancelMode | None = None


@dataclass(slots=True)
class _Record:
    """One dialogue: its current value, its log, and its run lease."""

    dialogue: Dialogue
    messages: list[Message] = field(default_factory=list)
    # turns[i] is messages[i].turn; while it stays sorted, turn bounds become seq bounds
    # by bisection and reads cost what they return.
    turns: list[int] = field(default_factory=list)
    turns_sorted: bool = True
    lease: _Lease | None = None


class MemoryStore:
    """An in-process `Store`.

    `clock` measures lease expiry; it is monotonic by default and tests may pass a fake
    one to expire leases without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[str, _Record] = {}
        # Store-wide, so a stale lease on a deleted dialogue never matches a lease on a
        # new dialogue that reuses the id.
        self._last_token = 0
        self._feed = LocalFeed()
        self._reachability = Reachability("the memory store")

    @property
    def feed(self) -> LocalFeed:
        return self._feed

    @property
    def reachability(self) -> Reachability:
        return self._reachability  # in the process: never down

    async def open(self) -> None:
        """Nothing to connect to; a fresh MemoryStore holds no leases."""

    async def close(self) -> None:
        """Nothing to release; the data lives as long as the object."""

    def _record(self, dialogue_id: str) -> _Record:
        record = self._records.get(dialogue_id)
        if record is None:
            raise errors.dialogue_not_found(dialogue_id)
        return record

    def _current(self, lease: RunLease) -> tuple[_Record, _Lease]:
        """The record `lease` is current on and its held lease, or `LeaseLost`.

        A lease stays current until it is released or another run takes the dialogue
        over; expiry alone only makes the takeover possible. A deleted dialogue has no
        current lease.
        """
        record = self._records.get(lease.dialogue_id)
        if record is None or record.lease is None or record.lease.token != lease.token:
            raise _errors.lease_lost(lease.dialogue_id)
        return record, record.lease

    # --- dialogues --------------------------------------------------------------------

    async def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        if dialogue.id in self._records:
            raise _errors.dialogue_exists(dialogue.id)
        _errors.ensure_unique_names(dialogue.participants)
        stored = replace(_copy_dialogue(dialogue), message_count=0)
        self._records[dialogue.id] = _Record(stored)
        return _copy_dialogue(stored)

    async def get_dialogue(self, dialogue_id: str) -> Dialogue:
        return _copy_dialogue(self._record(dialogue_id).dialogue)

    async def list_dialogues(self, *, after_id: str, limit: int) -> list[Dialogue]:
        ids = sorted(i for i in self._records if i > after_id)[: max(limit, 0)]
        return [_copy_dialogue(self._records[i].dialogue) for i in ids]

    async def update_dialogue(self, dialogue: Dialogue) -> Dialogue:
        record = self._record(dialogue.id)
        record.dialogue = replace(
            record.dialogue,
            display_name=dialogue.display_name,
            execution_model=_copy_execution_model(dialogue.execution_model),
            context=_copy_context(dialogue.context),
            reaction_strategy=dialogue.reaction_strategy,
            update_time=utcnow(),
        )
        return _copy_dialogue(record.dialogue)

    async def delete_dialogue(self, dialogue_id: str) -> None:
        self._record(dialogue_id)
        del self._records[dialogue_id]

    async def expire_dialogues(self, older_than: datetime) -> int:
        expired = [i for i, r in self._records.items() if r.dialogue.update_time < older_than]
        for dialogue_id in expired:
            del self._records[dialogue_id]
        return len(expired)

    async def add_participant(self, dialogue_id: str, participant: Participant) -> Dialogue:
        record = self._record(dialogue_id)
        if record.dialogue.participant(participant.name) is not None:
            raise _errors.participant_exists(participant.name)
        record.dialogue = replace(
            record.dialogue,
            participants=(*record.dialogue.participants, _copy_participant(participant)),
            update_time=utcnow(),
        )
        return _copy_dialogue(record.dialogue)

    async def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        record = self._record(dialogue_id)
        if record.dialogue.participant(name) is None:
            raise _errors.participant_not_found(dialogue_id, name)
        record.dialogue = replace(
            record.dialogue,
            participants=tuple(p for p in record.dialogue.participants if p.name != name),
            update_time=utcnow(),
        )
        return _copy_dialogue(record.dialogue)

    # --- runs -------------------------------------------------------------------------

    async def begin_run(
        self,
        dialogue_id: str,
        *,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft] = (),
        check: Callable[[Dialogue], None] | None = None,
    ) -> RunStart:
        record = self._record(dialogue_id)
        now = self._clock()
        if record.lease is not None and record.lease.expires > now:
            raise _errors.run_in_progress(dialogue_id)
        if check is not None:
            check(_copy_dialogue(record.dialogue))
        latest = record.dialogue.latest_turn
        turn = latest + 1
        drafts = [replace(draft, turn=turn) for draft in inputs]
        if record.lease is not None:
            # Its holder died mid-run: say so in the log before the next turn.
            drafts.insert(0, run_end_notice(latest, RunEnd.INTERRUPTED))
        self._last_token += 1
        record.lease = _Lease(owner=owner, token=self._last_token, expires=now + ttl)
        messages = self._insert(record, drafts)
        record.dialogue = replace(record.dialogue, latest_turn=turn)
        if messages:
            self._feed.dispatch(LogGrew(dialogue_id, messages[-1].seq))
        lease = RunLease(dialogue_id=dialogue_id, turn=turn, token=self._last_token, owner=owner)
        stored = messages[len(messages) - len(inputs) :]
        return RunStart(lease, _copy_dialogue(record.dialogue), [_copy_message(m) for m in stored])

    async def renew_run(self, lease: RunLease, *, ttl: float) -> CancelMode | None:
        _, held = self._current(lease)
        held.expires = self._clock() + ttl
        return held.cancel_requested

    async def request_cancel(self, dialogue_id: str, mode: CancelMode) -> int:
        record = self._record(dialogue_id)
        if record.lease is None:
            raise _errors.no_run_in_progress(dialogue_id)
        record.lease.cancel_requested = mode
        return record.dialogue.latest_turn

    async def end_run(self, lease: RunLease) -> None:
        record = self._records.get(lease.dialogue_id)
        if record is not None and record.lease is not None and record.lease.token == lease.token:
            record.lease = None

    # --- the log ----------------------------------------------------------------------

    async def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None = None,
        *,
        mention_cursor: int | None = None,
        end_run: bool = False,
    ) -> list[Message]:
        record, _ = self._current(lease)
        messages = self._insert(record, drafts)
        dialogue = record.dialogue
        if cursors:
            dialogue = replace(
                dialogue,
                participants=tuple(
                    _copy_participant(p, cursors[p.name]) if p.name in cursors else p
                    for p in dialogue.participants
                ),
            )
        if mention_cursor is not None:
            dialogue = replace(dialogue, mention_cursor=mention_cursor)
        record.dialogue = dialogue
        if end_run:
            record.lease = None
        if messages:
            self._feed.dispatch(LogGrew(lease.dialogue_id, messages[-1].seq))
        return [_copy_message(m) for m in messages]

    def _insert(self, record: _Record, drafts: Sequence[MessageDraft]) -> list[Message]:
        now = utcnow()
        first_seq = len(record.messages) + 1
        messages = [
            _copy_message(Message.from_draft(draft, seq, now))
            for seq, draft in enumerate(drafts, start=first_seq)
        ]
        for message in messages:
            if record.turns and message.turn < record.turns[-1]:
                record.turns_sorted = False
            record.turns.append(message.turn)
        record.messages.extend(messages)
        if messages:
            record.dialogue = replace(
                record.dialogue,
                message_count=len(record.messages),
                # The log never holds a turn the dialogue has not reached yet.
                latest_turn=max(record.dialogue.latest_turn, *(m.turn for m in messages)),
                update_time=now,
            )
        return messages

    async def read_messages(
        self,
        dialogue_id: str,
        *,
        after_seq: int = 0,
        through_seq: int | None = None,
        min_turn: int | None = None,
        max_turn: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        record = self._record(dialogue_id)
        # messages[i] has seq i + 1, so seq bounds are list indexes.
        start = max(after_seq, 0)
        stop = len(record.messages)
        if through_seq is not None:
            stop = min(stop, through_seq)
        if record.turns_sorted:
            if min_turn is not None:
                start = max(start, bisect.bisect_left(record.turns, min_turn))
            if max_turn is not None:
                stop = min(stop, bisect.bisect_right(record.turns, max_turn))
        # Indexing lazily (not slicing) keeps a limited read from copying the tail.
        selected: Iterator[Message] = (
            m
            for m in (record.messages[i] for i in range(start, stop))
            if (min_turn is None or m.turn >= min_turn) and (max_turn is None or m.turn <= max_turn)
        )
        if limit is not None:
            selected = itertools.islice(selected, max(limit, 0))
        return [_copy_message(m) for m in selected]
