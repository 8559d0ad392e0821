"""`buf curl` through server reflection against a real `parley-server` process.

The README's walkthrough is executed as written (its ```sh blocks marked
`<!-- e2e: ... -->`), with the README's address swapped for the test server's, so the
documentation cannot drift from what the server does.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2
from parley.v1 import dialogue_pb2

from tests.e2e.harness import (
    BackgroundBuf,
    BufResult,
    ServerLauncher,
    ServerProcess,
    event_kind,
    readme_blocks,
    readme_commands,
    run_buf,
    split_command,
)

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:50051"
SERVICE = dialogue_pb2.DESCRIPTOR.services_by_name["DialogueService"]
# The README's walkthrough, in order: a command added there needs a check here.
WALKTHROUGH = [
    "--list-services",
    "--list-methods",
    "Check",
    "ListAgentProfiles",
    "CreateDialogue",
    "RunSession",
    "ListMessages",
    "GetDialogue",
    "ListDialogues",
    "UpdateDialogue",
    "AddParticipant",
    "Run",
    "RemoveParticipant",
    "ExportHistory",
    "CreateDialogue",
    "ImportHistory",
]
# Its part in several terminals at once, then its end.
LIVE = ["WatchDialogue", "AddParticipant", "RunSession", "CancelRun"]
END = ["DeleteDialogue", "GetDialogue"]
MARKERS = ("buf-curl", "buf-curl-live", "buf-curl-end", "buf-curl-auth")
# Blocks that mix buf curl with `parley` commands, run by test_readme_concepts.py.
MIXED_MARKERS = ("concepts",)

Detail = TypeVar("Detail", bound=ProtoMessage)


def readme_args(command: str, server: ServerProcess) -> tuple[str, list[str]]:
    """The label (RPC method or list flag) and `buf` arguments of one README command."""
    argv = split_command(command)
    assert argv[:2] == ["buf", "curl"], f"not a buf curl command: {command}"
    urls = [arg for arg in argv if arg.startswith(README_URL)]
    assert len(urls) == 1, f"expected one URL on {README_URL}: {command}"
    path = urls[0].removeprefix(README_URL).strip("/")
    label = path.rpartition("/")[2] if path else next(a for a in argv if a.startswith("--list"))
    return label, [arg.replace(README_URL, server.url) for arg in argv[1:]]


def run_readme(marker: str, buf: Path, server: ServerProcess) -> list[tuple[str, BufResult]]:
    commands = list(readme_commands(README, marker))
    assert commands, f"README has no ```sh block marked <!-- e2e: {marker} -->"
    results = []
    for command in commands:
        label, args = readme_args(command, server)
        results.append((label, run_buf(buf, args)))
    return results


def curl(
    buf: Path, server: ServerProcess, method: str, body: Mapping[str, Any], *flags: str
) -> BufResult:
    """One DialogueService call with a JSON request body."""
    return run_buf(
        buf,
        [
            "curl",
            "--protocol",
            "grpc",
            *flags,
            "-d",
            json.dumps(body),
            f"{server.url}/{SERVICE.full_name}/{method}",
        ],
    )


def ok(result: BufResult) -> BufResult:
    assert result.returncode == 0, result.describe()
    return result


def detail(status: Mapping[str, Any], message: Detail) -> Detail:
    """The google.rpc detail of `message`'s type in a status buf curl printed (base64)."""
    type_name = message.DESCRIPTOR.full_name
    (value,) = [d["value"] for d in status["details"] if d["type"] == type_name]
    text = value.replace("+", "-").replace("/", "_")
    message.ParseFromString(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return message


def without_varying(event: Mapping[str, Any]) -> dict[str, Any]:
    """A turn event without its times and positions, which differ between runs."""
    turn = {k: v for k, v in event["turnCompleted"].items() if k not in {"latency", "messageSeq"}}
    kept = {k: v for k, v in event.items() if k not in {"time", "sequence", "turnCompleted"}}
    return {**kept, "turnCompleted": turn}


def names(dialogue: Mapping[str, Any]) -> list[str]:
    return [p["persona"]["name"] for p in dialogue["participants"]]


def escaped(content: str) -> str:
    """A message as the echo agent quotes it: newlines as the two characters `\\n`."""
    return content.replace("\n", "\\n")


def test_readme_walkthrough_runs_as_written(buf: Path, parley_server: ServerProcess) -> None:
    results = run_readme("buf-curl", buf, parley_server)
    assert [label for label, _ in results] == WALKTHROUGH, (
        "the README's buf curl walkthrough changed: update WALKTHROUGH and its checks"
    )
    (
        services,
        methods,
        health,
        profiles,
        created,
        session,
        history,
        got,
        listed,
        updated,
        added,
        collected,
        removed,
        exported,
        recreated,
        imported,
    ) = (result for _, result in results)

    listed_services = ok(services).stdout.split()
    assert SERVICE.full_name in listed_services
    assert "grpc.health.v1.Health" in listed_services
    assert any(s.startswith("grpc.reflection.") for s in listed_services)

    listed_methods = set(ok(methods).stdout.split())
    assert {f"{SERVICE.full_name}/{m.name}" for m in SERVICE.methods} <= listed_methods

    assert ok(health).value == {"status": "SERVING"}

    echo = next(p for p in ok(profiles).value["profiles"] if p["name"] == "echo")
    assert echo["kind"] == "echo"
    assert echo["available"] is True
    assert {"delay_ms", "fail", "reply"} <= set(echo["allowedOptions"])

    dialogue = ok(created).value
    assert dialogue["name"] == "dialogues/tea"
    assert dialogue["displayName"] == "Tea time"
    assert names(dialogue) == ["Ann", "Bob"]
    assert dialogue["participants"][0]["persona"]["visualIdentity"]["icon"] == "🦊"

    events = ok(session).values
    assert [event_kind(e) for e in events] == [
        "started",
        "turnCompleted",
        "turnCompleted",
        "completed",
    ], session.describe()
    assert [e["sequence"] for e in events] == ["1", "2", "3", "4"]
    assert {e["dialogue"] for e in events} == {"dialogues/tea"}
    assert {e["turn"] for e in events} == {"1"}
    assert events[0]["started"]["participants"] == ["Ann", "Bob"]
    turns = {e["turnCompleted"]["speaker"]["name"]: e["turnCompleted"] for e in events[1:3]}
    assert set(turns) == {"Ann", "Bob"}
    for name, icon, index in (("Ann", "🦊", 0), ("Bob", "🐻", 1)):
        assert turns[name]["content"] == f"{name}:\n[System]: Shall we start?"
        assert turns[name]["speaker"]["icon"] == icon
        assert turns[name]["speaker"]["kind"] == "SPEAKER_KIND_AGENT"
        assert turns[name]["participantIndex"] == index
    # The README's sample event is Bob's, but for what varies from run to run.
    (sample,) = readme_blocks(README, "turn-event", "json")
    (bob_event,) = [e for e in events[1:3] if e["turnCompleted"]["speaker"]["name"] == "Bob"]
    assert without_varying(json.loads(sample)) == without_varying(bob_event)
    # --emit-defaults: zero values are printed, not left out.
    assert events[3]["completed"] == {"turnCount": 2, "failureCount": 0}

    messages = ok(history).value["messages"]
    assert [m["seq"] for m in messages] == ["1", "2", "3"]
    assert messages[0]["speaker"] == {"kind": "SPEAKER_KIND_SYSTEM", "name": "System"}
    assert messages[0]["content"] == "Shall we start?"
    assert messages[0]["origin"] == "MESSAGE_ORIGIN_INCOMING"
    by_seq = {m["seq"]: m for m in messages}
    for turn in turns.values():
        stored = by_seq[turn["messageSeq"]]
        assert stored["content"] == turn["content"]
        assert stored["speaker"]["name"] == turn["speaker"]["name"]
        assert stored["origin"] == "MESSAGE_ORIGIN_AGENT_GENERATED"

    dialogue = ok(got).value
    assert dialogue["name"] == "dialogues/tea"
    assert (dialogue["latestTurn"], dialogue["messageCount"]) == ("1", "3")

    assert "dialogues/tea" in [d["name"] for d in ok(listed).value["dialogues"]]

    dialogue = ok(updated).value
    assert dialogue["executionModel"] == {"sequential": {"order": ["Bob", "Ann"]}}
    assert dialogue["displayName"] == "Tea time"

    dialogue = ok(added).value
    assert names(dialogue) == ["Ann", "Bob", "Cy"]
    assert dialogue["participants"][2]["pending"] is True

    run = ok(collected).value
    assert run["completed"] is True
    assert run["turn"] == "2"
    assert [t["speaker"]["name"] for t in run["turns"]] == ["Bob", "Ann", "Cy"]
    bob, ann, cy = (t["content"] for t in run["turns"])
    # Sequential: each sees what it had not received yet, earlier steps of this run included.
    assert bob == f"Bob:\n[Ann]: {escaped(turns['Ann']['content'])}\n[System]: Cy is here."
    assert ann == (
        f"Ann:\n[Bob]: {escaped(turns['Bob']['content'])}\n[System]: Cy is here.\n"
        f"[Bob]: {escaped(bob)}"
    )
    # Cy joined with the last two turns: all of turn 1 and this turn so far.
    assert cy.splitlines()[0] == "Cy:"
    assert len(cy.splitlines()) == 1 + 3 + 3
    assert "[System]: Shall we start?" in cy.splitlines()

    assert names(ok(removed).value) == ["Ann", "Bob"]

    # llm-toolkit's history format: a JSON array of {speaker, content}, in log order.
    history_file = json.loads(ok(exported).value["content"])
    assert len(history_file) == 3 + 4
    assert history_file[0] == {"speaker": {"type": "system"}, "content": "Shall we start?"}
    assert [entry["content"] for entry in history_file[:3]] == [m["content"] for m in messages]
    assert [entry["content"] for entry in history_file[4:]] == [bob, ann, cy]
    assert history_file[1]["speaker"]["type"] == "agent"

    assert ok(recreated).value["name"] == "dialogues/reunion"
    dialogue = ok(imported).value
    assert (dialogue["name"], dialogue["messageCount"], dialogue["latestTurn"]) == (
        "dialogues/reunion",
        "1",
        "1",
    )

    follow_and_cancel(buf, parley_server, last_seq=7)

    end = run_readme("buf-curl-end", buf, parley_server)
    assert [label for label, _ in end] == END
    (deleted, missing) = (result for _, result in end)
    assert ok(deleted).value == {}
    assert missing.returncode != 0, missing.describe()
    assert missing.stdout == ""
    assert missing.error["code"] == "not_found"
    assert detail(missing.error, error_details_pb2.ErrorInfo()).reason == "DIALOGUE_NOT_FOUND"


def follow_and_cancel(buf: Path, server: ServerProcess, last_seq: int) -> None:
    """The README's live part: a watch, a run, and a cancel, each in its own terminal."""
    commands = [readme_args(c, server) for c in readme_commands(README, "buf-curl-live")]
    assert [label for label, _ in commands] == LIVE
    watch_args, add_args, run_args, cancel_args = (args for _, args in commands)

    def messages(values: list[Any]) -> list[dict[str, Any]]:
        return [v["message"] for v in values if "message" in v]

    def cancelled(values: list[Any]) -> bool:
        return any(
            m.get("metadata", {}).get("parley.run_end") == "cancelled" for m in messages(values)
        )

    with BackgroundBuf(buf, watch_args) as watch:
        # The replay is done once the last stored message is out; from here it follows.
        watch.wait_for_values(lambda vs: str(last_seq) in [m["seq"] for m in messages(vs)])
        assert names(ok(run_buf(buf, add_args)).value) == ["Ann", "Bob", "Zed"]
        with BackgroundBuf(buf, run_args) as run:
            # Sequential: Bob, Ann, then Zed, who takes a minute: cancel while he thinks.
            run.wait_for_values(lambda vs: [event_kind(e) for e in vs].count("turnCompleted") == 2)
            assert ok(run_buf(buf, cancel_args)).value == {"turn": "3"}
            session = ok(run.finish())
        watched = watch.wait_for_values(cancelled)
        watch.interrupt()

    events = session.values
    assert [event_kind(e) for e in events] == [
        "started",
        "turnCompleted",
        "turnCompleted",
        "turnFailed",
        "completed",
    ], session.describe()
    assert [e["turnCompleted"]["speaker"]["name"] for e in events[1:3]] == ["Bob", "Ann"]
    assert events[3]["turnFailed"]["speaker"]["name"] == "Zed"
    assert events[3]["turnFailed"]["code"] == "RUN_CANCELLED"
    assert events[4]["completed"] == {"turnCount": 2, "failureCount": 1}

    # Replay and live messages join without a gap or a repeat: the two replayed, the
    # prompt, Bob's and Ann's replies, and the notice that the run was cancelled.
    seqs = [int(m["seq"]) for m in messages(watched)]
    assert seqs == list(range(last_seq - 1, last_seq + 5)), watched
    replies = {e["turnCompleted"]["messageSeq"] for e in events[1:3]}
    assert replies <= {m["seq"] for m in messages(watched)}
    # The run's other events reach watchers too (replies come as messages).
    live = [event_kind(v["event"]) for v in watched if "event" in v]
    assert {"started", "turnFailed", "completed"} <= set(live), watched


def test_readme_walkthrough_calls_every_rpc() -> None:
    undocumented = {m.name for m in SERVICE.methods} - {*WALKTHROUGH, *LIVE, *END}
    assert not undocumented, f"add these RPCs to the README's buf curl walkthrough: {undocumented}"


def test_readme_auth_example(buf: Path, launcher: ServerLauncher) -> None:
    server = launcher.start(PARLEY_AUTH_TOKENS="s3cret,other")
    ((label, result),) = run_readme("buf-curl-auth", buf, server)
    assert label == "ListDialogues"
    assert ok(result).value == {}

    anonymous = curl(buf, server, "ListDialogues", {})
    assert anonymous.returncode != 0
    assert anonymous.error["code"] == "unauthenticated"
    wrong = curl(buf, server, "ListDialogues", {}, "-H", "authorization: Bearer nope")
    assert wrong.error["code"] == "unauthenticated"
    # Health and reflection stay open to load balancers and tools.
    health = run_buf(
        buf, ["curl", "--protocol", "grpc", f"{server.url}/grpc.health.v1.Health/Check"]
    )
    assert ok(health).value == {"status": "SERVING"}


def test_readme_config_file_starts_a_server(
    buf: Path, launcher: ServerLauncher, tmp_path: Path
) -> None:
    (config,) = readme_blocks(README, "config", "toml")
    path = tmp_path / "parley.toml"
    path.write_text(config, encoding="utf-8")
    # The environment wins over the file: a free port and the test's database.
    server = launcher.start(PARLEY_CONFIG=str(path))
    dialogue = {
        "participants": [
            {"persona": {"name": "Pat"}, "agent": "patient-echo"},
            {"persona": {"name": "Eve"}, "agent": "echo"},
        ]
    }
    ok(curl(buf, server, "CreateDialogue", {"dialogue_id": "cfg", "dialogue": dialogue}))
    run = ok(curl(buf, server, "Run", {"dialogue": "cfg", "text": "hello"})).value
    assert sorted(t["content"] for t in run["turns"]) == [
        "Eve:\n[System]: hello",
        "Pat:\n[System]: hello",
    ]


def test_readme_agent_profiles_load(buf: Path, launcher: ServerLauncher, tmp_path: Path) -> None:
    (profiles,) = readme_blocks(README, "agents", "toml")
    path = tmp_path / "agents.toml"
    path.write_text(profiles, encoding="utf-8")
    # No key in the environment: the claude profile is listed, but unavailable.
    server = launcher.start(PARLEY_CONFIG=str(path), ANTHROPIC_API_KEY="", OPENAI_API_KEY="")
    listed = ok(curl(buf, server, "ListAgentProfiles", {})).value["profiles"]
    kinds = {p["name"]: p["kind"] for p in listed}
    assert kinds == {
        "echo": "echo",
        "local-llama": "openai",
        "claude": "anthropic",
        "claude-code": "command",
        "remote": "grpc",
    }
    claude = next(p for p in listed if p["name"] == "claude")
    assert "available" not in claude
    assert "ANTHROPIC_API_KEY" in claude["unavailableReason"]
    llama = next(p for p in listed if p["name"] == "local-llama")
    assert sorted(llama["allowedOptions"]) == ["max_tokens", "temperature"]

    dialogue = {"participants": [{"persona": {"name": "Cla"}, "agent": "claude"}]}
    ok(curl(buf, server, "CreateDialogue", {"dialogue_id": "keyless", "dialogue": dialogue}))
    events = ok(curl(buf, server, "RunSession", {"dialogue": "keyless", "text": "hi"})).values
    (failed,) = [e["turnFailed"] for e in events if event_kind(e) == "turnFailed"]
    assert "ANTHROPIC_API_KEY" in failed["message"]


def test_every_buf_curl_command_in_the_readme_is_exercised() -> None:
    written = []
    in_code = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif in_code and line.lstrip().startswith("buf curl "):
            written.append(line)
    exercised = [
        command
        for marker in (*MARKERS, *MIXED_MARKERS)
        for command in readme_commands(README, marker)
        if command.startswith("buf curl ")
    ]
    assert len(written) == len(exercised), (
        "a `buf curl` command in README.md is outside the blocks the e2e tests run: mark"
        " its ```sh block with <!-- e2e: buf-curl --> and check it in this module"
    )


def grpcurl_twin(command: str) -> tuple[str, dict[str, Any] | None, list[str]]:
    """What a grpcurl command asks: its target (method, `list`, `describe X`), its body
    and its headers, in the terms buf curl commands are compared with."""
    argv = split_command(command)
    assert argv[0] == "grpcurl", command
    assert "-plaintext" in argv, f"grpcurl needs -plaintext for a server without TLS: {command}"
    body: dict[str, Any] | None = None
    headers: list[str] = []
    flags: list[str] = []
    words = iter(argv[1:])
    rest: list[str] = []
    for word in words:
        if word == "-d":
            body = json.loads(next(words))
        elif word == "-H":
            headers.append(next(words))
        elif word.startswith("-"):
            flags.append(word)
        else:
            rest.append(word)
    address, *target = rest
    assert address == README_URL.removeprefix("http://"), command
    if "-emit-defaults" in flags:
        headers.append("--emit-defaults")
    return " ".join(target), body, headers


def buf_curl_twin(command: str) -> tuple[str, dict[str, Any] | None, list[str]]:
    argv = split_command(command)
    body: dict[str, Any] | None = None
    headers: list[str] = []
    target = ""
    words = iter(argv[2:])
    for word in words:
        if word == "-d":
            body = json.loads(next(words))
        elif word == "-H":
            headers.append(next(words))
        elif word == "--emit-defaults":
            headers.append(word)
        elif word == "--list-services":
            target = "list"
        elif word.startswith(README_URL) and not target:
            target = word.removeprefix(README_URL).strip("/")
    return target, body, headers


def test_grpcurl_commands_mirror_the_buf_curl_ones() -> None:
    grpcurl = list(readme_commands(README, "grpcurl"))
    assert grpcurl, "README has no grpcurl block"
    buf_commands = [
        buf_curl_twin(command)
        for marker in (*MARKERS, *MIXED_MARKERS)
        for command in readme_commands(README, marker)
        if command.startswith("buf curl ")
    ]
    described = set()
    for command in grpcurl:
        target, body, headers = grpcurl_twin(command)
        verb, _, symbol = target.partition(" ")
        if verb in ("list", "describe") and symbol:
            # buf curl has no describe: the symbol must at least exist.
            known = {
                SERVICE.full_name,
                *(f"parley.v1.{m}" for m in dialogue_pb2.DESCRIPTOR.message_types_by_name),
            }
            assert symbol in known, command
            described.add(verb)
            continue
        assert (target, body, headers) in buf_commands, (
            f"this grpcurl command has no buf curl twin in the README: {command}"
        )
    assert described == {"list", "describe"}
    # The recipes the README promises in both tools.
    methods = {grpcurl_twin(c)[0].rpartition("/")[2] for c in grpcurl}
    assert {"list", "CreateDialogue", "RunSession", "ListMessages", "WatchDialogue"} <= methods


def test_readme_tokens_file(buf: Path, launcher: ServerLauncher, tmp_path: Path) -> None:
    (tokens,) = readme_blocks(README, "tokens-file", "text")
    path = tmp_path / "tokens.txt"
    path.write_text(tokens, encoding="utf-8")
    server = launcher.start(PARLEY_AUTH_TOKENS_FILE=str(path))
    everything, team, dashboard = (
        line.split()[0] for line in tokens.splitlines() if line and not line.startswith("#")
    )

    def call(token: str, method: str, body: Mapping[str, Any]) -> BufResult:
        return curl(buf, server, method, body, "-H", f"authorization: Bearer {token}")

    dialogue = {"participants": [{"persona": {"name": "Ann"}, "agent": "echo"}]}
    for dialogue_id in ("team-a-plans", "other"):
        ok(call(everything, "CreateDialogue", {"dialogue_id": dialogue_id, "dialogue": dialogue}))
    ok(call(team, "Run", {"dialogue": "team-a-plans", "text": "hi"}))
    denied = call(team, "GetDialogue", {"name": "other"})
    assert denied.error["code"] == "permission_denied"
    assert detail(denied.error, error_details_pb2.ErrorInfo()).reason == "DIALOGUE_NOT_ALLOWED"
    assert ok(call(dashboard, "ListMessages", {"dialogue": "other"})).value == {}
    read_only = call(dashboard, "Run", {"dialogue": "other", "text": "hi"})
    assert read_only.error["code"] == "permission_denied"
    assert detail(read_only.error, error_details_pb2.ErrorInfo()).reason == "READ_ONLY_TOKEN"
    assert call("nope", "ListDialogues", {}).error["code"] == "unauthenticated"


def test_failed_participant_is_a_turn_failed_event_and_the_stream_ends_ok(
    buf: Path, parley_server: ServerProcess
) -> None:
    dialogue = {
        "participants": [
            {"persona": {"name": "Flaky"}, "agent": "echo", "agent_options": {"fail": "always"}},
            {"persona": {"name": "Steady"}, "agent": "echo"},
        ]
    }
    ok(curl(buf, parley_server, "CreateDialogue", {"dialogue_id": "f", "dialogue": dialogue}))
    result = ok(curl(buf, parley_server, "RunSession", {"dialogue": "dialogues/f", "text": "go"}))
    events = result.values
    assert event_kind(events[0]) == "started"
    assert sorted(event_kind(e) for e in events[1:-1]) == ["turnCompleted", "turnFailed"]
    failed = next(e["turnFailed"] for e in events if event_kind(e) == "turnFailed")
    assert failed["speaker"]["name"] == "Flaky"
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", failed["code"]), failed
    assert events[-1]["completed"] == {"turnCount": 1, "failureCount": 1}


def test_invalid_argument_carries_field_violations(buf: Path, parley_server: ServerProcess) -> None:
    result = curl(
        buf,
        parley_server,
        "CreateDialogue",
        {"dialogue_id": "Not_An_Id", "dialogue": {"participants": [{"persona": {"name": "A"}}]}},
    )
    assert result.returncode != 0
    assert result.error["code"] == "invalid_argument"
    bad_request = detail(result.error, error_details_pb2.BadRequest())
    fields = [violation.field for violation in bad_request.field_violations]
    assert "dialogue_id" in fields
    assert "dialogue.participants[0].agent" in fields
    missing = curl(buf, parley_server, "ListMessages", {"dialogue": "dialogues/nope"})
    assert missing.error["code"] == "not_found"
