"""`Reachability`: a store's up-or-down state and the wait for its next change."""

from __future__ import annotations

import asyncio

from parley.server.store import MemoryStore, SQLiteStore
from parley.server.store.reachability import Reachability


async def test_it_starts_up_and_wakes_every_waiter_with_the_new_state() -> None:
    reachability = Reachability()
    assert reachability.up
    first = asyncio.create_task(reachability.changed())
    second = asyncio.create_task(reachability.changed())
    await asyncio.sleep(0)  # both are waiting

    reachability.set(False)

    assert await first is False
    assert await second is False
    assert not reachability.up


async def test_setting_the_same_state_is_no_change() -> None:
    reachability = Reachability()
    waiter = asyncio.create_task(reachability.changed())
    await asyncio.sleep(0)

    reachability.set(True)
    await asyncio.sleep(0)
    assert not waiter.done()

    reachability.set(False)
    assert await waiter is False


async def test_a_waiter_after_a_change_waits_for_the_next_one() -> None:
    reachability = Reachability()
    reachability.set(False)
    waiter = asyncio.create_task(reachability.changed())
    await asyncio.sleep(0)
    assert not waiter.done()  # the earlier change is not replayed

    reachability.set(True)
    assert await waiter is True


def test_stores_inside_the_process_are_reachable() -> None:
    assert MemoryStore().reachability.up
    assert SQLiteStore(":memory:").reachability.up
