"""What the engine asks of an agent backend, and what it gets back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from parley.server.engine.conversation import ChatMessage
from parley.server.engine.model import NO_USAGE, Message, Persona, Usage, record


async def _no_history() -> Sequence[ChatMessage]:
    return ()


@record
class AgentCall:
    """One call of one participant.

    `delivered` holds the messages this participant has not seen yet, in log order (its
    own replies excluded). `prompt` and `system` are the rendered single-text and system
    forms, rendered only when a backend reads them: chat backends never need the
    single-text form, and a scripted reply needs neither. Chat backends await
    `history()` for the participant's earlier exchanges (rebuilt from the log only when
    asked) and send `chat_messages(system, history, delivered)`.
    """

    dialogue_id: str
    turn: int
    persona: Persona
    participant_index: int
    options: Mapping[str, str]
    delivered: Sequence[Message]
    render_prompt: Callable[[], str]
    render_system: Callable[[], str]
    history: Callable[[], Awaitable[Sequence[ChatMessage]]] = _no_history

    @property
    def prompt(self) -> str:
        return self.render_prompt()

    @property
    def system(self) -> str:
        return self.render_system()


def fixed_text(text: str) -> Callable[[], str]:
    """A renderer for a text that is already at hand."""
    return lambda: text


@record
class AgentReply:
    content: str
    usage: Usage = NO_USAGE


class AgentFailure(Exception):
    """A call that produced no reply; becomes a TurnFailed event.

    `code` is a stable UPPER_SNAKE reason and `message` is safe to show clients: never
    a secret, never a raw library exception text. `retry_after` is how long the backend
    asked us to wait before trying again (a Retry-After header), in seconds.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.retry_after = retry_after


class Agent(Protocol):
    """A backend that turns one call into one reply or raises `AgentFailure`."""

    async def execute(self, call: AgentCall) -> AgentReply: ...
