"""Keeps secrets out of what clients see: failure messages built from backend output.

Two nets: the values of the environment variables that profiles name as their keys
(known exactly), and anything shaped like a bearer token, an API key or a
`password=...` assignment (caught by pattern, for secrets the server never knew).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter values would mangle ordinary words; no real key is this short.
MIN_SECRET_CHARS = 4

_KEY_SHAPES = re.compile(
    r"""
      \bsk-[A-Za-z0-9_-]{8,}           # OpenAI and Anthropic keys (sk-..., sk-ant-...)
    | \bAIza[0-9A-Za-z_-]{20,}         # Google API keys
    | \bgh[pousr]_[A-Za-z0-9]{20,}     # GitHub tokens
    | \bxox[abprs]-[A-Za-z0-9-]{10,}   # Slack tokens
    | \beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_.-]+  # JWTs
    """,
    re.VERBOSE,
)
# The name stays (it says what went wrong); the value goes. Values must look like
# credentials (8+ token characters), so "max_tokens: must be ..." stays readable.
_LABELLED = re.compile(
    r"""(?ix)
    (
      \b(?:bearer|basic)\s+
    | \b[\w-]*(?:api[_-]?key|token|secret|password|passwd|credential)s?["']?\s*[:=]\s*["']?
    )
    [A-Za-z0-9._~+/=-]{8,}
    """
)


class Redactor:
    """Replaces known secret values and key-shaped strings with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _LABELLED.sub(lambda match: match.group(1) + REDACTED, text)
        return _KEY_SHAPES.sub(REDACTED, text)
