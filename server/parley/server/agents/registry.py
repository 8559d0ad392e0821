"""Agent profiles: the server-side names participants refer to in `agent`.

Profiles come from the server's configuration, never from clients; `echo` is always
present. The registry answers which profiles exist, which options a client may set for
each, and which agent instance serves a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from parley.server.agents.echo import ECHO_OPTIONS, EchoAgent, validate_echo_options
from parley.server.agents.protocol import Agent

ECHO_PROFILE = "echo"
DEFAULT_TIMEOUT_S = 120.0

OptionValidator = Callable[[Mapping[str, str]], dict[str, str]]


@dataclass(frozen=True, slots=True)
class AgentProfile:
    name: str
    kind: str
    model: str = ""
    timeout: float = DEFAULT_TIMEOUT_S
    # Option names clients may set per participant (the kind's allow-list).
    allowed_options: frozenset[str] = frozenset()
    available: bool = True
    # Why an unavailable profile cannot serve calls (for example a missing API key
    # variable); safe to show clients: it names the variable, never its value.
    unavailable_reason: str = ""


@dataclass(frozen=True, slots=True)
class _Entry:
    profile: AgentProfile
    agent: Agent
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
        self._entries[profile.name] = _Entry(profile, agent, validate_options)

    def __iter__(self) -> Iterator[AgentProfile]:
        return iter(entry.profile for entry in self._entries.values())

    def profile(self, name: str) -> AgentProfile | None:
        entry = self._entries.get(name)
        return entry.profile if entry else None

    def agent(self, name: str) -> Agent:
        return self._entries[name].agent

    def option_problems(self, name: str, options: Mapping[str, str]) -> dict[str, str]:
        """Bad options for profile `name`: option key -> description."""
        return self._entries[name].validate_options(options)
