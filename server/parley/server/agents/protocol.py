"""What the engine asks of an agent backend, and what it gets back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from parley.server.engine.model import Message, Persona, Usage


@dataclass(frozen=True, slots=True)
class AgentCall:
    """One call of one participant.

    `delivered` holds the messages this participant has not seen yet, in log order (its
    own replies excluded). `prompt` and `system` are the rendered single-text and system
    forms; chat backends rebuild the private conversation from the log when they need it.
    """

    dialogue_id: str
    turn: int
    persona: Persona
    participant_index: int
    options: Mapping[str, str]
    delivered: Sequence[Message]
    prompt: str
    system: str


@dataclass(frozen=True, slots=True)
class AgentReply:
    content: str
    usage: Usage = field(default_factory=Usage)


class AgentFailure(Exception):
    """A call that produced no reply; becomes a TurnFailed event.

    `code` is a stable UPPER_SNAKE reason and `message` is safe to show clients: never
    a secret, never a raw library exception text.
    """

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.attempts = attempts


class Agent(Protocol):
    """A backend that turns one call into one reply or raises `AgentFailure`."""

    async def execute(self, call: AgentCall) -> AgentReply: ...
