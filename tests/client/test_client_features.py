"""The clients' newer surface: watch, cancel, profiles, turns(), tokens, trace context,
queueing and TLS — against the fake service, on a real grpc.aio server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from parley.client import AsyncParleyClient, ParleyClient, ParleyRpcError, TlsConfig
from parley.client import builders as b
from parley.v1 import dialogue_pb2 as pb

from tests.client.conftest import FakeDialogueService, FakeServer


async def test_watch_replays_then_follows(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    service.watch_events = [
        pb.SessionEvent(dialogue=review.name, turn=2, completed=pb.SessionCompleted())
    ]
    async with AsyncParleyClient(server) as client:
        await client.run("review", "one")
        items = [item async for item in client.watch_dialogue("review", after_seq=1)]

    assert [i.WhichOneof("item") for i in items] == ["message", "message", "event"]
    assert [i.message.seq for i in items[:2]] == [2, 3]
    assert service.calls("WatchDialogue") == [
        pb.WatchDialogueRequest(dialogue="dialogues/review", after_seq=1)
    ]


def test_watch_blocking(server: str, review: pb.Dialogue) -> None:
    with ParleyClient(server) as client:
        client.run("review", "one")
        seqs = [item.message.seq for item in client.watch_dialogue("review")]
    assert seqs == [1, 2, 3]


async def test_cancel_run(server: str, review: pb.Dialogue, service: FakeDialogueService) -> None:
    async with AsyncParleyClient(server) as client:
        with pytest.raises(ParleyRpcError) as idle:
            await client.cancel_run("review")
        service.running.add("dialogues/review")
        cancelled = await client.cancel_run("review", "after_turn")

    assert idle.value.reason == "NO_RUN_IN_PROGRESS"
    assert cancelled == pb.CancelRunResponse(turn=0)
    assert service.calls("CancelRun")[-1] == pb.CancelRunRequest(
        dialogue="dialogues/review", mode=pb.CANCEL_MODE_AFTER_TURN
    )


def test_cancel_run_blocking_and_bad_mode(
    server: str, review: pb.Dialogue, service: FakeDialogueService
) -> None:
    service.running.add("dialogues/review")
    with ParleyClient(server) as client:
        assert client.cancel_run("review").turn == 0
        with pytest.raises(ValueError, match="unknown cancel mode 'later'"):
            client.cancel_run("review", "later")
    assert service.calls("CancelRun") == [
        pb.CancelRunRequest(dialogue="dialogues/review", mode=pb.CANCEL_MODE_IMMEDIATE)
    ]


async def test_list_agent_profiles(server: str) -> None:
    async with AsyncParleyClient(server) as client:
        profiles = await client.list_agent_profiles()
    with ParleyClient(server) as blocking:
        again = blocking.list_agent_profiles()
    assert [p.name for p in profiles] == [p.name for p in again] == ["claude", "echo"]
    assert not profiles[0].available


async def test_turns_yields_replies_and_keeps_the_rest(server: str, review: pb.Dialogue) -> None:
    async with AsyncParleyClient(server) as client:
        run = client.turns("review", "Ship it?")
        names = [turn.speaker.name async for turn in run]

    assert names == ["Ada", "Basil"]
    assert run.started is not None
    assert list(run.started.participants) == ["Ada", "Basil", "Cleo"]
    assert [f.speaker.name for f in run.failures] == ["Cleo"]
    assert run.completed == pb.SessionCompleted(turn_count=2, failure_count=1)
    assert [t.speaker.name for t in run.turns] == names
    assert run.resumed == 0


def test_turns_blocking(server: str, review: pb.Dialogue) -> None:
    with ParleyClient(server) as client:
        run = client.turns("review", "Ship it?", order="participant")
        names = [turn.speaker.name for turn in run]
    assert names == ["Ada", "Basil"]
    assert run.completed is not None
    assert run.completed.failure_count == 1


def test_queue_sets_if_busy(server: str, review: pb.Dialogue, service: FakeDialogueService) -> None:
    with ParleyClient(server) as client:
        client.run("review", "a", queue=True)
        client.run("review", "b", queue=2.5)
        client.run("review", "c")
    waiting, bounded, plain = service.calls("Run")
    assert isinstance(waiting, pb.RunSessionRequest)
    assert isinstance(bounded, pb.RunSessionRequest)
    assert isinstance(plain, pb.RunSessionRequest)
    assert waiting.if_busy == pb.IF_BUSY_QUEUE
    assert not waiting.HasField("queue_timeout")
    assert bounded.queue_timeout.ToMilliseconds() == 2500
    assert plain.if_busy == pb.IF_BUSY_UNSPECIFIED


@pytest.fixture
def tracer() -> Iterator[trace.Tracer]:
    provider = TracerProvider()
    yield provider.get_tracer("tests")
    provider.shutdown()


async def test_token_and_trace_context_travel_with_every_call(
    server: str, review: pb.Dialogue, service: FakeDialogueService, tracer: trace.Tracer
) -> None:
    async with AsyncParleyClient(server, token="s3cret") as client:
        await client.get_dialogue("review")  # no current span: no traceparent
        with tracer.start_as_current_span("caller") as span:
            await client.get_dialogue("review")
            _ = [event async for event in client.run_session("review", "hi")]
        trace_id = format(span.get_span_context().trace_id, "032x")

    outside, inside, stream = service.metadata
    assert {m["authorization"] for m in service.metadata} == {"Bearer s3cret"}
    assert "traceparent" not in outside
    for metadata in (inside, stream):
        version, traced, _parent, _flags = metadata["traceparent"].split("-")
        assert (version, traced) == ("00", trace_id)


def test_trace_propagation_can_be_turned_off_or_overridden(
    server: str, review: pb.Dialogue, service: FakeDialogueService, tracer: trace.Tracer
) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracer.start_as_current_span("caller"):
        with ParleyClient(server, propagate_trace=False) as quiet:
            quiet.get_dialogue("review")
        with ParleyClient(server) as explicit:
            explicit.get_dialogue("review", metadata=[("traceparent", mine)])
    assert "traceparent" not in service.metadata[0]
    assert service.metadata[1]["traceparent"] == mine


def test_tls_config_checks_its_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read .*missing\.pem"):
        TlsConfig.from_files(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="a client certificate needs its key"):
        TlsConfig(certificate_chain=b"cert")
    assert TlsConfig.from_files(None).root_certificates is None
    options = dict(TlsConfig(server_name="parley.internal").channel_options())
    assert options["grpc.ssl_target_name_override"] == "parley.internal"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    client = ca.issue_cert("client@example.com")
    root, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(root))
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return root, cert, key


async def test_mutual_tls(
    service: FakeDialogueService, review: pb.Dialogue, ca: trustme.CA, tmp_path: Path
) -> None:
    server_cert = ca.issue_cert("127.0.0.1")
    credentials = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem.bytes(), server_cert.cert_chain_pems[0].bytes())],
        root_certificates=ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    root, cert, key = _files(ca, tmp_path)
    with FakeServer(service, credentials) as running:
        tls = TlsConfig.from_files(root, cert, key)
        async with AsyncParleyClient(running.address, tls=tls) as client:
            assert (await client.get_dialogue("review")).name == review.name
        with ParleyClient(running.address, tls=tls) as blocking:
            assert blocking.get_dialogue("review").name == review.name
        # Without a client certificate the handshake fails: UNAVAILABLE, no details.
        with (
            ParleyClient(running.address, tls=TlsConfig.from_files(root)) as anonymous,
            pytest.raises(ParleyRpcError) as refused,
        ):
            anonymous.get_dialogue("review", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_builders_for_joining_context_and_attachments(tmp_path: Path) -> None:
    assert b.joining("fresh") == b.fresh()
    assert b.joining("FULL") == b.full()
    assert b.joining("recent") == pb.JoiningStrategy(recent=pb.JoiningStrategy.Recent(turns=5))
    assert b.joining("recent:2") == b.recent(2)
    assert b.joining("range:2-4") == b.turn_range(2, 4)
    assert not b.joining("range:3-").range.HasField("end")
    for bad in ("recent:x", "range:", "sideways", "fresh:1"):
        with pytest.raises(ValueError, match="unknown joining strategy"):
            b.joining(bad)
    with pytest.raises(ValueError, match="1 <= start <= end"):
        b.turn_range(4, 2)
    with pytest.raises(ValueError, match="at least 1"):
        b.recent(0)

    style = b.custom_talk_style(
        "Retro", description="Look back", guidelines=["Be kind"], expected_behaviors=["Listen"]
    )
    custom = b.context(talk_style=style, policy={"Ada": ["search"], "Bo": []})
    assert custom.custom_talk_style.guidelines == ["Be kind"]
    assert custom.WhichOneof("style") == "custom_talk_style"
    assert list(custom.policy["Ada"].capabilities) == ["search"]
    assert "Bo" in custom.policy
    assert b.context(talk_style="debate").talk_style == pb.TALK_STYLE_DEBATE

    picture = tmp_path / "diagram.png"
    picture.write_bytes(b"\x89PNG")
    assert b.attachment_file(picture) == pb.Attachment(
        name="diagram.png", mime_type="image/png", data=b"\x89PNG"
    )
    assert b.attachment("spec", "text/html", uri="https://example.com/spec").uri
    with pytest.raises(ValueError, match="exactly one of data and uri"):
        b.attachment("nothing")
