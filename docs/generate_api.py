"""Render docs/API.md, the API reference, from the comments in protos/parley/v1/*.proto.

    python docs/generate_api.py           # rewrite docs/API.md
    python docs/generate_api.py --check   # exit 1 if docs/API.md is out of date

The protos are compiled with their source info (grpc_tools' protoc, a dev dependency),
so every comment written in them reaches the reference; nothing is written by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
FILES = ("parley/v1/dialogue.proto", "parley/v1/agent.proto")
OUTPUT = ROOT / "docs" / "API.md"

# Field numbers of descriptor.proto, as SourceCodeInfo location paths use them.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE, SERVICE_METHOD = 2, 2

Field = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    Field.TYPE_DOUBLE: "double",
    Field.TYPE_FLOAT: "float",
    Field.TYPE_INT64: "int64",
    Field.TYPE_UINT64: "uint64",
    Field.TYPE_INT32: "int32",
    Field.TYPE_FIXED64: "fixed64",
    Field.TYPE_FIXED32: "fixed32",
    Field.TYPE_BOOL: "bool",
    Field.TYPE_STRING: "string",
    Field.TYPE_BYTES: "bytes",
    Field.TYPE_UINT32: "uint32",
    Field.TYPE_SFIXED32: "sfixed32",
    Field.TYPE_SFIXED64: "sfixed64",
    Field.TYPE_SINT32: "sint32",
    Field.TYPE_SINT64: "sint64",
}
WELL_KNOWN = "https://protobuf.dev/reference/protobuf/google.protobuf/#"


def compile_protos() -> descriptor_pb2.FileDescriptorSet:
    """Our .proto files as descriptors, comments included."""
    include = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "parley.binpb"
        status = protoc.main(
            [
                "protoc",
                f"-I{PROTOS}",
                f"-I{include}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *FILES,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed with status {status}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Leading (or else trailing) comments by location path."""
    found = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            found[tuple(location.path)] = _clean(text)
    return found


def _clean(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(lines).strip()


def anchor(name: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", name.lower()).replace(" ", "-")


def _one_line(text: str) -> str:
    """A comment in a table cell: paragraphs joined, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


@dataclass
class Message:
    name: str  # relative to the package, e.g. JoiningStrategy.Recent
    proto: descriptor_pb2.DescriptorProto
    path: tuple[int, ...]


@dataclass
class Enum:
    name: str
    proto: descriptor_pb2.EnumDescriptorProto
    path: tuple[int, ...]


def _walk(
    messages: Sequence[descriptor_pb2.DescriptorProto], prefix: str, path: tuple[int, ...]
) -> Iterator[Message | Enum]:
    for index, message in enumerate(messages):
        name = f"{prefix}{message.name}"
        here = (*path, index)
        yield Message(name, message, here)
        for number, enum in enumerate(message.enum_type):
            yield Enum(f"{name}.{enum.name}", enum, (*here, MESSAGE_ENUM, number))
        yield from _walk(message.nested_type, f"{name}.", (*here, MESSAGE_NESTED))


class Renderer:
    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self.files = files
        self.lines: list[str] = []
        self.package = files[0].package
        # Every type we document, by its full name, for links.
        self.documented: set[str] = set()
        for file in files:
            for item in self._types(file):
                self.documented.add(f".{file.package}.{item.name}")

    def _types(self, file: descriptor_pb2.FileDescriptorProto) -> list[Message | Enum]:
        items: list[Message | Enum] = list(_walk(file.message_type, "", (FILE_MESSAGE,)))
        items.extend(
            Enum(enum.name, enum, (FILE_ENUM, index)) for index, enum in enumerate(file.enum_type)
        )
        return sorted(items, key=lambda item: item.name)

    def link(self, type_name: str) -> str:
        short = type_name.removeprefix(f".{self.package}.")
        if type_name in self.documented:
            return f"[{short}](#{anchor(short)})"
        if type_name.startswith(".google.protobuf."):
            name = type_name.removeprefix(".google.protobuf.")
            return f"[google.protobuf.{name}]({WELL_KNOWN}{name.lower()})"
        return type_name.lstrip(".")

    def field_type(
        self, message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto
    ) -> str:
        if field.type_name:
            entry = next(
                (
                    nested
                    for nested in message.nested_type
                    if nested.options.map_entry and field.type_name.endswith(f".{nested.name}")
                ),
                None,
            )
            if entry is not None:
                key, value = entry.field
                return f"map<{self._plain_type(key)}, {self._plain_type(value)}>"
            shown = self.link(field.type_name)
        else:
            shown = SCALARS[field.type]
        if field.label == Field.LABEL_REPEATED:
            return f"repeated {shown}"
        if field.proto3_optional:
            return f"optional {shown}"
        return shown

    def _plain_type(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        return self.link(field.type_name) if field.type_name else SCALARS[field.type]

    def render(self) -> str:
        out = self.lines
        out.append("# Parley API reference")
        out.append("")
        out.append(
            "Generated from the comments in [`protos/parley/v1/`](../protos/parley/v1) by"
            " `python docs/generate_api.py`; do not edit by hand (a test checks it is current)."
        )
        out.append("")
        for file in self.files:
            notes = comments(file)
            for index, service in enumerate(file.service):
                self._service(file, service, notes, (FILE_SERVICE, index))
        out.append("## Messages and enums")
        out.append("")
        everything = [(file, item) for file in self.files for item in self._types(file)]
        for file, item in sorted(everything, key=lambda pair: pair[1].name):
            notes = comments(file)
            if isinstance(item, Message):
                self._message(item, notes)
            else:
                self._enum(item, notes)
        return "\n".join(out).rstrip() + "\n"

    def _service(
        self,
        file: descriptor_pb2.FileDescriptorProto,
        service: descriptor_pb2.ServiceDescriptorProto,
        notes: dict[tuple[int, ...], str],
        path: tuple[int, ...],
    ) -> None:
        out = self.lines
        out.append(f"## {file.package}.{service.name}")
        out.append("")
        out.append(f"Defined in `{file.name}`.")
        out.append("")
        if path in notes:
            out.extend([notes[path], ""])
        out.append("| RPC | request | response |")
        out.append("|---|---|---|")
        for method in service.method:
            request = ("stream " if method.client_streaming else "") + self.link(method.input_type)
            response = ("stream " if method.server_streaming else "") + self.link(
                method.output_type
            )
            out.append(
                f"| [{method.name}](#{anchor(service.name + method.name)})"
                f" | {request} | {response} |"
            )
        out.append("")
        for number, method in enumerate(service.method):
            out.append(f"### {service.name}.{method.name}")
            out.append("")
            request = ("stream " if method.client_streaming else "") + method.input_type.split(".")[
                -1
            ]
            response = ("stream " if method.server_streaming else "") + method.output_type.split(
                "."
            )[-1]
            out.append(f"`rpc {method.name}({request}) returns ({response})`")
            out.append("")
            note = notes.get((*path, SERVICE_METHOD, number))
            if note:
                out.extend([note, ""])

    def _message(self, message: Message, notes: dict[tuple[int, ...], str]) -> None:
        if message.proto.options.map_entry:
            return
        out = self.lines
        out.append(f"### {message.name}")
        out.append("")
        note = notes.get(message.path)
        if note:
            out.extend([note, ""])
        if not message.proto.field:
            out.extend(["No fields.", ""])
            return
        out.append("| field | type | description |")
        out.append("|---|---|---|")
        for number, field in enumerate(message.proto.field):
            text = _one_line(notes.get((*message.path, MESSAGE_FIELD, number), ""))
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneof = message.proto.oneof_decl[field.oneof_index].name
                text = f"One of `{oneof}`. {text}".strip()
            out.append(
                f"| `{field.name}` ({field.number}) | {self.field_type(message.proto, field)}"
                f" | {text} |"
            )
        out.append("")

    def _enum(self, enum: Enum, notes: dict[tuple[int, ...], str]) -> None:
        out = self.lines
        out.append(f"### {enum.name}")
        out.append("")
        note = notes.get(enum.path)
        if note:
            out.extend([note, ""])
        out.append("| value | number | description |")
        out.append("|---|---|---|")
        for number, value in enumerate(enum.proto.value):
            text = _one_line(notes.get((*enum.path, ENUM_VALUE, number), ""))
            out.append(f"| `{value.name}` | {value.number} | {text} |")
        out.append("")


def generate() -> str:
    """The reference as Markdown."""
    files = list(compile_protos().file)
    return Renderer(files).render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if docs/API.md is not what would be written"
    )
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(
                f"{OUTPUT.relative_to(ROOT)} is out of date: run `python docs/generate_api.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
