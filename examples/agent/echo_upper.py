"""A remote Parley agent in a few lines: it answers with the newest messages in capitals.

Any language with gRPC can implement parley.v1.AgentService; this is the Python
version. Start it, then point a `grpc` profile of the Parley server at it:

    python examples/agent/echo_upper.py --port 50061

    [agents.upper]
    kind = "grpc"
    target = "127.0.0.1:50061"

It prints `listening on HOST:PORT` once it serves (with --port 0 the system picks the
port). It honours the `max_tokens` option (counting words as tokens) and reports words
as usage. `--fail-first N` answers UNAVAILABLE to the first N calls, to watch Parley
retry.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from parley.v1 import agent_pb2, agent_pb2_grpc


class EchoUpper(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0

    async def Execute(  # noqa: N802 - the RPC's name in the contract
        self, request: agent_pb2.ExecuteRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> agent_pb2.ExecuteResponse:
        self.calls += 1
        if self.calls <= self.fail_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up, try again")
        # The last message is always the one with what is new for this participant.
        new = request.messages[-1].content if request.messages else ""
        words = f"{request.participant.name}: {new.upper()}".split(" ")
        limit = request.options.get("max_tokens")
        if limit and limit.isdigit():
            words = words[: int(limit)]
        return agent_pb2.ExecuteResponse(
            content=" ".join(words),
            input_tokens=len(request.prompt.split()),
            output_tokens=len(words),
        )


async def start(host: str, port: int, fail_first: int = 0) -> tuple[grpc.aio.Server, int]:
    """A started server and the port it listens on."""
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(EchoUpper(fail_first), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061, help="0 picks a free port")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    args = parser.parse_args()
    server, port = await start(args.host, args.port, args.fail_first)
    print(f"listening on {args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


if __name__ == "__main__":
    asyncio.run(main())
