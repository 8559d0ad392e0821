"""OpenTelemetry for Parley: RPC, run and turn spans, GenAI metrics, OTLP export.

`Telemetry` binds Parley's instrumentation to the providers it is given, so tests pass
SDK providers with in-memory exporters and nothing here touches a global. The entry
point builds providers from the `OTEL_*` variables and installs them (`setup`):

    providers = providers_from_env()
    install(providers)
    telemetry = Telemetry(providers, capture_content=settings.capture_content)
    engine = Engine(store, agents, observer=telemetry.observer)
    server = ParleyServer(engine, settings, telemetry=telemetry)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from parley.server.engine.observer import NullObserver, RunObserver
from parley.server.telemetry.rpc import HEALTH_SERVICE, server_interceptors
from parley.server.telemetry.runs import RunTelemetry
from parley.server.telemetry.setup import (
    Providers,
    excluded_services_from_env,
    install,
    parley_version,
    providers_from_env,
)

if TYPE_CHECKING:
    from parley.server.telemetry.rpc import Interceptor

__all__ = [
    "HEALTH_SERVICE",
    "Providers",
    "RunTelemetry",
    "Telemetry",
    "excluded_services_from_env",
    "install",
    "providers_from_env",
]


class Telemetry:
    """Parley's instrumentation on one pair of providers.

    `capture_content` adds prompts and replies to turn spans (`gen_ai.input.messages`,
    `gen_ai.output.messages`); off by default, as they may hold personal data.
    `excluded_services` are gRPC services left untraced besides health.
    """

    def __init__(
        self,
        providers: Providers,
        *,
        capture_content: bool = False,
        excluded_services: Collection[str] = (),
    ) -> None:
        self.providers = providers
        self.excluded_services = tuple(excluded_services)
        self.observer: RunObserver = NullObserver()
        if not providers.noop_only:
            self.observer = RunTelemetry(
                providers.tracer_provider,
                providers.meter_provider,
                capture_content=capture_content,
                version=parley_version(),
            )

    def server_interceptors(self) -> list[Interceptor]:
        """Interceptors to put first on the gRPC server: spans and RPC metrics.

        None when nothing is exported: an untraced server pays nothing per RPC.
        """
        if self.providers.noop_only:
            return []
        return server_interceptors(
            self.providers.tracer_provider, self.providers.meter_provider, self.excluded_services
        )
