"""The blocking client: the same methods as :mod:`parley.client.aio`, for plain code.

Scripts, notebooks and the ``parley`` command do not want an event loop; this client
uses gRPC's blocking channel and returns ordinary iterators. Every method behaves as
its :class:`~parley.client.aio.AsyncParleyClient` namesake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Unpack

import grpc
from parley.client import _common
from parley.client._common import (
    DEFAULT_TARGET,
    CallOptions,
    ClientBase,
    dialogue_name,
    parley_errors,
)
from parley.v1 import dialogue_pb2 as pb
from parley.v1.dialogue_pb2_grpc import DialogueServiceStub

__all__ = ["ParleyClient"]


class ParleyClient(ClientBase):
    """A blocking client for ``parley.v1.DialogueService``.

    Use it as ``with ParleyClient("host:port") as client: ...``. The client
    closes the channel it opened; a ``channel`` passed in belongs to the caller and is
    left open, so one channel can serve several clients. ``metadata`` (for example
    ``[("authorization", "Bearer ...")]``) and ``timeout`` (seconds) apply to every
    call; each method's own ``timeout`` and ``metadata`` override or extend them.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        metadata: Iterable[tuple[str, str | bytes]] = (),
        timeout: float | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        super().__init__(target, metadata=metadata, timeout=timeout)
        self._owns_channel = channel is None
        self._channel = channel or grpc.insecure_channel(target, options=_common.CHANNEL_OPTIONS)
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
        **options: Unpack[CallOptions],
    ) -> Iterator[pb.SessionEvent]:
        """Run one turn and yield each event the moment the server sends it.

        ``text`` is a plain prompt (from the System speaker, or from ``speaker``; a
        string speaker is a user of that name); ``messages`` are stored before it.
        ``order`` overrides a broadcast's order for this run only: a ``Broadcast`` or
        ``"completion"``, ``"participant"``, ``"explicit:Name1,Name2"``. Leaving the
        loop early cancels the call; replies already produced stay in the log.
        """
        request = _common.run_request(
            dialogue,
            text,
            messages=messages,
            attachments=attachments,
            speaker=speaker,
            order=order,
        )
        timeout, metadata = self._call_options(options)
        call = self._stub.RunSession(request, timeout=timeout, metadata=metadata)
        try:
            with parley_errors():
                yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # untyped in grpc-stubs

    def run(
        self,
        dialogue: str,
        text: str = "",
        *,
        messages: Iterable[pb.InputMessage] = (),
        attachments: Iterable[pb.Attachment] = (),
        speaker: pb.Speaker | str | None = None,
        order: pb.Broadcast | str | None = None,
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
