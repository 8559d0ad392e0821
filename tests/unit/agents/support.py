"""Loopback HTTP servers speaking the OpenAI and Anthropic wire formats, and call builders.

The official SDKs are pointed at these servers, so every test goes through the real
client code and real HTTP. A server answers from a script of `Reply`s (then with a
success), records what it received, and can hold a reply until the test releases it
(a slow upstream) without any sleeping.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from parley.server.agents.protocol import AgentCall, fixed_text
from parley.server.engine.conversation import ChatMessage
from parley.server.engine.model import (
    Attachment,
    Message,
    Origin,
    Persona,
    Speaker,
    SpeakerKind,
    utcnow,
)

JSON = dict[str, Any]


@dataclass
class Reply:
    """One scripted answer: a status, a JSON body (None: the success body) and headers."""

    status: int = 200
    body: JSON | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Answer only once this is set: a slow upstream, released by the test or at close.
    hold: asyncio.Event | None = None


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    json: JSON


class FakeAPI:
    """An HTTP server on 127.0.0.1 that answers POSTs on `path` from its script."""

    def __init__(self, path: str, success: Callable[[JSON], JSON]) -> None:
        self.path = path
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []
        # Set each time a request arrives, for tests that wait for one.
        self.arrived = asyncio.Event()
        # The body of a success, made from the request.
        self.success = success
        self._holds: list[asyncio.Event] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> FakeAPI:
        self.script.extend(replies)
        return self

    async def start(self) -> FakeAPI:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for hold in self._holds:
            hold.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload: JSON = await request.json()
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.received.append(Received(request.path, headers, payload))
        self.arrived.set()
        reply = self.script.popleft() if self.script else Reply()
        if reply.hold is not None:
            self._holds.append(reply.hold)
            await reply.hold.wait()
        body = reply.body if reply.body is not None else self.success(payload)
        return web.json_response(body, status=reply.status, headers=dict(reply.headers))


def openai_completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> JSON:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(message: str, kind: str = "invalid_request_error") -> JSON:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def anthropic_message(content: str, input_tokens: int = 13, output_tokens: int = 5) -> JSON:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": content}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(message: str, kind: str = "invalid_request_error") -> JSON:
    return {"type": "error", "error": {"type": kind, "message": message}}


def fake_openai(content: str = "Hello from the fake.") -> FakeAPI:
    return FakeAPI("/v1/chat/completions", lambda _: openai_completion(content))


def fake_anthropic(content: str = "Hello from the fake Claude.") -> FakeAPI:
    return FakeAPI("/v1/messages", lambda _: anthropic_message(content))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- calls ---------------------------------------------------------------------------

SYSTEM = "# You are Ada, engineer\n\nAnswer as Ada only."
PROMPT = SYSTEM + "\n\n# New messages\n[Bob]: What should we build?"


def said(seq: int, name: str, content: str, attachments: Sequence[Attachment] = ()) -> Message:
    return Message(
        seq=seq,
        turn=1,
        speaker=Speaker(SpeakerKind.USER, name),
        content=content,
        origin=Origin.INCOMING,
        create_time=utcnow(),
        attachments=tuple(attachments),
    )


def make_call(
    *,
    delivered: Sequence[Message] = (),
    history: Sequence[ChatMessage] = (),
    options: Mapping[str, str] | None = None,
    persona: Persona | None = None,
    system: str = SYSTEM,
    prompt: str = PROMPT,
) -> AgentCall:
    async def earlier() -> Sequence[ChatMessage]:
        return history

    return AgentCall(
        dialogue_id="d1",
        turn=3,
        persona=persona or Persona("Ada", "engineer"),
        participant_index=0,
        options=options or {},
        delivered=tuple(delivered) or (said(1, "Bob", "What should we build?"),),
        render_prompt=fixed_text(prompt),
        render_system=fixed_text(system),
        history=earlier,
    )


class RecordedSleep:
    """An injectable sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def upper_bound(low: float, high: float) -> float:
    """A `uniform` that always picks the longest wait, so backoff caps are visible."""
    return high
