"""Providers from the standard `OTEL_*` environment variables; the one place for globals.

Only the server entry point calls `install`. Nothing configured means no-op providers,
never an error: a server without a collector runs exactly as before, at no cost.

- `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`: `otlp`, `console`, `none`, or any
  installed exporter entry point. Unset, `otlp` is chosen when an OTLP endpoint
  (`OTEL_EXPORTER_OTLP_ENDPOINT` or the per-signal one) is set, else nothing.
- `OTEL_EXPORTER_OTLP_PROTOCOL` (and per signal): `grpc` (default) or `http/protobuf`.
- Everything else is read by the SDK and the exporters themselves: endpoints, headers,
  timeouts, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
  `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME` (default `parley`), `OTEL_SDK_DISABLED`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from parley.server.config import ConfigError

DEFAULT_SERVICE_NAME: Final = "parley"
SHUTDOWN_TIMEOUT_S: Final = 5.0
# The exporter entry point behind `otlp`, per OTLP protocol.
_OTLP_BY_PROTOCOL: Final = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}


@dataclass(frozen=True, slots=True)
class Providers:
    """What telemetry reports through; SDK providers when an exporter is configured."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider

    @classmethod
    def noop(cls) -> Providers:
        return cls(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())

    @property
    def noop_only(self) -> bool:
        """True when nothing would ever be exported: instrumenting would be pure cost."""
        return isinstance(self.tracer_provider, trace.NoOpTracerProvider) and isinstance(
            self.meter_provider, metrics.NoOpMeterProvider
        )

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Flushes what is still buffered, for at most `timeout` seconds; call once.

        The exporters retry an unreachable collector for up to OTEL_EXPORTER_OTLP_TIMEOUT
        per signal; a collector that is down must not hold a stopping server that long,
        so both signals flush at once on daemon threads and what is late is dropped.
        """
        flushes = [
            threading.Thread(target=provider.shutdown, name="telemetry flush", daemon=True)
            for provider in (self.tracer_provider, self.meter_provider)
            if isinstance(provider, TracerProvider | MeterProvider)
        ]
        deadline = time.monotonic() + timeout
        for flush in flushes:
            flush.start()
        for flush in flushes:
            flush.join(max(deadline - time.monotonic(), 0.0))


def parley_version() -> str:
    try:
        return metadata.version("parley")
    except metadata.PackageNotFoundError:
        return ""


def resource() -> Resource:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), named `parley`."""
    detected = Resource.create({SERVICE_VERSION: parley_version()})
    name = str(detected.attributes.get(SERVICE_NAME, ""))
    if name.startswith("unknown_service"):  # the SDK's placeholder: nobody named it
        detected = detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return detected


def providers_from_env() -> Providers:
    """Builds providers as the `OTEL_*` environment variables ask (never sets globals)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Providers.noop()
    span_exporters = [
        _load(name, "opentelemetry_traces_exporter", SpanExporter)
        for name in _exporter_names(env, "TRACES")
    ]
    metric_exporters = [
        _load(name, "opentelemetry_metrics_exporter", MetricExporter)
        for name in _exporter_names(env, "METRICS")
    ]
    if not span_exporters and not metric_exporters:
        return Providers.noop()
    described = resource()
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    if span_exporters:
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        # shutdown_on_exit off: `Providers.shutdown` bounds the final flush instead.
        sdk_tracer_provider = TracerProvider(resource=described, shutdown_on_exit=False)
        for span_exporter in span_exporters:
            sdk_tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        tracer_provider = sdk_tracer_provider
    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    if metric_exporters:
        meter_provider = MeterProvider(
            resource=described,
            metric_readers=[PeriodicExportingMetricReader(e) for e in metric_exporters],
            shutdown_on_exit=False,
        )
    return Providers(tracer_provider, meter_provider)


def install(providers: Providers) -> None:
    """Makes `providers` the process-wide ones, for libraries that use the globals."""
    if isinstance(providers.tracer_provider, TracerProvider):
        trace.set_tracer_provider(providers.tracer_provider)
    if isinstance(providers.meter_provider, MeterProvider):
        metrics.set_meter_provider(providers.meter_provider)


def excluded_services_from_env() -> tuple[str, ...]:
    """OTEL_PYTHON_GRPC_EXCLUDED_SERVICES: more services to leave untraced."""
    listed = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "")
    return tuple(name.strip() for name in listed.split(",") if name.strip())


def _exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    configured = env.get(f"OTEL_{signal}_EXPORTER")
    if configured is None:
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        configured = "otlp" if endpoint else ""
    names = [name.strip().lower() for name in configured.split(",")]
    names = [name for name in names if name and name != "none"]
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if "otlp" in names and protocol not in _OTLP_BY_PROTOCOL:
        raise ConfigError(
            f"OTLP protocol {protocol!r} is not supported (use one of {sorted(_OTLP_BY_PROTOCOL)})"
        )
    return [_OTLP_BY_PROTOCOL[protocol] if name == "otlp" else name for name in names]


def _load(name: str, group: str, kind: type[Any]) -> Any:
    """An exporter from its entry point; it reads its own OTEL_EXPORTER_* settings."""
    found = metadata.entry_points(group=group, name=name)
    if not found:
        known = sorted(entry.name for entry in metadata.entry_points(group=group))
        raise ConfigError(f"no OpenTelemetry exporter {name!r} is installed (known: {known})")
    exporter = next(iter(found)).load()()
    if not isinstance(exporter, kind):
        raise ConfigError(f"OpenTelemetry exporter {name!r} is not a {kind.__name__}")
    return exporter
