"""The contract stays clean and compatible: buf lint, buf breaking, CHANGELOG, API docs.

`make lint` runs buf lint and buf breaking too; running them here as well means
`make test` alone catches an incompatible change, with the rule that was broken.
"""

from __future__ import annotations

import filecmp
import re
import subprocess
import sys
from pathlib import Path

import pytest
from parley.v1 import agent_pb2, dialogue_pb2

from tests.e2e.harness import clean_environment, run_buf

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ROOT / "protos-released"
CHANGELOG = ROOT / "CHANGELOG.md"


def released_version() -> str:
    found = re.search(r"released in \*\*v(\d+\.\d+\.\d+)\*\*", (RELEASED / "README.md").read_text())
    assert found, "protos-released/README.md must name the version it holds"
    return found[1]


def contract_changed() -> bool:
    """Whether protos/ differs from the released copy."""

    def differs(comparison: filecmp.dircmp[str]) -> bool:
        if comparison.left_only or comparison.right_only or comparison.diff_files:
            return True
        return any(differs(sub) for sub in comparison.subdirs.values())

    return differs(filecmp.dircmp(ROOT / "protos" / "parley", RELEASED / "parley"))


def test_buf_lint(buf: Path) -> None:
    result = subprocess.run(
        [str(buf), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_against_the_released_contract(buf: Path) -> None:
    result = subprocess.run(
        [str(buf), "breaking", "--against", "protos-released"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        "protos/ breaks clients of the released contract (protos-released/):\n"
        + result.stdout
        + result.stderr
    )


def test_buf_breaking_catches_a_renumbered_field(buf: Path, tmp_path: Path) -> None:
    """The check itself works: a field moved to another number is reported."""
    changed = tmp_path / "protos"
    (changed / "parley" / "v1").mkdir(parents=True)
    for proto in (ROOT / "protos" / "parley" / "v1").glob("*.proto"):
        text = proto.read_text(encoding="utf-8")
        if proto.name == "dialogue.proto":
            text = text.replace("string display_name = 2;", "string display_name = 12;", 1)
        (changed / "parley" / "v1" / proto.name).write_text(text, encoding="utf-8")
    result = run_buf(buf, ["breaking", str(changed), "--against", str(RELEASED)])
    assert result.returncode != 0
    assert "display_name" in result.stdout + result.stderr


def test_changelog_has_an_entry_for_every_api_change() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions, "CHANGELOG.md has no version sections"
    assert released_version() in versions, "the released contract's version has no entry"
    if contract_changed():
        unreleased = text.split("## [Unreleased]", 1)
        assert len(unreleased) == 2, (
            "protos/ changed since the released contract: describe the change under"
            " `## [Unreleased]` / `### API` in CHANGELOG.md"
        )
        section = unreleased[1].split("\n## [", 1)[0]
        assert "### API" in section, "the Unreleased section needs an `### API` subsection"


def test_changelog_lists_every_rpc_of_the_first_release() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    first = text.split("## [0.1.0]", 1)[1]
    services = [
        *dialogue_pb2.DESCRIPTOR.services_by_name.values(),
        *agent_pb2.DESCRIPTOR.services_by_name.values(),
    ]
    missing = [m.name for s in services for m in s.methods if f"`{m.name}`" not in first]
    assert not missing, f"CHANGELOG.md's 0.1.0 entry does not name: {missing}"


def test_api_reference_is_generated_from_the_current_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate_api.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
    )
    assert result.returncode == 0, result.stderr


def test_api_reference_documents_every_rpc_and_message() -> None:
    text = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    for file in (dialogue_pb2.DESCRIPTOR, agent_pb2.DESCRIPTOR):
        for service in file.services_by_name.values():
            for method in service.methods:
                assert f"### {service.name}.{method.name}\n" in text
        for name in file.message_types_by_name:
            assert f"### {name}\n" in text
        for name in file.enum_types_by_name:
            assert f"### {name}\n" in text
    # Comments made it through: a phrase from RunSession's.
    assert "Each reply is\nstored before it is sent." in text
