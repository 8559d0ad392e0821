"""Runs and turns as OpenTelemetry spans and metrics (the GenAI semantic conventions).

A run is an `invoke_workflow {dialogue}` span; every agent call under it, the
moderator's included, is an `invoke_agent {participant}` span. Broadcast calls overlap
as siblings; a sequential call links to the call before it, because it answers it. The
seed's tracing events (`dialogue_turn_completed`, `dialogue_turn_failed`) become span
events of the turn, `dialogue_turn_emitted` an event of the run when the stream carries
the turn. Parley-specific facts live under `parley.`.

Prompts and replies reach spans only with `capture_content`; attachments never do
(prompts are rendered text, and attachment bytes are not part of them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.registry import AgentProfile
from parley.server.engine.events import Event, TurnCompleted, TurnFailed
from parley.server.engine.model import (
    Broadcast,
    Dialogue,
    ExecutionModel,
    Mentioned,
    Message,
    Moderated,
    Sequential,
)
from parley.server.engine.observer import CallTrace, RunTrace

INSTRUMENTATION_NAME: Final = "parley.server"

# Agent kinds whose calls leave the process (CLIENT spans); the rest run here.
REMOTE_KINDS: Final = frozenset({"openai", "anthropic", "grpc"})

# GenAI semantic conventions (experimental), spelled out so a convention package
# reshuffle cannot rename them under us.
OPERATION_NAME: Final = "gen_ai.operation.name"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
TOKEN_TYPE: Final = "gen_ai.token.type"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"
INVOKE_WORKFLOW: Final = "invoke_workflow"
INVOKE_AGENT: Final = "invoke_agent"

# Bucket advice of the GenAI metric conventions.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

TURN_COMPLETED: Final = "dialogue_turn_completed"
TURN_FAILED: Final = "dialogue_turn_failed"
TURN_EMITTED: Final = "dialogue_turn_emitted"
# error.type of a call the run stopped (the code its TurnFailed carries).
CANCELLED: Final = "RUN_CANCELLED"
# The seed's name for a run that broke down (a crash, not a failed participant).
RUN_CRASHED: Final = "dialogue_task_join_failed"


def model_name(model: ExecutionModel) -> str:
    match model:
        case Broadcast():
            return "broadcast"
        case Sequential():
            return "sequential"
        case Mentioned():
            return "mentioned"
        case Moderated():
            return "moderated"


def _text_parts(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "content": text}]


class _Instruments:
    def __init__(self, meter: metrics.Meter) -> None:
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of one agent call, from the call to the stored reply.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens an agent call used, as its backend reported them.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.time_to_first_turn = meter.create_histogram(
            "parley.run.time_to_first_turn",
            unit="s",
            description="From the start of a run to the first turn it emits.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.run_duration = meter.create_histogram(
            "parley.run.duration",
            unit="s",
            description="Duration of a run, from its stored input to its last event.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.runs_active = meter.create_up_down_counter(
            "parley.runs.active", unit="{run}", description="Runs in progress in this process."
        )


class RunTelemetry:
    """The engine's `RunObserver`, reporting through the providers it is given."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
        *,
        capture_content: bool = False,
        version: str = "",
    ) -> None:
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, version or None)
        self.instruments = _Instruments(
            meter_provider.get_meter(INSTRUMENTATION_NAME, version or None)
        )
        self.capture_content = capture_content

    def run(self, dialogue: Dialogue, turn: int) -> RunTrace:
        return _RunTrace(self, dialogue, turn)


class _RunTrace:
    """One run. Its span starts when the driver enters `scope`, and ends in `finished`."""

    def __init__(self, telemetry: RunTelemetry, dialogue: Dialogue, turn: int) -> None:
        self.telemetry = telemetry
        self.dialogue = dialogue
        self.turn = turn
        self.mode = model_name(dialogue.execution_model)
        self.called: tuple[str, ...] = ()
        self.sequential = False
        self.span: Span = trace.INVALID_SPAN
        self._running = False
        self._started = 0.0
        self._first_turn_seen = False
        self._previous_step: Span | None = None
        # Calls without an outcome yet: ended as cancelled if the run stops first.
        self.open_calls: set[_CallTrace] = set()
        # The run's own tally, for runs that stop before the session counts its turns.
        self._emitted = (0, 0)

    @contextmanager
    def _scope(self) -> Iterator[Span]:
        dialogue = self.dialogue
        attributes: dict[str, AttributeValue] = {
            OPERATION_NAME: INVOKE_WORKFLOW,
            CONVERSATION_ID: dialogue.id,
            WORKFLOW_NAME: dialogue.display_name or dialogue.id,
            "parley.turn": self.turn,
            "parley.participant_count": len(dialogue.participants),
            **self._model_attributes(dialogue.execution_model),
        }
        if isinstance(dialogue.execution_model, Moderated):
            attributes["parley.moderator"] = dialogue.execution_model.agent
        self.span = self.telemetry.tracer.start_span(
            f"{INVOKE_WORKFLOW} {dialogue.display_name or dialogue.id}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        self._running = True
        self._started = time.monotonic()
        self.telemetry.instruments.runs_active.add(1)
        with trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield self.span

    def scope(self) -> AbstractContextManager[object]:
        return self._scope()

    @staticmethod
    def _model_attributes(model: ExecutionModel) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {"parley.execution_model": model_name(model)}
        if isinstance(model, Broadcast):
            attributes["parley.broadcast_order"] = model.order.value
        return attributes

    def planned(self, model: ExecutionModel, called: Sequence[str]) -> None:
        self.mode = model_name(model)
        self.called = tuple(called)
        self.sequential = isinstance(model, Sequential)
        self.span.set_attributes(
            {**self._model_attributes(model), "parley.participants_called": list(called)}
        )

    def call(self, call: AgentCall, profile: AgentProfile | None, *, sequential: bool) -> CallTrace:
        links = []
        if sequential and self._previous_step is not None:
            links.append(Link(self._previous_step.get_span_context()))
        traced = _CallTrace(self, call, profile, links)
        if sequential:
            self._previous_step = traced.span
        self.open_calls.add(traced)
        return traced

    def emitted(self, event: Event) -> None:
        if not isinstance(event, TurnCompleted | TurnFailed):
            return
        attributes = self.event_attributes(event.speaker.name, event.participant_index)
        turns, failures = self._emitted
        if isinstance(event, TurnCompleted):
            self._emitted = (turns + 1, failures)
            attributes.update({"outcome": "completed", "message_seq": event.message_seq})
            if not self._first_turn_seen:
                self._first_turn_seen = True
                self.telemetry.instruments.time_to_first_turn.record(
                    time.monotonic() - self._started, {"parley.execution_model": self.mode}
                )
        else:
            self._emitted = (turns, failures + 1)
            attributes.update({"outcome": "failed", ERROR_TYPE: event.code})
        self.span.add_event(TURN_EMITTED, attributes)

    def event_attributes(self, participant: str, index: int) -> dict[str, AttributeValue]:
        """The fields the seed's tracing events carry."""
        attributes: dict[str, AttributeValue] = {
            "mode": self.mode,
            "turn": self.turn,
            "participant": participant,
            "participant_index": index,
            "total_participants": len(self.dialogue.participants),
        }
        if self.sequential and participant in self.called:
            attributes["step_number"] = self.called.index(participant) + 1
            attributes["total_steps"] = len(self.called)
        return attributes

    def finished(self, turn_count: int, failure_count: int, error: BaseException | None) -> None:
        if not self._running:  # the scope was never entered: nothing was started
            return
        self._running = False
        span = self.span
        if error is not None:
            # The session counts only runs that get to the end; a stopped run reports
            # what it had emitted.
            turn_count, failure_count = self._emitted
        span.set_attributes(
            {"parley.turn_count": turn_count, "parley.failure_count": failure_count}
        )
        for open_call in list(self.open_calls):
            open_call.cancelled()
        attributes: dict[str, AttributeValue] = {"parley.execution_model": self.mode}
        if isinstance(error, asyncio.CancelledError):
            span.set_attribute("parley.cancelled", True)
        elif error is not None:
            error_type = type(error).__qualname__
            attributes[ERROR_TYPE] = error_type
            span.set_attribute(ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, "the run stopped on an internal error"))
            span.record_exception(error)
            span.add_event(RUN_CRASHED, {"mode": self.mode, "error": error_type})
        instruments = self.telemetry.instruments
        instruments.runs_active.add(-1)
        instruments.run_duration.record(time.monotonic() - self._started, attributes)
        span.end()


class _CallTrace:
    """One agent call: its span starts at the call and ends with its outcome."""

    def __init__(
        self,
        run: _RunTrace,
        call: AgentCall,
        profile: AgentProfile | None,
        links: Sequence[Link],
    ) -> None:
        self._run = run
        self._name = call.persona.name
        self._index = call.participant_index
        telemetry = run.telemetry
        self._metric_attributes: dict[str, AttributeValue] = {
            OPERATION_NAME: INVOKE_AGENT,
            AGENT_NAME: self._name,
        }
        attributes: dict[str, AttributeValue] = {
            OPERATION_NAME: INVOKE_AGENT,
            AGENT_NAME: self._name,
            CONVERSATION_ID: call.dialogue_id,
            "parley.turn": call.turn,
            "parley.participant.index": call.participant_index,
        }
        if call.persona.role:
            attributes[AGENT_DESCRIPTION] = call.persona.role
        kind = SpanKind.INTERNAL
        if profile is not None:
            model = call.options.get("model") or profile.model
            about_profile: dict[str, AttributeValue] = {
                PROVIDER_NAME: profile.kind,
                "parley.agent.profile": profile.name,
            }
            if model:
                about_profile[REQUEST_MODEL] = model
            attributes.update(about_profile)
            self._metric_attributes.update(about_profile)
            if profile.kind in REMOTE_KINDS:
                kind = SpanKind.CLIENT
        if telemetry.capture_content:
            attributes[SYSTEM_INSTRUCTIONS] = json.dumps(_text_parts(call.system))
            attributes[INPUT_MESSAGES] = json.dumps(
                [{"role": "user", "parts": _text_parts(call.prompt)}]
            )
        self.span = telemetry.tracer.start_span(
            f"{INVOKE_AGENT} {self._name}",
            context=trace.set_span_in_context(run.span),
            kind=kind,
            attributes=attributes,
            links=links,
        )
        self._started = time.monotonic()
        self._ended = False

    def scope(self) -> AbstractContextManager[object]:
        return self._scope()

    @contextmanager
    def _scope(self) -> Iterator[Span]:
        with trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield self.span
            except asyncio.CancelledError:
                # Stopped by CancelRun or the run's end: no outcome hook will follow.
                self.cancelled()
                raise

    def replied(self, reply: AgentReply, message: Message | None) -> None:
        if self._ended:
            return
        usage = reply.usage
        span = self.span
        span.set_attributes(
            {
                INPUT_TOKENS: usage.input_tokens,
                OUTPUT_TOKENS: usage.output_tokens,
                # A retrying backend may report how many attempts the reply took.
                "parley.attempts": getattr(reply, "attempts", 1),
            }
        )
        if message is not None:
            span.set_attribute("parley.message.seq", message.seq)
        if self._run.telemetry.capture_content:
            span.set_attribute(
                OUTPUT_MESSAGES,
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": _text_parts(reply.content),
                            "finish_reason": "stop",
                        }
                    ]
                ),
            )
        completed = self._run.event_attributes(self._name, self._index)
        if message is not None:
            completed["message_seq"] = message.seq
        span.add_event(TURN_COMPLETED, completed)
        token_usage = self._run.telemetry.instruments.token_usage
        # Zero means the backend reported nothing (echo, command), not a free call.
        if usage.input_tokens:
            token_usage.record(usage.input_tokens, {**self._metric_attributes, TOKEN_TYPE: "input"})
        if usage.output_tokens:
            token_usage.record(
                usage.output_tokens, {**self._metric_attributes, TOKEN_TYPE: "output"}
            )
        self._end(None)

    def failed(self, failure: AgentFailure) -> None:
        if self._ended:
            return
        span = self.span
        span.set_attributes({ERROR_TYPE: failure.code, "parley.attempts": failure.attempts})
        span.set_status(Status(StatusCode.ERROR, failure.message))
        span.record_exception(failure)
        span.add_event(
            TURN_FAILED,
            {
                **self._run.event_attributes(self._name, self._index),
                "error": failure.message,
                ERROR_TYPE: failure.code,
                "retryable": failure.retryable,
                "attempts": failure.attempts,
            },
        )
        self._end(failure.code)

    def cancelled(self) -> None:
        """The call was stopped before it had an outcome: not a failure of the agent."""
        if self._ended:
            return
        self.span.set_attributes({"parley.cancelled": True, ERROR_TYPE: CANCELLED})
        self._end(CANCELLED)

    def _end(self, error_type: str | None) -> None:
        self._ended = True
        self._run.open_calls.discard(self)
        attributes = self._metric_attributes
        if error_type is not None:
            attributes = {**attributes, ERROR_TYPE: error_type}
        self._run.telemetry.instruments.operation_duration.record(
            time.monotonic() - self._started, attributes
        )
        self.span.end()
