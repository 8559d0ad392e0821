"""The asyncio client: one method per DialogueService RPC, typed, errors decoded.

Compared with the generated stub it accepts bare dialogue ids, hides paging behind
async iterators, applies a default deadline and metadata to every call, and raises
:class:`~parley.client.errors.ParleyRpcError` with the server's reason and field
violations already decoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from types import TracebackType
from typing import Unpack

import grpc
from parley.client import _common
from parley.client._common import (
    DEFAULT_MAX_RESUMES,
    DEFAULT_RESUME_TIMEOUT,
    DEFAULT_TARGET,
    CallOptions,
    ClientBase,
    TlsConfig,
    dialogue_name,
    parley_errors,
    tls_config,
)
from parley.client._runs import RunTracker, stream_lost
from parley.client.errors import ParleyRpcError
from parley.v1 import dialogue_pb2 as pb
from parley.v1.dialogue_pb2_grpc import DialogueServiceStub

__all__ = ["AsyncParleyClient", "AsyncRunTurns"]

logger = logging.getLogger("parley.client")


class AsyncRunTurns(RunTracker):
    """The replies of one run, as an async iterator of ``Turn``s, and what else it said.

    ``async for turn in client.turns(...)`` yields each participant's reply the moment
    it is stored. Failed participants are not yielded: they are in ``failures`` (and the
    run goes on). After the loop ``started``, ``completed``, ``turns`` and ``resumed``
    tell the rest.
    """

    _events: AsyncIterator[pb.SessionEvent]

    def __aiter__(self) -> AsyncIterator[pb.Turn]:
        return self._turns()

    async def _turns(self) -> AsyncGenerator[pb.Turn, None]:
        # The events were observed (counted, remembered) by the run that yields them.
        async for event in self._events:
            if event.WhichOneof("event") == "turn_completed":
                yield event.turn_completed


class AsyncParleyClient(ClientBase):
    """An asyncio client for ``parley.v1.DialogueService``.

    Use it as ``async with AsyncParleyClient("host:port") as client: ...``. The client
    closes the channel it opened; a ``channel`` passed in belongs to the caller and is
    left open, so one channel can serve several clients.

    * ``token`` is sent as ``authorization: Bearer <token>``; ``metadata`` and
      ``timeout`` (a deadline in seconds) apply to every call, and each method's own
      ``timeout`` and ``metadata`` override or extend them.
    * ``tls``: ``True`` for TLS with the system's roots, or a :class:`TlsConfig` (a
      private CA, a client certificate for mutual TLS).
    * ``propagate_trace``: send the current OpenTelemetry context (W3C
      ``traceparent``) with every call, so the server's spans join the caller's trace.
    * ``resume``: when a ``RunSession`` stream breaks with UNAVAILABLE after the run
      started, follow the run to its end through ``WatchDialogue`` (waiting up to
      ``resume_timeout`` seconds for the server, at most ``max_resumes`` times).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsConfig | bool = False,
        metadata: Iterable[tuple[str, str | bytes]] = (),
        timeout: float | None = None,
        propagate_trace: bool = True,
        resume: bool = True,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
        max_resumes: int = DEFAULT_MAX_RESUMES,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        super().__init__(
            target,
            metadata=metadata,
            timeout=timeout,
            token=token,
            propagate_trace=propagate_trace,
            resume=resume,
            resume_timeout=resume_timeout,
            max_resumes=max_resumes,
        )
        self._owns_channel = channel is None
        secure = tls_config(tls)
        if channel is not None:
            self._channel = channel
        elif secure is not None:
            self._channel = grpc.aio.secure_channel(
                target, secure.credentials(), options=secure.channel_options()
            )
        else:
            self._channel = grpc.aio.insecure_channel(target, options=_common.CHANNEL_OPTIONS)
        self._stub = DialogueServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel if this client opened it; in-flight calls are cancelled."""
        if self._owns_channel:
            await self._channel.close(None)

    async def __aenter__(self) -> AsyncParleyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def create_dialogue(
        self,
        dialogue: pb.Dialogue,
        dialogue_id: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Create ``dialogue``; an empty ``dialogue_id`` lets the server choose one."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.CreateDialogue(
                _common.create_request(dialogue, dialogue_id),
                timeout=timeout,
                metadata=metadata,
            )

    async def get_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> pb.Dialogue:
        """One dialogue, by ``dialogues/{id}`` or bare id."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.GetDialogue(
                pb.GetDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_dialogues_page(
        self,
        page_size: int = 0,
        page_token: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.ListDialoguesResponse:
        """One page of dialogues, for callers that keep the page token themselves."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ListDialogues(
                pb.ListDialoguesRequest(page_size=page_size, page_token=page_token),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_dialogues(
        self, page_size: int = 0, **options: Unpack[CallOptions]
    ) -> AsyncIterator[pb.Dialogue]:
        """Every dialogue, ordered by name, fetching pages of ``page_size`` as needed.

        ``timeout`` applies to each page's call, not to the whole iteration.
        """
        token = ""
        while True:
            page = await self.list_dialogues_page(page_size, token, **options)
            for item in page.dialogues:
                yield item
            token = page.next_page_token
            if not token:
                return

    async def update_dialogue(
        self,
        dialogue: pb.Dialogue,
        paths: Iterable[str],
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Change the fields named in ``paths`` of the dialogue named by ``dialogue.name``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.UpdateDialogue(
                _common.update_request(dialogue, paths), timeout=timeout, metadata=metadata
            )

    async def delete_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> None:
        """Delete a dialogue and its whole message log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            await self._stub.DeleteDialogue(
                pb.DeleteDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    async def add_participant(
        self,
        dialogue: str,
        participant: pb.Participant,
        joining_strategy: pb.JoiningStrategy | None = None,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Add a participant; with ``joining_strategy`` it joins a dialogue in progress."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.AddParticipant(
                _common.add_participant_request(dialogue, participant, joining_strategy),
                timeout=timeout,
                metadata=metadata,
            )

    async def remove_participant(
        self,
        dialogue: str,
        participant_name: str,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Remove a participant by persona name; its messages stay in the log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.RemoveParticipant(
                pb.RemoveParticipantRequest(
                    dialogue=dialogue_name(dialogue), participant_name=participant_name
                ),
                timeout=timeout,
                metadata=metadata,
            )

    def run_session(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
        queue: float | bool = False,
        resume: bool | None = None,
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[pb.SessionEvent]:
        """Run one turn and yield each event the moment the server sends it.

        ``text`` is a plain prompt (from the System speaker, or from ``speaker``; a
        string speaker is a user of that name); ``messages`` are stored before it.
        ``order`` overrides a broadcast's order for this run only: a ``Broadcast`` or
        ``"completion"``, ``"participant"``, ``"explicit:Name1,Name2"``. ``queue``
        waits for a run in progress instead of failing with RUN_IN_PROGRESS (``True``,
        or the longest wait in seconds). Leaving the loop early cancels the call (and
        so the run); replies already produced stay in the log.

        If the stream breaks (UNAVAILABLE) after ``started``, the remaining events are
        rebuilt from ``WatchDialogue`` (see :mod:`parley.client._runs`) unless
        ``resume`` (default: the client's) is false. ``timeout`` bounds the whole run,
        resumes included.
        """
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
            queue=queue,
        )
        return self._session(request, RunTracker(), resume, options)

    async def _session(
        self,
        request: pb.RunSessionRequest,
        tracker: RunTracker,
        resume: bool | None,
        options: CallOptions,
    ) -> AsyncIterator[pb.SessionEvent]:
        timeout, metadata = self._call_options(options)
        deadline = None if timeout is None else time.monotonic() + timeout
        call = self._stub.RunSession(request, timeout=timeout, metadata=metadata)
        try:
            async for event in call:
                tracker.observe(event)
                yield event
            return
        except grpc.RpcError as error:
            if isinstance(error, ParleyRpcError):
                raise
            if not ((self.resume if resume is None else resume) and tracker.resumable):
                raise ParleyRpcError.from_rpc_error(error) from error
            if not stream_lost(error):
                raise ParleyRpcError.from_rpc_error(error) from error
            lost: grpc.RpcError = error
        finally:
            call.cancel()
        async for event in self._follow(tracker, lost, deadline, options):
            yield event

    async def _follow(
        self,
        tracker: RunTracker,
        lost: grpc.RpcError,
        deadline: float | None,
        options: CallOptions,
    ) -> AsyncGenerator[pb.SessionEvent, None]:
        """The rest of a run whose stream was lost, from WatchDialogue."""
        while True:
            if tracker.resumed >= self.max_resumes:
                raise ParleyRpcError.from_rpc_error(lost) from lost
            tracker.resumed += 1
            logger.warning(
                "the RunSession stream of %s turn %d was lost (%s); following the run"
                " through WatchDialogue after seq %d",
                tracker.dialogue,
                tracker.turn,
                lost.code().name if callable(getattr(lost, "code", None)) else "?",
                tracker.resume_after,
            )
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            wait = self.resume_timeout if remaining is None else min(self.resume_timeout, remaining)
            _, metadata = self._call_options(options)
            watch = None
            try:
                # Waits for the server to be back (or another replica to answer), and
                # gives the participants' positions and personas for rebuilt events.
                found = await self._stub.GetDialogue(
                    pb.GetDialogueRequest(name=dialogue_name(tracker.dialogue)),
                    timeout=wait,
                    metadata=metadata,
                    wait_for_ready=True,
                )
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                watch = self._stub.WatchDialogue(
                    pb.WatchDialogueRequest(
                        dialogue=dialogue_name(tracker.dialogue), after_seq=tracker.resume_after
                    ),
                    timeout=remaining,
                    metadata=metadata,
                )
                async for item in watch:
                    for event in tracker.resume_events(item, found.participants):
                        yield event
                    if tracker.completed is not None:
                        return
            except grpc.RpcError as error:
                if isinstance(error, ParleyRpcError):
                    raise
                if not stream_lost(error):
                    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and (
                        deadline is None or time.monotonic() < deadline
                    ):
                        # Only the wait for the server ran out: the stream stays lost.
                        raise ParleyRpcError.from_rpc_error(lost) from error
                    raise ParleyRpcError.from_rpc_error(error) from error
                lost = error
            finally:
                if watch is not None:
                    watch.cancel()

    def turns(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
        queue: float | bool = False,
        resume: bool | None = None,
        **options: Unpack[CallOptions],
    ) -> AsyncRunTurns:
        """Run one turn and iterate over its replies: ``async for turn in client.turns(...)``.

        The arguments are those of :meth:`run_session`; the result also keeps the run's
        failures and counts (see :class:`AsyncRunTurns`).
        """
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
            queue=queue,
        )
        run = AsyncRunTurns()
        run._events = self._session(request, run, resume, options)
        return run

    async def run(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
        queue: float | bool = False,
        **options: Unpack[CallOptions],
    ) -> pb.RunResponse:
        """Run one turn and return it whole; the arguments are those of :meth:`run_session`."""
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
            queue=queue,
        )
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.Run(request, timeout=timeout, metadata=metadata)

    async def list_messages_page(
        self,
        dialogue: str,
        after_seq: int = 0,
        page_size: int = 0,
        page_token: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.ListMessagesResponse:
        """One page of the log, for callers that keep the page token themselves."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ListMessages(
                _common.list_messages_request(dialogue, after_seq, page_size, page_token),
                timeout=timeout,
                metadata=metadata,
            )

    async def list_messages(
        self,
        dialogue: str,
        after_seq: int = 0,
        page_size: int = 0,
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[pb.Message]:
        """The log in seq order, from after ``after_seq`` to its end, a page at a time."""
        token = ""
        while True:
            page = await self.list_messages_page(dialogue, after_seq, page_size, token, **options)
            for message in page.messages:
                yield message
            token = page.next_page_token
            if not token:
                return

    async def export_history(
        self,
        dialogue: str,
        format: pb.HistoryFormat | str = "llm_toolkit_json",
        **options: Unpack[CallOptions],
    ) -> str:
        """The whole log as a JSON document: ``llm_toolkit_json`` or ``full_json``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            response = await self._stub.ExportHistory(
                _common.export_request(dialogue, format), timeout=timeout, metadata=metadata
            )
        return response.content

    async def import_history(
        self,
        dialogue: str,
        content: str,
        mode: pb.ImportMode | str = "as_messages",
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Load an exported history into a dialogue whose log is empty.

        ``mode`` is ``as_messages`` (into the log) or ``as_system_prompt`` (into the
        dialogue's context, leaving the log empty).
        """
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.ImportHistory(
                _common.import_request(dialogue, content, mode),
                timeout=timeout,
                metadata=metadata,
            )

    async def watch_dialogue(
        self, dialogue: str, after_seq: int = 0, **options: Unpack[CallOptions]
    ) -> AsyncIterator[pb.WatchDialogueResponse]:
        """The log after ``after_seq`` (0: all of it), then every new message and live run
        event, until the caller stops iterating (or the deadline passes).

        Each item holds either a ``message`` (replayed or new, in seq order without gaps)
        or an ``event`` of a live run (started, routing, turn_failed, completed; replies
        arrive as messages).
        """
        timeout, metadata = self._call_options(options)
        call = self._stub.WatchDialogue(
            pb.WatchDialogueRequest(dialogue=dialogue_name(dialogue), after_seq=after_seq),
            timeout=timeout,
            metadata=metadata,
        )
        try:
            with parley_errors():
                async for item in call:
                    yield item
        finally:
            call.cancel()

    async def cancel_run(
        self,
        dialogue: str,
        mode: pb.CancelMode | str = "immediate",
        **options: Unpack[CallOptions],
    ) -> pb.CancelRunResponse:
        """Stop the run in progress, whichever replica runs it.

        ``immediate`` cancels the agent calls still running (they end as ``turn_failed``
        with code RUN_CANCELLED); ``after_turn`` lets them finish and starts no new ones.
        NOT_FOUND (reason NO_RUN_IN_PROGRESS) when nothing runs.
        """
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return await self._stub.CancelRun(
                _common.cancel_request(dialogue, mode), timeout=timeout, metadata=metadata
            )

    async def list_agent_profiles(self, **options: Unpack[CallOptions]) -> list[pb.AgentProfile]:
        """The server's agent profiles (by name), for ``Participant.agent``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            response = await self._stub.ListAgentProfiles(
                pb.ListAgentProfilesRequest(), timeout=timeout, metadata=metadata
            )
        return list(response.profiles)
