"""Agent profiles: the server-side names participants refer to in `agent`.

Profiles come from the server's configuration, never from clients; `echo` is always
present. The registry answers which profiles exist, which options a client may set for
each, and which agent instance serves a call: every agent is served through the retry
wrapper, under its profile's timeout and retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from parley.server.agents.echo import ECHO_OPTIONS, EchoAgent, validate_echo_options
from parley.server.agents.protocol import Agent, AgentCall, AgentFailure, AgentReply
from parley.server.agents.retry import RetryingAgent, RetryPolicy

ECHO_PROFILE = "echo"
DEFAULT_TIMEOUT_S = 120.0

OptionValidator = Callable[[Mapping[str, str]], dict[str, str]]


@dataclass(frozen=True, slots=True)
class AgentProfile:
    name: str
    kind: str
    model: str = ""
    # Seconds one attempt may take.
    timeout: float = DEFAULT_TIMEOUT_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Option names clients may set per participant (the kind's allow-list).
    allowed_options: frozenset[str] = frozenset()
    available: bool = True
    # Why an unavailable profile cannot serve calls (for example a missing API key
    # variable); safe to show clients: it names the variable, never its value.
    unavailable_reason: str = ""


class UnavailableAgent:
    """Serves a profile that cannot run here: every call fails with the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def execute(self, call: AgentCall) -> AgentReply:
        raise AgentFailure("AGENT_UNAVAILABLE", self.reason)


@runtime_checkable
class Closeable(Protocol):
    """A backend holding connections (an HTTP client, a gRPC channel)."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    profile: AgentProfile
    # `backend` as calls reach it: through the retry wrapper.
    agent: Agent
    backend: Agent
    validate_options: OptionValidator


class AgentRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @classmethod
    def with_builtin(cls) -> AgentRegistry:
        registry = cls()
        registry.register(
            AgentProfile(ECHO_PROFILE, "echo", timeout=3600.0, allowed_options=ECHO_OPTIONS),
            EchoAgent(),
            validate_echo_options,
        )
        return registry

    def register(
        self, profile: AgentProfile, agent: Agent, validate_options: OptionValidator
    ) -> None:
        served = RetryingAgent(agent, timeout=profile.timeout, policy=profile.retry)
        self._entries[profile.name] = _Entry(profile, served, agent, validate_options)

    def __iter__(self) -> Iterator[AgentProfile]:
        return iter(entry.profile for entry in self._entries.values())

    def profile(self, name: str) -> AgentProfile | None:
        entry = self._entries.get(name)
        return entry.profile if entry else None

    def agent(self, name: str) -> Agent:
        return self._entries[name].agent

    async def aclose(self) -> None:
        """Closes the backends' connections (HTTP clients, gRPC channels)."""
        for entry in self._entries.values():
            if isinstance(entry.backend, Closeable):
                await entry.backend.aclose()

    def option_problems(self, name: str, options: Mapping[str, str]) -> dict[str, str]:
        """Bad options for profile `name`: option key -> description."""
        return self._entries[name].validate_options(options)
