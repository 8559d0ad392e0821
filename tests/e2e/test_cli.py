"""The `parley` command line against a real server: the README's session, and `parley demo`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import (
    BIN,
    ServerProcess,
    clean_environment,
    readme_blocks,
    readme_commands,
    split_command,
)

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def parley(server: ServerProcess, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = clean_environment()
    # Plain, wide output: nothing to strip, no line wrapped inside a reply.
    environment.update(PARLEY_SERVER=server.address, NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [str(BIN / "parley"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_readme_cli_session(parley_server: ServerProcess, tmp_path: Path) -> None:
    (dialogue_file,) = readme_blocks(README, "tea.yaml", "yaml")
    (tmp_path / "tea.yaml").write_text(dialogue_file, encoding="utf-8")
    outputs: dict[str, str] = {}
    for command in readme_commands(README, "parley-cli"):
        argv = split_command(command)
        assert argv[0] == "parley", command
        result = parley(parley_server, argv[1:], tmp_path)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}\n{result.stderr}"
        outputs[argv[1]] = result.stdout
    assert list(outputs) == ["create", "run", "history", "list", "get", "delete"]
    assert "dialogues/tea" in outputs["create"]
    for name in ("Ann", "Bob"):
        assert f"{name}:\n" in outputs["run"]
    assert "[System]: Shall we start?" in outputs["run"]
    assert "Shall we start?" in outputs["history"]
    assert "dialogues/tea" in outputs["list"]
    assert "Tea time" in outputs["get"]

    gone = parley(parley_server, ["get", "tea"], tmp_path)
    assert gone.returncode != 0
    assert "not found" in gone.stderr


def test_demo_streams_two_runs(parley_server: ServerProcess, tmp_path: Path) -> None:
    result = parley(parley_server, ["--json", "demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    # One JSON object per line: the created dialogue, then each run's events.
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    completed = [o["completed"] for o in objects if "completed" in o]
    assert len(completed) == 2, result.stdout
    assert all(c.get("turnCount", 0) > 0 for c in completed), completed
