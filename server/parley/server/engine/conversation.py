"""A participant's private conversation, rebuilt from the log for chat backends.

Each reply a participant wrote records the highest seq it had been delivered
(`delivered_through`), so its conversation is a sequence of exchanges: the messages
delivered for a call (one user turn) and the reply it gave (one assistant turn). The log
alone is enough, so conversations survive restarts and move between replicas.
"""

from __future__ import annotations

import bisect
import collections
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from parley.server.engine.delivery import in_joining_window, is_own
from parley.server.engine.model import JoiningStrategy, Message
from parley.server.engine.prompts import render_messages


class ChatRole(enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: ChatRole
    content: str


def private_conversation(
    log: Sequence[Message], name: str, joining: JoiningStrategy | None
) -> list[ChatMessage]:
    """The earlier exchanges of participant `name`, oldest first, from its whole log
    (in seq order, as the store reads it).

    A participant that joined in progress saw its joining window on its first call;
    everyone else saw the log from the beginning. One pass over the log: each exchange
    is a slice of the other speakers' messages, found by bisection, so the cost is the
    log's length, not its length times the number of replies.
    """
    others = [m for m in log if not is_own(m, name)]
    seqs = [m.seq for m in others]
    conversation: list[ChatMessage] = []
    delivered_after = 0
    first = True
    for reply in log:
        if not is_own(reply, name):
            continue
        through = reply.delivered_through
        if through is not None:
            last = bisect.bisect_right(seqs, through)
            if first and joining is not None:
                window = [m for m in others[:last] if in_joining_window(joining, m, reply.turn)]
            else:
                window = others[bisect.bisect_right(seqs, delivered_after) : last]
            if window:
                conversation.append(ChatMessage(ChatRole.USER, render_messages(window)))
            delivered_after = through
        # Imported replies carry no delivery record: they are plain assistant turns.
        conversation.append(ChatMessage(ChatRole.ASSISTANT, reply.content))
        first = False
    return conversation


class Conversation:
    """A participant's private conversation, extended as its log grows.

    Fed the log in seq order, a few messages at a time, it keeps only what the next
    exchange needs: the other speakers' messages since the participant's last delivery.
    Kept between calls (see `ConversationCache`), a call then costs what is new in the
    log instead of the whole log. It builds what `private_conversation` builds; when the
    log is not what the engine writes (a delivery record that goes backwards, or past
    its own reply), it turns `stale` and the caller rebuilds from the whole log.
    """

    def __init__(self, name: str, joining: JoiningStrategy | None) -> None:
        self.name = name
        self.joining = joining
        self.messages: list[ChatMessage] = []
        # The seq of the last message taken in.
        self.through = 0
        self.stale = False
        self.size = 0  # characters held, for the cache's budget
        self._delivered_after = 0
        self._first = True
        # Other speakers' messages after the last delivery (every one of them before a
        # joiner's first reply: its joining window is chosen then), oldest first.
        self._others: list[Message] = []

    def extend(self, log: Iterable[Message]) -> None:
        for message in log:
            if self.stale:
                return
            if message.seq <= self.through:
                self.stale = True
                return
            if is_own(message, self.name):
                self._reply(message)
            else:
                self._others.append(message)
                self.size += len(message.content)
            self.through = message.seq

    def _reply(self, reply: Message) -> None:
        through = reply.delivered_through
        if through is not None:
            if through < self._delivered_after or through >= reply.seq:
                self.stale = True
                return
            if self._first and self.joining is not None:
                window = [
                    m
                    for m in self._others
                    if m.seq <= through and in_joining_window(self.joining, m, reply.turn)
                ]
            else:
                window = [m for m in self._others if m.seq <= through]
            if window:
                self._add(ChatRole.USER, render_messages(window))
            kept = [m for m in self._others if m.seq > through]
            self.size -= sum(len(m.content) for m in self._others) - sum(
                len(m.content) for m in kept
            )
            self._others = kept
            self._delivered_after = through
        self._add(ChatRole.ASSISTANT, reply.content)
        self._first = False

    def _add(self, role: ChatRole, content: str) -> None:
        self.messages.append(ChatMessage(role, content))
        self.size += len(content)


ConversationKey = tuple[str, datetime, str, JoiningStrategy | None]


class ConversationCache:
    """Recently used conversations, bounded by the characters they hold.

    Keyed by dialogue id and creation time (a dialogue deleted and created again under
    the same id starts afresh), participant name and joining strategy. A conversation
    is taken out while a call extends it and put back after, so two calls never share
    one. Idle dialogues cost nothing beyond the budget: the least recently used
    conversations go first.
    """

    def __init__(self, max_chars: int = 32 * 1024 * 1024) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._entries: collections.OrderedDict[ConversationKey, Conversation] = (
            collections.OrderedDict()
        )

    def take(self, key: ConversationKey) -> Conversation | None:
        conversation = self._entries.pop(key, None)
        if conversation is not None:
            self._chars -= conversation.size
        return conversation

    def put(self, key: ConversationKey, conversation: Conversation) -> None:
        self.take(key)
        if conversation.size > self._max_chars:
            return
        self._entries[key] = conversation
        self._chars += conversation.size
        while self._chars > self._max_chars:
            _, evicted = self._entries.popitem(last=False)
            self._chars -= evicted.size


def chat_messages(
    system: str, history: Sequence[ChatMessage], delivered: Sequence[Message]
) -> list[ChatMessage]:
    """The chat form of one call: system, earlier exchanges, then what is new."""
    messages = [ChatMessage(ChatRole.SYSTEM, system), *history]
    new = render_messages(delivered) if delivered else "(no new messages)"
    messages.append(ChatMessage(ChatRole.USER, new))
    return messages
