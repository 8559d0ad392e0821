"""Retention: `[store] max_age_days` expires dialogues untouched for that long, hourly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from parley.server.config import ConfigError, load_settings
from parley.server.engine.model import Dialogue
from parley.server.retention import Retention
from parley.server.store import MemoryStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WAIT_S = 30.0


class SweepCountingStore(MemoryStore):
    """A store whose sweeps can be waited for, the first one failing."""

    def __init__(self) -> None:
        super().__init__()
        self.cutoffs: list[datetime] = []
        self.swept = asyncio.Condition()

    async def expire_dialogues(self, older_than: datetime) -> int:
        async with self.swept:
            self.cutoffs.append(older_than)
            self.swept.notify_all()
        if len(self.cutoffs) == 1:
            raise ConnectionError("the database is restarting")
        return await super().expire_dialogues(older_than)

    async def wait_for_sweeps(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S), self.swept:
            await self.swept.wait_for(lambda: len(self.cutoffs) >= count)


def aged(dialogue_id: str, age: timedelta) -> Dialogue:
    return Dialogue(id=dialogue_id, create_time=NOW - age, update_time=NOW - age)


async def test_a_sweep_deletes_what_is_older_than_the_max_age() -> None:
    store = MemoryStore()
    for dialogue in (aged("old", timedelta(days=31)), aged("young", timedelta(days=29))):
        await store.create_dialogue(dialogue)
    retention = Retention(store, timedelta(days=30), clock=lambda: NOW)

    assert await retention.sweep() == 1

    assert [d.id for d in await store.list_dialogues(after_id="", limit=10)] == ["young"]
    assert await retention.sweep() == 0


async def test_sweeps_start_at_once_repeat_and_outlive_a_failure() -> None:
    store = SweepCountingStore()
    await store.create_dialogue(aged("old", timedelta(days=2)))
    retention = Retention(store, timedelta(days=1), interval=0.01, clock=lambda: NOW)

    retention.start()
    try:
        await store.wait_for_sweeps(3)
    finally:
        await retention.close()

    assert store.cutoffs[:3] == [NOW - timedelta(days=1)] * 3
    assert await store.list_dialogues(after_id="", limit=10) == []


async def test_closing_does_not_wait_for_the_next_sweep() -> None:
    store = SweepCountingStore()
    retention = Retention(store, timedelta(days=1))  # the next sweep is an hour away
    retention.start()
    await store.wait_for_sweeps(1)

    async with asyncio.timeout(WAIT_S):
        await retention.close()
    await retention.close()  # twice is harmless

    assert len(store.cutoffs) == 1


# --- the setting ----------------------------------------------------------------------


def test_max_age_is_off_unless_set() -> None:
    assert load_settings(None, {}).max_age_days is None


def test_max_age_comes_from_the_store_table_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("[store]\nmax_age_days = 30\n", encoding="utf-8")

    assert load_settings(str(config), {}).max_age_days == 30.0
    assert load_settings(str(config), {"PARLEY_MAX_AGE_DAYS": "0.5"}).max_age_days == 0.5
    # Empty in the environment: keep everything, whatever the file says.
    assert load_settings(str(config), {"PARLEY_MAX_AGE_DAYS": ""}).max_age_days is None


@pytest.mark.parametrize("days", ["0", "-1", "nan", "inf", "a week"])
def test_a_max_age_must_be_a_positive_number_of_days(days: str) -> None:
    with pytest.raises(ConfigError, match=r"(?i)max_age_days"):
        load_settings(None, {"PARLEY_MAX_AGE_DAYS": days})


def test_a_max_age_in_the_file_must_be_a_number(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text('[store]\nmax_age_days = "30"\n', encoding="utf-8")

    with pytest.raises(ConfigError, match="max_age_days"):
        load_settings(str(config), {})
