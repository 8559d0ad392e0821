"""Who speaks in a run, in which order, and how their replies are emitted.

Pure functions of the dialogue and the execution model of the run (already resolved:
a moderator's decision, mentions found); the session carries the plan out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parley.server.engine.model import (
    Broadcast,
    BroadcastOrder,
    Dialogue,
    ExecutionModel,
    Mentioned,
    Participant,
    Sequential,
)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Who is called in a run, in which order, and how replies are emitted.

    `emission` None means completion order; otherwise it is the order of participant
    indexes in which turns are emitted (a finished reply waits, already stored).
    """

    execution_model: ExecutionModel
    called: tuple[Participant, ...]
    sequential: bool
    emission: tuple[int, ...] | None


def ordered(participants: Sequence[Participant], names: Sequence[str]) -> list[Participant]:
    """Named participants first in the given order, then the rest in added order."""
    by_name = {p.name: p for p in participants}
    # A name may outlive its participant in a model stored before a removal.
    first = [by_name[name] for name in names if name in by_name]
    return first + [p for p in participants if p.name not in names]


def plan_for(
    dialogue: Dialogue, model: ExecutionModel, mentioned: set[str] | None = None
) -> RunPlan:
    """The plan for a resolved model (not Moderated); `mentioned` serves Mentioned."""
    participants = dialogue.participants
    match model:
        case Mentioned():
            called = tuple(p for p in participants if p.name in (mentioned or set()))
            # With no mention everyone is called: the broadcast fallback.
            return RunPlan(model, called or participants, False, None)
        case Sequential(order=order):
            return RunPlan(model, tuple(ordered(participants, order)), True, None)
        case Broadcast(order=BroadcastOrder.COMPLETION):
            return RunPlan(model, participants, False, None)
        case Broadcast(order=BroadcastOrder.PARTICIPANT_ORDER):
            return RunPlan(model, participants, False, tuple(range(len(participants))))
        case Broadcast(order=BroadcastOrder.EXPLICIT, explicit_order=names):
            emission = tuple(dialogue.index_of(p.name) for p in ordered(participants, names))
            return RunPlan(model, participants, False, emission)
    raise ValueError(f"{type(model).__name__} must be resolved before planning")
