"""Profiles from `[agents.NAME]` tables: kinds, keys, availability and option checks."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from parley.server.agents import local
from parley.server.agents.profiles import build_registry
from parley.server.agents.protocol import AgentFailure
from parley.server.agents.registry import AgentProfile, AgentRegistry
from parley.server.agents.retry import RetryPolicy
from parley.server.config import ConfigError

from .conftest import Closing
from .support import make_call

KEY = "sk-profile-test-0123456789"


def tables(toml: str) -> dict[str, Any]:
    agents: dict[str, Any] = tomllib.loads(toml)["agents"]
    return agents


def profile_of(registry: AgentRegistry, name: str) -> AgentProfile:
    profile = registry.profile(name)
    assert profile is not None
    return profile


@pytest.fixture
def built(closing: Closing) -> Builder:
    def build(toml: str, env: Mapping[str, str] | None = None) -> AgentRegistry:
        return closing(build_registry(tables(toml), env or {}))

    return build


class Builder(Protocol):
    def __call__(self, toml: str, env: Mapping[str, str] | None = None) -> AgentRegistry: ...


EVERY_KIND = f"""
[agents.gpt]
kind = "openai"
model = "gpt-test"
api_key_env = "TEST_OPENAI_KEY"
timeout = 45
retry = {{ attempts = 4, backoff = 0.5, max_backoff = 8 }}
defaults = {{ temperature = 0.7, max_tokens = 512 }}

[agents.ollama]
kind = "openai"
model = "llama3.2"
base_url = "http://127.0.0.1:11434/v1"
allowed_options = ["temperature"]

[agents.claude]
kind = "anthropic"
model = "claude-test"
api_key_env = "TEST_ANTHROPIC_KEY"

[agents.cli]
kind = "command"
argv = ["cat"]

[agents.remote]
kind = "grpc"
target = "127.0.0.1:50061"

[agents.tiny]
kind = "local"
model_path = "{Path(__file__)}"
"""


def test_every_kind_is_configured_from_its_table(built: Builder) -> None:
    registry = built(EVERY_KIND, {"TEST_OPENAI_KEY": KEY, "TEST_ANTHROPIC_KEY": KEY})

    gpt = profile_of(registry, "gpt")
    assert (gpt.kind, gpt.model, gpt.timeout, gpt.available) == ("openai", "gpt-test", 45, True)
    assert gpt.retry == RetryPolicy(attempts=4, backoff=0.5, max_backoff=8.0)
    assert gpt.allowed_options == {"model", "temperature", "max_tokens"}
    assert profile_of(registry, "ollama").allowed_options == {"temperature"}
    assert profile_of(registry, "claude").allowed_options == {"model", "max_tokens"}
    assert profile_of(registry, "cli").allowed_options == frozenset()
    assert profile_of(registry, "remote").retry.attempts == 3
    assert profile_of(registry, "cli").retry.attempts == 1
    assert profile_of(registry, "echo").available


def test_a_missing_key_makes_a_profile_unavailable_without_revealing_anything(
    built: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        registry = built(EVERY_KIND, {"TEST_OPENAI_KEY": KEY})

    claude = profile_of(registry, "claude")
    assert not claude.available
    assert claude.unavailable_reason == "environment variable TEST_ANTHROPIC_KEY is not set"
    assert "TEST_ANTHROPIC_KEY is not set" in caplog.text
    assert KEY not in caplog.text
    assert profile_of(registry, "gpt").available


async def test_an_unavailable_profile_fails_its_calls_with_the_reason(built: Builder) -> None:
    registry = built(EVERY_KIND)

    with pytest.raises(AgentFailure) as failed:
        await registry.agent("claude").execute(make_call())

    assert failed.value.code == "AGENT_UNAVAILABLE"
    assert "TEST_ANTHROPIC_KEY" in failed.value.message


def test_the_official_endpoints_expect_their_usual_key_variables(built: Builder) -> None:
    registry = built(
        """
        [agents.gpt]
        kind = "openai"
        model = "gpt-test"
        [agents.claude]
        kind = "anthropic"
        model = "claude-test"
        """
    )

    assert "OPENAI_API_KEY" in profile_of(registry, "gpt").unavailable_reason
    assert "ANTHROPIC_API_KEY" in profile_of(registry, "claude").unavailable_reason


def test_a_command_that_is_not_installed_is_unavailable(built: Builder) -> None:
    registry = built(
        """
        [agents.claude-cli]
        kind = "command"
        preset = "claude"
        [agents.custom]
        kind = "command"
        argv = ["/nonexistent/parley-agent", "--quiet"]
        """
    )

    cli = profile_of(registry, "claude-cli")
    assert cli.allowed_options == {"model"}
    assert (
        "'/nonexistent/parley-agent' was not found"
        in profile_of(registry, "custom").unavailable_reason
    )


def test_the_local_kind_says_what_to_install(built: Builder) -> None:
    reason = local.unavailable_reason(None)
    if not reason:
        pytest.skip("llama-cpp-python and the model are installed here")

    registry = built('[agents.tiny]\nkind = "local"')

    tiny = profile_of(registry, "tiny")
    assert (tiny.available, tiny.unavailable_reason) == (False, reason)
    assert "parley[local]" in reason


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[agents.x]\nkind = "telepathy"', "[agents.x] kind 'telepathy' is not one of"),
        ("[agents.x]\nmodel = 'm'", "[agents.x] kind is required"),
        ('[agents.x]\nkind = "openai"', "[agents.x] model is required"),
        ('[agents.x]\nkind = "openai"\nmodel = "m"\nbase = "http://h"', "unknown settings"),
        ('[agents.x]\nkind = "echo"\ntimeout = 0', "timeout must be a positive number"),
        ('[agents.x]\nkind = "echo"\ntimeout = "fast"', "timeout must be a number"),
        ('[agents.x]\nkind = "echo"\nretry = { attempts = 0 }', "attempts must be a positive"),
        ('[agents.x]\nkind = "echo"\nretry = { attempts = 99 }', "attempts must be at most"),
        ('[agents.x]\nkind = "echo"\nretry = { backoff = -1 }', "backoff must not be negative"),
        ('[agents.x]\nkind = "echo"\nretry = { backoff = 5, max_backoff = 1 }', "max_backoff"),
        ('[agents.x]\nkind = "echo"\nretry = { tries = 2 }', "[agents.x.retry] unknown"),
        (
            '[agents.x]\nkind = "openai"\nmodel = "m"\nbase_url = "ftp://h"',
            "base_url must be an http:// or https:// URL",
        ),
        (
            '[agents.x]\nkind = "openai"\nmodel = "m"\nallowed_options = ["base_url"]',
            "allowed_options ['base_url'] are not an option of the openai kind",
        ),
        (
            '[agents.x]\nkind = "anthropic"\nmodel = "m"\nallowed_options = ["temperature"]',
            "are not an option of the anthropic kind",
        ),
        (
            '[agents.x]\nkind = "openai"\nmodel = "m"\ndefaults = { temperature = 3 }',
            "[agents.x.defaults] temperature must be a number from 0 to 2",
        ),
        (
            '[agents.x]\nkind = "openai"\nmodel = "m"\ndefaults = { max_tokens = 0 }',
            "max_tokens must be a whole number from 1 to 1000000",
        ),
        (
            '[agents.x]\nkind = "openai"\nmodel = "m"\ndefaults = { stop = 1 }',
            "[agents.x.defaults] unknown settings ['stop']",
        ),
        ('[agents.x]\nkind = "command"', "set either preset"),
        ('[agents.x]\nkind = "command"\npreset = "claude"\nargv = ["a"]', "set either preset"),
        ('[agents.x]\nkind = "command"\npreset = "emacs"', "preset 'emacs' is not one of"),
        ('[agents.x]\nkind = "command"\nargv = []', "argv must be a non-empty list"),
        ('[agents.x]\nkind = "command"\nargv = ["cat"]\nmodel = "m"', "model needs model_flag"),
        (
            '[agents.x]\nkind = "command"\npreset = "codex"\nmodel = "--yolo"',
            "model must be letters, digits",
        ),
        ('[agents.x]\nkind = "command"\nargv = ["cat"]\nworkdir = "/nonexistent/dir"', "workdir"),
        ('[agents.x]\nkind = "grpc"', "[agents.x] target is required"),
        ('[agents.x]\nkind = "grpc"\ntarget = "localhost"', "target must be HOST:PORT"),
        ('[agents.x]\nkind = "local"\ncontext_size = -1', "context_size must be a positive"),
    ],
)
def test_a_bad_table_stops_start_up_with_a_clear_message(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_registry(tables(toml), {})

    assert message in str(error.value)


@pytest.mark.parametrize(
    ("options", "problems"),
    [
        ({"model": "gpt-other", "temperature": "1.2", "max_tokens": "2048"}, {}),
        ({"base_url": "http://evil"}, {"base_url": "not allowed"}),
        ({"api_key": "x"}, {"api_key": "not allowed"}),
        ({"temperature": "2.5"}, {"temperature": "from 0 to 2"}),
        ({"temperature": "nan"}, {"temperature": "from 0 to 2"}),
        ({"temperature": "warm"}, {"temperature": "from 0 to 2"}),
        ({"max_tokens": "0"}, {"max_tokens": "from 1 to 1000000"}),
        ({"max_tokens": "1000001"}, {"max_tokens": "from 1 to 1000000"}),
        ({"max_tokens": "12.5"}, {"max_tokens": "from 1 to 1000000"}),
        ({"model": ""}, {"model": "1 to 200 characters"}),
        ({"model": "m" * 201}, {"model": "1 to 200 characters"}),
    ],
)
def test_client_options_are_checked_against_the_allow_list(
    built: Builder, options: dict[str, str], problems: dict[str, str]
) -> None:
    registry = built(EVERY_KIND, {"TEST_OPENAI_KEY": KEY})

    found = registry.option_problems("gpt", options)

    assert found.keys() == problems.keys()
    for key, fragment in problems.items():
        assert fragment in found[key]


def test_a_profile_may_narrow_the_allow_list(built: Builder) -> None:
    registry = built(EVERY_KIND)

    assert registry.option_problems("ollama", {"temperature": "0.1"}) == {}
    assert set(registry.option_problems("ollama", {"model": "x", "max_tokens": "5"})) == {
        "model",
        "max_tokens",
    }
    assert registry.option_problems("cli", {"model": "x"}) == {
        "model": "this agent profile accepts no options"
    }
