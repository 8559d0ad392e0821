"""The feed: what watchers and running replicas hear about dialogues as it happens.

Three kinds of items travel on it:

- `LogGrew`: a dialogue's log now reaches `head`. Only a hint: watchers read the
  messages themselves, by seq, so a coalesced or repeated hint never loses or
  duplicates anything.
- `RunEvent`: a live run's event (not stored anywhere, so it is only for whoever
  listens now).
- `CancelRequested`: someone asked for a dialogue's run to stop; the replica running it
  acts on it.

`LocalFeed` fans items out within one process. A store shared by several processes
(PostgreSQL) carries items between them and feeds each process's `LocalFeed`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from parley.server.engine.events import SessionEvent

logger = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 256


class CancelMode(enum.Enum):
    IMMEDIATE = "immediate"
    AFTER_TURN = "after_turn"


@dataclass(frozen=True, slots=True)
class LogGrew:
    dialogue_id: str
    head: int


@dataclass(frozen=True, slots=True)
class RunEvent:
    event: SessionEvent

    @property
    def dialogue_id(self) -> str:
        return self.event.dialogue_id


@dataclass(frozen=True, slots=True)
class CancelRequested:
    dialogue_id: str
    turn: int
    mode: CancelMode


FeedItem = LogGrew | RunEvent | CancelRequested


class Subscription:
    """One listener's view of the feed: bounded whatever the listener's pace.

    Consecutive log hints coalesce; items queue up to MAX_PENDING_EVENTS, after which
    the oldest are dropped (run events can be seen again in no other way, but a listener
    that slow has lost the live view anyway; log hints are covered by the highest head).
    """

    def __init__(self, feed: LocalFeed, dialogue_id: str | None) -> None:
        self._feed = feed
        self.dialogue_id = dialogue_id
        self._head = 0
        self._head_reported = 0
        self._items: collections.deque[FeedItem] = collections.deque(maxlen=MAX_PENDING_EVENTS)
        self._wake = asyncio.Event()
        self._dropped = 0

    def deliver(self, item: FeedItem) -> None:
        if isinstance(item, LogGrew):
            self._head = max(self._head, item.head)
            # Consecutive hints collapse into one, keeping their place among events: a
            # run's last reply is announced before the run's completion event.
            if self._items and isinstance(self._items[-1], LogGrew):
                self._items[-1] = LogGrew(item.dialogue_id, self._head)
                self._wake.set()
                return
        if len(self._items) == self._items.maxlen:
            self._dropped += 1
            if self._dropped == 1:  # once per listener, not once per item
                logger.warning("a feed listener is too slow: dropping its oldest items")
        self._items.append(item)
        self._wake.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._feed.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[FeedItem]:
        return self._items_as_they_come()

    async def _items_as_they_come(self) -> AsyncIterator[FeedItem]:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._items:
                item = self._items.popleft()
                if isinstance(item, LogGrew):
                    if item.head <= self._head_reported:
                        continue
                    self._head_reported = item.head
                yield item
            # A hint dropped by an overflow is covered by the highest head seen.
            if self._head > self._head_reported:
                self._head_reported = self._head
                yield LogGrew(self.dialogue_id or "", self._head)


class LocalFeed:
    """In-process fan-out, keyed by dialogue. None hears the cancel requests of every
    dialogue: all a replica needs to act on the runs it holds, and not woken by every
    other run's events."""

    def __init__(self) -> None:
        self._subscriptions: dict[str | None, set[Subscription]] = collections.defaultdict(set)

    def subscribe(self, dialogue_id: str | None) -> Subscription:
        subscription = Subscription(self, dialogue_id)
        self._subscriptions[dialogue_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        listeners = self._subscriptions.get(subscription.dialogue_id)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del self._subscriptions[subscription.dialogue_id]

    def dispatch(self, item: FeedItem) -> None:
        """Hands `item` to this process's listeners; never blocks."""
        keys: tuple[str | None, ...] = (item.dialogue_id,)
        if isinstance(item, CancelRequested):
            keys = (item.dialogue_id, None)
        for key in keys:
            for subscription in tuple(self._subscriptions.get(key, ())):
                subscription.deliver(item)

    async def publish(self, item: FeedItem) -> None:
        """Announces `item` to every listener that shares this feed."""
        self.dispatch(item)
