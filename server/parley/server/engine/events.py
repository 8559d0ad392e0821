"""The events of a run, in the order a stream carries them.

SessionStarted, then an optional RoutingDecision, then one TurnCompleted or TurnFailed
per participant called, then SessionCompleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from parley.server.engine.model import ExecutionModel, Speaker, Usage, record


@dataclass(frozen=True, slots=True)
class SessionStarted:
    participants: tuple[str, ...]
    execution_model: ExecutionModel
    input_seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    execution_model: ExecutionModel
    raw_answer: str


@record
class TurnCompleted:
    speaker: Speaker
    content: str
    turn: int
    message_seq: int
    participant_index: int
    latency: timedelta
    usage: Usage


@record
class TurnFailed:
    speaker: Speaker
    participant_index: int
    code: str
    message: str
    retryable: bool
    attempts: int


@dataclass(frozen=True, slots=True)
class SessionCompleted:
    turn_count: int
    failure_count: int


Event = SessionStarted | RoutingDecision | TurnCompleted | TurnFailed | SessionCompleted


@record
class SessionEvent:
    """An event with its place in the stream: `sequence` counts from 1 per run."""

    dialogue_id: str
    turn: int
    sequence: int
    time: datetime
    event: Event
