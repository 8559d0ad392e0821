"""The built-in `echo` agent: deterministic replies that show what was delivered.

It is the test instrument for every dialogue rule: its reply reveals exactly which
messages a participant received, in which order. Options: `delay_ms` (sleep before
answering), `fail` (`always`, or N: fail the first N calls of this participant), `reply`
(answer this fixed text instead).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply

ECHO_OPTIONS = frozenset({"delay_ms", "fail", "reply"})
MAX_DELAY_MS = 3_600_000


def validate_echo_options(options: Mapping[str, str]) -> dict[str, str]:
    """Returns a description per bad option (an empty dict when all are fine)."""
    problems: dict[str, str] = {}
    for key, value in options.items():
        if key not in ECHO_OPTIONS:
            problems[key] = f"not an option of the echo kind (allowed: {sorted(ECHO_OPTIONS)})"
        elif key == "delay_ms" and not _is_int_between(value, 0, MAX_DELAY_MS):
            problems[key] = f"must be an integer from 0 to {MAX_DELAY_MS}"
        elif key == "fail" and value != "always" and not _is_int_between(value, 0, 1_000_000):
            problems[key] = "must be 'always' or a number of calls"
    return problems


def _is_int_between(value: str, low: int, high: int) -> bool:
    return value.isascii() and value.isdigit() and low <= int(value) <= high


def render_echo(name: str, call: AgentCall) -> str:
    if not call.delivered:
        return f"{name}: (nothing new)"
    lines = [f"{name}:"]
    lines.extend(
        f"[{message.speaker.name}]: {message.content.replace(chr(10), chr(92) + 'n')}"
        for message in call.delivered
    )
    return "\n".join(lines)


class EchoAgent:
    def __init__(self) -> None:
        # Calls so far per (dialogue, participant), for the `fail: N` option. Only
        # participants that use `fail` are counted, so this stays small.
        self._calls: Counter[tuple[str, str]] = Counter()

    async def execute(self, call: AgentCall) -> AgentReply:
        options = call.options
        delay_ms = int(options.get("delay_ms", "0") or 0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if "fail" in options:
            self._fail_if_due(call, options["fail"])
        if "reply" in options:
            return AgentReply(options["reply"])
        return AgentReply(render_echo(call.persona.name, call))

    def _fail_if_due(self, call: AgentCall, fail: str) -> None:
        key = (call.dialogue_id, call.persona.name)
        self._calls[key] += 1
        if fail == "always" or self._calls[key] <= int(fail):
            raise AgentFailure(
                "AGENT_ERROR", f"echo agent failed as configured (fail={fail})", retryable=True
            )
