"""The domain rules every request must satisfy before anything is stored.

Each check collects `FieldViolation`s with a field path in the request (the parley.v1
field names), so a client learns about every problem at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from parley.server.agents.registry import AgentRegistry
from parley.server.engine.errors import FieldViolation, InvalidArgument, ResourceExhausted
from parley.server.engine.model import (
    Attachment,
    Broadcast,
    BroadcastOrder,
    Dialogue,
    ExecutionModel,
    InputMessage,
    JoiningStrategy,
    Mentioned,
    Moderated,
    Participant,
    Range,
    Recent,
    Sequential,
)

DIALOGUE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_NAME_CHARS = 128
MAX_SHORT_TEXT_CHARS = 1024
MAX_OPTION_VALUE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """Configurable ceilings; the defaults are the generous ones API.md promises."""

    max_participants: int = 256
    max_message_bytes: int = 1024 * 1024
    max_run_attachment_bytes: int = 8 * 1024 * 1024
    max_input_messages: int = 1000
    max_page_size: int = 1000
    # The longest a run may take, whatever the client's deadline.
    max_run_seconds: int = 3600
    # Runs in progress at once on this server, and per client (token, or peer address
    # when authentication is off).
    max_concurrent_runs: int = 4096
    max_concurrent_runs_per_client: int = 1024


class Violations:
    """Collects violations; `raise_if_any` turns them into one InvalidArgument."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def extend(self, violations: Iterable[FieldViolation]) -> None:
        self.items.extend(violations)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def check_dialogue_id(dialogue_id: str, field: str, out: Violations) -> None:
    if not DIALOGUE_ID.fullmatch(dialogue_id):
        out.add(field, "must match [a-z0-9][a-z0-9-]{0,62}")


def check_name(name: str, field: str, out: Violations) -> None:
    """Participant names identify speakers and are matched by @mentions."""
    if not name or not name.strip():
        out.add(field, "is required")
    elif len(name) > MAX_NAME_CHARS:
        out.add(field, f"must be at most {MAX_NAME_CHARS} characters")
    elif name != name.strip():
        out.add(field, "must not start or end with whitespace")
    elif "@" in name or any(unicodedata.category(c).startswith("C") for c in name):
        out.add(field, "must not contain '@' or control characters")


def check_short_text(
    value: str, field: str, out: Violations, limit: int = MAX_SHORT_TEXT_CHARS
) -> None:
    if len(value) > limit:
        out.add(field, f"must be at most {limit} characters")


def check_participant(
    participant: Participant, field: str, agents: AgentRegistry, out: Violations
) -> None:
    persona = participant.persona
    check_name(persona.name, f"{field}.persona.name", out)
    check_short_text(persona.role, f"{field}.persona.role", out)
    check_short_text(persona.visual_identity.icon, f"{field}.persona.visual_identity.icon", out, 64)
    if not participant.agent:
        out.add(f"{field}.agent", "is required (an agent profile name, for example 'echo')")
    elif agents.profile(participant.agent) is None:
        out.add(f"{field}.agent", f"unknown agent profile {participant.agent!r}")
    else:
        check_agent_options(
            participant.agent, participant.agent_options, f"{field}.agent_options", agents, out
        )
    if participant.joining_strategy is not None:
        check_joining(participant.joining_strategy, f"{field}.joining_strategy", out)


def check_agent_options(
    agent: str, options: Mapping[str, str], field: str, agents: AgentRegistry, out: Violations
) -> None:
    for key, problem in agents.option_problems(agent, options).items():
        out.add(f"{field}[{key!r}]", problem)
    for key, value in options.items():
        if len(value) > MAX_OPTION_VALUE_CHARS:
            out.add(f"{field}[{key!r}]", f"must be at most {MAX_OPTION_VALUE_CHARS} characters")


def check_joining(strategy: JoiningStrategy, field: str, out: Violations) -> None:
    match strategy:
        case Recent(turns=turns) if turns < 0 or turns > 1_000_000:
            out.add(f"{field}.recent.turns", "must be between 0 and 1000000")
        case Range(start=start, end=end):
            if start < 1:
                out.add(f"{field}.range.start", "must be at least 1")
            if end is not None and end < start:
                out.add(f"{field}.range.end", "must not be before start")


def check_names_known(names: Sequence[str], known: set[str], field: str, out: Violations) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name not in known:
            out.add(f"{field}[{i}]", f"{name!r} is not a participant of this dialogue")
        elif name in seen:
            out.add(f"{field}[{i}]", f"{name!r} is named twice")
        seen.add(name)


def check_broadcast(broadcast: Broadcast, known: set[str], field: str, out: Violations) -> None:
    if broadcast.explicit_order and broadcast.order is not BroadcastOrder.EXPLICIT:
        out.add(f"{field}.explicit_order", "is only allowed with BROADCAST_ORDER_EXPLICIT")
    check_names_known(broadcast.explicit_order, known, f"{field}.explicit_order", out)


def check_execution_model(
    model: ExecutionModel, known: set[str], field: str, agents: AgentRegistry, out: Violations
) -> None:
    match model:
        case Broadcast():
            check_broadcast(model, known, f"{field}.broadcast", out)
        case Sequential(order=order):
            check_names_known(order, known, f"{field}.sequential.order", out)
        case Mentioned():
            pass
        case Moderated(agent=agent, agent_options=options):
            if not agent:
                out.add(f"{field}.moderator.agent", "is required (an agent profile name)")
            elif agents.profile(agent) is None:
                out.add(f"{field}.moderator.agent", f"unknown agent profile {agent!r}")
            else:
                check_agent_options(agent, options, f"{field}.moderator.agent_options", agents, out)


def check_dialogue(
    dialogue: Dialogue, field: str, agents: AgentRegistry, limits: Limits, out: Violations
) -> None:
    check_short_text(dialogue.display_name, f"{field}.display_name", out)
    if len(dialogue.participants) > limits.max_participants:
        raise ResourceExhausted(
            f"a dialogue may have at most {limits.max_participants} participants",
            subject="participants_per_dialogue",
            reason="TOO_MANY_PARTICIPANTS",
        )
    names: set[str] = set()
    for i, participant in enumerate(dialogue.participants):
        check_participant(participant, f"{field}.participants[{i}]", agents, out)
        if participant.name in names:
            out.add(
                f"{field}.participants[{i}].persona.name",
                f"{participant.name!r} is already a participant",
            )
        names.add(participant.name)
    check_execution_model(dialogue.execution_model, names, f"{field}.execution_model", agents, out)


def check_run_input(
    messages: Sequence[InputMessage],
    text: str,
    attachments: Sequence[Attachment],
    limits: Limits,
    out: Violations,
) -> None:
    if not text and not messages and not attachments:
        out.add("text", "a run needs input: text, messages or attachments")
    if len(messages) > limits.max_input_messages:
        raise ResourceExhausted(
            f"at most {limits.max_input_messages} input messages per run",
            subject="input_messages_per_run",
            reason="TOO_MANY_INPUT_MESSAGES",
        )
    if len(text.encode()) > limits.max_message_bytes:
        raise ResourceExhausted(
            f"text is larger than {limits.max_message_bytes} bytes",
            subject="message_bytes",
            reason="MESSAGE_TOO_LARGE",
        )
    total_attachment_bytes = sum(a.size for a in attachments)
    for i, message in enumerate(messages):
        if len(message.content.encode()) > limits.max_message_bytes:
            raise ResourceExhausted(
                f"messages[{i}].content is larger than {limits.max_message_bytes} bytes",
                subject="message_bytes",
                reason="MESSAGE_TOO_LARGE",
            )
        check_name(message.speaker.name, f"messages[{i}].speaker.name", out)
        check_attachments(message.attachments, f"messages[{i}].attachments", out)
        total_attachment_bytes += sum(a.size for a in message.attachments)
    check_attachments(attachments, "attachments", out)
    if total_attachment_bytes > limits.max_run_attachment_bytes:
        raise ResourceExhausted(
            f"attachments exceed {limits.max_run_attachment_bytes} bytes per run",
            subject="attachment_bytes_per_run",
            reason="ATTACHMENTS_TOO_LARGE",
        )


def check_attachments(attachments: Sequence[Attachment], field: str, out: Violations) -> None:
    for i, attachment in enumerate(attachments):
        check_short_text(attachment.name, f"{field}[{i}].name", out)
        if not attachment.mime_type:
            out.add(f"{field}[{i}].mime_type", "is required")
        if attachment.data is None and not attachment.uri:
            out.add(f"{field}[{i}]", "needs data or a uri")
