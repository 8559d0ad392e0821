"""Running the README's commands as written: `parley`, `buf curl`, `node`, in any order.

The README talks to `127.0.0.1:50051`; each command is run with that address swapped for
the test server's, without a shell, with a bounded time, and from a working directory the
test chose (where the files the README mentions were written).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import (
    BIN,
    KILL_TIMEOUT_S,
    Output,
    ServerProcess,
    buf_binary,
    clean_environment,
    readme_blocks,
    split_command,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ADDRESS = "127.0.0.1:50051"
COMMAND_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Result:
    """What one command printed."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {self.command}\nexit code {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def ok(self) -> Result:
        assert self.returncode == 0, self.describe()
        return self


def environment(
    server: ServerProcess | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A clean environment for the clients: plain, wide output; the server's address."""
    env = clean_environment()
    env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb")
    if server is not None:
        env["PARLEY_SERVER"] = server.address
    env.update(extra or {})
    return env


def argv_for(command: str, server: ServerProcess | None) -> list[str]:
    """The README command's words, with the README's address replaced by the server's and
    `parley`, `buf` resolved to the binaries of this checkout."""
    words = split_command(command)
    if server is not None:
        words = [word.replace(README_ADDRESS, server.address) for word in words]
    if words[0] == "parley":
        words[0] = str(BIN / "parley")
    elif words[0] == "buf":
        buf = buf_binary()
        assert buf is not None, "buf is not installed (pip install buf-bin)"
        words[0] = str(buf)
    return words


def run(
    command: str,
    server: ServerProcess | None,
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT_S,
) -> Result:
    completed = subprocess.run(
        argv_for(command, server),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(server, env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    return Result(command, completed.returncode, completed.stdout, completed.stderr)


class Background:
    """A README command left running (a stream, a watch) while the test goes on.

    Use it in a `with` block: leaving it interrupts the command if it still runs.
    """

    def __init__(
        self,
        command: str,
        server: ServerProcess | None,
        cwd: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.process = subprocess.Popen(
            argv_for(command, server),
            cwd=cwd,
            env=environment(server, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdout = Output(self.process.stdout, "command stdout")
        self.stderr = Output(self.process.stderr, "command stderr")

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.interrupt()

    def wait_for_text(self, wanted: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
        """Stdout so far, once every string of `wanted` is in it."""
        text = self.stdout.wait_until(
            lambda out: out if all(w in out for w in wanted) else None, timeout
        )
        if text is None:
            raise AssertionError(f"never printed {list(wanted)}:\n{self.result().describe()}")
        return text

    def finish(self, timeout: float = COMMAND_TIMEOUT_S) -> Result:
        """The result once the command ended on its own."""
        self.process.wait(timeout)
        return self.result()

    def interrupt(self) -> Result:
        """Ctrl-C, then a kill if that is not enough."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(KILL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(KILL_TIMEOUT_S)
        return self.result()

    def result(self) -> Result:
        if self.process.poll() is not None:
            self.stdout.join(KILL_TIMEOUT_S)
            self.stderr.join(KILL_TIMEOUT_S)
        code = self.process.returncode
        return Result(
            self.command, -1 if code is None else code, self.stdout.text, self.stderr.text
        )


def write_readme_file(marker: str, language: str, directory: Path, name: str | None = None) -> Path:
    """The README's file block `<!-- e2e: MARKER -->`, written into `directory`."""
    (content,) = readme_blocks(README, marker, language)
    path = directory / (name or marker)
    path.write_text(content, encoding="utf-8")
    return path


def node_available() -> bool:
    """Whether `node` and `npm` are on PATH (the Node.js example's tests need both)."""
    return all(shutil.which(tool) is not None for tool in ("node", "npm"))
