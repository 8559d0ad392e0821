"""Phrases the terminal output is built from."""

from __future__ import annotations

import pytest
from parley.client import builders as b
from parley.client.render import describe_model
from parley.v1 import dialogue_pb2 as pb


@pytest.mark.parametrize(
    ("model", "phrase"),
    [
        (pb.ExecutionModel(), "broadcast, completion order"),
        (b.broadcast("participant"), "broadcast, participant order"),
        (b.broadcast("explicit", ["Bo", "Ada"]), "broadcast, explicit order: Bo, Ada"),
        (b.sequential(["Bo", "Ada"]), "sequential: Bo → Ada"),
        (b.sequential(), "sequential"),
        (pb.ExecutionModel(mentioned=pb.Mentioned()), "@mentioned (exact word)"),
        (b.mentioned("partial"), "@mentioned (partial)"),
        (b.moderated("router"), "moderated by router"),
    ],
)
def test_describe_model(model: pb.ExecutionModel, phrase: str) -> None:
    assert describe_model(model) == phrase
