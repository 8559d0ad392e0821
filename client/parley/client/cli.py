"""``parley``: create, run and read dialogues from a terminal.

This module only parses arguments and calls :class:`~parley.client.sync.ParleyClient`;
what gets printed is decided in :mod:`parley.client.render`. Expected failures (no
server, unknown dialogue, bad input, bad file) end with a one-line explanation and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.message import Message as ProtoMessage
from parley.client import demo, render
from parley.client._common import DEFAULT_TARGET, dialogue_id, dialogue_name
from parley.client.builders import broadcast_order, load_dialogue_file
from parley.client.errors import ParleyRpcError
from parley.client.sync import ParleyClient
from parley.v1 import dialogue_pb2 as pb
from rich.console import Console
from rich.text import Text

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


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
        if command.json:
            command.emit(item)
        else:
            command.out.print(render.dialogue_line(item))
    if not count and not command.json:
        command.out.print(Text("no dialogues yet", style="dim"))
    return EXIT_OK


def _delete(command: _Command) -> int:
    command.client.delete_dialogue(command.args.dialogue)
    name = dialogue_name(command.args.dialogue)
    if command.json:
        # DeleteDialogueResponse is empty; say what was deleted instead.
        command.out.out(json.dumps({"name": name, "deleted": True}), highlight=False)
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
) -> int:
    """Stream one run to the terminal (or as JSON lines), one event as it arrives."""
    events = command.client.run_session(dialogue, prompt, order=order, speaker=speaker)
    if command.json:
        for event in events:
            command.emit(event)
        return EXIT_OK
    with render.RunView(command.out) as view:
        for event in events:
            view.show(event)
    if view.completed is None:
        command.out.print(Text("the run ended before it completed", style="bold red"))
        return EXIT_FAILED
    return EXIT_OK


def _run(command: _Command) -> int:
    args = command.args
    return _stream_run(command, args.dialogue, args.prompt, order=args.order, speaker=args.speaker)


def _history(command: _Command) -> int:
    for message in command.client.list_messages(command.args.dialogue, command.args.after):
        if command.json:
            command.emit(message)
        else:
            command.out.print(render.message_view(message))
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


def _add_global_options(parser: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """--server, --token and --json, accepted before or after the subcommand.

    The copies on the subcommands default to SUPPRESS, so they only override the
    top-level values when actually given.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    def shown(text: str) -> str:
        # Documented once, in the top-level help.
        return argparse.SUPPRESS if in_subcommand else text

    parser.add_argument(
        "--server",
        default=default(os.environ.get("PARLEY_SERVER", DEFAULT_TARGET)),
        help=shown("server address HOST:PORT (env PARLEY_SERVER; default %(default)s)"),
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("PARLEY_TOKEN")),
        help=shown("bearer token, sent as `authorization: Bearer ...` (env PARLEY_TOKEN)"),
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

    create = add("create", _create, "create a dialogue from a YAML, TOML or JSON file")
    create.add_argument("file", help="dialogue file: the proto JSON mapping of parley.v1.Dialogue")
    create.add_argument(
        "--id", default="", help="dialogue id (default: the file's name, or the server's choice)"
    )

    add("get", _get, "show a dialogue").add_argument("dialogue", help="id or dialogues/ID")
    add("list", _list, "list dialogues")
    add("delete", _delete, "delete a dialogue and its log").add_argument(
        "dialogue", help="id or dialogues/ID"
    )

    run = add("run", _run, "send a prompt and stream each reply as it arrives")
    run.add_argument("dialogue", help="id or dialogues/ID")
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

    history = add("history", _history, "print a dialogue's message log")
    history.add_argument("dialogue", help="id or dialogues/ID")
    history.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only messages after this seq"
    )

    add("demo", _demo, "create a three-persona echo dialogue and stream two runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``parley``; returns the exit status."""
    args = build_parser().parse_args(argv)
    out = Console(highlight=False)
    # Errors are one logical line each: let the terminal wrap them, not rich.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else ()
    try:
        with ParleyClient(args.server, metadata=metadata) as client:
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
