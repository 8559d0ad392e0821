"""README.md documents the settings the server really reads, with their real defaults.

The executable parts of the README (buf curl walkthrough, CLI session, config file) run
against real servers in the other modules; this one keeps the reference tables honest.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pytest
from parley.client import cli
from parley.server import config
from parley.server.config import Settings, load_settings
from parley.server.engine.validation import Limits

from tests.e2e.harness import readme_blocks

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
CONFIG_SOURCE = Path(config.__file__).read_text(encoding="utf-8")
CLI_SOURCE = Path(cli.__file__).read_text(encoding="utf-8")

# Every ```sh block of the README is marked `<!-- e2e: MARKER -->`, and the module named
# here runs (or, for grpcurl, checks) the commands of that marker.
SH_MARKERS = {
    "concepts": "test_readme_concepts.py",
    "concepts-cancel": "test_readme_concepts.py",
    "parley-cli": "test_cli.py",
    "parley-cli-more": "test_cli.py",
    "parley-cli-live": "test_cli.py",
    "parley-completion": "test_cli.py",
    "parley-tls": "test_cli.py",
    "node": "test_node_client.py",
    "buf-curl": "test_buf_curl.py",
    "buf-curl-live": "test_buf_curl.py",
    "buf-curl-end": "test_buf_curl.py",
    "buf-curl-auth": "test_buf_curl.py",
    "grpcurl": "test_buf_curl.py",
}


def readme_config() -> str:
    (text,) = readme_blocks(README, "config", "toml")
    return text


def test_readme_config_file_shows_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "parley.toml"
    path.write_text(readme_config(), encoding="utf-8")
    settings = load_settings(str(path), {})
    # Everything but the example agent profile is what the server uses without a file.
    assert settings == replace(Settings(), agents={"patient-echo": {"kind": "echo", "timeout": 10}})


def settings_read_from_toml() -> set[str]:
    """Every `key` config.py reads from a TOML table: calls like `_get(table, "key", ...)`."""
    keys = set()
    for node in ast.walk(ast.parse(CONFIG_SOURCE)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.startswith("_")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and re.fullmatch(r"[a-z_]+", node.args[1].value)
        ):
            keys.add(node.args[1].value)
    return keys


def test_readme_config_file_has_every_setting() -> None:
    text = readme_config()
    # Settings without a default value are shown commented out; they count too.
    keys = set(re.findall(r"^#?\s*(\w+)\s*=", text, re.M))
    tables = set(re.findall(r"^#?\s*\[(\w+)[.\]]", text, re.M))
    read = settings_read_from_toml()
    assert {"address", "url", "limits"} <= read, "config.py reads settings differently now"
    missing = sorted(read - keys - tables)
    assert not missing, f"settings missing from README's config file: {missing}"
    assert {f.name for f in fields(Limits)} == set(tomllib.loads(text)["limits"])


def readme_table(marker: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table right after `<!-- settings: MARKER -->`."""
    text = README.read_text("utf-8")
    start = text.index(f"<!-- settings: {marker} -->")
    table = text[start:].split("\n\n", 1)[0].splitlines()[1:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]]


def test_readme_documents_every_environment_variable() -> None:
    variables = set(re.findall(r'"(PARLEY_[A-Z_]+)"', CONFIG_SOURCE))
    assert variables
    # The first column of the README's table: `PARLEY_X`, sometimes two to a row.
    rows = readme_table("environment")
    documented = {name for row in rows for name in re.findall(r"PARLEY_[A-Z_]+", row[0])}
    assert variables == documented


def test_readme_documents_the_command_line_settings() -> None:
    read = set(re.findall(r'env\("(PARLEY_[A-Z_]+)"', CLI_SOURCE))
    assert {"PARLEY_SERVER", "PARLEY_TOKEN"} <= read, "cli.py reads its settings differently now"
    rows = readme_table("cli-options")
    documented = {name for row in rows for name in re.findall(r"PARLEY_[A-Z_]+", row[1])}
    assert read == documented
    options = {word for row in rows for word in re.findall(r"--[a-z-]+", row[0])}
    parser_options = {
        option
        for action in cli.build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert options == parser_options


def test_every_shell_block_of_the_readme_is_exercised() -> None:
    lines = README.read_text("utf-8").splitlines()
    unmarked = []
    for number, line in enumerate(lines):
        if line.strip() != "```sh":
            continue
        found = re.fullmatch(r"<!-- e2e: (\S+) -->", lines[number - 1].strip())
        if found is None or found[1] not in SH_MARKERS:
            unmarked.append(f"README.md:{number + 1}")
    assert not unmarked, (
        f"```sh blocks no test runs: {unmarked}; mark each with <!-- e2e: MARKER --> and"
        " run its commands in a test (then list the marker in SH_MARKERS)"
    )
    for marker, module in SH_MARKERS.items():
        assert f'"{marker}"' in (HERE / module).read_text("utf-8"), (
            f"{module} does not use the README marker {marker!r}"
        )
