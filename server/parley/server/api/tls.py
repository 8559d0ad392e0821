"""TLS and mutual TLS from PEM files, reloaded when the files change.

gRPC asks for the certificate configuration on every new handshake; we hand it a new
one only when a file's modification time moved, so rotating a certificate (cert-manager,
a renewed Let's Encrypt pair) needs no restart and open connections keep theirs.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

import grpc
from parley.server.config import TlsFiles

logger = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT listens on loopback only (where plaintext is acceptable)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReloadingCertificates:
    """Reads the PEM files, and again whenever one of them changes."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._stamp = self._mtimes()
        self.initial = self._load()

    def _paths(self) -> list[str]:
        return [p for p in (self._files.cert, self._files.key, self._files.client_ca) if p]

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(os.stat(path).st_mtime for path in self._paths())

    def _load(self) -> grpc.ServerCertificateConfiguration:
        pair = (Path(self._files.key).read_bytes(), Path(self._files.cert).read_bytes())
        client_ca = Path(self._files.client_ca).read_bytes() if self._files.client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC per handshake: a new configuration, or None to keep the old."""
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return None
            config = self._load()
        except OSError:
            # A rotation caught half-way (a file briefly missing): keep serving the old
            # pair and try again on the next handshake.
            logger.warning("TLS files changed but could not be read; keeping the old ones")
            return None
        self._stamp = stamp
        logger.info("reloaded the TLS certificate")
        return config


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    certificates = ReloadingCertificates(files)
    return grpc.dynamic_ssl_server_credentials(
        certificates.initial,
        # gRPC accepts None ("keep the current configuration"); the stubs do not say so.
        certificates.fetch,  # type: ignore[arg-type]
        require_client_authentication=bool(files.client_ca),
    )
