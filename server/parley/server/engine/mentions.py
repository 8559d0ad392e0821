"""Finding @mentions of participants in text (the Mentioned execution model).

Three strategies, as SEMANTICS.md defines them:

- EXACT_WORD: `@` then a run of characters up to whitespace or a delimiter, compared
  exactly with participant names (so `@太郎` works).
- NAME: `@Full Name` followed by whitespace, `, . ! ? ; :` or the end of the text; when a
  name and a longer name starting with it both match, the longer one wins.
- PARTIAL: `@prefix` (a word as in EXACT_WORD) selects the longest participant name
  starting with that prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from parley.server.engine.model import MentionMatchStrategy

WORD_DELIMITERS = frozenset("@,.!?;:()[]{}<>\"'`/\\|")
NAME_TERMINATORS = frozenset(",.!?;:")


def _words_after_at(text: str) -> Iterable[str]:
    """The word following each `@`, for EXACT_WORD and PARTIAL."""
    for start in _at_positions(text):
        end = start
        while end < len(text) and not text[end].isspace() and text[end] not in WORD_DELIMITERS:
            end += 1
        if end > start:
            yield text[start:end]


def _at_positions(text: str) -> Iterable[int]:
    index = text.find("@")
    while index != -1:
        yield index + 1
        index = text.find("@", index + 1)


def _name_at(text: str, start: int, names_longest_first: Sequence[str]) -> str | None:
    for name in names_longest_first:
        if text.startswith(name, start):
            end = start + len(name)
            if end == len(text) or text[end].isspace() or text[end] in NAME_TERMINATORS:
                return name
    return None


def find_mentions(
    texts: Iterable[str], names: Sequence[str], strategy: MentionMatchStrategy
) -> set[str]:
    """The participant names mentioned anywhere in `texts`."""
    found: set[str] = set()
    known = set(names)
    longest_first = sorted(names, key=len, reverse=True)
    for text in texts:
        if "@" not in text:
            continue
        match strategy:
            case MentionMatchStrategy.EXACT_WORD:
                found.update(word for word in _words_after_at(text) if word in known)
            case MentionMatchStrategy.NAME:
                for start in _at_positions(text):
                    name = _name_at(text, start, longest_first)
                    if name is not None:
                        found.add(name)
            case MentionMatchStrategy.PARTIAL:
                for prefix in _words_after_at(text):
                    # Longest first, ties broken by participant order (sorted is stable).
                    match_ = next((n for n in longest_first if n.startswith(prefix)), None)
                    if match_ is not None:
                        found.add(match_)
    return found
