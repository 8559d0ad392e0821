"""Server settings: built-in defaults, then a TOML file, then PARLEY_* environment variables.

The TOML file (named by `--config` or PARLEY_CONFIG) may hold the tables `[server]`,
`[store]`, `[limits]`, `[auth]`, `[agents.NAME]` and `[telemetry]`. Environment variables
win over the file. Secrets never live here: agent profiles name the environment
variable that holds their key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from parley.server.engine.validation import Limits

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_STORE_URL = "sqlite:///./data/parley.db"
# Beyond this a max age means nothing (and would overflow a datetime).
MAX_AGE_DAYS_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for TLS; `client_ca` set means clients must present a certificate it
    signed (mutual TLS)."""

    cert: str
    key: str
    client_ca: str = ""


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    address: str = DEFAULT_ADDRESS
    store_url: str = DEFAULT_STORE_URL
    # Seconds a run's lease outlives a replica that died mid-run (see Engine.lease_ttl).
    lease_ttl: float = 30.0
    # Dialogues untouched for longer are deleted (see retention.py); None keeps them all.
    max_age_days: float | None = None
    log_level: str = "info"
    # "text" for people, "json" for log pipelines.
    log_format: str = "text"
    # Seconds in-flight RPCs get to finish after SIGTERM before they are cancelled.
    grace_period: float = 30.0
    reflection: bool = True
    # PEM files for TLS (and mutual TLS with a client CA); None serves plaintext, which
    # is refused on anything but loopback unless allow_insecure (TLS ends at a proxy).
    tls: TlsFiles | None = None
    allow_insecure: bool = False
    # HTTP/2 keepalive and connection lifetime, in seconds (0: gRPC's default).
    keepalive_time: float = 60.0
    keepalive_timeout: float = 20.0
    max_connection_idle: float = 0.0
    max_connection_age: float = 0.0
    max_connection_age_grace: float = 0.0
    # gRPC's own cap on one message, both directions.
    max_message_bytes: int = 16 * 1024 * 1024
    # Bearer tokens with full access; more, with limits, in auth_tokens_file.
    auth_tokens: tuple[str, ...] = ()
    # Lines of `TOKEN [prefix=PREFIX] [read-only]` (see api.auth).
    auth_tokens_file: str = ""
    # Whether health checks and reflection skip authentication.
    public_health: bool = True
    public_reflection: bool = True
    limits: Limits = field(default_factory=Limits)
    # [agents.NAME] tables as written; agents.config turns them into profiles.
    agents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # [telemetry] capture_content: prompts and replies on turn spans (they may hold
    # personal data, so off unless asked for). Export itself is configured by OTEL_*.
    capture_content: bool = False


def load_settings(config_path: str | None, env: Mapping[str, str]) -> Settings:
    path = config_path or env.get("PARLEY_CONFIG")
    settings = _from_toml(Path(path)) if path else Settings()
    return _from_env(settings, env)


def _from_toml(path: Path) -> Settings:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    known = {"server", "store", "limits", "auth", "agents", "telemetry", "tls"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown tables {unknown} (known: {sorted(known)})")
    server = _table(document, "server")
    settings = Settings(
        address=_get(server, "address", str, DEFAULT_ADDRESS, "server"),
        log_level=_get(server, "log_level", str, "info", "server"),
        log_format=_get(server, "log_format", str, "text", "server"),
        grace_period=float(_get(server, "grace_period", (int, float), 30.0, "server")),
        reflection=_get(server, "reflection", bool, True, "server"),
        tls=_tls(_table(document, "tls")),
        allow_insecure=_get(server, "allow_insecure", bool, False, "server"),
        keepalive_time=_seconds(server, "keepalive_time", 60.0),
        keepalive_timeout=_seconds(server, "keepalive_timeout", 20.0),
        max_connection_idle=_seconds(server, "max_connection_idle", 0.0),
        max_connection_age=_seconds(server, "max_connection_age", 0.0),
        max_connection_age_grace=_seconds(server, "max_connection_age_grace", 0.0),
        max_message_bytes=_get(server, "max_message_bytes", int, 16 * 1024 * 1024, "server"),
        store_url=_get(_table(document, "store"), "url", str, DEFAULT_STORE_URL, "store"),
        lease_ttl=float(_get(_table(document, "store"), "lease_ttl", (int, float), 30.0, "store")),
        max_age_days=_max_age_days(_table(document, "store")),
        auth_tokens=tuple(_get(_table(document, "auth"), "tokens", list, [], "auth")),
        auth_tokens_file=_get(_table(document, "auth"), "tokens_file", str, "", "auth"),
        public_health=_get(_table(document, "auth"), "public_health", bool, True, "auth"),
        public_reflection=_get(_table(document, "auth"), "public_reflection", bool, True, "auth"),
        limits=_limits(_table(document, "limits")),
        agents=_table(document, "agents"),
        capture_content=_telemetry(_table(document, "telemetry")),
    )
    for name, profile in settings.agents.items():
        if not isinstance(profile, dict):
            raise ConfigError(f"[agents.{name}] must be a table")
    return settings


def _from_env(settings: Settings, env: Mapping[str, str]) -> Settings:
    changes: dict[str, Any] = {}
    if "PARLEY_ADDRESS" in env:
        changes["address"] = env["PARLEY_ADDRESS"]
    if "PARLEY_STORE_URL" in env:
        changes["store_url"] = env["PARLEY_STORE_URL"]
    if "PARLEY_LEASE_TTL" in env:
        try:
            changes["lease_ttl"] = float(env["PARLEY_LEASE_TTL"])
        except ValueError:
            raise ConfigError("PARLEY_LEASE_TTL must be a number of seconds") from None
    if "PARLEY_MAX_AGE_DAYS" in env:
        days = env["PARLEY_MAX_AGE_DAYS"].strip()
        try:
            # Empty: keep everything, overriding a file that sets an age.
            changes["max_age_days"] = float(days) if days else None
        except ValueError:
            raise ConfigError("PARLEY_MAX_AGE_DAYS must be a number of days") from None
    if env.get("PARLEY_TLS_CERT_FILE") or env.get("PARLEY_TLS_KEY_FILE"):
        changes["tls"] = TlsFiles(
            env.get("PARLEY_TLS_CERT_FILE", ""),
            env.get("PARLEY_TLS_KEY_FILE", ""),
            env.get("PARLEY_TLS_CLIENT_CA_FILE", ""),
        )
    if "PARLEY_ALLOW_INSECURE" in env:
        changes["allow_insecure"] = env["PARLEY_ALLOW_INSECURE"].lower() in ("1", "true", "yes")
    if "PARLEY_LOG_LEVEL" in env:
        changes["log_level"] = env["PARLEY_LOG_LEVEL"]
    if "PARLEY_LOG_FORMAT" in env:
        changes["log_format"] = env["PARLEY_LOG_FORMAT"]
    if "PARLEY_GRACE_PERIOD" in env:
        try:
            changes["grace_period"] = float(env["PARLEY_GRACE_PERIOD"])
        except ValueError:
            raise ConfigError("PARLEY_GRACE_PERIOD must be a number of seconds") from None
    if env.get("PARLEY_AUTH_TOKENS_FILE"):
        changes["auth_tokens_file"] = env["PARLEY_AUTH_TOKENS_FILE"]
    if env.get("PARLEY_AUTH_TOKENS"):
        changes["auth_tokens"] = tuple(
            token.strip() for token in env["PARLEY_AUTH_TOKENS"].split(",") if token.strip()
        )
    if "PARLEY_CAPTURE_CONTENT" in env:
        changes["capture_content"] = _flag(env["PARLEY_CAPTURE_CONTENT"], "PARLEY_CAPTURE_CONTENT")
    settings = replace(settings, **changes)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(
            f"log level {settings.log_level!r} is not one of debug/info/warning/error"
        )
    if settings.log_format not in {"text", "json"}:
        raise ConfigError(f"log format {settings.log_format!r} is not 'text' or 'json'")
    if settings.lease_ttl < 0.3:
        raise ConfigError("lease_ttl must be at least 0.3 seconds")
    if settings.max_age_days is not None and not 0 < settings.max_age_days < MAX_AGE_DAYS_LIMIT:
        raise ConfigError(f"max_age_days must be between 0 and {MAX_AGE_DAYS_LIMIT} days")
    if settings.grace_period < 0:
        raise ConfigError("grace_period must not be negative")
    host, _, port = settings.address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"address {settings.address!r} must be HOST:PORT")


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = float(_get(table, key, (int, float), default, "server"))
    if value < 0:
        raise ConfigError(f"[server] {key} must not be negative")
    return value


def _tls(table: Mapping[str, Any]) -> TlsFiles | None:
    if not table:
        return None
    cert = _get(table, "cert_file", str, "", "tls")
    key = _get(table, "key_file", str, "", "tls")
    if not cert or not key:
        raise ConfigError("[tls] needs cert_file and key_file")
    return TlsFiles(cert, key, _get(table, "client_ca_file", str, "", "tls"))


def _table(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _get(table: Mapping[str, Any], key: str, kind: Any, default: Any, where: str) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"[{where}] {key} has the wrong type ({type(value).__name__})")
    return value


def _max_age_days(store: Mapping[str, Any]) -> float | None:
    if "max_age_days" not in store:
        return None
    return float(_get(store, "max_age_days", (int, float), None, "store"))


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _telemetry(table: Mapping[str, Any]) -> bool:
    """The capture_content flag; exporters, sampling and the rest come from OTEL_*."""
    unknown = sorted(set(table) - {"capture_content"})
    if unknown:
        raise ConfigError(
            f"[telemetry] unknown settings {unknown} (known: ['capture_content']; "
            "export is configured by the OTEL_* environment variables)"
        )
    return bool(_get(table, "capture_content", bool, False, "telemetry"))


def _limits(table: Mapping[str, Any]) -> Limits:
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[limits] unknown settings {unknown} (known: {sorted(known)})")
    values = {name: _get(table, name, int, 0, "limits") for name in table}
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"[limits] {name} must be positive")
    return Limits(**values)
