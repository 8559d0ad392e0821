"""Server processes the gRPC figures measure: Parley as shipped, and the bare floor.

Each runs as a process of its own on loopback, port 0, its log in a temporary file; the
bench waits for its "listening on" line and always stops it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Set to a file name: the Parley server runs under pyinstrument, its profile lands there.
PROFILE_ENV = "PARLEY_BENCH_PROFILE"
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
        # Large windows and no per-channel stream cap: the client must not be the floor.
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
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=dict(env)
        )
    try:
        address = await _wait_listening(child, log)
        yield Running(address, child.pid, log)
    finally:
        _stop(child)


async def _wait_listening(child: subprocess.Popen[bytes], log: Path) -> str:
    give_up = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < give_up:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if child.poll() is not None:
            raise RuntimeError(f"{child.args!r} exited ({child.returncode}): {_tail(log)}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{child.args!r} did not start listening: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(STOP_TIMEOUT_S)


def parley(workdir: Path, store_url: str | None = None) -> AsyncIterator[Running]:
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
        argv[1:1] = ["-m", "pyinstrument", "--interval", "0.0002", "-r", "text", "-o", profile]
    return process("parley", argv, env, workdir)


def bare(workdir: Path) -> AsyncIterator[Running]:
    """The bare grpc.aio streaming service of `bench.bare`."""
    env = _clean_env({"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    return process("bare", [sys.executable, "-m", "bench.bare"], env, workdir)


@asynccontextmanager
async def workdir() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as directory:
        yield Path(directory)
