"""A replica on PostgreSQL reports its database's outage in its health: while the
database cannot be reached, `parley.v1.DialogueService` is NOT_SERVING (a load balancer
sends it no new calls) and calls fail with UNAVAILABLE; the whole server (`""`) stays
SERVING (a liveness probe must not restart it). When the database is back, the service is
SERVING again and the dialogue runs on, its log intact.

The outage is a proxy between the server and the real PostgreSQL that goes down and comes
back on the same port (`OutageProxy` in `tests/e2e/proxy.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from parley.v1 import dialogue_pb2 as pb
from parley.v1 import dialogue_pb2_grpc as pb_grpc

from tests.api.support import failure_of
from tests.e2e.harness import ServerLauncher
from tests.e2e.proxy import OutageProxy
from tests.postgres import drop_schema, new_schema, schema_url, server_address

pytestmark = pytest.mark.e2e

SERVICE = "parley.v1.DialogueService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RPC_TIMEOUT_S = 60.0
# Bounds the whole test's wait for health changes; the feed notices a reset connection at
# once and retries a refused one within 5 s.
WATCH_TIMEOUT_S = 90.0


@pytest.fixture
def proxied_url(launcher: ServerLauncher) -> Iterator[tuple[str, OutageProxy]]:
    """A fresh schema's URL through an outage proxy, and the proxy."""
    schema = asyncio.run(new_schema("parley_health"))
    try:
        with OutageProxy(server_address()) as proxy:
            yield schema_url(schema, via=proxy.address), proxy
            launcher.stop_all()  # before the proxy goes: the server closes its pool
    finally:
        asyncio.run(drop_schema(schema))


def run_once(stub: pb_grpc.DialogueServiceStub, text: str) -> list[str]:
    events = stub.RunSession(
        pb.RunSessionRequest(dialogue="dialogues/outage", text=text), timeout=RPC_TIMEOUT_S
    )
    return [event.WhichOneof("event") for event in events]


def test_health_follows_a_database_outage(
    launcher: ServerLauncher, proxied_url: tuple[str, OutageProxy]
) -> None:
    url, proxy = proxied_url
    server = launcher.start(PARLEY_STORE_URL=url)
    with server.channel() as channel:
        stub = pb_grpc.DialogueServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        stub.CreateDialogue(
            pb.CreateDialogueRequest(
                dialogue_id="outage",
                dialogue=pb.Dialogue(
                    participants=[pb.Participant(persona=pb.Persona(name="Ann"), agent="echo")]
                ),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        assert run_once(stub, "before") == ["started", "turn_completed", "completed"]
        watch = health.Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=WATCH_TIMEOUT_S
        )
        assert next(watch).status == SERVING

        proxy.down()
        assert next(watch).status == NOT_SERVING
        overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT_S)
        assert overall.status == SERVING
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetDialogue(pb.GetDialogueRequest(name="dialogues/outage"), timeout=RPC_TIMEOUT_S)
        failure = failure_of(refused.value)
        assert failure.code == grpc.StatusCode.UNAVAILABLE
        assert failure.reason == "STORE_UNAVAILABLE"

        proxy.up()
        assert next(watch).status == SERVING
        watch.cancel()
        assert run_once(stub, "after") == ["started", "turn_completed", "completed"]
        messages = stub.ListMessages(
            pb.ListMessagesRequest(dialogue="dialogues/outage"), timeout=RPC_TIMEOUT_S
        ).messages
        assert [m.content for m in messages] == [
            "before",
            "Ann:\n[System]: before",
            "after",
            "Ann:\n[System]: after",
        ]
