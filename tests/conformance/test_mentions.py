"""Execution models — Mentioned: EXACT_WORD, NAME, PARTIAL, fallback, catch-up."""

from __future__ import annotations

import pytest
from parley.v1 import dialogue_pb2 as pb

from .harness import (
    SLOW_MS,
    Dialogues,
    echo,
    mentioned,
    order,
    quoted,
    reply_of,
    said,
    seen_by,
    started,
    user,
)

EXACT_WORD = pb.MENTION_MATCH_STRATEGY_EXACT_WORD
NAME = pb.MENTION_MATCH_STRATEGY_NAME
PARTIAL = pb.MENTION_MATCH_STRATEGY_PARTIAL


def called(events: list[pb.SessionEvent]) -> list[str]:
    return list(started(events).participants)


def quiet(name: str, **options: str) -> pb.Participant:
    """A participant whose reply mentions nobody (echo replies quote the @mentions)."""
    return echo(name, reply=options.get("reply", "noted"))


def test_exact_word_calls_only_the_mentioned(dialogues: Dialogues) -> None:
    """Rule: Mentioned — "only participants @mentioned in this turn's input ... are
    called"; `EXACT_WORD` (default) compares the word after `@` exactly with names."""
    d = dialogues.create(echo("Ann"), echo("Bob"), echo("Cy"), model=mentioned())
    events = d.stream("@Bob what do you think?")
    assert called(events) == ["Bob"]
    assert order(events) == ["Bob"]
    assert started(events).execution_model.mentioned.strategy == EXACT_WORD


def test_exact_word_several_mentions(dialogues: Dialogues) -> None:
    """Rule: Mentioned EXACT_WORD — every mentioned participant is called, in participant
    order for the ties of completion (here `@` itself ends a word: `@Cy@Ann`)."""
    d = dialogues.create(echo("Ann"), echo("Bob"), echo("Cy"), model=mentioned())
    events = d.stream("@Cy@Ann ping")
    assert called(events) == ["Ann", "Cy"]
    assert order(events) == ["Ann", "Cy"]


def test_exact_word_unicode_names(dialogues: Dialogues) -> None:
    """Rule: Mentioned EXACT_WORD — "compared exactly with participant names (so `@太郎`
    works)"."""
    d = dialogues.create(echo("太郎"), echo("花子"), echo("Ann"), model=mentioned())
    events = d.stream("こんにちは @太郎! 元気?")
    assert called(events) == ["太郎"]
    assert seen_by(events, "太郎") == ["[System]: こんにちは @太郎! 元気?"]


def test_name_and_partial_with_unicode_names(dialogues: Dialogues) -> None:
    """Rule: Mentioned NAME and PARTIAL — names are compared as text, Unicode included:
    `@山田 太郎` (NAME, a full name with a space) and `@花` (PARTIAL prefix of 花子)."""
    by_name = dialogues.create(quiet("山田 太郎"), quiet("花子"), model=mentioned(NAME))
    assert called(by_name.stream("@山田 太郎 よろしく")) == ["山田 太郎"]
    assert called(by_name.stream("お願いします @山田 太郎")) == ["山田 太郎"]
    by_prefix = dialogues.create(quiet("山田 太郎"), quiet("花子"), model=mentioned(PARTIAL))
    assert called(by_prefix.stream("@花 どう?")) == ["花子"]


@pytest.mark.parametrize("delimiter", [*",.!?;:()[]{}<>\"'`/\\|", " ", "\t", "\n", "@"])
def test_exact_word_ends_at_each_delimiter(dialogues: Dialogues, delimiter: str) -> None:
    """Rule: Mentioned EXACT_WORD — "`@` followed by a run of characters up to whitespace
    or one of `@ , . ! ? ; : ( ) [ ] { } < > " ' ` / \\ |`"."""
    d = dialogues.create(quiet("Ann"), quiet("Bob"), model=mentioned())
    events = d.stream(f"so @Bob{delimiter}x")
    assert called(events) == ["Bob"]


def test_exact_word_needs_the_whole_name(dialogues: Dialogues) -> None:
    """Rule: Mentioned EXACT_WORD — the word is "compared exactly with participant names":
    `@Bobby` and `@bob` (names are case-sensitive) mention nobody, so everyone is called."""
    d = dialogues.create(quiet("Ann"), quiet("Bob"), model=mentioned())
    assert called(d.stream("@Bobby hi")) == ["Ann", "Bob"]
    assert called(d.stream("@bob hi")) == ["Ann", "Bob"]


def test_no_mention_falls_back_to_broadcast(dialogues: Dialogues) -> None:
    """Rule: Mentioned — "with no mention everyone is called (broadcast fallback)", emitted
    in completion order."""
    d = dialogues.create(echo("Ann", delay_ms=SLOW_MS), echo("Bob"), model=mentioned())
    events = d.stream("anyone there? mail me at x@example.test")
    assert called(events) == ["Ann", "Bob"]
    assert order(events) == ["Bob", "Ann"]


def test_mentioned_emits_in_completion_order(dialogues: Dialogues) -> None:
    """Rule: Mentioned — mentioned participants are "called (concurrently, emitted in
    completion order, ties in participant order)"."""
    d = dialogues.create(echo("Ann", delay_ms=SLOW_MS), quiet("Bob"), echo("Cy"), model=mentioned())
    events = d.stream("@Ann and @Cy")
    assert called(events) == ["Ann", "Cy"]
    assert order(events) == ["Cy", "Ann"]


def test_name_strategy_matches_full_names_with_spaces(dialogues: Dialogues) -> None:
    """Rule: Mentioned `NAME` — "`@Full Name` followed by whitespace, `, . ! ? ; :` or end
    of text"."""
    d = dialogues.create(echo("Bob Smith"), echo("Ann Lee"), model=mentioned(NAME))
    events = d.stream("@Ann Lee, your view?")
    assert called(events) == ["Ann Lee"]
    assert started(events).execution_model.mentioned.strategy == NAME


@pytest.mark.parametrize("terminator", [" ", "\n", ",", ".", "!", "?", ";", ":", ""])
def test_name_strategy_terminators(dialogues: Dialogues, terminator: str) -> None:
    """Rule: Mentioned NAME — the full name must be "followed by whitespace, `, . ! ? ; :`
    or end of text"."""
    d = dialogues.create(quiet("Ann Lee"), quiet("Bob Stone"), model=mentioned(NAME))
    assert called(d.stream(f"thanks @Bob Stone{terminator}")) == ["Bob Stone"]


def test_name_strategy_rejects_other_followers(dialogues: Dialogues) -> None:
    """Rule: Mentioned NAME — a name followed by anything else is no mention (`@Ann Leeds`,
    `@Ann Lee)`): with no mention everyone is called."""
    d = dialogues.create(quiet("Ann Lee"), quiet("Bob"), model=mentioned(NAME))
    assert called(d.stream("ask @Ann Leeds")) == ["Ann Lee", "Bob"]
    assert called(d.stream("(ask @Ann Lee)")) == ["Ann Lee", "Bob"]


def test_name_strategy_longest_name_wins(dialogues: Dialogues) -> None:
    """Rule: Mentioned NAME — "when both a name and a longer name that starts with it match,
    the longer one wins": with "Bob" and "Bob Smith", `@Bob Smith` calls only Bob Smith,
    `@Bob` alone calls Bob."""
    d = dialogues.create(quiet("Bob"), quiet("Bob Smith"), quiet("Cy"), model=mentioned(NAME))
    assert called(d.stream("@Bob Smith, please review")) == ["Bob Smith"]
    assert called(d.stream("@Bob, please review")) == ["Bob"]
    assert called(d.stream("@Bob Smithers is not here")) == ["Bob"]
    assert called(d.stream("@Bob Smith and @Bob")) == ["Bob", "Bob Smith"]


def test_partial_selects_the_longest_name_with_the_prefix(dialogues: Dialogues) -> None:
    """Rule: Mentioned `PARTIAL` — "`@prefix` selects the longest participant name starting
    with that prefix"."""
    d = dialogues.create(quiet("Alex"), quiet("Alexandra"), quiet("Bea"), model=mentioned(PARTIAL))
    assert called(d.stream("@Al thoughts?")) == ["Alexandra"]
    assert called(d.stream("@B thoughts?")) == ["Bea"]
    assert called(d.stream("@Alex thoughts?")) == ["Alexandra"]


def test_partial_without_a_match_falls_back(dialogues: Dialogues) -> None:
    """Rule: Mentioned PARTIAL + fallback — a prefix no name starts with mentions nobody,
    so everyone is called."""
    d = dialogues.create(quiet("Alex"), quiet("Bea"), model=mentioned(PARTIAL))
    assert called(d.stream("@Zo thoughts?")) == ["Alex", "Bea"]


def test_mentions_in_agent_replies_trigger_the_next_run(dialogues: Dialogues) -> None:
    """Rule: Mentioned — participants "@mentioned ... in agent replies not yet scanned for
    mentions" are called; a reply is scanned once, so the run after falls back."""
    d = dialogues.create(
        echo("Ann", reply="I think @Cy knows"), quiet("Bob"), echo("Cy"), model=mentioned()
    )
    assert called(d.stream("@Ann who knows?")) == ["Ann"]
    second = d.stream("go on")
    assert called(second) == ["Cy"]
    assert seen_by(second, "Cy") == [
        "[System]: @Ann who knows?",
        "[Ann]: I think @Cy knows",
        "[System]: go on",
    ]
    # Cy's echo quoted "@Ann who knows?" and "I think @Cy knows": it mentions both.
    assert called(d.stream("next")) == ["Ann", "Cy"]


def test_agent_replies_are_scanned_for_mentions_once(dialogues: Dialogues) -> None:
    """Rule: Mentioned — only agent replies "not yet scanned for mentions" call anyone: a
    reply that already called its participant does not call it again, so a run with no new
    mention falls back to everyone."""
    d = dialogues.create(echo("Ann", reply="ask @Cy"), quiet("Bob"), quiet("Cy"), model=mentioned())
    assert called(d.stream("@Ann who knows?")) == ["Ann"]
    assert called(d.stream("go on")) == ["Cy"]
    assert called(d.stream("anyone?")) == ["Ann", "Bob", "Cy"]


def test_uncalled_participants_catch_up_by_cursor(dialogues: Dialogues) -> None:
    """Rule: Mentioned — "Participants that are not called keep their cursor: when next
    called they catch up on everything they missed" (llm-toolkit never delivered other
    agents' replies in Mentioned mode)."""
    d = dialogues.create(quiet("Ann"), echo("Bob"), quiet("Cy"), model=mentioned())
    d.stream("@Ann first")
    d.stream("@Cy second")
    events = d.stream("@Bob third")
    assert called(events) == ["Bob"]
    assert seen_by(events, "Bob") == [
        "[System]: @Ann first",
        "[Ann]: noted",
        "[System]: @Cy second",
        "[Cy]: noted",
        "[System]: @Bob third",
    ]


def test_mentions_in_input_messages_count(dialogues: Dialogues) -> None:
    """Rule: Mentioned — mentions anywhere in "this turn's input" count, input messages
    included, not only the text prompt."""
    d = dialogues.create(quiet("Ann"), echo("Bob"), model=mentioned())
    events = d.stream("ok", messages=[said(user("Zoe"), "hey @Bob")])
    assert called(events) == ["Bob"]
    assert seen_by(events, "Bob") == ["[Zoe]: hey @Bob", "[System]: ok"]


def test_mentioned_in_unary_run(dialogues: Dialogues) -> None:
    """Rule: Mentioned + "Run, which is RunSession collected" — the unary Run calls the
    same participants."""
    d = dialogues.create(quiet("Ann"), echo("Bob"), model=mentioned())
    response = d.run("@Bob only")
    assert [t.speaker.name for t in response.turns] == ["Bob"]
    assert list(response.started.participants) == ["Bob"]
    assert reply_of(response, "Bob") == "Bob:\n" + quoted("System", "@Bob only")
