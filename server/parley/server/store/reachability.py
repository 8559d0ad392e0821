"""Whether a store's database answers, as the store last saw it, and its changes.

A store that runs inside the process (memory, SQLite) is always reachable. A store on a
database server (PostgreSQL) is not while that server cannot be reached: the server's
health reports it, so that a load balancer sends no new calls to a replica that could
only fail them. The store learns of it from a connection it keeps open anyway (the
PostgreSQL feed's): reading the state costs no query and no pooled connection, so a
replica under load never looks unreachable because its pool is busy.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


class Reachability:
    """Up or down, and a way to wait for the next change. Starts up."""

    def __init__(self, name: str = "the store") -> None:
        self._name = name
        self._up = True
        self._changed = asyncio.Event()

    @property
    def up(self) -> bool:
        return self._up

    def set(self, up: bool) -> None:
        """Records the state; wakes whoever waits for a change when it is one."""
        if up == self._up:
            return
        self._up = up
        if up:
            logger.info("%s is reachable again", self._name)
        else:
            logger.warning("%s cannot be reached", self._name)
        # A fresh event per change: every waiter wakes once, later ones wait anew.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self) -> bool:
        """Returns at the next change, with the new state."""
        await self._changed.wait()
        return self._up
