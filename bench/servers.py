"""Server processes the gRPC figures measure: Parley as shipped, and the bare floor.

Each runs as a process of its own on loopback, port 0, its log in a temporary file; the
bench waits for its "listening on" line and always stops it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Set to a directory: each Parley server runs under pyinstrument (which must be
# installed) and writes its profile there, parley-1.txt, parley-2.txt, ...
PROFILE_ENV = "PARLEY_BENCH_PROFILE"
_profiles = itertools.count(1)
LISTENING = re.compile(r"listening on (127\.0\.0\.1:\d+)")
# The bench measures Parley as configured by default: no exporter, whatever the caller's
# environment says.
_DROPPED_ENV = ("OTEL_", "PARLEY_")


@dataclass(frozen=True, slots=True)
class Running:
    address: str
    pid: int
    log: Path

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
    env.update(extra)
    return env


@asynccontextmanager
async def process(
    name: str, argv: list[str], env: Mapping[str, str], workdir: Path
) -> AsyncIterator[Running]:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        child = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=dict(env)
        )
    try:
        address = await _wait_listening(child, log)
        yield Running(address, child.pid, log)
    finally:
        await _stop(child)


async def _wait_listening(child: asyncio.subprocess.Process, log: Path) -> str:
    give_up = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < give_up:
        found = LISTENING.search(await _read(log))
        if found:
            return found.group(1)
        if child.returncode is not None:
            raise RuntimeError(f"{_name_of(child)} exited ({child.returncode}): {await _tail(log)}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{_name_of(child)} did not start listening: {await _tail(log)}")


def _name_of(child: asyncio.subprocess.Process) -> str:
    return f"server process {child.pid}"


async def _read(log: Path) -> str:
    return await asyncio.to_thread(log.read_text, errors="replace")


async def _tail(log: Path) -> str:
    return (await _read(log))[-2000:]


async def _stop(child: asyncio.subprocess.Process) -> None:
    if child.returncode is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        child.kill()
        await asyncio.wait_for(child.wait(), STOP_TIMEOUT_S)


def parley(workdir: Path, store_url: str | None = None) -> AbstractAsyncContextManager[Running]:
    """`python -m parley.server` with a fresh SQLite file (or `store_url`)."""
    url = store_url or f"sqlite:///{(workdir / 'parley.db').resolve()}"
    env = _clean_env(
        {
            "PARLEY_ADDRESS": "127.0.0.1:0",
            "PARLEY_STORE_URL": url,
            "PARLEY_GRACE_PERIOD": "1",
            "PARLEY_LOG_LEVEL": "info",
        }
    )
    argv = [sys.executable, "-m", "parley.server"]
    profile = os.environ.get(PROFILE_ENV)
    if profile:
        target = Path(profile) / f"parley-{next(_profiles)}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        argv[1:1] = ["-m", "pyinstrument", "--interval", "0.0002", "-r", "text", "-o", str(target)]
    return process("parley", argv, env, workdir)


def bare(workdir: Path) -> AbstractAsyncContextManager[Running]:
    """The bare grpc.aio streaming service of `bench.bare`."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = _clean_env({"PYTHONPATH": os.pathsep.join(paths)})
    return process("bare", [sys.executable, "-m", "bench.bare"], env, workdir)


@asynccontextmanager
async def workdir() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as directory:
        yield Path(directory)
