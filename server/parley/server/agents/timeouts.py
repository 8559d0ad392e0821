"""Timeouts for many agent calls at once, sharing timers.

`asyncio.timeout` arms a timer of its own per call: a heap entry made and cancelled
every time, several microseconds each, and a broadcast makes one call per participant
at the same moment with the same timeout. Here the calls whose deadlines fall in the
same slot of `resolution` seconds share one timer, so a turn of sixteen calls arms one.
A timeout fires up to `resolution` late: nothing next to agent timeouts of seconds.

The semantics are `asyncio.timeout`'s, without its `async with` (two more coroutines a
call): `start()` arms a deadline for the current task, which is cancelled when it
passes; `stop()` disarms it and says whether a cancellation that arrived was the
deadline's own (and not also one from elsewhere, which must go on)::

    deadline = timeouts.start(seconds)
    try:
        return await work()
    except asyncio.CancelledError:
        if deadline.stop():
            raise TimeoutError from None
        raise
    finally:
        deadline.stop()
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Final

DEFAULT_RESOLUTION_S: Final = 0.05


class SharedTimeouts:
    """Deadlines for the calls of one agent wrapper, sharing timers by slot."""

    def __init__(self, resolution: float = DEFAULT_RESOLUTION_S) -> None:
        self._resolution = resolution
        # Per event loop (a wrapper may outlive one, as in tests).
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = (
            weakref.WeakKeyDictionary()
        )

    def start(self, seconds: float) -> Deadline:
        """A deadline `seconds` from now for the current task."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be started inside a task")
        loop = task.get_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = _Slots(loop)
        slot = math.ceil((loop.time() + seconds) / self._resolution)
        deadline = Deadline(task, slots, slot)
        slots.add(deadline, slot * self._resolution)
        return deadline


class _Slots:
    """The armed deadlines of one loop, by slot, with one timer per slot."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timers: dict[int, tuple[asyncio.TimerHandle, set[Deadline]]] = {}

    def add(self, deadline: Deadline, when: float) -> None:
        entry = self._timers.get(deadline.slot)
        if entry is None:
            handle = self._loop.call_at(when, self._expire, deadline.slot)
            entry = self._timers[deadline.slot] = (handle, set())
        entry[1].add(deadline)

    def remove(self, deadline: Deadline) -> None:
        entry = self._timers.get(deadline.slot)
        if entry is None:
            return
        entry[1].discard(deadline)
        if not entry[1]:
            entry[0].cancel()
            del self._timers[deadline.slot]

    def _expire(self, slot: int) -> None:
        _, deadlines = self._timers.pop(slot)
        for deadline in deadlines:
            deadline.expire()


class Deadline:
    """One armed deadline; see the module docstring."""

    __slots__ = ("_cancelling", "_expired", "_ours", "_slots", "_stopped", "_task", "slot")

    def __init__(self, task: asyncio.Task[object], slots: _Slots, slot: int) -> None:
        self._task = task
        self._slots = slots
        self.slot = slot
        # Cancellations already requested: the deadline's is one more.
        self._cancelling = task.cancelling()
        self._expired = False
        self._stopped = False
        self._ours = False

    def expire(self) -> None:
        if not self._stopped and not self._expired:
            self._expired = True
            self._task.cancel()

    def stop(self) -> bool:
        """Disarms the deadline (again is fine); True when it had passed and cancelled
        the task, with no other cancellation requested since."""
        if not self._stopped:
            self._stopped = True
            self._slots.remove(self)
            self._ours = self._expired and self._task.uncancel() <= self._cancelling
        return self._ours
