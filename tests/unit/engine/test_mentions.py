"""@mention matching, per strategy (SEMANTICS.md, Execution models: Mentioned)."""

from __future__ import annotations

import pytest
from parley.server.engine.mentions import find_mentions
from parley.server.engine.model import MentionMatchStrategy

EXACT = MentionMatchStrategy.EXACT_WORD
NAME = MentionMatchStrategy.NAME
PARTIAL = MentionMatchStrategy.PARTIAL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Alice hi", {"Alice"}),
        ("hi @Alice, and @Bob.", {"Alice", "Bob"}),
        ("(@Alice) [@Bob] {@Carol}", {"Alice", "Bob", "Carol"}),
        ('"@Alice" `@Bob` <@Carol> @Alice|@Bob/@Carol\\', {"Alice", "Bob", "Carol"}),
        ("@Alice! @Bob? @Carol; @Alice:", {"Alice", "Bob", "Carol"}),
        ("@alice is not Alice", set()),
        ("email@Alice.com", {"Alice"}),
        ("no mention of Alice", set()),
        ("@@Alice", {"Alice"}),
        ("@太郎 さん", {"太郎"}),
        ("@太郎、こんにちは", set()),  # the ideographic comma is not a delimiter
    ],
)
def test_exact_word(text: str, expected: set[str]) -> None:
    assert find_mentions([text], ["Alice", "Bob", "Carol", "太郎"], EXACT) == expected


def test_exact_word_does_not_match_names_with_spaces() -> None:
    assert find_mentions(["@Bob Smith"], ["Bob Smith"], EXACT) == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Bob Smith, please", {"Bob Smith"}),
        ("@Bob please", {"Bob"}),
        ("@Bob Smith", {"Bob Smith"}),
        ("@Bob Smithers", {"Bob"}),  # the longer name must be followed by a terminator
        ("@Bob Smith? and @Bob.", {"Bob Smith", "Bob"}),
        ("@Bobby", set()),
        ("@Ana María: hola", {"Ana María"}),
    ],
)
def test_name_prefers_the_longest_name(text: str, expected: set[str]) -> None:
    assert find_mentions([text], ["Bob", "Bob Smith", "Ana María"], NAME) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Al go", {"Alexandra"}),
        ("@Alex go", {"Alexandra"}),
        ("@Alexander go", set()),
        ("@B go", {"Bo"}),
        ("@Z go", set()),
    ],
)
def test_partial_selects_the_longest_name_with_the_prefix(text: str, expected: set[str]) -> None:
    assert find_mentions([text], ["Alex", "Alexandra", "Bo"], PARTIAL) == expected


def test_mentions_are_collected_across_texts() -> None:
    found = find_mentions(["@Alice", "then @Bob"], ["Alice", "Bob", "Carol"], EXACT)
    assert found == {"Alice", "Bob"}
