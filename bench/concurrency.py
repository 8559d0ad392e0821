"""Figure 4: 1,000 concurrent runs against one server process.

Each run is a broadcast of 4 echo participants that answer after 200 ms, on a dialogue
of its own; all are started at once over loopback gRPC, like the reliability issue's
load driver. Reported: completed runs per second (first request to last event) and the
p99 of a run's wall time. The reference is the bare grpc.aio service streaming the same
events after the same 200 ms, 1,000 streams at once: the floor of Python gRPC here.
The same runs go to a PostgreSQL-backed server when one is available.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from bench import bare, client, postgres, servers
from bench.client import Timing
from bench.common import PARTICIPANTS, Figure, Line, Options, median, percentile, rss_kib

DELAY_MS = 200
CREATE_BATCH = 50


@dataclass(frozen=True, slots=True)
class Wave:
    """One wave of concurrent runs: throughput, p99 wall time, failures."""

    runs_per_s: float
    p99_ms: float
    errors: int


async def wave(run_once: Callable[[int], Awaitable[Timing]], count: int) -> Wave:
    errors = 0
    walls: list[float] = []

    async def one(index: int) -> None:
        nonlocal errors
        try:
            timing = await run_once(index)
        except grpc.aio.AioRpcError:
            errors += 1
        else:
            walls.append(timing.ended)

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(count)))
    elapsed = time.perf_counter() - started
    p99 = percentile(walls, 0.99) * 1000 if walls else float("inf")
    return Wave(len(walls) / elapsed, p99, errors)


async def _parley_waves(
    running: servers.Running, count: int, rounds: int
) -> tuple[list[Wave], int, int]:
    """Waves against a Parley server; with its RSS (KiB) before and after them."""
    async with running.channel() as channel:
        stub = client.connect(channel)
        names: list[str] = []
        for start in range(0, count, CREATE_BATCH):
            names.extend(
                await asyncio.gather(
                    *(
                        client.create(
                            stub,
                            f"load-{index}",
                            PARTICIPANTS,
                            "broadcast",
                            [DELAY_MS] * len(PARTICIPANTS),
                        )
                        for index in range(start, min(start + CREATE_BATCH, count))
                    )
                )
            )

        async def run_once(index: int) -> Timing:
            return await client.parley_run(stub, names[index])

        await wave(run_once, min(count, 100))  # warm-up
        before = rss_kib(running.pid)
        waves = [await wave(run_once, count) for _ in range(rounds)]
        return waves, before, rss_kib(running.pid)


async def _bare_waves(running: servers.Running, count: int, rounds: int) -> list[Wave]:
    async with running.channel() as channel:
        stream = bare.stub(channel)
        delays = [DELAY_MS] * len(PARTICIPANTS)

        async def run_once(index: int) -> Timing:
            return await client.bare_run(stream, len(PARTICIPANTS), delays)

        await wave(run_once, min(count, 100))
        return [await wave(run_once, count) for _ in range(rounds)]


def _lines(figure: Figure, store: str, ours: list[Wave], theirs: list[Wave]) -> None:
    runs = median([w.runs_per_s for w in ours])
    p99 = median([w.p99_ms for w in ours])
    figure.add(
        Line(
            f"{store}: runs/s",
            runs,
            median([w.runs_per_s for w in theirs]),
            "runs/s",
            "bare grpc.aio, same streams",
            "errors: 0",
            sum(w.errors for w in ours) == 0,
        )
    )
    figure.add(
        Line(
            f"{store}: p99 wall time",
            p99,
            median([w.p99_ms for w in theirs]),
            "ms",
            "bare grpc.aio, same streams",
            f"ideal {DELAY_MS} ms",
        )
    )


async def _run(options: Options) -> Figure:
    count = options.scale(1_000, 200)
    rounds = options.scale(3, 1)
    figure = Figure(4, f"Concurrency: {count:,} concurrent runs, 4 echo participants, 200 ms")
    async with servers.workdir() as workdir:
        async with servers.bare(workdir) as bare_server:
            theirs = await _bare_waves(bare_server, count, rounds)
        async with servers.parley(workdir) as parley_server:
            ours, before, after = await _parley_waves(parley_server, count, rounds)
        _lines(figure, "SQLite", ours, theirs)
        figure.note(
            f"SQLite server RSS {before / 1024:.0f} MiB before the waves, "
            f"{after / 1024:.0f} MiB after; errors {sum(w.errors for w in ours)}"
        )
        async with postgres.fresh_schema() as database:
            if database.url is None:
                figure.note(f"PostgreSQL: skipped, {database.why_not}")
            else:
                async with servers.parley(workdir, database.url) as pg_server:
                    pg, _, _ = await _parley_waves(pg_server, count, rounds)
                _lines(figure, "PostgreSQL", pg, theirs)
    figure.note(f"medians of {rounds} wave(s) of {count:,} runs; one client process")
    return figure


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
