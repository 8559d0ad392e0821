"""The store codec: every model variant survives a trip through JSON text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from parley.server.engine.model import (
    Attachment,
    Broadcast,
    BroadcastOrder,
    Capability,
    CustomTalkStyle,
    DialogueContext,
    ExecutionModel,
    Fresh,
    Full,
    JoiningStrategy,
    Mentioned,
    MentionMatchStrategy,
    Moderated,
    Persona,
    Range,
    Recent,
    Sequential,
    Speaker,
    SpeakerKind,
    TalkStyle,
    VisualIdentity,
)
from parley.server.store import codec

T = TypeVar("T")


def through_text(value: T, encode: Callable[[T], Any], decode: Callable[[Any], T]) -> T:
    """Encodes, serialises to JSON text and back, decodes: what a store does."""
    return decode(json.loads(json.dumps(encode(value))))


EXECUTION_MODELS: list[ExecutionModel] = [
    Broadcast(),
    *(Broadcast(order) for order in BroadcastOrder),
    Broadcast(BroadcastOrder.EXPLICIT, ("Bob", "Alice")),
    Sequential(),
    Sequential(("Alice", "太郎")),
    *(Mentioned(strategy) for strategy in MentionMatchStrategy),
    Moderated("moderator"),
    Moderated("moderator", {"model": "small", "temperature": "0"}),
]


@pytest.mark.parametrize("model", EXECUTION_MODELS, ids=repr)
def test_execution_models_round_trip(model: ExecutionModel) -> None:
    decoded = through_text(model, codec.execution_model_to_json, codec.execution_model_from_json)

    assert decoded == model


CONTEXTS = [
    DialogueContext(),
    *(DialogueContext(talk_style=style) for style in TalkStyle),
    DialogueContext(talk_style=CustomTalkStyle("standup")),
    DialogueContext(
        talk_style=CustomTalkStyle("standup", "short", ("be brief", "no slides"), ("blockers",)),
        environment="a sprint review",
        additional_context=("one", "two"),
        policy={"Alice": ("search", "sum"), "Bob": ()},
    ),
]


@pytest.mark.parametrize("context", CONTEXTS, ids=repr)
def test_contexts_round_trip(context: DialogueContext) -> None:
    assert through_text(context, codec.context_to_json, codec.context_from_json) == context


JOINING_STRATEGIES: list[JoiningStrategy | None] = [
    None,
    Fresh(),
    Full(),
    Recent(),
    Recent(1),
    Range(2),
    Range(2, 4),
]


@pytest.mark.parametrize("strategy", JOINING_STRATEGIES, ids=repr)
def test_joining_strategies_round_trip(strategy: JoiningStrategy | None) -> None:
    decoded = through_text(
        strategy, codec.joining_strategy_to_json, codec.joining_strategy_from_json
    )

    assert decoded == strategy


@pytest.mark.parametrize(
    "persona",
    [
        Persona("Alice"),
        Persona(
            "太郎",
            role="reviewer",
            background="b",
            communication_style="c",
            capabilities=(Capability("search", "finds"), Capability("sum")),
            visual_identity=VisualIdentity("🦉", "wise", "#123456"),
        ),
    ],
    ids=repr,
)
def test_personas_round_trip(persona: Persona) -> None:
    assert through_text(persona, codec.persona_to_json, codec.persona_from_json) == persona


@pytest.mark.parametrize(
    "speaker",
    [
        Speaker.system(),
        Speaker(SpeakerKind.USER, "Carol", "lead"),
        Speaker(SpeakerKind.AGENT, "Alice", "planner", "🦉"),
    ],
    ids=repr,
)
def test_speakers_round_trip(speaker: Speaker) -> None:
    assert through_text(speaker, codec.speaker_to_json, codec.speaker_from_json) == speaker


ATTACHMENTS: tuple[Attachment, ...] = (
    Attachment("a.bin", "application/octet-stream", data=bytes(range(256))),
    Attachment("empty.txt", "text/plain", data=b""),
    Attachment("r.png", "image/png", uri="https://example.com/r.png"),
    Attachment("nothing", "text/plain"),
)


def test_attachments_round_trip() -> None:
    decoded = through_text(ATTACHMENTS, codec.attachments_to_json, codec.attachments_from_json)

    assert decoded == ATTACHMENTS


def test_attachment_bytes_are_base64_text() -> None:
    document = codec.attachment_to_json(Attachment("x", "text/plain", data=b"hi"))

    assert document == {"name": "x", "mime_type": "text/plain", "data": "aGk="}


def test_string_maps_round_trip() -> None:
    values = {"trace": "abc", "ünï": "cödé", "": ""}

    decoded = through_text(values, codec.string_map_to_json, codec.string_map_from_json)

    assert decoded == values


def test_documents_missing_optional_fields_get_model_defaults() -> None:
    assert codec.execution_model_from_json({"broadcast": {}}) == Broadcast()
    assert codec.execution_model_from_json({"mentioned": {}}) == Mentioned()
    assert codec.joining_strategy_from_json({"recent": {}}) == Recent()
    assert codec.context_from_json({}) == DialogueContext()
    assert codec.persona_from_json({"name": "A"}) == Persona("A")


@pytest.mark.parametrize(
    ("decode", "document"),
    [
        (codec.execution_model_from_json, {"chaos": {}}),
        (codec.execution_model_from_json, {"broadcast": {}, "sequential": {}}),
        (codec.joining_strategy_from_json, {"later": {}}),
        (codec.talk_style_from_json, {"mood": "calm"}),
    ],
)
def test_unknown_variants_are_refused(
    decode: Callable[[dict[str, Any]], object], document: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"unknown|exactly one key"):
        decode(document)
