"""The anthropic kind through the official SDK against a loopback Messages API server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from parley.server.agents.anthropic import AnthropicAgent, alternating
from parley.server.agents.profiles import build_registry
from parley.server.agents.protocol import AgentFailure, AgentReply
from parley.server.agents.redaction import Redactor
from parley.server.agents.retry import RetryingAgent, RetryPolicy
from parley.server.engine.conversation import ChatMessage, ChatRole
from parley.server.engine.model import Usage

from .conftest import Closing
from .support import (
    SYSTEM,
    FakeAPI,
    RecordedSleep,
    Reply,
    anthropic_error,
    closed_port,
    make_call,
    said,
    upper_bound,
)

KEY = "sk-ant-test-0123456789abcdef"
USER, ASSISTANT = ChatRole.USER, ChatRole.ASSISTANT


def sent_key(headers: Mapping[str, str]) -> str:
    """The key as the SDK sent it: `x-api-key`, or a bearer token in newer SDKs."""
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def make_agent(
    closing: Closing,
    base_url: str,
    *,
    timeout: float = 30.0,
    defaults: dict[str, str] | None = None,
) -> AnthropicAgent:
    return closing(
        AnthropicAgent(
            base_url=base_url,
            api_key=KEY,
            timeout=timeout,
            defaults=defaults or {"model": "claude-test"},
            redact=Redactor([KEY]),
        )
    )


async def test_sends_system_and_conversation_and_returns_text_and_usage(
    anthropic_api: FakeAPI, closing: Closing
) -> None:
    history = [ChatMessage(USER, "[Bob]: Hello Ada"), ChatMessage(ASSISTANT, "Hello Bob")]
    call = make_call(history=history, delivered=[said(4, "Bob", "What now?")])

    reply = await make_agent(closing, anthropic_api.base_url).execute(call)

    assert reply == AgentReply("Hello from the fake Claude.", Usage(13, 5))
    [sent] = anthropic_api.received
    assert sent.json["system"] == SYSTEM
    assert sent.json["messages"] == [
        {"role": "user", "content": "[Bob]: Hello Ada"},
        {"role": "assistant", "content": "Hello Bob"},
        {"role": "user", "content": "[Bob]: What now?"},
    ]
    assert sent.json["model"] == "claude-test"
    assert sent.json["max_tokens"] == 1024
    assert sent_key(sent.headers) == KEY
    assert "anthropic-version" in sent.headers


async def test_participant_options_override_profile_defaults(
    anthropic_api: FakeAPI, closing: Closing
) -> None:
    agent = make_agent(
        closing, anthropic_api.base_url, defaults={"model": "claude-a", "max_tokens": "300"}
    )

    await agent.execute(make_call(options={"model": "claude-b"}))

    sent = anthropic_api.received[0].json
    assert (sent["model"], sent["max_tokens"]) == ("claude-b", 300)


def test_the_conversation_alternates_and_starts_with_the_user() -> None:
    """Imported replies have no delivery record: two assistant turns can meet."""
    conversation = [
        ChatMessage(ASSISTANT, "An imported reply"),
        ChatMessage(ASSISTANT, "Another one"),
        ChatMessage(USER, "[Bob]: hi"),
        ChatMessage(USER, "[Eve]: hello"),
    ]

    assert alternating(conversation) == [
        {"role": "user", "content": "(The conversation so far.)"},
        {"role": "assistant", "content": "An imported reply\n\nAnother one"},
        {"role": "user", "content": "[Bob]: hi\n\n[Eve]: hello"},
    ]


async def test_a_profile_reads_its_key_from_the_variable_it_names(
    anthropic_api: FakeAPI, closing: Closing
) -> None:
    tables = {
        "claude": {
            "kind": "anthropic",
            "model": "claude-test",
            "base_url": anthropic_api.base_url,
            "api_key_env": "PARLEY_TEST_ANTHROPIC_KEY",
            "defaults": {"max_tokens": 77},
        }
    }
    registry = closing(build_registry(tables, {"PARLEY_TEST_ANTHROPIC_KEY": KEY}))

    reply = await registry.agent("claude").execute(make_call())

    assert reply.content == "Hello from the fake Claude."
    sent = anthropic_api.received[0]
    assert sent_key(sent.headers) == KEY
    assert sent.json["max_tokens"] == 77


async def test_overload_and_rate_limits_are_retried(
    anthropic_api: FakeAPI, closing: Closing
) -> None:
    anthropic_api.then(
        Reply(529, anthropic_error("Overloaded", "overloaded_error")),
        Reply(429, anthropic_error("Slow down", "rate_limit_error"), {"retry-after": "4"}),
    )
    sleep = RecordedSleep()
    agent = RetryingAgent(
        make_agent(closing, anthropic_api.base_url),
        timeout=30.0,
        policy=RetryPolicy(attempts=3, backoff=0.5, max_backoff=10.0),
        sleep=sleep,
        uniform=upper_bound,
    )

    reply = await agent.execute(make_call())

    assert reply.content == "Hello from the fake Claude."
    assert len(anthropic_api.received) == 3
    assert sleep.waits == [0.5, 4.0]


async def test_a_retry_after_longer_than_max_backoff_is_not_waited_for(
    anthropic_api: FakeAPI, closing: Closing
) -> None:
    anthropic_api.then(Reply(429, anthropic_error("Later"), {"retry-after": "3600"}))
    sleep = RecordedSleep()
    agent = RetryingAgent(
        make_agent(closing, anthropic_api.base_url),
        timeout=30.0,
        policy=RetryPolicy(attempts=3, backoff=1.0, max_backoff=30.0),
        sleep=sleep,
    )

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable, failure.attempts) == ("RATE_LIMITED", True, 1)
    assert failure.retry_after == 3600
    assert sleep.waits == []


async def test_a_bad_request_is_rejected_at_once(anthropic_api: FakeAPI, closing: Closing) -> None:
    anthropic_api.then(Reply(400, anthropic_error("max_tokens: must be at most 8192")))

    with pytest.raises(AgentFailure) as failed:
        await make_agent(closing, anthropic_api.base_url).execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable) == ("UPSTREAM_REJECTED", False)
    assert failure.message == (
        "anthropic rejected the request (HTTP 400: max_tokens: must be at most 8192)"
    )


async def test_a_slow_upstream_times_out(anthropic_api: FakeAPI, closing: Closing) -> None:
    anthropic_api.then(Reply(hold=asyncio.Event()))
    agent = RetryingAgent(
        make_agent(closing, anthropic_api.base_url), timeout=0.3, policy=RetryPolicy()
    )

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    assert (failed.value.code, failed.value.retryable, failed.value.attempts) == (
        "AGENT_TIMEOUT",
        True,
        1,
    )


async def test_an_unreachable_endpoint_is_retryable(closing: Closing) -> None:
    agent = make_agent(closing, f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    assert (failed.value.code, failed.value.retryable) == ("UPSTREAM_UNAVAILABLE", True)
