"""Shared deadlines keep `asyncio.timeout`'s semantics."""

from __future__ import annotations

import asyncio

import pytest
from parley.server.agents.timeouts import SharedTimeouts

RESOLUTION = 0.01


async def wait_with(timeouts: SharedTimeouts, seconds: float, work: asyncio.Event) -> str:
    deadline = timeouts.start(seconds)
    try:
        await work.wait()
    except asyncio.CancelledError:
        if deadline.stop():
            return "timed out"
        raise
    finally:
        deadline.stop()
    return "done"


async def test_a_deadline_that_passes_cancels_the_work_and_says_it_was_its_own() -> None:
    timeouts = SharedTimeouts(RESOLUTION)
    results = await asyncio.gather(*(wait_with(timeouts, 0, asyncio.Event()) for _ in range(16)))
    assert results == ["timed out"] * 16
    assert asyncio.current_task() is not None
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_work_done_in_time_is_never_cancelled_afterwards() -> None:
    timeouts = SharedTimeouts(RESOLUTION)
    work = asyncio.Event()
    work.set()
    assert await wait_with(timeouts, 0, work) == "done"
    await asyncio.sleep(RESOLUTION * 3)  # past the slot's timer: nothing is left to fire
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_goes_on() -> None:
    timeouts = SharedTimeouts(RESOLUTION)
    started = asyncio.Event()

    async def waiting() -> str:
        started.set()
        return await wait_with(timeouts, 3600, asyncio.Event())

    task = asyncio.create_task(waiting())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_wins_over_an_expired_deadline() -> None:
    timeouts = SharedTimeouts(RESOLUTION)
    outcome: list[str] = []

    async def waiting() -> None:
        deadline = timeouts.start(0)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # Cancelled from elsewhere too, before the deadline's check.
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            outcome.append("ours" if deadline.stop() else "not only ours")
            raise

    task = asyncio.create_task(waiting())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["not only ours"]


async def test_deadlines_outside_a_task_are_refused() -> None:
    timeouts = SharedTimeouts(RESOLUTION)
    loop = asyncio.get_running_loop()
    refused: list[BaseException] = []

    done = asyncio.Event()

    def start() -> None:  # a plain callback: no task is running
        try:
            timeouts.start(1)
        except RuntimeError as error:
            refused.append(error)
        done.set()

    loop.call_soon(start)
    await done.wait()
    assert len(refused) == 1
