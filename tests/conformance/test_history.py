"""History: ListMessages, ExportHistory (both formats), ImportHistory (both modes)."""

from __future__ import annotations

import functools
import json
from datetime import datetime

import grpc
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    Dialogue,
    Dialogues,
    echo,
    echo_reply,
    log_view,
    pretty,
    rpc_failure,
    said,
    seen_by,
    sequential,
    user,
)

LLM_TOOLKIT = pb.HISTORY_FORMAT_LLM_TOOLKIT_JSON
FULL = pb.HISTORY_FORMAT_FULL_JSON
AS_MESSAGES = pb.IMPORT_MODE_AS_MESSAGES
AS_SYSTEM_PROMPT = pb.IMPORT_MODE_AS_SYSTEM_PROMPT

# A file as llm-toolkit's save_history writes it: no turns, no seqs.
TOOLKIT_FILE = pretty(
    [
        {"speaker": {"type": "system"}, "content": "Topic: the launch"},
        {"speaker": {"type": "agent", "name": "A", "role": "PM", "icon": "🚀"}, "content": "a1"},
        {"speaker": {"type": "agent", "name": "B", "role": "Dev"}, "content": "b1"},
        {"speaker": {"type": "user", "name": "Ann", "role": "CEO"}, "content": "why?"},
        {"speaker": {"type": "agent", "name": "A", "role": "PM", "icon": "🚀"}, "content": "a2"},
    ]
)


def conversation(dialogues: Dialogues) -> Dialogue:
    """A two-turn dialogue with a user, the system, an agent with an icon and one without."""
    d = dialogues.create(
        echo("A", role="PM", icon="🚀", reply="a says"), echo("B", role="Dev"), model=sequential()
    )
    d.stream("Topic: the launch")
    d.stream("why?", speaker=user("Ann", "CEO"), messages=[said(user("Ann", "CEO"), "ok")])
    return d


def test_list_messages_pages_through_the_log_by_seq(dialogues: Dialogues) -> None:
    """Rule: History — "ListMessages pages through the log (by `seq`)": pages of a given
    size and `after_seq` cover the log in order without gaps or repeats."""
    d = dialogues.create(echo("A"), echo("B"))
    for n in range(4):
        d.stream(f"t{n}")
    whole = d.messages()
    assert [m.seq for m in whole] == list(range(1, 13))
    paged: list[pb.Message] = []
    token = ""
    while True:
        page = d.stub.ListMessages(
            pb.ListMessagesRequest(dialogue=d.name, page_size=5, page_token=token)
        )
        assert len(page.messages) <= 5
        paged.extend(page.messages)
        token = page.next_page_token
        if not token:
            break
    assert paged == whole
    after = d.stub.ListMessages(pb.ListMessagesRequest(dialogue=d.name, after_seq=10))
    assert [m.seq for m in after.messages] == [11, 12]


def test_llm_toolkit_export_has_the_exact_shape(dialogues: Dialogues) -> None:
    """Rule: History — "Export: the llm-toolkit form (a pretty JSON array of
    `{speaker:{type,name,role,icon?}, content}`)": system is `{"type": "system"}`, users
    `{type, name, role}`, agents add `icon` only when they have one."""
    d = conversation(dialogues)
    log = d.messages()
    b1 = log[2].content
    b2 = log[6].content
    assert d.export(LLM_TOOLKIT) == pretty(
        [
            {"speaker": {"type": "system"}, "content": "Topic: the launch"},
            {
                "speaker": {"type": "agent", "name": "A", "role": "PM", "icon": "🚀"},
                "content": "a says",
            },
            {"speaker": {"type": "agent", "name": "B", "role": "Dev"}, "content": b1},
            {"speaker": {"type": "user", "name": "Ann", "role": "CEO"}, "content": "ok"},
            {"speaker": {"type": "user", "name": "Ann", "role": "CEO"}, "content": "why?"},
            {
                "speaker": {"type": "agent", "name": "A", "role": "PM", "icon": "🚀"},
                "content": "a says",
            },
            {"speaker": {"type": "agent", "name": "B", "role": "Dev"}, "content": b2},
        ]
    )


def test_unspecified_export_format_is_llm_toolkit(dialogues: Dialogues) -> None:
    """Rule: History — the llm-toolkit form is the default export (format UNSPECIFIED)."""
    d = conversation(dialogues)
    assert d.export(pb.HISTORY_FORMAT_UNSPECIFIED) == d.export(LLM_TOOLKIT)


def test_full_export_keeps_every_field(dialogues: Dialogues) -> None:
    """Rule: History — "a full form that keeps seq, turn, type, origin, attachments,
    metadata and times"."""
    d = dialogues.create(echo("A", icon="🐢"))
    d.stream(
        "go",
        messages=[
            pb.InputMessage(
                speaker=user("Ann"),
                content="ballot",
                type=pb.MESSAGE_TYPE_CUSTOM,
                custom_type="vote",
                metadata={"k": "v"},
            )
        ],
    )
    entries = json.loads(d.export(FULL))
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [e["turn"] for e in entries] == [1, 1, 1]
    first, _, reply = entries
    assert set(first) >= {
        "seq",
        "turn",
        "speaker",
        "content",
        "type",
        "custom_type",
        "origin",
        "attachments",
        "metadata",
        "create_time",
    }
    assert first["speaker"] == {"type": "user", "name": "Ann", "role": ""}
    assert (first["type"], first["custom_type"], first["origin"]) == ("custom", "vote", "incoming")
    assert first["metadata"] == {"k": "v"}
    assert reply["speaker"] == {"type": "agent", "name": "A", "role": "", "icon": "🐢"}
    assert (reply["type"], reply["origin"]) == ("conversational", "agent_generated")
    stored = d.messages()
    for entry, message in zip(entries, stored, strict=True):
        assert datetime.fromisoformat(entry["create_time"]) == message.create_time.ToDatetime(
            tzinfo=datetime.fromisoformat(entry["create_time"]).tzinfo
        )


def test_import_as_messages_follows_the_turn_rule(dialogues: Dialogues) -> None:
    """Rule: History — import "as messages (... turn numbers follow the file: a system or
    user message opens a new turn and replies share it)"."""
    d = dialogues.create(echo("A"), echo("B"))
    imported = d.import_history(TOOLKIT_FILE, AS_MESSAGES)
    assert (imported.latest_turn, imported.message_count) == (2, 5)
    log = d.messages()
    assert log_view(log) == [
        (1, 1, "System", "Topic: the launch"),
        (2, 1, "A", "a1"),
        (3, 1, "B", "b1"),
        (4, 2, "Ann", "why?"),
        (5, 2, "A", "a2"),
    ]
    assert [m.origin for m in log] == [
        pb.MESSAGE_ORIGIN_INCOMING,
        pb.MESSAGE_ORIGIN_AGENT_GENERATED,
        pb.MESSAGE_ORIGIN_AGENT_GENERATED,
        pb.MESSAGE_ORIGIN_INCOMING,
        pb.MESSAGE_ORIGIN_AGENT_GENERATED,
    ]
    assert log[1].speaker == pb.Speaker(kind=pb.SPEAKER_KIND_AGENT, name="A", role="PM", icon="🚀")
    assert log[3].speaker == pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Ann", role="CEO")


def test_import_starting_with_a_reply_opens_turn_one(dialogues: Dialogues) -> None:
    """Rule: History — turn rule: replies share the turn opened before them; a file that
    starts with a reply puts it in turn 1."""
    d = dialogues.create(echo("A"))
    d.import_history(
        pretty(
            [
                {"speaker": {"type": "agent", "name": "X", "role": ""}, "content": "x"},
                {"speaker": {"type": "system"}, "content": "s"},
                {"speaker": {"type": "user", "name": "U", "role": ""}, "content": "u"},
            ]
        )
    )
    assert [m.turn for m in d.messages()] == [1, 2, 3]


def test_imported_messages_count_as_delivered_to_founders(dialogues: Dialogues) -> None:
    """Rule: History — "every imported message counts as delivered to the founding
    participants": the next run delivers only the new prompt, in turn latest + 1."""
    d = dialogues.create(echo("A"), echo("B"))
    d.import_history(TOOLKIT_FILE)
    events = d.stream("continue")
    assert events[0].turn == 3
    assert seen_by(events, "A") == ["[System]: continue"]
    assert seen_by(events, "B") == ["[System]: continue"]


def test_import_into_a_non_empty_log_is_refused(dialogues: Dialogues) -> None:
    """Rule: History — "Import into a new dialogue" (API: "into a dialogue with an empty
    log", FAILED_PRECONDITION with reason LOG_NOT_EMPTY otherwise), in both modes."""
    d = dialogues.create(echo("A"))
    d.stream("already talking")
    for mode in (AS_MESSAGES, AS_SYSTEM_PROMPT):
        failure = rpc_failure(functools.partial(d.import_history, TOOLKIT_FILE, mode))
        assert failure.code == grpc.StatusCode.FAILED_PRECONDITION
        assert failure.reason == "LOG_NOT_EMPTY"
    assert d.get().message_count == 2


def test_import_of_invalid_content_is_invalid_argument(dialogues: Dialogues) -> None:
    """Rule: History — only llm-toolkit or full JSON histories import; anything else is a
    bad request and stores nothing."""
    d = dialogues.create(echo("A"))
    for content in (
        "not json",
        '{"speaker": 1}',
        '[{"speaker": {"type": "robot"}, "content": ""}]',
    ):
        failure = rpc_failure(functools.partial(d.import_history, content))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert d.get().message_count == 0


def test_import_as_system_prompt_keeps_the_log_empty(dialogues: Dialogues) -> None:
    """Rule: History — import "as a system-prompt preface (rendered into the context, not
    stored in the log)": the context gains the preface, the log stays empty."""
    d = dialogues.create(echo("A"), context=pb.DialogueContext(additional_context=["keep me"]))
    imported = d.import_history(TOOLKIT_FILE, AS_SYSTEM_PROMPT)
    assert (imported.message_count, imported.latest_turn) == (0, 0)
    assert d.messages() == []
    notes = list(d.get().context.additional_context)
    assert notes[0] == "keep me"
    assert len(notes) == 2
    for text in ("Topic: the launch", "a1", "b1", "why?", "a2"):
        assert text in notes[1]
    events = d.stream("start")
    assert events[0].turn == 1
    assert seen_by(events, "A") == ["[System]: start"]


def test_llm_toolkit_round_trip(dialogues: Dialogues) -> None:
    """Rule: History — the llm-toolkit export is "readable by llm-toolkit's `load_history`"
    and by ImportHistory: export → import → export gives the same document."""
    source = conversation(dialogues)
    exported = source.export(LLM_TOOLKIT)
    copy = dialogues.create(echo("A"), echo("B"))
    copy.import_history(exported)
    assert copy.export(LLM_TOOLKIT) == exported
    assert [m.speaker for m in copy.messages()] == [m.speaker for m in source.messages()]
    # The llm-toolkit form carries no turns: the turn rule renumbers them (each of Ann's
    # two messages of turn 2 opens a turn of its own).
    assert [m.turn for m in source.messages()] == [1, 1, 1, 2, 2, 2, 2]
    assert [m.turn for m in copy.messages()] == [1, 1, 1, 2, 3, 3, 3]


def test_full_json_round_trip(dialogues: Dialogues) -> None:
    """Rule: History — the full form "keeps seq, turn, type, origin, attachments, metadata":
    importing a FULL_JSON export reproduces every message of the log."""
    source = dialogues.create(echo("A", icon="🐢"))
    source.stream(
        "go",
        messages=[
            pb.InputMessage(
                speaker=user("Ann"),
                content="vote",
                type=pb.MESSAGE_TYPE_CUSTOM,
                custom_type="ballot",
                metadata={"k": "v"},
                attachments=[pb.Attachment(name="a", mime_type="text/plain", data=b"\x00\x01")],
            ),
            said(user("Ann"), "fyi", type=pb.MESSAGE_TYPE_CONTEXT_INFO),
        ],
    )
    source.stream("again")
    copy = dialogues.create(echo("A", icon="🐢"))
    copy.import_history(source.export(FULL))

    # Every field survives, times included.
    assert copy.messages() == source.messages()
    assert copy.get().latest_turn == 2
    events = copy.stream("next")
    assert events[0].turn == 3
    assert events[-1].completed.turn_count == 1
    assert seen_by(events, "A") == ["[System]: next"]
    assert echo_reply("A", "[System]: next") == events[1].turn_completed.content


def test_export_of_an_empty_log(dialogues: Dialogues) -> None:
    """Rule: History — both export forms are JSON arrays: an empty log is `[]`."""
    d = dialogues.create(echo("A"))
    assert json.loads(d.export(LLM_TOOLKIT)) == []
    assert json.loads(d.export(FULL)) == []
