"""Run and turn spans of real runs through the engine: names, kinds, structure, attributes,
statuses and events, as the GenAI conventions and the seed's tracing events ask."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.model import (
    Attachment,
    Broadcast,
    BroadcastOrder,
    InputMessage,
    Moderated,
    Participant,
    Persona,
    Sequential,
    Speaker,
    SpeakerKind,
)
from parley.server.store.feed import CancelMode
from parley.server.telemetry import Providers

from .conftest import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    GatedAgent,
    Recorded,
    attributes,
    collect,
    echo,
    events,
    labels,
    make,
)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    context = span.context
    assert context is not None
    return int(context.span_id)


def trace_id(span: ReadableSpan) -> int:
    context = span.context
    assert context is not None
    return int(context.trace_id)


def assert_turn_children(run: ReadableSpan, turns: dict[str, ReadableSpan]) -> None:
    for turn in turns.values():
        assert parent_id(turn) == span_id(run), turn.name
        assert trace_id(turn) == trace_id(run)


async def test_broadcast_run_span_and_overlapping_turn_spans(
    engine: Engine, recorded: Recorded
) -> None:
    await make(
        engine,
        echo("A", delay_ms="60"),
        echo("B", delay_ms="10"),
        echo("C", delay_ms="30"),
        display_name="Design review",
    )
    await collect(engine, RunInput(text="hello"))

    run = recorded.run_span()
    assert run.name == "invoke_workflow Design review"
    assert run.kind is SpanKind.INTERNAL
    assert run.parent is None
    assert run.status.status_code is StatusCode.UNSET
    assert dict(attributes(run)) == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.conversation.id": "d",
        "gen_ai.workflow.name": "Design review",
        "parley.turn": 1,
        "parley.participant_count": 3,
        "parley.execution_model": "broadcast",
        "parley.broadcast_order": "completion",
        "parley.participants_called": ("A", "B", "C"),
        "parley.turn_count": 3,
        "parley.failure_count": 0,
    }

    turns = recorded.turn_spans()
    assert sorted(turns) == ["A", "B", "C"]
    assert_turn_children(run, turns)
    for index, name in enumerate("ABC"):
        turn = turns[name]
        assert turn.name == f"invoke_agent {name}"
        assert turn.kind is SpanKind.INTERNAL  # echo runs in-process
        assert turn.status.status_code is StatusCode.UNSET
        assert not turn.links
        found = attributes(turn)
        assert found["gen_ai.operation.name"] == "invoke_agent"
        assert found["gen_ai.agent.name"] == name
        assert found["gen_ai.agent.description"] == f"{name} role"
        assert found["gen_ai.conversation.id"] == "d"
        assert found["gen_ai.provider.name"] == "echo"
        assert found["parley.agent.profile"] == "echo"
        assert "gen_ai.request.model" not in found  # echo has no model
        assert found["gen_ai.usage.input_tokens"] == 0
        assert found["gen_ai.usage.output_tokens"] == 0
        assert found["parley.turn"] == 1
        assert found["parley.participant.index"] == index
        assert found["parley.attempts"] == 1
        assert "gen_ai.input.messages" not in found  # content capture is off
        assert "gen_ai.output.messages" not in found
        (completed,) = events(turn, "dialogue_turn_completed")
        assert completed == {
            "mode": "broadcast",
            "turn": 1,
            "participant": name,
            "participant_index": index,
            "total_participants": 3,
            "message_seq": found["parley.message.seq"],
        }
    # Broadcast calls run together: every turn starts before any ends.
    assert max(t.start_time or 0 for t in turns.values()) < min(
        t.end_time or 0 for t in turns.values()
    )
    # Completion order: each turn is emitted as its reply is stored, carrying its seq.
    emitted = events(run, "dialogue_turn_emitted")
    seqs = [attributes(turns[str(e["participant"])])["parley.message.seq"] for e in emitted]
    assert [e["message_seq"] for e in emitted] == seqs == [2, 3, 4]
    first = emitted[0]
    assert first == {
        "mode": "broadcast",
        "turn": 1,
        "participant": first["participant"],
        "participant_index": "ABC".index(str(first["participant"])),
        "total_participants": 3,
        "outcome": "completed",
        "message_seq": 2,
    }


async def test_explicit_broadcast_order_is_on_the_run_span(
    engine: Engine, recorded: Recorded
) -> None:
    await make(engine, echo("A"), echo("B"))
    order = Broadcast(BroadcastOrder.EXPLICIT, ("B", "A"))
    await collect(engine, RunInput(text="hi", broadcast_override=order))
    run = attributes(recorded.run_span())
    assert run["parley.broadcast_order"] == "explicit"
    assert [e["participant"] for e in events(recorded.run_span(), "dialogue_turn_emitted")] == [
        "B",
        "A",
    ]


async def test_sequential_turns_follow_each_other_and_link_back(
    engine: Engine, recorded: Recorded
) -> None:
    await make(engine, echo("A"), echo("B"), echo("C"), execution_model=Sequential(("C", "A", "B")))
    await collect(engine, RunInput(text="go"))

    run = recorded.run_span()
    assert attributes(run)["parley.execution_model"] == "sequential"
    assert "parley.broadcast_order" not in attributes(run)
    assert attributes(run)["parley.participants_called"] == ("C", "A", "B")
    turns = recorded.turn_spans()
    assert_turn_children(run, turns)
    ordered = [turns[name] for name in ("C", "A", "B")]
    assert not ordered[0].links
    for previous, current in itertools.pairwise(ordered):
        (link,) = current.links
        assert link.context.span_id == span_id(previous)
        assert (previous.end_time or 0) <= (current.start_time or 0)
    steps = [events(turn, "dialogue_turn_completed")[0] for turn in ordered]
    assert [(s["step_number"], s["total_steps"]) for s in steps] == [(1, 3), (2, 3), (3, 3)]
    assert all(s["mode"] == "sequential" for s in steps)


async def test_failed_turn_is_an_error_span_with_the_failure(
    engine: Engine, recorded: Recorded
) -> None:
    await make(engine, echo("A"), echo("Broken", fail="always"))
    await collect(engine, RunInput(text="hello"))

    run = recorded.run_span()
    assert attributes(run)["parley.turn_count"] == 1
    assert attributes(run)["parley.failure_count"] == 1
    # A participant's failure is the turn's, not the run's.
    assert run.status.status_code is StatusCode.UNSET
    turns = recorded.turn_spans()
    assert turns["A"].status.status_code is StatusCode.UNSET
    broken = turns["Broken"]
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.status.description == "echo agent failed as configured (fail=always)"
    found = attributes(broken)
    assert found["error.type"] == "AGENT_ERROR"
    assert found["parley.attempts"] == 1
    assert "parley.message.seq" not in found
    (exception,) = events(broken, "exception")
    assert exception["exception.message"] == "echo agent failed as configured (fail=always)"
    (failed,) = events(broken, "dialogue_turn_failed")
    assert failed == {
        "mode": "broadcast",
        "turn": 1,
        "participant": "Broken",
        "participant_index": 1,
        "total_participants": 2,
        "error": "echo agent failed as configured (fail=always)",
        "error.type": "AGENT_ERROR",
        "retryable": True,
        "attempts": 1,
    }
    emitted = {e["participant"]: e for e in events(run, "dialogue_turn_emitted")}
    assert emitted["Broken"]["outcome"] == "failed"
    assert emitted["Broken"]["error.type"] == "AGENT_ERROR"


async def test_moderator_decision_is_its_own_turn_span(engine: Engine, recorded: Recorded) -> None:
    decision = json.dumps({"sequential": {"order": ["B", "A"]}})
    await make(
        engine,
        echo("A"),
        echo("B"),
        execution_model=Moderated("echo", {"reply": decision}),
    )
    await collect(engine, RunInput(text="who first?"))

    run = recorded.run_span()
    found = attributes(run)
    assert found["parley.moderator"] == "echo"
    # The model the moderator chose is the one the run used.
    assert found["parley.execution_model"] == "sequential"
    assert found["parley.participants_called"] == ("B", "A")
    spans = recorded.named("invoke_agent ")
    assert [s.name for s in sorted(spans, key=lambda s: s.start_time or 0)] == [
        "invoke_agent echo",
        "invoke_agent B",
        "invoke_agent A",
    ]
    moderator = min(spans, key=lambda s: s.start_time or 0)
    assert parent_id(moderator) == span_id(run)
    about = attributes(moderator)
    assert about["parley.participant.index"] == -1
    assert about["gen_ai.agent.description"] == "moderator"
    assert "parley.message.seq" not in about  # a decision is not stored as a message
    (completed,) = events(moderator, "dialogue_turn_completed")
    assert completed["participant_index"] == -1
    # The moderator's decision does not start the sequential chain.
    first = recorded.turn_spans()["B"]
    assert not first.links


async def test_failed_moderator_is_an_error_span_and_the_run_broadcasts(
    engine: Engine, recorded: Recorded
) -> None:
    await make(
        engine,
        echo("A"),
        execution_model=Moderated("echo", {"reply": "no idea"}),
    )
    await collect(engine, RunInput(text="who first?"))

    moderator = recorded.turn_spans()["echo"]
    assert moderator.status.status_code is StatusCode.ERROR
    assert attributes(moderator)["error.type"] == "MODERATOR_BAD_DECISION"
    run = attributes(recorded.run_span())
    assert run["parley.execution_model"] == "broadcast"
    assert run["parley.failure_count"] == 1
    assert run["parley.turn_count"] == 1


async def test_remote_kind_is_a_client_span_with_model_and_tokens(
    engine: Engine, recorded: Recorded
) -> None:
    await make(engine, Participant(Persona("Counter"), "gpt"))
    await collect(engine, RunInput(text="count"))

    (turn,) = recorded.turn_spans().values()
    assert turn.kind is SpanKind.CLIENT
    found = attributes(turn)
    assert found["gen_ai.provider.name"] == "openai"
    assert found["gen_ai.request.model"] == "gpt-test"
    assert found["gen_ai.usage.input_tokens"] == INPUT_TOKENS
    assert found["gen_ai.usage.output_tokens"] == OUTPUT_TOKENS
    assert "gen_ai.agent.description" not in found  # no role, no description


class TestContentCapture:
    @pytest.fixture
    def capture_content(self) -> bool:
        return True

    async def test_prompts_and_replies_are_on_turn_spans(
        self, engine: Engine, recorded: Recorded
    ) -> None:
        await make(engine, echo("A"))
        await collect(engine, RunInput(text="hello there"))

        found = attributes(recorded.turn_spans()["A"])
        system = json.loads(str(found["gen_ai.system_instructions"]))
        assert system[0]["type"] == "text"
        assert "A" in system[0]["content"]
        (prompt,) = json.loads(str(found["gen_ai.input.messages"]))
        assert prompt["role"] == "user"
        assert "hello there" in prompt["parts"][0]["content"]
        assert json.loads(str(found["gen_ai.output.messages"])) == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "A:\n[System]: hello there"}],
                "finish_reason": "stop",
            }
        ]

    async def test_attachment_bytes_never_reach_spans(
        self, engine: Engine, recorded: Recorded
    ) -> None:
        secret = "attachment-bytes-7f3a"
        await make(engine, echo("A"))
        attachment = Attachment("notes.txt", "text/plain", data=secret.encode())
        message = InputMessage(
            Speaker(SpeakerKind.USER, "Ann"), "see the file", attachments=(attachment,)
        )
        await collect(engine, RunInput(messages=[message], attachments=[attachment]))

        assert recorded.turn_spans()
        for span in recorded.finished():
            assert secret not in span.to_json()


async def test_no_capture_keeps_the_prompt_off_spans(engine: Engine, recorded: Recorded) -> None:
    await make(engine, echo("A"))
    await collect(engine, RunInput(text="private words"))
    for span in recorded.finished():
        assert "private words" not in span.to_json()


async def test_run_continues_the_callers_trace(
    engine: Engine, recorded: Recorded, providers: Providers
) -> None:
    await make(engine, echo("A"))
    tracer = providers.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        await collect(engine, RunInput(text="hi"))
    run = recorded.run_span()
    assert parent_id(run) == caller.get_span_context().span_id
    assert {s.context.trace_id for s in recorded.finished() if s.context} == {
        caller.get_span_context().trace_id
    }


async def test_turn_span_is_current_inside_the_agent_call(
    engine: Engine, recorded: Recorded, gated: GatedAgent
) -> None:
    """Backend work (HTTP client spans, logs) nests under the turn."""
    seen: list[trace.SpanContext] = []

    original = gated.execute

    async def execute(call: object) -> object:
        seen.append(trace.get_current_span().get_span_context())
        gated.gate.set()
        return await original(call)  # type: ignore[arg-type]

    gated.execute = execute  # type: ignore[method-assign,assignment]
    await make(engine, Participant(Persona("G"), "gated"))
    await collect(engine, RunInput(text="hi"))
    (turn,) = recorded.turn_spans().values()
    assert [c.span_id for c in seen] == [span_id(turn)]


async def test_cancelled_run_ends_every_span(
    engine: Engine, recorded: Recorded, gated: GatedAgent
) -> None:
    """A client that goes away cancels the run: no span is left open, none is red."""
    await make(engine, echo("A"), Participant(Persona("G"), "gated"))
    async with await engine.open_run("d", RunInput(text="hi")) as run:
        await asyncio.wait_for(gated.started.wait(), 5)
        await run.cancel()

    run_span = recorded.run_span()
    assert attributes(run_span)["parley.cancelled"] is True
    assert run_span.status.status_code is StatusCode.UNSET
    turns = recorded.turn_spans()
    assert sorted(turns) == ["A", "G"]
    assert attributes(turns["G"])["parley.cancelled"] is True
    assert attributes(turns["G"])["error.type"] == "RUN_CANCELLED"
    assert turns["G"].status.status_code is StatusCode.UNSET
    assert "parley.cancelled" not in attributes(turns["A"])


async def test_cancel_request_ends_the_call_span_when_the_call_stops(
    engine: Engine, recorded: Recorded, gated: GatedAgent
) -> None:
    await make(engine, Participant(Persona("G"), "gated"), echo("A"))
    async with await engine.open_run("d", RunInput(text="hi")) as run:
        await asyncio.wait_for(gated.started.wait(), 5)
        run.request_stop(CancelMode.IMMEDIATE)
        stream = [event async for event in run]
    assert stream
    turns = recorded.turn_spans()
    assert attributes(turns["G"])["error.type"] == "RUN_CANCELLED"
    run_span = recorded.run_span()
    # The run itself ended normally, reporting the stopped call as a failed turn.
    assert "parley.cancelled" not in attributes(run_span)
    emitted = {e["participant"]: e for e in events(run_span, "dialogue_turn_emitted")}
    assert emitted["G"]["error.type"] == "RUN_CANCELLED"
    assert (turns["G"].end_time or 0) <= (run_span.end_time or 0)


async def test_a_call_the_deadline_stops_is_a_failed_turn_span(
    engine: Engine, recorded: Recorded, gated: GatedAgent
) -> None:
    await make(engine, Participant(Persona("G"), "gated"), echo("A"))
    # The gate never opens: the run's deadline is what ends G's call.
    deadline = time.monotonic() + 0.05
    async with await engine.open_run("d", RunInput(text="hi"), deadline=deadline) as run:
        stream = [event async for event in run]
    assert stream
    g = recorded.turn_spans()["G"]
    assert g.status.status_code is StatusCode.ERROR
    assert attributes(g)["error.type"] == "RUN_DEADLINE_EXCEEDED"
    assert "parley.cancelled" not in attributes(g)
    emitted = {e["participant"]: e for e in events(recorded.run_span(), "dialogue_turn_emitted")}
    assert emitted["G"]["error.type"] == "RUN_DEADLINE_EXCEEDED"


async def test_metrics_per_participant_and_run(engine: Engine, recorded: Recorded) -> None:
    await make(
        engine, echo("A"), echo("Broken", fail="always"), Participant(Persona("Counter"), "gpt")
    )
    await collect(engine, RunInput(text="hello"))

    durations = {
        (labels(p)["gen_ai.agent.name"], labels(p).get("error.type")): p
        for p in recorded.histogram("gen_ai.client.operation.duration")
    }
    assert set(durations) == {("A", None), ("Broken", "AGENT_ERROR"), ("Counter", None)}
    counter = durations[("Counter", None)]
    assert counter.count == 1
    assert dict(labels(counter)) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "Counter",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-test",
        "parley.agent.profile": "gpt",
    }
    tokens = {
        labels(p)["gen_ai.token.type"]: p for p in recorded.histogram("gen_ai.client.token.usage")
    }
    # Only the backend that reports usage is counted; echo reports none.
    assert {kind: (p.count, p.sum) for kind, p in tokens.items()} == {
        "input": (1, INPUT_TOKENS),
        "output": (1, OUTPUT_TOKENS),
    }
    assert all(labels(p)["gen_ai.agent.name"] == "Counter" for p in tokens.values())
    (first_turn,) = recorded.histogram("parley.run.time_to_first_turn")
    assert first_turn.count == 1
    (run,) = recorded.histogram("parley.run.duration")
    assert run.count == 1
    assert first_turn.sum <= run.sum
    assert recorded.value("parley.runs.active") == 0


async def test_runs_active_counts_a_run_in_progress(
    engine: Engine, recorded: Recorded, gated: GatedAgent
) -> None:
    await make(engine, Participant(Persona("G"), "gated"))
    async with await engine.open_run("d", RunInput(text="hi")) as run:
        await asyncio.wait_for(gated.started.wait(), 5)
        assert recorded.value("parley.runs.active") == 1
        gated.gate.set()
        assert [event async for event in run]
    assert recorded.value("parley.runs.active") == 0
