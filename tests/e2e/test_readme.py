"""README.md documents the settings the server really reads, with their real defaults.

The executable parts of the README (buf curl walkthrough, CLI session, config file) run
against real servers in the other modules; this one keeps the reference tables honest.
"""

from __future__ import annotations

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


def test_readme_config_file_has_every_setting() -> None:
    documented = tomllib.loads(readme_config())
    keys = {key for table in documented.values() for key in table}
    # Each setting is read as `_get(TABLE, "key", TYPE, DEFAULT, ...)`.
    read = set(re.findall(r'"(\w+)",\s*(?:str|int|bool|list|float|\()', CONFIG_SOURCE))
    assert read, "config.py no longer reads settings the way this test expects"
    assert read <= keys, f"settings missing from README's config file: {sorted(read - keys)}"
    assert {f.name for f in fields(Limits)} == set(documented["limits"])


def test_readme_documents_every_environment_variable() -> None:
    variables = set(re.findall(r'"(PARLEY_[A-Z_]+)"', CONFIG_SOURCE))
    assert variables
    table_rows = set(re.findall(r"^\| `(PARLEY_[A-Z_]+)` \|", README.read_text("utf-8"), re.M))
    assert variables == table_rows
