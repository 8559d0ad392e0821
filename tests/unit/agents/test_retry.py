"""The retry wrapper: attempts, full-jitter backoff, Retry-After, timeouts, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.retry import RetryingAgent, RetryPolicy

from .support import RecordedSleep, make_call, upper_bound


class Flaky:
    """Fails with the given failures in turn, then replies."""

    def __init__(self, failures: Sequence[AgentFailure]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def execute(self, call: AgentCall) -> AgentReply:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return AgentReply("finally")


def busy(retry_after: float | None = None) -> AgentFailure:
    return AgentFailure("RATE_LIMITED", "busy", retryable=True, retry_after=retry_after)


def wrap(
    agent: Flaky, policy: RetryPolicy, sleep: RecordedSleep, *, timeout: float = 30.0
) -> RetryingAgent:
    return RetryingAgent(agent, timeout=timeout, policy=policy, sleep=sleep, uniform=upper_bound)


async def test_retryable_failures_are_retried_until_a_reply() -> None:
    flaky, sleep = Flaky([busy(), busy()]), RecordedSleep()

    reply = await wrap(flaky, RetryPolicy(attempts=3), sleep).execute(make_call())

    assert reply == AgentReply("finally")
    assert flaky.calls == 3


async def test_backoff_doubles_up_to_its_cap() -> None:
    flaky, sleep = Flaky([busy()] * 5), RecordedSleep()
    policy = RetryPolicy(attempts=6, backoff=0.5, max_backoff=3.0)

    await wrap(flaky, policy, sleep).execute(make_call())

    assert sleep.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_jitter_draws_between_zero_and_the_cap() -> None:
    draws: list[tuple[float, float]] = []

    def lowest(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    sleep = RecordedSleep()
    agent = RetryingAgent(
        Flaky([busy(), busy()]),
        timeout=30.0,
        policy=RetryPolicy(attempts=3, backoff=1.0),
        sleep=sleep,
        uniform=lowest,
    )

    await agent.execute(make_call())

    assert draws == [(0.0, 1.0), (0.0, 2.0)]
    assert sleep.waits == [0.0, 0.0]


async def test_retry_after_is_the_least_wait() -> None:
    sleep = RecordedSleep()

    await wrap(Flaky([busy(retry_after=5.0)]), RetryPolicy(attempts=2), sleep).execute(make_call())

    assert sleep.waits == [5.0]


async def test_the_last_failure_reports_the_attempts_made() -> None:
    flaky, sleep = Flaky([busy()] * 3), RecordedSleep()

    with pytest.raises(AgentFailure) as failed:
        await wrap(flaky, RetryPolicy(attempts=3), sleep).execute(make_call())

    assert (failed.value.code, failed.value.attempts, failed.value.retryable) == (
        "RATE_LIMITED",
        3,
        True,
    )
    assert len(sleep.waits) == 2


async def test_failures_that_are_not_retryable_end_the_call() -> None:
    flaky, sleep = Flaky([AgentFailure("UPSTREAM_REJECTED", "no")]), RecordedSleep()

    with pytest.raises(AgentFailure) as failed:
        await wrap(flaky, RetryPolicy(attempts=5), sleep).execute(make_call())

    assert (failed.value.attempts, flaky.calls, sleep.waits) == (1, 1, [])


class Stuck:
    """Never answers the first `stuck` calls; records that they were cancelled."""

    def __init__(self, stuck: int) -> None:
        self.stuck = stuck
        self.calls = 0
        self.cancelled = 0

    async def execute(self, call: AgentCall) -> AgentReply:
        self.calls += 1
        if self.calls <= self.stuck:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return AgentReply("late but here")


async def test_each_attempt_has_its_own_timeout() -> None:
    stuck = Stuck(1)
    agent = RetryingAgent(stuck, timeout=0.2, policy=RetryPolicy(attempts=2), sleep=RecordedSleep())

    reply = await agent.execute(make_call())

    assert reply.content == "late but here"
    assert (stuck.calls, stuck.cancelled) == (2, 1)


async def test_a_timeout_is_a_retryable_failure_naming_the_limit() -> None:
    agent = RetryingAgent(Stuck(9), timeout=0.2, policy=RetryPolicy(), sleep=RecordedSleep())

    with pytest.raises(AgentFailure) as failed:
        await agent.execute(make_call())

    failure = failed.value
    assert (failure.code, failure.message, failure.retryable, failure.attempts) == (
        "AGENT_TIMEOUT",
        "no reply within 0.2 s",
        True,
        1,
    )


async def test_cancellation_during_backoff_propagates() -> None:
    started = asyncio.Event()

    async def forever(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    agent = RetryingAgent(
        Flaky([busy()]), timeout=30.0, policy=RetryPolicy(attempts=2), sleep=forever
    )
    task = asyncio.create_task(agent.execute(make_call()))
    await started.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_longest_call_covers_every_attempt_and_wait() -> None:
    policy = RetryPolicy(attempts=3, backoff=1.0, max_backoff=4.0)

    assert policy.longest_call(10.0) == 3 * 10.0 + 2 * 4.0
