"""Hooks a run reports its progress through: how tracing sees runs without the engine
knowing about OpenTelemetry.

`Session` opens one `RunTrace` per run and one `CallTrace` per agent call (the
moderator's included). The telemetry module implements these with spans; the default
observer does nothing. Hooks must be cheap and must never raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.registry import AgentProfile
from parley.server.engine.events import Event
from parley.server.engine.model import Dialogue, ExecutionModel, Message


class CallTrace(Protocol):
    """One agent call, from the call to the stored reply (or the failure)."""

    def scope(self) -> AbstractContextManager[object]:
        """Entered around the agent call itself, so backend work nests under it."""
        ...

    def replied(self, reply: AgentReply, message: Message | None) -> None:
        """`message` is the stored reply; None for a moderator's decision."""
        ...

    def failed(self, failure: AgentFailure) -> None: ...


class RunTrace(Protocol):
    def scope(self) -> AbstractContextManager[object]:
        """Entered for the whole run, so every call nests under it."""
        ...

    def planned(self, model: ExecutionModel, called: Sequence[str]) -> None: ...

    def call(
        self, call: AgentCall, profile: AgentProfile | None, *, sequential: bool
    ) -> CallTrace: ...

    def emitted(self, event: Event) -> None: ...

    def finished(self, turn_count: int, failure_count: int, error: BaseException | None) -> None:
        """Called once, also when the run is cancelled or crashes (`error` set)."""
        ...


class RunObserver(Protocol):
    def run(self, dialogue: Dialogue, turn: int) -> RunTrace: ...


# Reusable: entering it does nothing and returns None.
_NO_SCOPE = nullcontext()


class _NullCall:
    def scope(self) -> AbstractContextManager[object]:
        return _NO_SCOPE

    def replied(self, reply: AgentReply, message: Message | None) -> None:
        pass

    def failed(self, failure: AgentFailure) -> None:
        pass


class _NullRun:
    def scope(self) -> AbstractContextManager[object]:
        return _NO_SCOPE

    def planned(self, model: ExecutionModel, called: Sequence[str]) -> None:
        pass

    def call(self, call: AgentCall, profile: AgentProfile | None, *, sequential: bool) -> CallTrace:
        return NULL_CALL_TRACE

    def emitted(self, event: Event) -> None:
        pass

    def finished(self, turn_count: int, failure_count: int, error: BaseException | None) -> None:
        pass


NULL_CALL_TRACE = _NullCall()
_NULL_RUN = _NullRun()


class NullObserver:
    """The default: observes nothing, costs nothing."""

    def run(self, dialogue: Dialogue, turn: int) -> RunTrace:
        return _NULL_RUN
