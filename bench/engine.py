"""Figure 1: the engine's own work per turn, in-process, as the log grows.

Four echo participants answer at once with a scripted reply, so what a run costs is
Parley alone: validating and storing the input, taking and releasing the run lease,
planning, delivering, rendering prompts, storing every reply (store before emit) and
emitting the events. Per turn = a run's wall time (open_run to the released lease) / 4.

Each dialogue's log is pre-filled through the store API (large appends, every cursor at
the head), so the runs measured are the steady state of a long dialogue: nothing per
turn may scan the whole log or rebuild whole conversations. The `chat` lines replace the
echo agents with a scripted chat backend: like the OpenAI and Anthropic kinds, it asks
for the participant's private conversation on every call.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from parley.server.agents.protocol import AgentCall, AgentReply
from parley.server.agents.registry import ECHO_PROFILE, AgentProfile, AgentRegistry
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.model import Dialogue, MessageDraft, Origin
from parley.server.store import MemoryStore, SQLiteStore, Store

from bench.common import (
    PARTICIPANTS,
    PROMPT,
    REPLY,
    USER,
    Figure,
    Line,
    Options,
    bench_dialogue,
    echo_participants,
    median,
    model_named,
)

SIZES = (100, 1_600, 10_000)
# Scenario: (execution model, agent profile).
SCENARIOS = {
    "sequential": ("sequential", ECHO_PROFILE),
    "broadcast": ("broadcast", ECHO_PROFILE),
    "chat": ("sequential", "bench-chat"),
}
STORES = ("sqlite", "memory")
TARGET_MS = 0.5
FLATNESS = 1.2
PREFILL_CHUNK = 1_000


class ScriptedChat:
    """A chat backend with an instant model: it awaits the participant's conversation,
    as chat backends do on every call, then answers."""

    async def execute(self, call: AgentCall) -> AgentReply:
        await call.history()
        return AgentReply(REPLY)


def _no_options(options: Mapping[str, str]) -> dict[str, str]:
    return dict.fromkeys(options, "the scripted chat profile takes no options")


def registry() -> AgentRegistry:
    agents = AgentRegistry.with_builtin()
    agents.register(AgentProfile(SCENARIOS["chat"][1], "bench"), ScriptedChat(), _no_options)
    return agents


def scenario_dialogue(dialogue_id: str, scenario: str) -> Dialogue:
    model, agent = SCENARIOS[scenario]
    dialogue = bench_dialogue(dialogue_id, model_named(model))
    if agent == ECHO_PROFILE:
        return dialogue
    return replace(
        dialogue,
        participants=tuple(
            replace(p, agent=agent, agent_options={}) for p in dialogue.participants
        ),
    )


@asynccontextmanager
async def open_store(kind: str) -> AsyncIterator[Store]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as directory:
        store: Store = (
            SQLiteStore(str(Path(directory) / "parley.db")) if kind == "sqlite" else MemoryStore()
        )
        await store.open()
        try:
            yield store
        finally:
            await store.close()


def history(count: int) -> list[MessageDraft]:
    """`count` messages shaped like real runs: a prompt, then one reply per participant."""
    speakers = [p.persona.speaker() for p in echo_participants()]
    drafts: list[MessageDraft] = []
    per_turn = len(speakers) + 1
    for seq in range(1, count + 1):
        turn, position = divmod(seq - 1, per_turn)
        if position == 0:
            drafts.append(MessageDraft(turn + 1, USER, PROMPT, Origin.INCOMING))
        else:
            drafts.append(
                MessageDraft(
                    turn + 1,
                    speakers[position - 1],
                    REPLY,
                    Origin.AGENT_GENERATED,
                    delivered_through=seq - position,
                )
            )
    return drafts


async def prefill(engine: Engine, dialogue_id: str, count: int) -> None:
    """Writes `count` messages in large appends and moves every cursor to the head."""
    store = engine.store
    lease = (await store.begin_run(dialogue_id, owner=engine.owner, ttl=60.0)).lease
    try:
        drafts = history(count)
        for start in range(0, count, PREFILL_CHUNK):
            chunk = drafts[start : start + PREFILL_CHUNK]
            head = start + len(chunk)
            await store.append(lease, chunk, dict.fromkeys(PARTICIPANTS, head))
    finally:
        await store.end_run(lease)


async def one_run(engine: Engine, dialogue_id: str) -> float:
    """Seconds from open_run to the run's end (lease released), events consumed."""
    started = time.perf_counter()
    async with await engine.open_run(dialogue_id, RunInput(text=PROMPT, speaker=USER)) as run:
        async for _ in run:
            pass
    return time.perf_counter() - started


async def measure(store_kind: str, scenario: str, options: Options) -> dict[int, float]:
    """Median ms per turn at each log size, rounds interleaved across the sizes.

    Every round starts fresh dialogues, so a log stays within 10% of its nominal size
    (a run adds 5 messages) instead of drifting with the runs measured on it.
    """
    rounds = options.scale(10, 3)
    runs_per_round = options.scale(10, 5)
    async with open_store(store_kind) as store:
        engine = Engine(store, registry())
        samples: dict[int, list[float]] = {size: [] for size in SIZES}
        for round_number in range(rounds):
            ids = {}
            for size in SIZES:
                dialogue_id = f"{scenario}-{size}-{round_number}"
                await engine.create_dialogue(scenario_dialogue(dialogue_id, scenario))
                await prefill(engine, dialogue_id, size)
                await one_run(engine, dialogue_id)  # warm-up: first-call paths, caches
                ids[size] = dialogue_id
            # Rotated each round: whichever size comes first after the pre-fills pays for
            # the WAL checkpoint they leave behind.
            shift = round_number % len(SIZES)
            for size in SIZES[shift:] + SIZES[:shift]:
                for _ in range(runs_per_round):
                    seconds = await one_run(engine, ids[size])
                    samples[size].append(seconds * 1000 / len(PARTICIPANTS))
        return {size: median(values) for size, values in samples.items()}


async def _run(options: Options) -> Figure:
    figure = Figure(1, "Engine overhead per turn (in-process, 4 participants, instant replies)")
    for store_kind in STORES:
        for scenario in SCENARIOS:
            per_turn = await measure(store_kind, scenario, options)
            base = per_turn[SIZES[0]]
            for size in SIZES:
                # The 0.5 ms target is for the engine alone (echo agents); a chat backend's
                # conversation is work its call needs, so it is held to flatness only.
                absolute = store_kind == "sqlite" and scenario != "chat"
                figure.add(
                    Line(
                        f"{store_kind:6} {scenario:10} {size:>6,} msgs",
                        per_turn[size],
                        base,
                        "ms/turn",
                        f"same at {SIZES[0]} msgs",
                        f"<= {FLATNESS}x" + (f"; < {TARGET_MS} ms" if absolute else ""),
                        per_turn[size] <= FLATNESS * base
                        and (not absolute or per_turn[size] < TARGET_MS),
                    )
                )
    figure.note(
        "per turn = run wall time / 4 (input stored, lease, 4 replies stored, events, "
        f"lease released); medians of {options.scale(100, 15)} runs per size, in rounds "
        "on fresh dialogues, sizes interleaved"
    )
    return figure


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
