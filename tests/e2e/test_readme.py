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
from parley.server import config
from parley.server.config import Settings, load_settings
from parley.server.engine.validation import Limits

from tests.e2e.harness import readme_blocks

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
CONFIG_SOURCE = Path(config.__file__).read_text(encoding="utf-8")


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


def test_readme_documents_every_environment_variable() -> None:
    variables = set(re.findall(r'"(PARLEY_[A-Z_]+)"', CONFIG_SOURCE))
    assert variables
    # The first column of the README's table: `PARLEY_X`, sometimes two to a row.
    first_columns = re.findall(r"^\| (`PARLEY_[^|]*)\|", README.read_text("utf-8"), re.M)
    documented = {name for cell in first_columns for name in re.findall(r"PARLEY_[A-Z_]+", cell)}
    assert variables == documented
