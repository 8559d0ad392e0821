"""`python -m load` (`make load`): many concurrent RunSession streams against one server.

Starts one `parley-server` subprocess on 127.0.0.1 (SQLite in a temporary directory
unless --store-url says otherwise), creates one dialogue of N echo participants per run,
then opens every RunSession stream at once over several connections and reports
completed runs, errors by code, p50/p99 run wall time and time to first turn, and the
server's resident memory before and after. Loopback only; bounded in count (--runs) and
time (--timeout); the server is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc

if TYPE_CHECKING:
    from parley.v1.dialogue_pb2_grpc import DialogueServiceAsyncStub

LISTENING = re.compile(r"parley listening on (?P<host>\S+):(?P<port>\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Dialogues are created this many at a time before the runs start.
SETUP_CONCURRENCY = 64
# The last lines of the server's output, shown when something goes wrong.
KEPT_LINES = 50


@dataclass
class RunResult:
    ok: bool
    code: str  # "OK", a gRPC status code name, or "NO_COMPLETION"
    wall_s: float
    first_turn_s: float | None
    turns: int = 0
    failures: int = 0


@dataclass
class Report:
    runs: int
    participants: int
    delay_ms: int
    channels: int
    store_url: str
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    turn_failures: int = 0
    peak_open_streams: int = 0
    run_wall_p50_s: float = math.nan
    run_wall_p99_s: float = math.nan
    run_wall_max_s: float = math.nan
    first_turn_p50_s: float = math.nan
    first_turn_p99_s: float = math.nan
    total_s: float = math.nan
    setup_s: float = math.nan
    rss_start_kib: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_peak_kib: int = 0
    # With --rounds > 1: RSS after each round (as many new dialogues run again), to tell
    # a leak (growth every round) from warm-up (growth once).
    rss_after_rounds_kib: list[int] = field(default_factory=list)
    rounds: int = 1
    timed_out: bool = False


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB, from /proc/PID/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


# --- the server ----------------------------------------------------------------------


class Server:
    """One `parley-server` subprocess; its output is drained so it never blocks."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.address = ""
        self.lines: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_listening(self) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise RuntimeError("parley-server exited:\n" + "\n".join(self.lines))
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                if match := LISTENING.search(line):
                    self.address = f"{match['host']}:{match['port']}"
                    break
        self._drain = asyncio.create_task(self._keep_draining())

    async def _keep_draining(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._drain


def server_environment(store_url: str) -> dict[str, str]:
    """This environment less PARLEY_*, OTEL_* and proxies, plus the load test's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PARLEY_", "OTEL_")) and not key.lower().endswith("_proxy")
    }
    env.update(
        PARLEY_ADDRESS="127.0.0.1:0",
        PARLEY_STORE_URL=store_url,
        PARLEY_LOG_LEVEL="info",
        PARLEY_GRACE_PERIOD="5",
    )
    return env


@contextlib.asynccontextmanager
async def parley_server(store_url: str, workdir: Path) -> AsyncIterator[Server]:
    executable = Path(sys.executable).parent / "parley-server"
    argv = [str(executable)] if executable.exists() else [sys.executable, "-m", "parley.server"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=server_environment(store_url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = Server(process)
    try:
        await server.wait_listening()
        yield server
    finally:
        await server.stop()


# --- the load ------------------------------------------------------------------------


def channel_options(index: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_http_proxy", 0),
        # A connection of its own per channel, not one shared subchannel.
        ("grpc.use_local_subchannel_pool", 1),
        ("parley.load.channel", index),
    ]


async def create_dialogues(
    stubs: Sequence[DialogueServiceAsyncStub],
    count: int,
    participants: int,
    delay_ms: int,
    round_number: int = 0,
) -> list[str]:
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)
    members = [
        pb.Participant(
            persona=pb.Persona(name=f"Agent{i + 1}"),
            agent="echo",
            agent_options={"delay_ms": str(delay_ms)},
        )
        for i in range(participants)
    ]

    async def create(i: int) -> str:
        async with limit:
            dialogue = await stubs[i % len(stubs)].CreateDialogue(
                pb.CreateDialogueRequest(
                    dialogue_id=f"load-{round_number}-{i:05d}",
                    dialogue=pb.Dialogue(participants=members, display_name=f"load {i}"),
                ),
                timeout=60,
            )
            return dialogue.name

    return list(await asyncio.gather(*(create(i) for i in range(count))))


class OpenStreams:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def opened(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def closed(self) -> None:
        self.now -= 1


async def one_run(
    stub: DialogueServiceAsyncStub,
    dialogue: str,
    start: asyncio.Event,
    streams: OpenStreams,
    deadline_s: float,
) -> RunResult:
    await start.wait()
    began = time.monotonic()
    first_turn: float | None = None
    turns = failures = 0
    completed = False
    streams.opened()
    try:
        call = stub.RunSession(
            pb.RunSessionRequest(dialogue=dialogue, text="load test: say something"),
            timeout=deadline_s,
        )
        async for event in call:
            if event.HasField("turn_completed"):
                turns += 1
                if first_turn is None:
                    first_turn = time.monotonic() - began
            elif event.HasField("turn_failed"):
                failures += 1
            elif event.HasField("completed"):
                completed = True
    except grpc.aio.AioRpcError as error:
        return RunResult(False, error.code().name, time.monotonic() - began, first_turn)
    finally:
        streams.closed()
    wall = time.monotonic() - began
    if not completed:
        return RunResult(False, "NO_COMPLETION", wall, first_turn, turns, failures)
    return RunResult(failures == 0, "OK", wall, first_turn, turns, failures)


async def drive(args: argparse.Namespace, report: Report, workdir: Path) -> None:
    async with parley_server(report.store_url, workdir) as server:
        report.rss_start_kib = memory_kib(server.pid)[0]
        channels = [
            grpc.aio.insecure_channel(server.address, options=channel_options(i))
            for i in range(args.channels)
        ]
        try:
            stubs = [dialogue_pb2_grpc.DialogueServiceStub(c) for c in channels]
            streams = OpenStreams()
            results: list[RunResult] = []
            report.setup_s = report.total_s = 0.0
            for round_number in range(args.rounds):
                # Fresh dialogues every round: the echo agent answers with everything it
                # was delivered, so a second run would carry the other replies along.
                setup_began = time.monotonic()
                dialogues = await create_dialogues(
                    stubs, args.runs, args.participants, args.delay_ms, round_number
                )
                report.setup_s += time.monotonic() - setup_began
                if round_number == 0:
                    report.rss_before_kib = memory_kib(server.pid)[0]
                began = time.monotonic()
                results.extend(await one_round(args, stubs, dialogues, streams, report))
                report.total_s += time.monotonic() - began
                report.rss_after_rounds_kib.append(memory_kib(server.pid)[0])
                if report.timed_out:
                    break
            report.rss_after_kib, report.rss_peak_kib = memory_kib(server.pid)
            summarize(report, results, streams.peak)
        finally:
            for channel in channels:
                await channel.close(None)


async def one_round(
    args: argparse.Namespace,
    stubs: Sequence[DialogueServiceAsyncStub],
    dialogues: Sequence[str],
    streams: OpenStreams,
    report: Report,
) -> list[RunResult]:
    """Every dialogue's run at once; the overall timeout cancels what is left."""
    start = asyncio.Event()
    runs = [
        asyncio.create_task(one_run(stubs[i % len(stubs)], name, start, streams, args.run_timeout))
        for i, name in enumerate(dialogues)
    ]
    start.set()
    try:
        async with asyncio.timeout(args.timeout):
            return list(await asyncio.gather(*runs))
    except TimeoutError:
        report.timed_out = True
        for task in runs:
            task.cancel()
        settled = await asyncio.gather(*runs, return_exceptions=True)
        return [r for r in settled if isinstance(r, RunResult)]


def summarize(report: Report, results: Sequence[RunResult], peak: int) -> None:
    report.completed = sum(r.ok for r in results)
    errors = collections.Counter(r.code for r in results if not r.ok)
    expected = report.runs * report.rounds
    errors.update({"TIMED_OUT": expected - len(results)} if len(results) < expected else {})
    report.errors = dict(sorted(errors.items()))
    report.turn_failures = sum(r.failures for r in results)
    report.peak_open_streams = peak
    walls = [r.wall_s for r in results if r.ok]
    firsts = [r.first_turn_s for r in results if r.ok and r.first_turn_s is not None]
    report.run_wall_p50_s = percentile(walls, 0.50)
    report.run_wall_p99_s = percentile(walls, 0.99)
    report.run_wall_max_s = max(walls, default=math.nan)
    report.first_turn_p50_s = percentile(firsts, 0.50)
    report.first_turn_p99_s = percentile(firsts, 0.99)


def render(report: Report) -> str:
    def ms(seconds: float) -> str:
        return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"

    def mib(kib: int) -> str:
        return f"{kib / 1024:,.1f} MiB"

    errors = ", ".join(f"{k} {v}" for k, v in report.errors.items()) or "none"
    rounds = ""
    if report.rounds > 1:
        each = ", ".join(mib(kib) for kib in report.rss_after_rounds_kib)
        rounds = f"\n  RSS after rounds   {each}"
    return "\n".join(
        [
            f"parley load: {report.runs} concurrent RunSession streams, "
            f"{report.participants} echo participants each (delay {report.delay_ms} ms), "
            f"{report.channels} connections, store {report.store_url}",
            f"  completed runs     {report.completed}/{report.runs * report.rounds}"
            + ("  (overall timeout hit)" if report.timed_out else ""),
            f"  errors             {errors}; failed turns {report.turn_failures}",
            f"  peak open streams  {report.peak_open_streams}",
            f"  run wall time      p50 {ms(report.run_wall_p50_s)}, "
            f"p99 {ms(report.run_wall_p99_s)}, max {ms(report.run_wall_max_s)}",
            f"  time to 1st turn   p50 {ms(report.first_turn_p50_s)}, "
            f"p99 {ms(report.first_turn_p99_s)}",
            f"  all runs took      {ms(report.total_s)} (setup of dialogues {ms(report.setup_s)})",
            f"  server RSS         start {mib(report.rss_start_kib)}, "
            f"before runs {mib(report.rss_before_kib)}, after {mib(report.rss_after_kib)} "
            f"(+{mib(report.rss_after_kib - report.rss_before_kib)}), "
            f"peak {mib(report.rss_peak_kib)}{rounds}",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs (default 1000)")
    parser.add_argument("--participants", type=int, default=4, help="echo participants per run")
    parser.add_argument("--delay-ms", type=int, default=200, help="echo delay_ms (default 200)")
    parser.add_argument(
        "--store-url",
        default="",
        help="the server's PARLEY_STORE_URL (default: SQLite in a temporary directory)",
    )
    parser.add_argument(
        "--channels", type=int, default=8, help="gRPC connections the streams share"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="overall limit on the runs, in seconds"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=120.0, help="each RunSession's deadline, in seconds"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole load this many times, on new dialogues (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 10_000:
        parser.error("--runs must be from 1 to 10000")
    if not 1 <= args.participants <= 256:
        parser.error("--participants must be from 1 to 256")
    if not 0 <= args.delay_ms <= 60_000:
        parser.error("--delay-ms must be from 0 to 60000")
    if not 1 <= args.channels <= 256:
        parser.error("--channels must be from 1 to 256")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be from 1 to 20")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parley-load-") as tmp:
        workdir = Path(tmp)
        store_url = args.store_url or f"sqlite:///{workdir / 'parley.db'}"
        report = Report(args.runs, args.participants, args.delay_ms, args.channels, store_url)
        report.rounds = args.rounds
        asyncio.run(drive(args, report, workdir))
    print(json.dumps(asdict(report), indent=2) if args.json else render(report))
    return 0 if report.completed == report.runs * report.rounds else 1


if __name__ == "__main__":
    raise SystemExit(main())
