"""What each participant receives when it is called: per-participant delivery cursors.

A participant receives, in log order, every message it has not yet received except its
own replies; its cursor then moves to the end of what it was given (stored with its
reply, so a failed call delivers nothing and the next call catches up). A participant
that joined in progress has no cursor yet: its first call receives the window of its
joining strategy instead.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable, Sequence
from datetime import datetime

from parley.server.engine.model import (
    Fresh,
    Full,
    JoiningStrategy,
    Message,
    Range,
    Recent,
    SpeakerKind,
)


def is_own(message: Message, participant_name: str) -> bool:
    return message.speaker.kind is SpeakerKind.AGENT and message.speaker.name == participant_name


def not_own(messages: Iterable[Message], participant_name: str) -> list[Message]:
    # is_own inlined: this runs over every message delivered, on every call.
    agent = SpeakerKind.AGENT
    return [
        m for m in messages if m.speaker.name != participant_name or m.speaker.kind is not agent
    ]


def joining_turn_bounds(strategy: JoiningStrategy | None, turn: int) -> tuple[int, int | None]:
    """The (min_turn, max_turn) a store read needs for a joiner's first call in `turn`.

    For `Range` the bounds cover the range and the current turn; `in_joining_window`
    then drops the turns between them.
    """
    match strategy:
        case Fresh():
            return turn, None
        case Recent(turns=turns):
            return max(turn - turns, 0), None
        case Range(start=start):
            return start, None
        case Full() | None:
            return 0, None


def in_joining_window(strategy: JoiningStrategy | None, message: Message, turn: int) -> bool:
    if message.turn == turn:
        return True
    match strategy:
        case Fresh():
            return False
        case Recent(turns=turns):
            return message.turn >= turn - turns
        case Range(start=start, end=end):
            return start <= message.turn and (end is None or message.turn <= end)
        case Full() | None:
            return True


class LogWindow:
    """The tail of the log a run works with, kept in memory for the run's duration.

    It holds every message after seq `start` through `head` (a contiguous stretch of
    the log): it starts after the lowest cursor among the participants to be called and
    grows with every message the run appends, so each delivery is a slice of it: nothing
    per call scans the whole log.
    """

    def __init__(self, messages: Sequence[Message], head: int, start: int | None = None) -> None:
        self._messages = list(messages)
        self._seqs = [m.seq for m in self._messages]
        self.head = head
        self.start = start if start is not None else head - len(self._messages)

    def extend(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self._messages.append(message)
            self._seqs.append(message.seq)
            self.head = max(self.head, message.seq)

    def after(self, cursor: int, *, through: int | None = None) -> list[Message]:
        start = bisect.bisect_right(self._seqs, cursor)
        end = len(self._seqs) if through is None else bisect.bisect_right(self._seqs, through)
        return self._messages[start:end]

    def tail(self, count: int) -> LogWindow:
        """The last `count` messages as a window of their own."""
        if count >= len(self._messages):
            return LogWindow(self._messages, self.head, self.start)
        kept = self._messages[len(self._messages) - count :]
        return LogWindow(kept, self.head, kept[0].seq - 1 if kept else self.head)

    @property
    def size(self) -> int:
        """Characters held, to bound what a cache of windows keeps."""
        return sum(len(m.content) for m in self._messages)


TailKey = tuple[str, datetime]


class LogTails:
    """The end of each recently run dialogue's log, as its last run left it.

    The next run of a dialogue needs what was written since its participants' lowest
    cursor: usually just what the previous run wrote, which that run held in memory. The
    log is append-only, so a kept tail never goes stale; a run uses it only when it ends
    right where the run's own input begins (no other replica or notice wrote in between).
    Keyed by dialogue id and creation time (a dialogue deleted and created again under
    the same id starts afresh) and bounded by dialogues and characters: the least
    recently run go first, and idle dialogues cost nothing beyond the bounds.
    """

    def __init__(
        self, max_dialogues: int = 512, max_messages: int = 256, max_chars: int = 8 * 1024 * 1024
    ) -> None:
        self._max_dialogues = max_dialogues
        self._max_messages = max_messages
        self._max_chars = max_chars
        self._chars = 0
        self._entries: collections.OrderedDict[TailKey, tuple[LogWindow, int]] = (
            collections.OrderedDict()
        )

    def messages(self, key: TailKey, after: int, through: int) -> list[Message] | None:
        """Messages with after < seq <= through, or None when the tail does not hold
        exactly that stretch's end."""
        entry = self._entries.get(key)
        if entry is None or entry[0].head != through or entry[0].start > after:
            return None
        self._entries.move_to_end(key)
        return entry[0].after(after)

    def put(self, key: TailKey, window: LogWindow) -> None:
        self.discard(key)
        kept = window.tail(self._max_messages)
        size = kept.size
        if size > self._max_chars:
            return
        self._entries[key] = (kept, size)
        self._chars += size
        while self._chars > self._max_chars or len(self._entries) > self._max_dialogues:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._chars -= evicted

    def discard(self, key: TailKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._chars -= entry[1]
