"""The README's Concepts section, run as written against a real server.

Each concept has one example (`parley` or `buf curl` commands marked
`<!-- e2e: concepts -->`); they run in order on one dialogue, and each is checked for the
behaviour the text around it describes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import commands
from tests.e2e.commands import README, Background, Result
from tests.e2e.harness import ServerProcess, readme_commands

pytestmark = pytest.mark.e2e


def reply_order(output: str, names: list[str]) -> list[str]:
    """The order in which the rendered run shows each participant's reply header."""
    positions = {name: output.index(f"{name}:\n") for name in names if f"{name}:\n" in output}
    return sorted(positions, key=positions.__getitem__)


def reply_of(output: str, name: str) -> list[str]:
    """The lines of one participant's reply in a rendered run (the indented block)."""
    lines = output.splitlines()
    start = lines.index(f"  {name}:")
    block = [lines[start].strip()]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block


def test_concepts_examples_run_as_written(
    buf: Path, parley_server: ServerProcess, tmp_path: Path
) -> None:
    commands.write_readme_file("council.yaml", "yaml", tmp_path)
    results: list[Result] = [
        commands.run(command, parley_server, tmp_path).ok()
        for command in readme_commands(README, "concepts")
    ]
    labels = [r.command.split()[1] if r.command.startswith("parley") else "buf" for r in results]
    assert labels == [
        "create",  # execution models
        "run",
        "buf",  # ordering
        "run",
        "run",
        "add-participant",  # joining
        "run",
        "buf",  # reactions
        "run",
        "run",
        "buf",  # context
        "get",
    ], "the README's Concepts examples changed: update this test"
    (
        created,
        mentioned,
        to_broadcast,
        participant_order,
        explicit,
        added,
        joined,
        to_user_only,
        ignored,
        reacted,
        with_context,
        shown,
    ) = (r.stdout for r in results)

    assert created.strip() == "dialogues/council"

    # Mentioned: only Bo is called.
    assert mentioned.splitlines()[0] == "turn 1 · @mentioned (exact word) · Bo"
    assert reply_order(mentioned, ["Ada", "Bo"]) == ["Bo"]

    assert json.loads(to_broadcast)["executionModel"] == {
        "broadcast": {"order": "BROADCAST_ORDER_PARTICIPANT_ORDER"}
    }
    # Participant order: Ada (300 ms) is emitted before Bo, who finished first.
    assert "broadcast, participant order" in participant_order.splitlines()[0]
    assert reply_order(participant_order, ["Ada", "Bo"]) == ["Ada", "Bo"]
    # The override lasts one run.
    assert explicit.splitlines()[0] == "turn 3 · broadcast, explicit order: Bo, Ada · Ada, Bo"
    assert reply_order(explicit, ["Ada", "Bo"]) == ["Bo", "Ada"]

    assert "Cy (reviewer) · echo · joining" in added
    # recent:1 — turn 3 and the current turn, nothing older.
    cy = reply_of(joined, "Cy")
    assert "[System]: Bo first this time." in cy
    assert "[System]: Cy, welcome: here is where we are." in cy
    assert "[System]: Status round, please." not in cy

    assert json.loads(to_user_only)["reactionStrategy"] == "REACTION_STRATEGY_USER_ONLY"
    assert "nobody to call" in ignored
    assert "done: 0 replies, 0 failed" in ignored
    for name in ("Ada", "Bo", "Cy"):
        reply = reply_of(reacted, name)
        assert "[System]: The nightly build is green." in reply
        assert reply[-1] == "[Dana]: Shall we merge?"

    context = json.loads(with_context)["context"]
    assert context["talkStyle"] == "TALK_STYLE_DECISION_MAKING"
    assert context["policy"] == {"Ada": {}}
    assert "setting: Release planning for Parley 0.2" in shown

    cancelled_run_is_recorded(parley_server, tmp_path)


def cancelled_run_is_recorded(server: ServerProcess, cwd: Path) -> None:
    """The README's three terminals: a slow participant, a run, a cancel, the log."""
    add, run, cancel, history = readme_commands(README, "concepts-cancel")
    assert "add-participant" in add
    assert " run " in run
    assert " cancel " in cancel
    assert " history " in history
    commands.run(add, server, cwd).ok()
    with Background(run, server, cwd) as running:
        running.wait_for_text(["  Ada:", "  Bo:", "  Cy:"])
        cancelled = commands.run(cancel, server, cwd).ok()
        ran = running.finish().ok()
    assert cancelled.stdout.strip() == "turn 7 of dialogues/council stops now"
    assert "✗ Zed failed: RUN_CANCELLED" in ran.stdout
    assert "turn 7 done: 3 replies, 1 failed" in ran.stdout
    log = commands.run(history, server, cwd).ok().stdout.splitlines()
    assert log[-2].startswith("#")
    assert log[-2].endswith("· turn 7 · System · notification")
    assert log[-1] == "  Turn 7 was cancelled before every participant replied."
