"""Providers from OTEL_* variables: no-op unless an exporter is asked for; `parley` by name;
and the [telemetry] settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from parley.server.config import ConfigError, load_settings
from parley.server.engine.observer import NullObserver
from parley.server.telemetry import Providers, Telemetry, providers_from_env
from parley.server.telemetry.setup import excluded_services_from_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def built() -> Iterator[list[Providers]]:
    """Providers a test builds, shut down after it (batch processors run threads)."""
    made: list[Providers] = []
    yield made
    for providers in made:
        providers.shutdown()


def build(built: list[Providers]) -> Providers:
    providers = providers_from_env()
    built.append(providers)
    return providers


def test_nothing_configured_is_a_noop(built: list[Providers]) -> None:
    providers = build(built)
    assert isinstance(providers.tracer_provider, trace.NoOpTracerProvider)
    assert isinstance(providers.meter_provider, metrics.NoOpMeterProvider)


def test_an_otlp_endpoint_alone_turns_export_on(
    monkeypatch: pytest.MonkeyPatch, built: list[Providers]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    providers = build(built)
    assert isinstance(providers.tracer_provider, TracerProvider)
    assert isinstance(providers.meter_provider, MeterProvider)


def test_each_signal_is_configured_on_its_own(
    monkeypatch: pytest.MonkeyPatch, built: list[Providers]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    providers = build(built)
    assert isinstance(providers.tracer_provider, TracerProvider)
    assert isinstance(providers.meter_provider, metrics.NoOpMeterProvider)


def test_service_name_defaults_to_parley(
    monkeypatch: pytest.MonkeyPatch, built: list[Providers]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    providers = build(built)
    assert isinstance(providers.tracer_provider, TracerProvider)
    assert providers.tracer_provider.resource.attributes["service.name"] == "parley"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_SERVICE_NAME", "dialogues"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=dialogues,deployment.environment=test"),
    ],
)
def test_service_name_from_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, built: list[Providers], variable: str, value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv(variable, value)
    providers = build(built)
    assert isinstance(providers.tracer_provider, TracerProvider)
    assert providers.tracer_provider.resource.attributes["service.name"] == "dialogues"


def test_sdk_disabled_wins_over_exporters(
    monkeypatch: pytest.MonkeyPatch, built: list[Providers]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert isinstance(build(built).tracer_provider, trace.NoOpTracerProvider)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin-v0", "no OpenTelemetry exporter 'zipkin-v0'"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTLP protocol 'http/json'"),
    ],
)
def test_a_misconfigured_exporter_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        providers_from_env()


def test_more_services_can_be_left_untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert excluded_services_from_env() == ()
    monkeypatch.setenv(
        "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", " grpc.reflection.v1alpha.ServerReflection, "
    )
    assert excluded_services_from_env() == ("grpc.reflection.v1alpha.ServerReflection",)


# --- [telemetry] settings ------------------------------------------------------------


def test_capture_content_is_off_by_default() -> None:
    assert load_settings(None, {}).capture_content is False


def test_capture_content_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[telemetry]\ncapture_content = true\n", encoding="utf-8")
    assert load_settings(str(config), {}).capture_content is True
    assert load_settings(str(config), {"PARLEY_CAPTURE_CONTENT": "false"}).capture_content is False
    assert load_settings(None, {"PARLEY_CAPTURE_CONTENT": "1"}).capture_content is True


@pytest.mark.parametrize(
    "text",
    [
        "[telemetry]\ncapture_content = 'yes'\n",
        "[telemetry]\nexporter = 'otlp'\n",
    ],
)
def test_bad_telemetry_tables_are_config_errors(tmp_path: Path, text: str) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[telemetry\]"):
        load_settings(str(config), {})


def test_bad_capture_content_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PARLEY_CAPTURE_CONTENT"):
        load_settings(None, {"PARLEY_CAPTURE_CONTENT": "sometimes"})


def test_noop_providers_cost_nothing_per_rpc_or_run() -> None:
    telemetry = Telemetry(Providers.noop())
    assert telemetry.server_interceptors() == []
    assert isinstance(telemetry.observer, NullObserver)
