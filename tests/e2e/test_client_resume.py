"""The Python client finishes a run whose RunSession stream broke, from WatchDialogue.

Two real ways a stream breaks mid-run:

* the connection dies between client and server while the server goes on (a proxy,
  a load balancer, the network): the run completes on the server, and the client must
  deliver every remaining turn exactly once;
* the server dies and comes back on the same port and SQLite file: the run is lost,
  the restarted server marks it interrupted, and the client must end it cleanly with
  the participants still owed as failures.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from parley.client import AsyncParleyClient, ParleyClient, ParleyRpcError
from parley.client import builders as b
from parley.v1 import dialogue_pb2 as pb

from tests.e2e.harness import ServerLauncher, ServerProcess
from tests.e2e.proxy import SeveringProxy

pytestmark = pytest.mark.e2e


def tea(delay_ms: int) -> pb.Dialogue:
    """Bob answers at once, Ann after `delay_ms`."""
    return b.dialogue(
        "Resumable tea",
        [
            b.participant("Ann", role="host", icon="🦊", options={"delay_ms": delay_ms}),
            b.participant("Bob", role="guest", icon="🐻"),
        ],
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_lost_connection_resumes_and_delivers_every_turn_once(
    parley_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with SeveringProxy(parley_server.address) as proxy, ParleyClient(proxy.address) as client:
        client.create_dialogue(tea(delay_ms=1500), "tea")
        run = client.turns("tea", "Shall we start?", timeout=60)
        seen = []
        with caplog.at_level(logging.WARNING, logger="parley.client"):
            for turn in run:
                seen.append(turn)
                if turn.speaker.name == "Bob":
                    proxy.sever()  # the server never notices: Ann goes on thinking
        log = list(client.list_messages("tea"))

    assert [t.speaker.name for t in seen] == ["Bob", "Ann"]
    # Once, or again when the first resume's call still met the dying connection (the
    # channel had not seen the reset yet): either way every turn arrives once.
    assert 1 <= run.resumed <= 2
    assert proxy.connections >= 2  # the first, cut; then the one the watch used
    assert "was lost (UNAVAILABLE); following the run through WatchDialogue" in caplog.text
    assert run.completed == pb.SessionCompleted(turn_count=2, failure_count=0)
    assert not run.failures
    # Ann's turn, rebuilt from the log, is the stored reply with its speaker and place.
    ann = seen[1]
    stored = {m.seq: m for m in log}[ann.message_seq]
    assert (ann.content, ann.speaker.name, ann.speaker.icon) == (
        stored.content,
        "Ann",
        "🦊",
    )
    assert ann.participant_index == 0
    assert ann.turn == 1
    # Nothing was cancelled or stored twice: prompt and two replies.
    assert [m.speaker.name for m in log] == ["System", "Bob", "Ann"]


def test_events_after_a_resume_keep_counting(parley_server: ServerProcess) -> None:
    with SeveringProxy(parley_server.address) as proxy, ParleyClient(proxy.address) as client:
        client.create_dialogue(tea(delay_ms=1000), "count")
        events = []
        for event in client.run_session("count", "One, two?"):
            events.append(event)
            if event.WhichOneof("event") == "turn_completed":
                proxy.sever()
    assert [e.WhichOneof("event") for e in events] == [
        "started",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert {e.turn for e in events} == {1}
    assert {e.dialogue for e in events} == {"dialogues/count"}


def test_without_resume_the_lost_stream_is_an_error(parley_server: ServerProcess) -> None:
    with SeveringProxy(parley_server.address) as proxy, ParleyClient(proxy.address) as client:
        client.create_dialogue(tea(delay_ms=1000), "no-resume")

        def sever_after_bob() -> None:
            for turn in client.turns("no-resume", "Hello?", resume=False):
                if turn.speaker.name == "Bob":
                    proxy.sever()

        with pytest.raises(ParleyRpcError) as raised:
            sever_after_bob()
    assert raised.value.code().name == "UNAVAILABLE"


async def test_server_restart_ends_the_run_as_interrupted(
    launcher: ServerLauncher, tmp_path: Path
) -> None:
    store = tmp_path / "restart.db"
    address = f"127.0.0.1:{free_port()}"
    server = launcher.start(store, PARLEY_ADDRESS=address)
    async with AsyncParleyClient(server.address, timeout=60) as client:
        await client.create_dialogue(tea(delay_ms=60_000), "restart")
        run = client.turns("restart", "Anyone there?")
        names = []
        started = time.monotonic()
        async for turn in run:
            names.append(turn.speaker.name)
            # The server dies mid-run (Ann still thinking) and comes back on the same
            # port and database; the client waits for it.
            server.process.kill()
            server.wait()
            launcher.start(store, PARLEY_ADDRESS=address)
        elapsed = time.monotonic() - started
        log = [m async for m in client.list_messages("restart")]

    assert names == ["Bob"]
    assert run.resumed == 1
    assert elapsed < 30  # not Ann's minute: the restarted server knows the run is gone
    (ann,) = run.failures
    assert (ann.speaker.name, ann.code, ann.participant_index) == ("Ann", "RUN_INTERRUPTED", 0)
    assert ann.speaker.icon == "🦊"
    assert run.completed == pb.SessionCompleted(turn_count=1, failure_count=1)
    notice = log[-1]
    assert notice.metadata["parley.run_end"] == "interrupted"
    assert (notice.turn, notice.type) == (1, pb.MESSAGE_TYPE_NOTIFICATION)


async def test_a_stream_lost_before_the_run_started_is_not_resumed(unused_port: int) -> None:
    async with AsyncParleyClient(f"127.0.0.1:{unused_port}") as client:
        with pytest.raises(ParleyRpcError) as raised:
            await anext(aiter(client.turns("anything", "hello")))
    assert raised.value.code().name == "UNAVAILABLE"


@pytest.fixture
def unused_port() -> int:
    return free_port()
