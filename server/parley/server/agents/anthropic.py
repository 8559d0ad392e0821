"""The `anthropic` kind: Claude through the Messages API.

The system prompt goes in `system`; the conversation must alternate user and assistant
and begin with the user, so consecutive turns of one role are merged and a
conversation that begins with the participant's own (imported) reply gets a short user
opening. The SDK's own retries are off: the shared retry wrapper decides. The Messages
API takes no temperature, so this kind's options are model and max_tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anthropic
from anthropic.types import AssistantMessageParam, MessageParam, UserMessageParam
from parley.server.agents.options import Generation
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.redaction import Redactor
from parley.server.agents.upstream import retry_after_seconds, short_reason, status_failure
from parley.server.engine.conversation import ChatMessage, ChatRole, chat_messages
from parley.server.engine.model import Usage

SERVICE = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
# The Messages API requires max_tokens; this suits conversational turns.
DEFAULT_MAX_TOKENS = 1024
CONVERSATION_OPENING = "(The conversation so far.)"
NO_KEY = "no-key"


class AnthropicAgent:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        defaults: Mapping[str, str],
        redact: Redactor,
    ) -> None:
        # Always a key: without one the SDK would look for credentials of its own (its
        # environment variables, profile files). A keyless proxy ignores the placeholder.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or NO_KEY, base_url=base_url, max_retries=0, timeout=timeout
        )
        self._defaults = dict(defaults)
        self._redact = redact

    async def execute(self, call: AgentCall) -> AgentReply:
        generation = Generation.resolve(self._defaults, call.options)
        system, *conversation = chat_messages(call.system, await call.history(), call.delivered)
        try:
            response = await self._client.messages.create(
                model=generation.model,
                system=system.content,
                messages=alternating(conversation),
                max_tokens=generation.max_tokens or DEFAULT_MAX_TOKENS,
            )
        except anthropic.APIStatusError as error:
            raise status_failure(
                SERVICE,
                error.status_code,
                reason=short_reason(error.body, self._redact),
                retry_after=retry_after_seconds(error.response.headers),
            ) from None
        except anthropic.APITimeoutError:
            raise AgentFailure(
                "AGENT_TIMEOUT", f"{SERVICE} did not answer in time", retryable=True
            ) from None
        except anthropic.APIConnectionError:
            raise AgentFailure(
                "UPSTREAM_UNAVAILABLE",
                f"could not connect to the {SERVICE} endpoint",
                retryable=True,
            ) from None
        except anthropic.AnthropicError:
            raise AgentFailure(
                "UPSTREAM_ERROR", f"{SERVICE} sent a response that could not be read"
            ) from None
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = response.usage
        return AgentReply(text, Usage(usage.input_tokens, usage.output_tokens))

    async def aclose(self) -> None:
        await self._client.close()


def alternating(conversation: Sequence[ChatMessage]) -> list[MessageParam]:
    """User and assistant turns, strictly alternating and starting with the user."""
    turns: list[tuple[ChatRole, list[str]]] = []
    for message in conversation:
        if turns and turns[-1][0] is message.role:
            turns[-1][1].append(message.content)
        else:
            turns.append((message.role, [message.content]))
    if turns and turns[0][0] is not ChatRole.USER:
        turns.insert(0, (ChatRole.USER, [CONVERSATION_OPENING]))
    return [_message(role, "\n\n".join(parts)) for role, parts in turns]


def _message(role: ChatRole, content: str) -> MessageParam:
    if role is ChatRole.ASSISTANT:
        return AssistantMessageParam(role="assistant", content=content)
    return UserMessageParam(role="user", content=content)
