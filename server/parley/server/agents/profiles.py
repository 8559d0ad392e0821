"""Builds the agent registry from the `[agents.NAME]` tables of the server config.

A table that cannot work as written (unknown kind or key, wrong type, bad value) stops
start-up with a ConfigError naming the table and the key. A profile that is written
correctly but cannot run on this machine - its key variable is unset, its SDK or command
is missing - is registered as unavailable with the reason, logged, and never crashes
the server: clients see it in ListAgentProfiles and its turns fail with the reason.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.server.agents import local
from parley.server.agents.command import PRESET_MODEL_FLAG, PRESETS, CommandAgent
from parley.server.agents.echo import ECHO_OPTIONS, EchoAgent, validate_echo_options
from parley.server.agents.options import (
    COMMAND_MODEL,
    LLM_OPTIONS,
    MAX_TOKENS,
    MODEL,
    TEMPERATURE,
    OptionRules,
)
from parley.server.agents.protocol import Agent
from parley.server.agents.redaction import Redactor
from parley.server.agents.registry import (
    DEFAULT_TIMEOUT_S,
    AgentProfile,
    AgentRegistry,
    OptionValidator,
    UnavailableAgent,
)
from parley.server.agents.remote import RemoteAgent
from parley.server.agents.retry import RetryPolicy
from parley.server.config import ConfigError

logger = logging.getLogger(__name__)

KINDS = ("echo", "openai", "anthropic", "command", "grpc", "local")
# Network backends fail transiently; a CLI or an embedded model failing again is
# expensive and rarely helps, so those try once unless configured otherwise.
DEFAULT_ATTEMPTS = {"echo": 1, "openai": 3, "anthropic": 3, "command": 1, "grpc": 3, "local": 1}
DEFAULT_BACKOFF_S = 1.0
DEFAULT_MAX_BACKOFF_S = 30.0
MAX_ATTEMPTS = 10
# The name under which an installed local model serves when nothing is configured.
LOCAL_PROFILE = "local"

_COMMON_KEYS = frozenset({"kind", "timeout", "retry"})
_KEYS = {
    "echo": frozenset(),
    "openai": frozenset({"model", "base_url", "api_key_env", "defaults", "allowed_options"}),
    "anthropic": frozenset({"model", "base_url", "api_key_env", "defaults", "allowed_options"}),
    "command": frozenset(
        {"preset", "argv", "model", "model_flag", "workdir", "api_key_env", "allowed_options"}
    ),
    "grpc": frozenset({"target", "tls", "model", "api_key_env", "defaults", "allowed_options"}),
    "local": frozenset({"model_path", "context_size", "threads", "defaults", "allowed_options"}),
}


def build_registry(
    tables: Mapping[str, Mapping[str, Any]], env: Mapping[str, str] | None = None
) -> AgentRegistry:
    """The built-in profiles plus one per table; secrets are read from `env`."""
    env = os.environ if env is None else env
    key_variables = frozenset(
        variable
        for table in tables.values()
        if isinstance(variable := table.get("api_key_env"), str) and variable
    )
    # Every profile's key is redacted from every backend's output, not only its own.
    redact = Redactor(env[variable] for variable in key_variables if env.get(variable))
    registry = AgentRegistry.with_builtin()
    for name, table in tables.items():
        built = _build(_Table(name, table), env, redact, key_variables)
        registry.register(built.profile, built.agent, built.validate_options)
        if not built.profile.available:
            logger.warning(
                "agent profile %r is unavailable: %s", name, built.profile.unavailable_reason
            )
    if not tables and not local.unavailable_reason(None):
        built = _build(_Table(LOCAL_PROFILE, {"kind": "local"}), env, redact, key_variables)
        registry.register(built.profile, built.agent, built.validate_options)
        logger.info("no agent profiles configured: serving the local model as %r", LOCAL_PROFILE)
    return registry


@dataclass(frozen=True, slots=True)
class _Built:
    profile: AgentProfile
    agent: Agent
    validate_options: OptionValidator


def _build(
    table: _Table, env: Mapping[str, str], redact: Redactor, key_variables: frozenset[str]
) -> _Built:
    """One profile; `key_variables` are the key variables every profile names."""
    kind = table.choice("kind", KINDS, required=True)
    table.check_keys(_COMMON_KEYS | _KEYS[kind])
    timeout = table.positive_number("timeout", DEFAULT_TIMEOUT_S)
    retry = _retry_policy(table, DEFAULT_ATTEMPTS[kind])
    if kind == "echo":
        profile = AgentProfile(
            table.name, kind, timeout=timeout, retry=retry, allowed_options=ECHO_OPTIONS
        )
        return _Built(profile, EchoAgent(), validate_echo_options)

    command_argv: tuple[str, ...] = ()
    model_flag = ""
    if kind == "command":
        command_argv, model_flag = _command_line(table)
        kind_options: frozenset[str] = frozenset({MODEL}) if model_flag else frozenset()
    elif kind == "local":
        kind_options = frozenset({TEMPERATURE, MAX_TOKENS})
    elif kind == "anthropic":
        kind_options = frozenset({MODEL, MAX_TOKENS})
    else:
        kind_options = LLM_OPTIONS
    allowed = table.subset("allowed_options", kind_options, f"an option of the {kind} kind")
    rules = OptionRules(allowed, model_pattern=COMMAND_MODEL if kind == "command" else None)
    defaults = _defaults(table, rules, kind_options - {MODEL})
    model = table.string("model", required=kind in ("openai", "anthropic"))
    if model:
        if problem := rules.value_problem(MODEL, model):
            raise table.error("model", problem)
        defaults[MODEL] = model

    key_variable = table.string("api_key_env", default=_default_key_variable(kind, table))
    api_key = env.get(key_variable, "") if key_variable else ""
    reason = (
        f"environment variable {key_variable} is not set" if key_variable and not api_key else ""
    )

    agent: Agent | None = None
    match kind:
        case "openai" | "anthropic":
            base_url = table.url("base_url")
            reason = _missing_package(kind) or reason
            if not reason:
                agent = _sdk_agent(kind, base_url, api_key, timeout, defaults, redact)
        case "command":
            workdir = table.directory("workdir")
            if shutil.which(command_argv[0]) is None:
                reason = f"command {command_argv[0]!r} was not found on PATH"
            if not reason:
                # A CLI sees its own key, if it names one, but no other profile's.
                hidden = key_variables - {key_variable}
                agent = CommandAgent(
                    command_argv,
                    model_flag=model_flag,
                    defaults=defaults,
                    redact=redact,
                    workdir=workdir,
                    env={k: v for k, v in env.items() if k not in hidden},
                )
        case "grpc":
            target = table.target("target")
            tls = table.boolean("tls", default=False)
            if not reason:
                agent = RemoteAgent(
                    target,
                    timeout=timeout,
                    defaults=defaults,
                    redact=redact,
                    api_key=api_key,
                    tls=tls,
                )
        case "local":
            model_path = table.string("model_path") or None
            context_size = table.positive_int("context_size", local.DEFAULT_CONTEXT)
            threads = table.optional_positive_int("threads")
            reason = local.unavailable_reason(model_path)
            model = Path(model_path).name if model_path else "gemma-3-270m"
            if not reason:
                agent = local.LocalAgent(
                    model_path=model_path,
                    context_size=context_size,
                    threads=threads,
                    defaults=defaults,
                )
    profile = AgentProfile(
        table.name,
        kind,
        model=model,
        timeout=timeout,
        retry=retry,
        allowed_options=allowed,
        available=agent is not None,
        unavailable_reason=reason,
    )
    return _Built(profile, agent or UnavailableAgent(reason), rules.problems)


def _default_key_variable(kind: str, table: _Table) -> str:
    """What users of each provider expect when the table names no variable."""
    if kind == "anthropic":
        return "ANTHROPIC_API_KEY"
    if kind == "openai" and "base_url" not in table.values:
        # api.openai.com always needs a key; a local server (Ollama, vLLM) usually not.
        return "OPENAI_API_KEY"
    return ""


def _missing_package(kind: str) -> str:
    if importlib.util.find_spec(kind) is None:
        return f"the {kind} package is not installed (pip install 'parley[{kind}]')"
    return ""


def _sdk_agent(
    kind: str,
    base_url: str,
    api_key: str,
    timeout: float,
    defaults: Mapping[str, str],
    redact: Redactor,
) -> Agent:
    # Imported here: the SDKs are optional extras.
    if kind == "openai":
        from parley.server.agents.openai import DEFAULT_BASE_URL, OpenAIAgent

        return OpenAIAgent(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key,
            timeout=timeout,
            defaults=defaults,
            redact=redact,
        )
    from parley.server.agents.anthropic import DEFAULT_BASE_URL as ANTHROPIC_URL
    from parley.server.agents.anthropic import AnthropicAgent

    return AnthropicAgent(
        base_url=base_url or ANTHROPIC_URL,
        api_key=api_key,
        timeout=timeout,
        defaults=defaults,
        redact=redact,
    )


def _command_line(table: _Table) -> tuple[tuple[str, ...], str]:
    """The argv of a command profile and the flag that passes a model ("" for none)."""
    has_preset, has_argv = "preset" in table.values, "argv" in table.values
    if has_preset == has_argv:
        raise ConfigError(
            f"[agents.{table.name}] set either preset (one of {sorted(PRESETS)}) or argv"
        )
    if has_preset:
        argv = PRESETS[table.choice("preset", tuple(PRESETS), required=True)]
        default_flag = PRESET_MODEL_FLAG
    else:
        argv = table.strings("argv")
        if not argv or not all(argv):
            raise table.error("argv", "must be a non-empty list of non-empty strings")
        default_flag = ""
    model_flag = table.string("model_flag", default=default_flag)
    if model_flag and not model_flag.startswith("-"):
        raise table.error("model_flag", "must be a flag such as --model")
    if "model" in table.values and not model_flag:
        raise table.error("model", "needs model_flag to pass it to the command")
    return argv, model_flag


def _retry_policy(table: _Table, default_attempts: int) -> RetryPolicy:
    retry = _Table(f"{table.name}.retry", table.table("retry"))
    retry.check_keys({"attempts", "backoff", "max_backoff"})
    attempts = retry.positive_int("attempts", default_attempts)
    if attempts > MAX_ATTEMPTS:
        raise retry.error("attempts", f"must be at most {MAX_ATTEMPTS}")
    backoff = retry.number("backoff", DEFAULT_BACKOFF_S)
    max_backoff = retry.number("max_backoff", max(DEFAULT_MAX_BACKOFF_S, backoff))
    if backoff < 0:
        raise retry.error("backoff", "must not be negative")
    if max_backoff < backoff:
        raise retry.error("max_backoff", "must not be less than backoff")
    return RetryPolicy(attempts, backoff, max_backoff)


def _defaults(table: _Table, rules: OptionRules, allowed: Collection[str]) -> dict[str, str]:
    """The `defaults` table as option strings, checked like a client's options."""
    defaults = _Table(f"{table.name}.defaults", table.table("defaults"))
    defaults.check_keys(allowed)
    values: dict[str, str] = {}
    for key, value in defaults.values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise defaults.error(key, "must be a number")
        text = str(value)
        if problem := rules.value_problem(key, text):
            raise defaults.error(key, problem)
        values[key] = text
    return values


class _Table:
    """One config table, read with errors that name the table and the key."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self.name = name
        self.values = values

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"[agents.{self.name}] {key} {problem}")

    def check_keys(self, allowed: Collection[str]) -> None:
        unknown = sorted(set(self.values) - set(allowed))
        if unknown:
            raise ConfigError(
                f"[agents.{self.name}] unknown settings {unknown} (known: {sorted(allowed)})"
            )

    def string(self, key: str, *, default: str = "", required: bool = False) -> str:
        if key not in self.values:
            if required:
                raise self.error(key, "is required")
            return default
        value = self.values[key]
        if not isinstance(value, str) or (required and not value):
            raise self.error(key, "must be a non-empty string" if required else "must be a string")
        return value

    def choice(self, key: str, choices: Collection[str], *, required: bool = False) -> str:
        value = self.string(key, required=required)
        if value not in choices:
            raise self.error(key, f"{value!r} is not one of {list(choices)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)

    def subset(self, key: str, universe: frozenset[str], what: str) -> frozenset[str]:
        if key not in self.values:
            return universe
        chosen = frozenset(self.strings(key))
        extra = sorted(chosen - universe)
        if extra:
            raise self.error(key, f"{extra} are not {what} (those are {sorted(universe)})")
        return chosen

    def number(self, key: str, default: float) -> float:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, "must be a number")
        return float(value)

    def positive_number(self, key: str, default: float) -> float:
        value = self.number(key, default)
        if value <= 0:
            raise self.error(key, "must be a positive number of seconds")
        return value

    def positive_int(self, key: str, default: int) -> int:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(key, "must be a positive whole number")
        return value

    def optional_positive_int(self, key: str) -> int | None:
        return self.positive_int(key, 1) if key in self.values else None

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.values.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a table")
        return value

    def url(self, key: str) -> str:
        value = self.string(key)
        if value and not value.startswith(("http://", "https://")):
            raise self.error(key, "must be an http:// or https:// URL")
        return value

    def target(self, key: str) -> str:
        value = self.string(key, required=True)
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise self.error(key, "must be HOST:PORT")
        return value

    def directory(self, key: str) -> str | None:
        value = self.string(key)
        if not value:
            return None
        if not Path(value).is_dir():
            raise self.error(key, f"{value!r} is not a directory")
        return value
