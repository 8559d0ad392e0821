"""The local kind with the real embedded model (`make test-local`; needs the `local` extra).

Skipped when llama-cpp-python is not installed: it compiles for minutes, so the
ordinary suite never requires it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from parley.server.agents.local import LocalAgent, unavailable_reason
from parley.server.agents.profiles import build_registry
from parley.server.agents.protocol import AgentCall, AgentReply, fixed_text
from parley.server.engine.conversation import ChatMessage
from parley.server.engine.model import Message, Origin, Persona, Speaker, SpeakerKind, utcnow

pytest.importorskip("llama_cpp", reason="the local extra (llama-cpp-python) is not installed")
if unavailable_reason(None):
    pytest.skip(unavailable_reason(None), allow_module_level=True)

# One event loop for the module, like the one loop of a server: the agent (module-scoped,
# loading the model is the slow part) keeps an asyncio.Lock bound to its loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PROMPT = (
    "# You are Ada, an engineer\n\n# Participants\n- Ada - this is you\n- Bob\n\n"
    "# New messages\n[Bob]: Name one colour of the sky."
)


def make_call(options: dict[str, str] | None = None) -> AgentCall:
    async def no_history() -> Sequence[ChatMessage]:
        return ()

    message = Message(
        seq=1,
        turn=1,
        speaker=Speaker(SpeakerKind.USER, "Bob"),
        content="Name one colour of the sky.",
        origin=Origin.INCOMING,
        create_time=utcnow(),
    )
    return AgentCall(
        dialogue_id="local",
        turn=1,
        persona=Persona("Ada", "engineer"),
        participant_index=0,
        options=options or {},
        delivered=(message,),
        render_prompt=fixed_text(PROMPT),
        render_system=fixed_text(PROMPT),
        history=no_history,
    )


@pytest.fixture(scope="module")
def agent() -> LocalAgent:
    """One model for the module: loading it is the slow part."""
    return LocalAgent(defaults={"max_tokens": "16", "temperature": "0"})


async def test_the_profile_is_available_when_installed() -> None:
    registry = build_registry({"tiny": {"kind": "local"}}, {})

    profile = registry.profile("tiny")
    assert profile is not None
    assert (profile.available, profile.model) == (True, "gemma-3-270m")


async def test_a_call_returns_text_and_usage_without_blocking_the_loop(agent: LocalAgent) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        reply = await agent.execute(make_call())
    finally:
        ticker.cancel()

    assert isinstance(reply, AgentReply)
    assert reply.usage.input_tokens > 0
    assert 0 < reply.usage.output_tokens <= 16
    assert ticks > 0


async def test_concurrent_calls_take_turns(agent: LocalAgent) -> None:
    replies = await asyncio.gather(*(agent.execute(make_call()) for _ in range(3)))

    assert len(replies) == 3
    assert all(r.usage.input_tokens > 0 for r in replies)


async def test_a_cancelled_call_leaves_the_model_usable(agent: LocalAgent) -> None:
    task = asyncio.create_task(agent.execute(make_call({"max_tokens": "512"})))
    await asyncio.sleep(0)  # let it take the lock and start its thread
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    reply = await agent.execute(make_call())

    assert reply.usage.input_tokens > 0
