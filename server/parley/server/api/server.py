"""Assembles the grpc.aio server: Parley's services, health, reflection, interceptors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from parley.server.api.auth import BearerTokenInterceptor
from parley.server.api.dialogues import DialogueService
from parley.server.api.errors import MalformedRequestInterceptor
from parley.server.api.tls import is_loopback, server_credentials
from parley.server.config import ConfigError, Settings
from parley.server.engine.engine import Engine
from parley.server.telemetry import Telemetry
from parley.v1 import dialogue_pb2, dialogue_pb2_grpc

logger = logging.getLogger(__name__)

DIALOGUE_SERVICE = dialogue_pb2.DESCRIPTOR.services_by_name["DialogueService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ParleyServer:
    """A configured, not yet started gRPC server; `start` binds and returns the port."""

    def __init__(
        self, engine: Engine, settings: Settings, *, telemetry: Telemetry | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        # Tracing first, so a rejected call is traced too and the client's trace continues.
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = (
            telemetry.server_interceptors() if telemetry is not None else []
        )
        if settings.auth_tokens or settings.auth_tokens_file:
            interceptors.append(BearerTokenInterceptor.from_settings(settings))
        if (
            settings.tls is None
            and not settings.allow_insecure
            and not is_loopback(settings.address)
        ):
            raise ConfigError(
                f"refusing to serve plaintext on {settings.address}: configure TLS"
                " ([tls] cert_file/key_file) or set allow_insecure when a proxy terminates TLS"
            )
        # Innermost, so the handlers auth and tracing wrap keep its tolerant parser.
        interceptors.append(MalformedRequestInterceptor())
        self.grpc = grpc.aio.server(interceptors=interceptors, options=_options(settings))
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        dialogue_pb2_grpc.add_DialogueServiceServicer_to_server(
            DialogueService(engine, max_response_bytes=settings.max_message_bytes), self.grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        if settings.reflection:
            reflection.enable_server_reflection(
                (DIALOGUE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
            )
        self.port = 0
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> int:
        tls = self.settings.tls
        if tls is None:
            self.port = self.grpc.add_insecure_port(self.settings.address)
        else:
            self.port = self.grpc.add_secure_port(self.settings.address, server_credentials(tls))
        if self.port == 0:
            raise OSError(f"could not listen on {self.settings.address}")
        await self.grpc.start()
        for service in ("", DIALOGUE_SERVICE):
            await self.health.set(service, SERVING)
        self._follower = asyncio.create_task(self._follow_store(), name="health follows the store")
        return self.port

    async def stop(self, grace: float) -> None:
        """Reports NOT_SERVING, refuses new RPCs, lets running ones finish within `grace`."""
        follower, self._follower = self._follower, None
        if follower is not None:  # draining is NOT_SERVING, whatever the store says
            follower.cancel()
            await asyncio.wait({follower})
        for service in ("", DIALOGUE_SERVICE):
            await self.health.set(service, NOT_SERVING)
        await self.grpc.stop(grace)

    async def _follow_store(self) -> None:
        """The dialogue service's health follows the store: NOT_SERVING while its
        database cannot be reached, where a new call could only fail, and SERVING once it
        can. The whole server's (`""`) stays SERVING: the process is alive, and a liveness
        probe must not restart it for a database outage it cannot fix."""
        reachability = self.engine.store.reachability
        up = reachability.up
        while True:
            await self.health.set(DIALOGUE_SERVICE, SERVING if up else NOT_SERVING)
            up = await reachability.changed()


def _options(settings: Settings) -> list[tuple[str, int]]:
    """Message size caps, keepalive and connection lifetime as gRPC channel options."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout * 1000)),
        # Clients may ping as often as we do, without being told off (GOAWAY).
        ("grpc.http2.min_ping_interval_without_data_ms", int(settings.keepalive_time * 500)),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    lifetimes = (
        ("grpc.max_connection_idle_ms", settings.max_connection_idle),
        ("grpc.max_connection_age_ms", settings.max_connection_age),
        ("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace),
    )
    options.extend((name, int(seconds * 1000)) for name, seconds in lifetimes if seconds > 0)
    return options
