"""The `parley` command against the fake service: what people and scripts see."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from parley.client import cli, render
from parley.client.sync import ParleyClient
from parley.v1 import dialogue_pb2 as pb
from rich.console import Console

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


def test_profiles_table_and_json(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    status, out, _ = parley(capsys, "--server", server, "profiles")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["profile", "kind", "model", "options", "available"]
    assert "claude" in lines[1]
    assert "no: ANTHROPIC_API_KEY is not set" in lines[1]
    assert lines[2].split()[:4] == ["echo", "echo", "-", "delay_ms,"]
    assert lines[2].rstrip().endswith("yes")

    _, as_json, _ = parley(capsys, "--server", server, "--json", "profiles")
    assert [json.loads(line)["name"] for line in as_json.splitlines()] == ["claude", "echo"]


def test_cancel(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, _, err = parley(capsys, "--server", server, "cancel", "review")
    assert (status, err) == (1, "error: no run is in progress on review\n")

    service.running.add(review.name)
    status, out, _ = parley(capsys, "--server", server, "cancel", "review", "--after-turn")
    assert (status, out) == (0, "turn 0 of dialogues/review stops after the calls in flight\n")
    _, as_json, _ = parley(capsys, "--server", server, "cancel", "review", "--json")
    assert json.loads(as_json) == {"dialogue": "dialogues/review", "turn": "0", "mode": "immediate"}
    request = service.calls("CancelRun")[1]
    assert isinstance(request, pb.CancelRunRequest)
    assert request.mode == pb.CANCEL_MODE_AFTER_TURN


def test_watch_prints_messages_and_run_events(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parley(capsys, "--server", server, "run", "review", "hello")
    service.watch_events = [
        pb.SessionEvent(
            dialogue=review.name,
            turn=2,
            started=pb.SessionStarted(participants=["Ada", "Basil"]),
        ),
        pb.SessionEvent(dialogue=review.name, turn=2, completed=pb.SessionCompleted(turn_count=2)),
        pb.SessionEvent(dialogue=review.name, turn=3, started=pb.SessionStarted()),
    ]
    status, out, _ = parley(
        capsys, "--server", server, "watch", "review", "--after", "2", "--until-completed"
    )
    assert status == 0
    assert out.splitlines() == [
        "#3 · turn 1 · 📋 Basil (Product)",
        "  Basil:",
        "  [System]: hello",
        "turn 2 · broadcast, completion order · Ada, Basil",
        "✓ turn 2 done: 2 replies, 0 failed",
    ]
    _, as_json, _ = parley(capsys, "--server", server, "--json", "watch", "review")
    items = [json.loads(line) for line in as_json.splitlines()]
    assert [next(iter(item)) for item in items] == ["message"] * 3 + ["event"] * 3


def test_export_and_import(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parley(capsys, "--server", server, "run", "review", "hello")
    status, printed, _ = parley(capsys, "--server", server, "export", "review")
    assert status == 0
    assert json.loads(printed)[0]["content"] == "hello"

    file = tmp_path / "history.json"
    status, out, _ = parley(
        capsys, "--server", server, "export", "review", "--format", "full", "-o", str(file)
    )
    assert (status, out) == (0, f"wrote 3 messages to {file}\n")
    request = service.calls("ExportHistory")[-1]
    assert isinstance(request, pb.ExportHistoryRequest)
    assert request.format == pb.HISTORY_FORMAT_FULL_JSON

    service.dialogues["dialogues/copy"] = pb.Dialogue(name="dialogues/copy")
    service.logs["dialogues/copy"] = []
    status, out, _ = parley(capsys, "--server", server, "import", "copy", str(file))
    assert (status, out) == (0, "imported 3 messages into dialogues/copy (turn 0)\n")
    assert service.logs["dialogues/copy"][0].content == "hello"


def test_import_reports_a_broken_file_with_its_line(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"speaker": {"type": "user"},\n   "content": "hi",,}\n]\n')
    status, _, err = parley(capsys, "--server", server, "import", "x", str(broken))
    assert status == 1
    assert err.startswith(f"error: {broken}:3:")
    assert "invalid JSON" in err

    single = tmp_path / "single.json"
    single.write_text('{"content": "hi"}')
    _, _, err = parley(capsys, "--server", server, "import", "x", str(single))
    assert "expected a JSON array of messages" in err
    _, _, err = parley(capsys, "--server", server, "import", "x", str(tmp_path / "none.json"))
    assert err.startswith(f"error: {tmp_path / 'none.json'}: No such file")


def test_add_and_remove_participant(
    server: str,
    review: pb.Dialogue,
    service: FakeDialogueService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = parley(
        capsys, "--server", server, "add-participant", "review", "Dana", "--role", "Legal",
        "--icon", "⚖", "--option", "delay_ms=20", "--option", "reply=ok", "--join", "range:1-2",
    )  # fmt: skip
    assert status == 0
    assert "⚖ Dana (Legal) · echo · joining" in out
    request = service.calls("AddParticipant")[0]
    assert isinstance(request, pb.AddParticipantRequest)
    assert dict(request.participant.agent_options) == {"delay_ms": "20", "reply": "ok"}
    assert request.joining_strategy == pb.JoiningStrategy(
        range=pb.JoiningStrategy.Range(start=1, end=2)
    )

    status, out, _ = parley(capsys, "--server", server, "remove-participant", "review", "Dana")
    assert status == 0
    assert "Dana" not in out
    status, _, err = parley(capsys, "--server", server, "remove-participant", "review", "Zed")
    assert status == 1
    assert "(NOT_FOUND, UNKNOWN_PARTICIPANT)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add-participant", "r", "X", "--join", "soon"], "unknown joining strategy 'soon'"),
        (["add-participant", "r", "X", "--option", "novalue"], "expected KEY=VALUE"),
        (["--timeout", "0", "list"], "expected a positive number of seconds"),
        (["export", "r", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_tls_options_are_checked_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = parley(capsys, "--ca-cert", str(tmp_path / "ca.pem"), "list")
    assert status == 1
    assert err.startswith(f"error: cannot read {tmp_path / 'ca.pem'}")
    status, _, err = parley(capsys, "--cert", "c.pem", "list")
    assert (status, err) == (1, "error: --cert and --key go together (mutual TLS)\n")


def test_list_quiet_prints_ids(
    server: str, review: pb.Dialogue, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parley(capsys, "--server", server, "list", "-q") == (0, "review\n", "")


def test_completion_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    status, bash, _ = parley(capsys, "completion", "bash")
    assert status == 0
    assert bash.rstrip().endswith("complete -o default -F _parley parley")
    for command in ("create", "watch", "cancel", "add-participant", "completion"):
        assert command in bash
    assert "--until-completed" in bash
    _, zsh, _ = parley(capsys, "completion", "zsh")
    assert zsh.startswith("#compdef parley\n")
    assert "bashcompinit" in zsh
    assert zsh.endswith(bash)


def test_live_view_on_a_terminal(server: str, review: pb.Dialogue) -> None:
    console = Console(
        file=io.StringIO(), force_terminal=True, width=120, color_system="standard", record=True
    )
    with ParleyClient(server) as client, render.RunView(console) as view:
        for event in client.run_session("review", "Ship it?"):
            view.show(event)
    text = console.export_text(clear=False)
    # The table's last frame: one row per participant called, as each ended.
    final = text[text.rindex("Ada") - 10 :]
    rows = [line for line in final.splitlines() if line.strip()]
    ada = next(line for line in rows if "Ada" in line and "replied" in line)
    basil = next(line for line in rows if "Basil" in line and "replied" in line)
    cleo = next(line for line in rows if "Cleo" in line and "AGENT_ERROR" in line)
    assert "12 ms" in ada
    assert "24 ms" in basil
    assert "30 in / 7 out" in basil
    assert "the agent gave up" in cleo
    assert rows[-1] == "turn 1 done: 2 replies, 1 failed"
    # Failures are red, replies green.
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[1;31m✗ AGENT_ERROR" in raw
    assert "\x1b[32m✓ replied" in raw


def test_live_view_shows_a_spinner_while_participants_work() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    view = render.RunView(
        console,
        live=False,
        participants=[pb.Participant(persona=pb.Persona(name="Ada", role="Architect"))],
    )
    view.show(
        pb.SessionEvent(turn=1, sequence=1, started=pb.SessionStarted(participants=["Ada", "Bo"]))
    )
    console.print(view._table())
    text = console.export_text()
    assert "Ada (Architect)" in text  # the persona is known before Ada replies
    assert text.count("thinking…") == 2
