"""What each participant receives when it is called: per-participant delivery cursors.

A participant receives, in log order, every message it has not yet received except its
own replies; its cursor then moves to the end of what it was given (stored with its
reply, so a failed call delivers nothing and the next call catches up). A participant
that joined in progress has no cursor yet: its first call receives the window of its
joining strategy instead.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

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

    It starts after the lowest cursor among the participants to be called and grows with
    every message the run appends, so each delivery is a slice of it: nothing per call
    scans the whole log.
    """

    def __init__(self, messages: Sequence[Message], head: int) -> None:
        self._messages = list(messages)
        self._seqs = [m.seq for m in self._messages]
        self.head = head

    def extend(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self._messages.append(message)
            self._seqs.append(message.seq)
            self.head = max(self.head, message.seq)

    def after(self, cursor: int, *, through: int | None = None) -> list[Message]:
        start = bisect.bisect_right(self._seqs, cursor)
        end = len(self._seqs) if through is None else bisect.bisect_right(self._seqs, through)
        return self._messages[start:end]
