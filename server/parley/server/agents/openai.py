"""The `openai` kind: any OpenAI-compatible chat-completions endpoint.

OpenAI itself, vLLM, llama.cpp's server, Ollama's /v1, LM Studio and OpenRouter all
speak this format. The participant gets the chat form: the system prompt, its private
conversation so far, then the messages new to it. The SDK's own retries are off: the
shared retry wrapper decides, so attempts are counted once and backoff is shared.
"""

from __future__ import annotations

from collections.abc import Mapping

import openai
from openai.types.chat import ChatCompletionMessageParam
from parley.server.agents.options import Generation
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.redaction import Redactor
from parley.server.agents.upstream import retry_after_seconds, short_reason, status_failure
from parley.server.engine.conversation import ChatMessage, ChatRole, chat_messages
from parley.server.engine.model import NO_USAGE, Usage

SERVICE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Keyless servers (Ollama, vLLM, llama.cpp without --api-key) ignore the header, but
# the SDK insists on some key and would otherwise read OPENAI_API_KEY by itself.
NO_KEY = "no-key"


class OpenAIAgent:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        defaults: Mapping[str, str],
        redact: Redactor,
    ) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY, base_url=base_url, max_retries=0, timeout=timeout
        )
        self._defaults = dict(defaults)
        self._redact = redact

    async def execute(self, call: AgentCall) -> AgentReply:
        generation = Generation.resolve(self._defaults, call.options)
        messages = chat_messages(call.system, await call.history(), call.delivered)
        try:
            completion = await self._client.chat.completions.create(
                model=generation.model,
                messages=[_to_openai(message) for message in messages],
                temperature=openai.omit
                if generation.temperature is None
                else generation.temperature,
                max_tokens=openai.omit if generation.max_tokens is None else generation.max_tokens,
            )
        except openai.APIStatusError as error:
            raise status_failure(
                SERVICE,
                error.status_code,
                reason=short_reason(error.body, self._redact),
                retry_after=retry_after_seconds(error.response.headers),
            ) from None
        except openai.APITimeoutError:
            raise AgentFailure(
                "AGENT_TIMEOUT", f"{SERVICE} did not answer in time", retryable=True
            ) from None
        except openai.APIConnectionError:
            raise AgentFailure(
                "UPSTREAM_UNAVAILABLE",
                f"could not connect to the {SERVICE} endpoint",
                retryable=True,
            ) from None
        except openai.OpenAIError:
            raise AgentFailure(
                "UPSTREAM_ERROR", f"{SERVICE} sent a response that could not be read"
            ) from None
        if not completion.choices:
            raise AgentFailure("UPSTREAM_ERROR", f"{SERVICE} returned no choices")
        usage = completion.usage
        return AgentReply(
            completion.choices[0].message.content or "",
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage else NO_USAGE,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _to_openai(message: ChatMessage) -> ChatCompletionMessageParam:
    match message.role:
        case ChatRole.SYSTEM:
            return {"role": "system", "content": message.content}
        case ChatRole.ASSISTANT:
            return {"role": "assistant", "content": message.content}
        case ChatRole.USER:
            return {"role": "user", "content": message.content}
