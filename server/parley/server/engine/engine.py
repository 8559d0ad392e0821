"""The engine's front door: dialogue management and opening runs.

The api layer calls these methods with model values and maps the results and the
`parley.server.engine.errors` it raises; benchmarks and tests call them in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from parley.server.agents.registry import AgentRegistry
from parley.server.engine.conversation import ConversationCache
from parley.server.engine.delivery import LogTails
from parley.server.engine.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    RunInProgress,
)
from parley.server.engine.events import SessionEvent
from parley.server.engine.history import (
    HistoryFormat,
    ImportMode,
    export_history,
    parse_history,
    render_history_preface,
)
from parley.server.engine.model import (
    Attachment,
    Broadcast,
    Dialogue,
    DialogueContext,
    ExecutionModel,
    InputMessage,
    JoiningStrategy,
    Message,
    MessageDraft,
    MessageType,
    Origin,
    Participant,
    Sequential,
    Speaker,
    SpeakerKind,
    utcnow,
)
from parley.server.engine.observer import NullObserver, RunObserver
from parley.server.engine.reaction import should_react
from parley.server.engine.session import DEFAULT_LEASE_TTL_S, Session
from parley.server.engine.validation import (
    Limits,
    Violations,
    check_broadcast,
    check_dialogue,
    check_dialogue_id,
    check_joining,
    check_participant,
    check_run_input,
)
from parley.server.store.feed import CancelMode, CancelRequested, FeedItem, LogGrew, RunEvent
from parley.server.store.protocol import RunStart, Store

QUEUE_POLL_S = 1.0
WATCH_PAGE = 500
UPDATABLE_FIELDS = frozenset({"display_name", "execution_model", "context", "reaction_strategy"})
DEFAULT_USER_NAME = "User"


@dataclass(frozen=True, slots=True)
class RunInput:
    """A run's input as the client sent it: messages first, then the text prompt."""

    text: str = ""
    messages: Sequence[InputMessage] = ()
    attachments: Sequence[Attachment] = ()
    # The speaker of `text`; None means the System speaker.
    speaker: Speaker | None = None
    broadcast_override: Broadcast | None = None


def without_name(model: ExecutionModel, name: str) -> ExecutionModel:
    """The model with `name` dropped from its explicit orders."""
    match model:
        case Sequential(order=order) if name in order:
            return Sequential(tuple(n for n in order if n != name))
        case Broadcast(explicit_order=names) if name in names:
            return dataclasses.replace(model, explicit_order=tuple(n for n in names if n != name))
    return model


def _require_empty_log(dialogue: Dialogue) -> None:
    if dialogue.message_count:
        raise FailedPrecondition(
            f"dialogue {dialogue.id!r} already has messages: import into a new dialogue",
            reason="LOG_NOT_EMPTY",
        )


def normalize_speaker(speaker: Speaker) -> Speaker:
    """The system speaker is always `System`; an unnamed user is `User`."""
    if speaker.kind is SpeakerKind.SYSTEM:
        return Speaker.system()
    if speaker.kind is SpeakerKind.USER and not speaker.name:
        return dataclasses.replace(speaker, name=DEFAULT_USER_NAME)
    return speaker


class Engine:
    def __init__(
        self,
        store: Store,
        agents: AgentRegistry,
        limits: Limits | None = None,
        *,
        owner: str = "",
        observer: RunObserver | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL_S,
    ) -> None:
        self.store = store
        self.observer = observer or NullObserver()
        self.agents = agents
        self.limits = limits or Limits()
        # Identifies this process as the holder of run leases.
        self.owner = owner or f"parley-{secrets.token_hex(4)}"
        # How long a run's lease outlives a silent holder: the time another replica
        # waits before taking over the dialogue of a replica that died mid-run.
        self.lease_ttl = lease_ttl
        # Runs of this process, by dialogue: where CancelRun requests land.
        self._running: dict[str, Session] = {}
        # Chat backends' conversations, extended call after call instead of rebuilt.
        self._conversations = ConversationCache()
        # The end of each recently run log, so a run need not read back the last one's.
        self._tails = LogTails()
        self._control: asyncio.Task[None] | None = None

    # --- dialogues -------------------------------------------------------------------

    async def create_dialogue(self, dialogue: Dialogue) -> Dialogue:
        out = Violations()
        if dialogue.id:
            check_dialogue_id(dialogue.id, "dialogue_id", out)
        check_dialogue(dialogue, "dialogue", self.agents, self.limits, out)
        out.raise_if_any()
        now = utcnow()
        dialogue = dataclasses.replace(
            dialogue,
            id=dialogue.id or f"d-{secrets.token_hex(8)}",
            participants=tuple(dataclasses.replace(p, cursor=0) for p in dialogue.participants),
            latest_turn=0,
            message_count=0,
            create_time=now,
            update_time=now,
        )
        if not dialogue.display_name:
            dialogue = dataclasses.replace(dialogue, display_name=dialogue.id)
        return await self.store.create_dialogue(dialogue)

    async def get_dialogue(self, dialogue_id: str) -> Dialogue:
        return await self.store.get_dialogue(dialogue_id)

    async def list_dialogues(self, *, after_id: str, page_size: int) -> list[Dialogue]:
        return await self.store.list_dialogues(after_id=after_id, limit=page_size)

    async def update_dialogue(
        self, dialogue_id: str, changes: Dialogue, fields: set[str]
    ) -> Dialogue:
        """Copies `fields` of `changes` onto the stored dialogue, then validates it."""
        unknown = sorted(fields - UPDATABLE_FIELDS)
        if not fields or unknown:
            raise InvalidArgument.single(
                "update_mask",
                f"name fields to change among {sorted(UPDATABLE_FIELDS)}"
                + (f"; cannot change {unknown}" if unknown else ""),
            )
        current = await self.store.get_dialogue(dialogue_id)
        updated = dataclasses.replace(
            current, **{name: getattr(changes, name) for name in fields}, update_time=utcnow()
        )
        if "display_name" in fields and not updated.display_name:
            updated = dataclasses.replace(updated, display_name=dialogue_id)
        out = Violations()
        check_dialogue(updated, "dialogue", self.agents, self.limits, out)
        out.raise_if_any()
        return await self.store.update_dialogue(updated)

    async def delete_dialogue(self, dialogue_id: str) -> None:
        await self.store.delete_dialogue(dialogue_id)

    async def add_participant(
        self, dialogue_id: str, participant: Participant, joining: JoiningStrategy | None
    ) -> Dialogue:
        out = Violations()
        check_participant(participant, "participant", self.agents, out)
        if joining is not None:
            check_joining(joining, "joining_strategy", out)
        out.raise_if_any()
        joining = joining or participant.joining_strategy
        participant = dataclasses.replace(
            participant,
            joining_strategy=joining,
            # A joiner in progress has no cursor until its first reply; anyone else
            # starts at the beginning of the log, like a founding member.
            cursor=None if joining is not None else 0,
        )
        current = await self.store.get_dialogue(dialogue_id)
        if len(current.participants) >= self.limits.max_participants:
            raise ResourceExhausted(
                f"a dialogue may have at most {self.limits.max_participants} participants",
                subject="participants_per_dialogue",
                reason="TOO_MANY_PARTICIPANTS",
            )
        return await self.store.add_participant(dialogue_id, participant)

    async def remove_participant(self, dialogue_id: str, name: str) -> Dialogue:
        """Removes a participant (its messages stay) and its name from stored orders,
        which only ever name participants."""
        dialogue = await self.store.remove_participant(dialogue_id, name)
        model = without_name(dialogue.execution_model, name)
        if model == dialogue.execution_model:
            return dialogue
        return await self.store.update_dialogue(
            dataclasses.replace(dialogue, execution_model=model, update_time=utcnow())
        )

    async def list_messages(
        self, dialogue_id: str, *, after_seq: int, page_size: int
    ) -> list[Message]:
        await self.store.get_dialogue(dialogue_id)  # NOT_FOUND for unknown dialogues
        return await self.store.read_messages(dialogue_id, after_seq=after_seq, limit=page_size)

    # --- history ---------------------------------------------------------------------

    async def export_history(self, dialogue_id: str, fmt: HistoryFormat) -> str:
        await self.store.get_dialogue(dialogue_id)  # NOT_FOUND for unknown dialogues
        return export_history(await self.store.read_messages(dialogue_id), fmt)

    async def import_history(self, dialogue_id: str, content: str, mode: ImportMode) -> Dialogue:
        """Imports a history into a dialogue whose log is empty.

        AS_MESSAGES stores the messages, counted as delivered to every participant
        present; AS_SYSTEM_PROMPT renders them into the context instead.
        """
        drafts = parse_history(content)
        dialogue = await self.store.get_dialogue(dialogue_id)
        _require_empty_log(dialogue)
        if mode is ImportMode.AS_SYSTEM_PROMPT:
            if not drafts:
                return dialogue
            context = dialogue.context or DialogueContext()
            preface = render_history_preface(drafts, utcnow())
            context = dataclasses.replace(
                context, additional_context=(*context.additional_context, preface)
            )
            return await self.store.update_dialogue(
                dataclasses.replace(dialogue, context=context, update_time=utcnow())
            )
        # Checked again under the lease (a run may have written since), and once more
        # after it: taking over a dead run's lease writes a notice.
        start = await self.store.begin_run(
            dialogue_id, owner=self.owner, ttl=self.lease_ttl, check=_require_empty_log
        )
        lease, dialogue = start.lease, start.dialogue
        try:
            _require_empty_log(dialogue)
            head = len(drafts)
            cursors = {p.name: head for p in dialogue.participants if p.cursor is not None}
            await self.store.append(lease, drafts, cursors)
        finally:
            await self.store.end_run(lease)
        return await self.store.get_dialogue(dialogue_id)

    # --- runs ------------------------------------------------------------------------

    async def open_run(
        self,
        dialogue_id: str,
        run_input: RunInput,
        *,
        deadline: float | None = None,
        queue_timeout: float | None = None,
    ) -> Session:
        """Validates the input, takes the run lease, stores the input, plans the run.

        Every request problem is raised here, before anything is stored or any agent is
        called; use the returned session as an async context manager. `deadline`
        (time.monotonic()) bounds the run; `queue_timeout` set means wait that long for
        a busy dialogue instead of failing with RUN_IN_PROGRESS at once.
        """
        if run_input.messages:
            run_input = dataclasses.replace(
                run_input,
                messages=[
                    dataclasses.replace(m, speaker=normalize_speaker(m.speaker))
                    for m in run_input.messages
                ],
            )
        out = Violations()
        check_run_input(run_input.messages, run_input.text, run_input.attachments, self.limits, out)
        if out.items or run_input.broadcast_override is not None:
            # An unknown dialogue is NOT_FOUND before any request problem, and an
            # override is checked before the lease is taken. Otherwise taking the lease
            # is the first read (and says NOT_FOUND): each read costs a store round trip.
            dialogue = await self.store.get_dialogue(dialogue_id)
            self._check_override(dialogue, run_input.broadcast_override, out)
            out.raise_if_any()

        # The lease, the dialogue as of the new turn and the stored input, in one store
        # call. The override is checked again under the lease, before anything is
        # written: participants may have changed since the check above.
        check: Callable[[Dialogue], None] | None = None
        if run_input.broadcast_override is not None:
            check = functools.partial(self._require_valid_override, run_input.broadcast_override)
        drafts = self._input_drafts(run_input)
        start = await self._take_lease(dialogue_id, drafts, check, queue_timeout, deadline)
        lease, dialogue, stored = start.lease, start.dialogue, start.inputs
        model = dialogue.execution_model
        if run_input.broadcast_override is not None and isinstance(model, Broadcast):
            model = run_input.broadcast_override
        longest = time.monotonic() + self.limits.max_run_seconds
        session = Session(
            store=self.store,
            agents=self.agents,
            dialogue=dialogue,
            lease=lease,
            inputs=stored,
            model=model,
            react=should_react(dialogue.reaction_strategy, drafts),
            observer=self.observer,
            lease_ttl=self.lease_ttl,
            deadline=longest if deadline is None else min(deadline, longest),
            max_reply_bytes=self.limits.max_message_bytes,
            on_end=self._forget_run,
            conversations=self._conversations,
            tails=self._tails,
        )
        self._running[dialogue_id] = session
        return session

    def _forget_run(self, session: Session) -> None:
        # A run's last write releases its lease, so the next run of the dialogue may be
        # registered already: forget this one only.
        if self._running.get(session.dialogue_id) is session:
            del self._running[session.dialogue_id]

    async def _take_lease(
        self,
        dialogue_id: str,
        inputs: Sequence[MessageDraft],
        check: Callable[[Dialogue], None] | None,
        queue_timeout: float | None,
        deadline: float | None,
    ) -> RunStart:
        """Begins the run (see `Store.begin_run`), waiting for a busy dialogue when asked
        to queue."""
        begin = functools.partial(
            self.store.begin_run,
            dialogue_id,
            owner=self.owner,
            ttl=self.lease_ttl,
            inputs=inputs,
            check=check,
        )
        if queue_timeout is None:
            return await begin()
        give_up = time.monotonic() + queue_timeout
        if deadline is not None:
            give_up = min(give_up, deadline)
        async with self.store.feed.subscribe(dialogue_id) as feed:
            items = aiter(feed)
            # One read of the feed outlives the polls: cancelling it would end `items`.
            pending: asyncio.Future[FeedItem] | None = None
            try:
                while True:
                    try:
                        return await begin()
                    except RunInProgress:
                        remaining = give_up - time.monotonic()
                        if remaining <= 0:
                            raise
                    # Woken by the other run's events; the poll covers a holder that
                    # died (its lease expires without a word).
                    if pending is None:
                        pending = asyncio.ensure_future(anext(items))
                    done, _ = await asyncio.wait({pending}, timeout=min(remaining, QUEUE_POLL_S))
                    if done:
                        pending = None
            finally:
                if pending is not None:
                    pending.cancel()

    async def cancel_run(self, dialogue_id: str, mode: CancelMode) -> int:
        """Asks the run in progress to stop, on whichever replica runs it; its turn."""
        # DIALOGUE_NOT_FOUND before NO_RUN_IN_PROGRESS, whichever store this is.
        await self.store.get_dialogue(dialogue_id)
        turn = await self.store.request_cancel(dialogue_id, mode)
        await self.store.feed.publish(CancelRequested(dialogue_id, turn, mode))
        return turn

    async def start(self) -> None:
        """Starts listening for cancel requests addressed to runs of this process."""
        if self._control is None:
            self._control = asyncio.create_task(self._follow_cancel_requests())

    async def close(self) -> None:
        if self._control is not None:
            self._control.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._control
            self._control = None

    async def _follow_cancel_requests(self) -> None:
        async with self.store.feed.subscribe(None) as feed:
            async for item in feed:
                if isinstance(item, CancelRequested):
                    session = self._running.get(item.dialogue_id)
                    if session is not None and session.turn == item.turn:
                        session.request_stop(item.mode)

    # --- watching --------------------------------------------------------------------

    async def watch(
        self, dialogue_id: str, after_seq: int
    ) -> AsyncGenerator[Message | SessionEvent, None]:
        """The log after `after_seq`, then live: new messages and run events.

        Subscribing before replaying, and reading by seq, leaves no gap and no
        duplicate between the two.
        """
        await self.store.get_dialogue(dialogue_id)  # NOT_FOUND for unknown dialogues
        async with self.store.feed.subscribe(dialogue_id) as feed:
            last = after_seq
            async for message in self._messages_after(dialogue_id, last):
                last = message.seq
                yield message
            async for item in feed:
                if isinstance(item, LogGrew) and item.head > last:
                    async for message in self._messages_after(dialogue_id, last):
                        last = message.seq
                        yield message
                elif isinstance(item, RunEvent):
                    yield item.event

    async def _messages_after(
        self, dialogue_id: str, after_seq: int
    ) -> AsyncGenerator[Message, None]:
        while True:
            page = await self.store.read_messages(
                dialogue_id, after_seq=after_seq, limit=WATCH_PAGE
            )
            for message in page:
                yield message
            if len(page) < WATCH_PAGE:
                return
            after_seq = page[-1].seq

    @staticmethod
    def _check_override(dialogue: Dialogue, override: Broadcast | None, out: Violations) -> None:
        if override is not None:
            names = {p.name for p in dialogue.participants}
            check_broadcast(override, names, "broadcast_order_override", out)

    @classmethod
    def _require_valid_override(cls, override: Broadcast, dialogue: Dialogue) -> None:
        out = Violations()
        cls._check_override(dialogue, override, out)
        out.raise_if_any()

    @staticmethod
    def _input_drafts(run_input: RunInput) -> list[MessageDraft]:
        """The run's input as drafts; their turn (0 here) is set by `Store.begin_run`."""
        drafts = [
            MessageDraft(
                turn=0,
                speaker=m.speaker,
                content=m.content,
                origin=Origin.INCOMING,
                type=m.type,
                custom_type=m.custom_type,
                attachments=tuple(m.attachments),
                metadata=dict(m.metadata),
            )
            for m in run_input.messages
        ]
        if run_input.text or run_input.attachments:
            speaker = normalize_speaker(run_input.speaker or Speaker.system())
            drafts.append(
                MessageDraft(
                    turn=0,
                    speaker=speaker,
                    content=run_input.text,
                    origin=Origin.INCOMING,
                    type=MessageType.CONVERSATIONAL,
                    attachments=tuple(run_input.attachments),
                )
            )
        return drafts
