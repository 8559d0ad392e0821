"""The README's Python examples, run as written (address swapped) against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.commands import README, README_ADDRESS, environment
from tests.e2e.harness import ServerProcess, readme_blocks

pytestmark = pytest.mark.e2e


def run_snippet(code: str, server: ServerProcess, cwd: Path, name: str) -> str:
    script = cwd / name
    script.write_text(code.replace(README_ADDRESS, server.address), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(None),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_readme_python_examples(parley_server: ServerProcess, tmp_path: Path) -> None:
    blocking, asynchronous = readme_blocks(README, "python", "python")
    first = run_snippet(blocking, parley_server, tmp_path, "blocking.py").splitlines()
    # Sequential, Bo first: each reply printed as it is stored.
    assert first[0] == "📋 Bo: 'Bo:\\n[System]: What worries you most?'"
    assert first[1].startswith("🧭 Ada: 'Ada:\\n[System]: What worries you most?\\n[Bo]: ")
    assert first[2] == "replies: 2 failures: 0"
    assert "profile: echo echo" in first[3:]

    second = run_snippet(asynchronous, parley_server, tmp_path, "asyncio_example.py").splitlines()
    assert [line.split()[0] for line in second[:3]] == ["Bo", "Ada", "Cy"]
    assert all(" answered in " in line for line in second[:3])
    assert second[3:6] == ["watched: 1 System", "watched: 2 Bo", "watched: 3 Ada"]
    assert second[6] == "cancel: NOT_FOUND NO_RUN_IN_PROGRESS"
