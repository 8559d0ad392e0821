"""The Moderator execution model: asking an agent which model to use for a run.

The moderator receives the participant list, the recent log and this turn's input, and
answers with a JSON execution model. An answer that does not parse, names an unknown
participant, or asks for the moderator again is rejected with a `ModerationError`; the
run then falls back to broadcast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from parley.server.engine.model import (
    Broadcast,
    BroadcastOrder,
    Dialogue,
    ExecutionModel,
    Mentioned,
    MentionMatchStrategy,
    Message,
    Sequential,
)
from parley.server.engine.prompts import render_messages

RECENT_MESSAGES = 20
MODERATOR_ROLE = "moderator"

_ORDERS = {order.value: order for order in BroadcastOrder}
_STRATEGIES = {strategy.value: strategy for strategy in MentionMatchStrategy}


class ModerationError(ValueError):
    """The moderator's answer cannot be used; the message says why, safely."""


def render_moderator_prompt(
    dialogue: Dialogue, recent: Sequence[Message], inputs: Sequence[Message]
) -> str:
    participants = "\n".join(
        f"- {p.name}" + (f" ({p.persona.role})" if p.persona.role else "")
        for p in dialogue.participants
    )
    return (
        "You moderate a dialogue. Decide who should answer the new input and how.\n\n"
        f"# Participants\n{participants}\n\n"
        f"# Recent messages\n{render_messages(recent) or '(none)'}\n\n"
        f"# New input\n{render_messages(inputs)}\n\n"
        "Answer with one JSON object and nothing else, one of:\n"
        '{"broadcast": {"order": "completion" | "participant_order" | "explicit", '
        '"explicit_order": ["Name", ...]}}\n'
        '{"sequential": {"order": ["Name", ...]}}\n'
        '{"mentioned": {"strategy": "exact_word" | "name" | "partial"}}'
    )


def _json_object(answer: str) -> Mapping[str, Any]:
    """The first JSON object in the answer; models often wrap it in prose or fences."""
    start = answer.find("{")
    if start == -1:
        raise ModerationError("the answer holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(answer[start:])
    except json.JSONDecodeError as error:
        raise ModerationError(f"the answer is not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ModerationError("the answer is not a JSON object")
    return value


def _names(value: Any, field: str, known: set[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ModerationError(f"{field} must be a list of participant names")
    unknown = [n for n in value if n not in known]
    if unknown:
        raise ModerationError(f"{field} names unknown participants {unknown}")
    if len(set(value)) != len(value):
        raise ModerationError(f"{field} names a participant twice")
    return tuple(value)


def _choice(value: Any, table: Mapping[str, Any], field: str, default: Any) -> Any:
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in table:
        raise ModerationError(f"{field} must be one of {sorted(table)}")
    return table[value.lower()]


def parse_decision(answer: str, dialogue: Dialogue) -> ExecutionModel:
    decision = _json_object(answer)
    if len(decision) != 1:
        raise ModerationError("the answer must name exactly one execution model")
    ((mode, body),) = decision.items()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ModerationError(f"{mode} must map to an object")
    known = {p.name for p in dialogue.participants}
    match mode:
        case "broadcast":
            order = _choice(
                body.get("order"), _ORDERS, "broadcast.order", BroadcastOrder.COMPLETION
            )
            names = _names(body.get("explicit_order"), "broadcast.explicit_order", known)
            if names and order is not BroadcastOrder.EXPLICIT:
                order = BroadcastOrder.EXPLICIT
            return Broadcast(order, names)
        case "sequential":
            return Sequential(_names(body.get("order"), "sequential.order", known))
        case "mentioned":
            strategy = _choice(
                body.get("strategy"),
                _STRATEGIES,
                "mentioned.strategy",
                MentionMatchStrategy.EXACT_WORD,
            )
            return Mentioned(strategy)
        case "moderator" | "moderated":
            raise ModerationError("the moderator cannot hand the decision to a moderator")
    raise ModerationError(f"unknown execution model {mode!r}")
