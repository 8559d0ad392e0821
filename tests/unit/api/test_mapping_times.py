"""The streamed path sets Timestamps and Durations by hand (several times faster than
protobuf's helpers); they must agree with protobuf's own FromDatetime and FromTimedelta."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from parley.server.api.mapping import duration, set_duration, set_timestamp

EDGE_DURATIONS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(microseconds=-1),
    timedelta(seconds=1, microseconds=234_567),
    timedelta(seconds=-1, microseconds=-500_000),
    timedelta(days=-1),
    timedelta(days=3, seconds=7, microseconds=999_999),
    timedelta(days=-3, seconds=7, microseconds=1),
]


def _seeded_durations(count: int) -> list[timedelta]:
    rng = random.Random(20261124)
    return [timedelta(microseconds=rng.randint(-(10**13), 10**13)) for _ in range(count)]


@pytest.mark.parametrize("value", EDGE_DURATIONS + _seeded_durations(200), ids=str)
def test_a_duration_is_set_as_protobuf_sets_it(value: timedelta) -> None:
    expected = Duration()
    expected.FromTimedelta(value)
    result = Duration()
    set_duration(result, value)
    assert result == expected
    assert duration(value) == expected
    assert result.ToTimedelta() == value


@pytest.mark.parametrize(
    "value",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 24, 13, 6, 17, 123_456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
    ids=str,
)
def test_a_timestamp_is_set_as_protobuf_sets_it(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    result = Timestamp()
    set_timestamp(result, value)
    assert result == expected
