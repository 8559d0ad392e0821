"""A streamed Turn leaves fields at their default unset (fewer upb field sets); it must
still encode as one built with protobuf's own helpers, sub-messages present."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from parley.server.api.mapping import SPEAKER_KINDS_PB, session_event_to_proto
from parley.server.engine.events import SessionEvent, TurnCompleted
from parley.server.engine.model import Speaker, SpeakerKind, Usage
from parley.v1 import dialogue_pb2 as pb

LATENCIES = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(seconds=3),
    timedelta(seconds=3, microseconds=7),
    timedelta(days=2, seconds=5),
    timedelta(microseconds=-5),
]
USAGES = [Usage(), Usage(3, 0), Usage(0, 4), Usage(5, 6)]
SPEAKERS = [
    Speaker(kind, "ada", role, icon)
    for kind in SpeakerKind
    for role, icon in [("", ""), ("engineer", ""), ("", "🛠"), ("engineer", "🛠")]
]
WHEN = datetime(2026, 11, 24, 19, 30, 1, 250_000, tzinfo=UTC)


def _by_helpers(envelope: SessionEvent, turn: TurnCompleted) -> pb.SessionEvent:
    expected = pb.SessionEvent(
        dialogue=f"dialogues/{envelope.dialogue_id}", turn=envelope.turn, sequence=envelope.sequence
    )
    expected.time.FromDatetime(envelope.time)
    streamed = expected.turn_completed
    speaker = turn.speaker
    streamed.speaker.CopyFrom(
        pb.Speaker(
            kind=SPEAKER_KINDS_PB[speaker.kind],
            name=speaker.name,
            role=speaker.role,
            icon=speaker.icon,
        )
    )
    streamed.content = turn.content
    streamed.turn = turn.turn
    streamed.message_seq = turn.message_seq
    streamed.participant_index = turn.participant_index
    streamed.latency.FromTimedelta(turn.latency)
    streamed.usage.CopyFrom(
        pb.Usage(input_tokens=turn.usage.input_tokens, output_tokens=turn.usage.output_tokens)
    )
    return expected


@pytest.mark.parametrize(
    ("latency", "usage", "speaker"),
    list(itertools.product(LATENCIES, USAGES, SPEAKERS)),
    ids=str,
)
def test_a_streamed_turn_encodes_as_protobufs_helpers_make_it(
    latency: timedelta, usage: Usage, speaker: Speaker
) -> None:
    turn = TurnCompleted(speaker, "hello", 3, 41, 0, latency, usage)
    envelope = SessionEvent("d-1", 3, 2, WHEN, turn)
    result = session_event_to_proto(envelope)
    expected = _by_helpers(envelope, turn)
    assert result == expected
    assert result.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
    streamed = result.turn_completed
    # Present even when all zero: clients reading them (Go's struct fields) get a value.
    for field in ("speaker", "latency", "usage"):
        assert streamed.HasField(field)
