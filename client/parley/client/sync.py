"""The blocking client: the same methods as :mod:`parley.client.aio`, for plain code.

Scripts, notebooks and the ``parley`` command do not want an event loop; this client
uses gRPC's blocking channel and returns ordinary iterators. Every method behaves as
its :class:`~parley.client.aio.AsyncParleyClient` namesake.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
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

__all__ = ["ParleyClient", "RunTurns"]

logger = logging.getLogger("parley.client")


class RunTurns(RunTracker):
    """The replies of one run, as an iterator of ``Turn``s, and what else it said.

    ``for turn in client.turns(...)`` yields each participant's reply the moment it is
    stored. Failed participants are not yielded: they are in ``failures`` (and the run
    goes on). After the loop ``started``, ``completed``, ``turns`` and ``resumed`` tell
    the rest.
    """

    _events: Iterator[pb.SessionEvent]

    def __iter__(self) -> Iterator[pb.Turn]:
        # The events were observed (counted, remembered) by the run that yields them.
        for event in self._events:
            if event.WhichOneof("event") == "turn_completed":
                yield event.turn_completed


class ParleyClient(ClientBase):
    """A blocking client for ``parley.v1.DialogueService``.

    Use it as ``with ParleyClient("host:port") as client: ...``. The client
    closes the channel it opened; a ``channel`` passed in belongs to the caller and is
    left open, so one channel can serve several clients. The settings are those of
    :class:`~parley.client.aio.AsyncParleyClient`: ``token``, ``tls``, ``metadata``,
    ``timeout``, ``propagate_trace``, ``resume``, ``resume_timeout``, ``max_resumes``.
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
        channel: grpc.Channel | None = None,
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
            self._channel = grpc.secure_channel(
                target, secure.credentials(), options=secure.channel_options()
            )
        else:
            self._channel = grpc.insecure_channel(target, options=_common.CHANNEL_OPTIONS)
        self._stub = DialogueServiceStub(self._channel)

    def close(self) -> None:
        """Close the channel if this client opened it; in-flight calls are cancelled."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> ParleyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def create_dialogue(
        self,
        dialogue: pb.Dialogue,
        dialogue_id: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Create ``dialogue``; an empty ``dialogue_id`` lets the server choose one."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.CreateDialogue(
                _common.create_request(dialogue, dialogue_id),
                timeout=timeout,
                metadata=metadata,
            )

    def get_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> pb.Dialogue:
        """One dialogue, by ``dialogues/{id}`` or bare id."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.GetDialogue(
                pb.GetDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    def list_dialogues_page(
        self,
        page_size: int = 0,
        page_token: str = "",
        **options: Unpack[CallOptions],
    ) -> pb.ListDialoguesResponse:
        """One page of dialogues, for callers that keep the page token themselves."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.ListDialogues(
                pb.ListDialoguesRequest(page_size=page_size, page_token=page_token),
                timeout=timeout,
                metadata=metadata,
            )

    def list_dialogues(
        self, page_size: int = 0, **options: Unpack[CallOptions]
    ) -> Iterator[pb.Dialogue]:
        """Every dialogue, ordered by name, fetching pages of ``page_size`` as needed.

        ``timeout`` applies to each page's call, not to the whole iteration.
        """
        token = ""
        while True:
            page = self.list_dialogues_page(page_size, token, **options)
            yield from page.dialogues
            token = page.next_page_token
            if not token:
                return

    def update_dialogue(
        self,
        dialogue: pb.Dialogue,
        paths: Iterable[str],
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Change the fields named in ``paths`` of the dialogue named by ``dialogue.name``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.UpdateDialogue(
                _common.update_request(dialogue, paths), timeout=timeout, metadata=metadata
            )

    def delete_dialogue(self, name_or_id: str, **options: Unpack[CallOptions]) -> None:
        """Delete a dialogue and its whole message log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            self._stub.DeleteDialogue(
                pb.DeleteDialogueRequest(name=dialogue_name(name_or_id)),
                timeout=timeout,
                metadata=metadata,
            )

    def add_participant(
        self,
        dialogue: str,
        participant: pb.Participant,
        joining_strategy: pb.JoiningStrategy | None = None,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Add a participant; with ``joining_strategy`` it joins a dialogue in progress."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.AddParticipant(
                _common.add_participant_request(dialogue, participant, joining_strategy),
                timeout=timeout,
                metadata=metadata,
            )

    def remove_participant(
        self,
        dialogue: str,
        participant_name: str,
        **options: Unpack[CallOptions],
    ) -> pb.Dialogue:
        """Remove a participant by persona name; its messages stay in the log."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.RemoveParticipant(
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
    ) -> Iterator[pb.SessionEvent]:
        """Run one turn and yield each event the moment the server sends it.

        As :meth:`parley.client.aio.AsyncParleyClient.run_session`, resume included.
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

    def _session(
        self,
        request: pb.RunSessionRequest,
        tracker: RunTracker,
        resume: bool | None,
        options: CallOptions,
    ) -> Iterator[pb.SessionEvent]:
        timeout, metadata = self._call_options(options)
        deadline = None if timeout is None else time.monotonic() + timeout
        call = self._stub.RunSession(request, timeout=timeout, metadata=metadata)
        try:
            for event in call:
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
            call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs
        yield from self._follow(tracker, lost, deadline, options)

    def _follow(
        self,
        tracker: RunTracker,
        lost: grpc.RpcError,
        deadline: float | None,
        options: CallOptions,
    ) -> Iterator[pb.SessionEvent]:
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
                found = self._stub.GetDialogue(
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
                for item in watch:
                    yield from tracker.resume_events(item, found.participants)
                    if tracker.completed is not None:
                        return
            except grpc.RpcError as error:
                if isinstance(error, ParleyRpcError):
                    raise
                if not stream_lost(error):
                    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and (
                        deadline is None or time.monotonic() < deadline
                    ):
                        raise ParleyRpcError.from_rpc_error(lost) from error
                    raise ParleyRpcError.from_rpc_error(error) from error
                lost = error
            finally:
                if watch is not None:
                    watch.cancel()  # type: ignore[no-untyped-call]

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
    ) -> RunTurns:
        """Run one turn and iterate over its replies: ``for turn in client.turns(...)``.

        The arguments are those of :meth:`run_session`; the result also keeps the run's
        failures and counts (see :class:`RunTurns`).
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
        run = RunTurns()
        run._events = self._session(request, run, resume, options)
        return run

    def run(
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
            return self._stub.Run(request, timeout=timeout, metadata=metadata)

    def list_messages_page(
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
            return self._stub.ListMessages(
                _common.list_messages_request(dialogue, after_seq, page_size, page_token),
                timeout=timeout,
                metadata=metadata,
            )

    def list_messages(
        self,
        dialogue: str,
        after_seq: int = 0,
        page_size: int = 0,
        **options: Unpack[CallOptions],
    ) -> Iterator[pb.Message]:
        """The log in seq order, from after ``after_seq`` to its end, a page at a time."""
        token = ""
        while True:
            page = self.list_messages_page(dialogue, after_seq, page_size, token, **options)
            yield from page.messages
            token = page.next_page_token
            if not token:
                return

    def export_history(
        self,
        dialogue: str,
        format: pb.HistoryFormat | str = "llm_toolkit_json",
        **options: Unpack[CallOptions],
    ) -> str:
        """The whole log as a JSON document: ``llm_toolkit_json`` or ``full_json``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            response = self._stub.ExportHistory(
                _common.export_request(dialogue, format), timeout=timeout, metadata=metadata
            )
        return response.content

    def import_history(
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
            return self._stub.ImportHistory(
                _common.import_request(dialogue, content, mode),
                timeout=timeout,
                metadata=metadata,
            )

    def watch_dialogue(
        self, dialogue: str, after_seq: int = 0, **options: Unpack[CallOptions]
    ) -> Iterator[pb.WatchDialogueResponse]:
        """The log after ``after_seq``, then every new message and live run event, until
        the caller stops iterating; as :meth:`AsyncParleyClient.watch_dialogue`."""
        timeout, metadata = self._call_options(options)
        call = self._stub.WatchDialogue(
            pb.WatchDialogueRequest(dialogue=dialogue_name(dialogue), after_seq=after_seq),
            timeout=timeout,
            metadata=metadata,
        )
        try:
            with parley_errors():
                yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def cancel_run(
        self,
        dialogue: str,
        mode: pb.CancelMode | str = "immediate",
        **options: Unpack[CallOptions],
    ) -> pb.CancelRunResponse:
        """Stop the run in progress (``immediate`` or ``after_turn``); NOT_FOUND with
        reason NO_RUN_IN_PROGRESS when nothing runs."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            return self._stub.CancelRun(
                _common.cancel_request(dialogue, mode), timeout=timeout, metadata=metadata
            )

    def list_agent_profiles(self, **options: Unpack[CallOptions]) -> list[pb.AgentProfile]:
        """The server's agent profiles (by name), for ``Participant.agent``."""
        timeout, metadata = self._call_options(options)
        with parley_errors():
            response = self._stub.ListAgentProfiles(
                pb.ListAgentProfilesRequest(), timeout=timeout, metadata=metadata
            )
        return list(response.profiles)
