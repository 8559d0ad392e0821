"""The Node.js example (examples/node) against a real `parley-server`.

Runs the README's Node commands as written (`npm ci` installs the locked dependencies
from the npm registry into examples/node/node_modules), then checks what a Node
developer relies on: events streamed as they happen, a cancellation from the Node side
that the server honours, and errors with their code and google.rpc details. Skipped,
saying so, only when node or npm is not installed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from parley.client import ParleyClient
from parley.v1 import dialogue_pb2 as pb

from tests.e2e import commands
from tests.e2e.commands import README, ROOT, Background, Result
from tests.e2e.harness import ServerProcess, readme_blocks, readme_commands, split_command

NODE_DIR = ROOT / "examples" / "node"
NPM_TIMEOUT_S = 300.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not commands.node_available(),
        reason="node and npm are not installed: the Node.js example needs Node 18 or newer",
    ),
]


def installed() -> bool:
    """Whether node_modules holds exactly what package-lock.json locks."""
    hidden = NODE_DIR / "node_modules" / ".package-lock.json"
    if not hidden.exists():
        return False
    locked = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    present = json.loads(hidden.read_text(encoding="utf-8"))
    wanted = {k: v.get("version") for k, v in locked["packages"].items() if k}
    have = {k: v.get("version") for k, v in present["packages"].items() if k}
    return wanted == have


def npm_ci() -> None:
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        env=commands.environment(None),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not installed():
        npm_ci()
    return NODE_DIR / "node_modules"


def node(args: list[str], server: ServerProcess, *, timeout: float = 60.0) -> Result:
    return commands.run(" ".join(["node", *args]), server, NODE_DIR, timeout=timeout)


def node_argv(*args: str) -> str:
    """A node command line as a string the README runner splits back into `args`."""
    return " ".join(["node", *(json.dumps(a) if " " in a else a for a in args)])


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def kind(event: dict[str, Any]) -> str:
    return str(event.get("event") or next(iter(event)))


def test_readme_node_commands(parley_server: ServerProcess) -> None:
    steps = list(readme_commands(README, "node"))
    assert [split_command(s)[:2] for s in steps] == [
        ["cd", "examples/node"],
        ["npm", "ci"],
        ["node", "discover.js"],
        ["node", "run.js"],
    ], "the README's Node commands changed: update this test"
    assert (ROOT / split_command(steps[0])[1]) == NODE_DIR
    results = [
        commands.run(step, parley_server, NODE_DIR, timeout=NPM_TIMEOUT_S) for step in steps[1:]
    ]
    _, discovered, ran = (r.ok() for r in results)
    assert installed()

    services = discovered.stdout.split("\n\n")[0].splitlines()
    assert services[0] == "services:"
    assert {s.strip() for s in services[1:]} >= {
        "parley.v1.DialogueService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    service = pb.DESCRIPTOR.services_by_name["DialogueService"]
    for method in service.methods:
        response = ("stream " if method.server_streaming else "") + method.output_type.full_name
        line = f"rpc {method.name}({method.input_type.full_name}) returns ({response});"
        assert f"  {line}" in discovered.stdout.splitlines(), line

    lines = ran.stdout.splitlines()
    assert lines[0].startswith("created dialogues/node-")
    assert lines[1] == "turn 1 started: calling Ann, Bob"
    # Bob has no delay, Ann 300 ms: Bob's turn arrives first.
    assert lines[2].startswith("🐻 Bob (guest) · ")
    assert lines[3:5] == ["  Bob:", "  [System]: Shall we start?"]
    assert lines[5].startswith("🦊 Ann (host) · ")
    assert lines[-1] == "turn 1 completed: 2 replies, 0 failed"
    dialogue = lines[0].removeprefix("created ")
    with ParleyClient(parley_server.address) as client:
        stored = [m.content for m in client.list_messages(dialogue)]
    assert stored[0] == "Shall we start?"
    assert sorted(stored[1:]) == [
        "Ann:\n[System]: Shall we start?",
        "Bob:\n[System]: Shall we start?",
    ]


def test_describe_a_message_by_reflection(node_modules: Path, parley_server: ServerProcess) -> None:
    # The README mentions this form in its text.
    described = node(
        ["discover.js", parley_server.address, "parley.v1.RunSessionRequest"], parley_server
    ).ok()
    assert "message parley.v1.RunSessionRequest {" in described.stdout
    assert "  string dialogue = 1;" in described.stdout
    assert "  repeated parley.v1.InputMessage messages = 3;" in described.stdout


def test_events_arrive_one_at_a_time(node_modules: Path, parley_server: ServerProcess) -> None:
    command = node_argv(
        "run.js", "--server", parley_server.address, "--json", "--dialogue", "stream",
        "--delay-ms", "3000", "Pass the milk?",
    )  # fmt: skip
    with Background(command, parley_server, NODE_DIR) as running:
        # Bob's turn is printed while Ann is still thinking: the stream is not buffered.
        running.wait_for_text(['"event":"turn_completed"'])
        early = json_lines(running.stdout.text)
        assert running.process.poll() is None
        finished = running.finish().ok()
    assert [kind(e) for e in early] == ["created", "started", "turn_completed"]
    events = json_lines(finished.stdout)
    assert [kind(e) for e in events] == [
        "created",
        "started",
        "turn_completed",
        "turn_completed",
        "completed",
    ]
    run = events[1:]
    assert [e["sequence"] for e in run] == ["1", "2", "3", "4"]
    assert {e["turn"] for e in run} == {"1"}
    assert run[0]["started"]["participants"] == ["Ann", "Bob"]
    bob, ann = run[1]["turn_completed"], run[2]["turn_completed"]
    assert (bob["speaker"]["name"], ann["speaker"]["name"]) == ("Bob", "Ann")
    assert ann["speaker"]["icon"] == "🦊"
    assert run[3]["completed"] == {"turn_count": 2}
    with ParleyClient(parley_server.address) as client:
        log = {m.seq: m for m in client.list_messages("stream")}
    for turn in (bob, ann):
        assert log[int(turn["message_seq"])].content == turn["content"]


def test_cancelling_from_node_cancels_the_run(
    node_modules: Path, parley_server: ServerProcess
) -> None:
    cancelled = node(
        ["run.js", "--server", parley_server.address, "--json", "--dialogue", "cancel-me",
         "--delay-ms", "60000", "--cancel-after", "1", "Take", "your", "time"],
        parley_server,
    ).ok()  # fmt: skip
    events = json_lines(cancelled.stdout)
    assert [kind(e) for e in events] == ["created", "started", "turn_completed", "cancelled"]

    with ParleyClient(parley_server.address, timeout=30) as client:
        # The server noticed: the log records the cancelled turn...
        deadline = time.monotonic() + 20
        notices: list[pb.Message] = []
        while not notices and time.monotonic() < deadline:
            notices = [
                m
                for m in client.list_messages("cancel-me")
                if m.metadata.get("parley.run_end") == "cancelled"
            ]
            time.sleep(0.05)
        (notice,) = notices
        assert (notice.turn, notice.type) == (1, pb.MESSAGE_TYPE_NOTIFICATION)
        assert notice.speaker.kind == pb.SPEAKER_KIND_SYSTEM
        # ...the dialogue runs again long before Ann's minute is up, and the next call
        # of each participant delivers the notice.
        started = time.monotonic()
        again = client.turns("cancel-me", "Again?", queue=10)
        bob = next(iter(again))  # leaving the loop early cancels this run too
        assert time.monotonic() - started < 20
    assert bob.speaker.name == "Bob"
    assert f"[System]: {notice.content}" in bob.content.splitlines()


def test_errors_carry_code_and_error_info(node_modules: Path, parley_server: ServerProcess) -> None:
    missing = node(
        ["run.js", "--server", parley_server.address, "--json", "--existing", "--dialogue", "nope"],
        parley_server,
    )  # fmt: skip
    assert missing.returncode == 1
    (line,) = json_lines(missing.stdout)
    error = line["error"]
    assert (error["code"], error["codeName"]) == (5, "NOT_FOUND")
    assert (error["reason"], error["domain"]) == ("DIALOGUE_NOT_FOUND", "parley.dev")

    invalid = node(
        ["run.js", "--server", parley_server.address, "--json", "--dialogue", "Not_An_Id"],
        parley_server,
    )  # fmt: skip
    (line,) = json_lines(invalid.stdout)
    error = line["error"]
    assert error["codeName"] == "INVALID_ARGUMENT"
    assert error["reason"] == "INVALID_ARGUMENT"
    assert "dialogue_id" in [v["field"] for v in error["fieldViolations"]]

    # As people read it: the README's example output, exactly.
    readable = node(
        ["run.js", "--server", parley_server.address, "--existing", "--dialogue", "nope"],
        parley_server,
    )  # fmt: skip
    (expected,) = readme_blocks(README, "node-error", "text")
    assert readable.returncode == 1
    assert readable.stderr == expected


def test_deadline_exceeded(node_modules: Path, parley_server: ServerProcess) -> None:
    late = node(
        ["run.js", "--server", parley_server.address, "--json", "--dialogue", "slow",
         "--delay-ms", "5000", "--timeout", "1"],
        parley_server,
    )  # fmt: skip
    assert late.returncode == 1
    last = json_lines(late.stdout)[-1]
    assert last["error"]["codeName"] == "DEADLINE_EXCEEDED"
