"""Real processes for end-to-end tests: `parley-server` and `buf curl`, on loopback only.

A `ServerProcess` is the console script the checkout installed, started with its own
SQLite file and a free port. Its output is drained by a background thread from the
start, so the server never blocks on a full pipe, and kept for failure messages.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc

T = TypeVar("T")

BIN = Path(sys.executable).parent
LISTENING = re.compile(r"parley listening on (?P<host>\S+):(?P<port>\d+)")
# Long enough for a cold start on a loaded machine; a healthy server needs about a second.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0
# Loopback only: a proxy from the environment must never see test traffic.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


class Output:
    """Collects a pipe's lines on a daemon thread and lets tests wait for what they need."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                with self._changed:
                    self._lines.append(raw.decode("utf-8", "replace"))
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_until(self, found: Callable[[str], T | None], timeout: float) -> T | None:
        """The first non-None `found(all text so far)`; None if the pipe closes or time
        runs out first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = found("".join(self._lines))
                remaining = deadline - time.monotonic()
                if result is not None or self._closed or remaining <= 0:
                    return result
                self._changed.wait(remaining)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        return self.wait_until(pattern.search, timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class ServerProcess:
    """One running `parley-server`; `address` is HOST:PORT as the server logged it."""

    process: subprocess.Popen[bytes]
    output: Output
    host: str
    port: int
    store_path: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL `buf curl` takes."""
        return f"http://{self.address}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """The exit code once the process has ended (negative: killed by that signal)."""
        code = self.process.wait(timeout)
        self.output.join(KILL_TIMEOUT_S)
        return code

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the drain overruns: the process never outlives a test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(KILL_TIMEOUT_S)
        self.output.join(KILL_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()


class ServerLauncher:
    """Starts servers for one test and stops every one of them at teardown."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[ServerProcess] = []

    def start(self, store_path: Path | None = None, **env: str) -> ServerProcess:
        """A ready server on a free loopback port; `env` adds PARLEY_* settings."""
        store_path = store_path or self.workdir / "parley.db"
        environment = clean_environment()
        environment.update(
            PARLEY_ADDRESS="127.0.0.1:0",
            PARLEY_STORE_URL=f"sqlite:///{store_path.resolve()}",
            PARLEY_LOG_LEVEL="info",
            PARLEY_LOG_FORMAT="text",
            # A failed test may leave a run in flight: teardown's drain stays short.
            PARLEY_GRACE_PERIOD="10",
        )
        environment.update(env)
        process = subprocess.Popen(
            [str(BIN / "parley-server")],
            cwd=self.workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        output = Output(process.stdout, "parley-server output")
        server = ServerProcess(process, output, "", 0, store_path)
        self.started.append(server)
        match = output.wait_for(LISTENING, START_TIMEOUT_S)
        if match is None:
            server.stop()
            raise RuntimeError(
                f"parley-server exited or did not report 'parley listening on' within"
                f" {START_TIMEOUT_S}s (exit code {process.returncode}); its output:\n{output.text}"
            )
        server.host, server.port = match["host"], int(match["port"])
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


def clean_environment() -> dict[str, str]:
    """This process's environment without PARLEY_*, OTEL_* or proxy settings: tests talk
    to their own server on loopback and to nothing else."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PARLEY_", "OTEL_")) and not key.lower().endswith("_proxy")
    }


@dataclass(frozen=True)
class BufResult:
    """What one `buf curl` run printed; `values` are the JSON documents on stdout."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def values(self) -> list[Any]:
        return parse_json_stream(self.stdout)

    @property
    def value(self) -> Any:
        (only,) = self.values
        return only

    @property
    def error(self) -> Any:
        """The status `buf curl` prints (to stderr) when an RPC fails."""
        (status,) = parse_json_stream(self.stderr[self.stderr.index("{") :])
        return status

    def describe(self) -> str:
        return (
            f"$ {shlex.join(self.argv)}\nexit code {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


def buf_binary() -> Path | None:
    """The `buf` of the dev extras (PyPI buf-bin) beside this interpreter, else one on PATH."""
    found = shutil.which("buf", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return Path(found) if found else None


def run_buf(buf: Path, args: list[str], timeout: float = 60.0) -> BufResult:
    """Runs `buf ARGS` without a shell; a hung call fails the test instead of hanging it."""
    argv = [str(buf), *args]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=clean_environment(),
    )
    return BufResult(argv, completed.returncode, completed.stdout, completed.stderr)


class BackgroundBuf:
    """A `buf` command left running while the test goes on (a stream it reads as it grows).

    Use it in a `with` block: leaving it interrupts the command if it is still running.
    """

    def __init__(self, buf: Path, args: list[str]) -> None:
        self.argv = [str(buf), *args]
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_environment(),
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.stdout = Output(self.process.stdout, "buf stdout")
        self.stderr = Output(self.process.stderr, "buf stderr")

    def __enter__(self) -> BackgroundBuf:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.interrupt()

    def wait_for_values(
        self, wanted: Callable[[list[Any]], bool], timeout: float = 60.0
    ) -> list[Any]:
        """The JSON documents printed so far, once `wanted` says they are enough."""

        def enough(text: str) -> list[Any] | None:
            values = complete_json_values(text)
            return values if wanted(values) else None

        values = self.stdout.wait_until(enough, timeout)
        if values is None:
            raise AssertionError(
                f"never printed what the test waited for:\n{self.result().describe()}"
            )
        return values

    def finish(self, timeout: float = 60.0) -> BufResult:
        """The result once the command ended on its own."""
        self.process.wait(timeout)
        return self.result()

    def interrupt(self) -> BufResult:
        """Ctrl-C, as a person ends a stream that never ends by itself."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(KILL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(KILL_TIMEOUT_S)
        return self.result()

    def result(self) -> BufResult:
        """What it printed so far (all of it once it has ended); returncode -1 while running."""
        if self.process.poll() is not None:
            self.stdout.join(KILL_TIMEOUT_S)
            self.stderr.join(KILL_TIMEOUT_S)
        code = self.process.returncode
        return BufResult(
            self.argv, -1 if code is None else code, self.stdout.text, self.stderr.text
        )


def complete_json_values(text: str) -> list[Any]:
    """The JSON documents of `text` up to one still being printed."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return values
        values.append(value)


def parse_json_stream(text: str) -> list[Any]:
    """The JSON documents of `text`, which `buf curl` prints one after another, unseparated."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return values
        value, position = decoder.raw_decode(text, position)
        values.append(value)


def event_kind(event: Mapping[str, Any]) -> str:
    """Which member of SessionEvent's `event` oneof a JSON event carries."""
    kinds = {"started", "routing", "turnCompleted", "turnFailed", "completed"} & event.keys()
    (kind,) = kinds
    return kind


def readme_commands(readme: Path, marker: str) -> Iterator[str]:
    """The commands of README's ```sh blocks that follow an `<!-- e2e: MARKER -->` line.

    A command runs on while a line ends with a backslash or a quote is still open (JSON
    request bodies span lines); comments and blank lines between commands are skipped.
    """
    lines = readme.read_text(encoding="utf-8").splitlines()
    armed = False
    in_block = False
    pending: list[str] = []
    for line in lines:
        if not in_block:
            if line.strip() == f"<!-- e2e: {marker} -->":
                armed = True
            elif line.strip() == "```sh" and armed:
                in_block, armed = True, False
            elif line.strip():
                armed = False
            continue
        if line.strip() == "```":
            if pending:
                raise ValueError(f"README {marker} block ends inside a command: {pending[0]!r}")
            in_block = False
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        command = "\n".join(pending)
        if command.endswith("\\"):
            continue
        try:
            split_command(command)
        except ValueError:
            continue  # an open quote: the command goes on
        pending = []
        yield command


def readme_blocks(readme: Path, marker: str, language: str) -> list[str]:
    """The bodies of README's ```LANGUAGE blocks that follow `<!-- e2e: MARKER -->`."""
    pattern = re.compile(
        rf"^<!-- e2e: {re.escape(marker)} -->\n```{re.escape(language)}\n(.*?)^```$", re.M | re.S
    )
    return pattern.findall(readme.read_text(encoding="utf-8"))


def split_command(command: str) -> list[str]:
    """A shell command's words, as sh would split it (line continuations included)."""
    return shlex.split(command.replace("\\\n", " "), comments=True)
