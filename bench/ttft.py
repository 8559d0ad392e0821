"""Figure 3: time to first turn, and to the last event, of a broadcast over gRPC.

Four echo participants answer after 50, 100, 200 and 400 ms. A client that asks for a
run should see the first Turn as soon as the fastest agent is done and the stream end as
soon as the slowest is: what Parley adds is the first Turn's latency minus 50 ms and the
last event's latency minus 400 ms. The reference is the bare grpc.aio service streaming
the same events after the same delays (its own overhead: timers and gRPC).
"""

from __future__ import annotations

import asyncio

from bench import bare, client, servers
from bench.client import Timing
from bench.common import PARTICIPANTS, Figure, Line, Options, median

DELAYS_MS = (50, 100, 200, 400)
TARGET_FIRST_MS = 5.0
TARGET_LAST_MS = 10.0


async def _run(options: Options) -> Figure:
    figure = Figure(3, "Time to first turn (broadcast, echo delays 50/100/200/400 ms, gRPC)")
    runs = options.scale(50, 15)
    async with (
        servers.workdir() as workdir,
        servers.parley(workdir) as parley_server,
        servers.bare(workdir) as bare_server,
        parley_server.channel() as parley_channel,
        bare_server.channel() as bare_channel,
    ):
        stub = client.connect(parley_channel)
        stream = bare.stub(bare_channel)
        name = await client.create(stub, "ttft", PARTICIPANTS, "broadcast", DELAYS_MS)
        ours: list[Timing] = []
        theirs: list[Timing] = []
        await client.parley_run(stub, name)  # warm-up
        await client.bare_run(stream, len(PARTICIPANTS), DELAYS_MS)
        for _ in range(runs):  # alternating, so both see the same machine
            ours.append(await client.parley_run(stub, name))
            theirs.append(await client.bare_run(stream, len(PARTICIPANTS), DELAYS_MS))
    for label, target, fastest, pick in (
        ("first Turn - 50 ms", TARGET_FIRST_MS, DELAYS_MS[0], _first),
        ("last event - 400 ms", TARGET_LAST_MS, DELAYS_MS[-1], _last),
    ):
        parley_ms = median([pick(t) * 1000 - fastest for t in ours])
        bare_ms = median([pick(t) * 1000 - fastest for t in theirs])
        figure.add(
            Line(
                f"{label} (p50)",
                parley_ms,
                bare_ms,
                "ms",
                "bare grpc.aio stream, same delays",
                f"<= {target:g} ms",
                parley_ms <= target,
            )
        )
    figure.note(f"p50 over {runs} runs per side, sides alternating; one client, one server")
    return figure


def _first(timing: Timing) -> float:
    return timing.first_turn


def _last(timing: Timing) -> float:
    return timing.last_event


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
