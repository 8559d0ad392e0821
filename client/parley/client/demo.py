"""The dialogue behind ``parley demo``: three personas on the server's built-in echo profile.

The echo profile needs no model or key, so the demo works on a fresh server. Each
persona answers after a different delay, so the turns visibly stream in as they
finish rather than in the order the participants were added.
"""

from __future__ import annotations

import secrets

from parley.client import builders as b
from parley.v1 import dialogue_pb2 as pb

PROMPTS = (
    "We launch the new billing service on Monday. What worries you most?",
    "Good points. Who owns each follow-up before launch?",
)


def demo_id() -> str:
    """A fresh id, so repeated demos against one server never collide."""
    return f"demo-{secrets.token_hex(3)}"


def demo_dialogue() -> pb.Dialogue:
    """A launch-review dialogue with an architect, a product manager and a security lead."""
    return b.dialogue(
        "Parley demo: launch review",
        [
            b.participant(
                b.persona(
                    "Ada",
                    role="Systems architect",
                    icon="🧭",
                    tagline="Thinks in failure modes",
                    color="#3366ff",
                ),
                options={"delay_ms": 450},
            ),
            b.participant(
                b.persona(
                    "Basil",
                    role="Product manager",
                    icon="📋",
                    tagline="Keeps the launch date honest",
                    color="#33aa55",
                ),
                options={"delay_ms": 150},
            ),
            b.participant(
                b.persona(
                    "Cleo",
                    role="Security reviewer",
                    icon="🔒",
                    tagline="Reads the threat model twice",
                    color="#cc3344",
                ),
                options={"delay_ms": 800},
            ),
        ],
        model=b.broadcast("completion"),
        context=b.context(
            talk_style="review", environment="Launch review for the new billing service"
        ),
    )
