"""The `parley` command against the fake service: what people and scripts see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from parley.client import cli
from parley.v1 import dialogue_pb2 as pb

if TYPE_CHECKING:
    from tests.client.conftest import FakeDialogueService


def parley(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in-process; returns (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def test_run_streams_turns_failures_and_counts(
    server: str, review: pb.Dialogue, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = parley(capsys, "--server", server, "run", "review", "Ship it?")

    assert status == 0
    assert out.splitlines() == [
        "turn 1 · broadcast, completion order · Ada, Basil, Cleo",
        "🧭 Ada (Architect) · 12 ms",
        "  Ada:",
        "  [System]: Ship it?",
        "📋 Basil (Product) · 24 ms · 30 in / 7 out tokens",
        "  Basil:",
        "  [System]: Ship it?",
        "✗ Cleo (Security) failed: AGENT_ERROR: the agent gave up (3 attempts, retryable)",
        "turn 1 done: 2 replies, 1 failed",
    ]


def test_run_json_lines_and_order_override(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Global options are accepted after the subcommand too.
    status, out, _ = parley(
        capsys, "run", "review", "x" * 300, "--order", "explicit:Basil,Ada", "--json",
        "--server", server, "--as", "Dana",
    )  # fmt: skip

    events = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [next(k for k in e if k not in ("dialogue", "turn", "sequence")) for e in events] == [
        "started",
        "turnCompleted",
        "turnCompleted",
        "turnFailed",
        "completed",
    ]
    assert events[0]["started"]["executionModel"]["broadcast"] == {
        "order": "BROADCAST_ORDER_EXPLICIT",
        "explicitOrder": ["Basil", "Ada"],
    }
    assert events[1]["turnCompleted"]["content"].endswith("[Dana]: " + "x" * 300)
    request = service.calls("RunSession")[0]
    assert isinstance(request, pb.RunSessionRequest)
    assert request.speaker.name == "Dana"


def test_bad_order_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "review", "hi", "--order", "sideways"])

    assert exited.value.code == 2
    assert "unknown broadcast order 'sideways'" in capsys.readouterr().err


def test_create_get_list_history_delete(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "team.yaml"
    file.write_text(
        "name: dialogues/team\n"
        "displayName: Team\n"
        "participants:\n"
        "  - persona: {name: Ada, role: Architect, visualIdentity: {icon: '🧭'}}\n"
        "    agent: echo\n"
        "    agentOptions: {delay_ms: 5}\n",
        encoding="utf-8",
    )

    assert parley(capsys, "--server", server, "create", str(file)) == (0, "dialogues/team\n", "")
    _, got, _ = parley(capsys, "--server", server, "get", "team")
    _, listed, _ = parley(capsys, "--server", server, "list")
    parley(capsys, "--server", server, "run", "team", "Hello [bold]there[/]")
    _, history, _ = parley(capsys, "--server", server, "history", "team", "--after", "1")
    _, history_json, _ = parley(capsys, "--server", server, "--json", "history", "team")
    _, deleted, _ = parley(capsys, "--server", server, "delete", "dialogues/team")

    assert got.splitlines() == [
        "dialogues/team  Team  · 1 participant · turn 0 · 0 messages",
        "  model: broadcast, completion order · reacts: always",
        "  🧭 Ada (Architect) · echo",
    ]
    assert listed.splitlines() == ["dialogues/team  Team  · 1 participant · turn 0 · 0 messages"]
    assert history.splitlines() == [
        "#2 · turn 1 · 🧭 Ada (Architect)",
        "  Ada:",
        "  [System]: Hello [bold]there[/]",
    ]
    assert [json.loads(line)["seq"] for line in history_json.splitlines()] == ["1", "2"]
    assert deleted == "deleted dialogues/team\n"


def test_create_with_explicit_id_and_json(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "team.toml"
    file.write_text('display_name = "T"\n[[participants]]\npersona = { name = "Ada" }\n')

    status, out, _ = parley(capsys, "--server", server, "--json", "create", str(file), "--id", "t1")

    assert status == 0
    assert json.loads(out)["name"] == "dialogues/t1"


def test_invalid_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("displayName: x\nparticipants:\n  - persona: {name: Ada\n")

    status, _, err = parley(capsys, "create", str(file))

    assert status == 1
    assert err.startswith(f"error: {file}:4:")


def test_invalid_dialogue_lists_field_violations(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "nameless.json"
    file.write_text('{"participants": [{"persona": {"name": ""}}]}')

    status, _, err = parley(capsys, "--server", server, "create", str(file), "--id", "Bad_Id")

    assert status == 1
    assert err.splitlines() == [
        "error: invalid request: the dialogue is invalid",
        "  - dialogue_id: must match [a-z0-9][a-z0-9-]{0,62}",
        "  - dialogue.participants[0].persona.name: must not be empty",
    ]


def test_missing_dialogue(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("get", "run", "history", "delete"):
        extra = ["hi"] if command == "run" else []
        status, _, err = parley(capsys, "--server", server, command, "nope", *extra)

        assert (status, err) == (1, "error: dialogue nope not found\n"), command


def test_unreachable_server_hint(unused_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = parley(capsys, "--server", unused_address, "list")

    assert status == 1
    assert f"cannot reach a Parley server at {unused_address}" in " ".join(err.split())


def test_server_and_token_from_environment(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PARLEY_SERVER", server)
    monkeypatch.setenv("PARLEY_TOKEN", "s3cret")

    status, _, _ = parley(capsys, "get", "review")

    assert status == 0
    assert service.metadata[0]["authorization"] == "Bearer s3cret"


def test_demo_creates_three_personas_and_streams_two_runs(
    server: str, service: FakeDialogueService, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = parley(capsys, "--server", server, "demo")

    assert status == 0
    (name,) = service.dialogues
    assert name.startswith("dialogues/demo-")
    personas = [p.persona for p in service.dialogues[name].participants]
    assert len({p.name for p in personas}) == len({p.role for p in personas}) == 3
    assert len({p.visual_identity.icon for p in personas}) == 3
    assert all(p.agent == "echo" for p in service.dialogues[name].participants)
    runs = service.calls("RunSession")
    assert len(runs) == 2
    assert len({r.text for r in runs if isinstance(r, pb.RunSessionRequest)}) == 2
    assert out.count("done: 3 replies, 0 failed") == 2
    assert f"parley history {name.removeprefix('dialogues/')}" in out
