"""Figure 2: RunSession throughput over loopback gRPC against a bare grpc.aio stream.

Parley runs as shipped (`python -m parley.server`, durable SQLite log) in a process of
its own; each RunSession is a run of 16 echo participants answering at once, so a stream
carries 18 events. The bare service (`bench.bare`, its own process too) streams the same
SessionEvent messages and does nothing per item. One client process drives both the
same way: streams back to back for 2 s, on one stream and on 100 at once, five times
each side, alternating.

Broadcast, the default execution model, stores the replies that complete together in
one transaction. Sequential is the worst case and is reported without a target: each
participant is called only once the previous reply is stored, so a stream is a chain of
store transactions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench import bare, client, servers
from bench.client import Timing
from bench.common import Figure, Line, Options, median, participant_names

STREAMS = (1, 100)
PARTICIPANTS = 16
MODELS = ("broadcast", "sequential")
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
    figure = Figure(
        2, f"RunSession throughput, loopback gRPC, SQLite ({PARTICIPANTS + 2} events per run)"
    )
    seconds = 2.0 if not options.quick else 1.0
    rounds = options.scale(5, 1)
    names = participant_names(PARTICIPANTS)
    async with (
        servers.workdir() as workdir,
        servers.parley(workdir) as parley_server,
        servers.bare(workdir) as bare_server,
        parley_server.channel() as parley_channel,
        bare_server.channel() as bare_channel,
    ):
        stub = client.connect(parley_channel)
        stream = bare.stub(bare_channel)

        async def bare_once(index: int) -> Timing:
            return await client.bare_run(stream, PARTICIPANTS)

        sizes: list[float] = []
        for model in MODELS:
            dialogues = [
                await client.create(stub, f"throughput-{model}-{index}", names, model)
                for index in range(max(STREAMS))
            ]

            async def parley_once(index: int, dialogues: list[str] = dialogues) -> Timing:
                return await client.parley_run(stub, dialogues[index])

            sample = await parley_once(0)
            sizes.append(sample.size / sample.items)
            for streams in STREAMS:
                # Warm-up: a cold bare stream ran up to a third slower than a warm one.
                await pump(parley_once, streams, 1.0)
                await pump(bare_once, streams, 1.0)
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(rounds):
                    ours.append(await pump(parley_once, streams, seconds))
                    theirs.append(await pump(bare_once, streams, seconds))
                parley_rate, bare_rate = median(ours), median(theirs)
                headline = model == MODELS[0]
                figure.add(
                    Line(
                        f"{model}, {streams} stream{'s' if streams > 1 else ''}",
                        parley_rate,
                        bare_rate,
                        "items/s",
                        "bare grpc.aio stream",
                        f">= {TARGET}x" if headline else "(worst case)",
                        parley_rate >= TARGET * bare_rate if headline else None,
                    )
                )
        bare_sample = await client.bare_run(stream, PARTICIPANTS)
    figure.note(
        f"mean item size: Parley {median(sizes):.0f} B, "
        f"bare {bare_sample.size / bare_sample.items:.0f} B; "
        f"medians of {rounds} x {seconds:g} s per side, sides alternating"
    )
    return figure


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
