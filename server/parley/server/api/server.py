"""Assembles the grpc.aio server: Parley's services, health, reflection, interceptors."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from parley.server.api.auth import BearerTokenInterceptor
from parley.server.api.dialogues import DialogueService
from parley.server.config import Settings
from parley.server.engine.engine import Engine
from parley.v1 import dialogue_pb2, dialogue_pb2_grpc

logger = logging.getLogger(__name__)

DIALOGUE_SERVICE = dialogue_pb2.DESCRIPTOR.services_by_name["DialogueService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ParleyServer:
    """A configured, not yet started gRPC server; `start` binds and returns the port."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = []
        if settings.auth_tokens:
            interceptors.append(BearerTokenInterceptor(settings.auth_tokens))
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        self.grpc = grpc.aio.server(interceptors=interceptors, options=options)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        dialogue_pb2_grpc.add_DialogueServiceServicer_to_server(DialogueService(engine), self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        if settings.reflection:
            reflection.enable_server_reflection(
                (DIALOGUE_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.grpc
            )
        self.port = 0

    async def start(self) -> int:
        self.port = self.grpc.add_insecure_port(self.settings.address)
        if self.port == 0:
            raise OSError(f"could not listen on {self.settings.address}")
        await self.grpc.start()
        for service in ("", DIALOGUE_SERVICE):
            await self.health.set(service, SERVING)
        return self.port

    async def stop(self, grace: float) -> None:
        """Reports NOT_SERVING, refuses new RPCs, lets running ones finish within `grace`."""
        for service in ("", DIALOGUE_SERVICE):
            await self.health.set(service, NOT_SERVING)
        await self.grpc.stop(grace)
