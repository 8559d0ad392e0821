"""One run of a dialogue, as an async iterator of session events.

This is the port of llm-toolkit's streaming `DialogueSession`. Where the reference polls
a join set from `next_turn()`, a run here is driven by its own task so that storing never
depends on the reader: every reply is appended to the log the moment it completes, then
queued for emission in the order the execution model asks for. A client that stops
reading (or disconnects) cancels the driver, which cancels every in-flight agent call;
replies that had completed are already in the log.

Usage::

    async with engine.open_run(dialogue_id, run_input) as run:
        async for event in run:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, TypeVar

from parley.server.agents.protocol import AgentCall, AgentFailure, AgentReply, fixed_text
from parley.server.agents.registry import AgentRegistry
from parley.server.engine import delivery
from parley.server.engine.calls import (
    Caller,
    Failed,
    Outcome,
    Replied,
    StopState,
    deadline_exceeded,
)
from parley.server.engine.conversation import (
    ConversationCache,
)
from parley.server.engine.errors import LeaseLost
from parley.server.engine.events import (
    Event,
    RoutingDecision,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    TurnCompleted,
    TurnFailed,
)
from parley.server.engine.mentions import find_mentions
from parley.server.engine.model import (
    Broadcast,
    Dialogue,
    ExecutionModel,
    Mentioned,
    Message,
    MessageDraft,
    Moderated,
    Participant,
    Persona,
    RunEnd,
    Speaker,
    SpeakerKind,
    run_end_notice,
    utcnow,
)
from parley.server.engine.moderation import (
    MODERATOR_ROLE,
    RECENT_MESSAGES,
    ModerationError,
    parse_decision,
    render_moderator_prompt,
)
from parley.server.engine.observer import NULL_CALL_TRACE, NullObserver, RunObserver
from parley.server.engine.planning import RunPlan, plan_for
from parley.server.store.feed import CancelMode, LogGrew, RunEvent
from parley.server.store.protocol import RunLease, Store

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LEASE_TTL_S: Final = 30.0
# participant_index of the moderator's TurnFailed: it is not a participant.
MODERATOR_INDEX: Final = -1


class _End:
    """Marks the end of the event queue."""


@dataclass(frozen=True, slots=True)
class _Crash:
    """The driver stopped on an error; the reader re-raises it."""

    error: BaseException


class _Outbox:
    """A run's events on their way to its one reader. Not an asyncio.Queue, which does
    more per item than this needs: bounds, waiting writers, task accounting."""

    __slots__ = ("_items", "_reader")

    def __init__(self) -> None:
        self._items: deque[SessionEvent | _End | _Crash] = deque()
        self._reader: asyncio.Future[None] | None = None

    def put(self, item: SessionEvent | _End | _Crash) -> None:
        self._items.append(item)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def __len__(self) -> int:
        return len(self._items)

    def take(self) -> SessionEvent | _End | _Crash | None:
        """The next item; None when there is none yet."""
        return self._items.popleft() if self._items else None

    async def arrival(self) -> None:
        """Returns once an item is there to take."""
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader


class Session:
    """A run in progress. Created by `Engine.open_run` after the input is stored."""

    def __init__(
        self,
        *,
        store: Store,
        agents: AgentRegistry,
        dialogue: Dialogue,
        lease: RunLease,
        inputs: Sequence[Message],
        model: ExecutionModel,
        react: bool,
        observer: RunObserver | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL_S,
        deadline: float | None = None,
        on_end: Callable[[Session], object] | None = None,
        conversations: ConversationCache | None = None,
        tails: delivery.LogTails | None = None,
        max_reply_bytes: int | None = None,
    ) -> None:
        self._store = store
        self._agents = agents
        self._dialogue = dialogue
        # Participant indexes by name, looked up on every call (index_of scans).
        self._indexes = {p.name: index for index, p in enumerate(dialogue.participants)}
        self._lease = lease
        self._inputs = tuple(inputs)
        self._model = model
        # False: the reaction strategy says this input calls for no replies.
        self._react = react
        # Set when a Mentioned run has scanned new replies; stored with the next append.
        self._mention_cursor: int | None = None
        # Bounded by construction: a run emits at most one event per participant, one
        # for the moderator, SessionStarted, SessionCompleted and the end marker.
        self._outbox = _Outbox()
        self._sequence = 0
        self._trace = (observer or NullObserver()).run(dialogue, lease.turn)
        self._counts = (0, 0)
        self._stops = StopState(deadline)
        self._lease_ttl = lease_ttl
        # Calls that may be running: what an IMMEDIATE stop or the deadline cancels.
        self._inflight: set[asyncio.Task[Any]] = set()
        self._cut_short = False
        # Set when the run's last write released the lease with it.
        self._released = False
        self._completed = False
        self._on_end = on_end
        self._driver: asyncio.Task[None] | None = None
        self._window = delivery.LogWindow((), 0)
        self._caller = Caller(
            store=store,
            agents=agents,
            dialogue=dialogue,
            turn=lease.turn,
            trace=self._trace,
            stops=self._stops,
            conversations=conversations,
            max_reply_bytes=max_reply_bytes,
        )
        # Where the end of the log outlives the run (None: every run reads it).
        self._tails = tails
        self._tail_key = (dialogue.id, dialogue.create_time)

    @property
    def turn(self) -> int:
        return self._lease.turn

    @property
    def dialogue_id(self) -> str:
        return self._dialogue.id

    async def __aenter__(self) -> Session:
        self._driver = asyncio.create_task(self._drive(), name=f"run {self.dialogue_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cancel()

    async def cancel(self) -> None:
        """Stops the run: in-flight agent calls are cancelled, stored replies stay."""
        driver = self._driver
        if driver is None or driver.done():
            return
        driver.cancel()
        # The driver's own cleanup (releasing the lease) must finish before we return,
        # even when our caller is itself being cancelled.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(driver)

    def request_stop(self, mode: CancelMode) -> None:
        """Stops the run from outside (CancelRun): IMMEDIATE cancels in-flight calls,
        AFTER_TURN lets them finish; neither starts new calls. The stream still ends
        with SessionCompleted, and the turn is marked cancelled in the log."""
        if self._stops.requested is CancelMode.IMMEDIATE:
            return
        self._stops.requested = mode
        if mode is CancelMode.IMMEDIATE:
            for task in self._inflight:
                task.cancel()

    def _expire(self) -> None:
        """The run's deadline passed: calls in flight fail with RUN_DEADLINE_EXCEEDED,
        later ones are not made, and the stream still ends with SessionCompleted."""
        self._stops.expired = True
        for task in self._inflight:
            task.cancel()

    def __aiter__(self) -> AsyncIterator[SessionEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[SessionEvent]:
        outbox = self._outbox
        while True:
            item = outbox.take()
            if item is None:
                await outbox.arrival()
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Crash):
                raise item.error
            yield item

    # --- the driver ------------------------------------------------------------------

    async def _drive(self) -> None:
        error: BaseException | None = None
        try:
            with self._trace.scope():
                await self._run_with_heartbeat()
        except asyncio.CancelledError as cancelled:
            error = cancelled
            if not self._completed and not self._released:  # released: every reply stored
                await self._record_end(RunEnd.CANCELLED)
            raise
        except Exception as crash:  # handed to the reader, who decides what it means
            error = crash
            self._outbox.put(_Crash(crash))
        finally:
            if self._tails is not None and self._window.head:  # what the next run reads first
                self._tails.put(self._tail_key, self._window)
            if self._on_end is not None:
                self._on_end(self)
            self._trace.finished(*self._counts, error)
            if not self._released:
                try:
                    await asyncio.shield(self._release())
                except Exception:
                    logger.exception("could not release the run lease of %s", self.dialogue_id)
            self._outbox.put(_End())

    async def _release(self) -> None:
        await self._store.end_run(self._lease)
        # Wakes runs queued for this dialogue now rather than at their next poll.
        await self._store.feed.publish(LogGrew(self.dialogue_id, self._window.head))

    async def _run_with_heartbeat(self) -> None:
        # Most runs are over before the first renewal is due: only a timer until then.
        heartbeat: asyncio.Task[None] | None = None

        def start_heartbeat() -> None:
            nonlocal heartbeat
            heartbeat = asyncio.create_task(self._heartbeat())

        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._lease_ttl / 3, start_heartbeat)
        # One timer for the run's deadline, not one per call: the calls' own timeouts
        # are the retry wrapper's (loop.time() is time.monotonic(), as the deadline).
        deadline = self._stops.deadline
        expiry = None if deadline is None else loop.call_at(deadline, self._expire)
        try:
            await self._run()
        finally:
            timer.cancel()
            if expiry is not None:
                expiry.cancel()
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _heartbeat(self) -> None:
        while not self._released:
            try:
                requested = await self._store.renew_run(self._lease, ttl=self._lease_ttl)
            except LeaseLost:
                if self._released:  # by the run's last write, meanwhile
                    return
                raise
            if requested is not None:
                self.request_stop(requested)
            await asyncio.sleep(self._lease_ttl / 3)

    async def _record_end(self, end: RunEnd) -> None:
        """Marks this turn as cut short in the log, so every reader knows."""
        try:
            await asyncio.shield(self._store.append(self._lease, [run_end_notice(self.turn, end)]))
        except Exception:
            logger.exception(
                "could not record the end of turn %d of %s", self.turn, self.dialogue_id
            )

    async def _run(self) -> None:
        input_seqs = tuple(m.seq for m in self._inputs)
        if not self._react:
            await self._emit(SessionStarted((), self._model, input_seqs))
            self._completed = True
            await self._emit(SessionCompleted(0, 0))
            return
        model, decision = self._model, None
        if isinstance(model, Moderated):
            model, decision = await self._moderate(model)
        plan = await self._plan(model)
        self._trace.planned(plan.execution_model, [p.name for p in plan.called])
        await self._emit(
            SessionStarted(tuple(p.name for p in plan.called), plan.execution_model, input_seqs)
        )
        turns = failures = 0
        if decision is not None:
            await self._emit(decision)
            turns, failures = _count(decision, turns, failures)
        await self._load_window(plan.called)
        if plan.sequential:
            counts = await self._run_sequential(plan.called)
        else:
            counts = await self._run_concurrent(plan.called, plan.emission)
        if self._mention_cursor is not None:  # no reply carried it to the store
            await self._store.append(self._lease, [], mention_cursor=self._mention_cursor)
        self._counts = (turns + counts[0], failures + counts[1])
        if self._cut_short:
            await self._record_end(RunEnd.CANCELLED)
        self._completed = True
        await self._emit(SessionCompleted(*self._counts))

    async def _plan(self, model: ExecutionModel) -> RunPlan:
        if not isinstance(model, Mentioned):
            return plan_for(self._dialogue, model)
        # Scan this turn's input and the agent replies no run has scanned yet.
        first_input = self._inputs[0].seq
        unscanned = await self._store.read_messages(
            self.dialogue_id,
            after_seq=self._dialogue.mention_cursor,
            through_seq=first_input - 1,
        )
        texts = [m.content for m in unscanned if m.speaker.kind is SpeakerKind.AGENT]
        texts.extend(m.content for m in self._inputs)
        names = [p.name for p in self._dialogue.participants]
        self._mention_cursor = self._inputs[-1].seq
        return plan_for(self._dialogue, model, find_mentions(texts, names, model.strategy))

    async def _moderate(
        self, moderated: Moderated
    ) -> tuple[ExecutionModel, RoutingDecision | TurnFailed]:
        """Asks the moderator for this run's model; falls back to broadcast on failure."""
        first_input = self._inputs[0].seq
        recent = await self._store.read_messages(
            self.dialogue_id,
            after_seq=max(first_input - 1 - RECENT_MESSAGES, 0),
            through_seq=first_input - 1,
        )
        prompt = render_moderator_prompt(self._dialogue, recent, self._inputs)
        call = AgentCall(
            dialogue_id=self.dialogue_id,
            turn=self.turn,
            persona=Persona(moderated.agent, MODERATOR_ROLE),
            participant_index=MODERATOR_INDEX,
            options=moderated.agent_options,
            delivered=self._inputs,
            render_prompt=fixed_text(prompt),
            render_system=fixed_text(prompt),
        )
        trace = self._trace.call(call, self._agents.profile(moderated.agent), sequential=False)
        stopped = await self._in_flight(self._caller.invoke(moderated.agent, call, trace))
        outcome = self._stopped_call() if stopped is None else stopped
        if isinstance(outcome, AgentReply):
            try:
                model = parse_decision(outcome.content, self._dialogue)
            except ModerationError as error:
                outcome = AgentFailure("MODERATOR_BAD_DECISION", str(error))
            else:
                trace.replied(outcome, None)
                return model, RoutingDecision(model, outcome.content)
        trace.failed(outcome)
        logger.info("moderator of %s failed (%s): broadcasting", self.dialogue_id, outcome.code)
        speaker = Speaker(SpeakerKind.AGENT, moderated.agent, MODERATOR_ROLE)
        failed = TurnFailed(
            speaker,
            MODERATOR_INDEX,
            outcome.code,
            outcome.message,
            outcome.retryable,
            outcome.attempts,
        )
        return Broadcast(), failed

    async def _emit(self, event: Event) -> None:
        self._trace.emitted(event)
        self._sequence += 1
        envelope = SessionEvent(self.dialogue_id, self.turn, self._sequence, utcnow(), event)
        self._outbox.put(envelope)
        # Watchers get replies from the log itself; the other events only live here.
        if not isinstance(event, TurnCompleted):
            try:
                await self._store.feed.publish(RunEvent(envelope))
            except Exception:
                logger.warning(
                    "could not publish a run event of %s", self.dialogue_id, exc_info=True
                )

    async def _load_window(self, called: Sequence[Participant]) -> None:
        head = self._inputs[-1].seq if self._inputs else self._dialogue.message_count
        cursors = [p.cursor for p in called if p.cursor is not None]
        start = min(cursors, default=head)
        # This run stored its input itself, under its lease: nothing came in between.
        before_input = self._inputs[0].seq - 1 if self._inputs else head
        inputs = self._inputs[max(start - before_input, 0) :]
        earlier = None
        if start < before_input and self._tails is not None:
            # What the previous run of the dialogue wrote, kept in memory.
            earlier = self._tails.messages(self._tail_key, start, before_input)
        if start >= before_input:  # everyone had seen the log up to the input
            messages: Sequence[Message] = inputs
        elif earlier is not None:
            messages = [*earlier, *inputs]
        else:
            messages = await self._store.read_messages(
                self.dialogue_id, after_seq=start, through_seq=head
            )
        self._window = delivery.LogWindow(messages, head, start)

    async def _delivery_for(self, participant: Participant) -> tuple[list[Message], int]:
        """The messages for this call and the seq its cursor moves to on success."""
        head = self._window.head
        if participant.cursor is not None:
            return delivery.not_own(self._window.after(participant.cursor), participant.name), head
        strategy = participant.joining_strategy
        min_turn, max_turn = delivery.joining_turn_bounds(strategy, self.turn)
        window = await self._store.read_messages(
            self.dialogue_id, through_seq=head, min_turn=min_turn, max_turn=max_turn
        )
        return [
            m
            for m in window
            if delivery.in_joining_window(strategy, m, self.turn)
            and not delivery.is_own(m, participant.name)
        ], head

    async def _store_replies(
        self, outcomes: Sequence[Outcome], *, last: bool = False
    ) -> dict[int, Event]:
        """Appends the replies among `outcomes` in one transaction; returns their events.

        `last`: no call of this run is left, so a run that was not cut short releases
        its lease in the same transaction (one fewer, and the dialogue is free for the
        next run the moment its last reply is stored).
        """
        replies = [o for o in outcomes if isinstance(o, Replied)]
        drafts = [
            MessageDraft.agent_reply(
                turn=self.turn,
                speaker=o.participant.persona.speaker(),
                content=o.reply.content,
                delivered_through=o.delivered_through,
            )
            for o in replies
        ]
        cursors = {o.participant.name: o.delivered_through for o in replies}
        stored: list[Message] = []
        if drafts:
            release = last and not self._cut_short
            stored = await self._store.append(
                self._lease,
                drafts,
                cursors,
                mention_cursor=self._mention_cursor,
                end_run=release,
            )
            self._released = release
            self._mention_cursor = None
        self._window.extend(stored)
        now = time.monotonic()
        events: dict[int, Event] = {}
        for outcome, message in zip(replies, stored, strict=True):
            outcome.trace.replied(outcome.reply, message)
            # Positional, in field order (see `model.record`).
            events[outcome.index] = TurnCompleted(
                message.speaker,  # speaker
                message.content,  # content
                self.turn,  # turn
                message.seq,  # message_seq
                outcome.index,  # participant_index
                timedelta(0, now - outcome.started),  # latency: (days, seconds)
                outcome.reply.usage,  # usage
            )
        for failed in outcomes:
            if isinstance(failed, Failed):
                failure = failed.failure
                failed.trace.failed(failure)
                events[failed.index] = TurnFailed(
                    speaker=failed.participant.persona.speaker(),
                    participant_index=failed.index,
                    code=failure.code,
                    message=failure.message,
                    retryable=failure.retryable,
                    attempts=failure.attempts,
                )
        return events

    def _cancelled(self, participant: Participant, *, called: bool) -> Failed:
        """The outcome of a participant the run was stopped for."""
        failure = self._stopped_call() if called else self._not_called()
        index = self._indexes[participant.name]
        return Failed(participant, index, failure, NULL_CALL_TRACE)

    def _stopped_call(self) -> AgentFailure:
        """Why a call in flight was stopped: the deadline, or else a cancellation."""
        if self._stops.stopped_for_deadline():
            return deadline_exceeded(during_call=True)
        self._cut_short = True
        return AgentFailure(
            "RUN_CANCELLED", "the run was cancelled during its call", retryable=True
        )

    def _not_called(self) -> AgentFailure:
        self._cut_short = True
        return AgentFailure(
            "RUN_CANCELLED",
            "the run was cancelled before it was called",
            retryable=True,
            attempts=0,
        )

    async def _in_flight(self, call: Coroutine[object, object, T]) -> T | None:
        """Runs one call as a task the run can stop; None when it was stopped."""
        task = asyncio.create_task(call)
        self._inflight.add(task)
        try:
            # wait(), not await: a call stopped by request_stop or the deadline must
            # not look like the run itself being cancelled.
            await asyncio.wait({task})
        finally:
            self._inflight.discard(task)
            if not task.done():  # the run itself is being cancelled
                task.cancel()
        return None if task.cancelled() else task.result()

    async def _run_sequential(self, called: Sequence[Participant]) -> tuple[int, int]:
        turns = failures = 0
        for position, participant in enumerate(called, start=1):
            if self._stops.requested is not None:
                outcome: Outcome = self._cancelled(participant, called=False)
            else:
                delivered, through = await self._delivery_for(participant)
                result = await self._in_flight(
                    self._caller.call(
                        participant,
                        self._indexes[participant.name],
                        delivered,
                        through,
                        sequential=True,
                    )
                )
                outcome = self._cancelled(participant, called=True) if result is None else result
            last = position == len(called)
            for event in (await self._store_replies([outcome], last=last)).values():
                await self._emit(event)
                turns, failures = _count(event, turns, failures)
        return turns, failures

    async def _run_concurrent(
        self, called: Sequence[Participant], emission: tuple[int, ...] | None
    ) -> tuple[int, int]:
        turns = failures = 0
        calls = [(p, *await self._delivery_for(p)) for p in called]
        ready: dict[int, Event] = {}
        next_to_emit = 0
        loop = asyncio.get_running_loop()
        # Calls that ended since the driver last looked (no outcome: stopped), and a
        # future that wakes it. Each call reports its own end: a done callback would be
        # one more scheduled callback per call (asyncio.wait, one per pending call each
        # time). A call counts as in flight, to be stopped, only once it has started: a
        # task cancelled before its start would never run its report.
        ended: list[tuple[Participant, Outcome | None]] = []
        woken: asyncio.Future[None] | None = None

        # Not a TaskGroup: calls never raise (failures are outcomes), and its done
        # callback on each call would be one more scheduled callback per participant.
        # A call finds its own task here, put in before its first step runs: cheaper
        # than asyncio.current_task(), which on 3.11 makes a getpid() system call.
        tasks: list[asyncio.Task[None]] = []

        async def call(
            position: int, participant: Participant, delivered: list[Message], through: int
        ) -> None:
            outcome: Outcome | None = None
            task = tasks[position]
            try:
                if not self._stops.calls_stopped():
                    self._inflight.add(task)
                    outcome = await self._caller.call(
                        participant,
                        self._indexes[participant.name],
                        delivered,
                        through,
                        sequential=False,
                    )
            finally:
                self._inflight.discard(task)
                ended.append((participant, outcome))
                if woken is not None and not woken.done():
                    woken.set_result(None)

        try:
            for participant, delivered, through in calls:
                if self._stops.requested is not None:
                    ready.update(
                        await self._store_replies([self._cancelled(participant, called=False)])
                    )
                    continue
                tasks.append(loop.create_task(call(len(tasks), participant, delivered, through)))
            pending = len(tasks)
            while pending or ready:
                if pending:
                    if not ended:
                        woken = loop.create_future()
                        await woken
                    done, ended[:] = list(ended), []
                    pending -= len(done)
                    # Replies that finished together are stored and emitted in
                    # participant order, so ties never depend on scheduling.
                    outcomes = sorted(
                        (
                            self._cancelled(participant, called=True)
                            if outcome is None
                            else outcome
                            for participant, outcome in done
                        ),
                        key=lambda o: o.index,
                    )
                    ready.update(await self._store_replies(outcomes, last=not pending))
                if emission is None:
                    to_emit = [ready.pop(i) for i in sorted(ready)]
                else:
                    to_emit = []
                    while next_to_emit < len(emission) and emission[next_to_emit] in ready:
                        to_emit.append(ready.pop(emission[next_to_emit]))
                        next_to_emit += 1
                    if not pending and not to_emit:
                        break
                for event in to_emit:
                    await self._emit(event)
                    turns, failures = _count(event, turns, failures)
        finally:
            # The run itself is being cancelled (or crashed): no call may outlive it.
            running = [task for task in tasks if not task.done()]
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        return turns, failures


def _count(event: Event, turns: int, failures: int) -> tuple[int, int]:
    if isinstance(event, TurnCompleted):
        return turns + 1, failures
    if isinstance(event, TurnFailed):
        return turns, failures + 1
    return turns, failures
