"""A finished run leaves no reference cycles behind: all it held (its dialogue, replies,
events, tasks) is freed by reference counting the moment it ends, not by the garbage
collector in pauses that grow with the number of runs between two collections."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from parley.server.engine.engine import Engine, RunInput
from parley.server.engine.model import Sequential

from tests.unit.engine.conftest import collect, echo, make


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the collector finds from here on, kept rather than freed."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _parley_objects(objects: list[object]) -> list[str]:
    return sorted(type(o).__qualname__ for o in objects if type(o).__module__.startswith("parley."))


@pytest.mark.parametrize("sequential", [False, True], ids=["broadcast", "sequential"])
async def test_a_finished_run_is_freed_without_the_collector(
    engine: Engine, saved_garbage: list[object], sequential: bool
) -> None:
    model = {"execution_model": Sequential()} if sequential else {}
    await make(engine, echo("A"), echo("B"), echo("C", fail="always"), **model)
    await collect(engine, "d", RunInput(text="warm up"))
    gc.collect()
    saved_garbage.clear()

    for text in ("one", "two"):
        await collect(engine, "d", RunInput(text=text))
    gc.collect()

    assert _parley_objects(saved_garbage) == []
