"""Turns what an HTTP model API answered into an `AgentFailure` clients may see.

Shared by the openai and anthropic kinds. Codes: RATE_LIMITED (429), UPSTREAM_ERROR
(5xx), AGENT_TIMEOUT (408), all retryable; UPSTREAM_REJECTED (any other 4xx), not
retryable. Messages carry the status and at most a short, redacted reason from the
body, never the body itself.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

from parley.server.agents.protocol import AgentFailure
from parley.server.agents.redaction import Redactor

MAX_REASON_CHARS = 200


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a response asks for: `retry-after-ms`, or `retry-after` in seconds or
    as an HTTP date. None when absent or unreadable."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def short_reason(body: object, redact: Redactor) -> str:
    """The error message of a JSON error body, on one line, shortened and redacted.

    Takes the whole body (`{"error": {"message": ...}}`) or its error object.
    """
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    if isinstance(body, Mapping):
        body = body.get("message", "")
    if not isinstance(body, str):
        return ""
    reason = " ".join(redact(body).split())
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return reason


def status_failure(
    service: str, status: int, *, reason: str = "", retry_after: float | None = None
) -> AgentFailure:
    """The failure for an HTTP error status from `service` (a name like "openai")."""
    detail = f"HTTP {status}: {reason}" if reason else f"HTTP {status}"
    if status == 429:
        return AgentFailure(
            "RATE_LIMITED",
            f"{service} is rate limiting requests ({detail})",
            retryable=True,
            retry_after=retry_after,
        )
    if status >= 500:
        return AgentFailure(
            "UPSTREAM_ERROR",
            f"{service} failed to answer ({detail})",
            retryable=True,
            retry_after=retry_after,
        )
    if status == 408:
        return AgentFailure("AGENT_TIMEOUT", f"{service} timed out ({detail})", retryable=True)
    if status in (401, 403):
        # Their messages can quote part of the key: the status says enough.
        return AgentFailure(
            "UPSTREAM_REJECTED", f"{service} refused the credentials (HTTP {status})"
        )
    return AgentFailure("UPSTREAM_REJECTED", f"{service} rejected the request ({detail})")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
