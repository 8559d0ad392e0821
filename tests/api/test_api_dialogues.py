"""Dialogue management over gRPC: create, get, update, delete, participants, and their errors."""

from __future__ import annotations

import re

import grpc
import pytest
from parley.v1 import dialogue_pb2 as pb

from .support import (
    Stub,
    all_messages,
    assert_failure,
    broadcast,
    create,
    echo,
    mask,
    name_of,
    new_id,
    rpc_failure,
    sequential,
)

DIALOGUE_NAME = re.compile(r"dialogues/[a-z0-9][a-z0-9-]{0,62}")


def get(stub: Stub, name: str) -> pb.Dialogue:
    return stub.GetDialogue(pb.GetDialogueRequest(name=name))


# --- CreateDialogue, GetDialogue -----------------------------------------------------


def test_create_with_client_id_returns_the_stored_dialogue(stub: Stub) -> None:
    dialogue_id = new_id("create")
    context = pb.DialogueContext(
        talk_style=pb.TALK_STYLE_BRAINSTORM,
        environment="a design review",
        additional_context=["the budget is small"],
        policy={"Ada": pb.CapabilityList(capabilities=["search"])},
    )
    ada = echo("Ada", role="Engineer", icon="🦊", delay_ms=5)
    ada.persona.capabilities.add(name="search", description="looks things up")
    ada.persona.visual_identity.color = "#3366ff"

    created = create(
        stub,
        [ada, echo("Bob", reply="ok")],
        model=broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["Bob"]),
        dialogue_id=dialogue_id,
        display_name="Design review",
        context=context,
        reaction_strategy=pb.REACTION_STRATEGY_USER_ONLY,
    )

    assert created.name == name_of(dialogue_id)
    assert created.display_name == "Design review"
    assert [p.persona.name for p in created.participants] == ["Ada", "Bob"]
    assert created.participants[0] == pb.Participant(
        persona=ada.persona, agent="echo", agent_options={"delay_ms": "5"}
    )
    assert created.participants[1].agent_options == {"reply": "ok"}
    assert not any(p.pending for p in created.participants)
    assert created.execution_model == broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["Bob"])
    assert created.context == context
    assert created.reaction_strategy == pb.REACTION_STRATEGY_USER_ONLY
    assert (created.latest_turn, created.message_count) == (0, 0)
    assert created.create_time.seconds > 0
    assert created.update_time == created.create_time
    # GetDialogue returns the same resource, by full name or bare id.
    assert get(stub, created.name) == created
    assert get(stub, dialogue_id) == created


def test_create_defaults(stub: Stub) -> None:
    created = create(stub, [echo("A")])

    assert created.display_name == created.name.removeprefix("dialogues/")
    # An empty execution model is broadcast in completion order; UNSPECIFIED is ALWAYS.
    assert created.execution_model == broadcast(pb.BROADCAST_ORDER_COMPLETION)
    assert created.reaction_strategy == pb.REACTION_STRATEGY_ALWAYS
    assert not created.HasField("context")


def test_create_without_participants_is_allowed(stub: Stub) -> None:
    created = create(stub, [])
    assert list(created.participants) == []


def test_create_with_server_generated_ids(stub: Stub) -> None:
    first = stub.CreateDialogue(pb.CreateDialogueRequest(dialogue=pb.Dialogue()))
    second = stub.CreateDialogue(
        pb.CreateDialogueRequest(dialogue=pb.Dialogue(participants=[echo("A")]))
    )

    assert DIALOGUE_NAME.fullmatch(first.name), first.name
    assert DIALOGUE_NAME.fullmatch(second.name), second.name
    assert first.name != second.name
    assert get(stub, second.name) == second


def test_create_ignores_the_dialogue_name_field(stub: Stub) -> None:
    dialogue_id = new_id("named")
    created = stub.CreateDialogue(
        pb.CreateDialogueRequest(
            dialogue=pb.Dialogue(name="dialogues/something-else"), dialogue_id=dialogue_id
        )
    )
    assert created.name == name_of(dialogue_id)


def test_create_twice_with_the_same_id_is_already_exists(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    dialogue_id = created.name.removeprefix("dialogues/")

    failure = rpc_failure(lambda: create(stub, [echo("B")], dialogue_id=dialogue_id))

    assert_failure(failure, grpc.StatusCode.ALREADY_EXISTS, "DIALOGUE_ALREADY_EXISTS")
    # The first dialogue is untouched.
    assert get(stub, created.name) == created


@pytest.mark.parametrize(
    ("dialogue_id", "participants", "model", "violations"),
    [
        pytest.param("Bad_Id", [echo("A")], None, ["dialogue_id"], id="bad-id"),
        pytest.param("-leading-dash", [], None, ["dialogue_id"], id="id-leading-dash"),
        pytest.param("a" * 64, [], None, ["dialogue_id"], id="id-too-long"),
        pytest.param(
            None, [echo("")], None, ["dialogue.participants[0].persona.name"], id="empty-name"
        ),
        pytest.param(
            None, [echo(" A")], None, ["dialogue.participants[0].persona.name"], id="name-space"
        ),
        pytest.param(
            None, [echo("a@b")], None, ["dialogue.participants[0].persona.name"], id="name-at"
        ),
        pytest.param(
            None,
            [pb.Participant(persona=pb.Persona(name="A"), agent="no-such-profile")],
            None,
            ["dialogue.participants[0].agent"],
            id="unknown-agent-profile",
        ),
        pytest.param(
            None,
            [pb.Participant(persona=pb.Persona(name="A"))],
            None,
            ["dialogue.participants[0].agent"],
            id="missing-agent",
        ),
        pytest.param(
            None,
            [echo("A", url="http://example.com")],
            None,
            ["dialogue.participants[0].agent_options['url']"],
            id="disallowed-agent-option",
        ),
        pytest.param(
            None,
            [
                pb.Participant(
                    persona=pb.Persona(name="A"), agent="echo", agent_options={"delay_ms": "soon"}
                )
            ],
            None,
            ["dialogue.participants[0].agent_options['delay_ms']"],
            id="bad-option-value",
        ),
        pytest.param(
            None,
            [echo("A"), echo("A")],
            None,
            ["dialogue.participants[1].persona.name"],
            id="duplicate-participant-names",
        ),
        pytest.param(
            None,
            [echo("A"), echo("B")],
            broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["B", "Zed"]),
            ["dialogue.execution_model.broadcast.explicit_order[1]"],
            id="explicit-order-unknown-participant",
        ),
        pytest.param(
            None,
            [echo("A")],
            broadcast(pb.BROADCAST_ORDER_COMPLETION, ["A"]),
            ["dialogue.execution_model.broadcast.explicit_order"],
            id="explicit-order-without-explicit",
        ),
        pytest.param(
            None,
            [echo("A")],
            sequential(["Zed"]),
            ["dialogue.execution_model.sequential.order[0]"],
            id="sequential-order-unknown-participant",
        ),
        pytest.param(
            None,
            [echo("A")],
            broadcast(42),  # type: ignore[arg-type]
            ["dialogue.execution_model.broadcast.order"],
            id="unknown-broadcast-order-number",
        ),
        pytest.param(
            "Bad_Id",
            [echo(""), pb.Participant(persona=pb.Persona(name="B"), agent="nope")],
            None,
            [
                "dialogue_id",
                "dialogue.participants[0].persona.name",
                "dialogue.participants[1].agent",
            ],
            id="every-violation-at-once",
        ),
    ],
)
def test_create_invalid_argument(
    stub: Stub,
    dialogue_id: str | None,
    participants: list[pb.Participant],
    model: pb.ExecutionModel | None,
    violations: list[str],
) -> None:
    dialogue_id = dialogue_id or new_id("invalid")

    failure = rpc_failure(lambda: create(stub, participants, model=model, dialogue_id=dialogue_id))

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations)
    if DIALOGUE_NAME.fullmatch(name_of(dialogue_id)):
        # Nothing was created.
        not_found = rpc_failure(lambda: get(stub, dialogue_id))
        assert_failure(not_found, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


def test_create_unknown_reaction_strategy_number(stub: Stub) -> None:
    failure = rpc_failure(
        lambda: create(stub, [echo("A")], reaction_strategy=99)  # type: ignore[arg-type]
    )
    assert_failure(
        failure,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["dialogue.reaction_strategy"],
    )


@pytest.mark.parametrize("name", ["", "dialogues/", "dialogues/Bad_Id", "projects/x/dialogues/y"])
def test_get_with_a_malformed_name(stub: Stub, name: str) -> None:
    failure = rpc_failure(lambda: get(stub, name))
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["name"])


def test_get_unknown_dialogue(stub: Stub) -> None:
    failure = rpc_failure(lambda: get(stub, name_of(new_id("missing"))))
    assert_failure(failure, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


# --- UpdateDialogue ------------------------------------------------------------------


def update(stub: Stub, dialogue: pb.Dialogue, *paths: str) -> pb.Dialogue:
    return stub.UpdateDialogue(
        pb.UpdateDialogueRequest(dialogue=dialogue, update_mask=mask(*paths))
    )


def test_update_display_name_only_changes_display_name(stub: Stub) -> None:
    created = create(stub, [echo("A"), echo("B")], display_name="before")
    # Fields outside the mask are ignored, even when set.
    changes = pb.Dialogue(
        name=created.name,
        display_name="after",
        reaction_strategy=pb.REACTION_STRATEGY_AGENT_ONLY,
        execution_model=sequential(),
    )

    updated = update(stub, changes, "display_name")

    assert updated.display_name == "after"
    assert updated.reaction_strategy == created.reaction_strategy
    assert updated.execution_model == created.execution_model
    assert updated.participants == created.participants
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()
    assert get(stub, created.name) == updated


def test_update_display_name_cleared_falls_back_to_the_id(stub: Stub) -> None:
    created = create(stub, [], display_name="named")
    updated = update(stub, pb.Dialogue(name=created.name), "display_name")
    assert updated.display_name == created.name.removeprefix("dialogues/")


def test_update_execution_model(stub: Stub) -> None:
    created = create(stub, [echo("A"), echo("B")])
    model = sequential(["B"])

    updated = update(stub, pb.Dialogue(name=created.name, execution_model=model), "execution_model")

    assert updated.execution_model == model
    assert updated.display_name == created.display_name
    # The next run uses it: B first, then A, one after the other.
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="go"))
    assert [t.speaker.name for t in response.turns] == ["B", "A"]
    assert response.started.execution_model == model


def test_update_context(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    context = pb.DialogueContext(
        custom_talk_style=pb.CustomTalkStyle(
            name="retro", description="look back", guidelines=["be kind"]
        ),
        environment="the team room",
    )

    updated = update(stub, pb.Dialogue(name=created.name, context=context), "context")

    assert updated.context == context
    assert get(stub, created.name).context == context


def test_update_reaction_strategy(stub: Stub) -> None:
    created = create(stub, [echo("A")])

    updated = update(
        stub,
        pb.Dialogue(name=created.name, reaction_strategy=pb.REACTION_STRATEGY_USER_ONLY),
        "reaction_strategy",
    )

    assert updated.reaction_strategy == pb.REACTION_STRATEGY_USER_ONLY
    # A bare text prompt is a System message: USER_ONLY does not react to it.
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="system says"))
    assert response.completed
    assert list(response.turns) == []
    assert list(response.started.participants) == []


def test_update_several_paths_at_once(stub: Stub) -> None:
    created = create(stub, [echo("A"), echo("B")])
    changes = pb.Dialogue(
        name=created.name,
        display_name="both",
        execution_model=broadcast(pb.BROADCAST_ORDER_PARTICIPANT_ORDER),
        reaction_strategy=pb.REACTION_STRATEGY_EXCEPT_SYSTEM,
    )

    updated = update(stub, changes, "display_name", "execution_model", "reaction_strategy")

    assert updated.display_name == "both"
    assert updated.execution_model == changes.execution_model
    assert updated.reaction_strategy == pb.REACTION_STRATEGY_EXCEPT_SYSTEM


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param((), id="missing-mask"),
        pytest.param(("participants",), id="participants"),
        pytest.param(("latest_turn",), id="output-only"),
        pytest.param(("display_name", "no_such_field"), id="one-bad-path"),
    ],
)
def test_update_with_a_bad_mask(stub: Stub, paths: tuple[str, ...]) -> None:
    created = create(stub, [echo("A")], display_name="unchanged")

    failure = rpc_failure(
        lambda: update(stub, pb.Dialogue(name=created.name, display_name="new"), *paths)
    )

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["update_mask"])
    assert get(stub, created.name).display_name == "unchanged"


def test_update_without_a_mask_field_at_all(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    failure = rpc_failure(
        lambda: stub.UpdateDialogue(
            pb.UpdateDialogueRequest(dialogue=pb.Dialogue(name=created.name, display_name="x"))
        )
    )
    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["update_mask"])


def test_update_to_an_order_naming_an_unknown_participant(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    model = broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["A", "Ghost"])

    failure = rpc_failure(
        lambda: update(
            stub, pb.Dialogue(name=created.name, execution_model=model), "execution_model"
        )
    )

    assert_failure(
        failure,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["dialogue.execution_model.broadcast.explicit_order[1]"],
    )
    assert get(stub, created.name).execution_model == created.execution_model


def test_update_unknown_enum_number(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    failure = rpc_failure(
        lambda: update(
            stub,
            pb.Dialogue(name=created.name, reaction_strategy=77),  # type: ignore[arg-type]
            "reaction_strategy",
        )
    )
    assert_failure(
        failure,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["dialogue.reaction_strategy"],
    )


def test_update_malformed_and_unknown_names(stub: Stub) -> None:
    malformed = rpc_failure(lambda: update(stub, pb.Dialogue(name="nope!"), "display_name"))
    assert_failure(
        malformed, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["dialogue.name"]
    )

    missing = rpc_failure(
        lambda: update(stub, pb.Dialogue(name=name_of(new_id("missing"))), "display_name")
    )
    assert_failure(missing, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


# --- DeleteDialogue ------------------------------------------------------------------


def test_delete_removes_the_dialogue_and_its_log(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    dialogue_id = created.name.removeprefix("dialogues/")
    stub.Run(pb.RunSessionRequest(dialogue=created.name, text="remember me"))
    assert len(all_messages(stub, created.name)) == 2

    assert stub.DeleteDialogue(pb.DeleteDialogueRequest(name=created.name)) == (
        pb.DeleteDialogueResponse()
    )

    for call in (
        lambda: get(stub, created.name),
        lambda: stub.ListMessages(pb.ListMessagesRequest(dialogue=created.name)),
        lambda: stub.Run(pb.RunSessionRequest(dialogue=created.name, text="again")),
        lambda: stub.DeleteDialogue(pb.DeleteDialogueRequest(name=created.name)),
    ):
        assert_failure(rpc_failure(call), grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")

    # The id is free again, and the new dialogue starts with an empty log at turn 1.
    again = create(stub, [echo("A")], dialogue_id=dialogue_id)
    assert (again.latest_turn, again.message_count) == (0, 0)
    assert all_messages(stub, again.name) == []
    response = stub.Run(pb.RunSessionRequest(dialogue=again.name, text="fresh"))
    assert response.turn == 1
    assert response.turns[0].content == "A:\n[System]: fresh"
    assert [m.seq for m in all_messages(stub, again.name)] == [1, 2]


def test_delete_by_bare_id_and_malformed_name(stub: Stub) -> None:
    created = create(stub, [])
    stub.DeleteDialogue(pb.DeleteDialogueRequest(name=created.name.removeprefix("dialogues/")))
    assert_failure(
        rpc_failure(lambda: get(stub, created.name)),
        grpc.StatusCode.NOT_FOUND,
        "DIALOGUE_NOT_FOUND",
    )

    malformed = rpc_failure(lambda: stub.DeleteDialogue(pb.DeleteDialogueRequest(name="")))
    assert_failure(malformed, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["name"])


# --- AddParticipant, RemoveParticipant -----------------------------------------------


def add(
    stub: Stub,
    dialogue: str,
    participant: pb.Participant,
    joining: pb.JoiningStrategy | None = None,
) -> pb.Dialogue:
    return stub.AddParticipant(
        pb.AddParticipantRequest(
            dialogue=dialogue, participant=participant, joining_strategy=joining
        )
    )


def remove(stub: Stub, dialogue: str, name: str) -> pb.Dialogue:
    return stub.RemoveParticipant(
        pb.RemoveParticipantRequest(dialogue=dialogue, participant_name=name)
    )


def test_add_participant_founding_member(stub: Stub) -> None:
    created = create(stub, [echo("A")])

    updated = add(stub, created.name, echo("B", icon="🐻", role="Critic"))

    assert [p.persona.name for p in updated.participants] == ["A", "B"]
    assert updated.participants[1].persona.visual_identity.icon == "🐻"
    assert not updated.participants[1].pending
    assert not updated.participants[1].HasField("joining_strategy")
    assert get(stub, created.name) == updated
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="hi"))
    assert sorted(t.speaker.name for t in response.turns) == ["A", "B"]


def test_add_participant_joining_in_progress(stub: Stub) -> None:
    created = create(stub, [echo("A")])
    stub.Run(pb.RunSessionRequest(dialogue=created.name, text="before the join"))
    fresh = pb.JoiningStrategy(fresh=pb.JoiningStrategy.Fresh())

    updated = add(stub, created.name, echo("Late"), fresh)

    late = updated.participants[1]
    assert late.pending
    assert late.joining_strategy == fresh
    # FRESH: its first call sees only the current turn's input.
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="after the join"))
    by_name = {t.speaker.name: t.content for t in response.turns}
    assert by_name["Late"] == "Late:\n[System]: after the join"
    assert not get(stub, created.name).participants[1].pending


def test_add_participant_with_a_taken_name(stub: Stub) -> None:
    created = create(stub, [echo("A")])

    failure = rpc_failure(lambda: add(stub, created.name, echo("A", delay_ms=1)))

    assert_failure(failure, grpc.StatusCode.ALREADY_EXISTS, "PARTICIPANT_ALREADY_EXISTS")
    assert get(stub, created.name).participants == created.participants


def test_add_participant_names_are_case_sensitive(stub: Stub) -> None:
    created = create(stub, [echo("Ada")])
    updated = add(stub, created.name, echo("ada"))
    assert [p.persona.name for p in updated.participants] == ["Ada", "ada"]


@pytest.mark.parametrize(
    ("participant", "joining", "violations"),
    [
        pytest.param(echo(""), None, ["participant.persona.name"], id="empty-name"),
        pytest.param(
            pb.Participant(persona=pb.Persona(name="X"), agent="gpt-9000"),
            None,
            ["participant.agent"],
            id="unknown-agent-profile",
        ),
        pytest.param(
            echo("X", command="rm -rf /"),
            None,
            ["participant.agent_options['command']"],
            id="disallowed-agent-option",
        ),
        pytest.param(
            pb.Participant(
                persona=pb.Persona(name="X"),
                agent="echo",
                joining_strategy=pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=0)),
            ),
            None,
            ["participant.joining_strategy.range.start"],
            id="bad-joining-range-on-participant",
        ),
        pytest.param(
            echo("X"),
            pb.JoiningStrategy(range=pb.JoiningStrategy.Range(start=0)),
            ["joining_strategy.range.start"],
            id="bad-joining-range-on-request",
        ),
    ],
)
def test_add_participant_invalid_argument(
    stub: Stub,
    participant: pb.Participant,
    joining: pb.JoiningStrategy | None,
    violations: list[str],
) -> None:
    created = create(stub, [echo("A")])

    failure = rpc_failure(lambda: add(stub, created.name, participant, joining))

    assert_failure(failure, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", violations)
    assert len(get(stub, created.name).participants) == 1


def test_add_participant_to_unknown_or_malformed_dialogue(stub: Stub) -> None:
    missing = rpc_failure(lambda: add(stub, name_of(new_id("missing")), echo("A")))
    assert_failure(missing, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")

    malformed = rpc_failure(lambda: add(stub, "dialogues/NOPE", echo("A")))
    assert_failure(malformed, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["dialogue"])


def test_remove_participant_keeps_its_messages(stub: Stub) -> None:
    created = create(stub, [echo("A", icon="🦊"), echo("B")])
    stub.Run(pb.RunSessionRequest(dialogue=created.name, text="hello"))

    updated = remove(stub, created.name, "A")

    assert [p.persona.name for p in updated.participants] == ["B"]
    log = all_messages(stub, created.name)
    assert [m.speaker.name for m in log if m.speaker.name == "A"] == ["A"]
    assert next(m for m in log if m.speaker.name == "A").speaker.icon == "🦊"
    # The next run no longer calls A.
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="again"))
    assert [t.speaker.name for t in response.turns] == ["B"]


def test_a_removed_name_can_be_reused(stub: Stub) -> None:
    created = create(stub, [echo("A"), echo("B")])
    remove(stub, created.name, "A")

    updated = add(stub, created.name, echo("A", icon="🆕"))

    assert [p.persona.name for p in updated.participants] == ["B", "A"]
    assert updated.participants[1].persona.visual_identity.icon == "🆕"


def test_remove_unknown_participant(stub: Stub) -> None:
    created = create(stub, [echo("A")])

    failure = rpc_failure(lambda: remove(stub, created.name, "a"))  # names are case-sensitive

    assert_failure(failure, grpc.StatusCode.NOT_FOUND, "PARTICIPANT_NOT_FOUND")
    missing = rpc_failure(lambda: remove(stub, name_of(new_id("missing")), "A"))
    assert_failure(missing, grpc.StatusCode.NOT_FOUND, "DIALOGUE_NOT_FOUND")


@pytest.mark.parametrize(
    ("model", "pruned"),
    [
        pytest.param(sequential(["B", "A"]), sequential(["A"]), id="sequential"),
        pytest.param(
            broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["B", "A"]),
            broadcast(pb.BROADCAST_ORDER_EXPLICIT, ["A"]),
            id="explicit",
        ),
    ],
)
def test_removing_a_participant_drops_it_from_the_stored_order(
    stub: Stub, model: pb.ExecutionModel, pruned: pb.ExecutionModel
) -> None:
    created = create(stub, [echo("A"), echo("B"), echo("C")], model=model)

    updated = remove(stub, created.name, "B")

    assert updated.execution_model == pruned
    response = stub.Run(pb.RunSessionRequest(dialogue=created.name, text="still there?"))
    assert [t.speaker.name for t in response.turns] == ["A", "C"]
    # The dialogue stays updatable: its model no longer names a missing participant.
    assert update(stub, pb.Dialogue(name=created.name, display_name="x"), "display_name")
