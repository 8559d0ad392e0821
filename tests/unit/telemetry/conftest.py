"""Telemetry fixtures: SDK providers with in-memory exporters, an engine that reports to them.

Nothing here touches the global providers: `Telemetry` is handed its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue
from parley.server.agents.protocol import AgentCall, AgentReply
from parley.server.agents.registry import AgentProfile, AgentRegistry
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.events import SessionEvent
from parley.server.engine.model import Dialogue, Participant, Persona, Usage
from parley.server.store.memory import MemoryStore
from parley.server.telemetry import Providers, Telemetry

INPUT_TOKENS = 12
OUTPUT_TOKENS = 34


class CountingAgent:
    """A remote-looking backend that reports token usage."""

    async def execute(self, call: AgentCall) -> AgentReply:
        return AgentReply(f"{call.persona.name} counted", Usage(INPUT_TOKENS, OUTPUT_TOKENS))


@dataclass
class GatedAgent:
    """Replies only when the test opens the gate; tells the test when a call started."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def execute(self, call: AgentCall) -> AgentReply:
        self.started.set()
        await self.gate.wait()
        return AgentReply("finally")


def no_options(options: Mapping[str, str]) -> dict[str, str]:
    return {}


def attributes(span: ReadableSpan) -> Mapping[str, AttributeValue]:
    return span.attributes or {}


def labels(point: HistogramDataPoint) -> Mapping[str, object]:
    return point.attributes or {}


def events(span: ReadableSpan, name: str) -> list[dict[str, AttributeValue]]:
    """The attributes of each event `name` of `span`, in order."""
    return [dict(event.attributes or {}) for event in span.events if event.name == name]


@dataclass
class Recorded:
    """What the providers under test received."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith(prefix)]

    def run_span(self) -> ReadableSpan:
        (run,) = self.named("invoke_workflow ")
        return run

    def turn_spans(self) -> dict[str, ReadableSpan]:
        """Turn spans by participant name."""
        return {str(attributes(s)["gen_ai.agent.name"]): s for s in self.named("invoke_agent ")}

    def _points(self, metric: str) -> list[object]:
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def histogram(self, metric: str) -> list[HistogramDataPoint]:
        points = self._points(metric)
        assert all(isinstance(p, HistogramDataPoint) for p in points)
        return [p for p in points if isinstance(p, HistogramDataPoint)]

    def value(self, metric: str) -> int | float:
        """The value of a counter, summed over its points."""
        points = self._points(metric)
        assert points, f"no {metric} recorded"
        return sum(p.value for p in points if isinstance(p, NumberDataPoint))


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    yield Recorded(exporter, reader)
    exporter.shutdown()


@pytest.fixture
def providers(recorded: Recorded) -> Iterator[Providers]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(recorded.spans))
    meter_provider = MeterProvider(metric_readers=[recorded.metrics])
    providers = Providers(tracer_provider, meter_provider)
    yield providers
    providers.shutdown()


@pytest.fixture
def capture_content() -> bool:
    """Overridden by tests that want prompts and replies on spans."""
    return False


@pytest.fixture
def telemetry(providers: Providers, capture_content: bool) -> Telemetry:
    return Telemetry(providers, capture_content=capture_content)


@pytest.fixture
def gated() -> GatedAgent:
    return GatedAgent()


@pytest.fixture
def registry(gated: GatedAgent) -> AgentRegistry:
    registry = AgentRegistry.with_builtin()
    registry.register(AgentProfile("gpt", "openai", model="gpt-test"), CountingAgent(), no_options)
    registry.register(AgentProfile("gated", "test"), gated, no_options)
    return registry


@pytest.fixture
async def engine(registry: AgentRegistry, telemetry: Telemetry) -> AsyncIterator[Engine]:
    store = MemoryStore()
    await store.open()
    engine = Engine(store, registry, observer=telemetry.observer)
    await engine.start()
    yield engine
    await engine.close()
    await store.close()


def echo(name: str, **options: str) -> Participant:
    return Participant(Persona(name, role=f"{name} role"), "echo", options)


async def make(engine: Engine, *participants: Participant, **settings: object) -> Dialogue:
    return await engine.create_dialogue(
        Dialogue(id="d", participants=tuple(participants), **settings)  # type: ignore[arg-type]
    )


async def collect(
    engine: Engine, run_input: RunInput, dialogue_id: str = "d"
) -> list[SessionEvent]:
    async with await engine.open_run(dialogue_id, run_input) as run:
        return [event async for event in run]
