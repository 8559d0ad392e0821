"""The `command` kind: a CLI agent (claude -p, gemini, codex exec, or any argv).

The argv comes only from the server config and runs without a shell; the prompt (the
single-text form) goes to stdin and stdout is the reply. The CLI gets the server's
environment without the key variables of other profiles. Attachments of the delivered
messages are written to a scratch directory and listed at the end of the prompt. Each
call runs in a session of its own, so a timeout or a cancelled run kills the whole
process group - the CLI and anything it started - and reaps it. A non-zero exit fails
the turn with the tail of stderr, secrets redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from parley.server.agents.options import Generation
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.redaction import Redactor
from parley.server.engine.model import Attachment, Message

PRESETS: Mapping[str, tuple[str, ...]] = {
    "claude": ("claude", "-p"),
    "gemini": ("gemini",),
    "codex": ("codex", "exec"),
}
# All three presets take the model as `--model=NAME`.
PRESET_MODEL_FLAG = "--model"
STDERR_TAIL_BYTES = 1024
# Redaction runs on more than is shown, so a secret cut by the tail's edge is still
# recognised whole.
STDERR_KEPT_BYTES = 4 * STDERR_TAIL_BYTES
MAX_STDOUT_BYTES = 4 * 1024 * 1024
REAP_WAIT_S = 5.0
_READ_CHUNK = 64 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr_tail: bytes
    stdout_overflowed: bool


class CommandAgent:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        model_flag: str = "",
        defaults: Mapping[str, str],
        redact: Redactor,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._argv = tuple(argv)
        # None: the server's own environment.
        self._env = dict(env) if env is not None else None
        self._model_flag = model_flag
        self._defaults = dict(defaults)
        self._redact = redact
        self._workdir = workdir
        self._name = Path(argv[0]).name

    async def execute(self, call: AgentCall) -> AgentReply:
        argv = list(self._argv)
        model = Generation.resolve(self._defaults, call.options).model
        if model and self._model_flag:
            # One argument, so a model name can never be read as a flag of its own.
            argv.append(f"{self._model_flag}={model}")
        with tempfile.TemporaryDirectory(prefix="parley-call-") as scratch:
            listing = write_attachments(call.delivered, Path(scratch))
            prompt = call.prompt + listing
            finished = await run_process(
                argv, prompt.encode(), cwd=self._workdir or scratch, env=self._env
            )
        if finished.stdout_overflowed:
            raise AgentFailure(
                "COMMAND_FAILED", f"{self._name} wrote more than {MAX_STDOUT_BYTES} bytes"
            )
        if finished.returncode != 0:
            raise AgentFailure("COMMAND_FAILED", self._exit_message(finished))
        return AgentReply(finished.stdout.decode("utf-8", errors="replace").strip())

    def _exit_message(self, finished: Finished) -> str:
        code = finished.returncode
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        tail = self._redact(finished.stderr_tail.decode("utf-8", errors="replace"))
        tail = tail[-STDERR_TAIL_BYTES:].strip()
        return f"{self._name} {how}" + (f"; stderr: {tail}" if tail else "")


def write_attachments(delivered: Sequence[Message], directory: Path) -> str:
    """Writes inline attachments into `directory`; returns the prompt section listing
    every attachment ("" when there are none)."""
    lines: list[str] = []
    for message in delivered:
        for attachment in message.attachments:
            lines.append(_list_entry(message, attachment, directory, len(lines) + 1))
    if not lines:
        return ""
    return (
        "\n\n# Attachments\nFiles that came with the new messages, readable on disk:\n"
        + "\n".join(lines)
    )


def _list_entry(message: Message, attachment: Attachment, directory: Path, number: int) -> str:
    label = f"- [{message.speaker.name}] {attachment.name} ({attachment.mime_type}"
    if attachment.data is None:
        return f"{label}): {attachment.uri}"
    safe = _UNSAFE_NAME.sub("_", Path(attachment.name).name).strip("._")[:100] or "attachment"
    path = directory / f"{number}-{safe}"
    path.write_bytes(attachment.data)
    return f"{label}, {len(attachment.data)} bytes): {path}"


async def run_process(
    argv: Sequence[str], stdin: bytes, *, cwd: str, env: Mapping[str, str] | None = None
) -> Finished:
    """Runs `argv` in a new session; the group is killed on any way out but success."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise AgentFailure("COMMAND_NOT_FOUND", f"command {argv[0]!r} was not found") from None
    except OSError as error:
        raise AgentFailure(
            "COMMAND_FAILED", f"could not start {argv[0]!r}: {error.strerror}"
        ) from None
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        _, (stdout, overflowed), stderr = await asyncio.gather(
            _feed(process.stdin, stdin),
            _read_capped(process.stdout, process.pid),
            _read_tail(process.stderr),
        )
        returncode = await process.wait()
    except BaseException:
        # Timeout, cancellation or a crash: nothing the call started may outlive it.
        kill_group(process.pid)
        # wait() also waits for the pipes to close, which a process that left the group
        # could hold open: bounded, so a cancelled call always ends.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), REAP_WAIT_S)
        raise
    # Stragglers the CLI left behind after it exited belong to the call too.
    kill_group(process.pid)
    return Finished(returncode, stdout, stderr, overflowed)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    try:
        pipe.write(data)
        await pipe.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # a CLI may exit without reading its stdin: its business, not an error
    finally:
        pipe.close()


async def _read_capped(pipe: asyncio.StreamReader, pgid: int) -> tuple[bytes, bool]:
    """All of stdout, or the group killed once it passes MAX_STDOUT_BYTES."""
    data = bytearray()
    while chunk := await pipe.read(_READ_CHUNK):
        data += chunk
        if len(data) > MAX_STDOUT_BYTES:
            kill_group(pgid)
            return bytes(data[:MAX_STDOUT_BYTES]), True
    return bytes(data), False


async def _read_tail(pipe: asyncio.StreamReader) -> bytes:
    tail = bytearray()
    while chunk := await pipe.read(_READ_CHUNK):
        tail += chunk
        del tail[:-STDERR_KEPT_BYTES]
    return bytes(tail)
