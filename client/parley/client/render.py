"""How the ``parley`` command shows runs, dialogues, logs and errors in a terminal.

All of it lives here so ``run``, ``demo`` and ``history`` look alike and the CLI module
only wires commands. Text that comes from agents or users is always wrapped in
``rich.text.Text``, never interpolated into markup: a reply containing ``[bold]`` must
print as written.
"""

from __future__ import annotations

import json
from types import TracebackType

import grpc
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message as ProtoMessage
from parley.client.errors import ErrorDescription
from parley.v1 import dialogue_pb2 as pb
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.status import Status
from rich.text import Text

__all__ = [
    "RunView",
    "describe_model",
    "dialogue_line",
    "dialogue_summary",
    "error_text",
    "json_line",
    "message_view",
]

# Participants get a stable colour from their position, so one speaker keeps one
# colour across a run and across runs of the same dialogue.
_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")
# NOT_FOUND reasons that mean the dialogue itself is missing (not, say, a participant).
_DIALOGUE_MISSING = ("", "DIALOGUE_NOT_FOUND")


class _Indented:
    """A renderable indented by two spaces, wrapped lines included.

    Unlike ``rich.padding.Padding`` it does not pad lines to the full width, so text
    piped to a file carries no trailing blanks.
    """

    def __init__(self, content: RenderableType, indent: int = 2) -> None:
        self._content = content
        self._indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - self._indent, 1)
        for line in console.render_lines(self._content, options.update_width(width), pad=False):
            yield Segment(" " * self._indent)
            yield from line
            yield Segment.line()


def json_line(message: ProtoMessage) -> str:
    """One proto as a single line of its canonical JSON mapping (for ``--json``)."""
    return json.dumps(json_format.MessageToDict(message), ensure_ascii=False)


def _enum_word(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower().replace("_", " ")


def describe_model(model: pb.ExecutionModel) -> str:
    """A short phrase for an execution model, for example ``sequential: Ada → Bo``."""
    mode = model.WhichOneof("mode")
    if mode == "sequential":
        order = " → ".join(model.sequential.order)
        return f"sequential: {order}" if order else "sequential"
    if mode == "mentioned":
        strategy = pb.MentionMatchStrategy.Name(
            model.mentioned.strategy or pb.MENTION_MATCH_STRATEGY_EXACT_WORD
        )
        return f"@mentioned ({_enum_word(strategy, 'MENTION_MATCH_STRATEGY_')})"
    if mode == "moderator":
        return f"moderated by {model.moderator.agent}"
    broadcast_order = model.broadcast.order or pb.BROADCAST_ORDER_COMPLETION
    words = _enum_word(pb.BroadcastOrder.Name(broadcast_order), "BROADCAST_ORDER_")
    text = f"broadcast, {words.removesuffix(' order')} order"
    if broadcast_order == pb.BROADCAST_ORDER_EXPLICIT and model.broadcast.explicit_order:
        text += ": " + ", ".join(model.broadcast.explicit_order)
    return text


def _milliseconds(duration: duration_pb2.Duration) -> str:
    value = duration.seconds * 1000 + duration.nanos / 1e6
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _speaker(speaker: pb.Speaker, style: str = "bold") -> Text:
    """Icon, name and role of a speaker, as one piece of text."""
    label = Text()
    if speaker.icon:
        label.append(f"{speaker.icon} ")
    label.append(speaker.name or "?", style=style)
    if speaker.role:
        label.append(f" ({speaker.role})", style="dim")
    return label


def _participant_style(index: int) -> str:
    return f"bold {_PALETTE[index % len(_PALETTE)]}"


def _turn_view(turn: pb.Turn) -> RenderableType:
    header = _speaker(turn.speaker, _participant_style(turn.participant_index))
    details = [_milliseconds(turn.latency)]
    if turn.usage.input_tokens or turn.usage.output_tokens:
        details.append(f"{turn.usage.input_tokens} in / {turn.usage.output_tokens} out tokens")
    header.append(" · " + " · ".join(details), style="dim")
    return Group(header, _Indented(Text(turn.content)))


def _failure_view(failure: pb.TurnFailed) -> Text:
    text = Text("✗ ", style="bold red")
    text.append_text(_speaker(failure.speaker, "bold red"))
    text.append(f" failed: {failure.code or 'ERROR'}", style="bold red")
    if failure.message:
        text.append(f": {failure.message}", style="red")
    notes = []
    if failure.attempts > 1:
        notes.append(f"{failure.attempts} attempts")
    if failure.retryable:
        notes.append("retryable")
    if notes:
        text.append(f" ({', '.join(notes)})", style="dim red")
    return text


class RunView:
    """Prints a run's events the moment they arrive.

    On an interactive terminal a spinner names the participants still working, so a
    slow agent does not look like a hung command; elsewhere (pipes, tests) only the
    events are printed.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pending: list[str] = []
        self._status: Status | None = None
        self.completed: pb.SessionCompleted | None = None

    def __enter__(self) -> RunView:
        if self._console.is_terminal:
            self._status = self._console.status("starting the run…")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def show(self, event: pb.SessionEvent) -> None:
        """Print one event; the spinner is updated first so it never lags the output."""
        kind = event.WhichOneof("event")
        view: RenderableType
        if kind == "started":
            self._pending = list(event.started.participants)
            view = self._started_view(event.turn, event.started)
        elif kind == "routing":
            chosen = describe_model(event.routing.execution_model)
            view = Text(f"moderator chose {chosen}", style="dim")
        elif kind == "turn_completed":
            self._done(event.turn_completed.speaker.name)
            view = _turn_view(event.turn_completed)
        elif kind == "turn_failed":
            self._done(event.turn_failed.speaker.name)
            view = _failure_view(event.turn_failed)
        elif kind == "completed":
            self.completed = event.completed
            self._pending = []
            view = self._completed_view(event.turn, event.completed)
        else:
            return  # an event kind newer than this client: nothing to show
        self._update_status()
        self._console.print(view)

    @staticmethod
    def _started_view(turn: int, started: pb.SessionStarted) -> Text:
        called = ", ".join(started.participants) if started.participants else "nobody to call"
        return Text(
            f"turn {turn} · {describe_model(started.execution_model)} · {called}", style="dim"
        )

    @staticmethod
    def _completed_view(turn: int, completed: pb.SessionCompleted) -> Text:
        replies = f"{completed.turn_count} repl{'y' if completed.turn_count == 1 else 'ies'}"
        failures = f"{completed.failure_count} failed"
        if completed.failure_count:
            return Text(f"turn {turn} done: {replies}, {failures}", style="bold yellow")
        return Text(f"✓ turn {turn} done: {replies}, {failures}", style="bold green")

    def _done(self, name: str) -> None:
        if name in self._pending:
            self._pending.remove(name)

    def _update_status(self) -> None:
        if self._status is None:
            return
        if self._pending:
            self._status.update(f"waiting for {', '.join(self._pending)}…")
        elif self.completed is not None:
            # Stop before the last line so the spinner cannot redraw under it.
            self._status.stop()
            self._status = None


def message_view(message: pb.Message) -> RenderableType:
    """One log entry: seq, turn and speaker on a line, the content indented below."""
    header = Text(f"#{message.seq} · turn {message.turn} · ", style="dim")
    header.append_text(_speaker(message.speaker))
    if message.type not in (pb.MESSAGE_TYPE_UNSPECIFIED, pb.MESSAGE_TYPE_CONVERSATIONAL):
        kind = message.custom_type or _enum_word(pb.MessageType.Name(message.type), "MESSAGE_TYPE_")
        header.append(f" · {kind}", style="dim")
    return Group(header, _Indented(Text(message.content)))


def dialogue_line(dialogue: pb.Dialogue) -> Text:
    """A dialogue in one line, for listings."""
    line = Text(dialogue.name, style="bold")
    if dialogue.display_name:
        line.append(f"  {dialogue.display_name}")
    count = len(dialogue.participants)
    line.append(
        f"  · {count} participant{'' if count == 1 else 's'}"
        f" · turn {dialogue.latest_turn} · {dialogue.message_count} messages",
        style="dim",
    )
    return line


def dialogue_summary(dialogue: pb.Dialogue) -> RenderableType:
    """A dialogue's settings and participants, for ``parley get``."""
    reaction = _enum_word(
        pb.ReactionStrategy.Name(dialogue.reaction_strategy or pb.REACTION_STRATEGY_ALWAYS),
        "REACTION_STRATEGY_",
    )
    lines: list[RenderableType] = [
        dialogue_line(dialogue),
        _Indented(
            Text(
                f"model: {describe_model(dialogue.execution_model)} · reacts: {reaction}",
                style="dim",
            )
        ),
    ]
    if dialogue.context.environment:
        lines.append(_Indented(Text(f"setting: {dialogue.context.environment}")))
    for index, participant in enumerate(dialogue.participants):
        persona = participant.persona
        entry = _speaker(
            pb.Speaker(name=persona.name, role=persona.role, icon=persona.visual_identity.icon),
            _participant_style(index),
        )
        entry.append(f" · {participant.agent}", style="dim")
        if participant.pending:
            entry.append(" · joining", style="yellow")
        lines.append(_Indented(entry))
    return Group(*lines)


def error_text(error: ErrorDescription, *, server: str, dialogue: str | None = None) -> Text:
    """A failed call explained in terms of what the user typed, with a hint to fix it."""
    code = error.code
    if code == grpc.StatusCode.UNAVAILABLE and not error.reason:
        # No details means the channel itself failed: nobody answered at that address.
        message = (
            f"cannot reach a Parley server at {server} (is parley-server running? "
            "--server or PARLEY_SERVER picks another address)"
        )
    elif (
        code == grpc.StatusCode.NOT_FOUND
        and dialogue
        and error.reason in ("", "DIALOGUE_NOT_FOUND")
    ):
        message = f"dialogue {dialogue} not found"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        message = f"the server wants a token: pass --token or set PARLEY_TOKEN ({error.message})"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"the server at {server} did not answer in time"
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        # The message often just repeats the only violation, which is listed below.
        repeats = error.message in {str(v) for v in error.field_violations}
        message = (
            "invalid request"
            if repeats or not error.message
            else f"invalid request: {error.message}"
        )
    else:
        message = f"{error.message or 'request failed'} ({error.code_name}"
        message += f", {error.reason})" if error.reason else ")"
    text = Text(f"error: {message}", style="bold red")
    for violation in error.field_violations:
        text.append(f"\n  - {violation}", style="red")
    return text
