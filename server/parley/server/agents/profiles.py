"""Builds the agent registry from the `[agents.NAME]` tables of the server config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley.server.agents.echo import ECHO_OPTIONS, EchoAgent, validate_echo_options
from parley.server.agents.registry import DEFAULT_TIMEOUT_S, AgentProfile, AgentRegistry
from parley.server.config import ConfigError

KINDS = ("echo",)


def build_registry(tables: Mapping[str, Mapping[str, Any]]) -> AgentRegistry:
    """The built-in profiles plus one per table; a bad table stops start-up with a reason."""
    registry = AgentRegistry.with_builtin()
    for name, table in tables.items():
        kind = table.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"[agents.{name}] kind {kind!r} is not one of {list(KINDS)}")
        timeout = table.get("timeout", DEFAULT_TIMEOUT_S)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"[agents.{name}] timeout must be a positive number of seconds")
        registry.register(
            AgentProfile(name, kind, timeout=float(timeout), allowed_options=ECHO_OPTIONS),
            EchoAgent(),
            validate_echo_options,
        )
    return registry
