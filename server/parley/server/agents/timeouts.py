"""Timeouts for many agent calls at once, sharing timers.

`asyncio.timeout` arms a timer of its own per call: a heap entry made and cancelled
every time. Here deadlines are rounded up to slots, and the calls whose deadlines fall
in the same slot share one timer, which stays armed until its time even when every call
in it finished early (a timer wheel's trade: no heap work per call, at most one timer per
slot). A slot is 1/1000 of the timeout, and at least `resolution` (50 ms): a deadline
fires that much late at most, nothing next to agent timeouts of seconds, and the timers
alive at once stay under a thousand per timeout value.

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
SLOTS_PER_TIMEOUT: Final = 1000

# (slot width in seconds, slot number): the slot ends at width * number.
Slot = tuple[float, int]


class SharedTimeouts:
    """Deadlines for the calls of one agent wrapper, sharing timers by slot."""

    def __init__(self, resolution: float = DEFAULT_RESOLUTION_S) -> None:
        self._resolution = resolution
        # Per event loop (a wrapper may outlive one, as in tests); the last one used is
        # kept at hand (so a closed loop stays referenced until another is used), as is
        # the slot width of the last timeout: both rarely change.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = (
            weakref.WeakKeyDictionary()
        )
        self._last: _Slots | None = None
        self._width: tuple[float, float] | None = None  # (timeout, its slot width)

    def start(self, seconds: float) -> Deadline:
        """A deadline `seconds` from now for the current task."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be started inside a task")
        loop = task.get_loop()
        slots = self._last
        if slots is None or slots.loop is not loop:
            slots = self._slots.get(loop)
            if slots is None:
                slots = self._slots[loop] = _Slots(loop)
            self._last = slots
        if self._width is not None and self._width[0] == seconds:
            width = self._width[1]
        else:
            width = max(self._resolution, seconds / SLOTS_PER_TIMEOUT)
            self._width = (seconds, width)
        deadline = Deadline(task, slots, (width, math.ceil((loop.time() + seconds) / width)))
        slots.add(deadline)
        return deadline


class _Slots:
    """The armed deadlines of one loop, by slot, with one timer per slot."""

    __slots__ = ("__weakref__", "_deadlines", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._deadlines: dict[Slot, set[Deadline]] = {}

    def add(self, deadline: Deadline) -> None:
        deadlines = self._deadlines.get(deadline.slot)
        if deadlines is None:
            width, number = deadline.slot
            self.loop.call_at(width * number, self._expire, deadline.slot)
            deadlines = self._deadlines[deadline.slot] = set()
        deadlines.add(deadline)

    def remove(self, deadline: Deadline) -> None:
        # The slot's timer stays: the next calls of this moment reuse it.
        deadlines = self._deadlines.get(deadline.slot)
        if deadlines is not None:
            deadlines.discard(deadline)

    def _expire(self, slot: Slot) -> None:
        for deadline in self._deadlines.pop(slot):
            deadline.expire()


class Deadline:
    """One armed deadline; see the module docstring."""

    __slots__ = ("_cancelling", "_expired", "_ours", "_slots", "_stopped", "_task", "slot")

    def __init__(self, task: asyncio.Task[object], slots: _Slots, slot: Slot) -> None:
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
