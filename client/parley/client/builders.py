"""Small typed helpers for the protos people write by hand.

Building a ``Dialogue`` from the raw generated classes means nested constructors and
full enum names (``BROADCAST_ORDER_PARTICIPANT_ORDER``). These helpers take short,
case-insensitive names and plain Python values, and still return the ordinary protos,
so anything they cannot express can be set on the result afterwards.

Dialogue files (YAML, TOML or JSON) are the proto JSON mapping of ``Dialogue``, read
with protobuf's own ``json_format`` so the file format never drifts from the contract.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from google.protobuf import json_format
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from parley.v1 import dialogue_pb2 as pb

__all__ = [
    "DialogueFileError",
    "OptionValue",
    "attachment",
    "attachment_file",
    "broadcast",
    "broadcast_order",
    "context",
    "custom_talk_style",
    "dialogue",
    "dialogue_from_mapping",
    "fresh",
    "full",
    "input_message",
    "joining",
    "load_dialogue_file",
    "mentioned",
    "moderated",
    "participant",
    "persona",
    "recent",
    "sequential",
    "turn_range",
]

OptionValue = str | int | float | bool
"""An agent option value; the wire format is a string, numbers are converted."""

_BROADCAST_ALIASES = {"participant": "PARTICIPANT_ORDER", "participants": "PARTICIPANT_ORDER"}
# Map fields whose values are strings on the wire but that YAML and TOML authors
# naturally write as numbers or booleans (`delay_ms: 200`).
_OPTION_MAP_KEYS = frozenset({"agent_options", "agentOptions"})


def _enum_name(
    enum: EnumTypeWrapper,
    prefix: str,
    value: int | str,
    what: str,
    aliases: Mapping[str, str] | None = None,
) -> str:
    """The full enum value name for a number, a full name or a short name.

    Returning the name (not the number) lets the typed proto constructors take it.
    """
    if isinstance(value, int):
        return enum.Name(value)
    key = value.strip().upper().replace("-", "_").replace(" ", "_")
    key = (aliases or {}).get(key.lower(), key)
    names = enum.keys()
    for candidate in (key, prefix + key):
        if candidate in names:
            return candidate
    choices = ", ".join(
        name.removeprefix(prefix).lower() for name in names if not name.endswith("_UNSPECIFIED")
    )
    raise ValueError(f"unknown {what} {value!r}; expected one of: {choices}")


def _option_text(value: OptionValue) -> str:
    """An agent option as the wire's string; booleans spelled as in JSON, not Python."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _options(values: Mapping[str, OptionValue] | None) -> dict[str, str]:
    return {key: _option_text(value) for key, value in (values or {}).items()}


def persona(
    name: str,
    *,
    role: str = "",
    icon: str = "",
    background: str = "",
    communication_style: str = "",
    capabilities: Mapping[str, str] | None = None,
    tagline: str = "",
    color: str = "",
) -> pb.Persona:
    """A persona; ``capabilities`` maps capability names to their descriptions."""
    return pb.Persona(
        name=name,
        role=role,
        background=background,
        communication_style=communication_style,
        capabilities=[
            pb.Capability(name=key, description=description)
            for key, description in (capabilities or {}).items()
        ],
        visual_identity=(
            pb.VisualIdentity(icon=icon, tagline=tagline, color=color)
            if icon or tagline or color
            else None
        ),
    )


def participant(
    who: str | pb.Persona,
    agent: str = "echo",
    *,
    role: str = "",
    icon: str = "",
    options: Mapping[str, OptionValue] | None = None,
) -> pb.Participant:
    """A participant bound to the server's agent profile ``agent``.

    ``who`` is a name, or a full :func:`persona` when more than role and icon matter;
    ``role`` and ``icon``, when given, override the persona's.
    """
    base = persona(who) if isinstance(who, str) else who
    result = pb.Participant(persona=base, agent=agent, agent_options=_options(options))
    if role:
        result.persona.role = role
    if icon:
        result.persona.visual_identity.icon = icon
    return result


def broadcast(
    order: pb.BroadcastOrder | str = "completion", explicit_order: Iterable[str] = ()
) -> pb.ExecutionModel:
    """Everyone answers at once; ``order`` is completion, participant_order or explicit."""
    name = _enum_name(
        pb.BroadcastOrder, "BROADCAST_ORDER_", order, "broadcast order", _BROADCAST_ALIASES
    )
    return pb.ExecutionModel(
        broadcast=pb.Broadcast(order=name, explicit_order=list(explicit_order))
    )


def broadcast_order(spec: str | pb.Broadcast) -> pb.Broadcast:
    """Parse a per-run order override: ``completion``, ``participant`` or ``explicit:A,B``.

    This is the text form the CLI's ``--order`` takes; a ``Broadcast`` passes through.
    """
    if isinstance(spec, pb.Broadcast):
        return spec
    kind, _, names = spec.partition(":")
    explicit = [name.strip() for name in names.split(",") if name.strip()]
    order = _enum_name(
        pb.BroadcastOrder, "BROADCAST_ORDER_", kind, "broadcast order", _BROADCAST_ALIASES
    )
    if explicit and order != "BROADCAST_ORDER_EXPLICIT":
        raise ValueError(f"only the explicit order takes names, not {kind!r}")
    if order == "BROADCAST_ORDER_EXPLICIT" and not explicit:
        raise ValueError("the explicit order needs names: explicit:Name1,Name2")
    return pb.Broadcast(order=order, explicit_order=explicit)


def sequential(order: Iterable[str] = ()) -> pb.ExecutionModel:
    """One after another: the names in ``order`` first, then the rest in added order."""
    return pb.ExecutionModel(sequential=pb.Sequential(order=list(order)))


def mentioned(strategy: pb.MentionMatchStrategy | str = "exact_word") -> pb.ExecutionModel:
    """Only @mentioned participants answer; ``strategy`` is exact_word, name or partial."""
    name = _enum_name(
        pb.MentionMatchStrategy, "MENTION_MATCH_STRATEGY_", strategy, "mention strategy"
    )
    return pb.ExecutionModel(mentioned=pb.Mentioned(strategy=name))


def moderated(agent: str, options: Mapping[str, OptionValue] | None = None) -> pb.ExecutionModel:
    """A moderator agent (a server profile) picks the execution model of each run."""
    return pb.ExecutionModel(moderator=pb.Moderated(agent=agent, agent_options=_options(options)))


def custom_talk_style(
    name: str,
    *,
    description: str = "",
    guidelines: Iterable[str] = (),
    expected_behaviors: Iterable[str] = (),
) -> pb.CustomTalkStyle:
    """A talk style of your own, for :func:`context`."""
    return pb.CustomTalkStyle(
        name=name,
        description=description,
        guidelines=list(guidelines),
        expected_behaviors=list(expected_behaviors),
    )


def context(
    *,
    talk_style: pb.TalkStyle | str | pb.CustomTalkStyle | None = None,
    environment: str = "",
    additional: Iterable[str] = (),
    policy: Mapping[str, Iterable[str]] | None = None,
) -> pb.DialogueContext:
    """Framing rendered into every prompt of a dialogue.

    ``talk_style`` is a built-in style (brainstorm, casual, decision_making, debate,
    problem_solving, review, planning, research) or a :func:`custom_talk_style`;
    ``policy`` maps a participant's name to the capability names the others may see.
    """
    result = pb.DialogueContext(
        environment=environment,
        additional_context=list(additional),
        policy={
            name: pb.CapabilityList(capabilities=list(names))
            for name, names in (policy or {}).items()
        },
    )
    if isinstance(talk_style, pb.CustomTalkStyle):
        result.custom_talk_style.CopyFrom(talk_style)
    elif talk_style is not None:
        style = _enum_name(pb.TalkStyle, "TALK_STYLE_", talk_style, "talk style")
        result.MergeFrom(pb.DialogueContext(talk_style=style))
    return result


def fresh() -> pb.JoiningStrategy:
    """Join in progress seeing only the current turn's input and replies."""
    return pb.JoiningStrategy(fresh=pb.JoiningStrategy.Fresh())


def full() -> pb.JoiningStrategy:
    """Join in progress seeing the whole log."""
    return pb.JoiningStrategy(full=pb.JoiningStrategy.Full())


def recent(turns: int = 5) -> pb.JoiningStrategy:
    """Join in progress seeing the last ``turns`` turns, plus the current one."""
    if turns < 1:
        raise ValueError("recent turns must be at least 1")
    return pb.JoiningStrategy(recent=pb.JoiningStrategy.Recent(turns=turns))


def turn_range(start: int, end: int | None = None) -> pb.JoiningStrategy:
    """Join in progress seeing turns ``start`` to ``end`` inclusive (``None``: up to the
    current turn), plus the current one."""
    if start < 1 or (end is not None and end < start):
        raise ValueError("a turn range needs 1 <= start <= end")
    return pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=start, end=end))


def joining(spec: str | pb.JoiningStrategy) -> pb.JoiningStrategy:
    """Parse a joining strategy: ``fresh``, ``full``, ``recent``, ``recent:N``,
    ``range:START-END`` or ``range:START-`` (the text form the CLI's ``--join`` takes)."""
    if isinstance(spec, pb.JoiningStrategy):
        return spec
    kind, _, argument = spec.strip().lower().partition(":")
    first, dash, last = argument.partition("-")
    if kind == "fresh" and not argument:
        return fresh()
    if kind == "full" and not argument:
        return full()
    if kind == "recent" and (not argument or argument.isdigit()):
        return recent(int(argument)) if argument else recent()
    if kind == "range" and first.isdigit() and (not last or last.isdigit()):
        return turn_range(int(first), int(last) if dash and last else None)
    raise ValueError(
        f"unknown joining strategy {spec!r}; expected fresh, full, recent[:N] or range:START-[END]"
    )


def attachment(
    name: str, mime_type: str = "", *, data: bytes | None = None, uri: str | None = None
) -> pb.Attachment:
    """A file that travels with a message: inline ``data`` or a ``uri`` agents can read."""
    if (data is None) == (uri is None):
        raise ValueError("an attachment needs exactly one of data and uri")
    if data is not None:
        return pb.Attachment(name=name, mime_type=mime_type, data=data)
    return pb.Attachment(name=name, mime_type=mime_type, uri=uri)


def attachment_file(path: str | os.PathLike[str], mime_type: str = "") -> pb.Attachment:
    """A local file as an inline attachment; the media type is guessed from its name."""
    file = Path(path)
    guessed = mime_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return attachment(file.name, guessed, data=file.read_bytes())


def dialogue(
    display_name: str,
    participants: Iterable[pb.Participant],
    *,
    model: pb.ExecutionModel | None = None,
    context: pb.DialogueContext | None = None,
    reaction: pb.ReactionStrategy | str | None = None,
) -> pb.Dialogue:
    """A dialogue ready for ``create_dialogue``; ``model`` defaults to the server's."""
    result = pb.Dialogue(
        display_name=display_name,
        participants=list(participants),
        execution_model=model,
        context=context,
    )
    if reaction is not None:
        strategy = _enum_name(
            pb.ReactionStrategy, "REACTION_STRATEGY_", reaction, "reaction strategy"
        )
        result.MergeFrom(pb.Dialogue(reaction_strategy=strategy))
    return result


def input_message(
    content: str,
    *,
    speaker: str = "User",
    kind: pb.SpeakerKind | str = "user",
    message_type: pb.MessageType | str = "conversational",
) -> pb.InputMessage:
    """One input message of a run, by default from a user called "User"."""
    return pb.InputMessage(
        speaker=pb.Speaker(
            name=speaker, kind=_enum_name(pb.SpeakerKind, "SPEAKER_KIND_", kind, "speaker kind")
        ),
        content=content,
        type=_enum_name(pb.MessageType, "MESSAGE_TYPE_", message_type, "message type"),
    )


class DialogueFileError(ValueError):
    """A dialogue file that cannot be read or does not describe a ``Dialogue``.

    ``str()`` reads like a compiler message (``path:line:column: problem``) so editors
    and terminals can jump to the spot.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = [str(part) for part in (self.path, self.line, self.column) if part is not None]
        return ":".join([*where, " " + self.problem]) if where else self.problem


def _stringify_options(data: Mapping[str, object]) -> dict[str, object]:
    """Turn numbers and booleans inside agent option maps into the strings the proto wants."""
    return {
        key: _scalars_to_strings(value)
        if key in _OPTION_MAP_KEYS and isinstance(value, Mapping)
        else _stringify_nested(value)
        for key, value in data.items()
    }


def _stringify_nested(value: object) -> object:
    if isinstance(value, Mapping):
        return _stringify_options(value)
    if isinstance(value, list):
        return [_stringify_nested(item) for item in value]
    return value


def _scalars_to_strings(options: Mapping[str, object]) -> dict[str, object]:
    # Anything else (a nested table, a list) is left for json_format to reject.
    return {
        key: _option_text(value) if isinstance(value, OptionValue) else value
        for key, value in options.items()
    }


def _clean_parse_error(error: json_format.ParseError) -> str:
    """The innermost cause of a json_format error, without its nested prefixes."""
    text = re.sub(r"^(Failed to parse \w+ field: )+", "", str(error))
    return text.rstrip(".").replace("\n", " ") or "not a valid Dialogue"


def dialogue_from_mapping(data: object, *, path: str | None = None) -> pb.Dialogue:
    """A ``Dialogue`` from parsed file content (the proto JSON mapping).

    Field names may be camelCase or snake_case and enums take their full names, as in
    any proto JSON. Unknown fields are errors: a typo silently ignored would create a
    different dialogue than the one the author meant.
    """
    if not isinstance(data, Mapping):
        found = "nothing" if data is None else type(data).__name__
        raise DialogueFileError(f"expected a mapping of Dialogue fields, found {found}", path=path)
    try:
        return json_format.ParseDict(_stringify_options(data), pb.Dialogue())
    except json_format.ParseError as error:
        raise DialogueFileError(_clean_parse_error(error), path=path) from error


def _parse_yaml(text: str, path: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(part for part in (error.problem, error.context) if part)
        raise DialogueFileError(
            problem or "invalid YAML",
            path=path,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from error
    except yaml.YAMLError as error:
        raise DialogueFileError(f"invalid YAML: {error}", path=path) from error


def _parse_toml(text: str, path: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # Python 3.11's error has no line attribute; the position is in the message.
        message = str(error)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if found is None:
            raise DialogueFileError(f"invalid TOML: {message}", path=path) from error
        raise DialogueFileError(
            f"invalid TOML: {message[: found.start()]}",
            path=path,
            line=int(found.group(1)),
            column=int(found.group(2)),
        ) from error


def _parse_json(text: str, path: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DialogueFileError(
            f"invalid JSON: {error.msg}", path=path, line=error.lineno, column=error.colno
        ) from error


_PARSERS = {".yaml": _parse_yaml, ".yml": _parse_yaml, ".toml": _parse_toml, ".json": _parse_json}


def load_dialogue_file(path: str | os.PathLike[str]) -> pb.Dialogue:
    """Read a ``Dialogue`` from a .yaml/.yml, .toml or .json file, chosen by extension.

    Every failure (missing file, syntax error, unknown field) is a
    :class:`DialogueFileError` naming the file, and the line when the parser knows it.
    """
    file = Path(path)
    shown = str(path)
    parser = _PARSERS.get(file.suffix.lower())
    if parser is None:
        raise DialogueFileError(
            f"unsupported file type {file.suffix or '(none)'!r}; use .yaml, .yml, .toml or .json",
            path=shown,
        )
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise DialogueFileError(error.strerror or str(error), path=shown) from error
    except UnicodeDecodeError as error:
        raise DialogueFileError("not UTF-8 text", path=shown) from error
    return dialogue_from_mapping(parser(text, shown), path=shown)
