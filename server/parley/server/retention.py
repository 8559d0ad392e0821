"""Retention: with `[store] max_age_days` set, dialogues left untouched longer are deleted.

A dialogue is touched by any change and by every message appended, so an active
dialogue never expires. Every replica sweeps, at start-up and then hourly; the stores
make concurrent sweeps safe, so no replica needs to be chosen for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from parley.server.engine.model import utcnow
from parley.server.store.protocol import Store

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_S: Final = 3600.0


class Retention:
    """Expires dialogues older than `max_age` every `interval` seconds once started."""

    def __init__(
        self,
        store: Store,
        max_age: timedelta,
        *,
        interval: float = SWEEP_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Deletes the dialogues untouched for longer than `max_age`; how many went."""
        removed = await self._store.expire_dialogues(self._clock() - self._max_age)
        if removed:
            logger.info("retention: deleted %d dialogues older than %s", removed, self._max_age)
        return removed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() collects the task's cancellation without swallowing ours.
            await asyncio.wait({task})

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                # The store may be down for a moment; the next sweep catches up.
                logger.exception("retention: the sweep failed; trying again in %gs", self._interval)
            await asyncio.sleep(self._interval)
