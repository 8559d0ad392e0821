"""Figure 5: a server's memory after many dialogues, each created and run once.

Idle dialogues must not stay in memory: they live in the store (SQLite here), so the
server's resident set after 10,000 dialogues should be about what it was after 100.
Each dialogue has 4 echo participants and one broadcast run; 50 requests are in flight
at a time. RSS is read from /proc after each step.
"""

from __future__ import annotations

import asyncio

from bench import client, servers
from bench.common import PARTICIPANTS, Figure, Line, Options, rss_kib

FIRST = 100
IN_FLIGHT = 50
TARGET = 1.10


async def _create_and_run(stub: client.AsyncStub, start: int, stop: int) -> None:
    async def one(index: int) -> None:
        name = await client.create(stub, f"idle-{index}", PARTICIPANTS, "broadcast")
        await client.parley_run(stub, name)

    for batch in range(start, stop, IN_FLIGHT):
        await asyncio.gather(*(one(index) for index in range(batch, min(batch + IN_FLIGHT, stop))))


async def _run(options: Options) -> Figure:
    total = options.scale(10_000, 2_000)
    figure = Figure(5, f"Memory: server RSS after {total:,} dialogues, each run once (SQLite)")
    async with (
        servers.workdir() as workdir,
        servers.parley(workdir) as server,
        server.channel() as channel,
    ):
        stub = client.connect(channel)
        idle = rss_kib(server.pid)
        await _create_and_run(stub, 0, FIRST)
        early = rss_kib(server.pid)
        await _create_and_run(stub, FIRST, total)
        late = rss_kib(server.pid)
    figure.add(
        Line(
            f"RSS after {total:,} dialogues",
            late / 1024,
            early / 1024,
            "MiB",
            f"RSS after {FIRST} dialogues",
            f"<= {TARGET:.2f}x",
            late <= TARGET * early,
        )
    )
    growth = (late - early) * 1024 / (total - FIRST)
    figure.note(f"idle server {idle / 1024:.0f} MiB; {growth:,.0f} bytes of RSS per extra dialogue")
    return figure


def run(options: Options) -> Figure:
    return asyncio.run(_run(options))
