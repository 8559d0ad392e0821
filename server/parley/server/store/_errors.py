"""The errors every store raises in the same words, so backends stay interchangeable.

They sit beside `engine.errors.dialogue_not_found` in spirit; kept here until that
module grows equivalents.
"""

from __future__ import annotations

from collections.abc import Iterable

from parley.server.engine.errors import AlreadyExists, LeaseLost, NotFound, RunInProgress
from parley.server.engine.model import Participant


def dialogue_exists(dialogue_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"dialogue {dialogue_id!r} already exists", reason="DIALOGUE_ALREADY_EXISTS"
    )


def participant_exists(name: str) -> AlreadyExists:
    return AlreadyExists(
        f"participant {name!r} already exists", reason="PARTICIPANT_ALREADY_EXISTS"
    )


def participant_not_found(dialogue_id: str, name: str) -> NotFound:
    return NotFound(
        f"participant {name!r} not found in dialogue {dialogue_id!r}",
        reason="PARTICIPANT_NOT_FOUND",
    )


def run_in_progress(dialogue_id: str) -> RunInProgress:
    return RunInProgress(f"a run is already in progress on dialogue {dialogue_id!r}")


def no_run_in_progress(dialogue_id: str) -> NotFound:
    return NotFound(
        f"no run is in progress on dialogue {dialogue_id!r}", reason="NO_RUN_IN_PROGRESS"
    )


def lease_lost(dialogue_id: str) -> LeaseLost:
    return LeaseLost(f"the run lease on dialogue {dialogue_id!r} is no longer held")


def ensure_unique_names(participants: Iterable[Participant]) -> None:
    """Raises `participant_exists` for the first name that appears twice."""
    seen: set[str] = set()
    for participant in participants:
        if participant.name in seen:
            raise participant_exists(participant.name)
        seen.add(participant.name)
