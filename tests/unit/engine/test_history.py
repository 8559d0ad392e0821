"""History export and import formats (SEMANTICS.md, History)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from parley.server.engine.errors import InvalidArgument
from parley.server.engine.history import HistoryFormat, export_history, parse_history
from parley.server.engine.model import (
    Attachment,
    Message,
    MessageType,
    Origin,
    Speaker,
    SpeakerKind,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LOG = [
    Message(1, 1, Speaker.system(), "Plan it", Origin.INCOMING, NOW),
    Message(
        2,
        1,
        Speaker(SpeakerKind.AGENT, "Ann", "Architect", "🏛"),
        "Plan:",
        Origin.AGENT_GENERATED,
        NOW,
    ),
    Message(
        3,
        2,
        Speaker(SpeakerKind.USER, "Kim", "PM"),
        "More?",
        Origin.INCOMING,
        NOW,
        type=MessageType.CUSTOM,
        custom_type="ask",
        attachments=(
            Attachment("a.txt", "text/plain", b"hi"),
            Attachment("u", "image/png", uri="s3://x"),
        ),
        metadata={"k": "v"},
    ),
    Message(4, 2, Speaker(SpeakerKind.AGENT, "Bob", "Tester"), "Yes", Origin.AGENT_GENERATED, NOW),
]


def test_llm_toolkit_format_is_the_pretty_array_load_history_reads() -> None:
    content = export_history(LOG, HistoryFormat.LLM_TOOLKIT_JSON)
    assert content.startswith("[\n  {\n")
    assert json.loads(content) == [
        {"speaker": {"type": "system"}, "content": "Plan it"},
        {
            "speaker": {"type": "agent", "name": "Ann", "role": "Architect", "icon": "🏛"},
            "content": "Plan:",
        },
        {"speaker": {"type": "user", "name": "Kim", "role": "PM"}, "content": "More?"},
        {"speaker": {"type": "agent", "name": "Bob", "role": "Tester"}, "content": "Yes"},
    ]


def test_llm_toolkit_import_opens_a_turn_per_system_or_user_message() -> None:
    drafts = parse_history(export_history(LOG, HistoryFormat.LLM_TOOLKIT_JSON))
    assert [(d.turn, d.speaker.name, d.origin) for d in drafts] == [
        (1, "System", Origin.INCOMING),
        (1, "Ann", Origin.AGENT_GENERATED),
        (2, "Kim", Origin.INCOMING),
        (2, "Bob", Origin.AGENT_GENERATED),
    ]
    assert drafts[1].speaker.icon == "🏛"


def test_a_file_starting_with_replies_puts_them_in_turn_one() -> None:
    drafts = parse_history(
        '[{"speaker": {"type": "agent", "name": "A", "role": ""}, "content": "x"}]'
    )
    assert drafts[0].turn == 1


def test_full_json_round_trips_every_field() -> None:
    drafts = parse_history(export_history(LOG, HistoryFormat.FULL_JSON))
    kim = drafts[2]
    assert (kim.turn, kim.type, kim.custom_type, dict(kim.metadata)) == (
        2,
        MessageType.CUSTOM,
        "ask",
        {"k": "v"},
    )
    assert kim.attachments == LOG[2].attachments
    assert [d.origin for d in drafts] == [m.origin for m in LOG]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("not json", "content"),
        ('{"speaker": {}}', "content"),
        ('[{"speaker": {"type": "robot"}, "content": "x"}]', "content[0].speaker.type"),
        ('[{"speaker": {"type": "user"}, "content": "x"}]', "content[0].speaker.name"),
        ('[{"speaker": {"type": "system"}, "content": 5}]', "content[0].content"),
        ("[3]", "content[0]"),
    ],
)
def test_bad_files_name_the_place(content: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_history(content)
    assert caught.value.violations[0].field == field
