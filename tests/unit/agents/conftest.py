"""Fixtures: fake OpenAI and Anthropic endpoints on loopback, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import pytest
from parley.server.agents.registry import Closeable

from .support import FakeAPI, fake_anthropic, fake_openai

C = TypeVar("C", bound=Closeable)


@pytest.fixture
async def openai_api() -> AsyncIterator[FakeAPI]:
    api = await fake_openai().start()
    yield api
    await api.close()


@pytest.fixture
async def anthropic_api() -> AsyncIterator[FakeAPI]:
    api = await fake_anthropic().start()
    yield api
    await api.close()


class Closing:
    """Registers backends (agents, registries) to close when the test ends."""

    def __init__(self) -> None:
        self.items: list[Closeable] = []

    def __call__(self, item: C) -> C:
        self.items.append(item)
        return item


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    registered = Closing()
    yield registered
    for item in reversed(registered.items):
        await item.aclose()
