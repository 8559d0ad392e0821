"""Timeouts and retries shared by every agent kind.

Each attempt runs under the profile's timeout. A failure marked retryable (rate limits,
5xx, lost connections, timeouts) is tried again after a backoff with full jitter: a
random wait between zero and an exponentially growing cap, so that many participants
hitting the same limit do not come back in lockstep. A backend's Retry-After is a lower
bound on that wait; one asking for longer than `max_backoff` is not waited for, since a
turn should fail visibly rather than hang.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.server.agents.protocol import Agent, AgentCall, AgentFailure, AgentReply
from parley.server.agents.timeouts import SharedTimeouts

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# random.uniform's shape: a number between the two bounds.
Uniform = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a call is tried and how long to wait in between (seconds)."""

    attempts: int = 1
    backoff: float = 1.0
    max_backoff: float = 30.0

    def backoff_cap(self, retry: int) -> float:
        """The longest wait before retry number `retry` (0 for the first retry)."""
        return min(self.max_backoff, self.backoff * 2.0**retry)

    def longest_call(self, timeout: float) -> float:
        """An upper bound on a whole call with every attempt and wait, in seconds."""
        return timeout * self.attempts + self.max_backoff * (self.attempts - 1)


class RetryingAgent:
    """Wraps an agent: per-attempt timeout, retries of retryable failures, attempt count.

    The failure it finally raises carries `attempts`, the number of attempts made.
    Cancellation is never retried and never swallowed.
    """

    def __init__(
        self,
        agent: Agent,
        *,
        timeout: float,
        policy: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        uniform: Uniform = random.uniform,
    ) -> None:
        self.agent = agent
        self._timeout = timeout
        # Calls made together share timers (their deadlines fall in the same slot).
        self._timeouts = SharedTimeouts()
        self._policy = policy
        self._sleep = sleep
        self._uniform = uniform

    async def execute(self, call: AgentCall) -> AgentReply:
        attempt = 0
        while True:
            attempt += 1
            # Each attempt under its own deadline; inline, not a coroutine of its own,
            # as this runs for every call of every participant.
            deadline = self._timeouts.start(self._timeout)
            try:
                return await self.agent.execute(call)
            except asyncio.CancelledError:
                if not deadline.stop():
                    raise
                failure = AgentFailure(
                    "AGENT_TIMEOUT", f"no reply within {self._timeout:g} s", retryable=True
                )
            except AgentFailure as raised:
                failure = raised
            finally:
                deadline.stop()
            delay = self._delay_before_retry(failure, attempt)
            if delay is None:
                failure.attempts = attempt
                raise failure
            logger.info(
                "%s in %s: attempt %d failed (%s), retrying in %.2f s",
                call.persona.name,
                call.dialogue_id,
                attempt,
                failure.code,
                delay,
            )
            await self._sleep(delay)

    def _delay_before_retry(self, failure: AgentFailure, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none."""
        policy = self._policy
        if not failure.retryable or attempt >= policy.attempts:
            return None
        delay = self._uniform(0.0, policy.backoff_cap(attempt - 1))
        if failure.retry_after is not None:
            if failure.retry_after > policy.max_backoff:
                return None
            delay = max(delay, failure.retry_after)
        return delay
