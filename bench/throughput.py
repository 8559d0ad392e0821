"""Figure 2: RunSession throughput over loopback gRPC against a bare grpc.aio stream.

Parley runs as shipped (`python -m parley.server`, durable SQLite log) in a process of
its own; each RunSession is a sequential run of 64 echo participants answering at once,
so every reply is its own store transaction, stored before it is emitted. The bare
service (`bench.bare`, its own process too) streams the same SessionEvent messages and
does nothing per item. One client process drives both the same way: streams back to
back for a fixed time, on one stream and on 100 concurrent streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench import bare, client, servers
from bench.client import Stub, Timing
from bench.common import Figure, Line, Options, median, participant_names

STREAMS = (1, 100)
PARTICIPANTS = 64
TARGET = 0.5


async def pump(run_once: Callable[[int], Awaitable[Timing]], streams: int, seconds: float) -> float:
    """Items per second while `streams` workers start streams back to back."""
    started = time.perf_counter()
    deadline = started + seconds
    items = 0

    async def worker(index: int) -> None:
        nonlocal items
        while time.perf_counter() < deadline:
            # Awaited first: `items += await ...` would read `items` before the await.
            timing = await run_once(index)
            items += timing.items

    await asyncio.gather(*(worker(index) for index in range(streams)))
    return items / (time.perf_counter() - started)


async def _run(options: Options) -> Figure:
    figure = Figure(2, f"RunSession throughput over loopback gRPC ({PARTICIPANTS + 2} items/run)")
    seconds = 3.0 if not options.quick else 1.0
    rounds = options.scale(3, 1)
    names = participant_names(PARTICIPANTS)
    async with (
        servers.workdir() as workdir,
        servers.parley(workdir) as parley_server,
        servers.bare(workdir) as bare_server,
        parley_server.channel() as parley_channel,
        bare_server.channel() as bare_channel,
    ):
        stub = Stub(parley_channel)
        stream = bare.stub(bare_channel)
        dialogues = [
            await client.create(stub, f"throughput-{index}", names, "sequential")
            for index in range(max(STREAMS))
        ]
        sizes = await _sizes(stub, dialogues[0], stream)

        async def parley_once(index: int) -> Timing:
            return await client.parley_run(stub, dialogues[index])

        async def bare_once(index: int) -> Timing:
            return await client.bare_run(stream, PARTICIPANTS)

        for streams in STREAMS:
            await pump(parley_once, streams, 0.3)  # warm-up
            await pump(bare_once, streams, 0.3)
            measured: dict[str, list[float]] = {"parley": [], "bare": []}
            for _ in range(rounds):
                measured["parley"].append(await pump(parley_once, streams, seconds))
                measured["bare"].append(await pump(bare_once, streams, seconds))
            ours, theirs = median(measured["parley"]), median(measured["bare"])
            figure.add(
                Line(
                    f"{streams:>3} stream{'s' if streams > 1 else ''}",
                    ours,
                    theirs,
                    "items/s",
                    "bare grpc.aio stream",
                    f">= {TARGET}x",
                    ours >= TARGET * theirs,
                )
            )
    figure.note(
        f"mean item size: Parley {sizes[0]:.0f} B, bare {sizes[1]:.0f} B; "
        f"medians of {rounds} x {seconds:g} s per side, sides alternating"
    )
    return figure


async def _sizes(
    stub: Stub, dialogue: str, stream: client.BareCall
) -> tuple[float, float]:
    ours = await client.parley_run(stub, dialogue)
    theirs = await client.bare_run(stream, PARTICIPANTS)
    return ours.size / ours.items, theirs.size / theirs.items


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
