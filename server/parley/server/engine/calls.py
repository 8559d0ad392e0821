"""Calling one participant for a run: the call, its failure as a value, the earlier
exchanges a chat backend asks for, and what may stop the run's calls (`StopState`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence

from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply
from parley.server.agents.registry import AgentRegistry
from parley.server.engine.conversation import (
    ChatMessage,
    Conversation,
    ConversationCache,
    private_conversation,
)
from parley.server.engine.model import Dialogue, Message, Participant, record
from parley.server.engine.observer import CallTrace, RunTrace
from parley.server.engine.prompts import render_prompt, render_system
from parley.server.store.feed import CancelMode
from parley.server.store.protocol import Store

logger = logging.getLogger(__name__)


@record
class Replied:
    participant: Participant
    index: int
    reply: AgentReply
    delivered_through: int
    started: float
    trace: CallTrace


@record
class Failed:
    participant: Participant
    index: int
    failure: AgentFailure
    trace: CallTrace


Outcome = Replied | Failed


def deadline_exceeded(*, during_call: bool) -> AgentFailure:
    """The failure of a call the run's deadline left no time for."""
    when = "during" if during_call else "before"
    return AgentFailure("RUN_DEADLINE_EXCEEDED", f"the run's deadline passed {when} this call")


def _detached(failure: AgentFailure) -> AgentFailure:
    """A raised failure kept as a value, without its traceback and the exceptions it
    replaced: their frames refer back to it, a cycle only the collector would free."""
    failure.__traceback__ = None
    failure.__context__ = None
    failure.__cause__ = None
    return failure


class StopState:
    """What may stop a run early: its deadline and a requested stop.

    Shared by the session and its `Caller` rather than the caller holding the session:
    that would make every run a reference cycle, which only the garbage collector
    frees, with all the run holds (its dialogue, replies, events), in long pauses.
    """

    __slots__ = ("deadline", "expired", "requested")

    def __init__(self, deadline: float | None) -> None:
        # time.monotonic() by which the whole run must be over (client deadline or the
        # server's maximum run duration).
        self.deadline = deadline
        # Set when the deadline passed: calls still in flight were stopped for it.
        self.expired = False
        # Set by a stop request (CancelRun or the lease's cancel flag).
        self.requested: CancelMode | None = None

    def deadline_passed(self) -> bool:
        return self.expired or (self.deadline is not None and time.monotonic() >= self.deadline)

    def stopped_for_deadline(self) -> bool:
        """Whether calls were stopped by the deadline (not by a request)."""
        return self.requested is None and self.expired

    def calls_stopped(self) -> bool:
        """Whether calls in flight are being stopped (an IMMEDIATE request, or the
        deadline): a call not started yet must not start."""
        return self.expired or self.requested is CancelMode.IMMEDIATE


class Caller:
    """Calls the participants of one run; every failure becomes a `Failed`, never an
    exception.

    A call is not made once the run's deadline is over. The run's one timer for that
    deadline stops the calls in flight (see `Session`); when that is why a call was
    stopped, its span says so too.
    """

    def __init__(
        self,
        *,
        store: Store,
        agents: AgentRegistry,
        dialogue: Dialogue,
        turn: int,
        trace: RunTrace,
        stops: StopState,
        conversations: ConversationCache | None,
        max_reply_bytes: int | None,
    ) -> None:
        self._store = store
        self._agents = agents
        self._dialogue = dialogue
        self._turn = turn
        self._trace = trace
        self._stops = stops
        # Where chat backends' conversations outlive the run (None: rebuilt per call).
        self._conversations = conversations
        # A reply is a message of the log: no larger than the server takes from clients.
        self._max_reply_bytes = max_reply_bytes

    async def call(
        self,
        participant: Participant,
        index: int,
        delivered: Sequence[Message],
        through: int,
        *,
        sequential: bool,
    ) -> Outcome:
        """Calls one participant; every failure becomes a `_Failed`, never an exception."""
        started = time.monotonic()
        # Positional, in field order (see `model.record`): once per call.
        call = AgentCall(
            self._dialogue.id,  # dialogue_id
            self._turn,  # turn
            participant.persona,  # persona
            index,  # participant_index
            participant.agent_options,  # options
            delivered,  # delivered
            # render_prompt, render_system, history. Not cached: the system text is (per
            # dialogue value), and the rest is read about once a call, by the backends
            # that need it.
            functools.partial(render_prompt, self._dialogue, participant, delivered),
            functools.partial(render_system, self._dialogue, participant),
            functools.partial(self._history, participant, through),
        )
        trace = self._trace.call(
            call, self._agents.profile(participant.agent), sequential=sequential
        )
        outcome = await self.invoke(participant.agent, call, trace)
        if isinstance(outcome, AgentFailure):
            return Failed(participant, index, outcome, trace)
        return Replied(participant, index, outcome, through, started, trace)

    async def _history(self, participant: Participant, through: int) -> list[ChatMessage]:
        # Through the head of this call, not the participant's cursor: its own replies
        # come after the cursor they moved it to. Messages new to this call are in no
        # exchange yet, so reading them here adds nothing.
        name, joining = participant.name, participant.joining_strategy
        if self._conversations is None:
            log = await self._store.read_messages(self._dialogue.id, through_seq=through)
            return private_conversation(log, name, joining)
        # Kept between calls and runs: only what the log gained since is read.
        key = (self._dialogue.id, self._dialogue.create_time, name, joining)
        conversation = self._conversations.take(key)
        if conversation is None or conversation.through > through:
            conversation = Conversation(name, joining)
        conversation.extend(
            await self._store.read_messages(
                self._dialogue.id, after_seq=conversation.through, through_seq=through
            )
        )
        if conversation.stale:  # a log the engine did not write: rebuild it whole
            log = await self._store.read_messages(self._dialogue.id, through_seq=through)
            return private_conversation(log, name, joining)
        self._conversations.put(key, conversation)
        return list(conversation.messages)

    async def invoke(
        self, agent: str, call: AgentCall, trace: CallTrace
    ) -> AgentReply | AgentFailure:
        """One agent call, failures returned, not raised.

        The registry's agents apply the profile's per-attempt timeout and retries
        themselves (a call is bounded by `RetryPolicy.longest_call`), so a call needs no
        timer of ours; the run's deadline has one timer for all its calls.
        """
        profile = self._agents.profile(agent)
        if profile is None or not profile.available:
            reason = profile.unavailable_reason if profile is not None else ""
            return AgentFailure(
                "AGENT_UNAVAILABLE",
                f"agent profile {agent!r} is not available on this server"
                + (f": {reason}" if reason else ""),
            )
        if self._stops.deadline_passed():
            return deadline_exceeded(during_call=False)
        try:
            with trace.scope():
                try:
                    reply = await self._agents.agent(agent).execute(call)
                except asyncio.CancelledError:
                    if self._stops.stopped_for_deadline():  # a failure, not a cancellation
                        trace.failed(deadline_exceeded(during_call=True))
                    raise
        except AgentFailure as failure:
            return _detached(failure)
        except TimeoutError:
            # A backend's own timeout that escaped it: as retryable as the wrapper's.
            return AgentFailure("AGENT_TIMEOUT", "the agent call timed out", retryable=True)
        except Exception:
            logger.exception("agent profile %r failed for %s", agent, call.persona.name)
            return AgentFailure("AGENT_ERROR", "the agent call failed")
        if self._too_large(reply.content):
            return AgentFailure(
                "REPLY_TOO_LARGE",
                f"the reply is larger than {self._max_reply_bytes} bytes, the most one"
                " message may hold",
            )
        return reply

    def _too_large(self, content: str) -> bool:
        limit = self._max_reply_bytes
        if limit is None or len(content) * 4 <= limit:  # UTF-8 takes at most 4 bytes
            return False
        return len(content) > limit or len(content.encode()) > limit
