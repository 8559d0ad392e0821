"""``parley``: create, run, follow and read dialogues from a terminal.

This module only parses arguments and calls :class:`~parley.client.sync.ParleyClient`;
what gets printed is decided in :mod:`parley.client.render`. Expected failures (no
server, unknown dialogue, bad input, bad file) end with a one-line explanation and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message as ProtoMessage
from parley.client import completion, demo, render
from parley.client._common import DEFAULT_TARGET, TlsConfig, dialogue_id, dialogue_name
from parley.client.builders import (
    DialogueFileError,
    OptionValue,
    broadcast_order,
    joining,
    load_dialogue_file,
    participant,
    persona,
)
from parley.client.errors import ParleyRpcError
from parley.client.sync import ParleyClient
from parley.v1 import dialogue_pb2 as pb
from rich.console import Console
from rich.text import Text

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# Options whose value is a file, for shell completion.
FILE_OPTIONS = ("--ca-cert", "--cert", "--key", "--output")


@dataclass
class _Command:
    """What every subcommand handler gets: the client, where to print, and its arguments."""

    client: ParleyClient
    out: Console
    args: argparse.Namespace

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def emit(self, message: ProtoMessage) -> None:
        """Print one proto as a JSON line; ``out`` never wraps or highlights it."""
        self.out.out(render.json_line(message), highlight=False)

    def emit_object(self, value: object) -> None:
        self.out.out(json.dumps(value, ensure_ascii=False), highlight=False)


def _create(command: _Command) -> int:
    dialogue = load_dialogue_file(command.args.file)
    # `name` is output-only in the contract; a file may still carry one, which then
    # chooses the id unless --id does.
    chosen_id = command.args.id or dialogue_id(dialogue.name)
    dialogue.ClearField("name")
    created = command.client.create_dialogue(dialogue, chosen_id)
    if command.json:
        command.emit(created)
    else:
        command.out.print(Text(created.name))
    return EXIT_OK


def _get(command: _Command) -> int:
    found = command.client.get_dialogue(command.args.dialogue)
    if command.json:
        command.emit(found)
    else:
        command.out.print(render.dialogue_summary(found))
    return EXIT_OK


def _list(command: _Command) -> int:
    count = 0
    for item in command.client.list_dialogues():
        count += 1
        if command.args.quiet:
            command.out.out(dialogue_id(item.name), highlight=False)
        elif command.json:
            command.emit(item)
        else:
            command.out.print(render.dialogue_line(item))
    if not count and not (command.json or command.args.quiet):
        command.out.print(Text("no dialogues yet", style="dim"))
    return EXIT_OK


def _delete(command: _Command) -> int:
    command.client.delete_dialogue(command.args.dialogue)
    name = dialogue_name(command.args.dialogue)
    if command.json:
        # DeleteDialogueResponse is empty; say what was deleted instead.
        command.emit_object({"name": name, "deleted": True})
    else:
        command.out.print(Text(f"deleted {name}"))
    return EXIT_OK


def _stream_run(
    command: _Command,
    dialogue: str,
    prompt: str,
    *,
    order: pb.Broadcast | None = None,
    speaker: str | None = None,
    queue: bool = False,
) -> int:
    """Stream one run to the terminal (or as JSON lines), one event as it arrives."""
    events = command.client.run_session(dialogue, prompt, order=order, speaker=speaker, queue=queue)
    if command.json:
        for event in events:
            command.emit(event)
        return EXIT_OK
    view = render.RunView(command.out)
    if view.live:
        # The live table shows every persona (icon, role) from the start.
        view = render.RunView(
            command.out, participants=command.client.get_dialogue(dialogue).participants
        )
    with view:
        for event in events:
            view.show(event)
    if view.completed is None:
        command.out.print(Text("the run ended before it completed", style="bold red"))
        return EXIT_FAILED
    return EXIT_OK


def _run(command: _Command) -> int:
    args = command.args
    return _stream_run(
        command,
        args.dialogue,
        args.prompt,
        order=args.order,
        speaker=args.speaker,
        queue=args.queue,
    )


def _history(command: _Command) -> int:
    for message in command.client.list_messages(command.args.dialogue, command.args.after):
        if command.json:
            command.emit(message)
        else:
            command.out.print(render.message_view(message))
    return EXIT_OK


def _watch(command: _Command) -> int:
    """Follow a dialogue until Ctrl-C (or, with --until-completed, the end of a run)."""
    for item in command.client.watch_dialogue(command.args.dialogue, command.args.after):
        if command.json:
            command.emit(item)
        else:
            view = render.watch_item_view(item)
            if view is not None:
                command.out.print(view)
        if command.args.until_completed and item.event.WhichOneof("event") == "completed":
            break
    return EXIT_OK


def _cancel(command: _Command) -> int:
    mode = "after_turn" if command.args.after_turn else "immediate"
    response = command.client.cancel_run(command.args.dialogue, mode)
    name = dialogue_name(command.args.dialogue)
    if command.json:
        command.emit_object({"dialogue": name, "turn": str(response.turn), "mode": mode})
    else:
        how = "after the calls in flight" if command.args.after_turn else "now"
        command.out.print(Text(f"turn {response.turn} of {name} stops {how}"), soft_wrap=True)
    return EXIT_OK


def _profiles(command: _Command) -> int:
    profiles = command.client.list_agent_profiles()
    if command.json:
        for profile in profiles:
            command.emit(profile)
    else:
        command.out.print(render.profiles_table(profiles))
    return EXIT_OK


_FORMATS = {"llm-toolkit": "llm_toolkit_json", "full": "full_json"}


def _export(command: _Command) -> int:
    content = command.client.export_history(command.args.dialogue, _FORMATS[command.args.format])
    output: str | None = command.args.output
    if output:
        try:
            Path(output).write_text(content + "\n", encoding="utf-8")
        except OSError as error:
            raise DialogueFileError(error.strerror or str(error), path=output) from error
        count = len(json.loads(content))
        if command.json:
            command.emit_object({"path": output, "messages": count})
        else:
            command.out.print(Text(f"wrote {count} messages to {output}"), soft_wrap=True)
    elif command.json:
        command.emit(pb.ExportHistoryResponse(content=content))
    else:
        command.out.out(content, highlight=False)
    return EXIT_OK


def read_history_file(path: str) -> str:
    """A history file's text, checked to be a JSON array before it is sent, so a broken
    file is reported with its line and column instead of a server's generic complaint."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DialogueFileError(error.strerror or str(error), path=path) from error
    except UnicodeDecodeError as error:
        raise DialogueFileError("not UTF-8 text", path=path) from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DialogueFileError(
            f"invalid JSON: {error.msg}", path=path, line=error.lineno, column=error.colno
        ) from error
    if not isinstance(document, list):
        raise DialogueFileError(
            "expected a JSON array of messages (as `parley export` writes)", path=path
        )
    return text


def _import(command: _Command) -> int:
    content = read_history_file(command.args.file)
    mode = "as_system_prompt" if command.args.as_system_prompt else "as_messages"
    dialogue = command.client.import_history(command.args.dialogue, content, mode)
    if command.json:
        command.emit(dialogue)
    elif command.args.as_system_prompt:
        command.out.print(
            Text(f"imported {command.args.file} into the context of {dialogue.name}"),
            soft_wrap=True,
        )
    else:
        command.out.print(
            Text(
                f"imported {dialogue.message_count} messages into {dialogue.name}"
                f" (turn {dialogue.latest_turn})"
            ),
            soft_wrap=True,
        )
    return EXIT_OK


def _option(text: str) -> tuple[str, OptionValue]:
    """argparse type for --option KEY=VALUE."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key.strip(), value


def _join(text: str) -> pb.JoiningStrategy:
    try:
        return joining(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _add_participant(command: _Command) -> int:
    args = command.args
    added = participant(
        persona(args.name, role=args.role, icon=args.icon, background=args.background),
        args.agent,
        options=dict(args.option),
    )
    dialogue = command.client.add_participant(args.dialogue, added, args.join)
    if command.json:
        command.emit(dialogue)
    else:
        command.out.print(render.dialogue_summary(dialogue))
    return EXIT_OK


def _remove_participant(command: _Command) -> int:
    dialogue = command.client.remove_participant(command.args.dialogue, command.args.name)
    if command.json:
        command.emit(dialogue)
    else:
        command.out.print(render.dialogue_summary(dialogue))
    return EXIT_OK


def _demo(command: _Command) -> int:
    created = command.client.create_dialogue(demo.demo_dialogue(), demo.demo_id())
    command.args.dialogue = created.name  # so a failure below names this dialogue
    if command.json:
        command.emit(created)
    else:
        command.out.print(render.dialogue_summary(created))
    for prompt in demo.PROMPTS:
        if not command.json:
            command.out.print()
            command.out.rule(Text(prompt), style="dim")
        status = _stream_run(command, created.name, prompt)
        if status != EXIT_OK:
            return status
    if not command.json:
        command.out.print()
        command.out.print(
            Text(f"the log is kept: parley history {dialogue_id(created.name)}", style="dim")
        )
    return EXIT_OK


def _order(text: str) -> pb.Broadcast:
    """argparse type for --order, so a bad value is a usage error naming the choices."""
    try:
        return broadcast_order(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """Connection and output options, accepted before or after the subcommand.

    The copies on the subcommands default to SUPPRESS, so they only override the
    top-level values when actually given.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    def shown(text: str) -> str:
        # Documented once, in the top-level help.
        return argparse.SUPPRESS if in_subcommand else text

    env = os.environ.get
    parser.add_argument(
        "--server",
        default=default(env("PARLEY_SERVER", DEFAULT_TARGET)),
        metavar="HOST:PORT",
        help=shown("server address (env PARLEY_SERVER; default %(default)s)"),
    )
    parser.add_argument(
        "--token",
        default=default(env("PARLEY_TOKEN")),
        help=shown("bearer token, sent as `authorization: Bearer ...` (env PARLEY_TOKEN)"),
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=default(False),
        help=shown("connect with TLS, trusting the system's CAs (implied by --ca-cert)"),
    )
    parser.add_argument(
        "--ca-cert",
        default=default(env("PARLEY_CA_CERT")),
        metavar="FILE",
        help=shown("PEM file of the CA that signed the server's certificate (env PARLEY_CA_CERT)"),
    )
    parser.add_argument(
        "--cert",
        default=default(env("PARLEY_CLIENT_CERT")),
        metavar="FILE",
        help=shown("client certificate (PEM) for mutual TLS (env PARLEY_CLIENT_CERT)"),
    )
    parser.add_argument(
        "--key",
        default=default(env("PARLEY_CLIENT_KEY")),
        metavar="FILE",
        help=shown("the client certificate's key (PEM) (env PARLEY_CLIENT_KEY)"),
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=default(None),
        metavar="SECONDS",
        help=shown("deadline of each call (a run: the whole run); default none"),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help=shown("print one JSON object per line (the proto JSON mapping)"),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; built per call so environment defaults are read fresh."""
    parser = argparse.ArgumentParser(
        prog="parley", description="Run multi-agent dialogues on a Parley server."
    )
    _add_global_options(parser, in_subcommand=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, in_subcommand=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[_Command], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def dialogue_argument(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("dialogue", help="id or dialogues/ID")

    create = add("create", _create, "create a dialogue from a YAML, TOML or JSON file")
    create.add_argument("file", help="dialogue file: the proto JSON mapping of parley.v1.Dialogue")
    create.add_argument(
        "--id", default="", help="dialogue id (default: the file's name, or the server's choice)"
    )

    dialogue_argument(add("get", _get, "show a dialogue"))
    listing = add("list", _list, "list dialogues")
    listing.add_argument("-q", "--quiet", action="store_true", help="print only the ids")
    dialogue_argument(add("delete", _delete, "delete a dialogue and its log"))

    run = add("run", _run, "send a prompt and stream each reply as it arrives")
    dialogue_argument(run)
    run.add_argument("prompt", help="the prompt text")
    run.add_argument(
        "--order",
        type=_order,
        help="broadcast order for this run: completion, participant or explicit:Name1,Name2",
    )
    run.add_argument(
        "--as",
        dest="speaker",
        metavar="NAME",
        help="send the prompt as a user called NAME (default: the System speaker)",
    )
    run.add_argument(
        "--queue",
        action="store_true",
        help="wait for a run in progress to end instead of failing (RUN_IN_PROGRESS)",
    )

    history = add("history", _history, "print a dialogue's message log")
    dialogue_argument(history)
    history.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only messages after this seq"
    )

    watch = add("watch", _watch, "follow a dialogue: its log, then new messages and runs live")
    dialogue_argument(watch)
    watch.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="replay only messages after this seq"
    )
    watch.add_argument(
        "--until-completed", action="store_true", help="stop when a run completes (not Ctrl-C)"
    )

    cancel = add("cancel", _cancel, "stop the run in progress on a dialogue")
    dialogue_argument(cancel)
    cancel.add_argument(
        "--after-turn",
        action="store_true",
        help="let the agent calls in flight finish (and be stored); start no new ones",
    )

    add("profiles", _profiles, "list the server's agent profiles")

    export = add("export", _export, "print (or save) a dialogue's history as JSON")
    dialogue_argument(export)
    export.add_argument(
        "--format",
        choices=sorted(_FORMATS),
        default="llm-toolkit",
        help="llm-toolkit (load_history's format; default) or full (every field)",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    imported = add("import", _import, "load a history file into a dialogue whose log is empty")
    dialogue_argument(imported)
    imported.add_argument("file", help="a JSON history, as `parley export` writes it")
    imported.add_argument(
        "--as-system-prompt",
        action="store_true",
        help="render it into the dialogue's context instead of the log",
    )

    adding = add("add-participant", _add_participant, "add a participant to a dialogue")
    dialogue_argument(adding)
    adding.add_argument("name", help="the persona's name (unique in the dialogue)")
    adding.add_argument(
        "--agent", default="echo", help="the server's agent profile (see `parley profiles`)"
    )
    adding.add_argument("--role", default="", help="the persona's role")
    adding.add_argument("--icon", default="", help="an emoji shown with its messages")
    adding.add_argument("--background", default="", help="the persona's background")
    adding.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an agent option the profile allows (repeatable), e.g. delay_ms=200",
    )
    adding.add_argument(
        "--join",
        type=_join,
        metavar="STRATEGY",
        help="join in progress: fresh, full, recent[:N] or range:START-[END]",
    )

    removing = add("remove-participant", _remove_participant, "remove a participant")
    dialogue_argument(removing)
    removing.add_argument("name", help="the persona's name")

    add("demo", _demo, "create a three-persona echo dialogue and stream two runs")

    shells = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description=(
            "Print a completion script: `source <(parley completion bash)` in ~/.bashrc,"
            " `source <(parley completion zsh)` in ~/.zshrc."
        ),
    )
    shells.add_argument("shell", choices=completion.SHELLS)
    shells.set_defaults(handler=None)
    return parser


def _tls(args: argparse.Namespace) -> TlsConfig | bool:
    if args.ca_cert or args.cert or args.key:
        if bool(args.cert) != bool(args.key):
            raise ValueError("--cert and --key go together (mutual TLS)")
        return TlsConfig.from_files(args.ca_cert, args.cert, args.key)
    return bool(args.tls)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``parley``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        sys.stdout.write(completion.script(parser, args.shell, file_options=FILE_OPTIONS))
        return EXIT_OK
    out = Console(highlight=False)
    # Errors are one logical line each: let the terminal wrap them, not rich.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with ParleyClient(
            args.server, token=args.token, tls=_tls(args), timeout=args.timeout
        ) as client:
            handler: Callable[[_Command], int] = args.handler
            return handler(_Command(client=client, out=out, args=args))
    except ParleyRpcError as error:
        dialogue = getattr(args, "dialogue", None)
        err.print(render.error_text(error.description, server=args.server, dialogue=dialogue))
    except ValueError as error:
        # A DialogueFileError (it names file and line), or an argument argparse cannot
        # check, such as an empty dialogue id.
        err.print(Text(f"error: {error}", style="bold red"))
    except KeyboardInterrupt:
        err.print(Text("interrupted", style="yellow"))
        return EXIT_INTERRUPTED
    return EXIT_FAILED
