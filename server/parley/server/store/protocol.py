"""The storage contract the engine relies on.

A store keeps dialogues (settings, participants with their delivery cursors) and each
dialogue's append-only message log, and arbitrates who may run a dialogue: one run per
dialogue at a time, across processes where the backend allows, enforced by a lease with
a fencing token that every append checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from parley.server.engine.model import Dialogue, Message, MessageDraft, Participant
from parley.server.store.feed import CancelMode, FeedItem, Subscription
from parley.server.store.reachability import Reachability


@dataclass(frozen=True, slots=True)
class RunLease:
    """The right to run one turn of a dialogue.

    `token` is a fencing token: it grows with every lease granted on the dialogue, and an
    append made with a lease that is no longer current fails with `LeaseLost`.
    """

    dialogue_id: str
    turn: int
    token: int
    owner: str


@dataclass(frozen=True, slots=True)
class RunStart:
    """What `begin_run` returns: the lease, the dialogue as of the new turn, the stored input."""

    lease: RunLease
    # Read in the same transaction: latest_turn is lease.turn and message_count the last
    # seq, after the input (and after an interrupted notice, if one was written).
    dialogue: Dialogue
    # The stored input messages, in order; empty when no inputs were given.
    inputs: list[Message]


class Feed(Protocol):
    """Live notifications shared by every process using the same store."""

    def subscribe(self, dialogue_id: str | None) -> Subscription:
        """Items about one dialogue (log hints, run events, cancellations), or with
        None the run events and cancellations of every dialogue. Use it as an async
        context manager, then iterate."""
        ...

    async def publish(self, item: FeedItem) -> None: ...


class Store(Protocol):
    """Async storage for dialogues and their logs.

    Errors: `NotFound` (reason DIALOGUE_NOT_FOUND / PARTICIPANT_NOT_FOUND),
    `AlreadyExists` (DIALOGUE_ALREADY_EXISTS / PARTICIPANT_ALREADY_EXISTS),
    `RunInProgress`, `LeaseLost`, all from `parley.server.engine.errors`.
    """

    @property
    def feed(self) -> Feed:
        """Every append publishes `LogGrew` on it after it commits."""
        ...

    @property
    def reachability(self) -> Reachability:
        """Whether the database answers, as the store last saw it (always, for a store
        inside the process). The server's health follows it."""
        ...

    async def open(self) -> None:
        """Connect and apply migrations. A store only one process uses (SQLite) also
        releases the leases a crashed process left, marking their turns interrupted."""
        ...

    async def close(self) -> None: ...

    async def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        """Stores a new dialogue with its participants (in their given order)."""
        ...

    async def get_dialogue(self, dialogue_id: str) -> Dialogue: ...

    async def list_dialogues(self, *, after_id: str, limit: int) -> list[Dialogue]:
        """Dialogues with id > `after_id`, ordered by id, at most `limit`."""
        ...

    async def update_dialogue(self, dialogue: Dialogue) -> Dialogue:
        """Replaces display_name, execution_model, context and reaction_strategy."""
        ...

    async def delete_dialogue(self, dialogue_id: str) -> None:
        """Removes the dialogue, its participants and its whole log."""
        ...

    async def expire_dialogues(self, older_than: datetime) -> int:
        """Deletes, as `delete_dialogue` does, every dialogue whose update_time (its last
        change or append) is before `older_than`; returns how many went."""
        ...

    async def add_participant(self, dialogue_id: str, participant: Participant) -> Dialogue:
        """Appends a participant to the dialogue's participant list."""
        ...

    async def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        """Removes a participant; its messages stay in the log."""
        ...

    async def begin_run(
        self,
        dialogue_id: str,
        *,
        owner: str,
        ttl: float,
        inputs: Sequence[MessageDraft] = (),
        check: Callable[[Dialogue], None] | None = None,
    ) -> RunStart:
        """Takes the dialogue's run lease for `ttl` seconds, opens turn latest+1 and
        stores `inputs` as its first messages, all in one transaction.

        The inputs' `turn` is set to the new turn, whatever the drafts say. `check`, when
        given, is called in the transaction with the dialogue as read under the lease,
        before anything is written; whatever it raises aborts the call (no lease taken,
        nothing stored) and propagates unchanged.

        Raises `RunInProgress` while another unexpired lease is held. Taking over an
        expired lease appends `run_end_notice(old turn, INTERRUPTED)` first: its holder
        died mid-run. An expired lease stays usable by its holder until then. Like
        `append`, publishes `LogGrew` after it commits when it stored any message.
        """
        ...

    async def renew_run(self, lease: RunLease, *, ttl: float) -> CancelMode | None:
        """Extends the lease and returns any pending cancel request for this run.

        Raises `LeaseLost` when the lease is no longer current.
        """
        ...

    async def request_cancel(self, dialogue_id: str, mode: CancelMode) -> int:
        """Records a cancel request for the run in progress and returns its turn.

        Raises NotFound (reason NO_RUN_IN_PROGRESS) when no run holds the lease. The
        caller announces it on the feed; `renew_run` reports it as a fallback.
        """
        ...

    async def end_run(self, lease: RunLease) -> None:
        """Releases the lease and clears any cancel request (a no-op when the lease is
        no longer current)."""
        ...

    async def append(
        self,
        lease: RunLease,
        drafts: Sequence[MessageDraft],
        cursors: Mapping[str, int] | None = None,
        *,
        mention_cursor: int | None = None,
        end_run: bool = False,
    ) -> list[Message]:
        """Appends messages and moves delivery cursors in one transaction.

        Seqs are assigned consecutively after the current last seq. `cursors` maps
        participant names to their new cursor; names no longer in the dialogue are
        ignored. `mention_cursor`, when given, replaces the dialogue's mention cursor.
        `drafts` may be empty to move cursors alone. `end_run` releases the lease in the
        same transaction, as `end_run()` would: for the run's last write. Raises
        `LeaseLost` when `lease` is no longer current.
        """
        ...

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
        """Messages in seq order with after_seq < seq <= through_seq and the turn bounds.

        Cost is proportional to the messages returned, not to the size of the log.
        """
        ...
