"""A participant's private conversation, rebuilt from the log for chat backends.

Each reply a participant wrote records the highest seq it had been delivered
(`delivered_through`), so its conversation is a sequence of exchanges: the messages
delivered for a call (one user turn) and the reply it gave (one assistant turn). The log
alone is enough, so conversations survive restarts and move between replicas.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass

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


def chat_messages(
    system: str, history: Sequence[ChatMessage], delivered: Sequence[Message]
) -> list[ChatMessage]:
    """The chat form of one call: system, earlier exchanges, then what is new."""
    messages = [ChatMessage(ChatRole.SYSTEM, system), *history]
    new = render_messages(delivered) if delivered else "(no new messages)"
    messages.append(ChatMessage(ChatRole.USER, new))
    return messages
