"""A participant's private conversation, rebuilt from the log for chat backends.

Each reply a participant wrote records the highest seq it had been delivered
(`delivered_through`), so its conversation is a sequence of exchanges: the messages
delivered for a call (one user turn) and the reply it gave (one assistant turn). The log
alone is enough, so conversations survive restarts and move between replicas.
"""

from __future__ import annotations

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
    """The earlier exchanges of participant `name`, oldest first, from its whole log.

    A participant that joined in progress saw its joining window on its first call;
    everyone else saw the log from the beginning.
    """
    conversation: list[ChatMessage] = []
    delivered_after = 0
    first = True
    for reply in (m for m in log if is_own(m, name)):
        through = reply.delivered_through
        if through is not None:
            if first and joining is not None:
                window = [
                    m
                    for m in log
                    if m.seq <= through
                    and in_joining_window(joining, m, reply.turn)
                    and not is_own(m, name)
                ]
            else:
                window = [
                    m for m in log if delivered_after < m.seq <= through and not is_own(m, name)
                ]
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
