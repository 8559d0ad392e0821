"""How the ``parley`` command shows runs, dialogues, logs and errors in a terminal.

All of it lives here so ``run``, ``demo`` and ``history`` look alike and the CLI module
only wires commands. Text that comes from agents or users is always wrapped in
``rich.text.Text``, never interpolated into markup: a reply containing ``[bold]`` must
print as written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import grpc
from google.protobuf import duration_pb2, json_format
from google.protobuf.message import Message as ProtoMessage
from parley.client.errors import ErrorDescription
from parley.v1 import dialogue_pb2 as pb
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.segment import Segment
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

__all__ = [
    "RunView",
    "completed_view",
    "describe_model",
    "dialogue_line",
    "dialogue_summary",
    "error_text",
    "failure_view",
    "json_line",
    "message_view",
    "profiles_table",
    "started_view",
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


def failure_view(failure: pb.TurnFailed) -> Text:
    """A failed participant in one red line: code, message, attempts."""
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


def _tokens(usage: pb.Usage) -> str:
    if not (usage.input_tokens or usage.output_tokens):
        return ""
    return f"{usage.input_tokens} in / {usage.output_tokens} out"


def started_view(turn: int, started: pb.SessionStarted) -> Text:
    """The first line of a run: its turn, the model used and who is called."""
    called = ", ".join(started.participants) if started.participants else "nobody to call"
    return Text(f"turn {turn} · {describe_model(started.execution_model)} · {called}", style="dim")


def completed_view(turn: int, completed: pb.SessionCompleted) -> Text:
    """The last line of a run: replies and failures."""
    replies = f"{completed.turn_count} repl{'y' if completed.turn_count == 1 else 'ies'}"
    failures = f"{completed.failure_count} failed"
    if completed.failure_count:
        return Text(f"turn {turn} done: {replies}, {failures}", style="bold yellow")
    return Text(f"✓ turn {turn} done: {replies}, {failures}", style="bold green")


@dataclass
class _Row:
    """One participant called in a run, as the live table shows it."""

    name: str
    index: int
    since: float
    speaker: pb.Speaker | None = None
    turn: pb.Turn | None = None
    failure: pb.TurnFailed | None = None


class RunView:
    """Prints a run's events the moment they arrive.

    On an interactive terminal a live table sits under the replies: one row per
    participant called (from ``started``), with a spinner and the time spent while it
    works, then its latency and tokens, or its failure in red. Elsewhere (pipes,
    files, tests) only the events are printed, one after another.
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        participants: Sequence[pb.Participant] = (),
    ) -> None:
        self._console = console
        self._live_wanted = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._rows: dict[str, _Row] = {}
        # Personas known up front (icon, role), so rows look alike before a reply.
        self._personas = {
            p.persona.name: (
                index,
                pb.Speaker(
                    kind=pb.SPEAKER_KIND_AGENT,
                    name=p.persona.name,
                    role=p.persona.role,
                    icon=p.persona.visual_identity.icon,
                ),
            )
            for index, p in enumerate(participants)
        }
        self.completed: pb.SessionCompleted | None = None

    @property
    def live(self) -> bool:
        """Whether a live table is shown (an interactive terminal)."""
        return self._live_wanted

    def __enter__(self) -> RunView:
        if self._live_wanted:
            self._live = Live(
                console=self._console,
                get_renderable=self._table,
                refresh_per_second=10,
                transient=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_live()

    def show(self, event: pb.SessionEvent) -> None:
        """Print one event (above the live table, when there is one)."""
        kind = event.WhichOneof("event")
        view: RenderableType
        if kind == "started":
            now = time.monotonic()
            self._rows = {}
            for position, name in enumerate(event.started.participants):
                index, speaker = self._personas.get(name, (position, None))
                self._rows[name] = _Row(name, index, now, speaker)
            view = started_view(event.turn, event.started)
        elif kind == "routing":
            chosen = describe_model(event.routing.execution_model)
            view = Text(f"moderator chose {chosen}", style="dim")
        elif kind == "turn_completed":
            row = self._row(event.turn_completed.speaker)
            row.turn = event.turn_completed
            view = _turn_view(event.turn_completed)
        elif kind == "turn_failed":
            row = self._row(event.turn_failed.speaker)
            row.failure = event.turn_failed
            view = failure_view(event.turn_failed)
        elif kind == "completed":
            self.completed = event.completed
            # The table's last state stays on screen; the summary goes under it.
            self._stop_live()
            view = completed_view(event.turn, event.completed)
        else:
            return  # an event kind newer than this client: nothing to show
        self._console.print(view)

    def _row(self, speaker: pb.Speaker) -> _Row:
        row = self._rows.get(speaker.name)
        if row is None:  # a moderator, or a participant SessionStarted did not name
            row = self._rows[speaker.name] = _Row(speaker.name, len(self._rows), time.monotonic())
        row.speaker = speaker
        return row

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def _table(self) -> RenderableType:
        if not self._rows:
            return Spinner("dots", Text("starting the run…", style="dim"))
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
        table.add_column("participant", no_wrap=True)
        table.add_column("status")
        table.add_column("latency", justify="right", no_wrap=True)
        table.add_column("tokens", no_wrap=True, style="dim")
        for row in self._rows.values():
            style = _participant_style(row.index)
            speaker = row.speaker or pb.Speaker(name=row.name)
            if row.turn is not None:
                style = _participant_style(row.turn.participant_index)
                table.add_row(
                    _speaker(speaker, style),
                    Text("✓ replied", style="green"),
                    _milliseconds(row.turn.latency),
                    _tokens(row.turn.usage),
                )
            elif row.failure is not None:
                status = Text(f"✗ {row.failure.code or 'ERROR'}", style="bold red")
                if row.failure.message:
                    status.append(f": {row.failure.message}", style="red")
                table.add_row(_speaker(speaker, "bold red"), status, "", "")
            else:
                elapsed = time.monotonic() - row.since
                table.add_row(
                    _speaker(speaker, style),
                    Spinner("dots", Text("thinking…", style="dim")),
                    Text(f"{elapsed:.1f} s", style="dim"),
                    "",
                )
        return table


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
            "--server or PARLEY_SERVER picks another address; a server with TLS needs"
            " --tls or --ca-cert)"
        )
    elif (
        code == grpc.StatusCode.NOT_FOUND
        and dialogue
        and error.reason in ("", "DIALOGUE_NOT_FOUND")
    ):
        message = f"dialogue {dialogue} not found"
    elif code == grpc.StatusCode.NOT_FOUND and error.reason == "NO_RUN_IN_PROGRESS":
        message = f"no run is in progress on {dialogue or 'that dialogue'}"
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


def watch_item_view(item: pb.WatchDialogueResponse) -> RenderableType | None:
    """One item of ``parley watch``: a log message, or a live run's event."""
    kind = item.WhichOneof("item")
    if kind == "message":
        return message_view(item.message)
    if kind != "event":
        return None
    event = item.event
    which = event.WhichOneof("event")
    if which == "started":
        return started_view(event.turn, event.started)
    if which == "routing":
        return Text(f"moderator chose {describe_model(event.routing.execution_model)}", style="dim")
    if which == "turn_failed":
        return failure_view(event.turn_failed)
    if which == "completed":
        return completed_view(event.turn, event.completed)
    return None  # replies arrive as messages


def profiles_table(profiles: list[pb.AgentProfile]) -> RenderableType:
    """The server's agent profiles: name, kind, model, options, and why one is unusable."""
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for column in ("profile", "kind", "model", "options", "available"):
        table.add_column(column, no_wrap=column != "available")
    for profile in profiles:
        available = (
            Text("yes", style="green")
            if profile.available
            else Text(f"no: {profile.unavailable_reason}", style="red")
        )
        table.add_row(
            Text(profile.name, style="bold"),
            profile.kind,
            profile.model or "-",
            ", ".join(profile.allowed_options) or "-",
            available,
        )
    return table
