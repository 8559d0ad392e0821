"""TLS and mutual TLS handshakes with certificates made by the test, and reloading."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from parley.server.agents.registry import AgentRegistry
from parley.server.api.server import ParleyServer
from parley.server.api.tls import is_loopback
from parley.server.config import ConfigError, Settings, TlsFiles
from parley.server.engine.engine import Engine
from parley.server.store.memory import MemoryStore

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def write_server_pair(ca: trustme.CA, directory: Path) -> tuple[str, str]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())
    return str(cert_path), str(key_path)


async def start(settings: Settings) -> tuple[ParleyServer, MemoryStore, int]:
    store = MemoryStore()
    await store.open()
    server = ParleyServer(Engine(store, AgentRegistry.with_builtin()), settings)
    return server, store, await server.start()


async def check(port: int, credentials: grpc.ChannelCredentials) -> int:
    options = (("grpc.ssl_target_name_override", "localhost"),)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return int(response.status)


@pytest.fixture
async def tls_server(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    cert, key = write_server_pair(ca, tmp_path)
    server, store, port = await start(
        Settings(address="127.0.0.1:0", tls=TlsFiles(cert=cert, key=key))
    )
    try:
        yield port, tmp_path
    finally:
        await server.stop(0)
        await store.close()


async def test_tls_handshake_with_the_servers_ca(
    tls_server: tuple[int, Path], ca: trustme.CA
) -> None:
    port, _ = tls_server
    trusted = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    assert await check(port, trusted) == SERVING


async def test_tls_refuses_clients_that_do_not_trust_the_server(
    tls_server: tuple[int, Path],
) -> None:
    port, _ = tls_server
    stranger = trustme.CA()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(port, grpc.ssl_channel_credentials(stranger.cert_pem.bytes()))
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_rotated_certificate_is_served_without_a_restart(
    tls_server: tuple[int, Path], ca: trustme.CA
) -> None:
    port, directory = tls_server
    successor = trustme.CA()
    cert, key = write_server_pair(successor, directory)
    for path in (cert, key):  # make sure the modification time moves
        stat = os.stat(path)
        os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    trusted = grpc.ssl_channel_credentials(successor.cert_pem.bytes())
    assert await check(port, trusted) == SERVING


async def test_mutual_tls_requires_a_client_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = write_server_pair(ca, tmp_path)
    client_ca = trustme.CA()
    (tmp_path / "clients.pem").write_bytes(client_ca.cert_pem.bytes())
    files = TlsFiles(cert=cert, key=key, client_ca=str(tmp_path / "clients.pem"))
    server, store, port = await start(Settings(address="127.0.0.1:0", tls=files))
    try:
        anonymous = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
        with pytest.raises(grpc.aio.AioRpcError):
            await check(port, anonymous)
        client = client_ca.issue_cert("client@example.com")
        identified = grpc.ssl_channel_credentials(
            root_certificates=ca.cert_pem.bytes(),
            private_key=client.private_key_pem.bytes(),
            certificate_chain=b"".join(blob.bytes() for blob in client.cert_chain_pems),
        )
        assert await check(port, identified) == SERVING
    finally:
        await server.stop(0)
        await store.close()


async def test_plaintext_is_refused_off_loopback_unless_allowed() -> None:
    engine = Engine(MemoryStore(), AgentRegistry.with_builtin())
    with pytest.raises(ConfigError, match="TLS"):
        ParleyServer(engine, Settings(address="0.0.0.0:0"))
    ParleyServer(engine, Settings(address="0.0.0.0:0", allow_insecure=True))


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.1.2.3:1", True),
        ("[::1]:1", True),
        ("localhost:1", True),
        ("0.0.0.0:1", False),
        ("[::]:1", False),
        ("10.0.0.1:1", False),
        ("example.com:1", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
