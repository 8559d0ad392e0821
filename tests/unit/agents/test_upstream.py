"""Reading Retry-After, shortening error reasons and redacting secrets."""

from __future__ import annotations

import email.utils

import pytest
from parley.server.agents.redaction import Redactor
from parley.server.agents.upstream import retry_after_seconds, short_reason, status_failure


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0
    later = email.utils.formatdate(now + 30, usegmt=True)

    assert retry_after_seconds({"retry-after": later}, now=now) == 30.0


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "RATE_LIMITED", True),
        (500, "UPSTREAM_ERROR", True),
        (503, "UPSTREAM_ERROR", True),
        (529, "UPSTREAM_ERROR", True),
        (408, "AGENT_TIMEOUT", True),
        (400, "UPSTREAM_REJECTED", False),
        (404, "UPSTREAM_REJECTED", False),
        (401, "UPSTREAM_REJECTED", False),
    ],
)
def test_status_codes_map_to_failures(status: int, code: str, retryable: bool) -> None:
    failure = status_failure("openai", status, reason="why")

    assert (failure.code, failure.retryable) == (code, retryable)


def test_reasons_are_one_short_line() -> None:
    reason = short_reason({"error": {"message": "line one\nline two " + "x" * 500}}, Redactor())

    assert "\n" not in reason
    assert reason.startswith("line one line two x")
    assert len(reason) == 200


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("uses sk-proj-abcdefgh12345678", "uses [redacted]"),
        ("Authorization: Bearer eyJhbGciOi.payload", "Authorization: Bearer [redacted]"),
        ("api_key=abcdef0123456789 rest", "api_key=[redacted] rest"),
        ('{"password": "correct-horse-battery"}', '{"password": "[redacted]"}'),
        ("key AIzaSyA-1234567890abcdefghijkl", "key [redacted]"),
        ("max_tokens: must be at most 8192", "max_tokens: must be at most 8192"),
        ("the configured value s3cr3t-v4lue leaked", "the configured value [redacted] leaked"),
    ],
)
def test_redaction(text: str, shown: str) -> None:
    assert Redactor(["s3cr3t-v4lue"])(text) == shown
