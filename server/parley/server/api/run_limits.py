"""How many runs may be in progress at once: on this server, and per client.

A client is its token (when authentication is on) or its peer address. Refusals are
RESOURCE_EXHAUSTED with a QuotaFailure naming the limit, before anything is stored.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

from parley.server.engine.errors import ResourceExhausted


def peer_host(peer: str) -> str:
    """`ipv4:127.0.0.1:5555` -> `ipv4:127.0.0.1` (a client's connections share a host)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return f"{kind}:{rest.partition(']')[0]}]"
    return f"{kind}:{rest.rpartition(':')[0]}" if kind in ("ipv4", "ipv6") else peer


class RunLimiter:
    def __init__(self, per_server: int, per_client: int) -> None:
        self._per_server = per_server
        self._per_client = per_client
        self._total = 0
        self._by_client: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def slot(self, client: str) -> Iterator[None]:
        """Holds one run slot for `client` while the block runs."""
        if self._total >= self._per_server:
            raise ResourceExhausted(
                f"the server runs {self._per_server} dialogues at once; try again later",
                subject="concurrent_runs_per_server",
                reason="TOO_MANY_RUNS",
            )
        if self._by_client[client] >= self._per_client:
            raise ResourceExhausted(
                f"a client may run {self._per_client} dialogues at once",
                subject="concurrent_runs_per_client",
                reason="TOO_MANY_RUNS_PER_CLIENT",
            )
        self._total += 1
        self._by_client[client] += 1
        try:
            yield
        finally:
            self._total -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
