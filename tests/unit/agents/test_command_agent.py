"""The command kind with real subprocesses: stdin prompt, attachments, exits, kills."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from parley.server.agents.command import STDERR_TAIL_BYTES, CommandAgent
from parley.server.agents.profiles import build_registry
from parley.server.agents.protocol import AgentFailure
from parley.server.agents.redaction import Redactor
from parley.server.agents.retry import RetryingAgent, RetryPolicy
from parley.server.engine.model import Attachment

from .conftest import Closing
from .support import PROMPT, make_call, said

SECRET = "hunter2-very-secret-value"


def agent(
    argv: Sequence[str], *, model_flag: str = "", defaults: dict[str, str] | None = None
) -> CommandAgent:
    return CommandAgent(
        argv, model_flag=model_flag, defaults=defaults or {}, redact=Redactor([SECRET])
    )


def python(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script)]


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie awaiting its reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def gone(pid: int) -> bool:
    """Whether `pid` ends within a few seconds: SIGKILL is delivered asynchronously."""
    for _ in range(500):
        if not alive(pid):
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test saw; any still running at the end are killed, so none outlive it."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_the_prompt_goes_to_stdin_and_stdout_is_the_reply() -> None:
    reply = await agent(["cat"]).execute(make_call())

    assert reply.content == PROMPT.strip()


async def test_a_command_need_not_read_its_stdin() -> None:
    """A prompt larger than the pipe buffer, never read: the reply still comes."""
    deaf = agent(python("print('not listening')"))

    reply = await deaf.execute(make_call(prompt="x" * 1_000_000))

    assert reply.content == "not listening"


async def test_the_model_is_passed_as_one_flag_argument() -> None:
    printer = agent(
        python("import sys; print(sys.argv[1:])"),
        model_flag="--model",
        defaults={"model": "opus"},
    )

    assert (await printer.execute(make_call())).content == "['--model=opus']"
    chosen = await printer.execute(make_call(options={"model": "sonnet"}))
    assert chosen.content == "['--model=sonnet']"


async def test_attachments_are_files_listed_in_the_prompt() -> None:
    reader = agent(
        python(
            """
            import os, pathlib, sys
            listing = sys.stdin.read().split("# Attachments", 1)[1]
            for line in listing.splitlines():
                if " bytes): " in line:
                    path = pathlib.Path(line.rsplit("): ", 1)[1])
                    print(path.name, path.read_text(), path.parent == pathlib.Path.cwd())
                elif line.startswith("- "):
                    print(line)
            """
        )
    )
    notes = Attachment("../../etc/notes.txt", "text/plain", data=b"hello file")
    picture = Attachment("pic.png", "image/png", uri="https://example.invalid/pic.png")
    call = make_call(delivered=[said(1, "Bob", "see attached", [notes, picture])])

    reply = await reader.execute(call)

    assert reply.content.splitlines() == [
        "1-notes.txt hello file True",
        "- [Bob] pic.png (image/png): https://example.invalid/pic.png",
    ]


async def test_a_failed_command_reports_its_stderr_tail_with_secrets_redacted() -> None:
    failing = agent(
        python(
            f"""
            import sys
            sys.stderr.write("early noise " * 400)
            sys.stderr.write("login with {SECRET} failed; Authorization: Bearer abcdefghijkl123\\n")
            sys.exit(3)
            """
        )
    )

    with pytest.raises(AgentFailure) as failed:
        await failing.execute(make_call())

    failure = failed.value
    assert (failure.code, failure.retryable) == ("COMMAND_FAILED", False)
    assert "exited with status 3; stderr: " in failure.message
    assert failure.message.endswith("failed; Authorization: Bearer [redacted]")
    assert "login with [redacted]" in failure.message
    assert SECRET not in failure.message
    assert len(failure.message) < STDERR_TAIL_BYTES + 100


async def test_a_command_killed_by_a_signal_says_so() -> None:
    suicidal = agent(python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"))

    with pytest.raises(AgentFailure) as failed:
        await suicidal.execute(make_call())

    assert "was killed by SIGTERM" in failed.value.message


async def test_a_missing_command_fails_clearly() -> None:
    with pytest.raises(AgentFailure) as failed:
        await agent(["/nonexistent/parley-test-cli"]).execute(make_call())

    assert failed.value.code == "COMMAND_NOT_FOUND"


async def test_endless_output_is_cut_off() -> None:
    flood = agent(python("import sys\nwhile True: sys.stdout.write('x' * 65536)"))

    with pytest.raises(AgentFailure) as failed:
        await flood.execute(make_call())

    assert failed.value.code == "COMMAND_FAILED"
    assert "wrote more than" in failed.value.message


async def test_a_timeout_kills_the_whole_process_group(
    tmp_path: Path, leftovers: list[int]
) -> None:
    pidfile = tmp_path / "pids"
    # sh starts in milliseconds: the pids are written long before the timeout.
    script = f'sleep 300 & echo "$$ $!" > {pidfile}; wait'
    slow = RetryingAgent(agent(["sh", "-c", script]), timeout=2.0, policy=RetryPolicy())

    with pytest.raises(AgentFailure) as failed:
        await slow.execute(make_call())

    assert (failed.value.code, failed.value.attempts) == ("AGENT_TIMEOUT", 1)
    shell, grandchild = (int(pid) for pid in pidfile.read_text().split())
    leftovers.extend([shell, grandchild])
    assert not alive(shell)  # reaped before the failure was raised
    assert await gone(grandchild)


@pytest.fixture
async def reporter() -> AsyncIterator[tuple[int, asyncio.Future[list[int]]]]:
    """A loopback port where a script reports its pids; the future gets them."""
    reported: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        reported.set_result([int(pid) for pid in line.split()])
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], reported


async def test_cancellation_kills_the_whole_process_group_and_propagates(
    reporter: tuple[int, asyncio.Future[list[int]]], leftovers: list[int]
) -> None:
    port, reported = reporter
    spawner = agent(
        python(
            f"""
            import os, socket, subprocess, time
            child = subprocess.Popen(["sleep", "300"])
            with socket.create_connection(("127.0.0.1", {port})) as report:
                report.sendall(f"{{os.getpid()}} {{child.pid}}\\n".encode())
            time.sleep(300)
            """
        )
    )
    task = asyncio.create_task(spawner.execute(make_call()))
    pids = await asyncio.wait_for(reported, timeout=60)
    leftovers.extend(pids)
    assert all(alive(pid) for pid in pids)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    child, grandchild = pids
    assert not alive(child)
    assert await gone(grandchild)


async def test_a_command_profile_sees_its_own_key_and_no_other_profiles(closing: Closing) -> None:
    show = "import os; print(sorted(k for k in os.environ if k.endswith('_KEY') or k == 'PLAIN'))"
    tables: dict[str, dict[str, Any]] = {
        "gpt": {
            "kind": "openai",
            "model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "OTHER_KEY",
        },
        "cli": {"kind": "command", "argv": python(show), "api_key_env": "OWN_KEY"},
    }
    env = {"OTHER_KEY": "other-secret-value", "OWN_KEY": "own-secret-value", "PLAIN": "1"}
    registry = closing(build_registry(tables, env))

    reply = await registry.agent("cli").execute(make_call())

    assert reply.content == "['OWN_KEY', 'PLAIN']"


async def test_every_profiles_key_is_redacted_from_command_errors(closing: Closing) -> None:
    leak = "import sys; sys.exit('leaked other-secret-value and own-secret-value')"
    tables: dict[str, dict[str, Any]] = {
        "gpt": {"kind": "openai", "model": "m", "base_url": "http://h/v1", "api_key_env": "A"},
        "cli": {"kind": "command", "argv": python(leak), "api_key_env": "B"},
    }
    registry = closing(build_registry(tables, {"A": "other-secret-value", "B": "own-secret-value"}))

    with pytest.raises(AgentFailure) as failed:
        await registry.agent("cli").execute(make_call())

    assert failed.value.message.endswith("stderr: leaked [redacted] and [redacted]")
