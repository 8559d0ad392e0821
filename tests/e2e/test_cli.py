"""The `parley` command line against a real server: the README's sessions, completion,
TLS, and `parley demo`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.e2e import commands
from tests.e2e.harness import (
    BIN,
    ServerLauncher,
    ServerProcess,
    clean_environment,
    readme_blocks,
    readme_commands,
    split_command,
)

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def parley(server: ServerProcess, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = clean_environment()
    # Plain, wide output: nothing to strip, no line wrapped inside a reply.
    environment.update(PARLEY_SERVER=server.address, NO_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [str(BIN / "parley"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_readme_cli_session(parley_server: ServerProcess, tmp_path: Path) -> None:
    (dialogue_file,) = readme_blocks(README, "tea.yaml", "yaml")
    (tmp_path / "tea.yaml").write_text(dialogue_file, encoding="utf-8")
    outputs: dict[str, str] = {}
    for command in readme_commands(README, "parley-cli"):
        argv = split_command(command)
        assert argv[0] == "parley", command
        result = parley(parley_server, argv[1:], tmp_path)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}\n{result.stderr}"
        outputs[argv[1]] = result.stdout
    assert list(outputs) == ["create", "run", "history", "list", "get", "delete"]
    assert "dialogues/tea" in outputs["create"]
    for name in ("Ann", "Bob"):
        assert f"{name}:\n" in outputs["run"]
    assert "[System]: Shall we start?" in outputs["run"]
    assert "Shall we start?" in outputs["history"]
    assert "dialogues/tea" in outputs["list"]
    assert "Tea time" in outputs["get"]

    gone = parley(parley_server, ["get", "tea"], tmp_path)
    assert gone.returncode != 0
    assert "not found" in gone.stderr


def test_demo_streams_two_runs(parley_server: ServerProcess, tmp_path: Path) -> None:
    result = parley(parley_server, ["--json", "demo"], tmp_path)
    assert result.returncode == 0, result.stderr
    # One JSON object per line: the created dialogue, then each run's events.
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    completed = [o["completed"] for o in objects if "completed" in o]
    assert len(completed) == 2, result.stdout
    assert all(c.get("turnCount", 0) > 0 for c in completed), completed


def test_readme_cli_participants_profiles_and_history_files(
    parley_server: ServerProcess, tmp_path: Path
) -> None:
    commands.write_readme_file("tea.yaml", "yaml", tmp_path)
    results = [
        commands.run(command, parley_server, tmp_path).ok()
        for command in readme_commands(README, "parley-cli-more")
    ]
    words = [split_command(r.command) for r in results]
    assert [w[1] if w[1] != "--json" else w[2] for w in words] == [
        "profiles",
        "create",
        "add-participant",
        "run",
        "run",
        "remove-participant",
        "export",
        "create",
        "import",
        "history",
    ], "the README's CLI examples changed: update this test"
    profiles, _, added, ordered, as_json, removed, exported, _, imported, history = (
        r.stdout for r in results
    )
    assert "echo" in profiles.split()
    assert "delay_ms, fail, reply" in profiles
    assert "🦉 Cy (latecomer) · echo · joining" in added
    # Participant order: Ann, Bob (who takes 500 ms), then Cy.
    assert "broadcast, participant order" in ordered.splitlines()[0]
    positions = [ordered.index(f"  {name}:") for name in ("Ann", "Bob", "Cy")]
    assert positions == sorted(positions)
    events = [json.loads(line) for line in as_json.splitlines()]
    assert [next(iter(e.keys() & {"started", "turnCompleted", "completed"})) for e in events] == [
        "started",
        "turnCompleted",
        "turnCompleted",
        "turnCompleted",
        "completed",
    ]
    assert "Cy" not in removed
    assert exported.strip() == "wrote 8 messages to tea-history.json"
    saved = json.loads((tmp_path / "tea-history.json").read_text(encoding="utf-8"))
    assert saved[0] == {"speaker": {"type": "system"}, "content": "Cy is here."}
    assert imported.strip() == "imported 8 messages into dialogues/tea-again (turn 2)"
    assert "One more cup?" in history


def test_readme_cli_watch_follows_a_run(parley_server: ServerProcess, tmp_path: Path) -> None:
    commands.write_readme_file("tea.yaml", "yaml", tmp_path)
    commands.run("parley create tea.yaml --id tea", parley_server, tmp_path).ok()
    commands.run('parley run tea "Warm-up."', parley_server, tmp_path).ok()
    watch, run = readme_commands(README, "parley-cli-live")
    with commands.Background(watch, parley_server, tmp_path) as watching:
        # The watch subscribes before it replays: once the replay is out, it follows.
        watching.wait_for_text(["[System]: Warm-up.", "  Ann:", "  Bob:"])
        ran = commands.run(run, parley_server, tmp_path).ok()
        watched = watching.finish()
    assert watched.returncode == 0, watched.describe()
    assert "done: 2 replies, 0 failed" in ran.stdout
    assert "turn 2 · broadcast, completion order · Ann, Bob" in watched.stdout
    assert "Anyone for more tea?" in watched.stdout
    assert watched.stdout.splitlines()[-1] == "✓ turn 2 done: 2 replies, 0 failed"


def test_readme_completion_script_loads_in_bash(tmp_path: Path) -> None:
    (command,) = readme_commands(README, "parley-completion")
    assert split_command(command)[:2] == ["source", "<(parley"]
    script = command.split("#", 1)[0].strip().replace("parley", str(BIN / "parley"), 1)
    probe = (
        f"{script}\n"
        "complete -p parley\n"
        'COMP_WORDS=(parley ru); COMP_CWORD=1; _parley; echo "commands: ${COMPREPLY[*]}"\n'
        "COMP_WORDS=(parley export tea --format ''); COMP_CWORD=4; _parley;"
        ' echo "formats: ${COMPREPLY[*]}"\n'
    )
    result = subprocess.run(
        ["bash", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=commands.environment(None),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _parley parley" in result.stdout
    assert "commands: run" in result.stdout
    assert "formats: full llm-toolkit" in result.stdout


def test_readme_tls_commands(launcher: ServerLauncher, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    client_cert = ca.issue_cert("parley-cli@example.com")
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    tls = {
        "PARLEY_TLS_CERT_FILE": str(tmp_path / "server.pem"),
        "PARLEY_TLS_KEY_FILE": str(tmp_path / "server.key"),
    }
    with_tls = launcher.start(tmp_path / "tls.db", **tls)
    mutual = launcher.start(
        tmp_path / "mtls.db", PARLEY_TLS_CLIENT_CA_FILE=str(tmp_path / "ca.pem"), **tls
    )
    one_way, two_way = readme_commands(README, "parley-tls")

    assert commands.run(one_way, with_tls, tmp_path).ok().stdout.strip() == "no dialogues yet"
    assert commands.run(two_way, mutual, tmp_path).ok().stdout.strip() == "no dialogues yet"
    # Without the client certificate the mutual-TLS server refuses the connection, and
    # a plaintext client does not get through to a TLS server.
    refused = commands.run(one_way, mutual, tmp_path)
    assert refused.returncode == 1
    assert "error:" in refused.stderr
    plaintext = commands.run("parley list", with_tls, tmp_path)
    assert plaintext.returncode == 1
    assert "--tls or --ca-cert" in " ".join(plaintext.stderr.split())
