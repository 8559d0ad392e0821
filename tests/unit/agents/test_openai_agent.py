"""The openai kind through the official SDK against a loopback chat-completions server."""

from __future__ import annotations

import asyncio
from typing import Protocol

import pytest
from parley.server.agents.openai import OpenAIAgent
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
    closed_port,
    make_call,
    openai_error,
    said,
    upper_bound,
)

KEY = "sk-test-0123456789abcdef"


class AgentFactory(Protocol):
    def __call__(
        self, api: FakeAPI, *, timeout: float = ..., defaults: dict[str, str] | None = ...
    ) -> OpenAIAgent: ...


@pytest.fixture
def agent_for(closing: Closing) -> AgentFactory:
    def make(
        api: FakeAPI, *, timeout: float = 30.0, defaults: dict[str, str] | None = None
    ) -> OpenAIAgent:
        return closing(
            OpenAIAgent(
                base_url=f"{api.base_url}/v1",
                api_key=KEY,
                timeout=timeout,
                defaults=defaults or {"model": "test-model"},
                redact=Redactor([KEY]),
            )
        )

    return make


def retrying(agent: OpenAIAgent, sleep: RecordedSleep, attempts: int = 3) -> RetryingAgent:
    policy = RetryPolicy(attempts=attempts, backoff=1.0, max_backoff=10.0)
    return RetryingAgent(agent, timeout=30.0, policy=policy, sleep=sleep, uniform=upper_bound)


async def test_sends_the_chat_form_and_returns_content_and_usage(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    history = [
        ChatMessage(ChatRole.USER, "[Bob]: Hello Ada"),
        ChatMessage(ChatRole.ASSISTANT, "Hello Bob"),
    ]
    call = make_call(history=history, delivered=[said(4, "Bob", "What now?")])

    reply = await agent_for(openai_api).execute(call)

    assert reply == AgentReply("Hello from the fake.", Usage(input_tokens=11, output_tokens=7))
    [sent] = openai_api.received
    assert sent.json["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "[Bob]: Hello Ada"},
        {"role": "assistant", "content": "Hello Bob"},
        {"role": "user", "content": "[Bob]: What now?"},
    ]
    assert sent.json["model"] == "test-model"
    assert "temperature" not in sent.json
    assert "max_tokens" not in sent.json
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_participant_options_override_profile_defaults(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    defaults = {"model": "base-model", "temperature": "0.2", "max_tokens": "64"}
    agent = agent_for(openai_api, defaults=defaults)

    await agent.execute(make_call(options={"model": "other-model", "temperature": "1.5"}))

    sent = openai_api.received[0].json
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("other-model", 1.5, 64)


async def test_a_profile_reads_its_key_from_the_variable_it_names(
    openai_api: FakeAPI, closing: Closing
) -> None:
    tables = {
        "gpt": {
            "kind": "openai",
            "model": "test-model",
            "base_url": f"{openai_api.base_url}/v1",
            "api_key_env": "PARLEY_TEST_OPENAI_KEY",
            "defaults": {"temperature": 0.3},
        }
    }
    registry = closing(build_registry(tables, {"PARLEY_TEST_OPENAI_KEY": KEY}))

    reply = await registry.agent("gpt").execute(make_call())

    assert reply.content == "Hello from the fake."
    sent = openai_api.received[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["temperature"] == 0.3


async def test_a_keyless_endpoint_never_gets_the_ambient_openai_key(
    openai_api: FakeAPI, closing: Closing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ollama, vLLM and llama.cpp profiles name no variable; OPENAI_API_KEY stays home."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-must-not-leak")
    url = f"{openai_api.base_url}/v1"
    tables = {"ollama": {"kind": "openai", "model": "llama3", "base_url": url}}
    registry = closing(build_registry(tables, {}))

    await registry.agent("ollama").execute(make_call())

    assert "sk-ambient" not in openai_api.received[0].headers.get("authorization", "")


async def test_a_rate_limit_is_retried_after_the_wait_it_asks_for(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(429, openai_error("slow down", "rate_limit"), {"retry-after": "7"}))
    sleep = RecordedSleep()

    reply = await retrying(agent_for(openai_api), sleep).execute(make_call())

    assert reply.content == "Hello from the fake."
    assert len(openai_api.received) == 2
    assert sleep.waits == [7.0]


async def test_server_errors_are_retried_with_growing_backoff_until_attempts_run_out(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(*[Reply(500, openai_error("boom", "server_error"))] * 3)
    sleep = RecordedSleep()

    with pytest.raises(AgentFailure) as failed:
        await retrying(agent_for(openai_api), sleep).execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable, failure.attempts) == ("UPSTREAM_ERROR", True, 3)
    assert "HTTP 500" in failure.message
    assert len(openai_api.received) == 3
    assert sleep.waits == [1.0, 2.0]


async def test_a_rejected_request_is_not_retried_and_its_reason_is_redacted(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(400, openai_error(f"model 'x' not found (key {KEY})")))
    sleep = RecordedSleep()

    with pytest.raises(AgentFailure) as failed:
        await retrying(agent_for(openai_api), sleep).execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable, failure.attempts) == ("UPSTREAM_REJECTED", False, 1)
    assert "HTTP 400" in failure.message
    assert "model 'x' not found" in failure.message
    assert KEY not in failure.message
    assert "[redacted]" in failure.message
    assert sleep.waits == []
    assert len(openai_api.received) == 1


async def test_a_credentials_error_shows_only_the_status(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(401, openai_error("Incorrect API key provided: sk-te***cdef")))

    with pytest.raises(AgentFailure) as failed:
        await agent_for(openai_api).execute(make_call())

    assert failed.value.message == "openai refused the credentials (HTTP 401)"
    assert not failed.value.retryable


async def test_a_slow_upstream_times_out_every_attempt(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(hold=asyncio.Event()), Reply(hold=asyncio.Event()))
    policy = RetryPolicy(attempts=2)
    agent = RetryingAgent(agent_for(openai_api), timeout=0.3, policy=policy, sleep=RecordedSleep())

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable, failure.attempts) == ("AGENT_TIMEOUT", True, 2)
    assert len(openai_api.received) == 2


async def test_the_sdk_timeout_is_a_retryable_timeout(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(hold=asyncio.Event()))

    with pytest.raises(AgentFailure) as failed:
        await agent_for(openai_api, timeout=0.3).execute(make_call())

    assert (failed.value.code, failed.value.retryable) == ("AGENT_TIMEOUT", True)


async def test_an_unreachable_endpoint_is_retryable(closing: Closing) -> None:
    agent = closing(
        OpenAIAgent(
            base_url=f"http://127.0.0.1:{closed_port()}/v1",
            api_key=KEY,
            timeout=30.0,
            defaults={"model": "m"},
            redact=Redactor([KEY]),
        )
    )

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    assert (failed.value.code, failed.value.retryable) == ("UPSTREAM_UNAVAILABLE", True)


async def test_cancellation_reaches_the_request_and_is_not_swallowed(
    openai_api: FakeAPI, agent_for: AgentFactory
) -> None:
    openai_api.then(Reply(hold=asyncio.Event()))
    task = asyncio.create_task(agent_for(openai_api).execute(make_call()))
    await openai_api.arrived.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
