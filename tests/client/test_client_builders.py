"""Builders and dialogue files: the protos people write by hand come out as intended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from parley.client import builders as b
from parley.client.builders import DialogueFileError, dialogue_from_mapping, load_dialogue_file
from parley.v1 import dialogue_pb2 as pb


def test_participant_with_short_form_and_options() -> None:
    made = b.participant(
        "Ada", role="Architect", icon="🧭", options={"delay_ms": 200, "verbose": True}
    )

    assert made == pb.Participant(
        persona=pb.Persona(
            name="Ada", role="Architect", visual_identity=pb.VisualIdentity(icon="🧭")
        ),
        agent="echo",
        agent_options={"delay_ms": "200", "verbose": "true"},
    )


def test_participant_from_full_persona_keeps_its_fields() -> None:
    full = b.persona(
        "Cleo",
        role="Security",
        background="Ten years of incident response",
        capabilities={"threat_model": "Finds attack paths"},
        tagline="Reads it twice",
    )

    made = b.participant(full, "openai", icon="🔒")

    assert made.agent == "openai"
    assert made.persona.background == "Ten years of incident response"
    assert made.persona.capabilities[0] == pb.Capability(
        name="threat_model", description="Finds attack paths"
    )
    assert made.persona.visual_identity == pb.VisualIdentity(icon="🔒", tagline="Reads it twice")
    assert not full.visual_identity.icon, "the caller's persona must not change"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("completion", pb.Broadcast(order=pb.BROADCAST_ORDER_COMPLETION)),
        ("participant", pb.Broadcast(order=pb.BROADCAST_ORDER_PARTICIPANT_ORDER)),
        ("PARTICIPANT_ORDER", pb.Broadcast(order=pb.BROADCAST_ORDER_PARTICIPANT_ORDER)),
        (
            "explicit:Basil, Ada",
            pb.Broadcast(order=pb.BROADCAST_ORDER_EXPLICIT, explicit_order=["Basil", "Ada"]),
        ),
    ],
)
def test_broadcast_order_text(spec: str, expected: pb.Broadcast) -> None:
    assert b.broadcast_order(spec) == expected


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("sideways", "expected one of: completion, participant_order, explicit"),
        ("explicit", "needs names"),
        ("completion:Ada", "only the explicit order takes names"),
    ],
)
def test_broadcast_order_rejects(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        b.broadcast_order(spec)


def test_execution_models_and_dialogue() -> None:
    made = b.dialogue(
        "Planning",
        [b.participant("Ada"), b.participant("Bo")],
        model=b.sequential(["Bo", "Ada"]),
        context=b.context(talk_style="decision-making", environment="A war room"),
        reaction="user_only",
    )

    assert made.execution_model.sequential.order == ["Bo", "Ada"]
    assert made.context.talk_style == pb.TALK_STYLE_DECISION_MAKING
    assert made.context.environment == "A war room"
    assert made.reaction_strategy == pb.REACTION_STRATEGY_USER_ONLY
    assert b.mentioned("partial").mentioned.strategy == pb.MENTION_MATCH_STRATEGY_PARTIAL
    moderator = b.moderated("router", {"temperature": 0.2}).moderator
    assert (moderator.agent, dict(moderator.agent_options)) == ("router", {"temperature": "0.2"})
    assert b.broadcast("explicit", ["Bo"]).broadcast == pb.Broadcast(
        order=pb.BROADCAST_ORDER_EXPLICIT, explicit_order=["Bo"]
    )


def test_input_message_defaults_to_a_user() -> None:
    assert b.input_message("hello", speaker="Dana") == pb.InputMessage(
        speaker=pb.Speaker(kind=pb.SPEAKER_KIND_USER, name="Dana"),
        content="hello",
        type=pb.MESSAGE_TYPE_CONVERSATIONAL,
    )


EXPECTED = pb.Dialogue(
    display_name="Review",
    participants=[
        pb.Participant(
            persona=pb.Persona(
                name="Ada", role="Architect", visual_identity=pb.VisualIdentity(icon="🧭")
            ),
            agent="echo",
            agent_options={"delay_ms": "200"},
        ),
        pb.Participant(persona=pb.Persona(name="Bo"), agent="echo"),
    ],
    execution_model=pb.ExecutionModel(
        broadcast=pb.Broadcast(order=pb.BROADCAST_ORDER_PARTICIPANT_ORDER)
    ),
)

YAML = """\
displayName: Review
participants:
  - persona: {name: Ada, role: Architect, visualIdentity: {icon: "🧭"}}
    agent: echo
    agentOptions: {delay_ms: 200}
  - persona: {name: Bo}
    agent: echo
executionModel:
  broadcast: {order: BROADCAST_ORDER_PARTICIPANT_ORDER}
"""

TOML = """\
display_name = "Review"

[[participants]]
agent = "echo"
agent_options = { delay_ms = 200 }
persona = { name = "Ada", role = "Architect", visual_identity = { icon = "🧭" } }

[[participants]]
agent = "echo"
persona = { name = "Bo" }

[execution_model.broadcast]
order = "BROADCAST_ORDER_PARTICIPANT_ORDER"
"""


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("review.yaml", YAML),
        ("review.yml", YAML),
        ("review.toml", TOML),
        ("review.json", json.dumps(json_format.MessageToDict(EXPECTED), ensure_ascii=False)),
    ],
)
def test_load_dialogue_file_formats(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")

    assert load_dialogue_file(path) == EXPECTED


def test_mapping_accepts_snake_and_camel_case() -> None:
    snake = {"display_name": "x", "execution_model": {"sequential": {"order": ["A"]}}}
    camel = {"displayName": "x", "executionModel": {"sequential": {"order": ["A"]}}}

    assert dialogue_from_mapping(snake) == dialogue_from_mapping(camel)


def test_mapping_unknown_field_is_named() -> None:
    with pytest.raises(DialogueFileError, match='no field named "nmae"') as caught:
        dialogue_from_mapping({"participants": [{"persona": {"nmae": "Ada"}}]})

    assert "Failed to parse" not in str(caught.value)


def test_mapping_must_be_a_mapping() -> None:
    with pytest.raises(DialogueFileError, match="found list"):
        dialogue_from_mapping([{"displayName": "x"}])


@pytest.mark.parametrize(
    ("filename", "text", "where"),
    [
        ("bad.yaml", "displayName: x\nparticipants: [\n  {persona: {name: Ada}\nfoo: 1\n", ":4:"),
        ("bad.toml", 'display_name = "x"\n\n[[participants]]\nagent = echo\n', ":4:"),
        ("bad.json", '{\n  "displayName": "x",\n  "participants": [,]\n}', ":3:"),
    ],
)
def test_syntax_errors_name_file_and_line(
    tmp_path: Path, filename: str, text: str, where: str
) -> None:
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")

    with pytest.raises(DialogueFileError) as caught:
        load_dialogue_file(path)

    message = str(caught.value)
    assert message.startswith(f"{path}{where}"), message
    assert caught.value.path == str(path)


def test_schema_error_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("displayName: x\nexecutionModel: {broadcast: {order: SIDEWAYS}}\n")

    with pytest.raises(DialogueFileError, match="Invalid enum value SIDEWAYS") as caught:
        load_dialogue_file(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_empty_missing_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(DialogueFileError, match="found nothing"):
        load_dialogue_file(empty)
    with pytest.raises(DialogueFileError, match="No such file"):
        load_dialogue_file(tmp_path / "missing.json")
    with pytest.raises(DialogueFileError, match=r"unsupported file type '\.txt'"):
        load_dialogue_file(tmp_path / "dialogue.txt")
