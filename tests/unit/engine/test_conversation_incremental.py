"""An incrementally extended conversation equals the one rebuilt from the whole log."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from parley.server.engine.conversation import (
    Conversation,
    ConversationCache,
    private_conversation,
)
from parley.server.engine.model import (
    Fresh,
    Full,
    JoiningStrategy,
    Message,
    Origin,
    Range,
    Recent,
    Speaker,
    SpeakerKind,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("Ann", "Bob", "System")
joinings = st.one_of(
    st.none(),
    st.just(Fresh()),
    st.just(Full()),
    st.builds(Recent, st.integers(0, 3)),
    st.builds(Range, st.integers(0, 3), st.one_of(st.none(), st.integers(0, 4))),
)
entries = st.lists(
    st.tuples(st.integers(1, 5), st.sampled_from(NAMES), st.booleans(), st.text(max_size=3)),
    max_size=30,
)


def engine_log(rows: list[tuple[int, str, bool, str]]) -> list[Message]:
    """A log as the engine writes it: a reply records the head before it, never less
    than the same participant's previous record."""
    log: list[Message] = []
    last: dict[str, int] = {}
    for seq, (turn, name, replied, content) in enumerate(rows, start=1):
        kind = SpeakerKind.SYSTEM if name == "System" else SpeakerKind.AGENT
        through = None
        if replied and kind is SpeakerKind.AGENT:
            through = last[name] = max(last.get(name, 0), seq - 1)
        origin = Origin.AGENT_GENERATED if through is not None else Origin.INCOMING
        log.append(
            Message(seq, turn, Speaker(kind, name), content, origin, NOW, delivered_through=through)
        )
    return log


@settings(max_examples=500)
@given(entries, joinings, st.lists(st.integers(0, 30), max_size=4))
def test_extending_piece_by_piece_matches_a_rebuild(
    rows: list[tuple[int, str, bool, str]], joining: JoiningStrategy | None, cuts: list[int]
) -> None:
    log = engine_log(rows)
    conversation = Conversation("Ann", joining)
    bounds = sorted({0, len(log), *(c for c in cuts if c <= len(log))})
    for start, stop in itertools.pairwise(bounds):
        conversation.extend(log[start:stop])
        assert not conversation.stale
        assert conversation.messages == private_conversation(log[:stop], "Ann", joining)


def test_a_delivery_record_going_backwards_makes_it_stale() -> None:
    ann = Speaker(SpeakerKind.AGENT, "Ann")
    log = [
        Message(1, 1, Speaker.system(), "one", Origin.INCOMING, NOW),
        Message(2, 1, ann, "a", Origin.AGENT_GENERATED, NOW, delivered_through=1),
        Message(3, 2, ann, "b", Origin.AGENT_GENERATED, NOW, delivered_through=0),
    ]
    conversation = Conversation("Ann", None)
    conversation.extend(log)
    assert conversation.stale


def test_the_cache_keeps_within_its_budget_least_recently_used_first() -> None:
    cache = ConversationCache(max_chars=10)
    first, second = Conversation("Ann", None), Conversation("Bob", None)
    first.size = second.size = 6
    cache.put(("d", NOW, "Ann", None), first)
    cache.put(("d", NOW, "Bob", None), second)
    assert cache.take(("d", NOW, "Ann", None)) is None
    assert cache.take(("d", NOW, "Bob", None)) is second
